"""HTTP/2 hardening (issue 11): what an attacker or a conformance suite does to the HTTP/2
codec, with frames built by hand (RawH2 from test_h2_frames) so that no client library hides or
fixes the bytes. Each test names the attack, the exact answer expected (status, RST_STREAM or
GOAWAY code) and what must not reach the upstream."""
import json
import socket
import struct
import time

import pytest

from conftest import H1, T, proxy_config, respond_config, wait_until
from test_h2_frames import (ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM,
                            GOAWAY, HEADERS, PRIORITY, PRIO, PROTOCOL_ERROR, REFUSED_STREAM,
                            RST_STREAM, SETTINGS, STREAM_CLOSED, WINDOW_UPDATE, Bystander, RawH2,
                            frame, req_headers, settings)

H2C = [{"address": "127.0.0.1:0", "h2c": True}]
FLOW_CONTROL_ERROR = 3
CANCEL = 8
INITIAL_WINDOW_SIZE = 0x4
MAX_CONCURRENT_STREAMS = 0x3


@pytest.fixture
def h2proxy(gatehouse, backend):
    """A Gatehouse of its own (h2c) proxying everything to a test backend."""
    return gatehouse(proxy_config(backend, listen=H2C)), backend


def connect_headers(protocol, path="/echo"):
    return [(":method", "CONNECT"), (":protocol", protocol), (":scheme", "http"),
            (":path", path), (":authority", "test"), ("sec-websocket-version", "13")]


# ---- item 3: h2c (or anything but WebSocket) through extended CONNECT ----------------------

@pytest.mark.parametrize("protocol", ["h2c", "H2C", "h2c/1", "echo", "websocketx", "webso"])
def test_extended_connect_other_than_websocket_is_400_and_reaches_no_upstream(h2proxy,
                                                                             protocol):
    gh, backend = h2proxy
    with RawH2(gh.port) as c:
        c.settled()
        c.headers(1, connect_headers(protocol, "/upgrade-echo"), end_stream=False)
        st, rst = c.wait_stream(1)
        assert st == 400 or rst, c.frames
        assert st != 200
        # the connection goes on
        c.request(3, "/echo?after")
        assert c.wait_stream(3) == (200, []), c.frames[-3:]
    assert [r[2] for r in backend.requests] == ["/echo?after"]


@pytest.mark.parametrize("protocol", ["websocket", "WebSocket"])
def test_extended_connect_websocket_any_case_still_tunnels(h2proxy, protocol):
    gh, backend = h2proxy
    with RawH2(gh.port) as c:
        c.settled()
        c.headers(1, connect_headers(protocol, "/ws"), end_stream=False)
        c.pump(lambda: c.status(1) is not None or c.rst(1))
        assert c.status(1) == 200, c.frames
    assert [r[2] for r in backend.requests] == ["/ws"]


# ---- item 4: request trailers forging the fields Gatehouse owns ----------------------------

SECRET = ("X-Gatehouse-Secret", "the-real-secret")
FORGED_TRAILERS = [
    ("x-forwarded-for", "6.6.6.6"), ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "admin.internal"), ("x-forwarded-port", "1"),
    ("x-forwarded-prefix", "/admin"), ("forwarded", "for=6.6.6.6;proto=https"),
    ("x-real-ip", "6.6.6.6"), ("x-gatehouse-secret", "forged"), ("host", "admin.internal"),
    ("authorization", "Basic Zm9yZ2Vk"), ("cookie", "session=forged"),
    ("max-forwards", "0"), ("expect", "100-continue"), ("via", "1.1 forged"),
    ("trailer", "x-checksum"), ("content-type", "text/forged"),
]


@pytest.fixture
def trailer_proxy(gatehouse, backend):
    cfg = proxy_config(backend, listen=H2C,
                       upstream={"secret_header": {"name": SECRET[0], "value": SECRET[1]}})
    return gatehouse(cfg), backend


def test_h2_request_trailers_cannot_forge_owned_fields(trailer_proxy):
    gh, backend = trailer_proxy
    with RawH2(gh.port) as c:
        c.settled()
        c.headers(1, req_headers("/echo", method="POST", extra=[("te", "trailers")]),
                  end_stream=False)
        c.send(frame(DATA, 0, 1, b"hello trailers"))
        c.headers(1, FORGED_TRAILERS + [("x-checksum", "abc123")], end_stream=True)
        assert c.wait_stream(1) == (200, []), c.frames[-3:]
        seen = json.loads(c.data[1])
    trailers = [(k.lower(), v) for k, v in seen["trailers"]]
    assert trailers == [("x-checksum", "abc123")], trailers
    # the head still carries our own values, once
    heads = [(k.lower(), v) for k, v in seen["headers"]]
    assert heads.count((SECRET[0].lower(), SECRET[1])) == 1, heads
    assert ("x-forwarded-for", "127.0.0.1") in heads, heads
    assert seen["body_len"] == len(b"hello trailers")


def test_h2_content_length_in_request_trailers_is_a_stream_error(trailer_proxy):
    gh, backend = trailer_proxy
    with RawH2(gh.port) as c:
        c.settled()
        c.headers(1, req_headers("/echo", method="POST"), end_stream=False)
        c.send(frame(DATA, 0, 1, b"hello"))
        c.headers(1, [("content-length", "0")], end_stream=True)
        assert c.wait_stream(1) == (None, [PROTOCOL_ERROR]), c.frames[-3:]


def test_h1_chunked_request_trailers_never_reach_the_upstream(trailer_proxy):
    gh, _ = trailer_proxy
    trailer_lines = "".join(f"{k}: {v}\r\n" for k, v in FORGED_TRAILERS +
                            [("content-length", "0"), ("x-checksum", "1")])
    raw = ("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n0\r\n" + trailer_lines + "\r\n").encode()
    with H1(gh.port) as c:
        c.send(raw)
        r = c.read_response()
    assert r.status == 200, r
    seen = r.json()
    assert seen["trailers"] == [], seen["trailers"]
    heads = [(k.lower(), v) for k, v in seen["headers"]]
    assert heads.count((SECRET[0].lower(), SECRET[1])) == 1, heads
    assert not any(v in ("6.6.6.6", "forged", "admin.internal") for _, v in heads), heads


# ---- item 15: h2spec cases (frames on closed streams, PRIORITY validation) ------------------
# Each is the h2spec case as raw frames, with the exact error code h2spec expects.

def u32(v):
    return struct.pack(">I", v)


def priority(sid, dep, weight=255):
    return frame(PRIORITY, 0, sid, struct.pack(">IB", dep, weight))


@pytest.fixture
def h2(gatehouse, backend):
    return gatehouse(proxy_config(backend, listen=H2C)).port


def expect_stream_error(c, sid, code):
    st, rst = c.wait_stream(sid)
    assert rst and rst[-1] == code, c.frames[-4:]
    assert not c.goaways(), c.frames[-4:]
    c.request(sid + 2, "/echo?after")   # the connection goes on
    assert c.wait_stream(sid + 2) == (200, []), c.frames[-3:]


def expect_conn_error(c, code):
    _, got = c.wait_goaway()
    assert got == code, c.frames[-4:]
    assert c.eof


def test_h2spec_5_1_8_data_after_client_rst_stream_is_stream_closed(h2):
    with RawH2(h2) as c:
        c.headers(1, req_headers("/echo"), end_stream=False)
        c.send(frame(RST_STREAM, 0, 1, u32(CANCEL)))
        c.send(frame(DATA, END_STREAM, 1, b"test"))
        expect_stream_error(c, 1, STREAM_CLOSED)


def test_h2spec_5_1_9_headers_after_client_rst_stream_is_stream_closed(h2):
    with RawH2(h2) as c:
        c.headers(1, req_headers("/echo"), end_stream=False)
        c.send(frame(RST_STREAM, 0, 1, u32(CANCEL)))
        c.headers(1, req_headers("/echo"), end_stream=True)
        expect_stream_error(c, 1, STREAM_CLOSED)


def test_h2spec_5_1_11_data_after_end_stream_and_close_is_connection_stream_closed(h2):
    with RawH2(h2) as c:
        c.request(1, "/echo")
        assert c.wait_stream(1) == (200, [])
        c.send(frame(DATA, END_STREAM, 1, b"test"))
        expect_conn_error(c, STREAM_CLOSED)


def test_h2spec_5_1_12_headers_after_end_stream_and_close_is_connection_stream_closed(h2):
    with RawH2(h2) as c:
        c.request(1, "/echo")
        assert c.wait_stream(1) == (200, [])
        c.request(1, "/echo")
        expect_conn_error(c, STREAM_CLOSED)


def test_h2spec_5_3_1_2_priority_depending_on_itself_is_protocol_error(h2):
    with RawH2(h2) as c:   # h2spec's case: an idle stream (no RST_STREAM possible there)
        c.send(priority(1, 1))
        expect_conn_error(c, PROTOCOL_ERROR)
    with RawH2(h2) as c:   # an open stream: a stream error
        c.headers(1, req_headers("/delay?ms=300"), end_stream=False)
        c.send(priority(1, 1))
        expect_stream_error(c, 1, PROTOCOL_ERROR)


def test_h2spec_6_3_1_priority_on_stream_0_is_connection_protocol_error(h2):
    with RawH2(h2) as c:
        c.send(priority(0, 0))
        expect_conn_error(c, PROTOCOL_ERROR)


def test_frames_crossing_our_reset_are_ignored(gatehouse):
    """The other side of 5.1: a stream *we* ended (a response complete before the body) may still
    get the client's DATA that crossed our RST_STREAM: no error for that."""
    gh = gatehouse(respond_config([{"path": "/", "respond": {"body": "ok\n"}}], listen=H2C))
    with RawH2(gh.port) as c:
        c.headers(1, req_headers("/", method="POST",
                                 extra=[("content-length", "100000")]), end_stream=False)
        st, _ = c.wait_stream(1)
        assert st == 200
        c.send(frame(DATA, 0, 1, b"x" * 100))
        c.request(3, "/echo?after")
        assert c.wait_stream(3) == (200, []), c.frames[-3:]
        assert not c.goaways()


def test_priority_frames_in_moderation_are_fine(h2):
    with RawH2(h2) as c:
        c.send(priority(3, 0) + priority(5, 3) + priority(1, 0))
        c.request(1, "/echo")
        assert c.wait_stream(1) == (200, []), c.frames[-3:]
        assert not c.goaways()


# ---- item 6: MadeYouReset (CVE-2025-8671) and floods of frames that carry nothing ----------

def attack_requests(backend):
    return [r for r in backend.requests if "bystander" not in r[2]]


def flood(port, unit, count, batch=100):
    """Sends unit(i) for i in range(count) in batches; returns the connection's end."""
    with RawH2(port) as c:
        c.settled()
        for b in range(0, count, batch):
            c.send(b"".join(unit(i) for i in range(b, min(count, b + batch))))
            if c.eof:
                break
            c.pump(lambda: bool(c.goaways()), 0.001)
        c.pump(lambda: c.eof, 5)
        return c.goaways(), c.eof


def made_you_reset(c_enc, sid):
    """A request whose stream we must reset: a WINDOW_UPDATE overflowing its window."""
    return (frame(HEADERS, END_HEADERS, sid, c_enc.encode(req_headers(f"/echo?attack={sid}")))
            + frame(WINDOW_UPDATE, 0, sid, u32(0x7FFFFFFF)))


def test_made_you_reset_window_update_overflow_is_counted(h2proxy):
    import hpack
    gh, backend = h2proxy
    enc = hpack.Encoder()
    with Bystander(gh.port, "/echo?bystander") as by:
        goaways, eof = flood(gh.port, lambda i: made_you_reset(enc, 1 + 2 * i), 3000)
    assert goaways and goaways[-1][1] == ENHANCE_YOUR_CALM, goaways
    assert eof
    reached = attack_requests(backend)
    assert len(reached) <= 130, f"{len(reached)} of 3000 reset streams reached the upstream"
    # nor did they open upstream connections (the bystander's are pooled)
    assert backend.stats().connections <= 130, backend.stats()
    assert not by.failures, by.failures[:3]


def test_made_you_reset_paced_one_stream_at_a_time(h2proxy):
    """The attack as reported: one stream at a time, each reset before the next (base: 3000 of
    3000 streams dispatched, each opening an upstream connection, and no GOAWAY)."""
    import hpack
    gh, backend = h2proxy
    enc = hpack.Encoder()
    goaways, eof = flood(gh.port, lambda i: made_you_reset(enc, 1 + 2 * i), 3000, batch=1)
    assert goaways and goaways[-1][1] == ENHANCE_YOUR_CALM, goaways
    st = backend.stats()
    assert st.connections <= 130 and len(st.requests) <= 130, st


def test_made_you_reset_malformed_requests_are_counted(h2proxy):
    import hpack
    gh, backend = h2proxy
    enc = hpack.Encoder()
    bad = lambda i: frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, enc.encode(
        req_headers("/echo?attack", extra=[("connection", "close")])))
    goaways, eof = flood(gh.port, bad, 3000)
    assert goaways and goaways[-1][1] == ENHANCE_YOUR_CALM, goaways
    assert attack_requests(backend) == []


def test_frames_on_client_reset_streams_are_counted(h2):
    """DATA on a stream the client reset: each a STREAM_CLOSED reset, all in the one budget."""
    def unit(i):
        return frame(DATA, 0, 1, b"x")
    with RawH2(h2) as c:
        c.settled()
        c.headers(1, req_headers("/echo", method="POST"), end_stream=False)
        c.send(frame(RST_STREAM, 0, 1, u32(CANCEL)))
        for _ in range(30):
            c.send(b"".join(unit(i) for i in range(100)))
            c.pump(lambda: bool(c.goaways()), 0.001)
            if c.eof or c.goaways():
                break
        c.pump(lambda: c.eof, 5)
        assert c.goaways() and c.goaways()[-1][1] == ENHANCE_YOUR_CALM, c.frames[-3:]


@pytest.mark.parametrize("kind", ["empty-data", "window-update", "priority"])
def test_floods_of_frames_that_carry_nothing_get_enhance_your_calm(h2proxy, kind):
    gh, backend = h2proxy
    with RawH2(gh.port) as c:
        c.settled()
        c.headers(1, req_headers("/delay?ms=5000", method="POST"), end_stream=False)
        unit = {"empty-data": frame(DATA, 0, 1, b""),
                "window-update": frame(WINDOW_UPDATE, 0, 0, u32(1)),
                "priority": priority(3, 0)}[kind]
        for _ in range(50):
            c.send(unit * 100)
            c.pump(lambda: bool(c.goaways()), 0.001)
            if c.eof or c.goaways():
                break
        c.pump(lambda: c.eof, 5)
        assert c.goaways() and c.goaways()[-1][1] == ENHANCE_YOUR_CALM, c.frames[-3:]
    with RawH2(gh.port) as c:   # others still served
        c.request(1, "/echo?bystander")
        assert c.wait_stream(1) == (200, [])


def test_a_download_is_not_a_window_update_flood(h2proxy):
    """A client answering every DATA frame with two WINDOW_UPDATEs (RawH2 does) downloads
    8 MiB: far more than the allowance alone, explained by our DATA frames."""
    gh, _ = h2proxy
    with RawH2(gh.port, timeout=20) as c:
        c.request(1, "/bytes?n=8388608")
        assert c.wait_stream(1, timeout=20) == (200, []), c.frames[-3:]
        assert len(c.data[1]) == 8388608
        assert not c.goaways()


# ---- item 11: flow-control stalls must not pin upstream connections -------------------------

def stalled_client(port, nstreams, n=8 << 20):
    """A client that sets its stream windows to 0 and never opens them, asking for large
    responses on nstreams streams."""
    c = RawH2(port, timeout=10)
    c.send(settings((INITIAL_WINDOW_SIZE, 0)))
    c.settled()
    for i in range(nstreams):
        c.request(1 + 2 * i, f"/bytes?n={n}&stall={i}")
    return c


@pytest.fixture
def stall_proxy(gatehouse, backend):
    cfg = proxy_config(backend, listen=H2C, limits={"send_timeout": "1s"})
    return gatehouse(cfg), backend


def test_stalled_connections_free_their_upstream_connections_at_send_timeout(stall_proxy):
    """3 connections whose windows stay shut, 8 large responses each: 24 upstream connections
    held (each stream stops reading its upstream after a bounded buffer). Nothing is taken on
    any stream for send_timeout: each connection ends with GOAWAY ENHANCE_YOUR_CALM (its streams
    reset one by one would only make room for new ones) and every upstream connection is freed,
    while another client is served."""
    gh, backend = stall_proxy
    clients = [stalled_client(gh.port, 8) for _ in range(3)]
    try:
        st = backend.wait_for(lambda st: st.connections >= 24)
        assert st.connections >= 24, st
        with Bystander(gh.port, "/echo?bystander") as by:
            for c in clients:
                _, code = c.wait_goaway(timeout=10)
                assert code == ENHANCE_YOUR_CALM, c.frames[-3:]
            st = backend.wait_for(lambda st: st.closed >= 24, timeout=10)
        assert st.closed >= 24, st
        assert not by.failures, by.failures[:3]
        assert all(not c.data for c in clients)   # the windows were never opened
    finally:
        for c in clients:
            c.close()


def test_a_stalled_stream_beside_one_making_progress_is_reset_alone(stall_proxy):
    gh, backend = stall_proxy
    with stalled_client(gh.port, 1) as c:
        assert backend.wait_for(lambda st: st.connections >= 1).connections >= 1
        time.sleep(0.3)
        c.request(3, "/echo?progress")
        c.send(frame(WINDOW_UPDATE, 0, 3, u32(1 << 20)))
        assert c.wait_stream(3) == (200, []), c.frames[-3:]
        c.pump(lambda: bool(c.rst(1) or c.goaways()), 10)
        assert c.rst(1) == [CANCEL], c.frames[-3:]
        assert not c.goaways()
        c.request(5, "/echo?after")
        c.send(frame(WINDOW_UPDATE, 0, 5, u32(1 << 20)))
        assert c.wait_stream(5) == (200, []), c.frames[-3:]
    assert backend.wait_for(lambda st: st.closed >= 1).closed >= 1


def test_stream_over_max_concurrent_streams_is_refused_not_the_connection(gatehouse, backend):
    cfg = proxy_config(backend, listen=H2C, limits={"http2": {"max_concurrent_streams": 4}})
    gh = gatehouse(cfg)
    with RawH2(gh.port) as c:
        c.settled()
        announced = [p for t, f, _, p in c.frames if t == SETTINGS and not f & ACK][0]
        entries = dict(struct.unpack(">HI", announced[i:i + 6])
                       for i in range(0, len(announced), 6))
        assert entries[MAX_CONCURRENT_STREAMS] == 4, entries
        for i in range(6):
            c.request(1 + 2 * i, f"/delay?ms=300&i={i}")
        for sid in (9, 11):
            assert c.wait_stream(sid) == (None, [REFUSED_STREAM]), c.frames[-3:]
        for sid in (1, 3, 5, 7):
            assert c.wait_stream(sid) == (200, []), c.frames[-3:]
        assert not c.goaways()
        c.request(13, "/echo?after")   # the connection goes on
        assert c.wait_stream(13) == (200, []), c.frames[-3:]
    assert sorted(r[2] for r in backend.requests if "delay" in r[2]) == \
        [f"/delay?ms=300&i={i}" for i in range(4)]


def test_flood_of_data_on_a_stream_we_ended_gets_enhance_your_calm(gatehouse):
    """DATA on a stream we reset is ignored (it may have crossed our RST_STREAM), but a flood of
    it is not free: it counts with the frames that carry nothing."""
    gh = gatehouse(respond_config([{"path": "/", "respond": {"body": "ok\n"}}], listen=H2C))
    with RawH2(gh.port) as c:
        c.headers(1, req_headers("/", method="POST", extra=[("content-length", "100000000")]),
                  end_stream=False)
        assert c.wait_stream(1)[0] == 200
        for _ in range(30):
            c.send(frame(DATA, 0, 1, b"x") * 100)
            c.pump(lambda: bool(c.goaways()), 0.001)
            if c.eof or c.goaways():
                break
        c.pump(lambda: c.eof, 5)
        assert c.goaways() and c.goaways()[-1][1] == ENHANCE_YOUR_CALM, c.frames[-3:]
