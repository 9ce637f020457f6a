"""Keep-alive connection pool to upstreams, and the pooled-connection race."""

import hashlib
import subprocess

from backend import pattern_bytes
from conftest import H1, T, get, proxy_config


def test_sequential_requests_reuse_one_upstream_connection(backend, gatehouse):
    gh = gatehouse(proxy_config(backend))
    with H1(gh.port) as c:
        for i in range(50):
            assert c.request("GET", f"/echo?i={i}").status == 200
    assert backend.connections <= 2


def test_separate_client_connections_share_the_pool(backend, gatehouse):
    gh = gatehouse(proxy_config(backend))
    for i in range(20):
        assert get(gh.port, f"/echo?i={i}").status == 200
    assert backend.connections <= 2


def test_parallel_clients_use_far_fewer_connections_than_requests(backend, gatehouse):
    gh = gatehouse(proxy_config(backend, workers=2))
    args = [a for i in range(25) for a in ("-o", "/dev/null", gh.url(f"/echo?i={i}"))]
    procs = [subprocess.Popen(["curl", "-sS", "-w", "%{http_code}\n", *args],
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    codes = []
    for p in procs:
        out, _ = p.communicate(timeout=T(30))
        codes += out.split()
    assert codes == ["200"] * 100
    assert backend.connections <= 16, f"{backend.connections} upstream connections for 100 requests"


def test_keepalive_0_disables_the_pool(backend, gatehouse):
    gh = gatehouse(proxy_config(backend, upstream={"keepalive": 0}))
    with H1(gh.port) as c:
        ids = [c.request("GET", "/echo").json()["conn_id"] for _ in range(5)]
    assert len(set(ids)) == 5


def test_keepalive_requests_caps_reuse(backend, gatehouse):
    gh = gatehouse(proxy_config(backend, upstream={"keepalive_requests": 3}))
    with H1(gh.port) as c:
        seen = [c.request("GET", "/echo").json() for _ in range(9)]
    assert max(e["conn_request"] for e in seen) == 3
    assert len({e["conn_id"] for e in seen}) == 3


def test_idle_pooled_connection_closed_after_keepalive_timeout(backend, gatehouse):
    gh = gatehouse(proxy_config(backend, upstream={"keepalive_timeout": "1s"}))
    assert get(gh.port, "/echo").status == 200
    st = backend.wait_for(lambda s: s.closed >= 1, timeout=4)
    assert st.closed == 1, "the idle upstream connection was kept past keepalive_timeout"


def test_connection_close_from_upstream_is_not_reused(backend, gatehouse):
    gh = gatehouse(proxy_config(backend))
    with H1(gh.port, timeout=3) as c:
        assert c.request("GET", "/no-keepalive").body == b"bye\n"
        assert c.request("GET", "/until-close?n=10").status == 200
        e = c.request("GET", "/echo").json()
    assert e["conn_request"] == 1 and backend.connections == 3


def test_race_closed_pooled_connection_is_retried(backend, gatehouse):
    """The upstream reads the request on the reused connection, then closes without a byte."""
    gh = gatehouse(proxy_config(backend))
    with H1(gh.port) as c:
        for i in range(5):
            assert c.request("GET", "/echo?drop_next=1").status == 200
            r = c.request("GET", f"/echo?after={i}")
            assert r.status == 200, r
            assert r.json()["target"] == f"/echo?after={i}"
    assert backend.dropped == 5


def test_race_retry_with_small_body(backend, gatehouse):
    """An idempotent request with a small, fully received body is replayed on a fresh
    connection, byte for byte."""
    gh = gatehouse(proxy_config(backend))
    data = pattern_bytes(1000)
    with H1(gh.port) as c:
        assert c.request("GET", "/echo?drop_next=1").status == 200
        r = c.request("PUT", "/echo", body=data)
    assert r.status == 200
    assert r.json()["body_sha256"] == hashlib.sha256(data).hexdigest()
    assert backend.dropped == 1


def test_race_post_is_not_replayed(backend, gatehouse):
    """A POST the upstream read and then dropped may have been acted on: it is answered 502,
    never sent twice."""
    gh = gatehouse(proxy_config(backend))
    with H1(gh.port) as c:
        assert c.request("GET", "/echo?drop_next=1").status == 200
        r = c.request("POST", "/echo?charge=1", body=b"pay 10")
    assert r.status == 502
    assert backend.dropped == 1
    charged = [t for _, m, t in backend.requests if t == "/echo?charge=1"]
    assert len(charged) == 1


def test_race_upstream_closes_idle_connection(backend, gatehouse):
    """The upstream closes an idle pooled connection right after its response."""
    gh = gatehouse(proxy_config(backend))
    for i in range(5):
        assert get(gh.port, "/echo?close_after=20").status == 200
        backend.wait_for(lambda s: s.closed > i, timeout=3)
        r = get(gh.port, f"/echo?i={i}")
        assert r.status == 200, r
    assert backend.closed >= 5
