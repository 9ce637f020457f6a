"""HTTP/2 hardening (issue 11): what an attacker or a conformance suite does to the HTTP/2
codec, with frames built by hand (RawH2 from test_h2_frames) so that no client library hides or
fixes the bytes. Each test names the attack, the exact answer expected (status, RST_STREAM or
GOAWAY code) and what must not reach the upstream."""
import json
import socket
import struct
import time

import pytest

from conftest import H1, T, proxy_config, wait_until
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
