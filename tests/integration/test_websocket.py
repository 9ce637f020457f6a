"""Upgraded connections through the proxy: WebSocket (and any `Connection: Upgrade`) over
HTTP/1.1, plain and TLS on either side, and WebSocket over HTTP/2 (RFC 8441 extended CONNECT)
to an HTTP/1.1 upstream; plus streamed responses (server-sent events) that must reach the client
as they are produced. Real clients: python3-websockets, python3-h2 and raw sockets; upstreams:
backend.py's /ws and /upgrade-echo, and a python3-websockets server for TLS upstreams."""
import asyncio
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from backend import MAX_SLICE, PatternChecker, pattern, pattern_bytes, ws_frame, ws_read_frame
from conftest import (H1, RSS_LIMIT_KIB, SANITIZER, MiB, T, proxy_config, rss_kib,
                      wait_until)

import websockets
import h2.connection
import h2.config  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402

from test_h2_server import H2Client  # noqa: E402


def run(coro, timeout=20):
    return asyncio.run(asyncio.wait_for(coro, T(timeout)))


def ws_url(gh, path="/ws", tls=False):
    return f"{'wss' if tls else 'ws'}://127.0.0.1:{gh.port}{path}"


def client_tls():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(url, **kw):
    if url.startswith("wss:"):
        kw.setdefault("ssl", client_tls())
    return websockets.connect(url, max_size=None, open_timeout=T(5), close_timeout=T(5), **kw)


async def echo_roundtrip(url, **kw):
    async with connect(url, **kw) as ws:
        await ws.send("hello, tunnel")
        text = await ws.recv()
        await ws.send(b"\x00\x01\xfe\xff binary")
        data = await ws.recv()
    return text, data


def mask():
    return os.urandom(4)


# ---- certificates and a TLS WebSocket upstream ------------------------------------------------

def make_cert(d, name, sans):
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    san = ",".join(f"DNS:{s}" for s in sans)
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-keyout", str(key), "-out", str(crt), "-days", "2",
                    "-subj", f"/CN={sans[0]}", "-addext", f"subjectAltName={san}"],
                   check=True, capture_output=True)
    return crt, key


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "certs"
    d.mkdir()
    return {"edge": make_cert(d, "edge", ["main.example"]),
            "upstream": make_cert(d, "upstream", ["ws.internal"])}


def tls_listen(certs, http2=False):
    crt, key = certs["edge"]
    return [{"address": "127.0.0.1:0",
             "tls": {"certificates": [{"cert": str(crt), "key": str(key)}], "http2": http2}}]


class WsServer:
    """A python3-websockets echo server (plain or TLS) on its own thread and event loop."""

    def __init__(self, cert=None):
        self.ctx = None
        if cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "websockets server did not start"

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def echo(ws, *_):
            async for message in ws:
                await ws.send(message)

        self.server = self.loop.run_until_complete(websockets.serve(
            echo, "127.0.0.1", 0, ssl=self.ctx, max_size=None, subprotocols=["chat"]))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        async def close():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def ws_server_factory():
    started = []

    def make(cert=None):
        s = WsServer(cert)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


# ---- HTTP/1.1 WebSocket ------------------------------------------------------------------------

def test_echo_text_and_binary_and_one_access_line_with_101(gatehouse, backend):
    gh = gatehouse(proxy_config(backend))
    mark = gh.out_mark()
    assert run(echo_roundtrip(ws_url(gh))) == ("hello, tunnel", b"\x00\x01\xfe\xff binary")
    line = gh.wait_access(1, since=mark)[0]
    assert re.search(r'"GET /ws HTTP/1\.1" 101 \d+ ', line), line
    sent = int(re.search(r'" 101 (\d+) ', line).group(1))
    assert sent > len("hello, tunnel"), line   # the echoed frames and the close frame
    assert "upstream=127.0.0.1:" in line
    time.sleep(0.2)
    assert len(gh.access_lines(since=mark)) == 1


def test_real_websockets_server_negotiates_subprotocol(gatehouse, ws_server_factory):
    up = ws_server_factory()
    gh = gatehouse(proxy_config(up.address))

    async def go():
        async with connect(ws_url(gh, "/chat"), subprotocols=["chat"]) as ws:
            assert ws.subprotocol == "chat"
            await ws.send("ping?")
            return await ws.recv()
    assert run(go()) == "ping?"


def test_echo_over_tls_to_the_client(gatehouse, backend, certs):
    gh = gatehouse(proxy_config(backend, listen=tls_listen(certs)))
    assert run(echo_roundtrip(ws_url(gh, tls=True))) == ("hello, tunnel",
                                                        b"\x00\x01\xfe\xff binary")


@pytest.mark.parametrize("client_tls_on", [False, True], ids=["plain-client", "tls-client"])
def test_echo_to_a_tls_upstream(gatehouse, ws_server_factory, certs, client_tls_on):
    up = ws_server_factory(certs["upstream"])
    cfg = proxy_config(up.address,
                       upstream={"tls": {"ca": str(certs["upstream"][0]),
                                         "server_name": "ws.internal"}},
                       **({"listen": tls_listen(certs)} if client_tls_on else {}))
    gh = gatehouse(cfg)
    big = pattern_bytes(MiB)

    async def go():
        async with connect(ws_url(gh, tls=client_tls_on)) as ws:
            await ws.send("over TLS")
            assert await ws.recv() == "over TLS"
            await ws.send(big)
            assert await ws.recv() == big
    run(go())


def test_one_mib_messages_both_ways(gatehouse, backend):
    gh = gatehouse(proxy_config(backend))
    data = pattern_bytes(MiB)
    text = "x" * MiB

    async def go():
        async with connect(ws_url(gh)) as ws:
            await ws.send(data)
            assert await ws.recv() == data
            await ws.send(text)
            assert await ws.recv() == text
            # several in flight at once: the tunnel must keep their order
            for i in range(4):
                await ws.send(data[i:])
            for i in range(4):
                assert await ws.recv() == data[i:]
    run(go(), timeout=60)


def test_fifty_concurrent_tunnels(gatehouse, backend):
    gh = gatehouse(proxy_config(backend))

    async def one(i):
        async with connect(ws_url(gh)) as ws:
            for k in range(5):
                msg = f"tunnel {i} message {k} " + "y" * (i * 100)
                await ws.send(msg)
                assert await ws.recv() == msg
        return i

    async def go():
        return await asyncio.gather(*(one(i) for i in range(50)))
    assert sorted(run(go(), timeout=60)) == list(range(50))
    st = backend.wait_for(lambda s: s.closed >= 50)
    assert st.connections >= 50, "every tunnel has its own upstream connection"


def test_idle_timeout_closes_a_silent_tunnel_but_not_a_busy_one(gatehouse, backend):
    gh = gatehouse(proxy_config(backend, upstream={"tunnel_idle_timeout": "700ms"}))

    async def busy():
        async with connect(ws_url(gh), ping_interval=None) as ws:
            for _ in range(8):   # 1.6 s of traffic, never 700 ms quiet
                await ws.send("tick")
                assert await ws.recv() == "tick"
                await asyncio.sleep(0.2)

    async def silent():
        async with connect(ws_url(gh), ping_interval=None) as ws:
            t = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), T(5))
            return time.monotonic() - t
    run(busy())
    mark = gh.err_mark()
    waited = run(silent())
    assert 0.5 < waited < T(3), waited
    gh.wait_err(r"tunnel to upstream app .*tunnel_idle_timeout", since=mark)


def test_reload_keeps_an_open_tunnel_on_its_upstream(gatehouse, backend_factory):
    a, b = backend_factory("a"), backend_factory("b")
    gh = gatehouse(proxy_config(a))

    async def go():
        async with connect(ws_url(gh, "/ws?headers=1")) as ws:
            await ws.recv()   # the handshake's headers
            await ws.send("before")
            assert await ws.recv() == "before"
            gh.write_config(proxy_config(b))
            mark = gh.err_mark()
            gh.send_signal(signal.SIGHUP)
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: gh.wait_err(r"\[info\] configuration reloaded", since=mark))
            await ws.send("after the reload")
            assert await ws.recv() == "after the reload"
            # a new tunnel goes to the new upstream while the old one is still open
            async with connect(ws_url(gh)) as ws2:
                await ws2.send("new")
                assert await ws2.recv() == "new"
            await ws.send("still here")
            assert await ws.recv() == "still here"
    run(go())
    assert a.stats().connections == 1
    assert b.stats().connections == 1


def test_sigterm_closes_open_tunnels_at_the_end_of_the_grace_period(gatehouse, backend):
    gh = gatehouse(proxy_config(backend, shutdown_timeout="1s"))
    result = {}

    async def go():
        async with connect(ws_url(gh), ping_interval=None) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            mark = gh.err_mark()
            t = time.monotonic()
            gh.send_signal(signal.SIGTERM)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), T(10))
            except websockets.ConnectionClosed:
                result["closed_after"] = time.monotonic() - t
            result["mark"] = mark
    run(go())
    assert 0.5 < result["closed_after"] < T(4), result
    gh.wait_err(r"worker 0: draining with 1 open tunnel", since=result["mark"])
    assert gh.wait_exit(timeout=5) == 0


def test_refused_upgrade_is_an_ordinary_response_and_nothing_is_reused(gatehouse, backend):
    gh = gatehouse(proxy_config(backend))
    with H1(gh.port) as c:
        r = c.request("GET", "/echo", [("Connection", "keep-alive, Upgrade, X-Hop"),
                                       ("Upgrade", "websocket"), ("X-Hop", "secret"),
                                       ("Keep-Alive", "timeout=5"),
                                       ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                       ("Sec-WebSocket-Version", "13")])
        assert r.status == 200
        assert (r.header("connection") or "").lower() == "close"
        assert c.closed_by_peer(), "the client connection must not carry another request"
    hdrs = {k.lower(): v for k, v in r.json()["headers"]}
    assert hdrs["upgrade"] == "websocket"
    assert hdrs["connection"] == "Upgrade"          # only Upgrade crosses, not keep-alive, X-Hop
    assert "x-hop" not in hdrs and "keep-alive" not in hdrs
    assert hdrs["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ=="
    # the upgrade had a fresh upstream connection, and it was not pooled afterwards
    assert backend.wait_for(lambda s: s.closed >= 1).closed >= 1
    r2 = H1(gh.port).request("GET", "/echo")
    assert r2.json()["conn_id"] != r.json()["conn_id"]


def test_unasked_101_from_the_upstream_is_502(gatehouse, backend):
    gh = gatehouse(proxy_config(backend))
    mark = gh.err_mark()
    with H1(gh.port) as c:
        assert c.request("GET", "/upgrade-echo").status == 502
    gh.wait_err(r"switched protocols without being asked", since=mark)


def test_h2c_upgrade_is_never_forwarded(gatehouse, backend):
    gh = gatehouse(proxy_config(backend))
    with H1(gh.port) as c:
        r = c.request("GET", "/echo", [("Connection", "Upgrade, HTTP2-Settings"),
                                       ("Upgrade", "h2c"),
                                       ("HTTP2-Settings", "AAMAAABkAAQAAP__")])
        assert r.status == 200
        hdrs = {k.lower(): v for k, v in r.json()["headers"]}
        assert not {"upgrade", "connection", "http2-settings"} & set(hdrs), hdrs
        # h2c alone asks for nothing we forward: the connection stays usable
        assert c.request("GET", "/echo").status == 200
    with H1(gh.port) as c:
        r = c.request("GET", "/echo", [("Connection", "Upgrade"), ("Upgrade", "h2c, websocket")])
        hdrs = {k.lower(): v for k, v in r.json()["headers"]}
        assert hdrs["upgrade"] == "websocket"


@pytest.mark.parametrize("how", ["http10", "body", "chunked"])
def test_upgrade_with_http10_or_a_body_is_an_ordinary_request(gatehouse, backend, how):
    gh = gatehouse(proxy_config(backend))
    hdrs = [("Connection", "Upgrade"), ("Upgrade", "websocket")]
    with H1(gh.port) as c:
        if how == "http10":
            r = c.request("GET", "/echo", hdrs, version="HTTP/1.0")
        elif how == "body":
            r = c.request("POST", "/echo", hdrs, body=b"payload")
        else:
            c.send(H1.build("POST", "/echo", hdrs + [("Transfer-Encoding", "chunked")]) +
                   b"7\r\npayload\r\n0\r\n\r\n")
            r = c.read_response()
    assert r.status == 200
    e = r.json()
    assert not {"upgrade"} & {k.lower() for k, _ in e["headers"]}
    if how != "http10":
        assert e["body_len"] == 7


def raw_upgrade(port, target, extra=b"", headers=()):
    s = socket.create_connection(("127.0.0.1", port), timeout=T(5))
    head = H1.build("GET", target, [("Connection", "Upgrade"), ("Upgrade", "echo")] +
                    list(headers))
    s.sendall(head + extra)   # one segment: the early bytes come right behind the head
    return s


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        assert d, f"closed before the response head: {buf!r}"
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def read_exactly(s, n, have=b""):
    buf = bytearray(have)
    while len(buf) < n:
        d = s.recv(65536)
        assert d, f"closed after {len(buf)} of {n} bytes"
        buf += d
    return bytes(buf)


def test_early_bytes_and_bytes_behind_the_101_are_forwarded(gatehouse, backend):
    gh = gatehouse(proxy_config(backend))
    s = raw_upgrade(gh.port, "/upgrade-echo?greet=HELLO", extra=b"early bytes|")
    head, rest = read_head(s)
    assert head.startswith("HTTP/1.1 101 "), head
    assert re.search(r"(?im)^upgrade: echo\r?$", head) and re.search(r"(?im)^connection: upgrade\r?$",
                                                                   head), head
    got = read_exactly(s, len(b"HELLOearly bytes|"), rest)
    assert got == b"HELLOearly bytes|"
    s.sendall(b"more")
    assert read_exactly(s, 4) == b"more"
    # half-close: our FIN reaches the upstream, which answers with the rest and its own FIN
    s.sendall(b"last")
    s.shutdown(socket.SHUT_WR)
    tail = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        tail += d
    assert tail == b"last"
    s.close()


def test_early_websocket_frame_in_the_handshake_segment(gatehouse, backend):
    gh = gatehouse(proxy_config(backend))
    s = socket.create_connection(("127.0.0.1", gh.port), timeout=T(5))
    s.sendall(H1.build("GET", "/ws", [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                      ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                      ("Sec-WebSocket-Version", "13")]) +
              ws_frame(0x1, b"pipelined", mask=mask()))
    head, rest = read_head(s)
    assert head.startswith("HTTP/1.1 101 ")
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    buf = bytearray(rest)

    def take(n):
        while len(buf) < n:
            d = s.recv(65536)
            assert d
            buf.extend(d)
        out = bytes(buf[:n])
        del buf[:n]
        return out
    assert ws_read_frame(take) == (True, 0x1, b"pipelined")
    s.close()


def test_back_pressure_stops_reading_a_client_whose_echo_is_not_read(gatehouse, backend):
    """The client sends without reading the echo: the echo backs up to the upstream, which stops
    reading, so Gatehouse must stop reading the client too instead of buffering."""
    gh = gatehouse(proxy_config(backend))
    total = (128 if SANITIZER else 256) * MiB  # kernel buffers alone hold ~30 MiB here
    s = raw_upgrade(gh.port, "/upgrade-echo")
    head, rest = read_head(s)
    assert head.startswith("HTTP/1.1 101 ") and rest == b""
    sent = [0]

    def sender():
        try:
            while sent[0] < total:
                k = min(MAX_SLICE, total - sent[0])
                s.sendall(pattern(sent[0], k))
                sent[0] += k
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    time.sleep(T(2))
    stalled_at = sent[0]
    assert stalled_at < total // 2, f"{stalled_at} bytes taken without being read"
    if not SANITIZER:
        assert rss_kib(gh.pid) < RSS_LIMIT_KIB
    chk = PatternChecker()
    s.settimeout(T(60))
    while True:
        d = s.recv(MAX_SLICE)
        if not d:
            break
        chk.feed(d)
    t.join(T(10))
    assert (chk.offset, chk.ok) == (total, True)
    s.close()


def test_client_reset_closes_the_upstream_connection(gatehouse, backend):
    gh = gatehouse(proxy_config(backend))
    s = raw_upgrade(gh.port, "/upgrade-echo")
    assert read_head(s)[0].startswith("HTTP/1.1 101 ")
    s.sendall(b"x")
    assert read_exactly(s, 1) == b"x"
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()   # RST
    st = backend.wait_for(lambda st: st.closed >= 1)
    assert st.closed >= 1, "the upstream side of the tunnel stayed open"


def test_upstream_that_never_answers_the_upgrade_gets_504(gatehouse, backend):
    gh = gatehouse(proxy_config(backend, upstream={"read_timeout": "500ms"}))
    r = H1(gh.port).request("GET", "/delay?ms=3000", [("Connection", "Upgrade"),
                                                     ("Upgrade", "websocket")])
    assert r.status == 504


# ---- HTTP/2 extended CONNECT (RFC 8441) --------------------------------------------------------

def h2_ws_open(c, path="/ws", extra=()):
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, [(b":method", b"CONNECT"), (b":protocol", b"websocket"),
                              (b":scheme", b"https" if c.tls else b"http"),
                              (b":path", path.encode()), (b":authority", b"main.example"),
                              (b"sec-websocket-version", b"13")] + list(extra))
    c.flush()
    return sid


class H2Ws(H2Client):
    def __init__(self, port, tls=False):
        super().__init__(port, tls=tls)
        self.tls = tls
        self.data = bytearray()

    def settings(self):
        assert self.pump(lambda evs: any(isinstance(e, h2.events.RemoteSettingsChanged)
                                         for e in evs))
        return {k: v.new_value for e in self.of(h2.events.RemoteSettingsChanged)
                for k, v in e.changed_settings.items()}

    def head(self, sid):
        assert self.pump(lambda evs: any(isinstance(e, (h2.events.ResponseReceived,
                                                         h2.events.StreamReset))
                                         and e.stream_id == sid for e in evs)), self.events[-5:]
        r = self.of(h2.events.ResponseReceived, sid)
        assert r, f"stream reset: {self.of(h2.events.StreamReset, sid)}"
        return {k.decode(): v.decode() for k, v in r[0].headers}

    def send(self, sid, data, end=False):
        """DATA as the flow-control windows allow, waiting for WINDOW_UPDATEs between."""
        data = memoryview(data)
        while True:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room <= 0 and len(data):
                assert self.pump(lambda evs: self.conn.local_flow_control_window(sid) > 0), \
                    "no WINDOW_UPDATE"
                continue
            k = min(room, len(data))
            last = k == len(data)
            self.conn.send_data(sid, data[:k].tobytes(), end_stream=end and last)
            self.flush()
            data = data[k:]
            if last:
                return


class _Reader:
    def __init__(self, data):
        self.data, self.used = data, 0

    def __call__(self, n):
        if self.used + n > len(self.data):
            raise EOFError
        out = self.data[self.used:self.used + n]
        self.used += n
        return out


def h2_frames(c, sid, count, timeout=5):
    """The first `count` WebSocket frames the server sent on stream sid."""
    def parse():
        data = b"".join(e.data for e in c.of(h2.events.DataReceived, sid))
        r, out = _Reader(data), []
        try:
            while len(out) < count:
                out.append(ws_read_frame(r))
        except EOFError:
            pass
        return out
    assert c.pump(lambda evs: len(parse()) >= count, timeout), parse()
    return parse()


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2-tls"])
def test_h2_extended_connect_websocket_echo(gatehouse, backend, certs, tls):
    listen = tls_listen(certs, http2=True) if tls else [{"address": "127.0.0.1:0", "h2c": True}]
    gh = gatehouse(proxy_config(backend, listen=listen))
    mark = gh.out_mark()
    c = H2Ws(gh.port, tls=tls)
    assert c.settings().get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1
    sid = h2_ws_open(c, "/ws?headers=1", [(b"sec-websocket-protocol", b"chat")])
    head = c.head(sid)
    assert head[":status"] == "200", head
    assert "content-length" not in head and "upgrade" not in head
    assert "sec-websocket-accept" not in head
    assert head.get("sec-websocket-protocol") == "chat"
    # the upstream saw an HTTP/1.1 WebSocket handshake with a key we made
    (fin, op, payload), = h2_frames(c, sid, 1)
    seen = {k.lower(): v for k, v in json.loads(payload)}
    assert seen["upgrade"] == "websocket" and seen["connection"] == "Upgrade"
    assert len(seen["sec-websocket-key"]) == 24 and seen["sec-websocket-version"] == "13"
    c.send(sid, ws_frame(0x1, b"hello over h2", mask=mask()))
    c.send(sid, ws_frame(0x2, pattern_bytes(200000), mask=mask()))   # beyond the stream window
    frames = h2_frames(c, sid, 3, timeout=20)
    assert frames[1] == (True, 0x1, b"hello over h2")
    assert frames[2] == (True, 0x2, pattern_bytes(200000))
    # close handshake: the upstream answers and closes; the stream ends both ways
    c.send(sid, ws_frame(0x8, b"\x03\xe8", mask=mask()))
    frames = h2_frames(c, sid, 4)
    assert frames[3] == (True, 0x8, b"\x03\xe8")
    assert c.pump(lambda evs: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid
                                  for e in evs))
    c.send(sid, b"", end=True)
    c.close()
    line = gh.wait_access(1, since=mark)[0]
    assert re.search(r'"GET /ws\?headers=1 HTTP/2" 200 \d+', line), line


def test_h2_websocket_answer_without_our_accept_is_502(gatehouse, backend):
    gh = gatehouse(proxy_config(backend, listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    mark = gh.err_mark()
    c = H2Ws(gh.port)
    c.settings()
    sid = h2_ws_open(c, "/upgrade-echo")   # switches, but is no WebSocket server
    assert c.head(sid)[":status"] == "502"
    c.close()
    gh.wait_err(r"101 without the Sec-WebSocket-Accept for our key", since=mark)


def h2_data(c, sid):
    return b"".join(e.data for e in c.of(h2.events.DataReceived, sid))


def test_h2_extended_connect_other_protocol_is_refused(gatehouse, backend):
    """Only :protocol websocket is tunnelled (issue 11: h2c smuggled through extended CONNECT);
    another protocol is a 400 on its stream and reaches no upstream."""
    gh = gatehouse(proxy_config(backend, listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    c = H2Ws(gh.port)
    c.settings()
    sid = c.conn.get_next_available_stream_id()
    c.conn.send_headers(sid, [(b":method", b"CONNECT"), (b":protocol", b"echo"),
                              (b":scheme", b"http"), (b":path", b"/upgrade-echo?greet=hi|"),
                              (b":authority", b"test")])
    c.flush()
    assert c.head(sid)[":status"] == "400"
    c.close()
    assert backend.requests == []


def test_h2_extended_connect_refused_upstream_is_an_ordinary_response(gatehouse, backend):
    gh = gatehouse(proxy_config(backend, listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    c = H2Ws(gh.port)
    c.settings()
    sid = h2_ws_open(c, "/status/403")
    status, headers, body = c.response(sid)
    assert status == 403 and body == b"status 403\n"
    # the connection goes on with ordinary requests
    status, _, _ = c.response(c.request("/echo"))
    assert status == 200
    c.close()


def survive_goaway(c):
    """python-h2 closes the whole connection at any GOAWAY, while RFC 9113 section 6.8 lets the
    streams it covers run to their end (a reload sends a graceful GOAWAY and keeps them): let
    this client go on receiving and sending on its open streams after one."""
    from h2.connection import ConnectionInputs as In, ConnectionState as St
    sm = c.conn.state_machine
    sm._transitions = dict(type(sm)._transitions)
    for i in (In.RECV_DATA, In.RECV_WINDOW_UPDATE, In.RECV_HEADERS, In.RECV_RST_STREAM,
              In.RECV_PING, In.RECV_GOAWAY, In.SEND_DATA, In.SEND_WINDOW_UPDATE,
              In.SEND_RST_STREAM):
        sm._transitions[(St.CLOSED, i)] = (None, St.CLOSED)


def test_h2_extended_connect_answered_2xx_without_a_switch_is_refused(gatehouse, backend):
    """To an HTTP/2 client a 2xx means the tunnel is open: an upstream that ignored the upgrade
    (502) or a route that answers by itself (501) must not say so."""
    cfg = proxy_config(backend, listen=[{"address": "127.0.0.1:0", "h2c": True}],
                       routes=[{"path": "/", "proxy": "app"},
                               {"path": "/static", "respond": {"body": "hello\n"}}])
    gh = gatehouse(cfg)
    c = H2Ws(gh.port)
    c.settings()
    status, _, _ = c.response(h2_ws_open(c, "/echo"))
    assert status == 502
    status, _, body = c.response(h2_ws_open(c, "/static"))
    assert status == 501 and body == b"hello\n"
    c.close()


def test_h2_tunnels_survive_reload_and_many_streams_share_a_connection(gatehouse, backend):
    gh = gatehouse(proxy_config(backend, listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    c = H2Ws(gh.port)
    survive_goaway(c)
    c.settings()
    sids = [h2_ws_open(c) for _ in range(10)]
    for sid in sids:
        assert c.head(sid)[":status"] == "200"
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"\[info\] configuration reloaded", since=mark)
    for i, sid in enumerate(sids):
        c.send(sid, ws_frame(0x1, f"stream {i}".encode(), mask=mask()))
    for i, sid in enumerate(sids):
        assert h2_frames(c, sid, 1)[0] == (True, 0x1, f"stream {i}".encode())
    goaway = c.of(h2.events.ConnectionTerminated)
    assert goaway and goaway[0].error_code == 0, "the reload did send its graceful GOAWAY"
    c.close()


def test_h2_stream_reset_closes_the_upstream_connection(gatehouse, backend):
    gh = gatehouse(proxy_config(backend, listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    c = H2Ws(gh.port)
    c.settings()
    sid = h2_ws_open(c)
    assert c.head(sid)[":status"] == "200"
    c.conn.reset_stream(sid)
    c.flush()
    st = backend.wait_for(lambda st: st.closed >= 1)
    assert st.closed >= 1, "the upstream side of the tunnel stayed open"
    # the connection itself goes on
    status, _, _ = c.response(c.request("/echo"))
    assert status == 200
    c.close()


# ---- streamed responses (server-sent events) ---------------------------------------------------

SSE_TARGET = "/bytes?n=2000&chunked=1&chunk=100&pause_at=100&pause_ms=3000"


def test_streamed_response_reaches_an_http11_client_before_it_ends(gatehouse, backend):
    gh = gatehouse(proxy_config(backend))
    with H1(gh.port) as c:
        t = time.monotonic()
        c.send(H1.build("GET", SSE_TARGET))
        _, status, _, headers = c.read_head()
        assert status == 200
        first = c._until(b"\r\n")
        assert int(first, 16) == 100
        assert c._exact(100) == pattern_bytes(100)
        assert time.monotonic() - t < 2, "the first chunk waited for the pause"


def test_streamed_response_reaches_an_h2_client_before_it_ends(gatehouse, backend):
    gh = gatehouse(proxy_config(backend, listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    c = H2Client(gh.port)
    t = time.monotonic()
    sid = c.request(SSE_TARGET)

    def got(evs):
        return sum(len(e.data) for e in evs
                   if isinstance(e, h2.events.DataReceived) and e.stream_id == sid) >= 100
    assert c.pump(got, timeout=2.5)
    assert time.monotonic() - t < 2, "the first chunk waited for the pause"
    assert not c.of(h2.events.StreamEnded, sid)
    c.close()


def test_tunnel_count_in_the_log_is_per_worker(gatehouse, backend):
    """Two tunnels on one worker: the drain line counts both."""
    gh = gatehouse(proxy_config(backend, shutdown_timeout="500ms"))

    async def go():
        async with connect(ws_url(gh), ping_interval=None) as a, \
                connect(ws_url(gh), ping_interval=None) as b:
            for ws in (a, b):
                await ws.send("x")
                assert await ws.recv() == "x"
            mark = gh.err_mark()
            gh.send_signal(signal.SIGTERM)
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: gh.wait_err(r"draining with 2 open tunnels", since=mark))
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(a.recv(), T(5))
    run(go())
    assert gh.wait_exit(timeout=5) == 0
    assert wait_until(lambda: not gh.running())


def test_status_counts_open_tunnels_apart_from_requests(gatehouse, backend):
    cfg = proxy_config(backend)
    cfg["admin"] = {"address": "127.0.0.1:0", "hosts": ["test"]}  # the Host get() sends
    gh = gatehouse(cfg)
    admin = gh.ports[-1]

    def status():
        with H1(admin) as c:
            return c.request("GET", "/status").json()

    async def go():
        async with connect(ws_url(gh)) as a, connect(ws_url(gh)) as b:
            await a.send("x")
            await b.send("y")
            assert await a.recv() == "x" and await b.recv() == "y"
            st = status()
            assert st["tunnels"] == 2, st
            assert all(s["active"] == 0 for s in st["upstreams"][0]["servers"]), st
    run(go())
    assert wait_for_zero(status)


def wait_for_zero(status):
    deadline = time.monotonic() + T(5)
    while time.monotonic() < deadline:
        if status()["tunnels"] == 0:
            return True
        time.sleep(0.05)
    return False
