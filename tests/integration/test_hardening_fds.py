"""Issue 11 item 8: running out of file descriptors must not stop accepting for good.

Gatehouse runs with a low RLIMIT_NOFILE and a small backlog. More clients connect than it has
descriptors for, so accept fails with EMFILE and the backlog fills (further SYNs are dropped,
nothing new wakes the edge-triggered listener). Once those clients are gone, new clients must be
served again without any outside help. Before the fix accepting stopped for good."""

import os
import socket
import stat
import time

from conftest import GATEHOUSE_BIN, H1, T, respond_config, wait_until

NOFILE = 64     # descriptors gatehouse may have: a few for itself, the rest for clients
BACKLOG = 8
CLIENTS = 160   # well past NOFILE + BACKLOG


def limited(gatehouse, tmp_path, config):
    """A gatehouse started through a wrapper that lowers RLIMIT_NOFILE (the process is exec'd,
    so its pid and logs are the fixture's as usual)."""
    wrapper = tmp_path / "gatehouse-nofile.sh"
    wrapper.write_text(f"#!/bin/sh\nulimit -n {NOFILE} || exit 99\nexec {GATEHOUSE_BIN} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    gh = gatehouse(config, start=False)
    gh.binary = str(wrapper)
    return gh.start()


def fds_open(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def served(port, timeout):
    try:
        with H1(port, timeout=timeout) as c:
            r = c.request(host="test")
            return r.status == 200 and r.body == b"ok\n"
    except OSError:
        return False


def test_accepting_resumes_after_descriptors_run_out(gatehouse, tmp_path):
    cfg = respond_config([{"path": "/", "respond": {"body": "ok\n"}}])
    cfg["listen"] = [{"address": "127.0.0.1:0", "backlog": BACKLOG}]
    cfg["limits"] = {"client_header_timeout": "60s"}   # the idle clients hold their descriptors
    gh = limited(gatehouse, tmp_path, cfg)
    assert served(gh.port, 5)

    mark = gh.err_mark()
    clients = []
    try:
        for _ in range(CLIENTS):
            # One at a time, each given a moment to be accepted: a burst would overflow the
            # backlog long before the descriptors run out.
            before = fds_open(gh.pid)
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", gh.port))
            clients.append(s)
            if before < NOFILE:
                wait_until(lambda: fds_open(gh.pid) > before, timeout=0.2, interval=0.002)
        assert fds_open(gh.pid) >= NOFILE - 1, fds_open(gh.pid)
    finally:
        for s in clients:
            s.close()

    # Those clients are gone, and so are the descriptors they held ("fds back to 9" in the
    # issue). Gatehouse must take the backlog again by itself: a new client is served within a
    # second (the bound; a connection that ends retries the accept at once, and the
    # 100 ms timer is there for when none does).
    assert wait_until(lambda: fds_open(gh.pid) < NOFILE // 2, timeout=10), fds_open(gh.pid)
    deadline = time.monotonic() + T(1)
    ok = False
    while not ok and time.monotonic() < deadline:
        ok = served(gh.port, max(0.05, deadline - time.monotonic()))
    assert ok, "no client served within a second of the descriptors coming back\n" + \
        gh.stderr_text()
    for _ in range(20):
        assert served(gh.port, 5)
    gh.wait_err(r"\[warn\] out of file descriptors; accept: Too many open files", since=mark)
    gh.wait_err(r"\[info\] accepting clients again \(worker 0\)", since=mark)
    # One warning per second at most, however many accepts failed.
    warnings = [l for l in gh.err_lines(mark) if "out of file descriptors" in l]
    assert 1 <= len(warnings) <= 3, warnings
