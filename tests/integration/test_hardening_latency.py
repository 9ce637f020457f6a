"""Hardening (issue 11, item 12): no Nagle stall when an upstream writes head and body apart.

The backend's `split_ms` sends the response head, waits, then sends the body, as Python's and
many other app servers do. Gatehouse then forwards them in two writes. Without TCP_NODELAY on
the client socket, the second write waits for the client's delayed ACK of the first: about
40 ms per request on Linux, where the same request takes a few ms with it.

The check is the median of 20 sequential requests on one keep-alive connection against 20 ms:
half the stall, and many times what a request costs without it (the 2 ms split included), also
under the sanitizers. It is a correctness check for a 40 ms stall, not a benchmark (that is
bench/latency.sh)."""

import ssl
import statistics
import subprocess
import time

import pytest

from conftest import H1, proxy_config

REQUESTS = 20
SPLIT_MS = 2
STALL_FREE_MS = 20   # the stall is ~40 ms; deliberately not stretched by T(): 3x would hide it


@pytest.fixture
def gh(backend, gatehouse):
    return gatehouse(proxy_config(backend, routes=[
        {"path": "/", "proxy": "app"},
        {"path": "/local", "respond": {"body": "local\n"}},
    ]))


@pytest.fixture
def gh_tls(backend, gatehouse, tmp_path):
    key, crt = tmp_path / "tls.key", tmp_path / "tls.crt"
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-keyout", str(key), "-out", str(crt), "-days", "2",
                    "-subj", "/CN=tls.example", "-addext", "subjectAltName=DNS:tls.example"],
                   check=True, capture_output=True)
    tls = {"certificates": [{"cert": str(crt), "key": str(key)}]}
    return gatehouse(proxy_config(backend, listen=[{"address": "127.0.0.1:0", "tls": tls}]))


def per_request_ms(port, target, tls=False):
    times = []
    with H1(port) as c:
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["http/1.1"])
            c.sock = ctx.wrap_socket(c.sock, server_hostname="tls.example")
        for i in range(REQUESTS):
            t0 = time.monotonic()
            r = c.request("GET", f"{target}&i={i}")
            times.append((time.monotonic() - t0) * 1000)
            assert r.status == 200 and r.json()["target"].endswith(f"&i={i}"), r
            assert r.json()["conn_request"] >= 1
    return times


@pytest.mark.parametrize("target", [f"/echo?split_ms={SPLIT_MS}",
                                    f"/echo?split_ms={SPLIT_MS}&set=X-Pad:{'p' * 1500}"])
def test_head_and_body_written_apart_are_not_delayed(gh, target):
    times = per_request_ms(gh.port, target)
    med = statistics.median(times)
    assert med < STALL_FREE_MS, (
        f"median {med:.1f} ms per request (all: {[round(t, 1) for t in times]}): "
        "the second write waits for a delayed ACK (TCP_NODELAY not set on the client socket?)")


def test_over_tls_too(gh_tls):
    times = per_request_ms(gh_tls.port, f"/echo?split_ms={SPLIT_MS}", tls=True)
    med = statistics.median(times)
    assert med < STALL_FREE_MS, f"median {med:.1f} ms per request over TLS: {times}"


def test_backend_split_really_splits(backend):
    """The backend does send head and body apart: the head arrives alone, the body later."""
    with H1(backend.port) as c:
        c.send(H1.build("GET", "/echo?split_ms=300"))
        c.sock.settimeout(5)
        first = c.sock.recv(65536)
        assert first.endswith(b"\r\n\r\n") and first.startswith(b"HTTP/1.1 200"), first
        c.buf += first
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/echo?split_ms=300"
