"""TLS features with real clients: session resumption (the server's session cache, tickets
with generated keys, a `session_ticket_key` file shared by two instances, and tickets that must
not cross a `client_ca` boundary) with `openssl s_client`; ALPN and protocol versions; 421
Misdirected Request over HTTP/2 with curl; HTTP/2 over TLS with nghttp."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import T, curl, proxy_config, respond_config
from test_tls import certs, make_ca_and_client, tls_listener, two_sites  # noqa: F401

# `certs` is a fixture of test_tls: importing it makes it available here too.

HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: main.example\r\nConnection: close\r\n\r\n"
BODY = "tls clients ok\n"
HANDSHAKE_RE = re.compile(r"^(New|Reused), (TLSv1(?:\.\d)?),", re.M)


def need(tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed")


class SClient:
    """The outcome of one `openssl s_client` run."""

    def __init__(self, cmd, proc):
        self.cmd = cmd
        self.rc = proc.returncode
        self.stdout = proc.stdout.decode("latin-1")
        self.out = self.stdout + proc.stderr.decode("latin-1")
        m = HANDSHAKE_RE.search(self.stdout)
        self.kind, self.version = (m.group(1), m.group(2)) if m else (None, None)
        m = re.search(r"^ALPN protocol: (\S+)", self.stdout, re.M)
        self.alpn = m.group(1) if m else None

    def __repr__(self):
        return f"<s_client rc={self.rc} {self.kind} {self.version}: {' '.join(self.cmd)}\n{self.out[-3000:]}>"


def s_client(port, *opts, sni="main.example", request=HTTP_REQUEST, timeout=10):
    """Runs `openssl s_client` against 127.0.0.1:port. With a `request`, sends it and reads until
    the server closes (-ign_eof): the session is then complete, TLS 1.3 tickets included."""
    need("openssl")
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *map(str, opts)]
    if sni:
        cmd += ["-servername", sni]
    if request:
        cmd.append("-ign_eof")
    try:
        p = subprocess.run(cmd, input=request or b"", capture_output=True, timeout=T(timeout))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"openssl s_client timed out: {' '.join(cmd)}\n{e.stdout!r}\n{e.stderr!r}")
    return SClient(cmd, p)


def session_text(path):
    p = subprocess.run(["openssl", "sess_id", "-in", str(path), "-noout", "-text"],
                       capture_output=True, check=True, timeout=T(10))
    return p.stdout.decode("latin-1")


def has_ticket(path):
    return "TLS session ticket:" in session_text(path)


def assert_served(r, version):
    """A full exchange: handshake at `version`, and our response read back."""
    assert r.rc == 0, r
    assert r.version == version, r
    assert "HTTP/1.1 200" in r.stdout and BODY in r.stdout, r


def respond_listener_config(listen, **over):
    return respond_config([{"path": "/", "respond": {"status": 200, "body": BODY}}],
                          listen=listen, **over)


# Resumptions per check on a multi-worker instance: SO_REUSEPORT spreads connections over the
# workers by their source port, so with 4 workers and 6 tries, at least one lands on another
# worker than the session was made on (all on the same one: chance 4**-6).
WORKERS, RESUMES = 4, 6


def new_session(port, path, *opts, **kw):
    """A full handshake that stores its session (and ticket, if any) in `path`."""
    if os.path.exists(path):
        os.unlink(path)
    r = s_client(port, *opts, "-sess_out", path, **kw)
    assert r.kind == "New", r
    assert os.path.getsize(path) > 0, r
    return r


# ---- session resumption: one instance ------------------------------------------------------

def test_tls12_session_cache_resumes_without_tickets(gatehouse, certs, tmp_path):
    """The cache is the instance's, shared by its workers."""
    gh = gatehouse(respond_listener_config(tls_listener(certs), workers=WORKERS))
    sess = tmp_path / "s.pem"
    r = new_session(gh.port, sess, "-tls1_2", "-no_ticket")
    assert_served(r, "TLSv1.2")
    text = session_text(sess)
    assert "TLS session ticket:" not in text, text        # only the server's cache can resume it
    assert re.search(r"Session-ID: [0-9A-F]{64}", text), text
    for _ in range(RESUMES):
        r = s_client(gh.port, "-tls1_2", "-no_ticket", "-sess_in", sess)
        assert_served(r, "TLSv1.2")
        assert r.kind == "Reused", r
        assert "Reused, TLSv1.2" in r.stdout


def test_session_cache_is_per_instance(gatehouse, certs, tmp_path):
    """Control for the test above: a cached session of one instance is a full handshake on
    another one with the same certificates."""
    a = gatehouse(respond_listener_config(tls_listener(certs)))
    b = gatehouse(respond_listener_config(tls_listener(certs)))
    sess = tmp_path / "s.pem"
    new_session(a.port, sess, "-tls1_2", "-no_ticket")
    r = s_client(b.port, "-tls1_2", "-no_ticket", "-sess_in", sess)
    assert_served(r, "TLSv1.2")
    assert r.kind == "New", r


@pytest.mark.parametrize("version", ["tls1_2", "tls1_3"])
def test_session_tickets_resume_with_generated_keys(gatehouse, certs, tmp_path, version):
    gh = gatehouse(respond_listener_config(tls_listener(certs), workers=WORKERS))
    want = {"tls1_2": "TLSv1.2", "tls1_3": "TLSv1.3"}[version]
    sess = tmp_path / "s.pem"
    r = new_session(gh.port, sess, f"-{version}")
    assert_served(r, want)
    assert has_ticket(sess), session_text(sess)
    for _ in range(RESUMES):
        r = s_client(gh.port, f"-{version}", "-sess_in", sess)
        assert_served(r, want)
        assert r.kind == "Reused", r


# ---- session resumption: a shared session_ticket_key ---------------------------------------

@pytest.mark.parametrize("version,key_len", [("tls1_2", 80), ("tls1_3", 80), ("tls1_3", 48)])
def test_shared_ticket_key_resumes_on_another_instance(gatehouse, certs, tmp_path, version,
                                                       key_len):
    shared, other = tmp_path / "shared.key", tmp_path / "other.key"
    shared.write_bytes(os.urandom(key_len))
    other.write_bytes(os.urandom(key_len))
    for f in (shared, other):
        f.chmod(0o600)
    want = {"tls1_2": "TLSv1.2", "tls1_3": "TLSv1.3"}[version]
    a = gatehouse(respond_listener_config(tls_listener(certs, session_ticket_key=str(shared))))
    b = gatehouse(respond_listener_config(tls_listener(certs, session_ticket_key=str(shared))))
    c = gatehouse(respond_listener_config(tls_listener(certs, session_ticket_key=str(other))))
    sess = tmp_path / "a.pem"
    assert_served(new_session(a.port, sess, f"-{version}"), want)
    assert has_ticket(sess), session_text(sess)
    # B never saw this client: only the ticket, opened with the shared key, can resume it.
    r = s_client(b.port, f"-{version}", "-sess_in", sess)
    assert_served(r, want)
    assert r.kind == "Reused", r
    # Control: an instance with another key cannot open the ticket and makes a full handshake.
    r = s_client(c.port, f"-{version}", "-sess_in", sess)
    assert_served(r, want)
    assert r.kind == "New", r
    # and A itself still resumes it
    r = s_client(a.port, f"-{version}", "-sess_in", sess)
    assert r.kind == "Reused", r


@pytest.mark.parametrize("version", ["tls1_2", "tls1_3"])
def test_tickets_do_not_cross_a_client_ca_boundary(gatehouse, certs, tmp_path, version):
    """Same ticket key everywhere; a ticket made where no client certificate was asked for must
    not resume where one is required (that would skip client authentication), nor the reverse.
    Two listeners with the same client_ca do resume each other's tickets."""
    ca, crt, key = make_ca_and_client(certs["dir"])
    tk = tmp_path / "ticket.key"
    tk.write_bytes(os.urandom(80))
    want = {"tls1_2": "TLSv1.2", "tls1_3": "TLSv1.3"}[version]
    plain = gatehouse(respond_listener_config(tls_listener(certs, session_ticket_key=str(tk))))
    mtls = [gatehouse(respond_listener_config(tls_listener(certs, session_ticket_key=str(tk),
                                                           client_ca=str(ca))))
            for _ in range(2)]
    client_cert = ["-cert", str(crt), "-key", str(key)]

    from_plain = tmp_path / "plain.pem"
    assert_served(new_session(plain.port, from_plain, f"-{version}"), want)
    assert has_ticket(from_plain)
    r = s_client(mtls[0].port, f"-{version}", *client_cert, "-sess_in", from_plain)
    assert_served(r, want)
    assert r.kind == "New", r
    # without a certificate the ticket does not get the client in either
    r = s_client(mtls[0].port, f"-{version}", "-sess_in", from_plain)
    assert "HTTP/1.1 200" not in r.stdout, r

    from_mtls = tmp_path / "mtls.pem"
    assert_served(new_session(mtls[0].port, from_mtls, f"-{version}", *client_cert), want)
    assert has_ticket(from_mtls)
    r = s_client(mtls[1].port, f"-{version}", *client_cert, "-sess_in", from_mtls)
    assert_served(r, want)
    assert r.kind == "Reused", r
    r = s_client(plain.port, f"-{version}", "-sess_in", from_mtls)
    assert_served(r, want)
    assert r.kind == "New", r


# ---- ALPN and protocol versions ------------------------------------------------------------

@pytest.mark.parametrize("http2,want", [(True, "h2"), (None, "h2"), (False, "http/1.1")])
def test_alpn_prefers_h2_only_when_http2_is_on(gatehouse, certs, http2, want):
    extra = {} if http2 is None else {"http2": http2}
    gh = gatehouse(respond_listener_config(tls_listener(certs, **extra)))
    r = s_client(gh.port, "-alpn", "h2,http/1.1", request=None)
    assert r.rc == 0 and r.kind == "New", r
    assert r.alpn == want, r
    # the client's order does not matter: the server's preference wins
    r = s_client(gh.port, "-alpn", "http/1.1,h2", request=None)
    assert r.alpn == want, r
    # and http/1.1 is negotiated and served when that is all the client offers
    r = s_client(gh.port, "-alpn", "http/1.1")
    assert r.alpn == "http/1.1", r
    assert "HTTP/1.1 200" in r.stdout and BODY in r.stdout, r


def test_alpn_without_a_common_protocol_fails_the_handshake(gatehouse, certs):
    gh = gatehouse(respond_listener_config(tls_listener(certs, http2=False)))
    r = s_client(gh.port, "-alpn", "h2", request=None)
    assert r.rc != 0, r
    assert "no application protocol" in r.out, r
    r = s_client(gh.port, "-alpn", "spdy/3", request=None)
    assert r.rc != 0 and "no application protocol" in r.out, r


def test_tls13_served_and_min_version_13_refuses_tls12(gatehouse, certs):
    gh = gatehouse(respond_listener_config(tls_listener(certs)))
    assert_served(s_client(gh.port, "-tls1_3"), "TLSv1.3")
    assert_served(s_client(gh.port, "-tls1_2"), "TLSv1.2")
    strict = gatehouse(respond_listener_config(tls_listener(certs, min_version="1.3")))
    assert_served(s_client(strict.port, "-tls1_3"), "TLSv1.3")
    r = s_client(strict.port, "-tls1_2", request=None)
    assert r.rc != 0 and r.kind is None, r
    assert "protocol version" in r.out, r


# ---- 421 over HTTP/2 -----------------------------------------------------------------------

def h2_curl(port, sni_host, host_header=None, path="/echo"):
    """curl over h2 to sni_host (resolved to 127.0.0.1); returns (http_version, status, body)."""
    args = ["--http2", "-k", "--resolve", f"{sni_host}:{port}:127.0.0.1",
            "-w", "\n%{http_version} %{http_code}"]
    if host_header:
        args += ["-H", f"Host: {host_header}"]
    p = curl(*args, f"https://{sni_host}:{port}{path}", timeout=10)
    assert p.returncode == 0, p.stderr
    body, _, tail = p.stdout.decode().rpartition("\n")
    version, code = tail.split()
    return version, int(code), body


def test_421_over_http2_when_host_belongs_to_another_site_than_sni(gatehouse, backend, certs):
    cfg = proxy_config(backend, listen=tls_listener(certs, http2=True))
    cfg["sites"] = two_sites(backend)
    gh = gatehouse(cfg)
    before = len(backend.requests)
    # SNI other.example (its certificate), :authority main.example (curl sends Host as it)
    version, status, _ = h2_curl(gh.port, "other.example", "main.example")
    assert (version, status) == ("2", 421)
    assert len(backend.requests) == before, "a misdirected request reached the upstream"
    # same site over h2: served, and the upstream sees the :authority as Host
    version, status, body = h2_curl(gh.port, "main.example", "main.example")
    assert (version, status) == ("2", 200)
    headers = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert headers["host"] == "main.example"
    assert headers["x-forwarded-proto"] == "https"
    # a name under main's wildcard is the same site as main.example
    version, status, _ = h2_curl(gh.port, "a.wild.example", "main.example")
    assert (version, status) == ("2", 200)
    version, status, body = h2_curl(gh.port, "other.example", path="/")
    assert (version, status, body) == ("2", 200, "other\n")
    # and the reverse mismatch
    version, status, _ = h2_curl(gh.port, "main.example", "other.example", path="/")
    assert (version, status) == ("2", 421)


# ---- nghttp over TLS -----------------------------------------------------------------------

def nghttp(port, authority, path, timeout=10):
    need("nghttp")
    cmd = ["nghttp", "-v", "-H", f":authority: {authority}", f"https://127.0.0.1:{port}{path}"]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=T(timeout))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"nghttp timed out: {e.stdout!r} {e.stderr!r}")
    return p.returncode, p.stdout.decode("latin-1") + p.stderr.decode("latin-1")


def test_nghttp_h2_over_tls(gatehouse, backend, certs):
    cfg = proxy_config(backend, listen=tls_listener(certs, http2=True))
    cfg["sites"] = two_sites(backend)
    gh = gatehouse(cfg)
    before = len(backend.requests)
    rc, out = nghttp(gh.port, "main.example", "/echo?via=nghttp")
    assert rc == 0, out
    assert "The negotiated protocol: h2" in out, out
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out
    assert re.search(r"recv \(stream_id=\d+\) strict-transport-security: max-age=31536000", out), out
    assert '"/echo?via=nghttp"' in out, out
    assert len(backend.requests) == before + 1
    assert backend.requests[-1][1:] == ["GET", "/echo?via=nghttp"]
    # the other site, on the same kind of connection (no SNI: an IP address)
    rc, out = nghttp(gh.port, "other.example", "/")
    assert rc == 0, out
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", out), out
    assert "other\n" in out, out


@pytest.mark.parametrize("version", ["tls1_2", "tls1_3"])
def test_ticket_for_another_server_name_gets_a_full_handshake(gatehouse, backend, certs, tmp_path,
                                                              version):
    """A session made for main.example offered with SNI other.example: in TLS 1.3, OpenSSL would
    resume it and report the new name, so other.example's site would be served on a connection
    that only ever showed main.example's certificate. The server makes a full handshake instead
    (other.example's certificate), and the site follows the name that certificate is for.
    TLS 1.2 binds the name to the session: it resumes, and the session's name decides."""
    cfg = proxy_config(backend, listen=tls_listener(certs))
    cfg["sites"] = two_sites(backend)
    gh = gatehouse(cfg)
    sess = tmp_path / "main.pem"
    new_session(gh.port, sess, f"-{version}", sni="main.example")
    same = s_client(gh.port, f"-{version}", "-sess_in", sess, sni="main.example")
    assert same.kind == "Reused", same
    other = s_client(gh.port, f"-{version}", "-sess_in", sess, sni="other.example",
                     request=b"GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n")
    if version == "tls1_3":
        assert other.kind == "New", other
        assert "CN = other.example" in other.stdout, other
        assert "HTTP/1.1 200" in other.stdout and "other\n" in other.stdout, other
    else:
        # TLS 1.2 resumes the session with its own name, main.example: other.example's site
        # is not served on it (421), as in TLS 1.3 before the fix.
        assert other.kind == "Reused", other
        assert "HTTP/1.1 421" in other.stdout, other
