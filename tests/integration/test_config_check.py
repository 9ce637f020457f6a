"""`gatehouse -t -c FILE`: OK message, or every problem as FILE:LINE:COL: message, exit 1."""

import re
import subprocess
import textwrap
import time

import pytest

from conftest import GATEHOUSE_BIN, REPO, T

FULL = """\
workers: 2
shutdown_timeout: 30s
logs: { access: stdout, format: combined, error: stderr, level: info }
limits: { max_request_line: 8192, max_header_size: 32768, max_header_count: 100, client_header_timeout: 10s, client_body_timeout: 30s, send_timeout: 60s, keepalive_timeout: 75s, max_requests_per_connection: 10000, max_connections_per_worker: 10000, max_body_size: 0 }
listen: [ { address: "127.0.0.1:0" } ]
upstreams:
  app: { servers: ["127.0.0.1:9090", "127.0.0.1:9091"], connect_timeout: 5s, read_timeout: 60s, send_timeout: 60s, keepalive: 32, keepalive_timeout: 30s, keepalive_requests: 1000 }
sites:
  - name: main
    hosts: ["example.com", "*.example.org", "*"]
    routes:
      - { path: /api, proxy: app }
      - { path: /old, redirect: { to: "https://example.com/new", status: 301, append_path: true } }
      - { path: /health, respond: { status: 200, body: "ok\\n", content_type: "text/plain" } }
"""


def check(tmp_path, text, name="gatehouse.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    t = time.monotonic()
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(path)], capture_output=True, text=True,
                       timeout=T(10), stdin=subprocess.DEVNULL)
    p.elapsed = time.monotonic() - t
    p.path = str(path)
    return p


def problems(p):
    """[(line, col, message)] from FILE:LINE:COL: message lines on stderr."""
    rx = re.compile(re.escape(p.path) + r":(\d+):(\d+): (.+)$")
    out = []
    for line in p.stderr.splitlines():
        m = rx.search(line)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    return out


def assert_problem_at(p, line, col=None, words=()):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    found = problems(p)
    here = [f for f in found if f[0] == line and (col is None or f[1] == col)]
    assert here, f"no problem reported at line {line} col {col}; stderr:\n{p.stderr}"
    for w in words:
        assert any(w.lower() in f[2].lower() for f in here), f"{w!r} not named: {here}"
    return here


def test_full_documented_shape_is_valid(tmp_path):
    p = check(tmp_path, FULL)
    assert p.returncode == 0, p.stderr
    assert f"{p.path}: configuration OK" in (p.stdout + p.stderr).splitlines()


def test_check_does_not_start_serving(tmp_path):
    p = check(tmp_path, FULL)
    assert p.returncode == 0
    assert "listening on" not in p.stderr
    assert p.elapsed < T(3)


def test_minimal_config_with_units(tmp_path):
    p = check(tmp_path, """\
        workers: auto
        shutdown_timeout: 250ms
        limits: { client_header_timeout: 2m, max_body_size: 64k, keepalive_timeout: 1h }
        listen:
          - address: "127.0.0.1:0"
        sites:
          - hosts: ["*"]
            routes:
              - path: /
                respond: { body: "hi" }
        """)
    assert p.returncode == 0, p.stderr


def test_unknown_key(tmp_path):
    p = check(tmp_path, """\
        workers: 1
        listen: [ { address: "127.0.0.1:0" } ]
        wrokers: 2
        sites: [ { hosts: ["*"], routes: [ { path: /, respond: { body: "x" } } ] } ]
        """)
    assert_problem_at(p, 3, 1, words=["wrokers"])


def test_unknown_nested_key_reports_its_position(tmp_path):
    p = check(tmp_path, """\
        listen:
          - address: "127.0.0.1:0"
        sites:
          - hosts: ["*"]
            colour: blue
            routes:
              - path: /
                respond: { body: "x" }
        """)
    assert_problem_at(p, 5, 5, words=["colour"])


@pytest.mark.parametrize("line", [
    "workers: lots",
    "shutdown_timeout: soon",
    "limits: { max_header_count: many }",
    "limits: { client_header_timeout: [1, 2] }",
    "logs: { format: xml }",
    "logs: { level: loud }",
])
def test_wrong_type_or_value(tmp_path, line):
    p = check(tmp_path, f"""\
listen: [ {{ address: "127.0.0.1:0" }} ]
{line}
sites: [ {{ hosts: ["*"], routes: [ {{ path: /, respond: {{ body: "x" }} }} ] }} ]
""")
    assert_problem_at(p, 2)


@pytest.mark.parametrize("addr", ["127.0.0.1:99999", "127.0.0.1", "not an address:80", "1.2.3.4.5:80"])
def test_bad_listen_address(tmp_path, addr):
    p = check(tmp_path, f"""\
workers: 1
listen:
  - address: "{addr}"
sites: [ {{ hosts: ["*"], routes: [ {{ path: /, respond: {{ body: "x" }} }} ] }} ]
""")
    assert_problem_at(p, 3)


def test_bad_upstream_server_address(tmp_path):
    p = check(tmp_path, """\
        listen: [ { address: "127.0.0.1:0" } ]
        upstreams:
          app:
            servers: ["127.0.0.1:80", "127.0.0.1:port"]
        sites: [ { hosts: ["*"], routes: [ { path: /, proxy: app } ] } ]
        """)
    assert_problem_at(p, 4)


def test_undefined_upstream(tmp_path):
    p = check(tmp_path, """\
        listen: [ { address: "127.0.0.1:0" } ]
        upstreams:
          app: { servers: ["127.0.0.1:9090"] }
        sites:
          - hosts: ["*"]
            routes:
              - path: /
                proxy: nope
        """)
    assert_problem_at(p, 8, words=["nope"])


def test_duplicate_site_names(tmp_path):
    p = check(tmp_path, """\
        listen: [ { address: "127.0.0.1:0" } ]
        sites:
          - name: main
            hosts: ["a.example"]
            routes: [ { path: /, respond: { body: "a" } } ]
          - name: main
            hosts: ["b.example"]
            routes: [ { path: /, respond: { body: "b" } } ]
        """)
    assert_problem_at(p, 6, words=["main"])


def test_duplicate_upstream_names(tmp_path):
    p = check(tmp_path, """\
        listen: [ { address: "127.0.0.1:0" } ]
        upstreams:
          app: { servers: ["127.0.0.1:9090"] }
          app: { servers: ["127.0.0.1:9091"] }
        sites: [ { hosts: ["*"], routes: [ { path: /, proxy: app } ] } ]
        """)
    assert_problem_at(p, 4, words=["app"])


def test_host_in_two_sites(tmp_path):
    p = check(tmp_path, """\
        listen: [ { address: "127.0.0.1:0" } ]
        sites:
          - hosts: ["a.example", "b.example"]
            routes: [ { path: /, respond: { body: "a" } } ]
          - hosts: ["c.example",
                    "B.example"]
            routes: [ { path: /, respond: { body: "b" } } ]
        """)
    assert p.returncode == 1
    assert {f[0] for f in problems(p)} & {5, 6}, p.stderr


def test_duplicate_route_paths(tmp_path):
    p = check(tmp_path, """\
        listen: [ { address: "127.0.0.1:0" } ]
        sites:
          - hosts: ["*"]
            routes:
              - { path: /app, respond: { body: "a" } }
              - { path: /app/, respond: { body: "b" } }
        """)
    assert_problem_at(p, 6)


@pytest.mark.parametrize("logs", ['{ access: stderr }', '{ error: stdout }'])
def test_log_destinations_that_are_refused(tmp_path, logs):
    p = check(tmp_path, f"""\
listen: [ {{ address: "127.0.0.1:0" }} ]
logs: {logs}
sites: [ {{ hosts: ["*"], routes: [ {{ path: /, respond: {{ body: "x" }} }} ] }} ]
""")
    assert_problem_at(p, 2)


@pytest.mark.parametrize("route", [
    '{ path: /, redirect: { to: "/x", status: 200 } }',
    '{ path: /, proxy: app, respond: { body: "x" } }',
    '{ path: "no-slash", respond: { body: "x" } }',
    '{ path: / }',
])
def test_bad_routes(tmp_path, route):
    p = check(tmp_path, f"""\
listen: [ {{ address: "127.0.0.1:0" }} ]
upstreams: {{ app: {{ servers: ["127.0.0.1:9090"] }} }}
sites:
  - hosts: ["*"]
    routes:
      - {route}
""")
    assert_problem_at(p, 6)


def test_every_problem_is_reported(tmp_path):
    p = check(tmp_path, """\
        workers: 1
        listen:
          - address: "127.0.0.1:0"
        upstreams:
          app:
            servers: ["127.0.0.1:1"]
            keepalive: many
        sites:
          - name: main
            hosts: ["*"]
            colour: blue
            routes:
              - path: /
                proxy: missing
        """)
    assert p.returncode == 1
    lines = {f[0] for f in problems(p)}
    assert {7, 11, 14} <= lines, p.stderr


def test_yaml_syntax_error(tmp_path):
    p = check(tmp_path, """\
        workers: 1
        listen: [ { address: "127.0.0.1:0" }
        sites: x
        """)
    assert p.returncode == 1
    assert problems(p), p.stderr


def test_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(path)], capture_output=True, text=True,
                       timeout=T(10))
    assert p.returncode == 1
    assert str(path) in p.stderr


@pytest.mark.parametrize("example", sorted(p.name for p in (REPO / "examples").glob("*.yaml")))
def test_shipped_examples_check_clean(example):
    """Every example in examples/ passes `gatehouse -t` as shipped."""
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(REPO / "examples" / example)],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout
