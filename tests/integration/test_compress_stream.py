"""Compression while streaming: server-sent events and long polls arrive as the upstream sends
them (flushed, not held for a block), a large body through a slow client keeps memory bounded,
and an upstream that dies mid-body gives the client an error, never a clean end."""

import socket
import time
import zlib

import brotli
import h2.events
import pytest
import zstandard

from backend import text_bytes
from conftest import (H1, MiB, SANITIZER, RssSampler, T, base_config, proxy_config)

CODINGS = ("gzip", "br", "zstd")


class Stream:
    """Incremental decoder of one content coding."""

    def __init__(self, coding):
        if coding == "gzip":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self.feed = d.decompress
        elif coding == "br":
            d = brotli.Decompressor()
            self.feed = d.process
        else:
            d = zstandard.ZstdDecompressor().decompressobj()
            self.feed = d.decompress


def compress_proxy(backend, compress=True, **over):
    cfg = proxy_config(backend, **over)
    cfg["sites"][0]["compress"] = compress
    return cfg


class ChunkReader:
    """Reads an HTTP/1.1 chunked body chunk by chunk from a raw socket."""

    def __init__(self, c):
        self.c = c

    def next_chunk(self):
        """The next chunk's bytes; b"" at the last chunk. EOFError when the connection ends."""
        size = int(self.c._until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            return b""
        data = self.c._exact(size)
        self.c._until(b"\r\n")
        return data


def event_end(k):
    """Bytes of /sse's events 0 .. k-1 (each "id: I\ndata: " + 180 bytes + a blank line)."""
    return sum(len(b"id: %d\ndata: " % i) + 180 + 2 for i in range(k))


def sent(backend):
    return backend.stats().bytes_sent


@pytest.mark.parametrize("coding", CODINGS)
def test_sse_events_arrive_one_by_one(gatehouse, backend, coding):
    """Every event is decodable as soon as it is through, while the upstream has yet to send
    the next: the backend's byte count proves the stream is not over when we decode it."""
    events = 5
    gh = gatehouse(compress_proxy(backend))
    with H1(gh.port, timeout=10) as c:
        c.send(H1.build("GET", f"/sse?events={events}&interval_ms={200 * (3 if SANITIZER else 1)}",
                        [("Accept-Encoding", coding)]))
        _, status, _, headers = c.read_head()
        hd = {k.lower(): v for k, v in headers}
        assert status == 200
        assert hd["content-encoding"] == coding
        assert hd["content-type"] == "text/event-stream"
        dec, text, seen = Stream(coding), b"", 0
        rd = ChunkReader(c)
        while seen < events:
            chunk = rd.next_chunk()
            assert chunk, f"the stream ended after {seen} events"
            text += dec.feed(chunk)
            while b"\n\n" in text:
                ev, _, text = text.partition(b"\n\n")
                assert ev.startswith(b"id: %d\n" % seen), ev[:40]
                # decoded before the upstream sent the next event
                assert sent(backend) < event_end(seen + 2), \
                    f"event {seen} only arrived after the upstream sent the next"
                seen += 1
        while True:    # then the coding's trailer and the clean end
            chunk = rd.next_chunk()
            if not chunk:
                break
            text += dec.feed(chunk)
        assert text == b""


@pytest.mark.parametrize("coding", CODINGS)
def test_long_poll_part_arrives_before_the_rest(gatehouse, backend, coding):
    """An upstream that sends part of the body and then pauses: what it sent is decodable at
    once, not held back until the encoder's block fills or the body ends."""
    gh = gatehouse(compress_proxy(backend))
    pause = 2000 * (3 if SANITIZER else 1)
    with H1(gh.port, timeout=15) as c:
        c.send(H1.build("GET", f"/text?n=20000&chunked=1&pause_at=6000&pause_ms={pause}",
                        [("Accept-Encoding", coding)]))
        _, status, _, headers = c.read_head()
        assert status == 200
        dec, got, rd = Stream(coding), b"", ChunkReader(c)
        while len(got) < 6000:
            chunk = rd.next_chunk()
            assert chunk, "ended early"
            got += dec.feed(chunk)
        assert sent(backend) == 6000, "the first part arrived only after the upstream went on"
        assert got == text_bytes(0, 6000)
        while True:
            chunk = rd.next_chunk()
            if not chunk:
                break
            got += dec.feed(chunk)
        assert got == text_bytes(0, 20000)


def test_sse_over_h2(gatehouse, backend):
    from test_h2_server import H2Client
    cfg = compress_proxy(backend, listen=[{"address": "127.0.0.1:0", "h2c": True}])
    gh = gatehouse(cfg)
    events = 4
    c = H2Client(gh.port)
    try:
        sid = c.request(f"/sse?events={events}&interval_ms={300 * (3 if SANITIZER else 1)}",
                        headers=[("accept-encoding", "gzip")])
        dec, text, seen = Stream("gzip"), b"", 0
        used = 0
        while seen < events - 1:
            assert c.pump(lambda evs: len(c.of(h2.events.DataReceived, sid)) > used, timeout=10)
            for e in c.of(h2.events.DataReceived, sid)[used:]:
                text += dec.feed(e.data)
            used = len(c.of(h2.events.DataReceived, sid))
            while b"\n\n" in text:
                ev, _, text = text.partition(b"\n\n")
                assert ev.startswith(b"id: %d\n" % seen)
                if seen < events - 1:
                    assert not c.of(h2.events.StreamEnded, sid), "arrived only at the end"
                seen += 1
        status, headers, body = c.response(sid, timeout=10)
        assert status == 200 and headers["content-encoding"] == "gzip"
    finally:
        c.close()


@pytest.mark.parametrize("coding", CODINGS)
def test_large_body_slow_client_bounded_rss(gatehouse, backend, coding):
    """48 MiB of compressible text compressed on its way to a client that reads slowly: the
    process stays under 32 MiB of RSS (one encoder and one buffer per stream, back-pressure
    to the upstream), and the body decodes whole."""
    n = (16 if SANITIZER else 48) * MiB
    gh = gatehouse(compress_proxy(backend, compress={"algorithms": [coding]}))
    dec = Stream(coding)
    total, expect_off = 0, 0
    ok = True
    with RssSampler(gh.pid) as rss:
        s = socket.create_connection(("127.0.0.1", gh.port), timeout=T(30))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        s.sendall(H1.build("GET", f"/text?n={n}&chunk=262144", [("Accept-Encoding", coding)]))
        c = H1.__new__(H1)
        c.sock, c.buf, c.eof = s, bytearray(), False
        _, status, _, headers = c.read_head()
        assert status == 200
        rd = ChunkReader(c)
        reads = 0
        while True:
            chunk = rd.next_chunk()
            if not chunk:
                break
            out = dec.feed(chunk)
            if ok and out != text_bytes(expect_off, len(out)):
                ok = False
            expect_off += len(out)
            total += len(out)
            reads += 1
            if reads % 4 == 0 and reads < 200:
                time.sleep(0.02)    # slow at first: the upstream runs ahead, we must hold back
        s.close()
    assert total == n and ok
    assert rss.max_kib < 32 * 1024, f"RSS peaked at {rss.max_kib} KiB"


@pytest.mark.parametrize("chunked", [0, 1])
def test_upstream_dies_mid_body_client_sees_error_h1(gatehouse, backend, chunked):
    gh = gatehouse(compress_proxy(backend, compress={"min_size": 0}))
    with H1(gh.port) as c:
        r = c.request("GET", f"/close-mid-body?chunked={chunked}&set=Content-Type:text/plain",
                      [("Accept-Encoding", "gzip")])
    assert r.status == 200
    assert r.header("content-encoding") == "gzip"
    assert not r.complete, "a cut-off body must not end cleanly (no last chunk)"


def test_upstream_dies_mid_body_client_sees_error_h2(gatehouse, backend):
    from test_h2_server import H2Client
    cfg = compress_proxy(backend, compress={"min_size": 0},
                         listen=[{"address": "127.0.0.1:0", "h2c": True}])
    gh = gatehouse(cfg)
    c = H2Client(gh.port)
    try:
        sid = c.request("/close-mid-body?set=Content-Type:text/plain",
                        headers=[("accept-encoding", "br")])
        assert c.pump(lambda evs: c.of(h2.events.StreamReset, sid) or
                      c.of(h2.events.StreamEnded, sid), timeout=10)
        assert c.of(h2.events.StreamReset, sid), "a cut-off body must end in RST_STREAM"
        assert not c.of(h2.events.StreamEnded, sid)
    finally:
        c.close()


def test_client_gone_mid_body_frees_the_filter(gatehouse, backend):
    """The client closes while a compressed body streams: the exchange ends, the worker goes
    on serving (ASan runs prove nothing leaks)."""
    gh = gatehouse(compress_proxy(backend))
    for coding in CODINGS:
        with H1(gh.port) as c:
            c.send(H1.build("GET", "/text?n=20000000&chunk=65536", [("Accept-Encoding", coding)]))
            c.read_head()
            c._fill()
    with H1(gh.port) as c:
        r = c.request("GET", "/text?n=5000", [("Accept-Encoding", "gzip")])
    assert r.status == 200 and r.header("content-encoding") == "gzip"


def test_large_body_slow_h2_client_bounded_rss(gatehouse, backend):
    """The same over HTTP/2, where the client's flow-control window holds the stream back."""
    from test_h2_server import H2Client
    n = (16 if SANITIZER else 48) * MiB
    cfg = compress_proxy(backend, compress={"algorithms": ["gzip"]},
                         listen=[{"address": "127.0.0.1:0", "h2c": True}])
    gh = gatehouse(cfg)
    dec = Stream("gzip")
    c = H2Client(gh.port, auto_ack=False)
    got, off, ok = 0, 0, True
    try:
        with RssSampler(gh.pid) as rss:
            sid = c.request(f"/text?n={n}&chunk=262144", headers=[("accept-encoding", "gzip")])
            used, slow = 0, 0
            while True:
                c.pump(lambda evs: len(c.of(h2.events.DataReceived, sid)) > used or
                       c.of(h2.events.StreamEnded, sid), timeout=30)
                data = c.of(h2.events.DataReceived, sid)
                for e in data[used:]:
                    out = dec.feed(e.data)
                    ok = ok and out == text_bytes(off, len(out))
                    off += len(out)
                    c.conn.acknowledge_received_data(e.flow_controlled_length, sid)
                c.flush()
                used = len(data)
                c.events = [e for e in c.events if not isinstance(e, h2.events.DataReceived)]
                used = 0
                if c.of(h2.events.StreamEnded, sid):
                    break
                slow += 1
                if slow < 100:
                    time.sleep(0.02)   # slow at first: the upstream runs ahead
    finally:
        c.close()
    assert off == n and ok
    assert rss.max_kib < 32 * 1024, f"RSS peaked at {rss.max_kib} KiB"
