"""Strict HTTP/1.1 request parsing, limits and client timeouts."""

import socket
import time

import pytest

from conftest import H1, T, proxy_config

LIMITS = {"max_request_line": 1024, "max_header_size": 4096, "max_header_count": 20,
          "client_header_timeout": "1s", "client_body_timeout": "1s", "keepalive_timeout": "1s",
          "max_body_size": 1000}
GOOD = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
def gh(backend, gatehouse):
    gh = gatehouse(proxy_config(backend, routes=[
        {"path": "/", "proxy": "app"},
        {"path": "/health", "respond": {"body": "ok\n"}},
    ], limits=LIMITS))
    gh.backend = backend
    return gh


def logged(gh, mark, words):
    """The error-log line (level info or warn) about our client, naming the reason."""
    line = gh.wait_err(r"\[(info|warn)\].*127\.0\.0\.1", since=mark, timeout=3)
    assert any(w.lower() in line.lower() for w in words), f"reason not named ({words}): {line}"


def rejected(gh, raw, status, words=("",), closes=True):
    mark = gh.err_mark()
    with H1(gh.port) as c:
        c.send(raw + GOOD)        # the pipelined good request must never be answered
        r = c.read_response()
        assert r.status == status, r
        if closes:
            assert (r.header("connection") or "").lower() == "close"
            assert c.closed_by_peer(), "connection not closed after the error"
            assert c.buf == b"", "answered a request after the error"
    logged(gh, mark, words)
    return r


def head(*lines, request_line="POST /echo HTTP/1.1"):
    return ("\r\n".join((request_line, "Host: x") + lines) + "\r\n\r\n").encode("latin-1")


BAD = {
    "content-length-and-transfer-encoding": head("Content-Length: 5", "Transfer-Encoding: chunked") + b"0\r\n\r\n",
    "obs-fold": head("X-A: 1", "  folded"),
    "bare-cr-in-value": head("X-A: a\rb"),
    "bare-cr-line-end": b"GET / HTTP/1.1\rHost: x\r\n\r\n",
    "space-in-name": head("Bad Name: x"),
    "space-before-colon": head("X-A : x"),
    "bad-char-in-name": head("X(a): x"),
    "empty-name": head(": x"),
    "no-colon": head("NoColonHere"),
    "two-different-content-lengths": head("Content-Length: 5", "Content-Length: 6") + b"hello",
    "content-length-list": head("Content-Length: 5, 6") + b"hello",
    "content-length-not-a-number": head("Content-Length: abc"),
    "content-length-negative": head("Content-Length: -1"),
    "control-char-in-value": head("X-A: a\x01b"),
    "nul-in-value": head("X-A: a\x00b"),
    "bad-method": head(request_line="G(T / HTTP/1.1"),
    "double-space-request-line": head(request_line="GET  / HTTP/1.1"),
    "bad-version": head(request_line="GET / HTTP/1.x"),
    "no-version": head(request_line="GET /"),
    "target-with-space": head(request_line="GET /a b HTTP/1.1"),
    "bad-chunk-size": head("Transfer-Encoding: chunked") + b"zz\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(BAD))
def test_malformed_request_is_400_and_closed(gh, name):
    rejected(gh, BAD[name], 400)


def test_nothing_malformed_reaches_the_upstream(gh):
    for name in ("content-length-and-transfer-encoding", "two-different-content-lengths", "obs-fold"):
        with H1(gh.port) as c:
            c.send(BAD[name])
            assert c.read_response().status == 400
    assert gh.backend.requests == []


def test_request_line_too_long_is_414(gh):
    rejected(gh, head(request_line=f"GET /{'a' * 1100} HTTP/1.1"), 414,
             ("line", "uri", "target", "414", "long"), closes=False)


def test_header_too_large_is_431(gh):
    rejected(gh, head(*[f"X-{i}: {'v' * 500}" for i in range(10)]), 431,
             ("header", "431", "large"), closes=False)


def test_too_many_headers_is_431(gh):
    rejected(gh, head(*[f"X-{i}: v" for i in range(25)]), 431,
             ("header", "431", "many"), closes=False)


def test_limits_are_inclusive(gh):
    with H1(gh.port) as c:   # Host + 19 = 20 headers: exactly max_header_count
        r = c.request("GET", "/health", [(f"X-{i}", "v") for i in range(19)])
        assert r.status == 200


def test_unknown_final_transfer_coding_is_400(gh):
    """RFC 9112 section 6.3: a final coding other than chunked is 400 and close."""
    rejected(gh, head("Transfer-Encoding: foo") + b"0\r\n\r\n", 400, ("transfer", "coding"))


def test_unknown_coding_under_chunked_is_501(gh):
    rejected(gh, head("Transfer-Encoding: foo, chunked") + b"0\r\n\r\n", 501,
             ("transfer", "coding", "501"), closes=False)


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/3.0"])
def test_unsupported_version_is_505(gh, version):
    rejected(gh, head(request_line=f"GET / {version}"), 505, ("version", "505"), closes=False)


def test_body_over_max_body_size_is_413(gh):
    rejected(gh, head("Content-Length: 2000"), 413, ("body", "413", "large"), closes=False)
    assert gh.backend.requests == []


def test_chunked_body_over_max_body_size_is_413(gh):
    body = b"".join(b"100\r\n" + b"x" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    with H1(gh.port) as c:
        c.send(head("Transfer-Encoding: chunked", request_line="POST /sink HTTP/1.1") + body)
        r = c.read_response()
    assert r.status == 413


def test_body_at_max_body_size_is_accepted(gh):
    with H1(gh.port) as c:
        r = c.request("POST", "/sink", body=b"x" * 1000)
    assert r.status == 200 and r.json()["bytes"] == 1000


def test_header_timeout_is_408_then_close(gh):
    mark = gh.err_mark()
    with H1(gh.port) as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        t = time.monotonic()
        r = c.read_response()
        assert r.status == 408
        assert 0.7 <= time.monotonic() - t <= T(4)
        assert c.closed_by_peer()
    logged(gh, mark, ("timeout", "timed out", "408", "slow"))


def test_header_timeout_counts_from_first_byte_not_last(gh):
    """A slowloris dribbling one byte every 200 ms is cut off after client_header_timeout."""
    data = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    with H1(gh.port) as c:
        t = time.monotonic()
        for i in range(len(data)):
            try:
                c.send(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            c.sock.settimeout(0.2)
            try:
                c.sock.recv(4096)
            except socket.timeout:
                continue
            break                   # an answer (the 408) or the close
        elapsed = time.monotonic() - t
    assert elapsed <= T(3), "the slow head was not cut off"


def test_body_timeout(gh):
    mark = gh.err_mark()
    with H1(gh.port) as c:
        c.send(head("Content-Length: 100", request_line="POST /sink HTTP/1.1") + b"x" * 10)
        t = time.monotonic()
        try:
            r = c.read_response()
            assert r.status == 408
        except EOFError:
            pass                    # closing without a response is allowed here
        assert c.closed_by_peer(timeout=T(4))
        assert 0.7 <= time.monotonic() - t <= T(4)
    logged(gh, mark, ("timeout", "timed out", "408", "slow", "body"))


def test_idle_keepalive_connection_closed_after_keepalive_timeout(gh):
    with H1(gh.port) as c:
        assert c.request("GET", "/health").status == 200
        t = time.monotonic()
        assert c.closed_by_peer(timeout=4)
        assert 0.7 <= time.monotonic() - t <= T(4)


def test_tolerated_syntax(gh):
    """What must still pass: case-insensitive names, OWS, tabs in values, empty values."""
    with H1(gh.port) as c:
        r = c.request("POST", "/echo", [("content-LENGTH", "3"), ("X-Tab", "a\tb"),
                                        ("X-Ows", "\t v \t"), ("X-Empty", "")], b"abc")
        assert r.status == 200
        e = r.json()
        assert e["body_len"] == 3
        hdrs = [[k.lower(), v] for k, v in e["headers"]]
        assert ["x-tab", "a\tb"] in hdrs and ["x-ows", "v"] in hdrs
