"""Client-side keep-alive and pipelining."""

import pytest

from conftest import H1, proxy_config


@pytest.fixture
def gh(backend, gatehouse):
    return gatehouse(proxy_config(backend, routes=[
        {"path": "/", "proxy": "app"},
        {"path": "/health", "respond": {"body": "ok\n"}},
    ], limits={"max_requests_per_connection": 5}))


def test_http11_keeps_the_connection(gh):
    with H1(gh.port) as c:
        for i in range(3):
            r = c.request("GET", f"/echo?i={i}")
            assert r.status == 200 and r.json()["target"] == f"/echo?i={i}"
        assert c.request("GET", "/health").body == b"ok\n"


def test_http11_connection_close_is_honoured(gh):
    with H1(gh.port) as c:
        r = c.request("GET", "/echo", [("Connection", "close")])
        assert r.status == 200 and r.header("connection").lower() == "close"
        assert c.closed_by_peer()


def test_http10_closes_by_default(gh):
    with H1(gh.port) as c:
        r = c.request("GET", "/health", version="HTTP/1.0")
        assert r.status == 200
        assert c.closed_by_peer()


def test_http10_keep_alive_on_request(gh):
    with H1(gh.port) as c:
        r = c.request("GET", "/echo", [("Connection", "keep-alive")], version="HTTP/1.0")
        assert r.status == 200 and (r.header("connection") or "").lower() == "keep-alive"
        r = c.request("GET", "/health", [("Connection", "keep-alive")], version="HTTP/1.0")
        assert r.body == b"ok\n"


def test_pipelined_responses_come_in_order(gh):
    with H1(gh.port) as c:
        c.send(H1.build("GET", "/delay?ms=300") + H1.build("GET", "/health") +
               H1.build("POST", "/echo?n=3", body=b"abc") + H1.build("GET", "/bytes?n=10"))
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
        r4 = c.read_response()
    assert r1.json()["target"] == "/delay?ms=300"
    assert r2.body == b"ok\n"
    assert r3.json()["target"] == "/echo?n=3" and r3.json()["body_len"] == 3
    assert len(r4.body) == 10


def test_max_requests_per_connection(gh):
    with H1(gh.port) as c:
        for i in range(4):
            assert c.request("GET", "/health").status == 200
        r = c.request("GET", "/health")
        assert r.status == 200 and r.header("connection").lower() == "close"
        assert c.closed_by_peer()


def test_requests_session_reuses_its_connection(gh, backend):
    requests = pytest.importorskip("requests")
    with requests.Session() as s:
        seen = [s.get(gh.url(f"/echo?i={i}"), timeout=10).json() for i in range(10)]
        assert s.get(gh.url("/health"), timeout=10).text == "ok\n"
    assert [e["target"] for e in seen] == [f"/echo?i={i}" for i in range(10)]
    assert backend.connections <= 2


@pytest.mark.parametrize("cork", [False, True], ids=["fin-later", "fin-with-request"])
def test_client_half_close_gets_its_response_then_the_close(gh, cork):
    """A client that sends its request and then its FIN (e.g. `printf ... | nc -N`) still gets
    the response, and the connection is closed after it rather than kept until
    keepalive_timeout. With cork, the FIN travels in the request's own segment."""
    import socket
    with H1(gh.port) as c:
        if cork:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        c.send(H1.build("GET", "/health"))
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
        assert (r.status, r.body) == (200, b"ok\n")
        assert c.closed_by_peer(timeout=2), "half-closed client connection kept open"
