"""Documented limits beyond request parsing (docs/configuration.md): send timeouts, read
timeout mid-body, connections per worker, keep-alive off."""

import socket
import time

import pytest

from conftest import BIG, MiB, H1, T, proxy_config
from backend import MAX_SLICE, pattern


def test_client_send_timeout_closes_a_client_that_reads_nothing(backend, gatehouse):
    gh = gatehouse(proxy_config(backend, limits={"send_timeout": "1s"}))
    with H1(gh.port, timeout=30) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(H1.build("GET", f"/bytes?n={BIG}"))
        # Gatehouse gives up on us, and so on the upstream exchange.
        st = backend.wait_for(lambda s: s.closed >= 1, timeout=8)
        assert st.closed >= 1, "the upstream connection of a stuck client was never released"
        got = 0
        while True:
            try:
                d = c.sock.recv(MAX_SLICE)
            except ConnectionResetError:
                break
            if not d:
                break
            got += len(d)
        assert got < BIG


def test_read_timeout_mid_body_closes_the_client(backend, gatehouse):
    gh = gatehouse(proxy_config(backend, upstream={"read_timeout": "1s"}))
    t = time.monotonic()
    with H1(gh.port, timeout=8) as c:
        r = c.request("GET", "/bytes?n=1000&pause_at=100&pause_ms=6000")
        assert r.status == 200 and not r.complete and len(r.body) == 100
    assert 0.8 <= time.monotonic() - t <= T(4)


def test_upstream_send_timeout_fails_the_request(backend, gatehouse):
    gh = gatehouse(proxy_config(backend, upstream={"send_timeout": "1s"}))
    n = 256 * MiB
    t = time.monotonic()
    with H1(gh.port, timeout=8) as c:
        c.send(H1.build("POST", "/sink?hash=0&wait=8000", [("Content-Length", str(n))]))
        sent, failed = 0, False
        try:
            while sent < n:
                c.sock.sendall(pattern(sent, MAX_SLICE))
                sent += MAX_SLICE
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            failed = True
        try:
            r = c.read_response()
            failed = failed or r.status >= 500
        except (EOFError, ConnectionResetError, socket.timeout):
            failed = True
    assert failed
    assert time.monotonic() - t < 6, "the request waited for the upstream instead of failing"


def test_max_connections_per_worker_closes_idle_first(gatehouse, backend):
    """At the limit, the oldest connection idle between requests is closed to make room, so a
    new client is served at once instead of waiting in the backlog."""
    gh = gatehouse(proxy_config(backend, limits={"max_connections_per_worker": 2}))
    first, second = H1(gh.port), H1(gh.port)
    assert first.request("GET", "/echo").status == 200
    assert second.request("GET", "/echo").status == 200
    with H1(gh.port, timeout=T(3)) as third:
        r = third.request("GET", "/echo?third=1")
        assert r.status == 200 and r.json()["target"] == "/echo?third=1"
    first.sock.settimeout(T(3))
    assert first.sock.recv(1) == b"", "the oldest idle connection was not closed"
    assert second.request("GET", "/echo").status == 200
    first.close()
    second.close()


def test_max_connections_per_worker_waits_when_none_idle(gatehouse, backend):
    gh = gatehouse(proxy_config(backend, limits={"max_connections_per_worker": 1}))
    busy = H1(gh.port)
    busy.send(H1.build("GET", "/delay?ms=1000"))
    time.sleep(0.2)  # the request is in flight: the connection is not idle
    with H1(gh.port, timeout=5) as other:   # connects (backlog) but waits
        other.send(H1.build("GET", "/echo?other=1"))
        other.sock.settimeout(0.4)
        with pytest.raises(socket.timeout):
            other.sock.recv(1)
        assert busy.read_response().status == 200
        busy.close()
        other.sock.settimeout(T(3))
        r = other.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?other=1"


def test_keepalive_timeout_0_disables_client_keepalive(backend, gatehouse):
    gh = gatehouse(proxy_config(backend, limits={"keepalive_timeout": 0}))
    with H1(gh.port) as c:
        r = c.request("GET", "/echo")
        assert r.status == 200 and (r.header("connection") or "").lower() == "close"
        assert c.closed_by_peer()
