"""Supervised apps (`upstreams.NAME.app`, issue 14): Gatehouse starts the app (tests/integration/
apps/pyapp.py, a Python HTTP app, and apps/nodeapp.js, a Node app), hands it a port or a socket
and a pairing token, adds the token to every request it forwards, restarts it when it crashes,
stops it when it keeps crashing, starts it at the first request, and leaves no process, zombie
or descriptor behind. Each test checks what the process itself reports (/pid: pid, group,
descriptors, environment) and what /proc says, not only the log."""
import concurrent.futures
import http.client
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import GATEHOUSE_BIN, H1, T, base_config, to_yaml, wait_until

APPS = Path(__file__).resolve().parent / "apps"
PYAPP = ["/usr/bin/python3", str(APPS / "pyapp.py")]
NODEAPP = ["/usr/bin/node", str(APPS / "nodeapp.js")]
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")


def app_config(app, upstream=None, name="py", routes=None, **over):
    cfg = base_config(**over)
    cfg["upstreams"] = {name: dict({"app": dict({"command": PYAPP}, **app),
                                    "connect_timeout": "2s", "read_timeout": "10s"},
                                   **(upstream or {}))}
    cfg["sites"] = [{"name": "main", "hosts": ["*"],
                     "routes": routes or [{"path": "/", "proxy": name}]}]
    return cfg


def fetch(port, path="/", headers=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=T(timeout))
    try:
        c.request("GET", path, headers=dict({"Host": "test"}, **(headers or {})))
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def fetch_json(port, path="/pid", **kw):
    status, headers, body = fetch(port, path, **kw)
    assert status == 200, (status, body)
    return json.loads(body)


def children(pid):
    """(pid, state) of the processes whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append((int(d), fields[0]))
    return out


def alive(pid):
    """Running (not gone, not a zombie waiting for whoever reaps it now)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def fd_targets(pid):
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[name] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            pass
    return out


def ready_line(gh, name="py", index=0, since=0, timeout=10):
    return gh.wait_err(rf"app {name}\[{index}\]: ready after", timeout=timeout, since=since)


# ---- start, token, environment, descriptors, process group -------------------------------------

def test_always_app_gets_port_token_and_no_descriptor_of_ours(gatehouse):
    gh = gatehouse(app_config({"start": "always", "ready": {"path": "/health", "timeout": "10s"}},
                              workers=2))
    ready_line(gh)
    info = wait_until(lambda: fetch(gh.port, "/pid")[0] == 200 and fetch_json(gh.port), timeout=5)
    assert info, gh.stderr_text()
    # Its own process group, our child, told where to listen.
    assert info["pgid"] == info["pid"]
    assert info["ppid"] == gh.pid
    port = int(info["env"]["PORT"])
    assert info["env"]["ASPNETCORE_URLS"] == f"http://127.0.0.1:{port}"
    assert info["env"]["GATEHOUSE_APP_NAME"] == "py"
    # The pairing token: 32 hex digits, the app's own (pyapp answered 200, so they match).
    assert TOKEN_RE.match(info["token_seen"])
    # No descriptor of Gatehouse's: 0 is /dev/null, 1 and 2 the output pipe, and every other one
    # is the app's own (its sockets), none an object Gatehouse holds.
    fds = info["fds"]
    assert fds["0"] == "/dev/null"
    assert fds["1"] == fds["2"] and fds["1"].startswith("pipe:")
    ours = set(fd_targets(gh.pid).values())
    leaked = {n: t for n, t in fds.items() if int(n) > 2 and t in ours}
    assert not leaked, (leaked, fds)
    assert all(t.startswith("socket:") for n, t in fds.items() if int(n) > 2), fds
    # Its output reaches the error log, prefixed with the app and instance.
    gh.wait_err(r"app py\[0\]: pyapp v1 listening on 127\.0\.0\.1:%d" % port)


def test_client_cannot_forge_the_token(gatehouse):
    gh = gatehouse(app_config({"start": "always"}))
    ready_line(gh)
    info = wait_until(lambda: fetch(gh.port, "/pid")[0] == 200 and fetch_json(gh.port))
    forged = "0" * 32
    info2 = fetch_json(gh.port, headers={"X-Gatehouse-App-Token": forged})
    assert info2["token_seen"] == info["token_seen"] != forged
    # The app refuses a request that did not come through Gatehouse.
    port = int(info["env"]["PORT"])
    assert fetch(port, "/pid", headers={"X-Gatehouse-App-Token": forged})[0] == 403


def test_node_app_on_demand(gatehouse):
    gh = gatehouse(app_config({"command": NODEAPP, "ready": {"timeout": "10s"}}, name="node"))
    assert children(gh.pid) == []  # on demand: nothing before the first request
    info = fetch_json(gh.port, "/pid")
    assert info["runtime"] == "node"
    assert TOKEN_RE.match(info["token_seen"])
    assert info["ppid"] == gh.pid
    gh.wait_err(r"app node: started by a request")
    gh.wait_err(r"app node\[0\]: nodeapp node-v1 listening on 127\.0\.0\.1:\d+")


def test_unix_socket_app(gatehouse):
    gh = gatehouse(app_config({"listen": "unix", "start": "always",
                               "ready": {"path": "/health"}}))
    ready_line(gh)
    info = wait_until(lambda: fetch(gh.port, "/pid")[0] == 200 and fetch_json(gh.port))
    path = info["env"]["GATEHOUSE_SOCKET"]
    assert info["env"]["PORT"] is None
    assert info["env"]["ASPNETCORE_URLS"] == f"http://unix:{path}"
    st = os.stat(os.path.dirname(path))
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    gh.stop()
    assert not os.path.exists(path)


def test_port_env_and_env_and_cwd(gatehouse, tmp_path):
    gh = gatehouse(app_config({"start": "always", "port_env": "MY_PORT", "cwd": str(tmp_path),
                               "env": {"APP_VERSION": "custom", "APP_PORT_ENV": "MY_PORT"}}))
    ready_line(gh)
    info = wait_until(lambda: fetch(gh.port, "/pid")[0] == 200 and fetch_json(gh.port))
    assert info["version"] == "custom"
    assert info["env"]["MY_PORT"] and info["env"]["PORT"] is None
    assert info["cwd"] == str(tmp_path)


# ---- crashes, restarts, rapid-fail, zombies -------------------------------------------------------

def test_crash_restarts_with_new_token_and_no_zombie(gatehouse):
    gh = gatehouse(app_config({"start": "always", "ready": {"path": "/health"},
                               "restart": {"backoff": "100ms"}}))
    ready_line(gh)
    first = wait_until(lambda: fetch(gh.port, "/pid")[0] == 200 and fetch_json(gh.port))
    mark = gh.err_mark()
    try:
        fetch(gh.port, "/crash")  # no answer: the app exits while handling it
    except (http.client.HTTPException, OSError):
        pass
    gh.wait_err(r"app py\[0\]: pid %d exited with status 3; restarting in 100 ms" % first["pid"],
                since=mark)
    ready_line(gh, since=mark)

    def restarted():
        status, _, body = fetch(gh.port, "/pid")
        j = json.loads(body) if status == 200 else None
        return j if j and j["pid"] != first["pid"] else None

    second = wait_until(restarted, timeout=5)
    assert second and second["pid"] != first["pid"]
    assert second["token_seen"] != first["token_seen"]  # a new token per start
    assert not alive(first["pid"])
    zombies = [c for c in children(gh.pid) if c[1] == "Z"]
    assert not zombies


def test_rapid_fail_stops_the_app_503_and_sighup_starts_it(gatehouse):
    cfg = app_config({"start": "always", "env": {"APP_EXIT_AT_START": "7"},
                      "restart": {"backoff": "50ms", "max_backoff": "100ms",
                                  "rapid_fail": {"count": 2, "within": "1m"}}})
    gh = gatehouse(cfg)
    line = gh.wait_err(r"app py: more than 2 crashes within 60 s .*rapid-fail protection",
                       timeout=10)
    assert "exited with status 7" in line
    gh.wait_err(r"app py\[0\]: pid \d+ exited with status 7; last output: .*exiting with 7")
    starts = len([l for l in gh.err_lines() if re.search(r"app py\[0\]: started pid", l)])
    assert starts == 3
    status, headers, body = fetch(gh.port, "/")
    assert status == 503
    assert headers.get("Retry-After") == "5"
    # Stopped means stopped: no further start, no zombie.
    time.sleep(0.5)
    assert starts == len([l for l in gh.err_lines() if re.search(r"app py\[0\]: started pid", l)])
    assert not [c for c in children(gh.pid)]
    # Fixed and reloaded: it starts again and serves.
    del cfg["upstreams"]["py"]["app"]["env"]
    gh.write_config(cfg)
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"app py: started again by the reload", since=mark)
    ready_line(gh, since=mark)
    assert wait_until(lambda: fetch(gh.port, "/")[0] == 200, timeout=5)


def test_never_ready_503_and_last_output(gatehouse):
    gh = gatehouse(app_config({"env": {"APP_NOT_READY": "1"},
                               "ready": {"path": "/health", "timeout": "1s"},
                               "restart": {"backoff": "5s"}}))
    status, headers, _ = fetch(gh.port, "/", timeout=10)
    assert status == 503
    assert headers.get("Retry-After") == "5"
    gh.wait_err(r"app py\[0\]: never became ready within 1000 ms; last output: .*pyapp v1 "
                r"listening on 127\.0\.0\.1:\d+")


# ---- on demand -------------------------------------------------------------------------------------

def test_on_demand_100_first_requests_one_start(gatehouse):
    gh = gatehouse(app_config({"env": {"APP_START_DELAY": "1"},
                               "ready": {"path": "/health", "timeout": "10s"}}, workers=2))
    assert children(gh.pid) == []  # nothing runs before the first request
    barrier = threading.Barrier(100)

    def one(_):
        s = socket.create_connection(("127.0.0.1", gh.port), timeout=T(15))
        barrier.wait(timeout=T(10))
        try:
            s.sendall(b"GET /pid HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data
        finally:
            s.close()

    with concurrent.futures.ThreadPoolExecutor(100) as ex:
        answers = list(ex.map(one, range(100)))
    statuses = [a.split(b" ", 2)[1] for a in answers]
    assert statuses == [b"200"] * 100, statuses
    pids = {json.loads(a.split(b"\r\n\r\n", 1)[1])["pid"] for a in answers}
    assert len(pids) == 1
    assert len([l for l in gh.err_lines() if "app py[0]: started pid" in l]) == 1
    assert len([l for l in gh.err_lines() if "app py: started by a request" in l]) == 1


def test_idle_stop(gatehouse):
    gh = gatehouse(app_config({"idle_stop": "1s"}))
    info = fetch_json(gh.port)
    gh.wait_err(r"app py: no request for 1000 ms: stopping it", timeout=5)
    gh.wait_err(r"app py\[0\]: pid %d stopped" % info["pid"])
    assert wait_until(lambda: not alive(info["pid"]))
    # The next request starts it again.
    info2 = fetch_json(gh.port)
    assert info2["pid"] != info["pid"]


def test_reload_without_the_app_stops_it(gatehouse):
    cfg = app_config({"start": "always"})
    gh = gatehouse(cfg)
    ready_line(gh)
    pids = [p for p, _ in children(gh.pid)]
    assert len(pids) == 1
    cfg["upstreams"] = {"other": {"servers": ["127.0.0.1:9"]}}
    cfg["sites"][0]["routes"] = [{"path": "/", "proxy": "other"}]
    gh.write_config(cfg)
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"app py: no longer configured: stopping it", since=mark)
    gh.wait_err(r"app py\[0\]: pid %d stopped" % pids[0], since=mark)
    assert wait_until(lambda: not alive(pids[0]))
    assert not children(gh.pid)


def test_idle_stop_waits_for_a_long_request(gatehouse):
    # idle_stop 1s, a request of 2.5 s: the app is not idle while it runs (stop_timeout is
    # short, so a stop would cut the request).
    gh = gatehouse(app_config({"idle_stop": "1s", "stop_timeout": "300ms"}))
    info = fetch_json(gh.port)
    mark = gh.err_mark()
    status, _, body = fetch(gh.port, "/slow?s=2.5")
    assert (status, body) == (200, b"slow from v1\n")
    assert not [l for l in gh.err_lines(mark) if "no request for" in l]
    gh.wait_err(r"app py: no request for 1000 ms: stopping it", since=mark, timeout=5)
    gh.wait_err(r"app py\[0\]: pid %d stopped" % info["pid"], since=mark)


# ---- hygiene: Gatehouse's end -----------------------------------------------------------------------

def test_sigterm_stops_apps_after_the_drain(gatehouse):
    gh = gatehouse(app_config({"start": "always", "instances": 2}))
    ready_line(gh, index=0)
    ready_line(gh, index=1)
    pids = [p for p, _ in children(gh.pid)]
    assert len(pids) == 2
    gh.stop()
    assert all(not alive(p) for p in pids)
    gh.wait_err(r"app py\[\d\]: pid \d+ stopped \(killed by signal 15")


def test_app_dies_when_gatehouse_is_killed(gatehouse):
    gh = gatehouse(app_config({"start": "always"}))
    ready_line(gh)
    pids = [p for p, _ in children(gh.pid)]
    assert len(pids) == 1
    gh.proc.kill()  # SIGKILL: no chance to stop anything; PR_SET_PDEATHSIG does it
    gh.proc.wait(timeout=T(5))
    assert wait_until(lambda: not alive(pids[0]), timeout=5), "the app outlived Gatehouse"


# ---- gatehouse -t -------------------------------------------------------------------------------------

def test_config_check_errors(tmp_path):
    notexec = tmp_path / "notexec.sh"
    notexec.write_text("#!/bin/sh\n")
    notexec.chmod(0o644)
    path = tmp_path / "g.yaml"
    path.write_text(to_yaml(app_config({"command": ["/nonexistent/dotnet", "Blog.dll"],
                                        "cwd": str(tmp_path / "missing"),
                                        "user": "no-such-user-x"})) + "\n")
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(path)], capture_output=True, text=True,
                       timeout=T(10))
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert any(re.match(rf"{re.escape(str(path))}:\d+:\d+: 'cwd' .*missing: No such file", l)
               for l in lines), p.stderr
    assert any(re.match(rf"{re.escape(str(path))}:\d+:\d+: no such user 'no-such-user-x'", l)
               for l in lines), p.stderr
    path.write_text(to_yaml(app_config({"command": ["/nonexistent/dotnet"]})) + "\n")
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(path)], capture_output=True, text=True,
                       timeout=T(10))
    assert p.returncode == 1
    assert re.search(r":\d+:\d+: 'command' /nonexistent/dotnet: No such file or directory",
                     p.stderr), p.stderr
    if os.geteuid() != 0:
        path.write_text(to_yaml(app_config({"command": [str(notexec)]})) + "\n")
        p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(path)], capture_output=True,
                           text=True, timeout=T(10))
        assert p.returncode == 1 and "is not an executable file" in p.stderr
    path.write_text(to_yaml(app_config({})) + "\n")
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(path)], capture_output=True, text=True,
                       timeout=T(10))
    assert p.returncode == 0, p.stderr


# ---- output ---------------------------------------------------------------------------------------

def test_output_lines_capped_and_logs_to_a_file(gatehouse, tmp_path):
    # A 3000-byte line: three log lines of at most 1024 bytes, and the app still starts.
    cmd = ["/bin/sh", "-c", "head -c 3000 /dev/zero | tr '\\0' x; echo; exec " + " ".join(PYAPP)]
    gh = gatehouse(app_config({"start": "always", "command": cmd}))
    ready_line(gh)
    gh.wait_err(r"app py\[0\]: pyapp v1 listening")
    pieces = [l.split("app py[0]: ", 1)[1] for l in gh.err_lines() if "app py[0]: xxx" in l]
    assert [len(p) for p in pieces] == [1024, 1024, 952], [len(p) for p in pieces]
    # logs: FILE gets the output itself; the error log gets none of it.
    log = tmp_path / "app.log"
    gh2 = gatehouse(app_config({"start": "always", "logs": str(log)}))
    ready_line(gh2)
    assert wait_until(lambda: log.exists() and "pyapp v1 listening" in log.read_text())
    assert not [l for l in gh2.err_lines() if "app py[0]: pyapp" in l]
    # logs: off: the output goes nowhere.
    gh3 = gatehouse(app_config({"start": "always", "logs": "off"}))
    ready_line(gh3)
    info = wait_until(lambda: fetch(gh3.port, "/pid")[0] == 200 and fetch_json(gh3.port))
    assert info["fds"]["1"] == info["fds"]["2"] == "/dev/null"
    assert not [l for l in gh3.err_lines() if "app py[0]: pyapp" in l]


@pytest.mark.skipif(os.geteuid() != 0, reason="user/group apply only when Gatehouse runs as root")
def test_user_and_group_as_root(gatehouse):
    import grp
    import pwd
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    gh = gatehouse(app_config({"start": "always", "user": "nobody", "listen": "unix"}))
    ready_line(gh)
    info = wait_until(lambda: fetch(gh.port, "/pid")[0] == 200 and fetch_json(gh.port))
    assert (info["uid"], info["gid"], info["groups"]) == (nobody.pw_uid, nobody.pw_gid, [])
    # The socket's directory is the app user's, and nobody else's.
    st = os.stat(os.path.dirname(info["env"]["GATEHOUSE_SOCKET"]))
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (nobody.pw_uid, 0o700)
    assert group


def test_a_chatty_app_does_not_hold_requests(gatehouse):
    # 5 MB of output in 100-byte lines while it serves: requests are answered all along.
    cmd = ["/bin/sh", "-c", "(head -c 5000000 /dev/zero | tr '\\0' y | fold -w 100) & exec " +
           " ".join(PYAPP)]
    gh = gatehouse(app_config({"start": "always", "command": cmd}))
    ready_line(gh, timeout=20)
    statuses = [fetch(gh.port, "/")[0] for _ in range(50)]
    assert statuses == [200] * 50
    gh.wait_err(r"app py\[0\]: y{100}$")
