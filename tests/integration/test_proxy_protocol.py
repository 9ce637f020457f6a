"""The PROXY protocol (issue 14), both ways.

In: a listener with `proxy_protocol: true` takes a v1 or v2 header from a trusted balancer
before TLS or HTTP, and the client it names is the client everywhere (X-Forwarded-For,
Forwarded, the access log, max_connections_per_client). Exact bytes over raw sockets: TCP4,
TCP6, UNKNOWN, LOCAL, TLVs, a header split over packets, the request right behind the header,
truncated, malformed and oversized headers, an untrusted peer; a TLS listener (header, then the
handshake); HAProxy's send-proxy and send-proxy-v2 in front.

Out: `upstreams.NAME.proxy_protocol: v1 | v2` sends the header first on each upstream
connection: the exact bytes seen by a raw server here (also a health check's LOCAL/UNKNOWN),
connections never shared between clients, and HAProxy's accept-proxy as the receiving
upstream."""
import json
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from conftest import H1, T, free_port, proxy_config, wait_until

from test_tls import make_cert

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, body):
    return SIG + bytes([cmd, fam]) + struct.pack("!H", len(body)) + body


def v2_inet(src, dst, sport, dport, tlvs=b""):
    return v2(0x21, 0x11, socket.inet_aton(src) + socket.inet_aton(dst) +
              struct.pack("!HH", sport, dport) + tlvs)


def v2_inet6(src, dst, sport, dport):
    return v2(0x21, 0x21, socket.inet_pton(socket.AF_INET6, src) +
              socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!HH", sport, dport))


def tlv(t, value):
    return bytes([t]) + struct.pack("!H", len(value)) + value


GET = b"GET /echo HTTP/1.1\r\nHost: test\r\n\r\n"


def pp_config(backend, trusted=("127.0.0.1",), tls=None, **over):
    cfg = proxy_config(backend, **over)
    listener = {"address": "127.0.0.1:0", "proxy_protocol": True}
    if tls:
        listener["tls"] = tls
    cfg["listen"] = [listener]
    cfg["trusted_proxies"] = list(trusted)
    cfg["logs"]["level"] = "debug"
    return cfg


def header_of(echo, name):
    return [v for n, v in echo["headers"] if n.lower() == name.lower()]


def send_and_read(port, data, parts=None):
    """Sends `data` (or each of `parts`, apart) on a new connection; returns the response."""
    c = H1(port, timeout=T(5))
    for p in parts or [data]:
        c.send(p)
        if parts:
            time.sleep(0.05)
    try:
        return c.read_response()
    finally:
        c.close()


def closed_without_answer(port, data, timeout=5):
    """Sends data; true when the server closes without sending a byte."""
    s = socket.create_connection(("127.0.0.1", port), timeout=T(timeout))
    try:
        s.sendall(data)
        try:
            return s.recv(1) == b""
        except ConnectionResetError:
            return True
    finally:
        s.close()


# ---- in ------------------------------------------------------------------------------------

@pytest.fixture
def pp_gh(gatehouse, backend):
    return gatehouse(pp_config(backend)), backend


def test_v1_tcp4_names_the_client_in_forwarding_headers_and_the_access_log(pp_gh):
    gh, _ = pp_gh
    r = send_and_read(gh.port, b"PROXY TCP4 203.0.113.9 198.51.100.1 40000 8443\r\n" + GET)
    assert r.status == 200
    echo = r.json()
    assert header_of(echo, "X-Forwarded-For") == ["203.0.113.9"]
    assert header_of(echo, "X-Forwarded-Port") == ["8443"]  # the port the client connected to
    assert header_of(echo, "Forwarded")[0].startswith("for=203.0.113.9;")
    line = gh.wait_access(1)[0]
    assert line.startswith("203.0.113.9 - - ["), line


def test_v1_tcp6(pp_gh):
    gh, _ = pp_gh
    r = send_and_read(gh.port, b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n" + GET)
    assert r.status == 200
    echo = r.json()
    assert header_of(echo, "X-Forwarded-For") == ["2001:db8::7"]
    assert header_of(echo, "Forwarded")[0].startswith('for="[2001:db8::7]"')


def test_v2_tcp4_with_tlvs_and_the_request_in_the_same_segment(pp_gh):
    gh, _ = pp_gh
    tlvs = (tlv(0x01, b"h2") + tlv(0x02, b"shop.example") + tlv(0xEA, b"\x01vpce-0123") +
            tlv(0x20, b"\x07\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3")) + tlv(0x04, b""))
    r = send_and_read(gh.port, v2_inet("192.0.2.44", "10.0.0.1", 5555, 443, tlvs) + GET)
    assert r.status == 200
    assert header_of(r.json(), "X-Forwarded-For") == ["192.0.2.44"]


def test_v2_tcp6(pp_gh):
    gh, _ = pp_gh
    r = send_and_read(gh.port, v2_inet6("2001:db8::99", "2001:db8::1", 1234, 443) + GET)
    assert header_of(r.json(), "X-Forwarded-For") == ["2001:db8::99"]


@pytest.mark.parametrize("hdr", [v2(0x20, 0x00, b""), v2(0x20, 0x11, b"\x01" * 12),
                                 v2(0x21, 0x00, b""), b"PROXY UNKNOWN\r\n",
                                 b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"],
                         ids=["v2-local", "v2-local-with-addresses", "v2-unspec", "v1-unknown",
                              "v1-unknown-with-addresses"])
def test_local_and_unknown_keep_the_real_peer(pp_gh, hdr):
    gh, _ = pp_gh
    r = send_and_read(gh.port, hdr + GET)
    assert r.status == 200
    assert header_of(r.json(), "X-Forwarded-For") == ["127.0.0.1"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_header_split_over_packets(pp_gh, version):
    gh, _ = pp_gh
    hdr = (b"PROXY TCP4 203.0.113.77 10.0.0.1 1 80\r\n" if version == "v1"
           else v2_inet("203.0.113.77", "10.0.0.1", 1, 80))
    # every piece alone is a prefix; the last one carries the header's end and the request
    parts = [hdr[:1], hdr[1:5], hdr[5:13], hdr[13:-1], hdr[-1:] + GET[:10], GET[10:]]
    r = send_and_read(gh.port, None, parts=parts)
    assert r.status == 200
    assert header_of(r.json(), "X-Forwarded-For") == ["203.0.113.77"]


def test_bytes_behind_the_header_are_the_request_and_keep_alive_works(pp_gh):
    gh, backend = pp_gh
    c = H1(gh.port, timeout=T(5))
    c.send(b"PROXY TCP4 203.0.113.5 10.0.0.1 1 80\r\n" + GET + GET)  # one segment, two requests
    assert header_of(c.read_response().json(), "X-Forwarded-For") == ["203.0.113.5"]
    assert header_of(c.read_response().json(), "X-Forwarded-For") == ["203.0.113.5"]
    # a second PROXY line on the same connection is not a header any more: a bad request
    c.send(b"PROXY TCP4 203.0.113.6 10.0.0.1 1 80\r\n" + GET)
    assert c.read_response().status == 400
    c.close()


BAD = {
    "missing": GET,
    "v1-bare-lf": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" + GET,
    "v1-bad-address": b"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n" + GET,
    "v1-two-spaces": b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n" + GET,
    "v1-port-range": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n" + GET,
    "v1-oversized": b"PROXY UNKNOWN " + b"a" * 200 + b"\r\n" + GET,
    "v2-version": SIG + b"\x11\x11\x00\x0c" + b"\x00" * 12 + GET,
    "v2-short-addresses": v2(0x21, 0x11, b"\x01" * 8) + GET,
    "v2-dgram": v2(0x21, 0x12, b"\x01" * 12) + GET,
    "v2-tlv-overrun": v2(0x21, 0x11, b"\x01" * 12 + b"\x02\x00\x09ab") + GET,
    "v2-too-long": SIG + b"\x21\x11\x10\x00" + b"\x00" * 64,
}


@pytest.mark.parametrize("name", list(BAD))
def test_missing_or_malformed_header_closes_with_a_log_line(pp_gh, name):
    gh, backend = pp_gh
    mark = gh.err_mark()
    assert closed_without_answer(gh.port, BAD[name])
    gh.wait_err(r"client 127\.0\.0\.1: PROXY protocol: .*; closing", since=mark)
    assert backend.requests == []


def test_truncated_header_is_closed_at_client_header_timeout(gatehouse, backend):
    cfg = pp_config(backend, limits={"client_header_timeout": "1s"})
    gh = gatehouse(cfg)
    s = socket.create_connection(("127.0.0.1", gh.port), timeout=T(10))
    s.sendall(b"PROXY TCP4 203.0.113.9 10.0.0")  # and nothing more
    start = time.monotonic()
    try:
        assert s.recv(1) == b""
    except ConnectionResetError:
        pass
    assert time.monotonic() - start < T(8)
    gh.wait_err(r"client 127\.0\.0\.1: PROXY protocol: no complete header within "
                r"client_header_timeout \(1000 ms\); closing")
    # a truncated header followed by the client's FIN
    mark = gh.err_mark()
    s = socket.create_connection(("127.0.0.1", gh.port), timeout=T(5))
    s.sendall(SIG + b"\x21\x11\x00\x0c\x01")
    s.shutdown(socket.SHUT_WR)
    try:
        assert s.recv(1) == b""
    except ConnectionResetError:  # closed with the partial header unread: a reset
        pass
    gh.wait_err(r"PROXY protocol: closed by the client before a complete header", since=mark)


def test_untrusted_peer_is_closed_at_once(gatehouse, backend):
    gh = gatehouse(pp_config(backend, trusted=("10.0.0.0/8",)))
    assert closed_without_answer(gh.port, b"PROXY TCP4 203.0.113.9 10.0.0.1 1 80\r\n" + GET)
    gh.wait_err(r"client 127\.0\.0\.1: not in trusted_proxies, which alone may send the PROXY "
                r"protocol header this listener expects; closing")
    assert backend.requests == []


def test_max_connections_per_client_counts_the_named_client(gatehouse, backend):
    cfg = pp_config(backend, limits={"max_connections_per_client": 1})
    gh = gatehouse(cfg)
    a1 = H1(gh.port, timeout=T(5))
    a1.send(b"PROXY TCP4 203.0.113.1 10.0.0.1 1 80\r\n" + GET)
    assert a1.read_response().status == 200  # open, idle, counted for 203.0.113.1
    # another client behind the same balancer: its own count
    b = send_and_read(gh.port, b"PROXY TCP4 203.0.113.2 10.0.0.1 2 80\r\n" + GET)
    assert b.status == 200
    # the same client again: over its limit
    a2 = send_and_read(gh.port, b"PROXY TCP4 203.0.113.1 10.0.0.1 3 80\r\n" + GET)
    assert a2.status == 503
    gh.wait_err(r"client 203\.0\.113\.1: 503: over max_connections_per_client")
    a1.close()


def test_hash_client_ip_uses_the_named_client(gatehouse, backend_factory):
    b1, b2 = backend_factory(), backend_factory()
    cfg = pp_config(b1, upstream={"balance": "hash", "hash_key": "client_ip"})
    cfg["upstreams"]["app"]["servers"] = [b1.address, b2.address]
    gh = gatehouse(cfg)
    ports = {}
    for i in range(24):
        src = f"198.51.100.{i}"
        for _ in range(2):
            echo = send_and_read(gh.port, f"PROXY TCP4 {src} 10.0.0.1 1 80\r\n".encode() + GET)
            ports.setdefault(src, set()).add(echo.json()["port"])
    assert all(len(p) == 1 for p in ports.values())               # each client sticks
    assert len(set().union(*ports.values())) == 2                   # and clients spread


def tls_listener(tmp_path):
    """A certificate for main.example: (its path, the listener's `tls` map)."""
    d = tmp_path / "certs"
    d.mkdir()
    crt, key = make_cert(d, "main", ["main.example"])
    return crt, {"certificates": [{"cert": str(crt), "key": str(key)}]}


def tls_get(sock, crt):
    """GET /echo over TLS on `sock` (already past any PROXY header): (head, echo JSON)."""
    ctx = ssl.create_default_context(cafile=str(crt))
    with ctx.wrap_socket(sock, server_hostname="main.example") as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: main.example\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    return head, json.loads(body)


def test_tls_listener_header_then_handshake(gatehouse, backend, tmp_path):
    crt, tls = tls_listener(tmp_path)
    gh = gatehouse(pp_config(backend, tls=tls))
    raw = socket.create_connection(("127.0.0.1", gh.port), timeout=T(5))
    raw.sendall(v2_inet("203.0.113.50", "10.0.0.1", 4444, 443))
    head, echo = tls_get(raw, crt)
    assert head.startswith(b"HTTP/1.1 200")
    assert header_of(echo, "X-Forwarded-For") == ["203.0.113.50"]
    assert header_of(echo, "X-Forwarded-Proto") == ["https"]


# ---- HAProxy -------------------------------------------------------------------------------

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


class HAProxy:
    def __init__(self, tmp_path, text, port):
        self.cfg = tmp_path / f"haproxy-{port}.cfg"
        self.cfg.write_text(text)
        self.port = port
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.cfg)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ok = wait_until(lambda: self._listening(), timeout=10)
        if not ok:
            self.stop()
            pytest.fail("haproxy did not start: " + self.proc.stdout.read().decode())

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def haproxy(tmp_path):
    started = []

    def make(text, port):
        h = HAProxy(tmp_path, text, port)
        started.append(h)
        return h

    yield make
    for h in started:
        h.stop()


HA_GLOBAL = """global
    log stderr format raw local0 err
defaults
    timeout connect 5s
    timeout client 10s
    timeout server 10s
"""


def ha_tcp_front(port, gh_port, send):
    """HAProxy in TCP mode on `port`, passing connections to Gatehouse with `send`."""
    return HA_GLOBAL + f"""
frontend fe
    mode tcp
    bind 127.0.0.1:{port}
    default_backend gh
backend gh
    mode tcp
    server gh 127.0.0.1:{gh_port} {send}
"""


def from_127_0_0_2(port):
    """A client connection from 127.0.0.2 (loopback too), so the header's source differs from
    the balancer's own 127.0.0.1."""
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.settimeout(T(5))
    s.connect(("127.0.0.1", port))
    return s


@pytest.mark.parametrize("send", ["send-proxy", "send-proxy-v2"])
def test_haproxy_in_front_sends_the_client(gatehouse, backend, haproxy, send):
    gh = gatehouse(pp_config(backend))
    port = free_port()
    haproxy(ha_tcp_front(port, gh.port, send), port)
    s = from_127_0_0_2(port)
    c = H1.__new__(H1)
    c.sock, c.buf, c.eof = s, bytearray(), False
    for _ in range(2):
        r = c.request("GET", "/echo")
        assert r.status == 200
        assert header_of(r.json(), "X-Forwarded-For") == ["127.0.0.2"]
    s.close()
    assert gh.wait_access(2)[0].startswith("127.0.0.2 - - [")


def test_haproxy_in_front_with_tls_passthrough(gatehouse, backend, haproxy, tmp_path):
    crt, tls = tls_listener(tmp_path)
    gh = gatehouse(pp_config(backend, tls=tls))
    port = free_port()
    haproxy(ha_tcp_front(port, gh.port, "send-proxy-v2"), port)
    head, echo = tls_get(from_127_0_0_2(port), crt)
    assert head.startswith(b"HTTP/1.1 200")
    assert header_of(echo, "X-Forwarded-For") == ["127.0.0.2"]


# ---- out -----------------------------------------------------------------------------------

class PPServer:
    """A raw HTTP/1.1 server that expects a PROXY header first on each connection: records
    the header's exact bytes per connection and answers every request (heads only) with
    JSON {conn, header (latin-1), path}, keep-alive."""

    def __init__(self):
        self.lsn = socket.socket()
        self.lsn.bind(("127.0.0.1", 0))
        self.lsn.listen(64)
        self.port = self.lsn.getsockname()[1]
        self.headers = []  # per connection, in accept order
        self.requests = []  # (conn, path)
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.stopping = True
        self.lsn.close()

    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.lsn.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    @staticmethod
    def _header(buf):
        """Length of the PROXY header at the start of buf, or 0 if incomplete."""
        if buf.startswith(SIG):
            return 16 + struct.unpack("!H", buf[14:16])[0] if len(buf) >= 16 else 0
        i = buf.find(b"\r\n")
        return i + 2 if i >= 0 else 0

    def _serve(self, s):
        buf = b""
        with s:
            while not (n := self._header(buf)):
                chunk = s.recv(4096)
                if not chunk:
                    return
                buf += chunk
            with self.lock:
                cid = len(self.headers)
                self.headers.append(buf[:n])
            buf = buf[n:]
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1].decode()
                with self.lock:
                    self.requests.append((cid, path))
                body = json.dumps({"conn": cid, "header": self.headers[cid].decode("latin-1"),
                                   "path": path}).encode()
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


@pytest.fixture
def pp_server():
    s = PPServer()
    yield s
    s.stop()


def test_out_v1_exact_bytes_and_one_connection_per_client(gatehouse, pp_server):
    gh = gatehouse(proxy_config(pp_server.address, upstream={"proxy_protocol": "v1"}))
    c = H1(gh.port, timeout=T(5))
    cport = c.sock.getsockname()[1]
    for _ in range(3):
        r = c.request("GET", "/a").json()
        assert r["header"] == f"PROXY TCP4 127.0.0.1 127.0.0.1 {cport} {gh.port}\r\n"
    assert len(pp_server.headers) == 1  # reused by the same client connection
    d = H1(gh.port, timeout=T(5))
    dport = d.sock.getsockname()[1]
    r = d.request("GET", "/b").json()
    assert r["conn"] == 1  # another client: never the first one's connection
    assert r["header"] == f"PROXY TCP4 127.0.0.1 127.0.0.1 {dport} {gh.port}\r\n"
    r = c.request("GET", "/a").json()  # the first client still gets its own connection back
    assert r["conn"] == 0
    c.close()
    d.close()


def test_out_v2_names_the_client_a_proxy_header_named(gatehouse, pp_server):
    cfg = pp_config(pp_server.address, upstream={"proxy_protocol": "v2"})
    gh = gatehouse(cfg)
    r = send_and_read(gh.port, b"PROXY TCP4 203.0.113.9 198.51.100.1 40000 8443\r\n" + GET)
    assert r.json()["header"].encode("latin-1") == v2_inet("203.0.113.9", "198.51.100.1",
                                                           40000, 8443)
    r = send_and_read(gh.port, b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n" + GET)
    assert r.json()["header"].encode("latin-1") == v2_inet6("2001:db8::7", "2001:db8::1",
                                                            40000, 443)
    r = send_and_read(gh.port, b"PROXY UNKNOWN\r\n" + GET)  # the balancer itself: its address
    hdr = r.json()["header"].encode("latin-1")
    assert hdr[:16] == SIG + b"\x21\x11\x00\x0c" and hdr[16:20] == socket.inet_aton("127.0.0.1")
    assert len(pp_server.headers) == 3


@pytest.mark.parametrize("version,expected", [("v1", b"PROXY UNKNOWN\r\n"),
                                              ("v2", SIG + b"\x20\x00\x00\x00")])
def test_out_health_checks_send_local_or_unknown(gatehouse, pp_server, version, expected):
    cfg = proxy_config(pp_server.address, upstream={
        "proxy_protocol": version, "health_check": {"path": "/health", "interval": "200ms"}})
    gatehouse(cfg)
    assert wait_until(lambda: any(p == "/health" for _, p in pp_server.requests), timeout=5)
    cid = next(c for c, p in pp_server.requests if p == "/health")
    assert pp_server.headers[cid] == expected


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_out_to_haproxy_accept_proxy(gatehouse, backend, haproxy, version):
    port = free_port()
    haproxy(HA_GLOBAL + f"""
frontend fe
    mode http
    bind 127.0.0.1:{port} accept-proxy
    http-request set-header X-PP-Src %[src]
    http-request set-header X-PP-Dst-Port %[dst_port]
    default_backend be
backend be
    mode http
    server b {backend.address}
""", port)
    cfg = pp_config(f"127.0.0.1:{port}", upstream={
        "proxy_protocol": version, "health_check": {"path": "/health", "interval": "300ms"}})
    gh = gatehouse(cfg)
    r = send_and_read(gh.port, b"PROXY TCP4 198.51.100.20 192.0.2.1 5000 8443\r\n" + GET)
    assert r.status == 200
    echo = r.json()
    assert header_of(echo, "X-PP-Src") == ["198.51.100.20"]
    assert header_of(echo, "X-PP-Dst-Port") == ["8443"]
    # health checks through accept-proxy (LOCAL / UNKNOWN) pass: the server never goes down
    assert wait_until(lambda: sum(1 for r in backend.requests if r[2] == "/health") >= 2,
                      timeout=5)
    assert "is down" not in gh.stderr_text()


def test_connect_and_close_without_a_byte_is_not_logged_at_info(gatehouse, backend):
    cfg = pp_config(backend)
    cfg["logs"]["level"] = "info"
    gh = gatehouse(cfg)
    mark = gh.err_mark()
    socket.create_connection(("127.0.0.1", gh.port), timeout=T(5)).close()  # a TCP health check
    assert closed_without_answer(gh.port, b"XYZ")  # a line for this one, after the first
    gh.wait_err(r"client 127\.0\.0\.1: PROXY protocol: not a PROXY protocol header; closing",
                since=mark)
    assert len(gh.err_lines(since=mark)) == 1, gh.err_lines(since=mark)
    r = send_and_read(gh.port, b"PROXY TCP4 203.0.113.9 10.0.0.1 1 80\r\n" + GET)
    assert r.status == 200  # and the listener still serves


def test_tls_listener_header_then_http2(gatehouse, backend, tmp_path):
    import h2.config
    import h2.connection
    from test_h2_server import H2Client

    crt, tls = tls_listener(tmp_path)
    gh = gatehouse(pp_config(backend, tls=tls))
    raw = socket.create_connection(("127.0.0.1", gh.port), timeout=T(5))
    raw.sendall(b"PROXY TCP6 2001:db8::5 2001:db8::1 50000 443\r\n")
    ctx = ssl.create_default_context(cafile=str(crt))
    ctx.set_alpn_protocols(["h2"])
    s = ctx.wrap_socket(raw, server_hostname="main.example")
    assert s.selected_alpn_protocol() == "h2"
    c = H2Client.__new__(H2Client)  # its own __init__ connects; this one is past the header
    c.sock, c.auto_ack, c.events, c.eof = s, True, [], False
    c.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
        client_side=True, header_encoding=None))
    c.conn.initiate_connection()
    c.flush()
    status, _, body = c.response(c.request("/echo", authority="main.example"))
    assert status == 200
    assert header_of(json.loads(body), "X-Forwarded-For") == ["2001:db8::5"]
    c.close()


def test_out_header_goes_before_tls_to_haproxy_accept_proxy_ssl(gatehouse, backend, haproxy,
                                                                 tmp_path):
    crt, tls = tls_listener(tmp_path)
    pem = tmp_path / "certs" / "main.pem"
    pem.write_bytes(crt.read_bytes() + (tmp_path / "certs" / "main.key").read_bytes())
    port = free_port()
    haproxy(HA_GLOBAL + f"""
frontend fe
    mode http
    bind 127.0.0.1:{port} accept-proxy ssl crt {pem}
    http-request set-header X-PP-Src %[src]
    http-request set-header X-TLS %[ssl_fc]
    default_backend be
backend be
    mode http
    server b {backend.address}
""", port)
    cfg = pp_config(f"127.0.0.1:{port}", upstream={
        "proxy_protocol": "v2", "tls": {"ca": str(crt), "server_name": "main.example"}})
    gh = gatehouse(cfg)
    r = send_and_read(gh.port, b"PROXY TCP4 198.51.100.33 192.0.2.1 5000 443\r\n" + GET)
    assert r.status == 200
    echo = r.json()
    assert header_of(echo, "X-PP-Src") == ["198.51.100.33"]
    assert header_of(echo, "X-TLS") == ["1"]
