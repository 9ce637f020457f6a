"""Static files through the codecs' send_file (issue 13): sendfile(2) on plain HTTP/1.1 (the
file's bytes never pass through user space: strace sees no read of the file), files above
4 GiB (whole and by ranges), a client that stops reading (bounded memory, others served), a
file truncated while it is being sent (the response is cut short, the connection or stream
ends, a line says why, the server goes on), and the same bytes over TLS and HTTP/2 (pread
into the HTTP/2 write buffer; over TLS a copy, or SSL_sendfile in a build with -DGH_KTLS on a
kernel with kTLS)."""
import contextlib
import glob
import hashlib
import os
import random
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import H1, SANITIZER, RssSampler, T, base_config, curl, wait_until

import h2.errors  # noqa: E402
import h2.events  # noqa: E402

from test_h2_server import H2Client, make_cert  # noqa: E402
from test_websocket import read_head  # noqa: E402

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
RAND_SIZE = 5 * MiB + 123
RSS_LIMIT_KIB = 32 * 1024  # the bound for a client that stops reading


def rand_bytes(n, seed=13):
    return random.Random(seed).randbytes(n)


@pytest.fixture
def site(tmp_path):
    """A files root with a random 5 MiB file and a small one; certificates for TLS."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "rand.bin").write_bytes(rand_bytes(RAND_SIZE))
    (www / "small.txt").write_bytes(b"small file\n")
    crt, key = make_cert(tmp_path, "main", ["main.example"])
    return {"www": www, "crt": crt, "key": key}


def files_config(site, tls=True, **over):
    """Listeners: [0] plain HTTP/1.1 + h2c, [1] TLS (h2 and http/1.1 by ALPN)."""
    listen = [{"address": "127.0.0.1:0", "h2c": True}]
    if tls:
        listen.append({"address": "127.0.0.1:0",
                       "tls": {"certificates": [{"cert": str(site["crt"]),
                                                 "key": str(site["key"])}]}})
    cfg = base_config(listen=listen, **over)
    cfg["sites"] = [{"name": "main", "hosts": ["*"],
                     "routes": [{"path": "/", "files": {"root": str(site["www"])}}]}]
    return cfg


def sha(b):
    return hashlib.sha256(b).hexdigest()


def head_of(sock):
    """Reads a response head from a raw socket: (status, headers dict lowercased, rest)."""
    head, rest = read_head(sock)
    lines = head.split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), hdrs, rest


def raw_get(port, path, rcvbuf=None, extra=b""):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(T(10))
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: test\r\n" + extra + b"\r\n")
    return s


def read_to_end(sock, limit=None):
    """Bytes until EOF (or a reset); returns their count."""
    n = 0
    buf = bytearray(1 << 20)
    while True:
        try:
            k = sock.recv_into(buf)
        except ConnectionResetError:
            break
        if not k:
            break
        n += k
        if limit is not None and n >= limit:
            break
    return n


# ---- strace ------------------------------------------------------------------------------------

@contextlib.contextmanager
def traced(pid, out, calls="sendfile,read,pread64,readv,preadv,preadv2,open,openat,openat2"):
    """strace -f on the running server, attached (every thread traced) before the body runs."""
    if not shutil.which("strace"):
        pytest.skip("strace not installed (scripts/setup.sh installs it)")
    p = subprocess.Popen(["strace", "-f", "-e", f"trace={calls}", "-o", str(out), "-p",
                          str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def attached():
        for f in glob.glob(f"/proc/{pid}/task/*/status"):
            with open(f) as fh:
                if "TracerPid:\t0\n" in fh.read():
                    return False
        return True

    try:
        if not wait_until(attached, timeout=10):
            err = p.stderr.read1(4096) if p.poll() is not None else b""
            pytest.skip(f"strace could not attach: {err!r}")
        yield
    finally:
        p.terminate()
        p.wait(timeout=10)
        p.stderr.close()


def file_fds(trace, name):
    """Descriptors the server opened `name` on: directly, or O_PATH then reopened through its
    /proc/self/fd link."""
    fds, links = set(), set()
    for line in trace:
        m = re.search(r"open(?:at2?)?\(.*\"([^\"]*)\".*\)\s+=\s+(\d+)", line)
        if not m:
            continue
        path, fd = m.group(1), int(m.group(2))
        if path == name or path.endswith("/" + name):
            (links if "O_PATH" in line else fds).add(fd)
        lm = re.fullmatch(r"/proc/self/fd/(\d+)", path)
        if lm and int(lm.group(1)) in links:
            fds.add(fd)
    return fds


def sendfile_bytes(trace, fds):
    """Bytes the server's sendfile calls took from descriptors `fds`."""
    total = 0
    for line in trace:
        m = re.search(r"sendfile\((\d+), (\d+), .*\)\s+=\s+(\d+)", line)
        if m and int(m.group(2)) in fds:
            total += int(m.group(3))
    return total


def reads_of(trace, fds):
    out = []
    for line in trace:
        m = re.search(r"\b(read|pread64|readv|preadv2?)\((\d+),", line)
        if m and int(m.group(2)) in fds:
            out.append(line)
    return out


# ---- (a) plain HTTP/1.1: sendfile, and never a read of the file ---------------------------------

def test_plain_http11_body_goes_out_with_sendfile_never_read(gatehouse, site, tmp_path):
    gh = gatehouse(files_config(site, tls=False))
    trace_path = tmp_path / "strace.txt"
    with traced(gh.pid, trace_path):
        p = curl("--http1.1", "-o", tmp_path / "got.bin", "-w", "%{http_code} %{size_download}",
                 gh.url("/rand.bin"))
        assert p.returncode == 0, p.stderr
        assert p.stdout.decode() == f"200 {RAND_SIZE}"
        # A second download on a keep-alive connection, from the open-file cache.
        with H1(gh.port) as c:
            r = c.request("GET", "/rand.bin")
            assert r.status == 200 and len(r.body) == RAND_SIZE
            r = c.request("GET", "/rand.bin", headers=[("Range", "bytes=1000-1999999")])
            assert r.status == 206 and r.body == rand_bytes(RAND_SIZE)[1000:2000000]
    assert sha((tmp_path / "got.bin").read_bytes()) == sha(rand_bytes(RAND_SIZE))
    trace = trace_path.read_text().splitlines()
    fds = file_fds(trace, "rand.bin")
    assert fds, "the server never opened rand.bin under strace:\n" + "\n".join(trace[:40])
    assert sendfile_bytes(trace, fds) == 2 * RAND_SIZE + 1999000, \
        "\n".join(l for l in trace if "sendfile" in l)
    assert reads_of(trace, fds) == []
    assert not [l for l in trace if "pread64(" in l], "the body was copied through user space"


# ---- (b) above 4 GiB ---------------------------------------------------------------------------

BIG_SIZE = 4 * GiB + 64 * KiB + 17
MARKERS = {0: b"<<BEGIN>>", 2 * GiB - 3: b"@2GiB-boundary@", 4 * GiB - 5: b"#4GiB-boundary#",
           4 * GiB + 4093: b"past-4GiB", BIG_SIZE - 9: b"<<THE-END"}


@pytest.fixture
def big_file(site):
    """A sparse file just above 4 GiB with markers at offsets that overflow 31 and 32 bits."""
    path = site["www"] / "big.bin"
    with open(path, "wb") as f:
        f.truncate(BIG_SIZE)
        for off, m in MARKERS.items():
            f.seek(off)
            f.write(m)
    return path


def check_markers(chunk, start, found):
    """Markers lying wholly inside chunk [start, start+len) are compared and noted."""
    end = start + len(chunk)
    for off, m in MARKERS.items():
        if start <= off and off + len(m) <= end:
            assert bytes(chunk[off - start:off - start + len(m)]) == m, f"marker at {off}"
            found.add(off)


def test_file_above_4gib_by_ranges_h1_and_h2(gatehouse, site, big_file):
    gh = gatehouse(files_config(site, tls=False))
    with H1(gh.port) as c:
        r = c.request("HEAD", "/big.bin")
        assert r.status == 200 and r.header("Content-Length") == str(BIG_SIZE)
        for off, m in MARKERS.items():
            rng = f"bytes={off}-{off + len(m) - 1}"
            r = c.request("GET", "/big.bin", headers=[("Range", rng)])
            assert r.status == 206, (rng, r)
            assert r.header("Content-Range") == f"bytes {off}-{off + len(m) - 1}/{BIG_SIZE}"
            assert r.body == m
        # A range that crosses 4 GiB, with zeros around the marker.
        r = c.request("GET", "/big.bin", headers=[("Range", f"bytes={4 * GiB - 100}-{4 * GiB + 99}")])
        want = bytearray(200)
        want[95:95 + 15] = MARKERS[4 * GiB - 5]
        assert r.status == 206 and r.body == bytes(want)
        r = c.request("GET", "/big.bin", headers=[("Range", "bytes=-9")])
        assert r.status == 206 and r.body == b"<<THE-END"
    h = H2Client(gh.port)
    try:
        sid = h.request("/big.bin", headers=[("range", f"bytes={4 * GiB - 5}-{4 * GiB + 9}")])
        status, hdrs, body = h.response(sid)
        assert status == 206 and body == MARKERS[4 * GiB - 5]
        assert hdrs["content-range"] == f"bytes {4 * GiB - 5}-{4 * GiB + 9}/{BIG_SIZE}"
    finally:
        h.close()


@pytest.mark.slow
def test_file_above_4gib_downloads_whole_over_plain_h1(gatehouse, site, big_file):
    gh = gatehouse(files_config(site, tls=False))
    s = raw_get(gh.port, "/big.bin")
    s.settimeout(T(60))
    status, hdrs, rest = head_of(s)
    assert status == 200 and int(hdrs["content-length"]) == BIG_SIZE
    found = set()
    pos = 0
    carry = bytearray(rest)  # bytes kept so that a marker cut between two reads is still seen
    buf = bytearray(4 * MiB)
    while pos + len(carry) < BIG_SIZE:
        k = s.recv_into(buf)
        assert k, f"closed after {pos + len(carry)} of {BIG_SIZE} bytes"
        carry += buf[:k]
        check_markers(carry, pos, found)
        keep = min(len(carry), 64)
        pos += len(carry) - keep
        del carry[:len(carry) - keep]
    check_markers(carry, pos, found)
    assert pos + len(carry) == BIG_SIZE
    assert found == set(MARKERS)
    # Complete and exact: the connection is still good for another request.
    s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: test\r\n\r\n")
    status, hdrs, rest = head_of(s)
    while len(rest) < 11:
        rest += s.recv(100)
    assert status == 200 and rest == b"small file\n"
    s.close()
    line = [l for l in gh.access_lines() if "/big.bin" in l][-1]
    assert f" 200 {BIG_SIZE} " in line, line


# ---- (c) a client that stops reading -------------------------------------------------------------

def test_clients_that_stop_reading_hold_no_memory_and_others_are_served(gatehouse, site):
    with open(site["www"] / "huge.bin", "wb") as f:
        f.truncate(2 * GiB)
    gh = gatehouse(files_config(site))
    plain_port, tls_port = gh.ports
    stalled = []
    try:
        # HTTP/1.1 plain (sendfile), HTTP/1.1 over TLS (copy or kTLS), HTTP/2 (no window update).
        s = raw_get(plain_port, "/huge.bin", rcvbuf=4096)
        assert head_of(s)[0] == 200
        stalled.append(s)
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", tls_port))
        t = ctx.wrap_socket(raw, server_hostname="main.example")
        t.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: test\r\n\r\n")
        assert t.recv(100).startswith(b"HTTP/1.1 200")
        stalled.append(t)
        h = H2Client(plain_port, auto_ack=False)
        sid = h.request("/huge.bin")
        assert h.pump(lambda evs: any(isinstance(e, h2.events.DataReceived) for e in evs))
        stalled.append(h)
        with RssSampler(gh.pid) as rss:
            deadline = time.monotonic() + 2
            served = 0
            while time.monotonic() < deadline:
                with H1(plain_port) as c:
                    r = c.request("GET", "/small.txt")
                    assert r.status == 200 and r.body == b"small file\n"
                p = curl("-sk", "--http2", f"https://127.0.0.1:{tls_port}/rand.bin", "-o", "-")
                assert p.returncode == 0 and sha(p.stdout) == sha(rand_bytes(RAND_SIZE))
                served += 1
        assert served >= 2
        print(f"peak RSS with three stalled downloads: {rss.max_kib} KiB")
        assert SANITIZER or rss.max_kib < RSS_LIMIT_KIB, f"peak RSS {rss.max_kib} KiB"
        assert not h.of(h2.events.StreamEnded, sid) and not h.of(h2.events.StreamReset, sid)
    finally:
        for c in stalled:
            c.close()


# ---- (d) truncated while being sent ------------------------------------------------------------------

def test_file_truncated_while_sent_over_plain_h1_closes_and_says_why(gatehouse, site):
    path = site["www"] / "shrinks.bin"
    with open(path, "wb") as f:
        f.truncate(256 * MiB)
    gh = gatehouse(files_config(site, tls=False))
    err, out = gh.err_mark(), gh.out_mark()
    s = raw_get(gh.port, "/shrinks.bin", rcvbuf=64 * KiB)
    status, hdrs, rest = head_of(s)
    assert status == 200 and int(hdrs["content-length"]) == 256 * MiB
    assert s.recv(4096)  # the first body bytes arrived
    os.truncate(path, 1 * MiB)
    got = len(rest) + 4096 + read_to_end(s)
    s.close()
    assert got < 256 * MiB  # closed before the promised length
    line = gh.wait_err(r"truncated while being sent", since=err)
    assert re.search(r"GET /shrinks.bin: file ended \d+ bytes early", line), line
    access = [l for l in gh.wait_access(1, since=out) if "/shrinks.bin" in l]
    assert access and " 200 " in access[0]
    sent = int(access[0].split('" 200 ')[1].split()[0])
    assert sent < 256 * MiB
    # The worker goes on serving, the file too at its new size.
    with H1(gh.port) as c:
        r = c.request("GET", "/small.txt")
        assert r.status == 200 and r.body == b"small file\n"
        r = c.request("GET", "/shrinks.bin")
        assert r.status == 200 and len(r.body) == 1 * MiB


def test_file_truncated_while_sent_over_h2_resets_the_stream(gatehouse, site):
    path = site["www"] / "shrinks.bin"
    with open(path, "wb") as f:
        f.truncate(256 * MiB)
    gh = gatehouse(files_config(site, tls=False))
    err = gh.err_mark()
    h = H2Client(gh.port)
    try:
        sid = h.request("/shrinks.bin")
        assert h.pump(lambda evs: any(isinstance(e, h2.events.DataReceived) for e in evs))
        os.truncate(path, 1 * MiB)
        assert h.pump(lambda evs: any(isinstance(e, (h2.events.StreamReset, h2.events.StreamEnded))
                                      and e.stream_id == sid for e in evs), timeout=20)
        resets = h.of(h2.events.StreamReset, sid)
        assert resets and resets[0].error_code == h2.errors.ErrorCodes.INTERNAL_ERROR
        assert not h.of(h2.events.StreamEnded, sid)
        got = sum(len(e.data) for e in h.of(h2.events.DataReceived, sid))
        assert got < 256 * MiB
        # The connection lives on: the next stream on it is served.
        sid2 = h.request("/small.txt")
        status, _, body = h.response(sid2)
        assert status == 200 and body == b"small file\n"
    finally:
        h.close()
    line = gh.wait_err(r"truncated while being sent", since=err)
    assert re.search(r"HTTP/2 stream \d+: GET /shrinks.bin: file ended \d+ bytes early", line), line


# ---- (e) TLS and HTTP/2: the same bytes --------------------------------------------------------------

def test_same_bytes_over_h2c_tls_h1_and_tls_h2(gatehouse, site):
    gh = gatehouse(files_config(site))
    plain_port, tls_port = gh.ports
    want = rand_bytes(RAND_SIZE)
    h = H2Client(plain_port)
    try:
        sid = h.request("/rand.bin")
        status, hdrs, body = h.response(sid, timeout=20)
        assert status == 200 and hdrs["content-length"] == str(RAND_SIZE)
        assert sha(body) == sha(want)
        sid = h.request("/rand.bin", headers=[("range", "bytes=77-3000076")])
        status, hdrs, body = h.response(sid, timeout=20)
        assert status == 206 and body == want[77:3000077]
        # Several ranges: part heads (copied) and file bytes share DATA frames.
        rng = [(0, 1), (5, 6), (100, 4000099), (RAND_SIZE - 3, RAND_SIZE - 1)]
        sid = h.request("/rand.bin", headers=[("range", "bytes=" + ",".join(
            f"{a}-{b}" for a, b in rng))])
        status, hdrs, body = h.response(sid, timeout=20)
        assert status == 206, hdrs
        assert multipart_parts(hdrs["content-type"], body) == [
            (f"bytes {a}-{b}/{RAND_SIZE}", want[a:b + 1]) for a, b in rng]
        sid = h.request("/rand.bin", method="HEAD")
        status, hdrs, body = h.response(sid)
        assert status == 200 and hdrs["content-length"] == str(RAND_SIZE) and body == b""
    finally:
        h.close()
    for proto in ("--http1.1", "--http2"):
        p = curl("-k", proto, "-w", "%{http_version}", "-o", "-",
                 f"https://127.0.0.1:{tls_port}/rand.bin")
        assert p.returncode == 0, p.stderr
        assert sha(p.stdout[:RAND_SIZE]) == sha(want)
        assert p.stdout[RAND_SIZE:].decode() == ("1.1" if proto == "--http1.1" else "2")
    p = curl("-k", "--http1.1", "-r", "5000000-", f"https://127.0.0.1:{tls_port}/rand.bin")
    assert p.returncode == 0 and p.stdout == want[5000000:]


def multipart_parts(ctype, body):
    """[(Content-Range, bytes)] of a multipart/byteranges body."""
    assert ctype.startswith("multipart/byteranges; boundary="), ctype
    delim = b"--" + ctype.split("boundary=", 1)[1].encode()
    parts = []
    for chunk in body.split(b"\r\n" + delim)[:-1]:
        if chunk.startswith(delim):  # the first part has no CRLF before its delimiter
            chunk = chunk[len(delim):]
        head, data = chunk.split(b"\r\n\r\n", 1)
        fields = dict(l.split(": ", 1) for l in head.decode().split("\r\n") if l)
        parts.append((fields["Content-Range"], data))
    assert body.endswith(delim + b"--\r\n") or body.endswith(delim + b"--"), body[-80:]
    return parts


def kernel_has_ktls():
    s = socket.socket()
    try:
        s.setsockopt(socket.IPPROTO_TCP, 31, b"tls")  # TCP_ULP on an unconnected socket
        return True
    except OSError as e:
        return e.errno == 107  # ENOTCONN: the kernel has the tls module
    finally:
        s.close()


def test_tls_with_ktls_sends_the_file_with_sendfile(gatehouse, site, tmp_path):
    """Only for a build with -DGH_KTLS (kTLS is off by default: docs/internals.md, kTLS)."""
    if not os.environ.get("GH_KTLS"):
        pytest.skip("kTLS is off unless built with -DGH_KTLS (set GH_KTLS=1 to test such a build)")
    if not kernel_has_ktls():
        pytest.skip("the kernel has no kTLS (CONFIG_TLS): TLS bodies are copied (docs/internals.md)")
    gh = gatehouse(files_config(site))
    trace_path = tmp_path / "strace.txt"
    with traced(gh.pid, trace_path):
        p = curl("-k", "--http1.1", "-o", "-", f"https://127.0.0.1:{gh.ports[1]}/rand.bin")
    assert p.returncode == 0 and sha(p.stdout) == sha(rand_bytes(RAND_SIZE))
    trace = trace_path.read_text().splitlines()
    fds = file_fds(trace, "rand.bin")
    assert sendfile_bytes(trace, fds) == RAND_SIZE
    assert reads_of(trace, fds) == []
