"""`gatehouse -t -c FILE`: OK message, or every problem as FILE:LINE:COL: message, exit 1."""

import os
import re
import subprocess
import textwrap
import time
import types

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


# ---- the shipped examples ---------------------------------------------------------------------
#
# Examples name their TLS files as a deployment would, under /etc/gatehouse/. To check such an
# example for real (every certificate loaded, every key matched to its certificate), the test
# makes a throwaway file for each path the example uses, by its name, in a temporary directory,
# and points the example's /etc/gatehouse/ at that directory:
#
#   *ca.pem, *ca.crt (e.g. internal-ca.pem)  a CA certificate (the one test CA)
#   NAME.crt and NAME.key                    a certificate signed by the test CA and its key:
#                                            RSA 2048 when NAME has an "rsa" part, else ECDSA P-256
#   *ticket*.key                             80 random bytes (a session ticket key)
#
# A path with no recipe (an OCSP response, say) fails the test: add one here.

EXAMPLES = REPO / "examples"
CONF_DIR = "/etc/gatehouse/"
CONF_FILE = re.compile(re.escape(CONF_DIR) + r"([A-Za-z0-9._-]+)")


def example_files(text):
    """The /etc/gatehouse/ file names an example uses, comments left out (a YAML comment
    starts with a # at the start of a line or after a space)."""
    names = set()
    for line in text.splitlines():
        names.update(CONF_FILE.findall(re.sub(r"(^|\s)#.*", "", line)))
    return sorted(names)


def openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL, timeout=T(30))


def new_key(path, rsa):
    if rsa:
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path)
    else:
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)


def is_rsa(stem):
    return "rsa" in re.split(r"[._-]", stem.lower())


def is_ca(name):
    return re.search(r"(^|[._-])ca\.(pem|crt)$", name.lower()) is not None


class ExamplePKI:
    """A test CA in `work`, and files made on demand into `out`."""

    def __init__(self, work, out):
        self.work, self.out = work, out
        self.ca_crt, self.ca_key = work / "ca.crt", work / "ca.key"
        new_key(self.ca_key, rsa=False)
        openssl("req", "-x509", "-new", "-key", self.ca_key, "-out", self.ca_crt, "-days", "2",
                "-subj", "/CN=Gatehouse example test CA")

    def leaf(self, stem):
        """stem.crt signed by the CA, and stem.key; for a host-like stem the name is in its
        subjectAltName (app.internal, api.example.com; example.com.rsa -> example.com)."""
        key, crt, csr = self.out / f"{stem}.key", self.out / f"{stem}.crt", self.work / f"{stem}.csr"
        new_key(key, is_rsa(stem))
        host = re.sub(r"\.(rsa|ecdsa|ec)$", "", stem)
        ext = self.work / f"{stem}.ext"
        ext.write_text(f"subjectAltName=DNS:{host},DNS:*.{host},DNS:localhost\n"
                       "extendedKeyUsage=serverAuth,clientAuth\n")
        openssl("req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={host}")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca_crt, "-CAkey", self.ca_key,
                "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)

    def make(self, names):
        stems = set()
        for name in names:
            if is_ca(name):
                (self.out / name).write_bytes(self.ca_crt.read_bytes())
            elif "ticket" in name and name.endswith(".key"):
                (self.out / name).write_bytes(os.urandom(80))
            elif name.endswith((".crt", ".key")):
                stems.add(name.rsplit(".", 1)[0])
            else:
                pytest.fail(f"no recipe in this test for the example's file {CONF_DIR}{name}")
        for stem in sorted(stems):
            self.leaf(stem)


def materialize(tmp_path, example):
    """The example as a file `gatehouse -t` can check: itself when it names no file under
    /etc/gatehouse/, else a copy that names generated files instead. Returns (path, files)."""
    src = EXAMPLES / example
    text = src.read_text()
    names = example_files(text)
    if not names:
        return src, {}
    work, out = tmp_path / "pki", tmp_path / "etc-gatehouse"
    work.mkdir()
    out.mkdir()
    ExamplePKI(work, out).make(names)
    path = tmp_path / example
    path.write_text(text.replace(CONF_DIR, f"{out}/"))
    return path, {n: out / n for n in names}


def check_file(path):
    return subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(path)], capture_output=True, text=True,
                          timeout=T(10), stdin=subprocess.DEVNULL)


ALL_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("example", ALL_EXAMPLES)
def test_shipped_examples_check_clean(tmp_path, example):
    """Every example in examples/ passes `gatehouse -t`: as shipped, or, when it names TLS
    files under /etc/gatehouse/, with matching throwaway files in their place."""
    path, _ = materialize(tmp_path, example)
    p = check_file(path)
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout
    assert "warning" not in p.stderr, p.stderr      # e.g. an upstream with verify: false


def test_tls_examples_are_covered():
    """The examples that issue 5 asks for exist and use their TLS files, so the check above
    really loads certificates, keys and CAs for them."""
    used = {e: example_files((EXAMPLES / e).read_text()) for e in ALL_EXAMPLES}
    assert any(n.endswith(".rsa.crt") for n in used["https.yaml"])
    assert any(n.endswith(".ecdsa.crt") for n in used["https.yaml"])
    assert any(is_ca(n) for n in used["bridging.yaml"])
    assert any(is_ca(n) for n in used["mtls.yaml"])


KEYS = [(e, n) for e in ALL_EXAMPLES for n in example_files((EXAMPLES / e).read_text())
        if n.endswith(".key") and "ticket" not in n]


@pytest.mark.parametrize("example,key", KEYS)
def test_example_with_a_wrong_key_is_refused(tmp_path, example, key):
    """The generated files are really read: a key of the right type that belongs to no
    certificate makes the same example fail, at the entry that names it."""
    path, files = materialize(tmp_path, example)
    new_key(files[key], is_rsa(key.rsplit(".", 1)[0]))
    p = check_file(path)
    assert p.returncode == 1, (p.stdout, p.stderr)
    # "does not match" (listener certificates) or OpenSSL's "key values mismatch" (upstream)
    assert "match" in p.stderr, p.stderr
    assert str(files[key]) in p.stderr, p.stderr
    stem = key.rsplit(".", 1)[0]
    naming = {i for i, line in enumerate(path.read_text().splitlines(), 1)
              if re.search(re.escape(stem) + r"\.(crt|key)\b", line.split(" #")[0])}
    found = problems(types.SimpleNamespace(path=str(path), stderr=p.stderr))
    assert found and {f[0] for f in found} <= naming, (naming, p.stderr)


@pytest.mark.parametrize("hash_key,words", [
    ("header", ["needs a header name"]),
    ('"cookie "', ["needs a cookie name"]),
    ("bogus", ["must be client_ip, path", "'bogus'"]),
    ('"header X-Tenant:"', ["'X-Tenant:' is not a header name"]),
])
def test_bad_hash_key(tmp_path, hash_key, words):
    p = check(tmp_path, f"""\
listen: [ {{ address: "127.0.0.1:0" }} ]
upstreams:
  app:
    servers: ["127.0.0.1:9090"]
    balance: hash
    hash_key: {hash_key}
sites: [ {{ hosts: ["*"], routes: [ {{ path: /, proxy: app }} ] }} ]
""")
    here = assert_problem_at(p, 6, 15, words=words)
    assert all("hash_key" in msg for _, _, msg in here), here


def test_hash_key_without_balance_hash_is_refused(tmp_path):
    p = check(tmp_path, """\
listen: [ { address: "127.0.0.1:0" } ]
upstreams:
  app:
    servers: ["127.0.0.1:9090"]
    balance: least_requests
    hash_key: path
sites: [ { hosts: ["*"], routes: [ { path: /, proxy: app } ] } ]
""")
    assert_problem_at(p, 6, 15, words=["only with 'balance: hash'", "least_requests"])


@pytest.mark.parametrize("hash_key", ["client_ip", "path", '"header X-Tenant"', "cookie sid"])
def test_good_hash_key(tmp_path, hash_key):
    p = check(tmp_path, f"""\
listen: [ {{ address: "127.0.0.1:0" }} ]
upstreams:
  app: {{ servers: ["127.0.0.1:9090"], balance: hash, hash_key: {hash_key} }}
sites: [ {{ hosts: ["*"], routes: [ {{ path: /, proxy: app }} ] }} ]
""")
    assert p.returncode == 0, p.stderr
