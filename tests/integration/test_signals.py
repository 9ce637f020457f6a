"""SIGHUP reload, SIGTERM/SIGINT graceful shutdown, worker threads."""

import os
import signal
import socket
import threading
import time

import pytest

from conftest import H1, T, get, proxy_config, respond_config, wait_until


def config(backend, body, **over):
    return proxy_config(backend, routes=[
        {"path": "/", "proxy": "app"},
        {"path": "/version", "respond": {"body": body}},
    ], **over)


class InFlight:
    """A request running in a thread; .response (or .error) when done."""

    def __init__(self, port, target):
        self.response = self.error = None
        self.t = threading.Thread(target=self._run, args=(port, target), daemon=True)
        self.t.start()

    def _run(self, port, target):
        try:
            self.response = get(port, target)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def join(self, timeout=10):
        self.t.join(T(timeout))
        assert not self.t.is_alive(), "request still running"
        return self.response


def started(backend, target):
    st = backend.wait_for(lambda s: any(r[2] == target for r in s.requests))
    assert any(r[2] == target for r in st.requests), "the backend never got the request"


def test_reload_applies_new_config(backend, gatehouse):
    gh = gatehouse(config(backend, "v1\n"))
    assert get(gh.port, "/version").body == b"v1\n"
    gh.write_config(config(backend, "v2\n"))
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"\[info\] configuration reloaded", since=mark)
    assert get(gh.port, "/version").body == b"v2\n"


def test_reload_switches_upstream(backend_factory, gatehouse):
    a, b = backend_factory("a"), backend_factory("b")
    gh = gatehouse(config(a, "v1\n"))
    assert get(gh.port, "/echo").json()["port"] == a.port
    gh.write_config(config(b, "v1\n"))
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"\[info\] configuration reloaded", since=mark)
    assert get(gh.port, "/echo").json()["port"] == b.port


def test_reload_lets_requests_in_flight_finish(backend, gatehouse):
    gh = gatehouse(config(backend, "v1\n"))
    slow = InFlight(gh.port, "/delay?ms=2000")
    started(backend, "/delay?ms=2000")
    gh.write_config(config(backend, "v2\n"))
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"\[info\] configuration reloaded", since=mark)
    assert get(gh.port, "/version").body == b"v2\n"
    r = slow.join()
    assert slow.error is None and r.status == 200, (slow.error, r)


def test_reload_never_cuts_a_streamed_response(backend, gatehouse):
    """A long chunked download that is mid-stream (paused by the backend) when the
    configuration changes keeps its upstream and arrives whole."""
    from backend import pattern_bytes
    gh = gatehouse(config(backend, "v1\n"))
    target = "/bytes?n=3000000&chunked=1&chunk=65536&pause_at=1000000&pause_ms=1500"
    dl = InFlight(gh.port, target)
    started(backend, target)
    time.sleep(T(0.3))          # the first MiB is through, the backend is pausing
    gh.write_config(config(backend, "v2\n", upstream={"keepalive": 4}))
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"\[info\] configuration reloaded", since=mark)
    r = dl.join(timeout=15)
    assert dl.error is None and r.status == 200, (dl.error, r)
    assert r.body == pattern_bytes(3000000)


def test_reload_keeps_keepalive_connections_working(backend, gatehouse):
    gh = gatehouse(config(backend, "v1\n"))
    with H1(gh.port) as c:
        assert c.request("GET", "/version").body == b"v1\n"
        gh.write_config(config(backend, "v2\n"))
        mark = gh.err_mark()
        gh.send_signal(signal.SIGHUP)
        gh.wait_err(r"\[info\] configuration reloaded", since=mark)
        assert c.request("GET", "/echo").status == 200


def test_invalid_reload_keeps_old_config(backend, gatehouse):
    gh = gatehouse(config(backend, "v1\n"))
    good = gh.config_path.read_text()
    gh.config_path.write_text("workers: 1\nbogus_key: 1\n" + good.split("\n", 1)[1])
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"\[error\] reload failed", since=mark)
    gh.wait_err(re_escape(str(gh.config_path)) + r":2:\d+: ", since=mark)
    assert get(gh.port, "/version").body == b"v1\n"
    assert gh.running()
    # and a later good reload still works
    gh.write_config(config(backend, "v3\n"))
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"\[info\] configuration reloaded", since=mark)
    assert get(gh.port, "/version").body == b"v3\n"


def re_escape(s):
    import re
    return re.escape(s)


def connect_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_graceful_shutdown(backend, gatehouse, sig):
    gh = gatehouse(config(backend, "v1\n", shutdown_timeout="10s"))
    idle = H1(gh.port)
    assert idle.request("GET", "/version").status == 200
    slow = InFlight(gh.port, "/delay?ms=1500")
    started(backend, "/delay?ms=1500")
    t = time.monotonic()
    gh.send_signal(sig)
    assert wait_until(lambda: connect_refused(gh.port), timeout=1), "still accepting after the signal"
    assert slow.response is None, "new connects must be refused while the request is in flight"
    assert idle.closed_by_peer(timeout=2), "idle keep-alive connection not closed"
    r = slow.join()
    assert slow.error is None and r.status == 200, (slow.error, r)
    assert gh.wait_exit(timeout=5) == 0
    assert time.monotonic() - t < T(5)
    idle.close()


def test_shutdown_grace_expires(backend, gatehouse):
    gh = gatehouse(config(backend, "v1\n", shutdown_timeout="1s"))
    slow = InFlight(gh.port, "/delay?ms=10000")
    started(backend, "/delay?ms=10000")
    t = time.monotonic()
    gh.send_signal(signal.SIGTERM)
    assert gh.wait_exit(timeout=5) == 0
    assert 0.8 <= time.monotonic() - t <= T(4)
    slow.join(timeout=5)
    assert slow.response is None or slow.response.status != 200


def test_idle_server_exits_promptly(gatehouse):
    gh = gatehouse(respond_config([{"path": "/", "respond": {"body": "x"}}], shutdown_timeout="30s"))
    t = time.monotonic()
    assert gh.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t < T(3), "nothing in flight: must not wait for shutdown_timeout"


def listening_sockets(port):
    """Number of IPv4 sockets in LISTEN state on port (from /proc/net/tcp)."""
    n = 0
    with open("/proc/net/tcp") as f:
        for line in list(f)[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                n += 1
    return n


def test_workers_each_have_a_reuseport_socket(backend, gatehouse):
    gh = gatehouse(config(backend, "v1\n", workers=2))
    gh.wait_err(r"\[info\] ready: 2 workers")
    assert listening_sockets(gh.port) == 2
    assert len(os.listdir(f"/proc/{gh.pid}/task")) >= 2
    for i in range(10):
        assert get(gh.port, "/version").status == 200


def test_workers_auto(backend, gatehouse):
    gh = gatehouse(config(backend, "v1\n", workers="auto"))
    n = len(os.sched_getaffinity(0))
    ncpu = os.cpu_count()
    line = gh.wait_err(r"\[info\] ready: \d+ workers")
    assert f"ready: {n} workers" in line or f"ready: {ncpu} workers" in line
