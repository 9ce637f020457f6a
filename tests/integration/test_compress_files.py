"""Compression of static files (`files` routes, docs/files.md): a file without precompressed
siblings is compressed on the fly through the filter (the files handler copies it, since the
filter has no send_file); a file with siblings is the files handler's choice and is never
encoded a second time; ranges are served as they are."""

import gzip
import os

import brotli
import pytest

from conftest import H1, base_config, curl
from test_compress import CODINGS, decode

APP_JS = b"".join(b"function f%d(a, b) { return a + b * %d; } // the app\n" % (i, i)
                  for i in range(3000))          # about 150 KiB of text
STYLE = b"".join(b".c%d { color: #%06x; margin: %dpx; }\n" % (i, i * 77, i % 9)
                 for i in range(2000))
STYLE_GZ = gzip.compress(STYLE, 9)
STYLE_BR = brotli.compress(STYLE)


@pytest.fixture
def served(tmp_path, gatehouse):
    root = tmp_path / "www"
    root.mkdir()
    (root / "app.js").write_bytes(APP_JS)
    (root / "style.css").write_bytes(STYLE)
    (root / "style.css.gz").write_bytes(STYLE_GZ)
    (root / "style.css.br").write_bytes(STYLE_BR)
    (root / "tiny.txt").write_bytes(b"tiny\n")
    (root / "blob.bin").write_bytes(os.urandom(50000))
    # Siblings must not be older than the file.
    t = os.stat(root / "style.css").st_mtime
    for s in ("style.css.gz", "style.css.br"):
        os.utime(root / s, (t + 1, t + 1))
    cfg = base_config(listen=[{"address": "127.0.0.1:0", "h2c": True}])
    cfg["sites"] = [{"hosts": ["*"], "compress": True, "routes": [
        {"path": "/", "files": {"root": str(root), "precompressed": ["br", "zstd", "gzip"]}},
    ]}]
    return gatehouse(cfg)


def get(gh, target, ae=None, method="GET", headers=()):
    hdrs = list(headers) + ([("Accept-Encoding", ae)] if ae else [])
    with H1(gh.port) as c:
        return c.request(method, target, hdrs)


@pytest.mark.parametrize("coding", CODINGS)
def test_file_without_siblings_is_compressed(served, coding):
    r = get(served, "/app.js", ae=coding)
    assert r.status == 200
    assert r.header("content-encoding") == coding
    assert r.header("content-length") is None
    assert "accept-encoding" in (r.header("vary") or "").lower()
    etag = r.header("etag")
    assert etag is None or etag.startswith('W/"'), etag
    assert len(r.body) < len(APP_JS) // 3
    assert decode(coding, r.body) == APP_JS


def test_file_over_h2_is_compressed(served, tmp_path):
    out = tmp_path / "b"
    p = curl("--http2-prior-knowledge", "-H", "Accept-Encoding: br", "-D", "-", "-o", out,
             f"http://127.0.0.1:{served.port}/app.js")
    assert p.returncode == 0, p.stderr
    assert "content-encoding: br" in p.stdout.decode().lower()
    assert decode("br", out.read_bytes()) == APP_JS


def test_curl_compressed_file(served):
    p = curl("--compressed", f"http://127.0.0.1:{served.port}/app.js")
    assert p.returncode == 0 and p.stdout == APP_JS


@pytest.mark.parametrize("ae,coding,body", [
    ("gzip", "gzip", STYLE_GZ),
    ("br, gzip", "br", STYLE_BR),
    ("zstd", None, STYLE),      # no zstd sibling: the file as it is, not encoded by the filter
    (None, None, STYLE),
])
def test_file_with_siblings_not_reencoded(served, ae, coding, body):
    r = get(served, "/style.css", ae=ae)
    assert r.status == 200
    assert r.header("content-encoding") == coding
    assert r.header("content-length") == str(len(body))
    assert r.body == body, "the sibling's bytes exactly, not encoded again"
    assert "accept-encoding" in (r.header("vary") or "").lower()


def test_file_range_not_compressed(served):
    r = get(served, "/app.js", ae="gzip", headers=[("Range", "bytes=0-99")])
    assert r.status == 206
    assert r.header("content-encoding") is None
    assert r.body == APP_JS[:100]


def test_file_not_listed_or_small_not_compressed(served):
    r = get(served, "/blob.bin", ae="gzip")
    assert r.header("content-encoding") is None and len(r.body) == 50000
    r = get(served, "/tiny.txt", ae="gzip")
    assert r.header("content-encoding") is None and r.body == b"tiny\n"


def test_file_head_gets_get_headers(served):
    g = get(served, "/app.js", ae="gzip")
    h = get(served, "/app.js", ae="gzip", method="HEAD")
    drop = {"date", "transfer-encoding", "content-length"}
    strip = lambda r: [(k.lower(), v) for k, v in r.headers if k.lower() not in drop]
    assert strip(h) == strip(g)
    assert h.body == b""


def test_file_slow_reader_completes(served):
    """The copy loop of the files handler under the filter's back-pressure (small socket
    buffer, the whole 150 KiB body through one response)."""
    import socket
    import time
    s = socket.create_connection(("127.0.0.1", served.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /app.js HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n"
              b"Connection: close\r\n\r\n")
    data = b""
    while True:
        time.sleep(0.001)
        d = s.recv(2048)
        if not d:
            break
        data += d
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-encoding: gzip" in head.lower()
    raw, rest = b"", body
    while True:
        line, _, rest = rest.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            break
        raw += rest[:n]
        rest = rest[n + 2:]
    assert gzip.decompress(raw) == APP_JS
