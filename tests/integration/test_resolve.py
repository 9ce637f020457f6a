"""Upstream servers written as host names: the name becomes one server per address the system
resolver gives (shown in /status as NAME:PORT@ADDRESS), requests are served through them, Host
headers of health checks and TLS server names carry the name (never the address), and the
periodic lookup (`resolve_interval`) that finds the same addresses swaps nothing.

The tests use a name of this machine's /etc/hosts that stands for loopback addresses only (the
host name, localhost.localdomain, ...) and skip when there is none; `localhost` itself is
127.0.0.1 by definition and is never looked up. Changing answers are tested in the unit tests
(tests/unit/test_config.c), with a lookup hook: tests do not edit /etc/hosts."""
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import T, base_config, get, wait_until
from test_config_check import check, problems

CANDIDATES = ("localhost.localdomain", "ip6-localhost", "ip6-loopback", "localhost6")


def loopback_addresses(name):
    """The distinct addresses of `name` in Gatehouse's order (IPv4 first, then by address), or
    None unless every one is a loopback address."""
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    addrs = {(fam, info[0]) for fam, _, _, _, info in infos
             if fam in (socket.AF_INET, socket.AF_INET6)}
    if not addrs or not all(a.startswith("127.") or a == "::1" for _, a in addrs):
        return None
    key = lambda fa: (fa[0] != socket.AF_INET, socket.inet_pton(fa[0], fa[1]))
    return [a for _, a in sorted(addrs, key=key)]


def find_name(want_v4=True, want_v6=False):
    """A name of this machine for loopback, with 127.0.0.1 (want_v4) and ::1 (want_v6) among
    its addresses; skips the test when there is none."""
    for name in (socket.gethostname(),) + CANDIDATES:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or name.lower() == "localhost":
            continue
        addrs = loopback_addresses(name)
        if addrs and (not want_v4 or "127.0.0.1" in addrs) and (not want_v6 or "::1" in addrs):
            return name, addrs
    pytest.skip("no name of this machine stands for " +
                ("127.0.0.1 and ::1" if want_v6 else "127.0.0.1 only, on loopback"))


def named_config(server, admin=True, level="info", **upstream):
    cfg = base_config(logs={"access": "stdout", "format": "combined", "error": "stderr",
                            "level": level})
    cfg["upstreams"] = {"app": dict({"servers": [server], "connect_timeout": "2s",
                                     "read_timeout": "10s"}, **upstream)}
    cfg["sites"] = [{"name": "main", "hosts": ["*"], "routes": [{"path": "/", "proxy": "app"}]}]
    if admin:
        cfg["admin"] = {"address": "127.0.0.1:0", "hosts": ["test"]}  # the Host get() sends
    return cfg


def status_servers(gh, upstream="app"):
    r = get(gh.ports[-1], "/status")
    assert r.status == 200, r
    for u in r.json()["upstreams"]:
        if u["name"] == upstream:
            return u["servers"]
    raise AssertionError(f"upstream {upstream} not in /status")


# ---- expansion -------------------------------------------------------------------------------

def test_name_is_one_server_per_address_and_serves(gatehouse, backend):
    name, addrs = find_name()
    written = f"{name}:{backend.port}"
    gh = gatehouse(named_config({"address": written, "weight": 3}))
    servers = status_servers(gh)
    assert [s["address"] for s in servers] == [f"{written}@{a}" for a in addrs]
    assert all(s["weight"] == 3 and s["backup"] is False for s in servers)
    mark = len(gh.access_lines())
    assert [get(gh.port, "/echo").status for _ in range(6)] == [200] * 6
    wait_until(lambda: len([l for l in gh.access_lines(mark) if '"GET /echo' in l]) == 6)
    lines = [l for l in gh.access_lines(mark) if '"GET /echo' in l]
    assert len(lines) == 6 and all(f" upstream={written}@127.0.0.1 " in l for l in lines), lines


def test_literal_addresses_and_localhost_stay_one_server(gatehouse, backend):
    gh = gatehouse(named_config(f"localhost:{backend.port}"))
    assert [s["address"] for s in status_servers(gh)] == [f"localhost:{backend.port}"]
    assert get(gh.port, "/echo").status == 200


def test_an_address_that_refuses_is_retried_on_another(gatehouse, backend):
    """A name for 127.0.0.1 and ::1, the backend on 127.0.0.1 only: [::1] refuses, and every
    request is still answered, by a retry on the other server."""
    name, addrs = find_name(want_v6=True)
    written = f"{name}:{backend.port}"
    gh = gatehouse(named_config(written, passive_health={"failures": 0}))
    assert [s["address"] for s in status_servers(gh)] == [f"{written}@{a}" for a in addrs]
    assert [get(gh.port, "/echo").status for _ in range(10)] == [200] * 10


class HeadServer:
    """TLS (or plain) listener on 127.0.0.1 that records the SNI and the request head of each
    connection and answers 200."""

    def __init__(self, tls=None):
        self.sni, self.heads = [], []
        self.lsn = socket.socket()
        self.lsn.bind(("127.0.0.1", 0))
        self.lsn.listen(16)
        self.port = self.lsn.getsockname()[1]
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*tls)
            self.ctx.sni_callback = lambda sock, sni, ctx: self.sni.append(sni)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.lsn.accept()
            except OSError:
                return
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
                    return
                data += d
            self.heads.append(data.decode("latin-1"))
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except (OSError, ssl.SSLError):
            pass
        finally:
            s.close()

    def close(self):
        self.lsn.close()


def test_health_check_host_is_the_name_as_written(gatehouse):
    name, _ = find_name()
    srv = HeadServer()
    try:
        written = f"{name}:{srv.port}"
        gatehouse(named_config(written, health_check={"path": "/health", "interval": "200ms"}))
        assert wait_until(lambda: srv.heads, timeout=3)
        assert f"\r\nHost: {written}\r\n" in srv.heads[0], srv.heads[0]
    finally:
        srv.close()


def test_tls_server_name_is_the_host_name(gatehouse, tmp_path):
    name, _ = find_name()
    crt, key = tmp_path / "up.crt", tmp_path / "up.key"
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True)
    srv = HeadServer(tls=(crt, key))
    try:
        gh = gatehouse(named_config(f"{name}:{srv.port}", tls={"ca": str(crt)},
                                    health_check={"path": "/health", "interval": "200ms"}))
        r = get(gh.port, "/page")
        assert r.status == 200 and r.body == b"ok", r  # verified against DNS:name
        assert wait_until(lambda: len(srv.sni) >= 2, timeout=3)  # the request and a check
        assert set(srv.sni) == {name}
    finally:
        srv.close()


# ---- looking names up again -------------------------------------------------------------------

def test_same_addresses_swap_nothing(gatehouse, backend):
    name, addrs = find_name()
    written = f"{name}:{backend.port}"
    gh = gatehouse(named_config(written, level="debug", resolve_interval="1s"))
    before = status_servers(gh)
    assert [get(gh.port, "/echo").status for _ in range(3)] == [200] * 3
    lookup = r"\[debug\] host names looked up again: no new addresses"
    gh.wait_err(lookup, timeout=3)
    mark = gh.err_mark()
    gh.wait_err(lookup, timeout=3, since=mark)  # and again, a second later
    text = gh.stderr_text()
    assert "now resolves to" not in text
    assert "configuration reloaded" not in text
    after = status_servers(gh)
    assert [s["address"] for s in after] == [s["address"] for s in before]
    # The same snapshot still runs: the counters went on from where they were.
    assert sum(s["requests"] for s in after) == sum(s["requests"] for s in before) + 3
    assert [get(gh.port, "/echo").status for _ in range(3)] == [200] * 3


def test_resolve_interval_zero_never_looks_up(gatehouse, backend):
    name, _ = find_name()
    gh = gatehouse(named_config(f"{name}:{backend.port}", level="debug", resolve_interval=0))
    time.sleep(T(1.5))
    assert "looked up again" not in gh.stderr_text()
    assert get(gh.port, "/echo").status == 200


def test_lookups_stop_nothing_else_sighup_and_sigterm(gatehouse, backend):
    """The main thread now waits with a timeout: reloads and the drain still answer at once."""
    name, _ = find_name()
    cfg = named_config(f"{name}:{backend.port}", resolve_interval="1s")
    gh = gatehouse(cfg)
    mark = gh.err_mark()
    gh.write_config(cfg)
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"\[info\] configuration reloaded", since=mark, timeout=3)
    assert get(gh.port, "/echo").status == 200
    t = time.monotonic()
    assert gh.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t < T(3)


# ---- gatehouse -t ----------------------------------------------------------------------------

CHECKED = """\
listen: [{{ address: "127.0.0.1:0" }}]
upstreams:
  app:
    servers: ["{server}"]
    resolve_interval: {interval}
sites: [{{ hosts: ["*"], routes: [{{ path: /, proxy: app }}] }}]
"""


@pytest.mark.parametrize("interval", ["0", "1s", "30s", "5m"])
def test_resolve_interval_accepted(tmp_path, interval):
    name, _ = find_name()
    p = check(tmp_path, CHECKED.format(server=f"{name}:8080", interval=interval))
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout


def test_resolve_interval_and_name_errors(tmp_path):
    p = check(tmp_path, CHECKED.format(server="127.0.0.1:8080", interval="200ms"))
    assert p.returncode == 1
    assert problems(p) == [(5, 23, "'resolve_interval' must be 0 (never) or at least 1s")]
    p = check(tmp_path, CHECKED.format(server="no-such-host.invalid:8080", interval="30s"))
    assert p.returncode == 1
    [(line, col, msg)] = problems(p)
    assert (line, col) == (4, 15)
    assert msg.startswith("bad address 'no-such-host.invalid:8080' (cannot resolve "
                          "'no-such-host.invalid': ")
