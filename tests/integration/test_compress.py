"""Compression of responses (`compress`, docs/compression.md): negotiation, the headers of
eligible responses, every coding decoded by its own library (Python's gzip, python3-brotli,
python3-zstandard) and by curl --compressed, over HTTP/1.1, h2c and TLS; proxied bodies with a
Content-Length and chunked, `respond` bodies and error answers; the cases that are never
compressed. Streaming (SSE, back-pressure, a dying upstream) is in test_compress_stream.py."""

import gzip
import json
import subprocess

import brotli
import pytest
import zstandard

from backend import text_bytes
from conftest import (H1, T, backend_env, base_config, curl,
                      refused_port)

CODINGS = ("gzip", "br", "zstd")
HOST = "test"


def decode(coding, body):
    if coding is None or coding == "identity":
        return body
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "br":
        return brotli.decompress(body)
    if coding == "zstd":  # streamed frames carry no content size: decode as a stream
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    raise AssertionError(f"unknown coding {coding}")


RESPOND_BODY = "".join(f"line {i}: respond bodies are compressed too\n" for i in range(100))


def compress_config(be, dead_port):
    cfg = base_config(listen=[{"address": "127.0.0.1:0", "h2c": True}])
    cfg["upstreams"] = {
        "app": {"servers": [be.address], "connect_timeout": "2s", "read_timeout": "10s"},
        "dead": {"servers": [f"127.0.0.1:{dead_port}"], "connect_timeout": "1s", "retries": 0},
    }
    proxy = lambda path, **kw: dict({"path": path, "proxy": "app", "strip_prefix": True}, **kw)
    cfg["sites"] = [{
        "name": "main", "hosts": ["*"],
        "compress": True,
        "routes": [
            {"path": "/", "proxy": "app"},
            proxy("/gz", compress={"algorithms": ["gzip"], "level": {"gzip": 1}}),
            proxy("/off", compress=False),
            proxy("/small", compress={"min_size": 0}),
            proxy("/json", compress={"types": ["application/json"], "min_size": 0}),
            proxy("/prefer", compress={"algorithms": ["gzip", "br", "zstd"]}),
            {"path": "/respond", "respond": {"body": RESPOND_BODY}},
            {"path": "/tiny", "respond": {"body": "tiny\n"}},
            {"path": "/error", "proxy": "dead", "compress": {"min_size": 0}},
            {"path": "/hdr", "respond": {"body": RESPOND_BODY},
             "response_headers": {"add": {"Vary": "Cookie"}}},
        ],
    }]
    return cfg


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    yield from backend_env(tmp_path_factory, "compress",
                           lambda be: compress_config(be, refused_port()))


def req(gh, target, ae=None, method="GET", headers=()):
    hdrs = list(headers)
    if ae is not None:
        hdrs.append(("Accept-Encoding", ae))
    with H1(gh.port) as c:
        return c.request(method, target, hdrs, host=HOST)


def vary_lists_ae(r):
    tokens = [t.strip().lower() for v in r.headers_named("vary") for t in v.split(",")]
    return tokens.count("accept-encoding")


# ---- every coding, every kind of body -------------------------------------------------------

@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("chunked", [False, True])
def test_proxied_body_round_trips(env, coding, chunked):
    gh, _ = env
    n = 200_000
    r = req(gh, f"/text?n={n}&chunked={int(chunked)}&chunk=7000", ae=coding)
    assert r.status == 200 and r.complete
    assert r.header("content-encoding") == coding
    assert r.header("content-length") is None
    assert r.header("transfer-encoding") == "chunked"
    assert vary_lists_ae(r) == 1
    assert len(r.body) < n // 3, "the text compresses"
    assert decode(coding, r.body) == text_bytes(0, n)


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("target,status,body", [
    ("/respond", 200, RESPOND_BODY.encode()),      # a respond route's body
    ("/error", 502, b"502 Bad Gateway\n"),         # our own error answer (upstream refuses)
    ("/small/status/500", 500, b"status 500\n"),   # an upstream's error status
])
def test_respond_and_error_bodies_round_trip(env, coding, target, status, body):
    gh, _ = env
    r = req(gh, target, ae=coding)
    assert r.status == status
    assert r.header("content-encoding") == coding
    assert decode(coding, r.body) == body


def test_curl_compressed(env):
    gh, _ = env
    p = curl("--compressed", "-D", "-", f"http://127.0.0.1:{gh.port}/text?n=100000")
    assert p.returncode == 0, p.stderr
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    assert b"content-encoding: zstd" in head.lower()   # server preference: zstd, br, gzip
    assert body == text_bytes(0, 100000)


@pytest.mark.parametrize("coding", CODINGS)
def test_h2c_round_trips(env, coding, tmp_path):
    gh, _ = env
    out = tmp_path / "body"
    p = curl("--http2-prior-knowledge", "-H", f"Accept-Encoding: {coding}", "-D", "-", "-o",
             out, f"http://127.0.0.1:{gh.port}/text?n=150000&chunked=1")
    assert p.returncode == 0, p.stderr
    head = p.stdout.decode().lower()
    assert head.startswith("http/2 200")
    assert f"content-encoding: {coding}" in head
    assert "content-length" not in head
    assert "vary: accept-encoding" in head
    assert decode(coding, out.read_bytes()) == text_bytes(0, 150000)


def test_h2c_respond_and_head(env, tmp_path):
    gh, _ = env
    from test_h2_server import H2Client
    c = H2Client(gh.port)
    try:
        sid = c.request("/respond", headers=[("accept-encoding", "br")])
        status, headers, body = c.response(sid)
        assert status == 200 and headers["content-encoding"] == "br"
        assert decode("br", body) == RESPOND_BODY.encode()
        sid = c.request("/respond", method="HEAD", headers=[("accept-encoding", "br")])
        hstatus, hheaders, hbody = c.response(sid)
        assert hstatus == 200 and hbody == b""
        strip = lambda h: {k: v for k, v in h.items() if k not in ("date",)}
        assert strip(hheaders) == strip(headers)
    finally:
        c.close()


# ---- negotiation --------------------------------------------------------------------------------

@pytest.mark.parametrize("ae,expect", [
    ("gzip", "gzip"),
    ("br", "br"),
    ("zstd", "zstd"),
    ("gzip, br, zstd", "zstd"),              # equal weights: server preference (zstd, br, gzip)
    ("gzip;q=1, br;q=0.5, zstd;q=0.4", "gzip"),
    ("br;q=0.9, zstd;q=0.9, gzip", "gzip"),
    ("*", "zstd"),
    ("*;q=0.5, gzip;q=0", "zstd"),
    ("gzip;q=0", None),
    ("gzip;q=0, *;q=0", None),
    ("identity", None),
    ("identity;q=0", None),                  # refused identity, nothing acceptable: sent as is
    ("identity;q=0, br", "br"),
    ("deflate", None),
    ("", None),
    ("GZIP;Q=0.5", "gzip"),
    ("gzip;q=1.5", None),                    # not a qvalue: the member is ignored
    ("x-gzip", "gzip"),
])
def test_negotiation(env, ae, expect):
    gh, _ = env
    r = req(gh, "/text?n=5000", ae=ae)
    assert r.status == 200
    assert r.header("content-encoding") == expect
    assert vary_lists_ae(r) == 1
    if expect is None:
        assert r.header("content-length") == "5000"
    assert decode(expect, r.body) == text_bytes(0, 5000)


def test_no_accept_encoding_gets_identity_with_vary(env):
    gh, _ = env
    r = req(gh, "/text?n=5000")
    assert r.header("content-encoding") is None
    assert r.header("content-length") == "5000"
    assert vary_lists_ae(r) == 1
    assert r.body == text_bytes(0, 5000)


def test_server_preference_of_the_route(env):
    gh, _ = env
    assert req(gh, "/prefer/text?n=5000", ae="zstd, br, gzip").header("content-encoding") == "gzip"
    assert req(gh, "/gz/text?n=5000", ae="zstd, br").header("content-encoding") is None
    r = req(gh, "/gz/text?n=5000", ae="zstd, br, gzip")
    assert r.header("content-encoding") == "gzip"
    assert decode("gzip", r.body) == text_bytes(0, 5000)


def test_route_false_turns_the_site_off(env):
    gh, _ = env
    r = req(gh, "/off/text?n=5000", ae="gzip")
    assert r.header("content-encoding") is None
    assert r.header("vary") is None     # could not have been compressed: no Vary
    assert r.body == text_bytes(0, 5000)


# ---- headers ------------------------------------------------------------------------------------

def test_vary_merged_into_existing(env):
    gh, _ = env
    r = req(gh, "/text?n=5000&set=Vary:Origin", ae="gzip")
    assert r.headers_named("vary") == ["Origin, Accept-Encoding"]
    r = req(gh, "/text?n=5000&set=Vary:Origin,%20accept-encoding", ae="gzip")
    assert r.headers_named("vary") == ["Origin, accept-encoding"]     # no duplicate
    r = req(gh, "/text?n=5000&set=Vary:*", ae="gzip")
    assert r.headers_named("vary") == ["*"]
    assert r.header("content-encoding") == "gzip"
    r = req(gh, "/hdr", ae="br")          # a Vary from the site's response header rules
    assert r.headers_named("vary") == ["Cookie, Accept-Encoding"]


def test_etag_weakened(env):
    gh, _ = env
    r = req(gh, '/text?n=5000&set=ETag:"abc"', ae="gzip")
    assert r.header("etag") == 'W/"abc"'
    r = req(gh, '/text?n=5000&set=ETag:W/"abc"', ae="gzip")
    assert r.header("etag") == 'W/"abc"'
    r = req(gh, "/text?n=5000&set=ETag:abc", ae="gzip")   # malformed: dropped
    assert r.header("etag") is None
    r = req(gh, '/text?n=5000&set=ETag:"abc"')              # identity: the ETag is the upstream's
    assert r.header("etag") == '"abc"'


def test_head_gets_the_headers_of_get(env):
    gh, _ = env
    for target in ("/text?n=5000&set=ETag:%22e%22", "/respond"):
        g = req(gh, target, ae="br")
        h = req(gh, target, ae="br", method="HEAD")
        assert g.header("content-encoding") == "br"
        drop = {"date", "transfer-encoding", "content-length"}
        strip = lambda r: [(k.lower(), v) for k, v in r.headers if k.lower() not in drop]
        assert strip(h) == strip(g)
        assert h.body == b""


# ---- never compressed ---------------------------------------------------------------------------

@pytest.mark.parametrize("target,headers,vary", [
    ("/text?n=5000&set=Content-Encoding:gzip", (), False),     # already encoded
    ("/text?n=5000&set=Cache-Control:public,%20no-transform", (), False),
    ("/text?n=5000", (("Range", "bytes=0-99"),), False),       # a request with Range
    ("/bytes?n=5000", (), False),                               # type not listed
    ("/text?n=1000", (), False),                                # below min_size (1k)
    ("/json/text?n=5000", (), False),                           # text/plain not in the route's types
])
def test_never_compressed(env, target, headers, vary):
    gh, _ = env
    r = req(gh, target, ae="gzip, br, zstd", headers=headers)
    assert r.status == 200
    assert r.header("content-encoding") in (None, "gzip")
    if "Content-Encoding" in target:
        assert r.headers_named("content-encoding") == ["gzip"]   # the upstream's, untouched
    else:
        assert r.header("content-encoding") is None
    assert r.header("content-length") is not None
    assert bool(vary_lists_ae(r)) == vary


def test_json_type_is_compressed(env):
    gh, _ = env
    r = req(gh, "/json/text?n=5000&ctype=application/json;%20charset=utf-8", ae="gzip")
    assert r.header("content-encoding") == "gzip"
    assert decode("gzip", r.body) == text_bytes(0, 5000)


@pytest.mark.parametrize("status", [204, 304, 206])
def test_statuses_never_compressed(env, status):
    gh, _ = env
    r = req(gh, f"/small/status/{status}?set=Content-Type:text/plain", ae="gzip")
    assert r.status == status
    assert r.header("content-encoding") is None
    assert r.header("vary") is None


def test_small_respond_not_compressed(env):
    gh, _ = env
    r = req(gh, "/tiny", ae="gzip")
    assert r.header("content-encoding") is None
    assert r.header("content-length") == "5"
    assert r.header("vary") is None   # below min_size whatever the client asks: no variants
    assert r.body == b"tiny\n"


def test_request_body_with_content_encoding_forwarded_untouched(env):
    """No decompression at the edge: a gzip request body reaches the upstream byte for byte."""
    gh, _ = env
    import hashlib
    raw = gzip.compress(text_bytes(0, 50000))
    with H1(gh.port) as c:
        r = c.request("POST", "/echo", [("Content-Encoding", "gzip"),
                                        ("Content-Type", "text/plain")], body=raw, host=HOST)
    assert r.status == 200
    e = r.json()
    assert e["body_len"] == len(raw)
    assert e["body_sha256"] == hashlib.sha256(raw).hexdigest()
    assert ["Content-Encoding", "gzip"] in e["headers"]


# ---- TLS ---------------------------------------------------------------------------------------

def test_tls_h1_and_h2_round_trip(tmp_path, backend, gatehouse):
    from test_tls import make_cert
    d = tmp_path / "certs"
    d.mkdir()
    crt, key = make_cert(d, "main", ["main.example"])
    cfg = base_config(listen=[{"address": "127.0.0.1:0",
                               "tls": {"certificates": [{"cert": str(crt), "key": str(key)}]}}])
    cfg["upstreams"] = {"app": {"servers": [backend.address]}}
    cfg["sites"] = [{"hosts": ["*"], "compress": True, "routes": [{"path": "/", "proxy": "app"}]}]
    gh = gatehouse(cfg)
    for proto in ("--http1.1", "--http2"):
        for coding in CODINGS:
            out = tmp_path / f"body-{proto}-{coding}"
            p = curl(proto, "--cacert", crt, "--resolve", f"main.example:{gh.port}:127.0.0.1",
                     "-H", f"Accept-Encoding: {coding}", "-D", "-", "-o", out,
                     f"https://main.example:{gh.port}/text?n=120000&chunked=1")
            assert p.returncode == 0, p.stderr
            head = p.stdout.decode().lower()
            assert f"content-encoding: {coding}" in head, head
            assert decode(coding, out.read_bytes()) == text_bytes(0, 120000)


def test_interim_passes_untouched(env):
    """1xx heads are never filtered: the 103 keeps its fields, the final 200 is compressed."""
    gh, _ = env
    r = req(gh, "/small/interim?set=Content-Type:text/plain", ae="gzip")
    assert [s for s, _ in r.interims] == [103]
    ih = dict((k.lower(), v) for k, v in r.interims[0][1])
    assert ih.get("link") == "</style.css>; rel=preload"
    assert "content-encoding" not in ih and "vary" not in ih
    assert r.status == 200 and r.header("content-encoding") == "gzip"
    assert decode("gzip", r.body) == b"final\n"


def test_h2_large_body_with_flow_control(env):
    """HTTP/2 with a small stream window: the codec's SEND_PENDING and on_writable drive the
    filter; the body decodes whole."""
    gh, _ = env
    from test_h2_server import H2Client
    n = 8 << 20
    c = H2Client(gh.port, window=16384)
    try:
        sid = c.request(f"/text?n={n}&chunk=262144", headers=[("accept-encoding", "zstd")])
        status, headers, body = c.response(sid, timeout=60)
        assert status == 200 and headers["content-encoding"] == "zstd"
        assert decode("zstd", body) == text_bytes(0, n)
    finally:
        c.close()


@pytest.mark.parametrize("n", [500, 5000])
def test_head_below_and_above_min_size(env, n):
    gh, _ = env
    g = req(gh, f"/text?n={n}", ae="gzip")
    h = req(gh, f"/text?n={n}", ae="gzip", method="HEAD")
    assert h.header("content-encoding") == g.header("content-encoding")
    assert h.headers_named("vary") == g.headers_named("vary")
    assert h.header("content-length") == g.header("content-length")


def test_long_vary_gets_a_second_line(env):
    """A Vary too long to merge into: Accept-Encoding comes as a field line of its own (RFC 9110
    section 5.3: the lines form one list)."""
    gh, _ = env
    long = ",%20".join(f"X-Header-Number-{i}" for i in range(40))
    r = req(gh, f"/text?n=5000&set=Vary:{long}", ae="gzip")
    assert r.header("content-encoding") == "gzip"
    assert len(r.headers_named("vary")) == 2
    assert r.headers_named("vary")[1] == "Accept-Encoding"
    assert vary_lists_ae(r) == 1


def test_empty_body_not_compressed(env):
    gh, _ = env
    r = req(gh, "/small/text?n=0", ae="gzip")
    assert r.status == 200 and r.header("content-length") == "0"
    assert r.header("content-encoding") is None and r.body == b""


def test_http10_client_gets_close_delimited_body(env):
    """No chunked framing on HTTP/1.0: the compressed body ends with the connection."""
    gh, _ = env
    with H1(gh.port) as c:
        r = c.request("GET", "/text?n=50000", [("Accept-Encoding", "gzip")], version="HTTP/1.0")
    assert r.header("content-encoding") == "gzip"
    assert r.header("transfer-encoding") is None and r.header("content-length") is None
    assert decode("gzip", r.body) == text_bytes(0, 50000)
