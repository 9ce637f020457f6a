"""Command line: -c, -t, --version, -h, unknown options."""

import subprocess

from conftest import GATEHOUSE_BIN, VERSION, T, get, respond_config


def run(*args, timeout=10):
    return subprocess.run([GATEHOUSE_BIN, *map(str, args)], capture_output=True, text=True,
                          timeout=T(timeout), stdin=subprocess.DEVNULL)


def test_version():
    p = run("--version")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"gatehouse {VERSION}"


def test_help_prints_usage_and_exits_0():
    p = run("-h")
    assert p.returncode == 0, p.stderr
    out = p.stdout.lower()
    assert "usage" in out and "-c" in out and "-t" in out


def test_unknown_option_prints_usage_to_stderr_and_exits_2():
    p = run("--no-such-option")
    assert p.returncode == 2
    assert "usage" in p.stderr.lower()
    assert p.stdout == ""


def test_missing_config_file_fails(tmp_path):
    missing = tmp_path / "nope.yaml"
    p = run("-c", missing)
    assert p.returncode == 1
    assert str(missing) in p.stderr


def test_runs_in_the_foreground_and_serves(gatehouse):
    gh = gatehouse(respond_config([{"path": "/", "respond": {"body": "hi\n"}}]))
    r = get(gh.port, "/")
    assert (r.status, r.body) == (200, b"hi\n")
    assert gh.running(), "the process we started must be the server (no daemonizing)"
