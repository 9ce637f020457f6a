"""Fairness of large file bodies (issue 13): a client that takes a big file as fast as the
server can send it (curl on loopback) must not keep the worker inside one write loop. Each
connection sends at most one budget of body bytes (1 MiB: OUTQ_FILE_BUDGET, FILES_COPY_BUDGET,
H2_WRITE_BUDGET) per loop turn, then goes on after the next epoll_wait, when the other
connections had their turn.

The proof is structural, not a timing: strace records the worker's epoll_wait calls and the
bytes each output call (sendfile, write, sendmsg, ...) took; between two epoll_waits the worker
never sends more than one budget (plus framing slack), while a second connection on the same
worker (workers: 1) is answered during the download. Before the budget one flush looped
sendfile (or SSL_write, or nghttp2's frames) while the client kept up: tens of MiB between two
epoll_waits. Covered: plain HTTP/1.1 (sendfile), HTTP/1.1 over TLS (the files handler's copy
path) and HTTP/2 (h2c and h2 over TLS)."""
import re
import subprocess
import threading

import pytest

from conftest import H1, T, wait_until

from test_files_sendfile import files_config, site, traced  # noqa: F401 (fixture)

MiB = 1 << 20
BUDGET = 1 * MiB
SLACK = 128 * 1024  # one HTTP/2 write buffer (64 KiB), TLS records' framing, small responses
BIG = 1 << 30       # sparse: the page cache serves zeros, the disk is not touched
MIN_SMALL = 20      # answers the other connection gets while the download runs

OUT_CALLS = ("sendfile", "write", "writev", "sendmsg", "sendto")


def per_turn_output(trace):
    """Per thread: the bytes output calls took between two epoll_waits; returns the list of
    sums over all threads (one per interval)."""
    sums, cur = [], {}
    for line in trace:
        m = re.match(r"(\d+)\s+(.*)$", line)
        if not m:
            continue
        tid, rest = m.group(1), m.group(2)
        if "epoll_wait" in rest:
            if cur.get(tid):
                sums.append(cur[tid])
            cur[tid] = 0
            continue
        c = re.match(r"(?:<\.\.\. )?(\w+)(?:\(| resumed>).*\)\s+=\s+(\d+)", rest)
        if c and c.group(1) in OUT_CALLS:
            cur[tid] = cur.get(tid, 0) + int(c.group(2))
    sums.extend(v for v in cur.values() if v)
    return sums


def small_requests_during(port, done):
    """Sequential keep-alive GETs of a small file on one connection (plain HTTP/1.1, the same
    worker) until `done` is set; returns how many were answered, each checked."""
    n = 0
    c = H1(port)
    try:
        while not done.is_set():
            r = c.request("GET", "/small.txt", host="test")
            assert r.status == 200 and r.body == b"small file\n"
            n += 1
    finally:
        c.close()
    return n


def run_case(gh, tmp_path, curl_args, url):
    trace_path = tmp_path / "strace.txt"
    with traced(gh.pid, trace_path, calls="epoll_wait," + ",".join(OUT_CALLS)):
        dl = subprocess.Popen(["curl", "-s", "-k", "-o", "/dev/null", "-w",
                               "%{http_code} %{size_download}", *curl_args, url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        done = threading.Event()
        threading.Thread(target=lambda: (dl.wait(), done.set()), daemon=True).start()
        # The download is under way (its first bytes went out) before the small requests.
        assert wait_until(lambda: trace_path.exists() and trace_path.stat().st_size > 0,
                          timeout=T(10))
        small = small_requests_during(gh.port, done)
        try:
            out, err = dl.communicate(timeout=T(300))
        except subprocess.TimeoutExpired:
            dl.kill()
            dl.communicate()
            pytest.fail("the download did not finish")
    assert out.decode() == f"200 {BIG}", (out, err)
    assert small >= MIN_SMALL, f"only {small} small responses during the download"
    sums = per_turn_output(trace_path.read_text().splitlines())
    assert sum(sums) >= BIG, "strace saw less than the file: the trace is incomplete"
    worst = max(sums)
    assert worst <= BUDGET + SLACK, (
        f"{worst} bytes sent between two epoll_waits (budget {BUDGET}); "
        f"the 5 largest: {sorted(sums)[-5:]}")


@pytest.fixture
def big_site(site):  # noqa: F811
    with open(site["www"] / "big.bin", "wb") as f:
        f.truncate(BIG)
    return site


@pytest.mark.parametrize("tls,curl_args", [
    (False, ["--http1.1"]),                # sendfile (outq_flush)
    (True, ["--http1.1"]),                 # the files handler's copy path (pread + SSL_write)
    (False, ["--http2-prior-knowledge"]),  # h2c: nghttp2's frames
    (True, ["--http2"]),                   # h2 over TLS
], ids=["plain-h1-sendfile", "tls-h1-copy", "h2c", "h2-tls"])
def test_one_budget_per_turn_while_another_connection_is_served(gatehouse, big_site, tmp_path,
                                                                 tls, curl_args):
    gh = gatehouse(files_config(big_site, tls=tls))
    url = f"https://127.0.0.1:{gh.ports[1]}/big.bin" if tls else gh.url("/big.bin")
    run_case(gh, tmp_path, curl_args, url)
