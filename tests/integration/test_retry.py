"""Retries on another server and the error that ends them: a connection reset before any
response byte is retried for idempotent methods, and for any method when nothing was sent; a
body is replayed only when it was fully buffered; every server down is 503, not the 502 of
exhausted retries; the retry budget caps retries when a server keeps failing.

The misbehaving server is a real backend switched by its control port (backend.py
`/misbehave?reset=1`): it reads each request whole, then closes with a TCP reset."""
import hashlib
import json
import time

import pytest

from conftest import H1, curl, get, refused_port, wait_until
from test_balance import balance_config, served_by

NO_EJECT = {"passive_health": {"failures": 0}}  # keep the bad server in rotation


def reset_everything(backend):
    """From now on `backend` reads every request, then resets the connection."""
    with H1(backend.control_port) as c:
        assert c.request("GET", "/misbehave?reset=1").status == 200


def targets(backend, method=None):
    return [t for _, m, t in backend.stats().requests if method is None or m == method]


def test_reset_before_any_response_byte_is_retried_for_get(gatehouse, backend_factory):
    bad, good = backend_factory(), backend_factory()
    reset_everything(bad)
    gh = gatehouse(balance_config([bad.address, good.address], NO_EJECT, workers=1))
    for i in range(6):
        assert served_by(get(gh.port, f"/echo?n={i}")) == good.port
    reset = targets(bad)
    assert reset, "no request went to the resetting server: the test proves nothing"
    assert sorted(targets(good)) == sorted(f"/echo?n={i}" for i in range(6))
    assert set(reset) <= set(targets(good))           # each reset one was replayed there
    assert "retrying on another server" in gh.stderr_text()


def test_post_is_retried_when_nothing_was_sent(gatehouse, backend_factory):
    """Connect refused on the first server: the POST never left us, so another server takes
    it, with its body intact."""
    good = backend_factory()
    gh = gatehouse(balance_config([f"127.0.0.1:{refused_port()}", good.address], NO_EJECT,
                                  workers=1))
    body = b"order=42&" * 50
    for i in range(4):
        r = get(gh.port, f"/echo?n={i}", method="POST", body=body)
        assert served_by(r) == good.port
        assert r.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert len(targets(good, "POST")) == 4
    assert "connect failed" in gh.stderr_text()       # the refused server was tried


def test_chunked_post_is_retried_when_nothing_was_sent(gatehouse, backend_factory):
    """A chunked body cannot be rewound once decoding began, but a connect that failed read
    none of it: the POST goes to another server with every chunk."""
    good = backend_factory()
    gh = gatehouse(balance_config([f"127.0.0.1:{refused_port()}", good.address], NO_EJECT,
                                  workers=1))
    chunks = [b"order=42&" * 20, b"x" * 300, b"end"]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    for i in range(4):
        with H1(gh.port) as c:
            c.send(H1.build("POST", f"/echo?n={i}", [("Transfer-Encoding", "chunked")]) + body)
            r = c.read_response("POST")
        assert r.status == 200, r
        assert served_by(r) == good.port
        assert r.json()["body_sha256"] == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert len(targets(good, "POST")) == 4
    assert "connect failed" in gh.stderr_text()       # the refused server was tried


def test_post_that_reached_a_resetting_server_is_502_and_not_replayed(gatehouse,
                                                                      backend_factory):
    bad, good = backend_factory(), backend_factory()
    reset_everything(bad)
    # bad first: with equal weights smooth round robin starts on the first server.
    gh = gatehouse(balance_config([bad.address, good.address], NO_EJECT, workers=1))
    r = get(gh.port, "/echo", method="POST", body=b"pay=1")
    assert r.status == 502, r
    assert targets(bad, "POST") == ["/echo"]
    assert targets(good) == []


def test_put_body_is_replayed_when_fully_buffered(gatehouse, backend_factory):
    """An idempotent request with a small body, reset after the server read it all: the body
    is still in our buffer, so the next server gets it byte for byte."""
    bad, good = backend_factory(), backend_factory()
    reset_everything(bad)
    gh = gatehouse(balance_config([bad.address, good.address], NO_EJECT, workers=1))
    body = bytes(range(256)) * 12  # 3 KiB
    for i in range(4):
        r = get(gh.port, f"/echo?n={i}", method="PUT", body=body)
        assert served_by(r) == good.port
        got = r.json()
        assert (got["body_len"], got["body_sha256"]) == (len(body),
                                                         hashlib.sha256(body).hexdigest())
    assert targets(bad, "PUT"), "no PUT went to the resetting server: the test proves nothing"
    assert len(targets(good, "PUT")) == 4


def h2_put(port, path, body):
    """PUT over h2c with prior knowledge (curl): returns (status, parsed JSON or None)."""
    p = curl("--http2-prior-knowledge", "-X", "PUT", "--data-binary", "@-", "-o", "-",
             "-w", "\n%{http_code} %{http_version}", f"http://127.0.0.1:{port}{path}",
             input_bytes=body)
    out, _, last = p.stdout.rpartition(b"\n")
    code, version = last.decode().split()
    assert version == "2", p
    return int(code), (json.loads(out) if code == "200" else None)


@pytest.mark.parametrize("size", [3 << 10, 40 << 10])
def test_h2_put_body_is_replayed_within_the_replay_limit(gatehouse, backend_factory, size):
    """The same over HTTP/2: a body up to 64 KiB is kept until the exchange ends, so the next
    server gets it byte for byte, even when it came in several DATA frames."""
    bad, good = backend_factory(), backend_factory()
    reset_everything(bad)
    gh = gatehouse(balance_config([bad.address, good.address], NO_EJECT, workers=1,
                                  listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    body = bytes(range(256)) * (size // 256)
    for i in range(4):
        status, got = h2_put(gh.port, f"/echo?n={i}", body)
        assert status == 200
        assert got["port"] == good.port
        assert (got["body_len"], got["body_sha256"]) == (len(body),
                                                         hashlib.sha256(body).hexdigest())
    assert targets(bad, "PUT"), "no PUT went to the resetting server: the test proves nothing"
    assert len(targets(good, "PUT")) == 4


def h2_put_flow_controlled(client, path, body):
    """PUT `body` on the H2Client's connection in frames the flow-control windows allow,
    waiting for WINDOW_UPDATEs when they are spent; returns (status, parsed JSON)."""
    sid = client.conn.get_next_available_stream_id()
    client.conn.send_headers(sid, [(b":method", b"PUT"), (b":scheme", b"http"),
                                   (b":authority", b"test"), (b":path", path.encode()),
                                   (b"content-length", str(len(body)).encode())])
    sent = 0
    while sent < len(body):
        room = min(client.conn.local_flow_control_window(sid),
                   client.conn.max_outbound_frame_size, len(body) - sent)
        if room <= 0:
            client.flush()
            before = len(client.events)
            assert client.pump(lambda evs: len(evs) > before, timeout=5), \
                f"no flow-control credit after {sent} bytes of {path}"
            continue
        client.conn.send_data(sid, body[sent:sent + room], end_stream=sent + room == len(body))
        sent += room
    client.flush()
    status, _, data = client.response(sid)
    return status, (json.loads(data) if status == 200 else None)


def test_h2_replays_keep_flow_control_exact(gatehouse, backend_factory):
    """Replays and flow control on one connection: 40 PUTs of 40 KiB, each sent to the
    resetting server and replayed on the good one, move 1.6 MB through a 1 MiB connection
    window. The connection neither stalls for credit nor breaks, and every replay is whole."""
    from test_h2_server import H2Client
    bad, good = backend_factory(), backend_factory()
    reset_everything(bad)
    up = dict(NO_EJECT, retry_budget="100%")  # every one of them may be retried
    gh = gatehouse(balance_config([bad.address, good.address], up, workers=1,
                                  listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    body = bytes(range(256)) * 160  # 40 KiB
    client = H2Client(gh.port)
    try:
        for i in range(40):
            status, got = h2_put_flow_controlled(client, f"/echo?n={i}", body)
            assert status == 200, (i, status)
            assert got["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert not client.eof
    finally:
        client.close()
    assert len(targets(bad, "PUT")) >= 10              # many of them were replays


def test_h2_put_body_over_the_replay_limit_is_not_replayed(gatehouse, backend_factory):
    bad, good = backend_factory(), backend_factory()
    reset_everything(bad)
    gh = gatehouse(balance_config([bad.address, good.address], NO_EJECT, workers=1,
                                  listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    status, _ = h2_put(gh.port, "/echo", b"z" * (1 << 20))
    assert status == 502
    assert targets(bad, "PUT") == ["/echo"]
    assert targets(good) == []


def test_put_body_larger_than_the_buffer_is_not_replayed(gatehouse, backend_factory):
    """A body that streamed through (bigger than one buffer) is gone once sent: a reset after
    it is 502, and the other server never sees a truncated replay."""
    bad, good = backend_factory(), backend_factory()
    reset_everything(bad)
    gh = gatehouse(balance_config([bad.address, good.address], NO_EJECT, workers=1))
    r = get(gh.port, "/echo", method="PUT", body=b"z" * (1 << 20))
    assert r.status == 502, r
    assert targets(bad, "PUT") == ["/echo"]
    assert targets(good) == []


def admin_status(gh):
    with H1(gh.ports[-1]) as c:
        r = c.request("GET", "/status")
    assert r.status == 200, r
    return r.json()


def states(gh):
    return {s["address"]: s["state"] for s in admin_status(gh)["upstreams"][0]["servers"]}


def test_every_server_down_is_503_not_502(gatehouse, backend_factory):
    """Active checks take both servers down: nothing is tried (no connection reaches them)
    and the answer is 503, where exhausted retries would be 502. One coming back serves."""
    bs = [backend_factory() for _ in range(2)]
    for b in bs:
        assert get(b.port, "/health/500").status == 500
    hc = {"path": "/health", "interval": "100ms", "timeout": "1s", "rise": 1, "fall": 1}
    cfg = balance_config([b.address for b in bs], {"health_check": hc}, workers=1)
    cfg["admin"] = {"address": "127.0.0.1:0", "hosts": ["test"]}  # the Host get() sends
    gh = gatehouse(cfg)
    assert wait_until(lambda: set(states(gh).values()) == {"down"}, timeout=5), states(gh)
    for _ in range(3):
        r = get(gh.port, "/echo")
        assert r.status == 503, r
    assert not [t for b in bs for t in targets(b) if t.startswith("/echo")]
    assert "no server is up" in gh.stderr_text()
    assert get(bs[1].port, "/health/200").status == 200
    assert wait_until(lambda: states(gh)[bs[1].address] == "up", timeout=5), states(gh)
    assert served_by(get(gh.port, "/echo")) == bs[1].port


def test_retry_budget_caps_retries_when_a_server_keeps_failing(gatehouse, backend_factory):
    """retry_budget 0% leaves only the floor of 10 retries per 10 s: of 40 requests, about
    half start on a refusing server; the first 10 of those are retried (200), the rest are 502
    at once, so a failing server cannot double the traffic of the others."""
    good = backend_factory()
    gh = gatehouse(balance_config([f"127.0.0.1:{refused_port()}", good.address],
                                  dict(NO_EJECT, retry_budget="0%"), workers=1))
    mark = gh.err_mark()
    t0 = time.monotonic()
    statuses = [get(gh.port, f"/echo?n={i}").status for i in range(40)]
    took = time.monotonic() - t0
    if took >= 9:
        pytest.skip(f"40 requests took {took:.1f}s: the 10 s budget window may have turned")
    retried = [l for l in gh.err_lines(mark) if "retrying on another server" in l]
    assert len(retried) == 10, len(retried)
    assert set(statuses) == {200, 502}, statuses
    assert statuses.count(200) == len(targets(good)) >= 20
    assert statuses.count(502) >= 5, statuses
