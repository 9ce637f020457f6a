"""Supervised apps under load (issue 14): no request fails while an instance is killed with
SIGKILL, or while a SIGHUP (or POST /apps/NAME/restart) replaces the app blue-green; a new
version that never becomes ready leaves the old one serving; restart_on files; /status.

The load is bounded: a few keep-alive clients, each sending GETs one after another until told to
stop, at most a fixed number each. Every answer must be a 200 from the app."""
import http.client
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

from conftest import H1, T, wait_until
from pathlib import Path

from test_apps import alive, app_config, children, fetch, fetch_json, ready_line

CLIENTS = 4
MAX_PER_CLIENT = 3000


class Load:
    """CLIENTS keep-alive clients sending GET / until stop(); counts statuses and errors."""

    def __init__(self, port, path="/"):
        self.port, self.path = port, path
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.statuses, self.errors, self.versions = {}, [], {}
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(CLIENTS)]

    def run(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=T(10))
        for _ in range(MAX_PER_CLIENT):
            if self.stop_flag.is_set():
                break
            try:
                c.request("GET", self.path, headers={"Host": "test"})
                r = c.getresponse()
                body = r.read()
                with self.lock:
                    self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                    v = r.getheader("X-App-Version")
                    self.versions[v] = self.versions.get(v, 0) + 1
                    if r.status != 200:
                        self.errors.append((r.status, body[:200]))
            except (http.client.HTTPException, OSError) as e:
                with self.lock:
                    self.errors.append(repr(e))
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=T(10))
        c.close()

    def total(self):
        with self.lock:
            return sum(self.statuses.values()) + len(self.errors)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=T(20))

    def wait_requests(self, n, timeout=10):
        start = self.total()
        assert wait_until(lambda: self.total() >= start + n, timeout=timeout), self.statuses


def two_instances(workers=1, **app):
    return app_config(dict({"start": "always", "instances": 2, "ready": {"path": "/health"},
                            "restart": {"backoff": "200ms"}, "stop_timeout": "5s"}, **app),
                      upstream={"retries": 2}, workers=workers)


def instance_pids(gh):
    return sorted(p for p, st in children(gh.pid) if st != "Z")


def test_kill9_an_instance_under_load_loses_nothing(gatehouse):
    gh = gatehouse(two_instances(workers=2))
    ready_line(gh, index=0)
    ready_line(gh, index=1)
    assert wait_until(lambda: fetch(gh.port, "/")[0] == 200)
    before = instance_pids(gh)
    assert len(before) == 2
    mark = gh.err_mark()
    with Load(gh.port) as load:
        load.wait_requests(300)
        os.kill(before[0], signal.SIGKILL)
        gh.wait_err(r"app py\[\d\]: pid %d killed by signal 9 \(KILL\); restarting in 200 ms"
                    % before[0], since=mark)
        gh.wait_err(r"app py\[\d\]: ready after", since=mark)
        load.wait_requests(300)
    print(f"kill -9 under load: {load.statuses}, failed {len(load.errors)}")
    assert load.errors == [], (load.errors[:5], load.statuses)
    assert load.statuses.get(200, 0) >= 600
    after = instance_pids(gh)
    assert len(after) == 2 and before[0] not in after and before[1] in after
    assert not [c for c in children(gh.pid) if c[1] == "Z"]


def test_sighup_replaces_a_changed_app_under_load(gatehouse):
    cfg = two_instances(env={"APP_VERSION": "v1"}, workers=2)
    gh = gatehouse(cfg)
    ready_line(gh, index=0)
    ready_line(gh, index=1)
    assert wait_until(lambda: fetch(gh.port, "/")[0] == 200)
    old = instance_pids(gh)
    cfg["upstreams"]["py"]["app"]["env"]["APP_VERSION"] = "v2"
    gh.write_config(cfg)
    mark = gh.err_mark()
    with Load(gh.port) as load:
        load.wait_requests(300)
        gh.send_signal(signal.SIGHUP)
        gh.wait_err(r"app py: its command, environment or directory changed: starting 2 new "
                    r"instances beside the old", since=mark)
        gh.wait_err(r"app py: the new version serves", since=mark, timeout=10)
        for p in old:
            gh.wait_err(r"app py\[\d\]: pid %d stopped" % p, since=mark, timeout=10)
        load.wait_requests(300)
    print(f"SIGHUP under load: {load.statuses}, versions {load.versions}, failed {len(load.errors)}")
    assert load.errors == [], (load.errors[:5], load.statuses)
    assert load.versions.get("v1") and load.versions.get("v2"), load.versions
    assert all(not alive(p) for p in old)
    new = instance_pids(gh)
    assert len(new) == 2 and not set(new) & set(old)
    assert fetch_json(gh.port)["version"] == "v2"


def test_a_new_version_that_never_gets_ready_leaves_the_old_one(gatehouse):
    cfg = two_instances(env={"APP_VERSION": "v1"}, ready={"path": "/health", "timeout": "1s"})
    gh = gatehouse(cfg)
    ready_line(gh, index=0)
    ready_line(gh, index=1)
    old = instance_pids(gh)
    cfg["upstreams"]["py"]["app"]["env"] = {"APP_VERSION": "v2", "APP_NOT_READY": "1"}
    gh.write_config(cfg)
    mark = gh.err_mark()
    with Load(gh.port) as load:
        gh.send_signal(signal.SIGHUP)
        gh.wait_err(r"app py: the new version did not become ready \(never became ready within "
                    r"1000 ms\); the old one keeps serving", since=mark, timeout=10)
        load.wait_requests(100)
    assert load.errors == [], (load.errors[:5], load.statuses)
    assert set(load.versions) == {"v1"}
    assert wait_until(lambda: instance_pids(gh) == old, timeout=5), (instance_pids(gh), old)


def test_restart_on_file_mtime_and_unchanged_reload(gatehouse, tmp_path):
    marker = tmp_path / "Blog.dll"
    marker.write_text("1")
    cfg = two_instances(restart_on=[str(marker)])
    gh = gatehouse(cfg)
    ready_line(gh, index=0)
    ready_line(gh, index=1)
    old = instance_pids(gh)
    # A reload that changes nothing of the app keeps its processes.
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"configuration reloaded", since=mark)
    time.sleep(0.3)
    assert instance_pids(gh) == old
    # A newer file replaces it.
    st = marker.stat()
    os.utime(marker, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"app py: a restart_on file changed: starting 2 new instances", since=mark)
    gh.wait_err(r"app py: the new version serves", since=mark, timeout=10)
    assert wait_until(lambda: len(instance_pids(gh)) == 2 and
                      not set(instance_pids(gh)) & set(old), timeout=10)


def admin(gh, method, path):
    c = http.client.HTTPConnection("127.0.0.1", gh.ports[-1], timeout=T(10))
    try:
        c.request(method, path, headers={"Host": "127.0.0.1"})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def app_status(gh, name="py"):
    status, _, body = admin(gh, "GET", "/status")
    assert status == 200, body
    (up,) = [u for u in json.loads(body)["upstreams"] if u["name"] == name]
    return up


def test_admin_restart_replaces_under_load_and_status(gatehouse):
    cfg = two_instances(workers=2)
    cfg["admin"] = {"address": "127.0.0.1:0"}
    gh = gatehouse(cfg)
    ready_line(gh, index=0)
    ready_line(gh, index=1)
    assert wait_until(lambda: fetch(gh.port, "/")[0] == 200)
    up = wait_until(lambda: (lambda u: u if len(u["servers"]) == 2 else None)(app_status(gh)))
    assert up["app"]["state"] == "ready" and up["app"]["ready"] == 2
    assert up["app"]["starts"] == 2 and up["app"]["replaced"] == 0
    old = instance_pids(gh)
    assert all(re.match(r"py\[[01]\]#[12]@127\.0\.0\.1:\d+$", s["address"]) for s in up["servers"])
    assert admin(gh, "GET", "/apps/py/restart")[0] == 405
    assert admin(gh, "POST", "/apps/nope/restart")[0] == 404
    mark = gh.err_mark()
    with Load(gh.port) as load:
        load.wait_requests(200)
        status, _, body = admin(gh, "POST", "/apps/py/restart")
        assert status == 202 and json.loads(body) == {"app": "py", "restart": "requested"}
        gh.wait_err(r"app py: restart asked for: starting 2 new instances", since=mark)
        gh.wait_err(r"app py: the new version serves", since=mark, timeout=10)
        for p in old:
            gh.wait_err(r"app py\[\d\]: pid %d stopped" % p, since=mark, timeout=10)
        load.wait_requests(200)
    assert load.errors == [], (load.errors[:5], load.statuses)
    up = wait_until(lambda: (lambda u: u if u["app"]["replaced"] == 1 else None)(app_status(gh)))
    assert up["app"]["starts"] == 4 and up["app"]["ready"] == 2
    assert not set(instance_pids(gh)) & set(old)


def test_status_shows_rapid_fail_and_admin_starts_it_again(gatehouse, tmp_path):
    flag = tmp_path / "crash"
    flag.write_text("1")
    # Crashes at start while the file exists: the admin can start it again once it is gone.
    cfg = app_config({"start": "always", "command": ["/bin/sh", "-c",
                      f"test -e {flag} && exit 5; exec /usr/bin/python3 "
                      f"{Path(__file__).resolve().parent / 'apps' / 'pyapp.py'}"],
                      "restart": {"backoff": "50ms", "rapid_fail": {"count": 1, "within": "1m"}}})
    cfg["admin"] = {"address": "127.0.0.1:0"}
    gh = gatehouse(cfg)
    gh.wait_err(r"app py: more than 1 crashes within 60 s \(the last exited with status 5\)")
    up = wait_until(lambda: (lambda u: u if u["app"]["state"] == "failed" else None)(
        app_status(gh)))
    assert up["app"]["crashes"] == 2 and up["servers"] == []
    assert "exited with status 5" in up["app"]["last_exit"]
    assert fetch(gh.port, "/")[0] == 503
    flag.unlink()
    assert admin(gh, "POST", "/apps/py/restart")[0] == 202
    gh.wait_err(r"app py: started by the admin")
    assert wait_until(lambda: fetch(gh.port, "/")[0] == 200, timeout=10)
    assert app_status(gh)["app"]["state"] == "ready"


def test_websocket_keeps_an_old_instance_until_it_closes(gatehouse):
    """Blue-green with a WebSocket open to the old instance: the old process lives on while the
    tunnel is open (up to stop_timeout), the tunnel still carries bytes after the switch, and
    the process gets SIGTERM once the tunnel is closed."""
    from test_apps import NODEAPP
    cfg = app_config({"command": NODEAPP, "start": "always", "stop_timeout": "20s"}, name="node")
    cfg["admin"] = {"address": "127.0.0.1:0"}
    gh = gatehouse(cfg)
    ready_line(gh, name="node")
    assert wait_until(lambda: fetch(gh.port, "/")[0] == 200)
    (old,) = instance_pids(gh)
    ws = socket.create_connection(("127.0.0.1", gh.port), timeout=T(10))
    ws.sendall(b"GET /chat HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += ws.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"X-App-Pid: %d" % old in head
    mark = gh.err_mark()
    assert admin(gh, "POST", "/apps/node/restart")[0] == 202
    gh.wait_err(r"app node: the new version serves", since=mark, timeout=10)
    new = wait_until(lambda: [p for p in instance_pids(gh) if p != old], timeout=5)
    assert new and fetch(gh.port, "/")[2].endswith(b"pid %d\n" % new[0])
    time.sleep(1.0)  # well past the drain grace: only the tunnel keeps the old one
    assert alive(old), gh.stderr_text()
    ws.sendall(b"still there?")
    got = b""
    while len(got) < 12:
        got += ws.recv(4096)
    assert got == b"still there?"
    ws.close()
    gh.wait_err(r"app node\[0\]: pid %d stopped" % old, since=mark, timeout=10)
    assert wait_until(lambda: not alive(old))


def test_a_hung_request_holds_an_old_instance_only_up_to_stop_timeout(gatehouse):
    cfg = two_instances(stop_timeout="1s", instances=1)
    cfg["admin"] = {"address": "127.0.0.1:0"}
    cfg["upstreams"]["py"]["read_timeout"] = "30s"
    gh = gatehouse(cfg)
    ready_line(gh)
    assert wait_until(lambda: fetch(gh.port, "/")[0] == 200)
    (old,) = instance_pids(gh)
    hung = H1(gh.port, timeout=T(20))
    hung.send(H1.build("GET", "/hang"))
    assert wait_until(lambda: app_status(gh)["servers"][0]["active"] == 1)
    mark = gh.err_mark()
    assert admin(gh, "POST", "/apps/py/restart")[0] == 202
    gh.wait_err(r"app py: the new version serves", since=mark, timeout=10)
    # A request that never ends does not keep the old version: SIGTERM comes at stop_timeout
    # with the request still in flight, which then fails (the app never answered it).
    gh.wait_err(r"app py\[0\]: pid %d stopped \(killed by signal 15" % old, since=mark, timeout=10)
    assert hung.read_response().status == 502
    hung.close()
    assert fetch(gh.port, "/")[0] == 200
