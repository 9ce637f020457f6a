"""The test backend itself, without Gatehouse: if these fail, nothing else can be trusted."""

import hashlib
import time

from backend import pattern_bytes, PatternChecker
from conftest import H1, curl, get


def test_echo_reports_request_as_received(backend):
    r = get(backend.port, "/echo?a=1", host="Example.COM", method="POST", body=b"hello",
            headers=[("X-B", "2"), ("x-a", " 1 ")])
    assert r.status == 200
    e = r.json()
    assert (e["method"], e["target"], e["version"]) == ("POST", "/echo?a=1", "HTTP/1.1")
    assert e["headers"] == [["Host", "Example.COM"], ["X-B", "2"], ["x-a", "1"],
                            ["Content-Length", "5"]]
    assert e["body_len"] == 5 and e["body_sha256"] == hashlib.sha256(b"hello").hexdigest()


def test_keepalive_and_connection_ids(backend):
    with H1(backend.port) as c:
        a = c.request("GET", "/echo").json()
        b = c.request("GET", "/echo").json()
    assert a["conn_id"] == b["conn_id"] and b["conn_request"] == 2
    assert backend.connections == 1


def test_bytes_content_length_and_chunked(backend):
    for q in ("n=300000", "n=300000&chunked=1&chunk=7777"):
        r = get(backend.port, "/bytes?" + q)
        assert r.status == 200 and r.body == pattern_bytes(300000)
    r = get(backend.port, "/bytes?n=10&chunked=1")
    assert r.header("transfer-encoding") == "chunked"


def test_pattern_checker_detects_corruption():
    c = PatternChecker()
    data = bytearray(pattern_bytes(200000))
    c.feed(data[:100000])
    assert c.ok
    data[150000] ^= 1
    c.feed(data[100000:])
    assert not c.ok


def test_sink_chunked_and_length(backend):
    body = pattern_bytes(100000)
    r = get(backend.port, "/sink", method="POST", body=body)
    assert r.json()["bytes"] == 100000 and r.json()["pattern_ok"]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096])
                       for i in range(0, len(body), 4096)) + b"0\r\nX-T: 1\r\n\r\n"
    with H1(backend.port) as c:
        r = c.request("POST", "/sink", [("Transfer-Encoding", "chunked")], chunked)
    j = r.json()
    assert j["bytes"] == 100000 and j["chunked"] and j["trailers"] == [["X-T", "1"]]
    assert j["sha256"] == hashlib.sha256(body).hexdigest()


def test_misbehaviours(backend):
    with H1(backend.port) as c:
        c.send(H1.build("GET", "/close-before-response"))
        assert c.closed_by_peer()
    r = get(backend.port, "/close-mid-body")
    assert r.header("content-length") == "1000" and len(r.body) == 100 and not r.complete
    r = get(backend.port, "/close-mid-body?chunked=1")
    assert len(r.body) == 100 and not r.complete
    r = get(backend.port, "/interim")
    assert r.interims[0][0] == 103 and r.status == 200 and r.body == b"final\n"
    r = get(backend.port, "/until-close?n=5000")
    assert r.complete and r.body == pattern_bytes(5000)
    r = get(backend.port, "/no-keepalive")
    assert r.header("connection") == "close"
    r = get(backend.port, "/status/204")
    assert r.status == 204 and r.body == b""
    r = get(backend.port, "/echo?set=X-One:1&set=X-Two:2")
    assert r.header("x-one") == "1" and r.header("x-two") == "2"
    t = time.monotonic()
    assert get(backend.port, "/delay?ms=300").status == 200
    assert time.monotonic() - t >= 0.3


def test_close_after_and_drop_next(backend):
    with H1(backend.port) as c:
        assert c.request("GET", "/echo?close_after=50").status == 200
        assert c.closed_by_peer(timeout=2)
    with H1(backend.port) as c:
        assert c.request("GET", "/echo?drop_next=1").status == 200
        c.send(H1.build("GET", "/echo"))
        assert c.closed_by_peer(timeout=2)
    assert backend.wait_for(lambda st: st.dropped == 1).dropped == 1


def test_curl_download_speed(backend):
    """The backend must not be the bottleneck of the 1 GiB tests (a loose bound: shared CPUs)."""
    t = time.monotonic()
    p = curl("-o", "/dev/null", "-w", "%{size_download}", f"http://127.0.0.1:{backend.port}/bytes?n={256 << 20}")
    assert p.stdout == str(256 << 20).encode()
    assert time.monotonic() - t < 10


def test_bytes_pause(backend):
    t = time.monotonic()
    r = get(backend.port, "/bytes?n=1000&pause_at=100&pause_ms=300&chunked=1")
    assert r.body == pattern_bytes(1000) and time.monotonic() - t >= 0.3
