"""Upstream servers on Unix domain sockets (`servers: ["unix:/path"]`, issue 14): requests, the
keep-alive pool, Host, health checks, a socket missing at start (a warning and a down server,
not a crash), retries onto another server, and WebSocket tunnels. The backend is backend.py
listening on a Unix socket, in this process; it counts the connections it accepts."""
import os
import re
import socket
import subprocess

import pytest

from backend import Backend, ws_frame, ws_read_frame
from conftest import GATEHOUSE_BIN, H1, T, proxy_config, to_yaml, wait_until


@pytest.fixture
def sockdir(tmp_path):
    # sun_path holds 107 bytes: pytest's tmp_path can be longer, so use a short directory.
    d = f"/tmp/gh-ux-{os.getpid()}-{abs(hash(str(tmp_path))) % 100000}"
    os.makedirs(d, exist_ok=True)
    yield d
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    os.rmdir(d)


@pytest.fixture
def unix_backend(sockdir):
    started = []

    def make(name="app"):
        b = Backend(host=f"unix:{sockdir}/{name}.sock", name=name)
        b.start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


def test_requests_go_over_the_socket_and_reuse_one_pooled_connection(gatehouse, unix_backend):
    b = unix_backend()
    gh = gatehouse(proxy_config(b.address))
    with H1(gh.port) as c:
        for i in range(5):
            r = c.request("GET", f"/echo?i={i}", host="shop.test")
            assert r.status == 200
            echo = r.json()
            assert ["Host", "shop.test"] in echo["headers"]  # the client's Host, as over TCP
            assert echo["conn_request"] == i + 1              # one upstream connection, reused
    assert b.stats()["connections"] == 1
    lines = gh.wait_access(5)
    assert all(f"upstream=unix:{b.host[5:]}" in l for l in lines), lines


def test_host_header_upstream_sends_localhost(gatehouse, unix_backend):
    b = unix_backend()
    cfg = proxy_config(b.address, routes=[{"path": "/", "proxy": "app",
                                           "host_header": "upstream"}])
    gh = gatehouse(cfg)
    with H1(gh.port) as c:
        echo = c.request("GET", "/echo", host="shop.test").json()
    assert ["Host", "localhost"] in echo["headers"]
    assert ["X-Forwarded-Host", "shop.test"] in echo["headers"]


def test_missing_socket_is_a_warning_and_a_502_until_the_app_appears(gatehouse, unix_backend,
                                                                      sockdir, backend):
    path = f"{sockdir}/late.sock"
    cfg = proxy_config(f"unix:{path}", upstream={"retries": 0})
    cfg["upstreams"]["other"] = {"servers": [backend.address]}
    cfg["sites"][0]["routes"].insert(0, {"path": "/other", "proxy": "other", "strip_prefix": True})
    gh = gatehouse(cfg)
    assert re.search(rf"warning: upstream 'app': '{path}' is missing", gh.stderr_text())
    with H1(gh.port) as c:
        r = c.request("GET", "/echo")
        assert r.status == 502
    gh.wait_err(r"upstream app \(unix:" + re.escape(path) + r"\).*No such file or directory")
    with H1(gh.port) as c:  # the server keeps serving everything else
        assert c.request("GET", "/other/echo").status == 200
    b = Backend(host=f"unix:{path}", name="late")
    b.start()
    try:
        with H1(gh.port) as c:
            assert c.request("GET", "/echo").status == 200
        assert gh.running()
    finally:
        b.stop()


def test_retry_moves_from_a_missing_socket_to_a_live_one(gatehouse, unix_backend, sockdir):
    b = unix_backend("live")
    gh = gatehouse(proxy_config(f"unix:{sockdir}/gone.sock", b.address))
    with H1(gh.port) as c:
        for _ in range(4):
            assert c.request("GET", "/echo").status == 200
    assert len(b.stats()["requests"]) == 4


def test_health_checks_mark_a_unix_server_down_then_up(gatehouse, sockdir):
    path = f"{sockdir}/hc.sock"
    cfg = proxy_config(f"unix:{path}", upstream={
        "health_check": {"path": "/health", "interval": "200ms", "rise": 1, "fall": 1}})
    gh = gatehouse(cfg)
    gh.wait_err(rf"server unix:{re.escape(path)} is down \(1 failed check: connect failed: No such "
                r"file or directory\)", timeout=T(5))
    mark = gh.err_mark()
    b = Backend(host=f"unix:{path}", name="hc")
    b.start()
    try:
        gh.wait_err(rf"server unix:{re.escape(path)} is up", since=mark, timeout=T(5))
        assert any(r[2] == "/health" for r in b.stats()["requests"])
        with H1(gh.port) as c:
            assert c.request("GET", "/echo").status == 200
    finally:
        b.stop()


def test_websocket_tunnel_over_a_unix_socket(gatehouse, unix_backend):
    b = unix_backend()
    gh = gatehouse(proxy_config(b.address))
    s = socket.create_connection(("127.0.0.1", gh.port), timeout=T(5))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    s.sendall(ws_frame(0x1, b"over a unix socket", mask=b"abcd"))

    def read_exact(n):
        nonlocal rest
        while len(rest) < n:
            chunk = s.recv(4096)
            if not chunk:
                raise EOFError
            rest += chunk
        out, rest = rest[:n], rest[n:]
        return out

    fin, opcode, payload = ws_read_frame(read_exact)[:3]
    assert (opcode, payload) == (0x1, b"over a unix socket")
    s.close()


def test_config_check_refuses_bad_unix_addresses(tmp_path):
    long_path = "/" + "a" * 107
    cfg = proxy_config("unix:relative/app.sock")
    cfg["upstreams"]["b"] = {"servers": [f"unix:{long_path}"]}
    f = tmp_path / "bad.yaml"
    f.write_text(to_yaml(cfg) + "\n")
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(f)], capture_output=True, text=True,
                       timeout=T(10))
    assert p.returncode != 0
    assert re.search(r"bad\.yaml:\d+:\d+: bad address 'unix:relative/app\.sock' \(a Unix socket "
                     r"is 'unix:' and an absolute path\)", p.stderr), p.stderr
    assert re.search(r"bad\.yaml:\d+:\d+: bad address 'unix:/a+\.\.\.' \(a Unix socket path has "
                     r"at most 107 bytes\)", p.stderr), p.stderr
