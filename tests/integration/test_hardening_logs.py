"""Issue 11 item 9: a log sink that is not read must never stop the server.

Gatehouse runs with stdout (the access log) and, in the second test, stderr (the error log)
connected to pipes that nobody reads. Before the fix the workers wrote log lines with blocking
writes, so serving stopped as soon as a pipe was full (after 194 requests in the issue). Now
lines that find no room are dropped and counted, with one warning, and the count is reported
once the sink is read again."""

import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import GATEHOUSE_BIN, H1, SANITIZER_MARKERS, T, free_port, refused_port, to_yaml

REQUESTS = 2000
AGENT = "a" * 1000   # long access-log lines: 2,000 of them are far more than a pipe and a ring hold


class Unread:
    """gatehouse with stdout (and optionally stderr) a pipe that is not read until .drain()."""

    def __init__(self, tmp_path, config, port, stderr_unread):
        path = tmp_path / "gatehouse.yaml"
        path.write_text(to_yaml(config) + "\n")
        self.err_path = tmp_path / "stderr.log"
        self.err_file = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [GATEHOUSE_BIN, "-c", str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if stderr_unread else self.err_file)
        self.port = port
        self.out, self.err = bytearray(), bytearray()
        self.readers = []
        deadline = time.monotonic() + T(10)
        while True:   # stderr may not be read: readiness is the port accepting
            assert self.proc.poll() is None, "gatehouse exited: " + self.err_path.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gatehouse never listened"
                time.sleep(0.02)

    def drain(self):
        """Start reading what was left unread."""
        pipes = [(self.proc.stdout, self.out)]
        if self.proc.stderr:
            pipes.append((self.proc.stderr, self.err))
        for pipe, sink in pipes:
            t = threading.Thread(target=self._read, args=(pipe, sink), daemon=True)
            t.start()
            self.readers.append(t)

    @staticmethod
    def _read(pipe, sink):
        for chunk in iter(lambda: pipe.read1(1 << 16), b""):
            sink += chunk

    def error_log(self):
        return (bytes(self.err) if self.proc.stderr else self.err_path.read_bytes()).decode(
            "utf-8", "replace")

    def wait_error(self, regex, timeout=10):
        deadline = time.monotonic() + T(timeout)
        while time.monotonic() < deadline:
            m = re.search(regex, self.error_log())
            if m:
                return m
            time.sleep(0.05)
        pytest.fail(f"no {regex!r} in the error log:\n{self.error_log()[-3000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=T(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if not self.readers:
            self.drain()
        for t in self.readers:
            t.join(timeout=5)
        self.err_file.close()
        reports = [l for l in self.error_log().splitlines() if any(m in l for m in SANITIZER_MARKERS)]
        assert not reports, "sanitizer reported errors:\n" + "\n".join(reports)


@pytest.fixture
def unread(tmp_path):
    started = []

    def make(config, port, stderr_unread=False):
        u = Unread(tmp_path, config, port, stderr_unread)
        started.append(u)
        return u

    yield make
    for u in started:
        u.stop()


def config(port, routes, upstreams=None, workers=1):
    cfg = {
        "workers": workers,
        "shutdown_timeout": "2s",
        "logs": {"access": "stdout", "format": "combined", "error": "stderr", "level": "info"},
        "listen": [{"address": f"127.0.0.1:{port}"}],
        "sites": [{"name": "main", "hosts": ["*"], "routes": routes}],
    }
    if upstreams:
        cfg["upstreams"] = upstreams
    return cfg


def run_requests(port, count, expect_status, target="/"):
    """`count` requests over a few keep-alive connections; every one must be answered."""
    conns = [H1(port, timeout=5) for _ in range(4)]
    try:
        for i in range(count):
            try:
                r = conns[i % len(conns)].request("GET", target, headers=[("User-Agent", AGENT)])
            except (OSError, EOFError) as e:
                pytest.fail(f"request {i + 1} of {count} not answered: {e!r}")
            assert r.status == expect_status, (i, r)
    finally:
        for c in conns:
            c.close()


def test_unread_access_log_does_not_stop_serving(unread):
    port = free_port()
    gh = unread(config(port, [{"path": "/", "respond": {"body": "ok\n"}}]), port)
    run_requests(port, REQUESTS, 200)     # before the fix: a timeout after a few hundred
    gh.wait_error(r"\[warn\] access log is not keeping up: dropping lines")
    # Read it again: what was kept comes out as whole lines, and the drop is counted.
    gh.drain()
    m = gh.wait_error(r"\[warn\] access log: dropped (\d+) lines")
    dropped = int(m.group(1))
    assert 0 < dropped < REQUESTS, dropped
    get_ok = H1(port).request("GET", "/")
    assert get_ok.status == 200
    deadline = time.monotonic() + T(5)
    while time.monotonic() < deadline and gh.out.count(b"\n") < REQUESTS - dropped + 1:
        time.sleep(0.05)
    lines = bytes(gh.out).decode().splitlines()
    assert len(lines) == REQUESTS - dropped + 1, (len(lines), dropped)
    whole = re.compile(r'^127\.0\.0\.1 - - \[[^]]+\] "GET / HTTP/1\.1" 200 3 .* request_time=\d+\.\d{3}$')
    assert all(whole.match(l) for l in lines), [l for l in lines if not whole.match(l)][:3]
    assert gh.error_log().count("access log is not keeping up") == 1


def test_unread_error_log_does_not_stop_serving(unread):
    port, dead = free_port(), refused_port()
    routes = [{"path": "/", "proxy": "app"}]
    upstreams = {"app": {"servers": [f"127.0.0.1:{dead}"], "connect_timeout": "1s"}}
    cfg = config(port, routes, upstreams)
    cfg["logs"]["access"] = "off"         # only the error log can fill its pipe here
    gh = unread(cfg, port, stderr_unread=True)
    # An error-log line or two each: 5,000 of them are more than the pipe and the ring hold.
    run_requests(port, 5000, 502)
    gh.drain()
    gh.wait_error(r"\[warn\] error log: dropped (\d+) lines")
    assert H1(port).request("GET", "/").status == 502
    gh.wait_error(r"connect failed: Connection refused -> 502")
