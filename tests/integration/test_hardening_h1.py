"""Hardening (issue 11, item 16): HTTP/1.1 request framing per RFC 9112, over raw sockets.

Each case is sent as exact bytes followed by a pipelined request that a lenient parser would
answer. Each must get a 400 with Connection: close, the connection must then be closed with
nothing answered after it, a log line must say why, and nothing may reach the backend: a probe on
a fresh connection afterwards must be the only request the backend saw.

  - a Transfer-Encoding whose final coding is not chunked is 400 (RFC 9112 section 6.3: the
    server MUST respond 400 and close), not 501;
  - a bare LF where CRLF is required (request line, field lines, the end of the head, chunk size
    lines, the CRLF after chunk data, trailer lines) is 400;
  - after a 400 for a target or Host the router cannot use (`GET foo`, `GET *`, an absolute-form
    naming a host we do not serve, a port out of range), the connection is closed;
  - `Host: a:99999` is 400.

One Gatehouse and one backend serve the whole module (the cases are many and independent)."""


import pytest

from conftest import EDGE_HOST, H1, edge_env, edge_probe

HOST = EDGE_HOST.encode()
SMUG = b"GET /echo?smuggled=1 HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n"
GOOD = b"GET /echo?pipelined=1 HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n"


def post(*fields):
    return b"POST /echo HTTP/1.1\r\nHost: " + HOST + b"\r\n" + b"".join(
        f + b"\r\n" for f in fields) + b"\r\n"


CHUNKED = post(b"Transfer-Encoding: chunked")

# name -> (raw bytes, words one of which the log line names)
TE_CASES = {
    "identity": (post(b"Transfer-Encoding: identity") + b"5\r\nhello\r\n0\r\n\r\n" + SMUG,),
    "xchunked": (post(b"Transfer-Encoding: xchunked") + b"5\r\nhello\r\n0\r\n\r\n" + SMUG,),
    "chunkedx": (post(b"Transfer-Encoding: chunkedx") + b"5\r\nhello\r\n0\r\n\r\n" + SMUG,),
    "gzip": (post(b"Transfer-Encoding: gzip") + b"5\r\nhello\r\n0\r\n\r\n" + SMUG,),
    "gzip-two-lines": (post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip")
                       + b"0\r\n\r\n" + SMUG,),
    "identity-http10": (b"POST /echo HTTP/1.0\r\nHost: " + HOST +
                        b"\r\nTransfer-Encoding: identity\r\n\r\n" + SMUG,),
}

BARE_LF_HEAD = {
    "request-line": b"GET /echo HTTP/1.1\nHost: " + HOST + b"\r\n\r\n",
    "field-line": b"GET /echo HTTP/1.1\r\nHost: " + HOST + b"\n\r\n",
    "end-of-head": b"GET /echo HTTP/1.1\r\nHost: " + HOST + b"\r\n\n",
    "all-lines": b"GET /echo HTTP/1.1\nHost: " + HOST + b"\n\n",
    "leading-empty-line": b"\nGET /echo HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n",
    # a back end splitting at CRLF only sees one field "X: a\nTransfer-Encoding: chunked"
    "hidden-te": post(b"X: a\nTransfer-Encoding: chunked", b"Content-Length: 5") + b"hello",
    "hidden-cl": post(b"X: a\nContent-Length: 44") + SMUG,
}

BARE_LF_BODY = {
    "chunk-size-line": CHUNKED + b"5\nhello\r\n0\r\n\r\n" + SMUG,
    "chunk-size-line-with-ext": CHUNKED + b"5;a=b\nhello\r\n0\r\n\r\n" + SMUG,
    "after-chunk-data": CHUNKED + b"5\r\nhello\n0\r\n\r\n" + SMUG,
    "last-chunk-line": CHUNKED + b"5\r\nhello\r\n0\n\r\n" + SMUG,
    "trailer-line": CHUNKED + b"5\r\nhello\r\n0\r\nX-T: 1\n\r\n" + SMUG,
    "final-empty-line": CHUNKED + b"5\r\nhello\r\n0\r\n\n" + SMUG,
}

TARGET_CASES = {   # valid framing; the router refuses the target or Host with 400
    "relative-target": b"GET foo HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n",
    "asterisk-for-get": b"GET * HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n",
    "absolute-form-unknown-host": b"GET http://unknown.example/echo HTTP/1.1\r\nHost: " + HOST
                                  + b"\r\n\r\n",
    "host-port-out-of-range": b"GET /echo HTTP/1.1\r\nHost: " + HOST + b":99999\r\n\r\n",
    "host-port-65536": b"GET /echo HTTP/1.1\r\nHost: " + HOST + b":65536\r\n\r\n",
    "host-port-non-numeric": b"GET /echo HTTP/1.1\r\nHost: " + HOST + b":8o\r\n\r\n",
    "absolute-form-port-out-of-range": b"GET http://" + HOST + b":99999/echo HTTP/1.1\r\nHost: "
                                       + HOST + b"\r\n\r\n",
    "unknown-host": b"GET /echo HTTP/1.1\r\nHost: unknown.example\r\n\r\n",
}

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    yield from edge_env(tmp_path_factory, "hardening_h1", {"client_header_timeout": "2s", "client_body_timeout": "2s"})


probe = edge_probe


def refused_and_closed(gh, be, raw, words):
    """Sends raw + a pipelined good request: 400, Connection: close, the connection closed with
    nothing answered after it, a log line naming the reason, and nothing at the backend."""
    before = len(be.requests)
    mark = gh.err_mark()
    with H1(gh.port, timeout=5) as c:
        try:
            c.send(raw + GOOD)
        except (BrokenPipeError, ConnectionResetError):
            pass   # refused before we finished writing; the answer is still readable
        r = c.read_response()
        assert r.status == 400, r
        assert (r.header("connection") or "").lower() == "close", r
        assert c.closed_by_peer(), "connection not closed after the 400"
        assert b"HTTP/1." not in c.buf, "answered a request sent after the refused one"
    line = gh.wait_err(r"\[(info|warn)\].*127\.0\.0\.1.*400", since=mark, timeout=3)
    assert any(w in line.lower() for w in words), f"reason not named ({words}): {line}"
    tag = probe(gh)
    seen = [t for _, _, t in be.requests[before:]]
    assert seen == [tag], f"reached the backend: {seen}"


@pytest.mark.parametrize("name", list(TE_CASES))
def test_final_coding_not_chunked_is_400_and_close(env, name):
    gh, be = env
    refused_and_closed(gh, be, TE_CASES[name][0], ("chunked", "transfer coding"))


@pytest.mark.parametrize("name", list(BARE_LF_HEAD))
def test_bare_lf_in_head_is_400_and_close(env, name):
    gh, be = env
    refused_and_closed(gh, be, BARE_LF_HEAD[name], ("bare lf",))


@pytest.mark.parametrize("name", list(BARE_LF_BODY))
def test_bare_lf_in_chunked_body_is_400_and_close(env, name):
    gh, be = env
    refused_and_closed(gh, be, BARE_LF_BODY[name], ("chunked",))


@pytest.mark.parametrize("name", list(TARGET_CASES))
def test_unusable_target_or_host_is_400_and_close(env, name):
    gh, be = env
    refused_and_closed(gh, be, TARGET_CASES[name], ("target", "host"))


def test_gzip_under_chunked_is_still_501(env):
    """chunked is final but a coding under it would be lost: 501 (RFC 9112 section 6.1)."""
    gh, be = env
    before = len(be.requests)
    with H1(gh.port) as c:
        c.send(post(b"Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n" + GOOD)
        r = c.read_response()
        assert r.status == 501, r
        assert c.closed_by_peer()
    assert [t for _, _, t in be.requests[before:]] == []


def test_crlf_framing_still_served_with_keepalive(env):
    """The same requests with CRLF everywhere are served, trailers and all, on one connection;
    OPTIONS * and an empty port (the default one) are valid."""
    gh, be = env
    before = len(be.requests)
    with H1(gh.port) as c:
        c.send(CHUNKED + b"5;a=b\r\nhe\nlo\r\n0\r\nX-T: 1\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.json()["body_len"] == 5, r
        c.send(b"OPTIONS * HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n")
        assert c.read_response().status == 200
        c.send(b"GET /echo?empty-port HTTP/1.1\r\nHost: " + HOST + b":\r\n\r\n")
        assert c.read_response().status == 200
        c.send(b"\r\nGET /echo?port HTTP/1.1\r\nHost: " + HOST + b":65535\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and (r.header("connection") or "") == "", r
    seen = [t for _, _, t in be.requests[before:]]
    assert seen == ["/echo", "/echo?empty-port", "/echo?port"], seen
