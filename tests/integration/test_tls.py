"""TLS termination: certificates chosen by SNI, ALPN, protocol floor, handshake timeout,
plaintext on the TLS port, and a proxied request over HTTPS."""
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import GATEHOUSE_BIN, T, base_config, curl, proxy_config, wait_until


def make_cert(d, name, sans, key_type="ec"):
    """A self-signed certificate for `sans` in directory d; returns (cert, key) paths."""
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    keyopt = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key_type == "ec" \
        else ["-newkey", "rsa:2048"]
    san = ",".join(f"DNS:{s}" for s in sans)
    subprocess.run(["openssl", "req", "-x509", "-nodes", *keyopt, "-keyout", str(key),
                    "-out", str(crt), "-days", "2", "-subj", f"/CN={sans[0]}",
                    "-addext", f"subjectAltName={san}"], check=True, capture_output=True)
    return crt, key


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "certs"
    d.mkdir()
    return {"main": make_cert(d, "main", ["main.example", "*.wild.example"]),
            "other": make_cert(d, "other", ["other.example"], key_type="rsa"),
            "dir": d}


def tls_listener(certs, **extra):
    tls = {"certificates": [{"cert": str(certs["main"][0]), "key": str(certs["main"][1])},
                            {"cert": str(certs["other"][0]), "key": str(certs["other"][1])}]}
    tls.update(extra)
    return [{"address": "127.0.0.1:0", "tls": tls}]


def served_cert_cn(port, sni, alpn=("http/1.1",)):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(alpn))
    with socket.create_connection(("127.0.0.1", port), timeout=T(5)) as s:
        with ctx.wrap_socket(s, server_hostname=sni) as t:
            der = t.getpeercert(binary_form=True)
            text = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"],
                                  input=der, capture_output=True, check=True).stdout.decode()
            return text, t.selected_alpn_protocol(), t.version()


def test_https_proxied_request_with_forwarded_proto(gatehouse, backend, certs):
    cfg = proxy_config(backend, listen=tls_listener(certs))
    gh = gatehouse(cfg)
    p = curl("-sS", "--cacert", str(certs["main"][0]), "--resolve",
             f"main.example:{gh.port}:127.0.0.1", f"https://main.example:{gh.port}/echo")
    assert p.returncode == 0, p.stderr
    import json
    e = json.loads(p.stdout)
    headers = {k.lower(): v for k, v in e["headers"]}
    assert headers["x-forwarded-proto"] == "https"
    assert "proto=https" in headers["forwarded"]


def test_sni_selects_certificate_and_wildcards_cover_one_label(gatehouse, backend, certs):
    gh = gatehouse(proxy_config(backend, listen=tls_listener(certs)))
    assert "main.example" in served_cert_cn(gh.port, "main.example")[0]
    assert "other.example" in served_cert_cn(gh.port, "other.example")[0]
    assert "main.example" in served_cert_cn(gh.port, "a.wild.example")[0]   # wildcard
    # Unknown names, and two labels under a wildcard, get the default (first) certificate.
    assert "main.example" in served_cert_cn(gh.port, "unknown.example")[0]
    assert "main.example" in served_cert_cn(gh.port, "a.b.wild.example")[0]


def test_alpn_http11_and_tls12_floor(gatehouse, backend, certs):
    gh = gatehouse(proxy_config(backend, listen=tls_listener(certs)))
    _, alpn, version = served_cert_cn(gh.port, "main.example")
    assert alpn == "http/1.1" and version in ("TLSv1.2", "TLSv1.3")
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{gh.port}", "-tls1_1",
                        "-servername", "main.example"], input=b"", capture_output=True,
                       timeout=T(10))
    assert p.returncode != 0   # TLS 1.1 is refused


def test_plaintext_on_tls_port_gets_400(gatehouse, backend, certs):
    gh = gatehouse(proxy_config(backend, listen=tls_listener(certs)))
    with socket.create_connection(("127.0.0.1", gh.port), timeout=T(5)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: main.example\r\n\r\n")
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
    assert data.startswith(b"HTTP/1.1 400"), data
    assert b"HTTPS port" in data
    assert gh.wait_err("TLS handshake failed", timeout=5)


def test_handshake_timeout_closes_silent_clients(gatehouse, backend, certs):
    gh = gatehouse(proxy_config(backend, listen=tls_listener(certs,
                                                             handshake_timeout="500ms")))
    with socket.create_connection(("127.0.0.1", gh.port), timeout=T(5)) as s:
        mark = gh.err_mark()
        t = time.monotonic()
        assert s.recv(1) == b""          # closed without a byte
        assert time.monotonic() - t < T(3)
    gh.wait_err(r"\[info\] client 127\.0\.0\.1: TLS handshake timed out "
                r"\(handshake_timeout 500 ms\)$", since=mark)
    # and the listener still serves everyone else
    assert "main.example" in served_cert_cn(gh.port, "main.example")[0]


def test_key_not_matching_certificate_is_a_config_error(tmp_path, certs):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "listen:\n"
        "  - address: \"127.0.0.1:0\"\n"
        "    tls:\n"
        "      certificates:\n"
        f"        - {{ cert: {certs['main'][0]}, key: {certs['other'][1]} }}\n"
        "sites:\n"
        "  - hosts: [\"*\"]\n"
        "    routes: [ { path: /, respond: { status: 200 } } ]\n")
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 1
    assert f"{cfg}:5:" in p.stderr and "match" in p.stderr, p.stderr


def two_sites(backend):
    return [{"name": "main", "hosts": ["main.example", "*.wild.example"],
             "hsts": "max-age=31536000; includeSubDomains",
             "routes": [{"path": "/", "proxy": "app"}]},
            {"name": "other", "hosts": ["other.example"],
             "routes": [{"path": "/", "respond": {"status": 200, "body": "other\n"}}]}]


def https_get(port, sni, host, path="/echo", cafile=None):
    """One request over TLS with a given SNI and Host; returns (status, headers dict, body)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=T(5)) as s:
        with ctx.wrap_socket(s, server_hostname=sni) as t:
            t.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                d = t.recv(65536)
                if not d:
                    break
                data += d
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_hsts_on_https_only_and_421_on_sni_host_mismatch(gatehouse, backend, certs):
    cfg = proxy_config(backend, listen=tls_listener(certs) + [{"address": "127.0.0.1:0"}])
    cfg["sites"] = two_sites(backend)
    gh = gatehouse(cfg)
    https_port, http_port = gh.ports
    status, headers, _ = https_get(https_port, "main.example", "main.example")
    assert status == 200
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    # Same site over plain HTTP: no HSTS (RFC 6797 8.1)
    status, headers, _ = https_get_plain(http_port, "main.example")
    assert status == 200 and "strict-transport-security" not in headers
    # Certificate chosen for other.example, request for main.example: 421
    status, _, _ = https_get(https_port, "other.example", "main.example")
    assert status == 421
    status, _, body = https_get(https_port, "other.example", "other.example", path="/")
    assert status == 200 and body == b"other\n"


def https_get_plain(port, host, path="/echo"):
    with socket.create_connection(("127.0.0.1", port), timeout=T(5)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_redirect_to_https_keeps_path_and_query_and_names_the_tls_port(gatehouse, backend, certs):
    cfg = proxy_config(backend, listen=tls_listener(certs) +
                       [{"address": "127.0.0.1:0", "redirect_to_https": True}])
    cfg["sites"] = two_sites(backend)
    gh = gatehouse(cfg)
    https_port, http_port = gh.ports
    status, headers, _ = https_get_plain(http_port, "main.example:8080", "/a/b?x=1&y=%2F")
    assert status == 308
    assert headers["location"] == f"https://main.example:{https_port}/a/b?x=1&y=%2F"
    assert "strict-transport-security" not in headers
    # and the HTTPS side serves it
    status, _, _ = https_get(https_port, "main.example", "main.example", path="/echo")
    assert status == 200


def make_ca_and_client(d):
    """A CA and a client certificate it signed; returns (ca_crt, client_crt, client_key)."""
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True)
    run("openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:P-256", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
        "-days", "2", "-subj", "/CN=Test Clients CA")
    run("openssl", "req", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-keyout", str(d / "alice.key"), "-out", str(d / "alice.csr"),
        "-subj", "/O=Example Corp/CN=alice")
    run("openssl", "x509", "-req", "-in", str(d / "alice.csr"), "-CA", str(d / "ca.crt"),
        "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "alice.crt"), "-days", "2")
    return d / "ca.crt", d / "alice.crt", d / "alice.key"


def test_client_certificates_required_and_subject_forwarded(gatehouse, backend, certs):
    ca, crt, key = make_ca_and_client(certs["dir"])
    gh = gatehouse(proxy_config(backend, listen=tls_listener(certs, client_ca=str(ca))))
    url = f"https://main.example:{gh.port}/echo"
    base = ["-sS", "--cacert", str(certs["main"][0]), "--resolve",
            f"main.example:{gh.port}:127.0.0.1"]
    before = len(backend.requests)
    p = curl(*base, url)
    assert p.returncode != 0          # refused at the handshake: no certificate
    assert len(backend.requests) == before, "a request without a certificate reached upstream"
    p = curl(*base, "--cert", str(crt), "--key", str(key), "-H", "X-Client-Subject: CN=mallory",
             url)
    assert p.returncode == 0, p.stderr
    import json
    got = [v for k, v in json.loads(p.stdout)["headers"] if k.lower() == "x-client-subject"]
    assert got == ["CN=alice,O=Example Corp"]


# ---- handshake failures in the log: brief, and silent for clients that merely leave ----------

def tls_info_lines(gh, since):
    return [l for l in gh.err_lines(since) if "[info]" in l and "TLS" in l]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls11_client_is_refused_with_one_line_saying_why(gatehouse, backend, certs):
    gh = gatehouse(proxy_config(backend, listen=tls_listener(certs)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")   # Debian's default level forbids TLS 1.1 itself
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    mark = gh.err_mark()
    with socket.create_connection(("127.0.0.1", gh.port), timeout=T(5)) as s:
        with pytest.raises(ssl.SSLError) as e:
            ctx.wrap_socket(s, server_hostname="main.example")
    assert "PROTOCOL_VERSION" in str(e.value).upper(), e.value   # the alert the client got
    gh.wait_err(r"\[info\] client 127\.0\.0\.1: TLS handshake failed: client offers TLS 1\.1 "
                r"at most, min_version is TLS 1\.2$", since=mark)
    assert "main.example" in served_cert_cn(gh.port, "main.example")[0]
    assert len(tls_info_lines(gh, mark)) == 1, gh.err_lines(mark)


def test_no_shared_cipher_is_one_line(gatehouse, backend, certs):
    gh = gatehouse(proxy_config(backend, listen=tls_listener(certs)))
    mark = gh.err_mark()
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{gh.port}", "-tls1_2",
                        "-cipher", "AES128-SHA", "-servername", "main.example"], input=b"",
                       capture_output=True, timeout=T(10))
    assert p.returncode != 0
    gh.wait_err(r"\[info\] client 127\.0\.0\.1: TLS handshake failed: no shared cipher$",
                since=mark)
    assert "main.example" in served_cert_cn(gh.port, "main.example")[0]
    assert len(tls_info_lines(gh, mark)) == 1, gh.err_lines(mark)


def leave_with_reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def test_clients_that_leave_during_the_handshake_are_not_logged_at_info(gatehouse, backend,
                                                                         certs):
    cfg = proxy_config(backend, listen=tls_listener(certs))
    cfg["logs"]["level"] = "debug"
    gh = gatehouse(cfg)
    mark = gh.err_mark()
    # A TCP health check or a port scan: connect, close; or connect, reset.
    socket.create_connection(("127.0.0.1", gh.port), timeout=T(5)).close()
    leave_with_reset(socket.create_connection(("127.0.0.1", gh.port), timeout=T(5)))
    # A client that sends half a ClientHello and leaves.
    with socket.create_connection(("127.0.0.1", gh.port), timeout=T(5)) as s:
        s.sendall(bytes.fromhex("160301020001"))
        time.sleep(0.1)
    # A client that sends its whole ClientHello, and resets once the server has answered.
    s = socket.create_connection(("127.0.0.1", gh.port), timeout=T(5))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="main.example")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    s.sendall(outgoing.read())
    time.sleep(0.1)
    leave_with_reset(s)
    wait_until(lambda: len([l for l in gh.err_lines(mark)
                            if "[debug]" in l and "TLS handshake: closed by the client" in l])
               >= 4, timeout=5)
    # A full handshake afterwards: every line about the others would have come before.
    assert "main.example" in served_cert_cn(gh.port, "main.example")[0]
    debug = [l for l in gh.err_lines(mark) if "[debug]" in l and "TLS handshake" in l]
    assert len(debug) == 4 and all(l.endswith("client 127.0.0.1: TLS handshake: closed by the "
                                              "client") for l in debug), gh.err_lines(mark)
    assert tls_info_lines(gh, mark) == [], gh.err_lines(mark)
