"""TLS to upstreams: nginx with generated certificates as the TLS backend. Requests go through
intact, the certificate is verified against the configured CA and the server name (or the
address), failures answer 502 with a reason in the error log, verify: false works and `-t`
warns about it, pooled TLS connections are reused, and new connections resume sessions."""
import os
import socket
import subprocess
import time

import pytest

from conftest import GATEHOUSE_BIN, T, free_port, get, proxy_config

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/sbin/nginx"), reason="needs nginx")


def openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]


def make_ca(d, name):
    crt, key = d / f"{name}.crt", d / f"{name}.key"
    openssl("req", "-x509", "-nodes", *EC, "-keyout", key, "-out", crt, "-days", "2",
            "-subj", f"/CN={name}")
    return crt, key


def make_leaf(d, name, ca, sans):
    """A certificate for `sans` signed by `ca`, or self-signed when ca is None."""
    crt, key, csr, ext = (d / f"{name}.crt", d / f"{name}.key", d / f"{name}.csr",
                          d / f"{name}.ext")
    ext.write_text(f"subjectAltName={sans}\n")
    if ca is None:
        openssl("req", "-x509", "-nodes", *EC, "-keyout", key, "-out", crt, "-days", "2",
                "-subj", f"/CN={name}", "-addext", f"subjectAltName={sans}")
        return crt, key
    openssl("req", "-new", "-nodes", *EC, "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
            "-out", crt, "-days", "2", "-extfile", ext)
    return crt, key


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 128; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp_body;
    proxy_temp_path {d}/tmp_proxy;
    fastcgi_temp_path {d}/tmp_fastcgi;
    uwsgi_temp_path {d}/tmp_uwsgi;
    scgi_temp_path {d}/tmp_scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        ssl_session_cache shared:up:1m;
        keepalive_requests 1000;
{extra}
        location / {{
            root {d}/www;
            add_header X-Reused $ssl_session_reused always;
            add_header X-Conn $connection always;
            add_header X-SNI "$ssl_server_name" always;
            add_header X-Client-Verify $ssl_client_verify always;
            add_header X-Client-DN $ssl_client_s_dn always;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, d, cert, extra=""):
        self.dir = d
        d.mkdir()
        (d / "www").mkdir()
        self.body = os.urandom(300_000)
        (d / "www" / "data.bin").write_bytes(self.body)
        self.port = free_port()
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(d=d, port=self.port, crt=cert[0], key=cert[1],
                                         extra=extra))
        self.proc = subprocess.Popen(["/usr/sbin/nginx", "-p", str(d), "-c", str(conf),
                                      "-e", str(d / "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + T(10)
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("nginx did not start: " + self.proc.stderr.read().decode())
                time.sleep(0.02)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d, "ca")
    return {"ca": ca,
            "other_ca": make_ca(d, "other-ca"),
            "leaf": make_leaf(d, "app.internal", ca, "DNS:app.internal,IP:127.0.0.1"),
            "self": make_leaf(d, "self.internal", None, "DNS:self.internal,IP:127.0.0.1"),
            "client": make_leaf(d, "gatehouse.internal", ca, "DNS:gatehouse.internal"),
            "stranger": make_leaf(d, "stranger.internal", None, "DNS:stranger.internal")}


@pytest.fixture(scope="module")
def tls_backend(pki, tmp_path_factory):
    n = Nginx(tmp_path_factory.mktemp("nginx") / "ca-signed", pki["leaf"])
    yield n
    n.stop()


@pytest.fixture(scope="module")
def self_signed_backend(pki, tmp_path_factory):
    n = Nginx(tmp_path_factory.mktemp("nginx") / "self-signed", pki["self"])
    yield n
    n.stop()


@pytest.fixture(scope="module")
def mtls_backend(pki, tmp_path_factory):
    """nginx that refuses requests from clients without a certificate signed by the CA."""
    n = Nginx(tmp_path_factory.mktemp("nginx") / "mtls", pki["leaf"],
              extra=f"        ssl_verify_client on;\n"
                    f"        ssl_client_certificate {pki['ca'][0]};")
    yield n
    n.stop()


def tls_config(backend, tls, **upstream):
    return proxy_config(backend.address, upstream=dict({"tls": tls}, **upstream))


def test_request_over_tls_verified_against_ca(gatehouse, tls_backend, pki):
    gh = gatehouse(tls_config(tls_backend, {"ca": str(pki["ca"][0])}))
    r = get(gh.port, "/data.bin")
    assert r.status == 200
    assert r.body == tls_backend.body
    # The server's address was verified as an IP address, and no SNI was sent for it.
    assert r.header("X-SNI") in (None, "")


def test_server_name_is_sent_and_verified(gatehouse, tls_backend, pki):
    gh = gatehouse(tls_config(tls_backend, {"ca": str(pki["ca"][0]),
                                            "server_name": "app.internal"}))
    r = get(gh.port, "/data.bin")
    assert r.status == 200 and r.body == tls_backend.body
    assert r.header("X-SNI") == "app.internal"


def test_wrong_ca_is_502_with_reason(gatehouse, tls_backend, pki):
    gh = gatehouse(tls_config(tls_backend, {"ca": str(pki["other_ca"][0])}))
    assert get(gh.port, "/data.bin").status == 502
    gh.wait_err(r"\[error\].*upstream app \(127\.0\.0\.1:\d+\): TLS handshake failed: "
                r"certificate verify failed: unable to get local issuer certificate -> 502")


def test_server_name_mismatch_is_502(gatehouse, tls_backend, pki):
    gh = gatehouse(tls_config(tls_backend, {"ca": str(pki["ca"][0]),
                                            "server_name": "other.internal"}))
    assert get(gh.port, "/").status == 502
    gh.wait_err(r"upstream app .*TLS handshake failed: certificate verify failed: "
                r"hostname mismatch")


def test_system_store_rejects_self_signed(gatehouse, self_signed_backend):
    gh = gatehouse(tls_config(self_signed_backend, True))
    assert get(gh.port, "/").status == 502
    gh.wait_err(r"certificate verify failed: self-signed certificate -> 502")


def test_verify_off_works_and_check_warns(gatehouse, self_signed_backend):
    gh = gatehouse(tls_config(self_signed_backend, {"verify": False}))
    r = get(gh.port, "/data.bin")
    assert r.status == 200 and r.body == self_signed_backend.body
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(gh.config_path)], capture_output=True,
                       text=True, timeout=T(10))
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout
    warnings = [l for l in p.stderr.splitlines() if "warning" in l]
    assert len(warnings) == 1, p.stderr
    assert warnings[0].startswith(f"{gh.config_path}:")
    assert warnings[0].endswith(": warning: TLS verification of upstream 'app' is off")


def test_pooled_tls_connections_are_reused(gatehouse, tls_backend, pki):
    gh = gatehouse(tls_config(tls_backend, {"ca": str(pki["ca"][0])}))
    conns = set()
    for _ in range(10):
        r = get(gh.port, "/data.bin")
        assert r.status == 200 and r.body == tls_backend.body
        conns.add(r.header("X-Conn"))
    assert len(conns) <= 2, conns


def test_new_connections_resume_the_session(gatehouse, tls_backend, pki):
    # keepalive 0: every request opens a new connection, so each one after the first handshake
    # can resume the session the server issued.
    gh = gatehouse(tls_config(tls_backend, {"ca": str(pki["ca"][0])}, keepalive=0))
    reused, conns = [], set()
    for _ in range(4):
        r = get(gh.port, "/data.bin")
        assert r.status == 200 and r.body == tls_backend.body
        reused.append(r.header("X-Reused"))
        conns.add(r.header("X-Conn"))
    assert len(conns) == 4
    assert reused[0] == "."
    assert reused[1:] == ["r", "r", "r"], reused


def test_handshake_is_bounded_by_connect_timeout(gatehouse):
    # A server that accepts the TCP connection (the kernel does) but never answers the hello.
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(8)
    try:
        cfg = proxy_config(f"127.0.0.1:{lsn.getsockname()[1]}",
                           upstream={"tls": True, "connect_timeout": "300ms"})
        gh = gatehouse(cfg)
        start = time.monotonic()
        assert get(gh.port, "/").status == 502
        assert time.monotonic() - start < T(3)
        gh.wait_err(r"upstream app .*TLS handshake timed out \(connect_timeout\) -> 502")
    finally:
        lsn.close()


def test_client_certificate_is_presented_to_a_backend_that_requires_one(gatehouse, mtls_backend,
                                                                        pki):
    ca = str(pki["ca"][0])
    gh = gatehouse(tls_config(mtls_backend, {"ca": ca, "cert": str(pki["client"][0]),
                                             "key": str(pki["client"][1])}))
    r = get(gh.port, "/data.bin")
    assert r.status == 200 and r.body == mtls_backend.body
    assert r.header("X-Client-Verify") == "SUCCESS"
    assert r.header("X-Client-DN") == "CN=gatehouse.internal"


def test_without_a_client_certificate_the_backend_refuses(gatehouse, mtls_backend, pki):
    # nginx completes the handshake and answers 400 itself ("No required SSL certificate was
    # sent"); Gatehouse passes that answer on, and nothing was served.
    gh = gatehouse(tls_config(mtls_backend, {"ca": str(pki["ca"][0])}))
    r = get(gh.port, "/data.bin")
    assert r.status == 400 and b"No required SSL certificate" in r.body, r
    # A certificate the backend does not trust is refused the same way.
    gh = gatehouse(tls_config(mtls_backend, {"ca": str(pki["ca"][0]),
                                             "cert": str(pki["stranger"][0]),
                                             "key": str(pki["stranger"][1])}))
    r = get(gh.port, "/data.bin")
    assert r.status == 400 and b"certificate error" in r.body, r
