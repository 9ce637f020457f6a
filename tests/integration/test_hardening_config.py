"""Configuration amplification (issue 11, item 10): the YAML a config may hold is bounded in
bytes after alias expansion, in aliases, and in file size; only regular files are read; and a
reload with such a file keeps the running configuration.

Before the fix, aliases were bounded by node count only: one 1 MiB scalar named a few hundred
times through nested aliases cost hundreds of MiB in the schema walk's copies, and `-t` on a
FIFO blocked until a writer came."""

import json
import os
import re
import signal
import subprocess
import sys

from conftest import GATEHOUSE_BIN, RSS_LIMIT_KIB, SANITIZER, T, get, respond_config, to_yaml

MiB = 1 << 20


def laughs(scalar=512 * 1024, routes=8, sites=64):
    """A billion-laughs config the schema walk copies: sites x routes x one big body.
    8 x 64 x 512 KiB = 256 MiB of respond bodies, from a file of about 0.5 MiB."""
    body = "x" * scalar
    route_list = ", ".join(f"{{path: /r{i}, respond: {{body: *big}}}}" for i in range(routes))
    lines = [
        "workers: 1",
        'listen: [{address: "127.0.0.1:0"}]',
        "sites:",
        f'  - {{hosts: ["h0.test"], routes: &routes [{{path: /, respond: {{body: &big "{body}"}}}}, {route_list}]}}',
    ]
    lines += [f'  - {{hosts: ["h{i}.test"], routes: *routes}}' for i in range(1, sites)]
    return "\n".join(lines) + "\n"


# Runs the binary from a fresh, small Python and reports RUSAGE_CHILDREN there. Measured from
# this pytest process instead, the figure would be useless: a child forked from a process
# inherits its peak RSS (Linux carries the old mm's high-water mark over fork and exec), and
# pytest's peak after the 1 GiB streaming tests is hundreds of MiB.
MEASURE = r"""
import json, resource, subprocess, sys
try:
    p = subprocess.run(sys.argv[2:], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=float(sys.argv[1]))
    rc, err = p.returncode, p.stderr.decode("utf-8", "replace")
except subprocess.TimeoutExpired:
    rc, err = None, ""
print(json.dumps({"rc": rc, "err": err,
                  "maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def run_measured(args, timeout):
    """Runs the binary; returns (returncode, stderr, max RSS of the binary in KiB). A run past
    `timeout` is killed and fails the test."""
    p = subprocess.run([sys.executable, "-c", MEASURE, str(timeout), GATEHOUSE_BIN, *args],
                       capture_output=True, text=True, timeout=timeout + T(10))
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["rc"] is not None, f"still running after {timeout}s: the check hung"
    return r["rc"], r["err"], r["maxrss"]


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_check_refuses_alias_bomb_in_small_memory(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(laughs())
    assert path.stat().st_size < MiB
    rc, err, maxrss = run_measured(["-t", "-c", str(path)], T(20))
    # the bomb asks for 256 MiB of copies; refused while parsing, the process never grows
    assert maxrss < RSS_LIMIT_KIB, f"max RSS {maxrss} KiB"
    assert rc == 1, err
    # the third site that names the routes passes 16 MiB (4.5 MiB each)
    assert re.search(re.escape(str(path)) + r":7:\d+: values expand to more than 16 MiB with aliases$",
                     err, re.M), err


def test_check_refuses_too_many_aliases(tmp_path):
    path = tmp_path / "aliases.yaml"
    hosts = ", ".join(["*h"] * 1001)
    path.write_text(to_yaml(respond_config([{"path": "/", "respond": {}}])) +
                    f"\n  - hosts: [&h a.test]\n    routes: [{{path: /, respond: {{}}}}]\n"
                    f"    aliases: [{hosts}]\n")
    rc, err, _ = run_measured(["-t", "-c", str(path)], T(20))
    assert rc == 1, err
    # the 1001st alias, where it is written
    col = len("    aliases: [") + 1 + 1000 * len("*h, ")
    line = path.read_text().count("\n")
    assert f"{path}:{line}:{col}: more than 1000 aliases\n" in err, err


def test_check_refuses_fifo_without_hanging(tmp_path):
    fifo = tmp_path / "gatehouse.yaml"
    os.mkfifo(fifo)
    # nobody ever writes: before the fix, open() blocked until the watchdog killed it
    rc, err, _ = run_measured(["-t", "-c", str(fifo)], T(5))
    assert rc == 1
    assert err == f"{fifo}: not a regular file\n"


def test_check_refuses_file_over_16_mib(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as f:
        f.write(b"# big\n")
        f.truncate(16 * MiB + 1)
    rc, err, _ = run_measured(["-t", "-c", str(path)], T(20))
    assert rc == 1
    assert err == f"{path}: larger than 16 MiB\n"


def test_reload_with_alias_bomb_keeps_serving(gatehouse):
    cfg = respond_config([{"path": "/", "respond": {"body": "before\n"}}])
    gh = gatehouse(cfg)
    assert get(gh.port, "/").body == b"before\n"
    before = max(vm_kib(gh.pid, "VmHWM"), vm_kib(gh.pid, "VmRSS"))
    gh.write_config(laughs())
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"\[error\] reload failed", since=mark)
    gh.wait_err(re.escape(str(gh.config_path)) + r":7:\d+: values expand to more than 16 MiB",
                since=mark)
    assert gh.running()
    assert get(gh.port, "/").body == b"before\n"
    # the peak RSS of the process: the failed reload did not expand the bomb
    peak = vm_kib(gh.pid, "VmHWM")
    assert peak - before < 32 * 1024, f"peak RSS grew from {before} to {peak} KiB"
    assert SANITIZER or peak < RSS_LIMIT_KIB, f"peak RSS {peak} KiB"
