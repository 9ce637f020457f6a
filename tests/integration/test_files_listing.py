"""Directory listings of the `files` route (`listing: true`): HTML by default, JSON when Accept
prefers application/json, through the real binary. The names are hostile (markup, '&', quotes,
'%', a newline, UTF-8, a dot-file), so the page must escape them and the links must lead back
to the files; a link out of root is listed without its target's size."""
import json
import os
import re
import urllib.parse

import pytest

from conftest import H1, base_config

NAMES = ["<script>alert(1)<", "a&b.txt", "with space.txt", "100%.txt", "q\"uote'.txt",
         "new\nline.txt", "caf\u00e9.txt"]


@pytest.fixture
def tree(tmp_path):
    www = tmp_path / "www"
    d = www / "dir"
    (d / "sub").mkdir(parents=True)
    for i, n in enumerate(NAMES):
        (d / n).write_bytes(b"x" * (i + 1))
    (d / ".hidden").write_bytes(b"h")
    os.symlink("/etc/passwd", d / "link")
    (www / "indexed").mkdir()
    (www / "indexed" / "index.html").write_bytes(b"the index\n")
    (www / "noindex").mkdir()
    (www / "noindex" / "f.txt").write_bytes(b"f")
    return www


def cfg(www, **files):
    c = base_config()
    c["sites"] = [{"name": "main", "hosts": ["*"], "routes": [
        {"path": "/", "files": dict({"root": str(www), "listing": True}, **files)}]}]
    return c


def test_html_listing_escapes_and_links_back(gatehouse, tree):
    gh = gatehouse(cfg(tree))
    with H1(gh.port) as c:
        r = c.request("GET", "/dir/")
        assert r.status == 200
        assert r.header("content-type") == "text/html; charset=utf-8"
        page = r.body.decode("utf-8")
        assert "<script>" not in page
        assert "&lt;script&gt;alert(1)&lt;" in page
        assert "a&amp;b.txt" in page and "q&quot;uote&#39;.txt" in page
        assert ".hidden" not in page
        assert 'href="../"' in page
        hrefs = re.findall(r'href="([^"]+)"', page)
        # every listed file's link, resolved against /dir/, fetches that file
        for i, n in enumerate(NAMES):
            href = "./" + urllib.parse.quote(n.encode(), safe="")
            assert href in hrefs, (n, hrefs)
            r2 = c.request("GET", "/dir/" + href[2:])
            assert (r2.status, r2.body) == (200, b"x" * (i + 1)), n
        assert "./sub/" in hrefs
        assert hrefs.index("./sub/") < hrefs.index("./a%26b.txt")   # directories first


def test_json_listing_by_accept(gatehouse, tree):
    gh = gatehouse(cfg(tree))
    with H1(gh.port) as c:
        r = c.request("GET", "/dir/", headers=[("Accept", "application/json")])
        assert r.status == 200
        assert r.header("content-type").startswith("application/json")
        entries = json.loads(r.body)
        by_name = {e["name"]: e for e in entries}
        assert set(by_name) == set(NAMES) | {"sub", "link"}
        for i, n in enumerate(NAMES):
            assert by_name[n]["type"] == "file" and by_name[n]["size"] == i + 1
        assert by_name["sub"]["type"] == "dir"
        assert by_name["link"]["type"] == "link" and "size" not in by_name["link"]
        assert entries[0]["name"] == "sub"
        assert all(re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", e["mtime"])
                   for e in entries)
        # a browser's Accept gets HTML, and so does a tie
        for accept in ("text/html,application/xhtml+xml,*/*;q=0.8", "application/json, text/html"):
            r = c.request("GET", "/dir/", headers=[("Accept", accept)])
            assert r.header("content-type") == "text/html; charset=utf-8", accept


def test_hidden_true_lists_dot_files(gatehouse, tree):
    gh = gatehouse(cfg(tree, hidden=True))
    with H1(gh.port) as c:
        r = c.request("GET", "/dir/", headers=[("Accept", "application/json")])
        assert ".hidden" in {e["name"] for e in json.loads(r.body)}


def test_index_wins_and_listing_off(gatehouse, tree):
    gh = gatehouse(cfg(tree))
    with H1(gh.port) as c:
        r = c.request("GET", "/indexed/")
        assert (r.status, r.body) == (200, b"the index\n")
    gh2 = gatehouse(cfg(tree, listing=False))
    with H1(gh2.port) as c:
        r = c.request("GET", "/noindex/")
        assert r.status in (403, 404)
        assert b"f.txt" not in r.body
