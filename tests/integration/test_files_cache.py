"""The files handler's lifetime rules, against the real binary: the per-worker open-file cache
(hot files cost no open per request, shown with strace; changed files are seen again after
`valid`; an entry evicted while a response sends from it stays open), the body's copy path
(a client that goes away, a file truncated while it is sent), a file the process may not read
(403, as an unprivileged user), and `gatehouse -t` on bad files settings (FILE:LINE:COL)."""
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from conftest import GATEHOUSE_BIN, T, Gatehouse, H1, get, wait_until
from test_files_handler import NUMBERS, files_config, make_tree

MiB = 1 << 20


def strace_opens(pid, action, seconds=None):
    """Runs action() while strace follows every thread of pid; returns the open calls seen."""
    if not shutil.which("strace"):
        pytest.skip("strace not installed")
    log = tempfile.NamedTemporaryFile(prefix="strace", suffix=".log", delete=False)
    log.close()
    tr = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-p",
                           str(pid), "-o", log.name], stderr=subprocess.PIPE)
    try:
        # attached once a syscall of the traced process shows; poke it with a request
        time.sleep(0.3 * T(1))
        action()
    finally:
        tr.terminate()
        tr.wait(timeout=T(10))
    text = Path(log.name).read_text()
    os.unlink(log.name)
    return [line for line in text.splitlines() if "open" in line]


def hot_requests(port, n):
    with H1(port) as c:
        for _ in range(n):
            assert c.request("GET", "/numbers.txt").body == NUMBERS
            r = c.request("GET", "/app.js", headers=[("Accept-Encoding", "br")])
            assert r.status == 200 and r.header("content-encoding") == "br"
            assert c.request("GET", "/sub/").body == b"sub index\n"


def test_hot_small_files_cost_no_open_per_request(tmp_path, gatehouse):
    root = make_tree(tmp_path / "www")
    gh = gatehouse(files_config(root, {"precompressed": ["br", "zstd", "gzip"]},
                                files_cache={"entries": 64, "valid": "1h"}))
    hot_requests(gh.port, 1)  # warm: the files, their siblings (also the missing ones), index
    opens = strace_opens(gh.pid, lambda: hot_requests(gh.port, 50))
    assert opens == [], opens


def test_without_the_cache_every_request_opens(tmp_path, gatehouse):
    """The contrast that shows the strace test can fail: entries: 0 opens on every request."""
    root = make_tree(tmp_path / "www")
    gh = gatehouse(files_config(root, {"precompressed": ["br", "zstd", "gzip"]},
                                files_cache={"entries": 0}))
    hot_requests(gh.port, 1)
    opens = strace_opens(gh.pid, lambda: hot_requests(gh.port, 20))
    assert len([o for o in opens if "openat2" in o and '"numbers.txt"' in o]) == 20, opens
    assert len([o for o in opens if "/proc/self/fd/" in o]) >= 20 * 3


def test_changed_files_are_seen_after_valid(tmp_path, gatehouse):
    root = make_tree(tmp_path / "www")
    gh = gatehouse(files_config(root, files_cache={"entries": 64, "valid": "0s"}))
    f = root / "numbers.txt"
    assert get(gh.port, "/numbers.txt").body == NUMBERS
    f.write_bytes(b"rewritten in place\n")            # same inode, new size and mtime
    assert get(gh.port, "/numbers.txt").body == b"rewritten in place\n"
    tmp = root / "numbers.new"
    tmp.write_bytes(b"replaced by rename\n")
    os.rename(tmp, f)                                 # a new inode under the same name
    assert get(gh.port, "/numbers.txt").body == b"replaced by rename\n"
    f.unlink()
    assert get(gh.port, "/numbers.txt").status == 404
    assert get(gh.port, "/numbers.txt").status == 404  # the miss is remembered, and checked
    f.write_bytes(b"back\n")
    assert get(gh.port, "/numbers.txt").body == b"back\n"


def test_within_valid_the_cached_file_is_served(tmp_path, gatehouse):
    """Documented behaviour: for `valid` after its last check, an entry is used unchecked
    (a file replaced by rename keeps being served from the open descriptor)."""
    root = make_tree(tmp_path / "www")
    gh = gatehouse(files_config(root, files_cache={"entries": 64, "valid": "1h"}))
    assert get(gh.port, "/numbers.txt").body == NUMBERS
    tmp = root / "numbers.new"
    tmp.write_bytes(b"replaced by rename\n")
    os.rename(tmp, root / "numbers.txt")
    assert get(gh.port, "/numbers.txt").body == NUMBERS


def slow_download(port, target):
    """A client that asks for target and then reads nothing: returns (socket, head bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=T(10))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    return s, head


def read_rest(s, want):
    got = 0
    h = bytearray()
    while got < want:
        d = s.recv(1 << 20)
        if not d:
            break
        got += len(d)
        h += d
    return bytes(h)


def test_entry_evicted_while_sending_stays_open(tmp_path, gatehouse):
    root = make_tree(tmp_path / "www")
    data = os.urandom(64 * 1024) * 256                  # 16 MiB
    (root / "big.bin").write_bytes(data)
    gh = gatehouse(files_config(root, files_cache={"entries": 1, "valid": "0s"}))
    s, head = slow_download(gh.port, "/big.bin")
    assert b" 200 " in head.split(b"\r\n")[0]
    for name in ("/numbers.txt", "/index.html", "/app.js"):  # each evicts the one before
        assert get(gh.port, name).status == 200
    (root / "big.bin").rename(root / "moved.bin")      # and the name no longer leads to it
    assert get(gh.port, "/big.bin").status == 404
    body = read_rest(s, len(data))
    s.close()
    assert body == data


def test_client_gone_mid_body_releases_the_file(tmp_path, gatehouse):
    root = make_tree(tmp_path / "www")
    (root / "big.bin").write_bytes(b"\x5a" * (32 * MiB))
    gh = gatehouse(files_config(root, files_cache={"entries": 0}))
    fds = lambda: len(os.listdir(f"/proc/{gh.pid}/fd"))  # noqa: E731
    before = fds()
    for _ in range(5):
        s, _ = slow_download(gh.port, "/big.bin")
        s.recv(1000)
        s.close()
    assert wait_until(lambda: fds() == before), (before, fds())
    assert get(gh.port, "/numbers.txt").body == NUMBERS


def test_file_truncated_while_sent_aborts_with_a_log_line(tmp_path, gatehouse):
    root = make_tree(tmp_path / "www")
    big = root / "big.bin"
    big.write_bytes(b"\x33" * (64 * MiB))
    gh = gatehouse(files_config(root))
    mark = gh.err_mark()
    s, head = slow_download(gh.port, "/big.bin")
    assert b"Content-Length: %d" % (64 * MiB) in head
    s.recv(1000)
    time.sleep(0.2)                                    # the socket buffers fill; the worker waits
    os.truncate(big, 1 * MiB)
    body = read_rest(s, 64 * MiB)
    s.close()
    assert len(body) < 64 * MiB - 1000                 # the connection ended early...
    # ... and the log says why (the copy path or the codec's send_file, whichever noticed)
    gh.wait_err(r"big\.bin.*truncated while being sent", since=mark)
    assert get(gh.port, "/numbers.txt").body == NUMBERS  # the worker carries on


# ---- a file the process may not read --------------------------------------------------------

def test_unreadable_file_is_403_for_an_unprivileged_server(tmp_path):
    """Root reads any file, so the server runs as nobody (setpriv) for this one."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to drop to nobody")
    top = Path(tempfile.mkdtemp(prefix="gh-files-"))
    try:
        os.chmod(top, 0o755)
        root = make_tree(top / "www")
        for d, _, names in os.walk(root):
            os.chmod(d, 0o755)
            for n in names:
                os.chmod(os.path.join(d, n), 0o644)
        (root / "secret.txt").write_bytes(b"secret\n")
        os.chmod(root / "secret.txt", 0o600)
        (root / "locked").mkdir()
        (root / "locked" / "in.txt").write_bytes(b"locked\n")
        os.chmod(root / "locked", 0o700)
        binary = top / "gatehouse"
        shutil.copy(GATEHOUSE_BIN, binary)
        os.chmod(binary, 0o755)
        wrapper = top / "as-nobody"
        wrapper.write_text(f"#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 "
                           f"--clear-groups {binary} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        gh = Gatehouse(top / "gh", files_config(root), binary=str(wrapper))
        os.chmod(top / "gh", 0o755)
        os.chmod(gh.config_path, 0o644)
        try:
            gh.start()
            r = get(gh.port, "/secret.txt")
            assert r.status == 403 and b"secret" not in r.body
            assert get(gh.port, "/locked/in.txt").status == 403
            assert get(gh.port, "/numbers.txt").body == NUMBERS
        finally:
            gh.cleanup()
    finally:
        shutil.rmtree(top, ignore_errors=True)


# ---- gatehouse -t ---------------------------------------------------------------------------

def check(tmp_path, files_yaml, top=""):
    cfg = tmp_path / "gatehouse.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        listen: [{{address: "127.0.0.1:0"}}]
        {top}sites:
          - hosts: ["*"]
            routes:
              - path: /
                files:
        """) + textwrap.indent(textwrap.dedent(files_yaml), " " * 10))
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=T(10), stdin=subprocess.DEVNULL)
    return p, str(cfg)


def test_check_accepts_a_full_files_route(tmp_path):
    root = make_tree(tmp_path / "www")
    p, _ = check(tmp_path, f"""\
        root: {root}
        index: [index.html, index.htm]
        listing: false
        hidden: false
        follow_symlinks: inside_root
        fallback: /index.html
        precompressed: [br, zstd, gzip]
        cache_control: "public, max-age=3600"
        mime_types: {{".wasm": application/wasm, ".map": application/json}}
        """, top="files_cache: {entries: 2048, valid: 5s}\n        ")
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout + p.stderr


@pytest.mark.parametrize("body,line,col,message", [
    ("root: /no/such/dir\n", 7, 17, "files root '/no/such/dir' does not exist"),
    ("root: ROOT/numbers.txt\n", 7, 17, "is not a directory"),
    ("root: ROOT\nprecompressed: [br, deflate]\n", 8, 31, "unknown precompressed coding 'deflate'"),
    ("root: ROOT\nmime_types: {'.x': 'not a type'}\n", 8, 30, "bad media type 'not a type'"),
    ("root: ROOT\nmime_types: {'a/b': text/plain}\n", 8, 24, "bad extension 'a/b'"),
    ("root: ROOT\nfollow_symlinks: sometimes\n", 8, 28, "follow_symlinks"),
    ("root: ROOT\nfallback: index.html\n", 8, 21, "fallback 'index.html' must be"),
    ("root: ROOT\nfallback: /a/../index.html\n", 8, 21, "fallback '/a/../index.html' must be"),
    ("root: ROOT\nindex: [a/b.html]\n", 8, 19, "index 'a/b.html' must be a file name"),
    ("listing: true\n", 7, 11, "missing required key 'root'"),
])
def test_check_refuses_bad_files_settings(tmp_path, body, line, col, message):
    root = make_tree(tmp_path / "www")
    p, path = check(tmp_path, body.replace("ROOT", str(root)))
    assert p.returncode == 1, p.stdout + p.stderr
    want = f"{path}:{line}:{col}: "
    lines = [l for l in p.stderr.splitlines() if l.startswith(want)]
    assert lines and message in lines[0], p.stderr


def test_check_short_form_and_files_cache_bounds(tmp_path):
    root = make_tree(tmp_path / "www")
    cfg = tmp_path / "short.yaml"
    cfg.write_text(f'listen: [{{address: "127.0.0.1:0"}}]\n'
                   f'files_cache: {{entries: -1}}\n'
                   f'sites: [{{hosts: ["*"], routes: [{{path: /, files: {root}}}, '
                   f'{{path: /x, files: /nonexistent-root}}]}}]\n')
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=T(10))
    assert p.returncode == 1
    assert f"{cfg}:2:24: " in p.stderr and "entries" in p.stderr
    assert "files root '/nonexistent-root' does not exist" in p.stderr
    assert str(root) not in p.stderr


# ---- reload -----------------------------------------------------------------------------------

def test_reload_switches_root_and_cache_settings(tmp_path, gatehouse):
    import signal
    a = make_tree(tmp_path / "a")
    b = tmp_path / "b"
    b.mkdir()
    (b / "numbers.txt").write_bytes(b"from b\n")
    gh = gatehouse(files_config(a, files_cache={"entries": 8, "valid": "1h"}))
    with H1(gh.port) as kept:               # a connection from before the reload
        assert kept.request("GET", "/numbers.txt").body == NUMBERS
        gh.write_config(files_config(b, files_cache={"entries": 0}))
        mark = gh.err_mark()
        gh.send_signal(signal.SIGHUP)
        gh.wait_err(r"configuration reloaded", since=mark, timeout=10)
        assert get(gh.port, "/numbers.txt").body == b"from b\n"   # not a's cached entry
        assert kept.request("GET", "/numbers.txt").body == b"from b\n"
    # A root that no longer exists on reload: refused, the running one is kept.
    gh.write_config(files_config(tmp_path / "gone"))
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"does not exist", since=mark, timeout=10)
    assert get(gh.port, "/numbers.txt").body == b"from b\n"


# ---- back-pressure: a client that stops reading holds one buffer ---------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_stalled_clients_hold_no_more_than_a_buffer_each(tmp_path, gatehouse, tls):
    import ssl
    from conftest import RssSampler, rss_kib
    from test_files_handler import make_cert
    root = make_tree(tmp_path / "www")
    size = 256 * MiB
    with open(root / "huge.bin", "wb") as f:      # sparse: cheap to make, real bytes to send
        f.truncate(size)
        f.seek(size - 5)
        f.write(b"tail!")
    listen = [{"address": "127.0.0.1:0"}]
    if tls:
        crt, key = make_cert(tmp_path)
        listen[0]["tls"] = {"certificates": [{"cert": str(crt), "key": str(key)}]}
    gh = gatehouse(files_config(root, listen=listen, limits={"send_timeout": "30s"}))

    def connect():
        s = socket.create_connection(("127.0.0.1", gh.port), timeout=T(20))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname="files.example")
        s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        got = b""
        while len(got) < MiB:
            got += s.recv(65536)
        return s, got

    before = rss_kib(gh.pid)
    clients = []
    with RssSampler(gh.pid) as rss:
        for _ in range(8):
            clients.append(connect())
        time.sleep(1.5)                           # every worker-side buffer has filled by now
    grown = rss.max_kib - before
    # Eight transfers, each with its one 64 KiB buffer (and, over TLS, OpenSSL's record
    # buffers): far below one MiB each, where reading ahead of the client would cost 256 MiB.
    assert grown < 8 * 1024, f"RSS grew {grown} KiB for 8 stalled clients"
    s, got = clients[0]
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % size in head
    n = len(body)
    tail = body[-5:]
    while n < size:
        d = s.recv(1 << 20)
        if not d:
            break
        n += len(d)
        tail = (tail + d)[-5:]
    assert n == size and tail == b"tail!"
    for c, _ in clients:
        c.close()
