#!/usr/bin/env python3
"""Gatehouse test backend: a small raw-socket, threaded HTTP/1.1 server that misbehaves on command.

One thread per connection, keep-alive, Content-Length and chunked request bodies.
`python3 backend.py [--host H] [--port P] [--control-port C]` prints `listening on H:P` and
`control on H:C`, then serves until SIGINT/SIGTERM. The tests run it as a separate process (so
the GIL of the test process never slows the 1 GiB transfers) and read its counters from the
control port: `GET /stats` there answers JSON {connections, closed, dropped, bytes_sent,
requests: [[conn_id, method, target], ...]}; control connections are not counted.
`GET /misbehave?reset=1` there makes this backend (only this one, whatever the path) read each
request whole, then close with a TCP reset (RST, no response byte): the app that crashes while
handling it. `reset=0` restores normal service. Such requests count in `dropped`.
`GET /misbehave?status=N` there makes it answer every request with status N (a short text
body), whatever the path: the app that fails everything; `status=0` restores normal service.
It is also usable in-process: Backend().start() returns the bound port.

Commands (path [?options]); every command also accepts `set=Name:Value` (repeatable) to add a
response header, and those answering with a fixed body (/echo, /status/N, ...) `split_ms=MS`:
send the head, wait MS ms, then send the body (two segments, as many app servers write them):

  /                       a text index of these commands
  /echo                   200, JSON: method, target, version, headers ([[name, value], ...] in the
                          order received), body_len, body_sha256, trailers, conn_id, conn_request
                          (1-based index on its connection), connections (accepted so far), port
      close_after=MS        answer as usual (keep-alive), then close the idle connection MS ms later
      drop_next=1           answer as usual, then read the next request on this connection and
                            close without answering (the pooled-connection race, deterministic)
  /bytes?n=N              N bytes of pattern() with Content-Length; chunked=1 -> chunked;
                          chunk=K -> size of each write / chunk (default 1 MiB);
                          pause_at=K&pause_ms=MS -> stall MS ms after the first K bytes
  /sink                   reads the request body fast, 200 JSON: bytes, sha256, chunked,
                          pattern_ok (body equals pattern(0, n)); hash=0 skips the sha256;
                          wait=MS waits before reading the body (upload back-pressure)
  /delay?ms=N             waits N ms, then answers like /echo
  /status/N               status N with a short body (none for 1xx, 204, 304 or HEAD)
  /health                 a health check target: 200 "health 200" until /health/N says otherwise
  /health/N               from now on /health answers status N (this answer too)
  /close-before-response  reads the request, closes without answering
  /close-mid-body         Content-Length: 1000, sends 100 bytes, closes; chunked=1: one 100-byte
                          chunk and no last chunk, then closes
  /until-close and /close-mid-body send their data and FIN in one segment (TCP_CORK, then
                          shutdown) so the peer gets both in one read event; cork=0: FIN 50 ms
                          after the data instead
  /interim                103 Early Hints (with a Link header), then 200 "final\\n"
  /until-close?n=N        200 without Content-Length or chunked: N bytes (default 1000), then closes
  /no-keepalive           200 with Connection: close, then closes
  /garbage?kind=K         answers something invalid, then closes: text (not HTTP, the default),
                          status, version, cl-te, two-cl, bad-name, obs-fold, huge-head
  /ws                     WebSocket echo (RFC 6455): 101 with Sec-WebSocket-Accept (and the first
                          offered Sec-WebSocket-Protocol), then every data frame back with its
                          opcode and FIN, unmasked; ping -> pong; close -> close, then closes
                          the connection. Not a WebSocket handshake -> 400
      greet=TEXT            a text message sent in the same segment as the 101 head
      headers=1             the first message is JSON: the handshake's headers as received
  /extra?kind=K           a complete response, then bytes it must not send: FORGED (a whole
                          forged response with Set-Cookie: session=forged), keeping the connection
                          open for the next request (response poisoning through a proxy's pool).
                          kind: head-body (Content-Length: len(FORGED), then FORGED as the body of
                          a HEAD response), 204-body, 304-body (FORGED after the head), cl-extra
                          (Content-Length: 6 "hello\\n" then FORGED), chunk-extra (a chunked
                          "hello\\n", its last chunk, then FORGED)
      late_ms=MS            send FORGED MS ms after the response instead of with it
  /raw-te?te=V            200 with Transfer-Encoding: V and the body "hello\\n" as one chunk (V must
                          end in chunked for that to be a valid framing), then closes
  /upgrade-echo           101 switching to the Upgrade asked for (default "echo"), then every
                          byte back as it comes; at the client's FIN, FIN back (half-close)
      greet=TEXT            bytes sent in the same segment as the 101 head
  /text?n=N               N bytes of compressible text (text_bytes(): numbered lines of words),
                          Content-Type text/plain (ctype=T replaces it, e.g. application/json),
                          Content-Length; chunked=1 -> chunked; chunk=K -> size of each write
                          (default 64 KiB); pause_at=K&pause_ms=MS as /bytes; HEAD: head only
  /sse?events=N           text/event-stream, chunked: N events "id: I\ndata: ...\n\n" (about
                          200 bytes each), interval_ms=MS apart (default 200), then the last chunk;
                          every event counts in bytes_sent once written
"""

import argparse
import base64
import hashlib
import json
import random
import signal
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

PERIOD = 65521  # prime: a dropped or duplicated block of any power-of-two size is visible
_BASE = random.Random(0x6A7E).randbytes(PERIOD)
_BIG = _BASE * 18  # > PERIOD + 1 MiB, so any slice of up to 1 MiB starts at offset % PERIOD
MAX_SLICE = 1 << 20
_BIGVIEW = memoryview(_BIG)


def pattern(offset, length):
    """length (<= 1 MiB) bytes of the test pattern starting at absolute offset, as a memoryview."""
    assert length <= MAX_SLICE
    p = offset % PERIOD
    return _BIGVIEW[p:p + length]


def pattern_bytes(n):
    """The first n bytes of the pattern (for small bodies)."""
    out = bytearray()
    while len(out) < n:
        out += pattern(len(out), min(MAX_SLICE, n - len(out)))
    return bytes(out)


_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo")
_TEXT = "".join(f"{i:06d} {' '.join(_WORDS[(i * 7 + j) % len(_WORDS)] for j in range(8))}\n"
                for i in range(24000)).encode()  # about 1.3 MiB: compresses like real text


def text_bytes(offset, length):
    """length bytes of the compressible text from absolute offset (it repeats)."""
    out = bytearray()
    while len(out) < length:
        p = (offset + len(out)) % len(_TEXT)
        out += _TEXT[p:p + length - len(out)]
    return bytes(out)


class PatternChecker:
    """Feed received data in order; .ok stays True while it equals the pattern."""

    def __init__(self):
        self.offset = 0
        self.ok = True

    def feed(self, data):
        data = memoryview(data)
        while len(data) and self.ok:
            # 64 KiB steps: 1 MiB temporaries make glibc grow and trim the heap on every call.
            n = min(len(data), 1 << 16)
            if data[:n].tobytes() != pattern(self.offset, n).tobytes():
                self.ok = False
            self.offset += n
            data = data[n:]


class BadRequest(Exception):
    pass


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_mask(data, mask):
    """data XOR the repeated 4-byte mask, at C speed (a 1 MiB frame byte by byte is slow)."""
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def ws_frame(opcode, payload, fin=True, mask=None):
    """One WebSocket frame; masked when mask (4 bytes) is given, as a client must."""
    n = len(payload)
    head = bytearray([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head.append(bit | n)
    elif n < 1 << 16:
        head.append(bit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(bit | 127)
        head += n.to_bytes(8, "big")
    if mask:
        return bytes(head) + mask + ws_mask(payload, mask)
    return bytes(head) + payload


def ws_read_frame(read_exact):
    """(fin, opcode, payload) of the next frame, unmasked; read_exact(n) returns n bytes."""
    b0, b1 = read_exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(read_exact(2), "big")
    elif n == 127:
        n = int.from_bytes(read_exact(8), "big")
    mask = read_exact(4) if b1 & 0x80 else None
    payload = read_exact(n) if n else b""
    return bool(b0 & 0x80), b0 & 0x0F, ws_mask(payload, mask) if mask else payload


class Conn:
    """One accepted connection: a socket plus a read buffer."""

    def __init__(self, sock, cid):
        self.sock = sock
        self.id = cid
        self.buf = bytearray()
        self.requests = 0
        self.drop_next = False
        self.recvbuf = bytearray(MAX_SLICE)

    def _fill(self):
        n = self.sock.recv_into(self.recvbuf)
        if n == 0:
            raise EOFError
        self.buf += memoryview(self.recvbuf)[:n]

    def read_until(self, sep, limit=1 << 20):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise BadRequest("line too long")
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_into(self, n, consume):
        """Read exactly n bytes, passing them to consume() in slices (nothing accumulates)."""
        if self.buf:
            take = min(n, len(self.buf))
            consume(memoryview(self.buf)[:take])
            del self.buf[:take]
            n -= take
        while n > 0:
            got = self.sock.recv_into(self.recvbuf, min(n, len(self.recvbuf)))
            if got == 0:
                raise EOFError
            consume(memoryview(self.recvbuf)[:got])
            n -= got


class Request:
    def __init__(self, method, target, version, headers):
        self.method, self.target, self.version, self.headers = method, target, version, headers
        url = urlsplit(target)
        self.path = url.path
        self.query = parse_qs(url.query)
        self.trailers = []

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def q(self, name, default=None):
        v = self.query.get(name)
        return v[0] if v else default

    def qint(self, name, default=0):
        return int(self.q(name, default))

    def keep_alive(self):
        conn = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


class Body:
    """Consumer of a request body: counts, hashes, compares with the pattern."""

    def __init__(self, hashing=True):
        self.len = 0
        self.sha = hashlib.sha256() if hashing else None
        self.check = PatternChecker()

    def __call__(self, data):
        self.len += len(data)
        if self.sha:
            self.sha.update(data)
        self.check.feed(data)


GARBAGE = {  # /garbage?kind=...: responses a proxy must refuse (502)
    "text": b"this is not HTTP at all\r\n\r\n",
    "status": b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
    "version": b"HTTP/9.9 200 OK\r\nContent-Length: 0\r\n\r\n",
    "cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\n0\r\n\r\n",
    "two-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "bad-name": b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",
    "huge-head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100000 + b"\r\nContent-Length: 0\r\n\r\n",
}

FORGED = (b"HTTP/1.1 200 OK\r\nSet-Cookie: session=forged\r\nContent-Length: 7\r\n\r\n"
          b"FORGED\n")  # /extra: what a misbehaving upstream sends after its response

REASONS = {100: "Continue", 103: "Early Hints", 200: "OK", 204: "No Content", 301: "Moved",
           302: "Found", 304: "Not Modified", 400: "Bad Request", 404: "Not Found",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class Backend:
    def __init__(self, host="127.0.0.1", port=0, name="backend"):
        self.host, self.port, self.name = host, port, name
        self.lock = threading.Condition()
        self.connections = 0     # accepted so far
        self.closed = 0          # connections closed so far (by either side)
        self.dropped = 0         # requests read and deliberately not answered
        self.bytes_sent = 0      # body bytes sent by /bytes
        self.requests = []       # (conn_id, method, target) in arrival order
        self.stopping = threading.Event()
        self.socks = set()
        self.threads = []

    # ---- lifecycle -------------------------------------------------------------------------
    def _listen(self, port, control):
        lsn = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsn.bind((self.host, port))
        lsn.listen(1024)
        t = threading.Thread(target=self._accept_loop, args=(lsn, control), daemon=True,
                             name=f"{self.name}-accept{'-control' if control else ''}")
        t.start()
        self.threads.append(t)
        return lsn

    def start(self, control_port=None):
        """Starts listening (and on control_port, if not None, for GET /stats); returns the port."""
        self.listener = self._listen(self.port, False)
        self.port = self.listener.getsockname()[1]
        self.control = self._listen(control_port, True) if control_port is not None else None
        self.control_port = self.control.getsockname()[1] if self.control else None
        return self.port

    def stats(self):
        with self.lock:
            return {"connections": self.connections, "closed": self.closed,
                    "dropped": self.dropped, "bytes_sent": self.bytes_sent,
                    "requests": list(self.requests)}

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def stop(self):
        self.stopping.set()
        for lsn in (self.listener, self.control):
            if lsn is None:
                continue
            try:
                lsn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            lsn.close()
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(timeout=5)

    def wait_for(self, predicate, timeout=10):
        """Wait until predicate(self) is true (checked under the lock). Returns its value."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return predicate(self)
                self.lock.wait(min(left, 0.1))
            return True

    def _accept_loop(self, lsn, control):
        while not self.stopping.is_set():
            try:
                sock, _ = lsn.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                if not control:
                    self.connections += 1
                cid = 0 if control else self.connections
                self.socks.add(sock)
                self.lock.notify_all()
            t = threading.Thread(target=self._serve, args=(Conn(sock, cid), control),
                                 name=f"{self.name}-conn{cid}", daemon=True)
            t.start()
            self.threads = [x for x in self.threads if x.is_alive()] + [t]

    def _serve(self, conn, control=False):
        try:
            while not self.stopping.is_set():
                req = self._read_head(conn, control)
                if req is None:
                    break
                if control:
                    ok = req.path in ("/stats", "/misbehave")
                    if req.path == "/misbehave" and req.q("status") is not None:
                        self.status_all = req.qint("status")
                    elif req.path == "/misbehave":
                        self.reset_all = req.q("reset") == "1"
                    body = json.dumps(self.stats()).encode() if ok else b"not found\n"
                    self._send(conn, req, 200 if ok else 404, body, "application/json")
                elif not self._handle(conn, req):
                    break
        except (OSError, EOFError, BadRequest, ValueError):
            pass
        finally:
            with self.lock:
                self.socks.discard(conn.sock)
                if not control:
                    self.closed += 1
                self.lock.notify_all()
            conn.sock.close()

    # ---- request reading -------------------------------------------------------------------
    def _read_head(self, conn, control=False):
        try:
            head = b""
            while head == b"":  # tolerate empty lines between requests
                head = conn.read_until(b"\r\n\r\n").lstrip(b"\r\n")
        except EOFError:
            return None
        line, _, head = head.partition(b"\r\n")
        method, target, version = line.decode("latin-1").split(" ")
        headers = []
        for h in head.decode("latin-1").split("\r\n") if head else []:
            name, _, value = h.partition(":")
            headers.append([name, value.strip(" \t")])
        conn.requests += 1
        req = Request(method, target, version, headers)
        req.conn_request = conn.requests
        if control:
            return req
        with self.lock:
            self.requests.append((conn.id, method, target))
            self.lock.notify_all()
        return req

    def _read_body(self, conn, req, body):
        te = (req.header("transfer-encoding") or "").lower()
        if te:
            if te != "chunked":
                raise BadRequest("transfer-encoding " + te)
            while True:
                size = int(conn.read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    break
                conn.read_into(size, body)
                if conn.read_until(b"\r\n") != b"":
                    raise BadRequest("chunk without CRLF")
            while True:
                t = conn.read_until(b"\r\n")
                if t == b"":
                    break
                name, _, value = t.decode("latin-1").partition(":")
                req.trailers.append([name, value.strip()])
        else:
            conn.read_into(int(req.header("content-length") or 0), body)

    # ---- responses -------------------------------------------------------------------------
    def _send_head(self, conn, req, status, headers, keep_alive):
        extra = []
        for s in req.query.get("set", []):
            name, _, value = s.partition(":")
            extra.append((name, value))
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in list(headers) + extra]
        if not keep_alive:
            lines.append("Connection: close")
        conn.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _send(self, conn, req, status, body=b"", ctype="text/plain", keep_alive=True, headers=()):
        keep_alive = keep_alive and req.keep_alive()
        no_body = req.method == "HEAD" or status in (204, 304)
        hdrs = [("Content-Type", ctype)] if ctype else []
        if status not in (204, 304):
            hdrs.append(("Content-Length", str(len(body))))
        self._send_head(conn, req, status, hdrs + list(headers), keep_alive)
        if not no_body and body:
            if req.q("split_ms") is not None:
                self.stopping.wait(req.qint("split_ms") / 1000)
            conn.sock.sendall(body)
        return keep_alive

    def _echo(self, conn, req, body):
        return json.dumps({
            "method": req.method, "target": req.target, "version": req.version,
            "headers": req.headers, "trailers": req.trailers,
            "body_len": body.len, "body_sha256": body.sha.hexdigest(),
            "conn_id": conn.id, "conn_request": req.conn_request,
            "connections": self.connections, "port": self.port,
        }).encode() + b"\n"

    def _handle(self, conn, req):
        """Serve one request; returns True to keep the connection open."""
        path = req.path
        body = Body(hashing=not (path == "/sink" and req.q("hash") == "0"))
        if conn.drop_next:  # read it, then vanish without a byte
            self._read_body(conn, req, body)
            with self.lock:
                self.dropped += 1
            return False
        if path == "/sink" and req.q("wait"):  # let the body pile up upstream of us first
            self.stopping.wait(req.qint("wait") / 1000)
        if path == "/close-before-response":
            self._read_body(conn, req, body)
            with self.lock:
                self.dropped += 1
            return False
        if getattr(self, "reset_all", False):  # control /misbehave?reset=1
            self._read_body(conn, req, body)
            with self.lock:
                self.dropped += 1
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False  # the close sends RST, not FIN
        self._read_body(conn, req, body)
        if getattr(self, "status_all", 0):  # control /misbehave?status=N
            return self._send(conn, req, self.status_all, f"status {self.status_all}\n".encode())

        if path in ("/echo", "/delay"):
            if path == "/delay":
                self.stopping.wait(req.qint("ms", 1000) / 1000)
            ka = self._send(conn, req, 200, self._echo(conn, req, body), "application/json")
            if req.q("drop_next") == "1":
                conn.drop_next = True
            if req.q("close_after") is not None:
                self.stopping.wait(req.qint("close_after") / 1000)
                return False
            return ka
        if path == "/bytes":
            return self._bytes(conn, req)
        if path == "/sink":
            out = {"bytes": body.len, "sha256": body.sha.hexdigest() if body.sha else None,
                   "chunked": req.header("transfer-encoding") is not None,
                   "pattern_ok": body.check.ok, "trailers": req.trailers}
            return self._send(conn, req, 200, json.dumps(out).encode() + b"\n", "application/json")
        if path.startswith("/status/"):
            status = int(path[len("/status/"):])
            return self._send(conn, req, status, f"status {status}\n".encode())
        if path == "/close-mid-body":
            self._cork(conn, req)
            if req.q("chunked") == "1":
                self._send_head(conn, req, 200, [("Transfer-Encoding", "chunked")], True)
                conn.sock.sendall(b"64\r\n" + pattern_bytes(100) + b"\r\n")
            else:
                self._send_head(conn, req, 200, [("Content-Length", "1000")], True)
                conn.sock.sendall(pattern_bytes(100))
            self._close_corked(conn)
            return False
        if path == "/interim":
            conn.sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            self.stopping.wait(req.qint("ms", 50) / 1000)
            return self._send(conn, req, 200, b"final\n")
        if path == "/until-close":
            self._cork(conn, req)
            self._send_head(conn, req, 200, [("Content-Type", "application/octet-stream")], True)
            if req.method != "HEAD":
                conn.sock.sendall(pattern_bytes(req.qint("n", 1000)))
            self._close_corked(conn)
            return False
        if path == "/no-keepalive":
            self._send(conn, req, 200, b"bye\n", keep_alive=False)
            return False
        if path == "/garbage":
            conn.sock.sendall(GARBAGE.get(req.q("kind", "text"), GARBAGE["text"]))
            self.stopping.wait(0.05)
            return False
        if path == "/extra":
            return self._extra(conn, req)
        if path == "/raw-te":
            conn.sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " +
                              req.q("te", "chunked").encode("latin-1") +
                              b"\r\nConnection: close\r\n\r\n6\r\nhello\n\r\n0\r\n\r\n")
            return False
        if path == "/ws":
            return self._websocket(conn, req)
        if path == "/text":
            return self._text(conn, req)
        if path == "/sse":
            return self._sse(conn, req)
        if path == "/upgrade-echo":
            return self._upgrade_echo(conn, req)
        if path == "/health" or path.startswith("/health/"):
            if path != "/health":
                self.health_status = int(path[len("/health/"):])
            status = getattr(self, "health_status", 200)
            return self._send(conn, req, status, f"health {status}\n".encode())
        if path == "/":
            return self._send(conn, req, 200, __doc__.encode())
        return self._send(conn, req, 404, b"no such command\n")

    def _websocket(self, conn, req):
        key = req.header("sec-websocket-key")
        if (req.header("upgrade") or "").lower() != "websocket" or not key:
            return self._send(conn, req, 400, b"not a websocket handshake\n", keep_alive=False)
        lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Accept: {ws_accept(key)}"]
        proto = req.header("sec-websocket-protocol")
        if proto:
            lines.append(f"Sec-WebSocket-Protocol: {proto.split(',')[0].strip()}")
        first = b""
        if req.q("greet") is not None:
            first += ws_frame(0x1, req.q("greet").encode())
        if req.q("headers") == "1":
            first += ws_frame(0x1, json.dumps(req.headers).encode())
        conn.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + first)
        while True:
            fin, op, payload = ws_read_frame(conn.read_exact)
            if op == 0x8:  # close: answer it, then close the connection first (RFC 6455 7.1.1)
                conn.sock.sendall(ws_frame(0x8, payload[:2]))
                conn.sock.shutdown(socket.SHUT_WR)
                conn.sock.settimeout(2)
                try:
                    while conn.sock.recv(65536):
                        pass
                except OSError:
                    pass
                return False
            if op == 0x9:
                conn.sock.sendall(ws_frame(0xA, payload))
            elif op != 0xA:
                conn.sock.sendall(ws_frame(op, payload, fin))

    def _upgrade_echo(self, conn, req):
        proto = req.header("upgrade") or "echo"
        head = (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: {proto}\r\n"
                "Connection: Upgrade\r\n\r\n")
        conn.sock.sendall(head.encode("latin-1") + req.q("greet", "").encode())
        if conn.buf:  # bytes the client sent right behind its request head
            conn.sock.sendall(bytes(conn.buf))
            conn.buf.clear()
        while True:
            d = conn.sock.recv(65536)
            if not d:
                break
            conn.sock.sendall(d)
        conn.sock.shutdown(socket.SHUT_WR)
        return False

    def _extra(self, conn, req):
        kind = req.q("kind", "cl-extra")
        if kind == "head-body":
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(FORGED)
        elif kind in ("204-body", "304-body"):
            head = b"HTTP/1.1 %s\r\n\r\n" % (b"204 No Content" if kind == "204-body"
                                                else b"304 Not Modified")
        elif kind == "chunk-extra":
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello\n\r\n0\r\n\r\n"
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"
        late = req.qint("late_ms", 0)
        if not late:
            conn.sock.sendall(head + FORGED)
            return True
        conn.sock.sendall(head)
        self.stopping.wait(late / 1000)
        conn.sock.sendall(FORGED)
        return True

    @staticmethod
    def _cork(conn, req):
        """Unless cork=0: hold writes so the response and our FIN leave in one segment, and the
        peer sees data and end of stream in a single read event (as from a fast upstream)."""
        if req.q("cork") != "0":
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            conn.corked = True

    @staticmethod
    def _close_corked(conn):
        if getattr(conn, "corked", False):
            conn.sock.shutdown(socket.SHUT_WR)   # the FIN rides on the last data segment
        else:
            time.sleep(0.05)

    def _bytes(self, conn, req):
        n = req.qint("n", 0)
        step = max(1, min(req.qint("chunk", MAX_SLICE), MAX_SLICE))
        chunked = req.q("chunked") == "1"
        ka = req.keep_alive()
        hdrs = [("Content-Type", "application/octet-stream")]
        hdrs.append(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(n)))
        self._send_head(conn, req, 200, hdrs, ka)
        if req.method == "HEAD":
            return ka
        sent = 0
        pause_at = req.qint("pause_at", -1)
        while sent < n:
            if sent == pause_at:
                self.stopping.wait(req.qint("pause_ms", 1000) / 1000)
            k = min(step, n - sent, pause_at - sent if pause_at > sent else n)
            data = pattern(sent, k)
            if chunked:
                conn.sock.sendall(b"%x\r\n" % k)
            conn.sock.sendall(data)
            if chunked:
                conn.sock.sendall(b"\r\n")
            sent += k
            with self.lock:
                self.bytes_sent += k
        if chunked:
            conn.sock.sendall(b"0\r\n\r\n")
        return ka

    def _text(self, conn, req):
        n = req.qint("n", 0)
        step = max(1, min(req.qint("chunk", 65536), MAX_SLICE))
        chunked = req.q("chunked") == "1"
        ka = req.keep_alive()
        hdrs = [("Content-Type", req.q("ctype", "text/plain"))]
        hdrs.append(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(n)))
        self._send_head(conn, req, 200, hdrs, ka)
        if req.method == "HEAD":
            return ka
        sent, pause_at = 0, req.qint("pause_at", -1)
        while sent < n:
            if sent == pause_at:
                self.stopping.wait(req.qint("pause_ms", 1000) / 1000)
            k = min(step, n - sent, pause_at - sent if pause_at > sent else n)
            data = text_bytes(sent, k)
            conn.sock.sendall(b"%x\r\n%s\r\n" % (k, data) if chunked else data)
            sent += k
            with self.lock:
                self.bytes_sent += k
        if chunked:
            conn.sock.sendall(b"0\r\n\r\n")
        return ka

    def _sse(self, conn, req):
        hdrs = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                ("Transfer-Encoding", "chunked")]
        self._send_head(conn, req, 200, hdrs, req.keep_alive())
        interval = req.qint("interval_ms", 200) / 1000
        for i in range(req.qint("events", 5)):
            if i:
                self.stopping.wait(interval)
            ev = b"id: %d\ndata: %s\n\n" % (i, text_bytes(i * 180, 180).replace(b"\n", b" "))
            conn.sock.sendall(b"%x\r\n%s\r\n" % (len(ev), ev))
            with self.lock:
                self.bytes_sent += len(ev)
        conn.sock.sendall(b"0\r\n\r\n")
        return req.keep_alive()


def main():
    ap = argparse.ArgumentParser(description="Gatehouse test backend")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=None,
                    help="also serve GET /stats on this port (0: any free port)")
    args = ap.parse_args()
    b = Backend(args.host, args.port)
    b.start(args.control_port)
    print(f"listening on {b.host}:{b.port}", flush=True)
    if b.control_port is not None:
        print(f"control on {b.host}:{b.control_port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        b.stop()


if __name__ == "__main__":
    sys.exit(main())
