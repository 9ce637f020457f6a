"""HTTP/2 frame-level conformance (RFC 9113) of the server codec, over h2c with prior knowledge:
frames built by hand (struct-packed frame headers, HPACK from python3-hpack) so that we can send
what a well-behaved client library refuses to. For each violation: the exact error code, as a
connection error (GOAWAY) or a stream error (RST_STREAM), and a fresh connection still served."""
import socket
import struct
import threading
import time

import pytest

from conftest import RSS_LIMIT_KIB, SANITIZER, RssSampler, T, proxy_config, respond_config

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
# flags
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20
# error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = range(10)
ENHANCE_YOUR_CALM = 11
# settings
ENABLE_PUSH, INITIAL_WINDOW_SIZE = 0x2, 0x4


def frame(ftype, flags, sid, payload=b""):
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, sid & 0x7FFFFFFF) + payload


def settings(*pairs, flags=0):
    return frame(SETTINGS, flags, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def req_headers(path="/", method="GET", authority="test", extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", authority),
            (":path", path), *extra]


class RawH2:
    """One h2c connection with prior knowledge; frames out as bytes, frames in parsed.
    SETTINGS from the server are acknowledged; everything received is kept in .frames as
    (type, flags, stream id, payload); response header blocks are decoded into .heads."""

    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=T(timeout))
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = b""
        self.frames = []
        self.heads = {}     # stream id -> [decoded header lists]
        self.data = {}      # stream id -> bytes
        self.eof = False
        self.send(PREFACE + settings())

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.eof = True

    def block(self, headers):
        return self.enc.encode(headers)

    def headers(self, sid, headers, end_stream=True, raw_block=None):
        blk = raw_block if raw_block is not None else self.block(headers)
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, blk))

    def request(self, sid, path="/", **kw):
        self.headers(sid, req_headers(path, **kw))

    def big_request(self, sid, path="/", extra=()):
        """A request whose header block may exceed one frame: HEADERS, then CONTINUATION."""
        blk = self.block(req_headers(path, extra=extra))
        parts = [blk[i:i + 16384] for i in range(0, len(blk), 16384)]
        out = b""
        for i, p in enumerate(parts):
            flags = (END_HEADERS if i == len(parts) - 1 else 0) | (END_STREAM if i == 0 else 0)
            out += frame(HEADERS if i == 0 else CONTINUATION, flags, sid, p)
        self.send(out)

    def settled(self):
        """Waits for the server's SETTINGS (and acknowledges them): nothing more comes from us
        unasked, so a header block we send next is not interleaved with our ACK."""
        assert self.pump(lambda: any(t == SETTINGS and not f & ACK for t, f, _, _ in self.frames))

    def _parse(self):
        while len(self.buf) >= 9:
            hi, lo, ftype, flags, sid = struct.unpack(">BHBBI", self.buf[:9])
            n = (hi << 16) | lo
            if len(self.buf) < 9 + n:
                return
            payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
            sid &= 0x7FFFFFFF
            self.frames.append((ftype, flags, sid, payload))
            if ftype == SETTINGS and not flags & ACK:
                self.send(settings(flags=ACK))
            elif ftype == HEADERS:
                p = payload
                if flags & PADDED:
                    p = p[1:len(p) - p[0]]
                if flags & PRIO:
                    p = p[5:]
                self.heads.setdefault(sid, []).append(
                    [(k.decode() if isinstance(k, bytes) else k,
                      v.decode() if isinstance(v, bytes) else v) for k, v in self.dec.decode(p)])
            elif ftype == DATA:
                self.data[sid] = self.data.get(sid, b"") + payload
                if payload:   # keep the server's windows open
                    inc = struct.pack(">I", len(payload))
                    self.send(frame(WINDOW_UPDATE, 0, 0, inc) + frame(WINDOW_UPDATE, 0, sid, inc))

    def pump(self, done, timeout=3):
        deadline = time.monotonic() + T(timeout)
        while not done() and not self.eof and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = self.sock.recv(1 << 16)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError):
                d = b""
            if not d:
                self.eof = True
                break
            self.buf += d
            self._parse()
        return done()

    # what came back
    def goaways(self):
        return [struct.unpack(">II", p[:8]) for t, _, _, p in self.frames if t == GOAWAY]

    def rst(self, sid):
        return [struct.unpack(">I", p)[0] for t, _, s, p in self.frames
                if t == RST_STREAM and s == sid]

    def ended(self, sid):
        return any(s == sid and t in (DATA, HEADERS) and f & END_STREAM
                   for t, f, s, _ in self.frames)

    def status(self, sid):
        for h in self.heads.get(sid, []):
            d = dict(h)
            if ":status" in d and not d[":status"].startswith("1"):
                return int(d[":status"])
        return None

    def wait_goaway(self, timeout=3):
        """Waits for a GOAWAY and the close; returns its (last stream id, error code)."""
        self.pump(lambda: self.eof, timeout)
        g = self.goaways()
        assert g, f"no GOAWAY; got {self.frames}"
        return g[-1]

    def wait_stream(self, sid, timeout=3):
        """Waits until stream sid ends or is reset; returns (status, [RST_STREAM codes])."""
        self.pump(lambda: self.ended(sid) or self.rst(sid) or self.goaways(), timeout)
        return self.status(sid), self.rst(sid)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the whole module (each test uses its own connections)."""
    from conftest import Gatehouse
    cfg = respond_config([{"path": "/", "respond": {"body": "ok\n"}}],
                         listen=[{"address": "127.0.0.1:0", "h2c": True}])
    gh = Gatehouse(tmp_path_factory.mktemp("gh_frames"), cfg).start()
    yield gh
    gh.cleanup()
    assert not gh.sanitizer_reports(), "\n".join(gh.sanitizer_reports())


@pytest.fixture
def port(server):
    return server.port


class Bystander:
    """Another client, served while an attack runs: HTTP/2 requests one after another on its
    own connection (a fresh one when needed), each 200 recorded with the time it completed, any
    other outcome as a failure. Used as a context manager: running (one request served) on
    entry, stopped on exit."""

    def __init__(self, port, path="/echo?bystander"):
        self.port, self.path = port, path
        self.served, self.failures = [], []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        c, sid = None, 1
        while not self._stop.is_set():
            if c is None:
                c, sid = RawH2(self.port), 1
            c.request(sid, self.path)
            st, rst = c.wait_stream(sid, timeout=5)
            if (st, rst) == (200, []):
                self.served.append(time.monotonic())
            else:
                self.failures.append((st, rst, c.frames[-3:]))
            sid += 2
            if sid > 199 or (st, rst) != (200, []):
                c.close()
                c = None
        if c:
            c.close()

    def between(self, t0, t1):
        return sum(t0 <= t <= t1 for t in self.served)

    def __enter__(self):
        self._t.start()
        deadline = time.monotonic() + T(5)
        while not self.served and not self.failures and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.served, f"the bystander was not served before the attack: {self.failures}"
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(T(10))


def attack_targets(backend):
    """What reached the upstream other than the bystander's requests."""
    return [r for r in backend.requests if "bystander" not in r[2]]


@pytest.fixture
def proxied_h2(gatehouse, backend):
    """A Gatehouse of its own (h2c) proxying everything to a test backend: (gatehouse, backend)."""
    gh = gatehouse(proxy_config(backend, listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    return gh, backend


def still_serving(port):
    with RawH2(port) as c:
        c.request(1)
        st, rst = c.wait_stream(1)
        assert (st, rst) == (200, []), c.frames
        assert c.data.get(1) == b"ok\n"


def conn_error(port, payload, code, open_stream=False):
    """Sends payload (in the same write as a request on stream 1 that stays open, if
    open_stream) and expects a GOAWAY with `code`, then the close; then a fresh connection is
    served."""
    with RawH2(port) as c:
        if open_stream:
            payload = frame(HEADERS, END_HEADERS, 1, c.block(
                req_headers(method="POST", extra=[("content-length", "100000")]))) + payload
        c.send(payload)
        _, got = c.wait_goaway()
        assert got == code, (got, c.frames)
        assert c.eof, "connection not closed after the GOAWAY"
    still_serving(port)


def stream_error(port, sid, send, code):
    """send(c) provokes a stream error on sid: RST_STREAM `code` (no GOAWAY); the connection
    itself still serves the next stream; so does a fresh one."""
    with RawH2(port) as c:
        send(c)
        st, rst = c.wait_stream(sid)
        assert rst == [code], (st, c.frames)
        assert not c.goaways(), c.frames
        c.request(sid + 2)
        assert c.wait_stream(sid + 2) == (200, []), c.frames
    still_serving(port)


# ---- sanity ---------------------------------------------------------------------------------

def test_raw_client_gets_200(port):
    still_serving(port)


def test_te_trailers_is_allowed(port):
    with RawH2(port) as c:
        c.headers(1, req_headers(extra=[("te", "trailers")]))
        assert c.wait_stream(1) == (200, []), c.frames


# ---- connection errors ----------------------------------------------------------------------

def test_data_on_stream_0_is_protocol_error(port):
    conn_error(port, frame(DATA, 0, 0, b"x"), PROTOCOL_ERROR)


def test_frame_over_max_frame_size_is_frame_size_error(port):
    conn_error(port, frame(PING, 0, 0, b"x" * 16385), FRAME_SIZE_ERROR)


def test_connection_error_with_a_stream_in_flight_still_closes(port):
    # Stream 1 is dispatched (its handler answering) when the oversized DATA is read: after the
    # GOAWAY the connection must close all the same, not wait for a stream that cannot finish.
    conn_error(port, frame(DATA, 0, 1, b"x" * 16385), FRAME_SIZE_ERROR, open_stream=True)


def test_headers_on_even_stream_is_protocol_error(port):
    with RawH2(port) as c:
        c.request(2)
        _, got = c.wait_goaway()
        assert got == PROTOCOL_ERROR, c.frames
    still_serving(port)


def test_decreasing_stream_id_is_protocol_error(port):
    with RawH2(port) as c:
        c.request(5)
        assert c.wait_stream(5) == (200, [])
        c.request(3)    # never opened, lower than 5: RFC 9113 section 5.1.1
        last, got = c.wait_goaway()
        assert (last, got) == (5, PROTOCOL_ERROR), c.frames
        assert c.status(3) is None
    still_serving(port)


def test_trailers_on_a_lower_open_stream_are_not_a_new_stream(port):
    # HEADERS on a lower id that *was* opened (trailers ending stream 1 after stream 3 began)
    # is not "a stream id lower than a previous one".
    with RawH2(port) as c:
        c.headers(1, req_headers(method="POST"), end_stream=False)
        c.request(3)
        c.send(frame(DATA, 0, 1, b"abc"))
        c.headers(1, [("x-trailer", "1")], end_stream=True)
        c.request(5)
        assert c.wait_stream(5) == (200, []), c.frames
        assert c.wait_stream(3) == (200, []), c.frames
        assert c.status(1) == 200 and not c.goaways(), c.frames


def test_data_on_idle_stream_is_protocol_error(port):
    conn_error(port, frame(DATA, END_STREAM, 7, b"x"), PROTOCOL_ERROR)


def test_data_on_half_closed_stream_is_stream_closed(port):
    # The client ended stream 1 (END_STREAM on HEADERS): DATA on it after that is STREAM_CLOSED,
    # a stream error or a connection error (RFC 9113 section 5.1, half-closed (remote)).
    with RawH2(port) as c:
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, c.block(req_headers()))
               + frame(DATA, 0, 1, b"x"))
        c.pump(lambda: c.rst(1) or c.goaways() or c.eof, 3)
        codes = c.rst(1) + [code for _, code in c.goaways()]
        assert STREAM_CLOSED in codes, c.frames
    still_serving(port)


def test_window_update_zero_on_connection_is_protocol_error(port):
    conn_error(port, frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)), PROTOCOL_ERROR)


def test_window_update_zero_on_stream_is_protocol_error(port):
    # RFC 9113 section 6.9: a stream error PROTOCOL_ERROR; section 5.4.1 lets an endpoint treat
    # a stream error as a connection error, which is what nghttp2 does here.
    with RawH2(port) as c:
        # One write, so the stream is still open when the WINDOW_UPDATE is read.
        c.send(frame(HEADERS, END_HEADERS, 1,
                     c.block(req_headers(method="POST", extra=[("content-length", "3")])))
               + frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0)))
        c.pump(lambda: c.rst(1) or c.goaways(), 3)
        codes = c.rst(1) + [code for _, code in c.goaways()]
        assert codes == [PROTOCOL_ERROR], c.frames
    still_serving(port)


def test_connection_window_overflow_is_flow_control_error(port):
    conn_error(port, frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)),
               FLOW_CONTROL_ERROR)


def test_settings_enable_push_2_is_protocol_error(port):
    conn_error(port, settings((ENABLE_PUSH, 2)), PROTOCOL_ERROR)


def test_settings_initial_window_too_large_is_flow_control_error(port):
    conn_error(port, settings((INITIAL_WINDOW_SIZE, 0x80000000)), FLOW_CONTROL_ERROR)


def test_settings_ack_with_payload_is_frame_size_error(port):
    conn_error(port, frame(SETTINGS, ACK, 0, struct.pack(">HI", INITIAL_WINDOW_SIZE, 100)),
               FRAME_SIZE_ERROR)


def test_ping_with_wrong_length_is_frame_size_error(port):
    conn_error(port, frame(PING, 0, 0, b"1234567"), FRAME_SIZE_ERROR)


def test_invalid_hpack_index_is_compression_error(port):
    # Indexed field 70: past the static table (61) with an empty dynamic table.
    with RawH2(port) as c:
        c.headers(1, None, raw_block=b"\x82\x86\x84" + bytes([0x80 | 70]))
        _, got = c.wait_goaway()
        assert got == COMPRESSION_ERROR, c.frames
    still_serving(port)


def test_continuation_without_headers_is_protocol_error(port):
    with RawH2(port) as c:
        c.send(frame(CONTINUATION, END_HEADERS, 1, c.block(req_headers())))
        _, got = c.wait_goaway()
        assert got == PROTOCOL_ERROR, c.frames
    still_serving(port)


# ---- stream errors: request header rules (RFC 9113 section 8.3) -----------------------------

@pytest.mark.parametrize("missing", [":method", ":path", ":scheme"])
def test_missing_pseudo_header_is_stream_protocol_error(port, missing):
    hdrs = [h for h in req_headers() if h[0] != missing]
    stream_error(port, 1, lambda c: c.headers(1, hdrs), PROTOCOL_ERROR)


def test_pseudo_header_after_regular_header_is_stream_protocol_error(port):
    hdrs = [(":method", "GET"), (":scheme", "http"), ("accept", "*/*"), (":path", "/"),
            (":authority", "test")]
    stream_error(port, 1, lambda c: c.headers(1, hdrs), PROTOCOL_ERROR)


def test_uppercase_header_name_is_stream_protocol_error(port):
    hdrs = req_headers(extra=[("X-Upper", "1")])
    stream_error(port, 1, lambda c: c.headers(1, hdrs), PROTOCOL_ERROR)


def test_duplicate_path_is_stream_protocol_error(port):
    hdrs = req_headers(extra=[(":path", "/other")])
    # The block puts the second :path last, after no regular header: only the duplicate counts.
    stream_error(port, 1, lambda c: c.headers(1, hdrs), PROTOCOL_ERROR)


def test_content_length_mismatch_is_stream_protocol_error(port):
    def send(c):
        c.send(frame(HEADERS, END_HEADERS, 1,
                     c.block(req_headers(method="POST", extra=[("content-length", "10")])))
               + frame(DATA, END_STREAM, 1, b"12345"))
    stream_error(port, 1, send, PROTOCOL_ERROR)


def test_data_beyond_content_length_is_stream_protocol_error(port):
    def send(c):
        c.send(frame(HEADERS, END_HEADERS, 1,
                     c.block(req_headers(method="POST", extra=[("content-length", "2")])))
               + frame(DATA, END_STREAM, 1, b"12345"))
    stream_error(port, 1, send, PROTOCOL_ERROR)


# ---- floods and bombs -----------------------------------------------------------------------
# Each attack runs against a proxy to a real backend, repeated on fresh connections for a second
# while a bystander client is served: the attacking connection gets GOAWAY ENHANCE_YOUR_CALM and
# is closed, no request of the attack reaches the backend, the bystander is served during the
# attack (not only after it), and the server's memory stays bounded.

def run_attack(gh, backend, attack, seconds=1.0):
    """Runs attack(port) repeatedly for `seconds` beside a Bystander; returns the rounds run."""
    before = len(attack_targets(backend))
    rounds = 0
    with RssSampler(gh.pid) as rss, Bystander(gh.port) as by:
        t0 = time.monotonic()
        while rounds < 3 or time.monotonic() - t0 < T(seconds):
            attack(gh.port)
            rounds += 1
        t1 = time.monotonic()
    assert not by.failures, by.failures[:3]
    assert by.between(t0, t1) >= 1, f"bystander not served during {t1 - t0:.2f}s of attack"
    assert len(attack_targets(backend)) == before, attack_targets(backend)
    # Under ASan its quarantine and shadow memory make RSS meaningless (7000 bombs a second
    # reach 330 MiB there; 4 MiB without).
    assert SANITIZER or rss.max_kib < RSS_LIMIT_KIB, f"peak RSS {rss.max_kib} KiB"
    return rounds


def calm_goaway(c, timeout=5):
    """The connection ends with GOAWAY ENHANCE_YOUR_CALM and is closed."""
    _, code = c.wait_goaway(timeout)
    assert code == ENHANCE_YOUR_CALM, c.frames[-3:]
    assert c.eof, "connection not closed after the GOAWAY"


def continuation_empty(port):
    """CVE-2024-27316 style: HEADERS without END_HEADERS, then CONTINUATION frames that never
    end the block. Cut off after a few (nghttp2's max_continuations), not when the client quits."""
    with RawH2(port) as c:
        c.send(frame(HEADERS, END_STREAM, 1, c.block(req_headers("/echo?attack"))))
        for _ in range(1000):
            c.send(frame(CONTINUATION, 0, 1, b""))
            if c.eof:
                break
        calm_goaway(c)


def test_continuation_flood_of_empty_frames_gets_goaway(proxied_h2):
    run_attack(*proxied_h2, continuation_empty)


def continuation_bytes(port):
    """CONTINUATION frames full of header fields: cut off long before 1 MiB was sent."""
    with RawH2(port) as c:
        c.settled()
        c.send(frame(HEADERS, END_STREAM, 1, c.block(req_headers("/echo?attack"))))
        filler = hpack.Encoder().encode([("x-filler", "a" * 16000)])
        sent = 0
        while sent < 16 << 20 and not c.eof and not c.goaways():
            c.send(frame(CONTINUATION, 0, 1, filler))
            sent += len(filler)
            c.pump(lambda: bool(c.goaways()), 0.001)
        assert c.goaways(), f"no GOAWAY after {sent} bytes of CONTINUATION"
        assert sent < 1 << 20, f"cut off only after {sent} bytes"
        calm_goaway(c)


def test_continuation_flood_with_header_bytes_is_bounded(proxied_h2):
    run_attack(*proxied_h2, continuation_bytes)


def hpack_bomb(port):
    """A 4000-byte field added to the dynamic table, then referenced by its one-byte index
    15000 times in the same block: 16 KiB on the wire that decode to 60 MB. The block passes the
    SETTINGS_MAX_HEADER_LIST_SIZE we announced (64 KiB) after 16 references: connection error."""
    with RawH2(port) as c:
        name, value = b"x-bomb", b"b" * 4000
        # literal with incremental indexing, new name: 0x40, name, value
        lit = b"\x40" + bytes([len(name)]) + name + b"\x7f" + hpack_int(len(value) - 127) + value
        path = b"/echo?attack"
        static = b"\x82\x86\x04" + bytes([len(path)]) + path + b"\x01\x04test"
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, static + lit + b"\xbe" * 12000))
        calm_goaway(c)   # 0xbe: indexed field 62, the newest entry: ours
        assert c.status(1) is None, c.frames[-3:]


def test_hpack_bomb_is_refused_with_bounded_memory(proxied_h2):
    run_attack(*proxied_h2, hpack_bomb)


def test_head_within_the_list_size_but_over_max_header_size_is_431(proxied_h2):
    """The other side of the HPACK rule: a head above limits.max_header_size (32 KiB) and within
    the announced list size (64 KiB) is an ordinary oversized request: 431 on its stream, the
    connection goes on, and the upstream never sees it."""
    gh, backend = proxied_h2
    with RawH2(gh.port) as c:
        c.big_request(1, "/echo?attack", extra=[("x-big", "a" * 40000)])
        assert c.wait_stream(1) == (431, []), c.frames[-3:]
        c.request(3, "/echo?bystander")
        assert c.wait_stream(3) == (200, []), c.frames[-3:]
        assert not c.goaways()
    assert attack_targets(backend) == []


def test_settings_with_too_many_entries_gets_enhance_your_calm(port):
    # 33 entries (unknown ids, which a receiver otherwise ignores): over the 32 we accept.
    conn_error(port, settings(*[(0x100 + i, 1) for i in range(33)]), ENHANCE_YOUR_CALM)
    with RawH2(port) as c:   # 32 are fine
        c.send(settings(*[(0x100 + i, 1) for i in range(32)]))
        c.request(1)
        assert c.wait_stream(1) == (200, []), c.frames[-3:]


def test_settings_flood_gets_enhance_your_calm(server):
    """Thousands of SETTINGS frames, none of the ACKs read, sent in slices so that no single
    read of ours holds more than a few hundred: nghttp2's limit on unsent ACKs alone would not
    trip, the count of SETTINGS received must. At most the allowance (1000 at once) is
    answered before the GOAWAY."""
    with RssSampler(server.pid) as rss, RawH2(server.port) as c:
        burst = settings() * 200
        for _ in range(25):
            c.send(burst)
            if c.eof:
                break
            time.sleep(0.002)
        calm_goaway(c)
        acks = sum(1 for t, f, _, _ in c.frames if t == SETTINGS and f & ACK)
        assert acks <= 1000 + 100, f"{acks} SETTINGS answered before the GOAWAY"
    assert SANITIZER or rss.max_kib < RSS_LIMIT_KIB, f"peak RSS {rss.max_kib} KiB"
    still_serving(server.port)


def hpack_int(n):
    """HPACK integer continuation bytes after a saturated 7-bit prefix."""
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
