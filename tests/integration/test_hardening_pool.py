"""Response poisoning through the upstream keep-alive pool (issue 11, item 1).

An upstream that sends bytes after a complete response (a body on a HEAD, 204 or 304 answer,
more than its Content-Length, anything after the last chunk) must never have those bytes read
as the next client's response. Here the extra bytes are a whole forged response carrying
`Set-Cookie: session=forged`: with a pool of one connection, the next client would get it if
the connection were reused. Each test checks that client B gets its own answer and that the
upstream's misbehaviour is logged once."""
import json
import shutil
import signal
import time
from pathlib import Path

import pytest

from conftest import H1, T, curl, proxy_config, wait_until

LOG_RE = r"sent bytes after a complete response; closing the connection \(logged once\)"

# (kind, method A uses, status A gets)
CASES = [
    ("head-body", "HEAD", 200),
    ("204-body", "GET", 204),
    ("304-body", "GET", 304),
    ("cl-extra", "GET", 200),
    ("chunk-extra", "GET", 200),
]


def pool_of_one(backend, **over):
    return proxy_config(backend, upstream={"keepalive": 1}, **over)


def assert_own_answer(r, tag):
    """Client B's response is the upstream's answer to B, not the forged one."""
    assert r.status == 200, r
    assert not r.headers_named("set-cookie"), f"forged Set-Cookie reached another client: {r}"
    assert b"FORGED" not in r.body
    assert r.json()["target"] == f"/echo?b={tag}"


def poison_then_ask(gh, kind, method, status, late_ms, tag):
    with H1(gh.port, timeout=T(5)) as a:
        ra = a.request(method, f"/extra?kind={kind}&late_ms={late_ms}")
        assert ra.status == status, ra
        assert not ra.headers_named("set-cookie")
    if late_ms:
        time.sleep(late_ms / 1000 + 0.2)  # let the late bytes reach the idle pooled connection
    with H1(gh.port, timeout=T(5)) as b:
        assert_own_answer(b.request("GET", f"/echo?b={tag}"), tag)


def stray_lines(gh):
    return [l for l in gh.err_lines() if "after a complete response" in l]


@pytest.mark.parametrize("kind,method,status", CASES)
@pytest.mark.parametrize("late_ms", [0, 30])
def test_bytes_after_response_never_reach_next_client(backend, gatehouse, kind, method, status,
                                                      late_ms):
    """The extra bytes come with the response (they are in Gatehouse's buffer when the response
    ends) or 30 ms later, while the connection is idle in the pool."""
    gh = gatehouse(pool_of_one(backend))
    for i in range(3):
        poison_then_ask(gh, kind, method, status, late_ms, f"{i}")
    if method == "HEAD" and late_ms:
        return  # a HEAD's connection is never pooled: the late bytes meet a closed socket
    # Logged once per server, not once per event.
    gh.wait_err(LOG_RE, timeout=T(3))
    assert len(stray_lines(gh)) == 1, "\n".join(gh.err_lines())
    assert backend.address in stray_lines(gh)[0]


def test_head_body_written_late_never_reaches_next_client(backend, gatehouse):
    """An app that writes a body on a HEAD response 30 ms late, when the next client's request
    already went out: the connection of a HEAD is not reused, so the late bytes have no
    request to answer."""
    gh = gatehouse(pool_of_one(backend))
    for i in range(5):
        with H1(gh.port, timeout=T(5)) as a:
            assert a.request("HEAD", "/extra?kind=head-body&late_ms=30").status == 200
        with H1(gh.port, timeout=T(5)) as b:
            assert_own_answer(b.request("GET", f"/echo?b={i}"), f"{i}")


def stopped(pid):
    """Every thread of the process is stopped (kill() returns before the signal is acted on)."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        except OSError:
            pass
    return states and all(s in ("T", "t") for s in states)


def test_readable_connection_is_not_taken_from_the_pool(backend, gatehouse):
    """The forged bytes reach the idle pooled connection while client B's request is already
    waiting, so both are ready in the same event-loop turn and B's comes first (Gatehouse is
    stopped with SIGSTOP meanwhile, so the order is the order of arrival). The idle event would
    come too late: taking the connection must see that it is readable and leave it."""
    gh = gatehouse(pool_of_one(backend))
    with H1(gh.port, timeout=T(10)) as b:
        assert b.request("GET", "/echo?b=warm").status == 200
        with H1(gh.port, timeout=T(10)) as a:
            ra = a.request("GET", "/extra?kind=cl-extra&late_ms=500")
            assert ra.status == 200 and ra.body == b"hello\n", ra
        gh.send_signal(signal.SIGSTOP)
        try:
            assert wait_until(lambda: stopped(gh.pid)), "SIGSTOP did not stop Gatehouse"
            b.send(H1.build("GET", "/echo?b=1"))
            time.sleep(1.0)  # the backend's late bytes arrive after B's request
        finally:
            gh.send_signal(signal.SIGCONT)
        assert_own_answer(b.read_response(), "1")
    gh.wait_err(LOG_RE, timeout=T(3))


def test_well_behaved_upstream_connection_is_still_reused(backend, gatehouse):
    """The checks cost a clean upstream nothing: after 204, 304 and chunked answers the pooled
    connection is reused, and no warning is logged."""
    gh = gatehouse(pool_of_one(backend))
    with H1(gh.port) as c:
        ids = set()
        for target, method in [("/echo", "GET"), ("/status/204", "GET"), ("/status/304", "GET"),
                               ("/bytes?n=100&chunked=1", "GET")]:
            r = c.request(method, target)
            assert r.status in (200, 204, 304), r
        for _ in range(3):
            ids.add(c.request("GET", "/echo").json()["conn_id"])
    assert len(ids) == 1
    assert backend.connections == 1
    assert not any("after a complete response" in l for l in gh.err_lines())


@pytest.mark.parametrize("kind,method,status", [CASES[0], CASES[3], CASES[4]])
def test_bytes_after_response_h2_client(backend, gatehouse, kind, method, status):
    """The same over HTTP/2: the next client (h2c, curl) gets its own answer."""
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    gh = gatehouse(pool_of_one(backend, listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    for i in range(3):
        head = ["-I"] if method == "HEAD" else []
        out = curl("-sS", "--http2-prior-knowledge", *head, "-o", "/dev/null", "-w",
                   "%{http_code}", gh.url(f"/extra?kind={kind}&late_ms=0"))
        assert out.stdout.strip() == str(status).encode(), out
        out = curl("-sS", "--http2-prior-knowledge", "-D", "-", gh.url(f"/echo?b={i}"))
        head, _, body = out.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/2 200"), out
        assert b"set-cookie" not in head.lower() and b"FORGED" not in body, out.stdout
        assert json.loads(body)["target"] == f"/echo?b={i}"
    gh.wait_err(LOG_RE, timeout=T(3))
