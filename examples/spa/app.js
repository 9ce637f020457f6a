// A tiny single-page app: client-side routes (/, /orders/N, /settings/...) rendered here, so
// Gatehouse serves index.html for every path that is not a file (`fallback: /index.html`),
// and data from the API behind Gatehouse (/api/ -> the upstream `api`, prefix stripped).
"use strict";

const view = document.getElementById("view");

async function api(path) {
  const r = await fetch("/api/" + path, { headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error("API " + r.status);
  return r.json();
}

function show(title, text) {
  view.replaceChildren();
  const h = document.createElement("h1");
  h.textContent = title;
  const p = document.createElement("pre");
  p.textContent = text;
  view.append(h, p);
}

async function render(path) {
  try {
    if (path === "/") {
      const info = await api("echo?page=home");
      show("Home", "The API saw: " + info.method + " " + info.target);
    } else if (path.startsWith("/orders/")) {
      const id = path.slice("/orders/".length);
      const info = await api("echo?order=" + encodeURIComponent(id));
      show("Order " + id, JSON.stringify(info, null, 2));
    } else if (path.startsWith("/settings/")) {
      show("Settings", "Section: " + path.slice("/settings/".length));
    } else {
      show("Not found", path);
    }
  } catch (e) {
    show("Error", String(e));
  }
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[data-link]");
  if (!a) return;
  ev.preventDefault();
  history.pushState(null, "", a.getAttribute("href"));
  render(location.pathname);
});
window.addEventListener("popstate", () => render(location.pathname));
render(location.pathname);
