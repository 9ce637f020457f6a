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
