"""HTTP/2 frame-level conformance (RFC 9113) of the server codec, over h2c with prior knowledge:
frames built by hand (struct-packed frame headers, HPACK from python3-hpack) so that we can send
what a well-behaved client library refuses to. For each violation: the exact error code, as a
connection error (GOAWAY) or a stream error (RST_STREAM), and a fresh connection still served."""
import socket
import struct
import time

import pytest

from conftest import RssSampler, T, respond_config

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

def test_continuation_flood_of_empty_frames_gets_goaway(port):
    """CVE-2024-27316 style: HEADERS without END_HEADERS, then CONTINUATION frames that never
    end the block. The connection is cut off after a few, not after the client gives up."""
    with RawH2(port) as c:
        blk = c.block(req_headers())
        c.send(frame(HEADERS, END_STREAM, 1, blk))
        for _ in range(1000):
            c.send(frame(CONTINUATION, 0, 1, b""))
            if c.eof:
                break
        _, code = c.wait_goaway()
        assert code in (PROTOCOL_ERROR, 11), c.frames[-3:]   # 11 = ENHANCE_YOUR_CALM
        assert c.eof
    still_serving(port)


def test_continuation_flood_with_header_bytes_is_bounded(server):
    """CONTINUATION frames full of header fields: memory stays bounded and the client is cut
    off long before it has sent 16 MiB; everyone else is served meanwhile."""
    with RssSampler(server.pid) as rss, RawH2(server.port) as c:
        c.send(frame(HEADERS, END_STREAM, 1, c.block(req_headers())))
        filler = hpack.Encoder().encode([("x-filler", "a" * 16000)])
        sent = 0
        while sent < 16 << 20 and not c.eof and not c.goaways():
            c.send(frame(CONTINUATION, 0, 1, filler))
            sent += len(filler)
            c.pump(lambda: bool(c.goaways()), 0.001)
        assert c.goaways(), f"no GOAWAY after {sent} bytes of CONTINUATION"
        assert sent < 1 << 20, f"cut off only after {sent} bytes"
        c.pump(lambda: c.eof, 5)
        assert c.eof, "still connected after the GOAWAY"
    assert rss.max_kib < 64 * 1024, f"peak RSS {rss.max_kib} KiB"
    still_serving(server.port)


def test_hpack_bomb_is_refused_with_bounded_memory(server):
    """A 4 KiB field put in the dynamic table once, then referenced by its one-byte index many
    thousand times: 1 KiB on the wire that decodes to tens of MiB. The stream is refused (431)
    or reset, memory stays bounded, and the connection and a fresh one are still served."""
    with RssSampler(server.pid) as rss, RawH2(server.port) as c:
        # literal with incremental indexing, new name: 0x40, name, value (4000 bytes)
        name, value = b"x-bomb", b"b" * 4000
        lit = b"\x40" + bytes([len(name)]) + name + b"\x7f" + hpack_int(len(value) - 127) + value
        static = b"\x82\x86\x84\x01\x04test"   # GET, http, /, :authority test (not indexed)
        c.headers(1, None, end_stream=True, raw_block=static + lit)
        assert c.wait_stream(1) == (200, []), c.frames[-3:]
        bomb = static + b"\xbe" * 15000   # 0xbe: indexed field 62, the newest entry: ours
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, bomb))
        status, rst = c.wait_stream(3)
        g = c.goaways()
        assert status == 431 or rst or g, c.frames[-3:]
        if not g:
            c.request(5)
            assert c.wait_stream(5) == (200, []), c.frames[-3:]
    assert rss.max_kib < 64 * 1024, f"peak RSS {rss.max_kib} KiB"
    still_serving(server.port)


def hpack_int(n):
    """HPACK integer continuation bytes after a saturated 7-bit prefix."""
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
