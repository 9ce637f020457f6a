"""examples/spa.yaml as shipped (issue 13, "Done when": an example serves a single-page app with
its API proxied): `gatehouse -t` accepts it from the repository's top directory, and a copy with
the listener on port 0, the upstream pointed at the test backend and the roots made absolute
serves the app: index.html for / and for client-side routes (fallback, 200), the app's files
with their types, hashed assets with a long Cache-Control, and /api/ proxied (prefix stripped)
and compressed."""
import gzip
import json
import subprocess

import pytest
import yaml

from conftest import GATEHOUSE_BIN, H1, REPO, T

EXAMPLE = REPO / "examples" / "spa.yaml"
SPA = REPO / "examples" / "spa"


def test_example_checks_clean():
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", "examples/spa.yaml"], cwd=REPO,
                       capture_output=True, text=True, timeout=T(10), stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout


def runnable(backend):
    """The example with test-friendly addresses; everything else as shipped."""
    cfg = yaml.safe_load(EXAMPLE.read_text())
    cfg["workers"] = 1
    cfg["listen"] = [{"address": "127.0.0.1:0"}]
    cfg["upstreams"]["api"]["servers"] = [backend.address]
    roots = 0
    for site in cfg["sites"]:
        for route in site["routes"]:
            f = route.get("files")
            if isinstance(f, dict) and not f["root"].startswith("/"):
                f["root"] = str(EXAMPLE.parent / f["root"])   # relative to the file
                roots += 1
    assert roots == 2, "the example should have two files routes"
    return cfg


@pytest.fixture
def spa(gatehouse, backend):
    return gatehouse(runnable(backend))


def test_index_and_client_side_routes(spa):
    index = (SPA / "index.html").read_bytes()
    with H1(spa.port) as c:
        for path in ("/", "/index.html", "/orders/42", "/some/deep/link", "/settings/profile"):
            r = c.request("GET", path)
            assert (r.status, r.body) == (200, index), path
            assert r.header("content-type") == "text/html; charset=utf-8"
            assert r.header("cache-control") == "no-cache"


def test_app_files(spa):
    with H1(spa.port) as c:
        for name, ctype in (("app.js", "text/javascript; charset=utf-8"),
                            ("style.css", "text/css; charset=utf-8"),
                            ("favicon.svg", "image/svg+xml; charset=utf-8")):
            r = c.request("GET", "/" + name)
            assert r.status == 200, name
            assert r.body == (SPA / name).read_bytes()
            assert r.header("content-type") == ctype
            assert r.header("etag")


def test_hashed_assets_cached_and_not_fallen_back(spa):
    with H1(spa.port) as c:
        r = c.request("GET", "/assets/logo.5f3c9a1e.svg")
        assert r.status == 200
        assert r.body == (SPA / "assets" / "logo.5f3c9a1e.svg").read_bytes()
        assert r.header("cache-control") == "public, max-age=31536000, immutable"
        r = c.request("GET", "/assets/missing.3a3a3a3a.js")
        assert r.status == 404       # no fallback on the assets route: a missing build file


def test_api_is_proxied_with_prefix_stripped(spa, backend):
    with H1(spa.port) as c:
        r = c.request("GET", "/api/echo?order=42")
    assert r.status == 200
    e = r.json()
    assert e["target"] == "/echo?order=42"


def test_api_json_is_compressed(spa):
    """/api/ has `compress` (gzip level 5): a JSON answer over 1 KiB comes back gzip-encoded
    and decodes to the backend's JSON."""
    pad = "x" * 2000
    with H1(spa.port) as c:
        r = c.request("GET", "/api/echo", headers=[("Accept-Encoding", "gzip"), ("X-Pad", pad)])
    assert r.status == 200
    assert r.header("content-encoding") == "gzip"
    assert "accept-encoding" in (r.header("vary") or "").lower()
    e = json.loads(gzip.decompress(r.body))
    assert ["X-Pad", pad] in e["headers"]
