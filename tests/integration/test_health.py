"""Active health checks and the admin status endpoint: an http check whose path answers 500 takes
the server down after `fall` checks (logged, and "down" in /status), good answers bring it back
after `rise`; tcp checks against a closed port; timeouts and TLS handshakes; the exact check
request; checks run once per process, not per worker; the state survives a SIGHUP reload; and
the admin listener answers /status JSON, 404 and 405 and never routes a site; a server back
from down or from a passive ejection ramps up over slow_start; its return from an ejection is
logged once; /status shows requests in flight and recent failures."""
import json
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import H1, T, base_config, blackhole_port, get, refused_port, wait_until


def health_config(upstreams, admin=True, workers=1, **over):
    """`upstreams`: {name: upstream}; one site proxies / to the first; admin on port 0."""
    cfg = base_config(workers=workers, **over)
    cfg["upstreams"] = upstreams
    cfg["sites"] = [{"name": "main", "hosts": ["*"],
                     "routes": [{"path": "/", "proxy": next(iter(upstreams))}]}]
    if admin:
        cfg["admin"] = {"address": "127.0.0.1:0", "hosts": ["test"]}  # the Host get() sends
    return cfg


def check(**over):
    hc = {"path": "/health", "interval": "200ms", "timeout": "1s", "rise": 2, "fall": 2}
    hc.update(over)
    return hc


def admin_port(gh):
    return gh.ports[-1]  # the admin listener comes after those of `listen`


def status(gh):
    r = get(admin_port(gh), "/status")
    assert r.status == 200, r
    assert r.header("content-type") == "application/json"
    return r.json()


def server_state(gh, upstream, address):
    for u in status(gh)["upstreams"]:
        if u["name"] == upstream:
            for s in u["servers"]:
                if s["address"] == address:
                    return s
    raise AssertionError(f"{upstream} {address} not in /status")


def wait_state(gh, upstream, address, state, timeout=5):
    last = {}

    def reached():
        last["s"] = server_state(gh, upstream, address)
        return last["s"]["state"] == state
    assert wait_until(reached, timeout=timeout, interval=0.05), last.get("s")
    return last["s"]


def wait_ok(gh, upstream, address, n=2):
    """Until the server is up with n successful checks in a row."""
    def ok():
        s = server_state(gh, upstream, address)
        return s["state"] == "up" and s["checks"]["ok_in_a_row"] >= n
    return wait_until(ok, timeout=5, interval=0.05)


def set_health(backend, status_code):
    assert get(backend.port, f"/health/{status_code}").status == status_code


class RawServer:
    """A listening socket whose connections record what they receive and answer `reply` once
    a request head is in (reply None: say nothing, keep the connection open). tls: (cert, key)."""

    def __init__(self, reply=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", tls=None):
        self.reply, self.received, self.conns = reply, [], []
        self.lsn = socket.socket()
        self.lsn.bind(("127.0.0.1", 0))
        self.lsn.listen(64)
        self.port = self.lsn.getsockname()[1]
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*tls)
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _accept(self):
        while True:
            try:
                s, _ = self.lsn.accept()
            except OSError:
                return
            self.conns.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            s.settimeout(T(5))
            if self.ctx:
                s = self.ctx.wrap_socket(s, server_side=True)
            data = b""
            while b"\r\n\r\n" not in data:
                d = s.recv(4096)
                if not d:
                    break
                data += d
            with self.lock:
                self.received.append(data)
            if self.reply is not None and data:
                s.sendall(self.reply)
            else:
                time.sleep(T(3))
        except (OSError, ssl.SSLError):
            pass
        finally:
            s.close()

    def close(self):
        self.lsn.close()
        for s in self.conns:
            s.close()


# ---- http checks ------------------------------------------------------------------------------

def test_http_check_takes_a_server_down_and_back_up(gatehouse, backend):
    set_health(backend, 500)
    gh = gatehouse(health_config({"shop": {"servers": [backend.address], "health_check": check()}}))
    gh.wait_err(rf"\[warn\] upstream shop: server {re.escape(backend.address)} is down "
                r"\(2 failed checks: status 500\)", timeout=5)
    s = wait_state(gh, "shop", backend.address, "down")
    assert s["last_error"] == "health check: status 500"
    assert s["checks"]["failed_in_a_row"] >= 2 and s["checks"]["ok_in_a_row"] == 0

    mark = gh.err_mark()
    set_health(backend, 200)
    gh.wait_err(rf"\[info\] upstream shop: server {re.escape(backend.address)} is up "
                r"\(2 successful checks\)", since=mark, timeout=5)
    s = wait_state(gh, "shop", backend.address, "up")
    assert s["checks"]["ok_in_a_row"] >= 2 and s["checks"]["failed_in_a_row"] == 0
    # One transition each way, however many checks ran.
    lines = gh.err_lines()
    assert sum(" is down (" in l for l in lines) == 1, lines
    assert sum(" is up (" in l for l in lines) == 1, lines


def test_status_range_and_method(gatehouse, backend):
    """`status` narrows what passes (204 is not "200"); the default 200-399 takes a 302; the
    method is the configured one."""
    gh = gatehouse(health_config({
        "strict": {"servers": [backend.address],
                   "health_check": check(path="/status/204", status="200")},
        "loose": {"servers": [backend.address],
                  "health_check": check(path="/status/302", method="HEAD")},
    }))
    s = wait_state(gh, "strict", backend.address, "down")
    assert s["last_error"] == "health check: status 204"
    assert wait_ok(gh, "loose", backend.address)
    assert ["HEAD", "/status/302"] in [r[1:] for r in backend.requests]


def test_the_check_request_on_the_wire(gatehouse):
    srv = RawServer()
    try:
        gh = gatehouse(health_config({"shop": {"servers": [srv.address], "health_check": check(
            path="/ready?full=1", method="OPTIONS", host="shop.internal")}}))
        assert wait_until(lambda: srv.received, timeout=3)
        head = srv.received[0].decode("latin-1")
        assert head == ("OPTIONS /ready?full=1 HTTP/1.1\r\nHost: shop.internal\r\n"
                        "User-Agent: gatehouse-health-check\r\nConnection: close\r\n\r\n")
        assert wait_ok(gh, "shop", srv.address)
    finally:
        srv.close()


def test_host_defaults_to_the_server_address(gatehouse):
    srv = RawServer()
    try:
        gatehouse(health_config({"shop": {"servers": [srv.address], "health_check": check()}}))
        assert wait_until(lambda: srv.received, timeout=3)
        assert f"\r\nHost: {srv.address}\r\n" in srv.received[0].decode("latin-1")
    finally:
        srv.close()


def test_silent_server_times_out(gatehouse):
    srv = RawServer(reply=None)  # accepts, reads the request, never answers
    try:
        gh = gatehouse(health_config({"shop": {"servers": [srv.address], "health_check": check(
            timeout="150ms", interval="200ms")}}))
        gh.wait_err(r"is down \(2 failed checks: timed out waiting for the status line\)",
                    timeout=5)
        wait_state(gh, "shop", srv.address, "down")
    finally:
        srv.close()


def test_garbage_answer_is_a_failure(gatehouse):
    srv = RawServer(reply=b"SSH-2.0-OpenSSH_9.6\r\n")
    try:
        gh = gatehouse(health_config({"shop": {"servers": [srv.address], "health_check": check()}}))
        gh.wait_err(r"is down \(2 failed checks: bad status line\)", timeout=5)
    finally:
        srv.close()


# ---- slow start -------------------------------------------------------------------------------

def served_by(resp):
    assert resp.status == 200, resp
    return json.loads(resp.body)["port"]


def share_of(gh, backend, seconds=None, count=None):
    """The share of /echo requests `backend` served, sent one after another for `seconds` and
    at least `count` requests, and how many were sent."""
    order, t0 = [], time.monotonic()
    with H1(gh.port) as c:
        while (count and len(order) < count) or (seconds and time.monotonic() - t0 < seconds):
            order.append(served_by(c.request("GET", "/echo")))
    return order.count(backend.port) / len(order), len(order)


def test_server_back_from_down_ramps_up_over_slow_start(gatehouse, backend_factory):
    """Weights 1 and 1, slow_start 3s: right after its checks bring it back, the server gets
    about a tenth of its weight (its share at most 1/6 over the first 0.6 s against 1/2), and
    half the requests once the ramp is over."""
    a, b = backend_factory(), backend_factory()
    gh = gatehouse(health_config({"shop": {
        "servers": [a.address, b.address], "slow_start": "3s",
        "health_check": check(interval="100ms", rise=1, fall=2)}}))
    assert wait_ok(gh, "shop", b.address, n=1)
    assert abs(share_of(gh, b, count=40)[0] - 0.5) <= 0.05  # before: its weight share

    set_health(b, 500)
    wait_state(gh, "shop", b.address, "down")
    assert share_of(gh, b, count=20)[0] == 0
    set_health(b, 200)
    wait_state(gh, "shop", b.address, "up")
    back = time.monotonic()
    early, n = share_of(gh, b, seconds=0.6, count=10)  # not stretched: the ramp is not
    assert early < 0.25, (early, n)

    time.sleep(max(0.0, back + 3.3 - time.monotonic()))
    late, n = share_of(gh, b, count=100)
    assert abs(late - 0.5) <= 0.05, late


# ---- passive health --------------------------------------------------------------------------

def test_return_from_ejection_is_logged_once(gatehouse, backend_factory):
    """Two servers answer 502 (a backend failing, not refusing): the one that reaches
    `failures` first is ejected for 1 s; the other is never ejected, being the last. When the
    ejection is over the first request logs the return, once however many follow."""
    a, b = backend_factory(), backend_factory()
    gh = gatehouse(health_config({"shop": {
        "servers": [a.address, b.address],
        "passive_health": {"failures": 2, "eject": "1s"}}}))
    for _ in range(6):
        assert get(gh.port, "/status/502").status == 502
    line = gh.wait_err(r"\[warn\] upstream shop: server \S+ ejected for 1000 ms after 2 failures "
                       r"\(answered 502\)", timeout=3)
    ejected = re.search(r"server (\S+) ejected", line).group(1)
    assert ejected in (a.address, b.address)
    assert sum(" ejected for " in l for l in gh.err_lines()) == 1, gh.err_lines()  # not the last
    time.sleep(1.1)
    mark = gh.err_mark()
    for _ in range(10):
        assert get(gh.port, "/echo").status == 200  # both serve well again
    gh.wait_err(rf"\[info\] upstream shop: server {re.escape(ejected)} is back after ejection$",
                since=mark, timeout=3)
    assert sum("is back after ejection" in l for l in gh.err_lines()) == 1, gh.err_lines()
    assert server_state(gh, "shop", ejected)["state"] == "up"


# ---- tcp checks -------------------------------------------------------------------------------

def test_tcp_check_against_a_closed_port(gatehouse, backend):
    closed = f"127.0.0.1:{refused_port()}"
    gh = gatehouse(health_config({"shop": {
        "servers": [backend.address, closed],
        "health_check": {"type": "tcp", "interval": "200ms", "timeout": "1s", "fall": 3}}}))
    gh.wait_err(rf"\[warn\] upstream shop: server {re.escape(closed)} is down "
                r"\(3 failed checks: connect refused\)", timeout=5)
    s = wait_state(gh, "shop", closed, "down")
    assert s["last_error"] == "health check: connect refused"
    good = server_state(gh, "shop", backend.address)
    assert good["state"] == "up" and good["checks"]["ok_in_a_row"] >= 1, good
    assert not [r for r in backend.requests if r[2] == "/health"]  # tcp: no request is sent


def test_connect_timeout_does_not_block_the_loop(gatehouse, backend):
    """A server whose SYNs vanish: the check times out, and meanwhile worker 0 (the only one,
    and the one running checks) keeps serving requests without delay."""
    with blackhole_port() as port:
        hole = f"127.0.0.1:{port}"
        gh = gatehouse(health_config({
            "app": {"servers": [backend.address]},
            "dark": {"servers": [hole], "health_check": {
                "type": "tcp", "interval": "300ms", "timeout": "250ms", "fall": 2}}}))
        deadline = time.monotonic() + T(1.5)
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            assert get(gh.port, "/echo").status == 200
            assert time.monotonic() - t0 < T(0.5)
        gh.wait_err(rf"server {re.escape(hole)} is down \(2 failed checks: connect timed out\)",
                    timeout=5)


def test_checks_run_once_per_process(gatehouse, backend):
    """Four workers, one checker: about one check per interval, not four."""
    gh = gatehouse(health_config({"shop": {"servers": [backend.address],
                                           "health_check": check(interval="100ms")}}, workers=4))
    time.sleep(T(0.2))
    before = len([r for r in backend.requests if r[2] == "/health"])
    time.sleep(1.0)
    n = len([r for r in backend.requests if r[2] == "/health"]) - before
    assert 5 <= n <= 14, n
    assert gh.running()


# ---- TLS upstreams ----------------------------------------------------------------------------

@pytest.fixture
def self_signed(tmp_path):
    crt, key = tmp_path / "up.crt", tmp_path / "up.key"
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return crt, key


def test_tls_upstream_checks_handshake_and_request(gatehouse, backend, self_signed):
    srv = RawServer(tls=self_signed)
    try:
        gh = gatehouse(health_config({
            "secure": {"servers": [srv.address], "tls": {"ca": str(self_signed[0])},
                       "health_check": check()},
            "plain": {"servers": [backend.address], "tls": {"verify": False},
                      "health_check": check(type="tcp")},
        }))
        # The plain backend waits for a request head that a ClientHello never completes.
        gh.wait_err(rf"server {re.escape(backend.address)} is down \(2 failed checks: "
                    r"TLS handshake (failed: |timed out)", timeout=5)
        assert wait_until(lambda: srv.received, timeout=3)
        assert srv.received[0].startswith(b"GET /health HTTP/1.1\r\n")  # decrypted by the server
        assert wait_ok(gh, "secure", srv.address)
    finally:
        srv.close()


# ---- reload -----------------------------------------------------------------------------------

def reload(gh, config):
    mark = gh.err_mark()
    gh.write_config(config)
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"\[info\] configuration reloaded", since=mark, timeout=5)
    return mark


def test_state_survives_reload(gatehouse, backend):
    set_health(backend, 500)
    cfg = health_config({"shop": {"servers": [backend.address],
                                  "health_check": check(rise=3)}})
    gh = gatehouse(cfg)
    wait_state(gh, "shop", backend.address, "down")
    admin = admin_port(gh)

    cfg["upstreams"]["shop"]["read_timeout"] = "20s"  # a real change, same server
    mark = reload(gh, cfg)
    s = server_state(gh, "shop", backend.address)  # at once: no check has run yet
    assert s["state"] == "down", s
    assert s["checks"]["failed_in_a_row"] >= 2
    assert admin_port(gh) == admin
    time.sleep(T(0.5))
    assert server_state(gh, "shop", backend.address)["state"] == "down"
    assert not [l for l in gh.err_lines(mark) if " is up (" in l]

    set_health(backend, 200)  # the new snapshot's checks bring it back, after its rise of 3
    gh.wait_err(r"is up \(3 successful checks\)", since=mark, timeout=5)


def test_reload_without_checks_brings_servers_up(gatehouse, backend):
    set_health(backend, 500)
    cfg = health_config({"shop": {"servers": [backend.address], "health_check": check()}})
    gh = gatehouse(cfg)
    wait_state(gh, "shop", backend.address, "down")
    del cfg["upstreams"]["shop"]["health_check"]
    mark = reload(gh, cfg)
    gh.wait_err(rf"upstream shop: server {re.escape(backend.address)} is up \(health checks off\)",
                since=mark, timeout=5)
    s = server_state(gh, "shop", backend.address)
    assert s["state"] == "up" and s["checks"] == {"ok_in_a_row": 0, "failed_in_a_row": 0}
    n = len(backend.requests)
    time.sleep(T(0.5))
    assert not [r for r in backend.requests[n:] if r[2] == "/health"]  # the old checks stopped


def test_checks_stop_at_shutdown(gatehouse, backend):
    gh = gatehouse(health_config({"shop": {"servers": [backend.address],
                                           "health_check": check(interval="100ms")}}))
    assert wait_until(lambda: any(r[2] == "/health" for r in backend.requests), timeout=3)
    assert gh.stop() == 0


# ---- the admin listener -----------------------------------------------------------------------

def test_status_document_shape(gatehouse, backend_factory):
    a, b = backend_factory(), backend_factory()
    gh = gatehouse(health_config({
        "shop": {"servers": [{"address": a.address, "weight": 3},
                             {"address": b.address, "backup": True}],
                 "balance": "least_requests", "health_check": check()},
        'we"ird\\name': {"servers": [a.address], "balance": "hash"},
    }))
    r = get(admin_port(gh), "/status")
    assert r.status == 200
    assert r.header("content-type") == "application/json"
    assert r.header("cache-control") == "no-store"
    doc = json.loads(r.body)  # valid JSON, with the odd name escaped
    assert [u["name"] for u in doc["upstreams"]] == ["shop", 'we"ird\\name']
    shop, weird = doc["upstreams"]
    assert shop["balance"] == "least_requests" and weird["balance"] == "hash"
    assert shop["health_check"] == "http" and weird["health_check"] is None
    first, backup = shop["servers"]
    assert set(first) == {"address", "state", "weight", "backup", "active", "requests",
                          "failures", "recent_failures", "consecutive_failures", "last_error",
                          "checks"}
    assert first["address"] == a.address and first["weight"] == 3 and first["state"] == "up"
    assert backup["state"] == "backup" and backup["backup"] is True and backup["weight"] == 1
    for s in (first, backup, weird["servers"][0]):
        for k in ("active", "requests", "failures", "recent_failures", "consecutive_failures"):
            assert isinstance(s[k], int) and s[k] >= 0
        assert isinstance(s["last_error"], str)
        assert set(s["checks"]) == {"ok_in_a_row", "failed_in_a_row"}


def test_status_shows_requests_in_flight(gatehouse, backend):
    gh = gatehouse(health_config({"shop": {"servers": [backend.address]}}))
    slow = {}
    t = threading.Thread(target=lambda: slow.update(r=get(gh.port, "/delay?ms=1500")))
    t.start()
    try:
        assert wait_until(lambda: server_state(gh, "shop", backend.address)["active"] == 1,
                          timeout=1.5, interval=0.02), server_state(gh, "shop", backend.address)
    finally:
        t.join()
    assert slow["r"].status == 200
    s = server_state(gh, "shop", backend.address)
    assert s["active"] == 0 and s["requests"] == 1 and s["failures"] == 0, s


def test_status_shows_an_ejected_server_and_its_recent_failures(gatehouse, backend_factory):
    a, b = backend_factory(), backend_factory()
    gh = gatehouse(health_config({"shop": {
        "servers": [a.address, b.address],
        "passive_health": {"failures": 2, "eject": "30s"}}}))
    for _ in range(3):  # round robin: a, b, a; a reaches 2 failures first
        assert get(gh.port, "/status/502").status == 502
    s = wait_state(gh, "shop", a.address, "ejected", timeout=2)
    assert s["failures"] >= 2 and s["recent_failures"] >= 2, s
    assert s["consecutive_failures"] == 0 and s["last_error"] == "answered 502", s
    other = server_state(gh, "shop", b.address)
    assert other["state"] == "up" and other["failures"] == other["recent_failures"] == 1, other
    assert get(gh.port, "/echo").status == 200
    other = server_state(gh, "shop", b.address)
    assert other["consecutive_failures"] == 0 and other["recent_failures"] == 1, other


def test_status_head_and_errors(gatehouse, backend):
    gh = gatehouse(health_config({"shop": {"servers": [backend.address]}}))
    port = admin_port(gh)
    with H1(port) as c:
        r = c.request("HEAD", "/status")
        assert r.status == 200 and r.body == b"" and int(r.header("content-length")) > 20
        assert c.request("GET", "/").status == 404
        assert c.request("GET", "/status/").status == 404
        assert c.request("GET", "/statusx").status == 404
        assert c.request("DELETE", "/status").status == 405
        assert c.request("GET", "/status?pretty=1").status == 200  # still keep-alive
    r = get(port, "/status", method="POST", body=b"x")
    assert r.status == 405 and r.header("allow") == "GET, HEAD"
    # The site is served on the main listener, never on the admin one.
    assert get(gh.port, "/echo").status == 200
    assert get(port, "/echo").status == 404
    assert sum(1 for x in backend.requests if x[2] == "/echo") == 1


def test_no_admin_listener_by_default(gatehouse, backend):
    gh = gatehouse(health_config({"shop": {"servers": [backend.address]}}, admin=False))
    assert len(gh.ports) == 1
    assert not [l for l in gh.err_lines() if "(admin)" in l]


def test_admin_listener_is_logged(gatehouse, backend):
    gh = gatehouse(health_config({"shop": {"servers": [backend.address]}}))
    assert len(gh.ports) == 2
    gh.wait_err(rf"\[info\] listening on 127\.0\.0\.1:{admin_port(gh)} \(admin\)")


def test_admin_config_errors(tmp_path):
    from conftest import GATEHOUSE_BIN, to_yaml
    cfg = base_config(listen=[{"address": "127.0.0.1:18081"}])
    cfg["sites"] = [{"hosts": ["*"], "routes": [{"path": "/", "respond": {}}]}]
    for admin, want in ((
            {"address": "127.0.0.1:18081"}, "'admin' address '127.0.0.1:18081' is also in 'listen'"),
            ({}, "missing required key 'address' in 'admin'"),
            ({"address": "127.0.0.1:1", "port": 2}, "unknown key 'port'"),
            ("127.0.0.1:9901", "'admin' must be a map")):
        cfg["admin"] = admin
        path = tmp_path / "g.yaml"
        path.write_text(to_yaml(cfg) + "\n")
        r = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(path)], capture_output=True, text=True)
        assert r.returncode == 1, r
        assert want in r.stderr, r.stderr
