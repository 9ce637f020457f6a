"""Edge: route max_body_size (413 before the body, no 100 Continue), connections per client,
requests per connection, TRACE and CONNECT."""

import socket
import time

import pytest

from conftest import EDGE_HOST, H1, T, edge_config, wait_until


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def bodies(backend, gatehouse):
    gh = gatehouse(edge_config(backend, routes=[
        {"path": "/", "proxy": "app"},
        {"path": "/sink", "proxy": "app", "max_body_size": "100k"},
    ]))
    gh.backend = backend
    return gh


def post_head(target, *headers):
    lines = [f"POST {target} HTTP/1.1", f"Host: {EDGE_HOST}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_content_length_over_route_limit_is_413_without_100_continue(bodies):
    with H1(bodies.port) as c:
        c.send(post_head("/sink", "Content-Length: 200000", "Expect: 100-continue"))
        r = c.read_response()      # no body byte sent: the answer must come anyway
    assert r.status == 413, r
    assert r.interims == [], "sent 100 Continue for a body it was going to refuse"
    assert bodies.backend.requests == []


def test_content_length_over_route_limit_is_413_before_body(bodies):
    with H1(bodies.port) as c:
        c.send(post_head("/sink", "Content-Length: 102401"))
        r = c.read_response()
    assert r.status == 413
    assert bodies.backend.requests == []


def test_chunked_body_over_route_limit_is_413(bodies):
    with H1(bodies.port) as c:
        c.send(post_head("/sink", "Transfer-Encoding: chunked"))
        try:
            for _ in range(30):      # 30 x 8 KiB = 240 KiB > 100 KiB
                c.send(chunk(b"x" * 8192))
            c.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
    assert r.status == 413, r


SMUG = f"GET /echo?smuggled=1 HTTP/1.1\r\nHost: {EDGE_HOST}\r\n\r\n".encode()


def test_unread_body_after_413_is_never_parsed_as_a_request(bodies):
    """Refusing a body without reading it: its bytes must not become the next request."""
    n = 102401
    body = SMUG + b"x" * (n - len(SMUG))
    with H1(bodies.port) as c:
        c.send(post_head("/sink", f"Content-Length: {n}"))
        r = c.read_response()
        assert r.status == 413
        try:
            c.send(body + f"GET /echo?after=1 HTTP/1.1\r\nHost: {EDGE_HOST}\r\n\r\n".encode())
            while True:                       # whatever follows is not a response to SMUG
                r2 = c.read_response()
                assert r2.json()["target"] == "/echo?after=1", r2
        except (EOFError, BrokenPipeError, ConnectionResetError):
            pass
    assert not any("smuggled" in t for _, _, t in bodies.backend.requests)


def test_chunked_rest_after_413_is_never_parsed_as_a_request(bodies):
    with H1(bodies.port) as c:
        c.send(post_head("/sink", "Transfer-Encoding: chunked"))
        try:
            for _ in range(14):
                c.send(chunk(b"x" * 8192))
            c.send(chunk(SMUG) + b"0\r\n\r\n" + SMUG)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
        assert r.status == 413
        try:
            while True:
                r2 = c.read_response()
                assert "smuggled" not in r2.json()["target"], r2
        except (EOFError, ValueError):
            pass
    assert not any("smuggled" in t for _, _, t in bodies.backend.requests)


def test_body_at_route_limit_is_accepted(bodies):
    with H1(bodies.port) as c:
        r = c.request("POST", "/sink", body=b"x" * 102400, host=EDGE_HOST)
        assert r.status == 200 and r.json()["bytes"] == 102400
        c.send(post_head("/sink", "Transfer-Encoding: chunked") +
               chunk(b"y" * 51200) + chunk(b"y" * 51200) + b"0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.json()["bytes"] == 102400


def test_route_limit_applies_to_its_route_only(bodies):
    with H1(bodies.port) as c:
        r = c.request("POST", "/echo", body=b"x" * 300000, host=EDGE_HOST)
    assert r.status == 200 and r.json()["body_len"] == 300000


def test_expect_continue_under_route_limit_gets_100(bodies):
    with H1(bodies.port) as c:
        c.send(post_head("/sink", "Content-Length: 1000", "Expect: 100-continue"))
        _, status, _, _ = c.read_head()
        assert status == 100
        c.send(b"z" * 1000)
        r = c.read_response()
    assert r.status == 200 and r.json()["bytes"] == 1000


# ---- connections per client ----------------------------------------------------------------------

def test_max_connections_per_client(backend, gatehouse):
    gh = gatehouse(edge_config(backend, limits={"max_connections_per_client": 2}))
    a, b = H1(gh.port), H1(gh.port)
    try:
        assert a.request("GET", "/echo", host=EDGE_HOST).status == 200
        assert b.request("GET", "/echo", host=EDGE_HOST).status == 200
        with H1(gh.port, timeout=3) as c:
            try:
                c.send(H1.build("GET", "/echo?third=1", host=EDGE_HOST))
                r = c.read_response()
                assert r.status == 503, r
            except (EOFError, ConnectionResetError, BrokenPipeError, socket.timeout):
                pass   # closed without a word is acceptable too; a timeout is not
            else:
                assert c.closed_by_peer(), "third connection kept open"
        assert not any("third" in t for _, _, t in backend.requests)
        # the first two still work
        assert a.request("GET", "/echo?again=a", host=EDGE_HOST).status == 200
        assert b.request("GET", "/echo?again=b", host=EDGE_HOST).status == 200
        a.close()

        def new_one_works():
            try:
                with H1(gh.port, timeout=2) as d:
                    return d.request("GET", "/echo", host=EDGE_HOST).status == 200
            except (EOFError, OSError):
                return False
        assert wait_until(new_one_works, timeout=3), "slot not freed when a connection closed"
    finally:
        a.close()
        b.close()


def test_refused_and_failed_connections_do_not_leak_client_slots(backend, gatehouse):
    gh = gatehouse(edge_config(backend, limits={"max_connections_per_client": 2}))

    def two_work():
        try:
            with H1(gh.port, timeout=2) as x, H1(gh.port, timeout=2) as y:
                return (x.request("GET", "/echo", host=EDGE_HOST).status == 200 and
                        y.request("GET", "/echo", host=EDGE_HOST).status == 200)
        except (EOFError, OSError):
            return False

    for _ in range(6):        # connections closed by Gatehouse after a 400
        with H1(gh.port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n")
            try:
                c.read_response()
            except EOFError:
                pass
    for _ in range(3):        # connections closed by the client mid-head
        with H1(gh.port) as c:
            c.send(b"GET / HT")
    assert wait_until(two_work, timeout=3), "client slots leaked by closed connections"
    time.sleep(0.3)           # let Gatehouse see two_work's connections close
    a, b = H1(gh.port), H1(gh.port)
    try:
        assert a.request("GET", "/echo", host=EDGE_HOST).status == 200
        assert b.request("GET", "/echo", host=EDGE_HOST).status == 200
        for _ in range(6):    # refused thirds
            try:
                with H1(gh.port, timeout=2) as c:
                    c.send(H1.build("GET", "/echo", host=EDGE_HOST))
                    c.read_response()
            except (EOFError, OSError):
                pass
    finally:
        a.close()
        b.close()
    assert wait_until(two_work, timeout=3), "client slots leaked by refused connections"


def test_third_connection_is_refused_not_hung(backend, gatehouse):
    """The refusal is prompt: the third client does not wait for a timeout."""
    gh = gatehouse(edge_config(backend, limits={"max_connections_per_client": 2}))
    conns = [H1(gh.port) for _ in range(2)]
    try:
        for c in conns:
            assert c.request("GET", "/echo", host=EDGE_HOST).status == 200
        t = time.monotonic()
        with H1(gh.port, timeout=5) as c:
            c.send(H1.build("GET", "/echo", host=EDGE_HOST))
            try:
                status = c.read_response().status
            except EOFError:
                status = None
        assert status in (503, None)
        assert time.monotonic() - t < T(2)
    finally:
        for c in conns:
            c.close()


# ---- requests per connection ---------------------------------------------------------------------

def test_max_requests_per_connection(backend, gatehouse):
    gh = gatehouse(edge_config(backend, limits={"max_requests_per_connection": 3}))
    with H1(gh.port) as c:
        for i in range(2):
            r = c.request("GET", f"/echo?i={i}", host=EDGE_HOST)
            assert r.status == 200
            assert (r.header("connection") or "").lower() != "close", i
        r = c.request("GET", "/echo?i=2", host=EDGE_HOST)
        assert r.status == 200
        assert (r.header("connection") or "").lower() == "close"
        assert c.closed_by_peer()


def test_max_requests_per_connection_pipelined(backend, gatehouse):
    gh = gatehouse(edge_config(backend, limits={"max_requests_per_connection": 3}))
    with H1(gh.port) as c:
        c.send(b"".join(H1.build("GET", f"/echo?i={i}", host=EDGE_HOST) for i in range(5)))
        got = [c.read_response() for _ in range(3)]
        assert [r.status for r in got] == [200, 200, 200]
        assert (got[2].header("connection") or "").lower() == "close"
        assert c.closed_by_peer()
        assert c.buf == b""
    targets = [t for _, _, t in backend.requests]
    assert "/echo?i=3" not in targets and "/echo?i=4" not in targets


# ---- methods ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/echo", "/health", f"http://{EDGE_HOST}/echo"])
def test_trace_is_405_and_never_echoed(backend, gatehouse, target):
    gh = gatehouse(edge_config(backend, routes=[{"path": "/", "proxy": "app"},
                                                {"path": "/health", "respond": {"body": "ok"}}]))
    with H1(gh.port) as c:
        r = c.request("TRACE", target, [("Cookie", "session=SECRET-TRACE"),
                                         ("Authorization", "Bearer SECRET-TRACE")],
                      host=EDGE_HOST)
    assert r.status == 405, r
    assert b"SECRET-TRACE" not in r.body
    assert r.header("allow") is None or "TRACE" not in r.header("allow").upper()
    assert backend.requests == []


@pytest.mark.parametrize("target", [f"{EDGE_HOST}:443", f"{EDGE_HOST}:80"])
def test_connect_is_refused(backend, gatehouse, target):
    gh = gatehouse(edge_config(backend))
    with H1(gh.port) as c:
        c.send(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n")
        r = c.read_response()
    assert r.status in (405, 501), r
    assert backend.requests == []
