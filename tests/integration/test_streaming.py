"""Bodies stream through in constant memory, with back-pressure both ways."""

import subprocess
import time

import pytest

from backend import MAX_SLICE, PatternChecker, pattern
from conftest import (BIG, MiB, RSS_LIMIT_KIB, SANITIZER, H1, RssSampler, T, get,
                      proxy_config, rss_kib)


@pytest.fixture
def gh(backend, gatehouse):
    gh = gatehouse(proxy_config(backend, upstream={"read_timeout": "60s", "send_timeout": "60s"}))
    gh.backend = backend
    return gh


def curl_download(url, max_time=120):
    """Downloads with curl, checking the pattern on the fly. Returns (exit code, bytes, ok)."""
    p = subprocess.Popen(["curl", "-sS", "--max-time", str(T(max_time)), url],
                         stdout=subprocess.PIPE)
    chk, buf = PatternChecker(), bytearray(MAX_SLICE)
    view = memoryview(buf)
    while True:
        n = p.stdout.readinto(buf)
        if not n:
            break
        chk.feed(view[:n])
    return p.wait(timeout=10), chk.offset, chk.ok


def upload(port, target, n, chunked):
    with H1(port, timeout=60) as c:
        framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(n))
        c.send(H1.build("POST", target, [framing]))
        sent = 0
        while sent < n:
            k = min(MAX_SLICE, n - sent)
            if chunked:
                c.sock.sendall(b"%x\r\n" % k)
            c.sock.sendall(pattern(sent, k))
            if chunked:
                c.sock.sendall(b"\r\n")
            sent += k
        if chunked:
            c.sock.sendall(b"0\r\n\r\n")
        return c.read_response()


def assert_small(rss, gh):
    if SANITIZER:
        return              # shadow memory makes RSS meaningless; correctness is still checked
    after = rss_kib(gh.pid)
    assert rss.max_kib < RSS_LIMIT_KIB, f"peak RSS {rss.max_kib} KiB"
    assert after < RSS_LIMIT_KIB, f"RSS after the transfer {after} KiB"


@pytest.mark.parametrize("chunked", [0, 1], ids=["length", "chunked"])
def test_download_10mib(gh, chunked):
    rc, n, ok = curl_download(gh.url(f"/bytes?n={10 * MiB}&chunked={chunked}&chunk=100000"))
    assert (rc, n, ok) == (0, 10 * MiB, True)


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_upload_10mib(gh, chunked):
    r = upload(gh.port, "/sink?hash=0", 10 * MiB, chunked)
    assert r.status == 200
    assert (r.json()["bytes"], r.json()["pattern_ok"]) == (10 * MiB, True)


@pytest.mark.slow
@pytest.mark.parametrize("chunked", [0, 1], ids=["length", "chunked"])
def test_download_1gib_constant_memory(gh, chunked):
    with RssSampler(gh.pid) as rss:
        rc, n, ok = curl_download(gh.url(f"/bytes?n={BIG}&chunked={chunked}"))
    assert (rc, n, ok) == (0, BIG, True)
    assert rss.samples > 3
    assert_small(rss, gh)


@pytest.mark.slow
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_upload_1gib_constant_memory(gh, chunked):
    with RssSampler(gh.pid) as rss:
        r = upload(gh.port, "/sink?hash=0", BIG, chunked)
    assert r.status == 200
    assert (r.json()["bytes"], r.json()["pattern_ok"]) == (BIG, True)
    assert_small(rss, gh)


def plateau(read, timeout=10, interval=0.5):
    """Polls read() until it stops growing (less than 1 MiB in `interval`); returns the value,
    or None if it kept growing until timeout."""
    deadline = time.monotonic() + T(timeout)
    last = read()
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = read()
        if now - last < MiB:
            return now
        last = now
    return None


def test_slow_reader_does_not_make_the_proxy_buffer(gh):
    with RssSampler(gh.pid) as rss, H1(gh.port, timeout=30) as c:
        c.send(H1.build("GET", f"/bytes?n={BIG}"))
        _, status, _, _ = c.read_head()
        assert status == 200
        # We stop reading: the backend must be stopped too, after the socket buffers fill.
        sent = plateau(lambda: gh.backend.bytes_sent)
        assert sent is not None, "the backend never stopped sending to a client that reads nothing"
        assert sent < 64 * MiB, f"{sent} bytes pushed for a client that read nothing"
        # A stuck client must not stall the (single) worker.
        assert get(gh.port, "/echo").status == 200
        # Reading again resumes the stream, intact.
        chk = PatternChecker()
        chk.feed(c.buf)
        c.buf.clear()
        while chk.offset < sent + 8 * MiB:
            data = c.sock.recv(MAX_SLICE)
            assert data, "stream ended early"
            chk.feed(data)
        assert chk.ok
    assert_small(rss, gh)


def test_slow_upstream_reader_does_not_make_the_proxy_buffer(gh):
    """Upload to a backend that waits 2 s before reading: the proxy must not soak it all up."""
    n = BIG // 4
    with RssSampler(gh.pid) as rss:
        r = upload(gh.port, "/sink?hash=0&wait=2000", n, chunked=False)
    assert r.status == 200 and (r.json()["bytes"], r.json()["pattern_ok"]) == (n, True)
    assert_small(rss, gh)
