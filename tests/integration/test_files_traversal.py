"""The `files` handler never leaves its root (issue 13, "Safety"): a table of escape attempts
sent as exact bytes, over raw HTTP/1.1 sockets and a few over HTTP/2 (h2c, python3-h2).

The tree, in one temporary directory:

    secret/marker.txt, secret/sub/deep.txt   OUTSIDE root, holding a unique MARKER
    www/                                     the root of the route "/"
      index.html a.txt Case.txt sub/{index.html,b.txt} static/s.txt (route "/static/")
      %2e%2e/literal.txt                     a directory literally named "%2e%2e"
      .env .git/config                       dot-files holding the MARKER too
      etc -> /etc, l1 -> l2 -> ../secret, outdir -> ../secret, leak.txt -> ../secret/marker.txt,
      sub/up.txt -> ../../secret/marker.txt, self -> /proc/self/root, procfd -> /proc/self/fd
      inlink.txt -> a.txt                    a link that stays inside (served)
      pipe (FIFO), sock (unix socket), zero (char device 1:5, when mknod is allowed)

For every case: the MARKER appears in no response (head or body), and the status is the one the
case states. Where a path legitimately normalises to a place inside root, the exact file is
expected. Rejections by the edge parser (400 for `..%2f`, backslashes, NUL bytes; 414 for a
target over the limit) happen before routing: the same for every handler.

Hardlinks are the one escape this cannot stop: a hard link inside root to a file outside IS a
file inside root (the kernel keeps no trace of "outside"; openat2's RESOLVE_BENEATH sees a
plain file). test_hardlink_is_served_documented shows it: whoever can make links in root
decides what it serves.
"""
import os
import socket
import stat
import uuid

import pytest

import h2.events

from conftest import H1, SANITIZER, T, Gatehouse, base_config
from test_h2_server import H2Client

MARKER = ("GH-SECRET-" + uuid.uuid4().hex).encode()


def build_tree(top):
    secret = top / "secret"
    (secret / "sub").mkdir(parents=True)
    (secret / "marker.txt").write_bytes(MARKER + b"\n")
    (secret / "sub" / "deep.txt").write_bytes(MARKER + b"\n")
    www = top / "www"
    for d in ("sub", "static", "%2e%2e", ".git"):
        (www / d).mkdir(parents=True)
    files = {"index.html": b"root index\n", "a.txt": b"inside\n", "Case.txt": b"case\n",
             "sub/index.html": b"sub index\n", "sub/b.txt": b"b\n", "static/s.txt": b"static\n",
             "%2e%2e/literal.txt": b"literal\n", ".env": MARKER, ".git/config": MARKER}
    for name, data in files.items():
        (www / name).write_bytes(data)
    links = {"etc": "/etc", "l1": "l2", "l2": "../secret", "outdir": "../secret",
             "leak.txt": "../secret/marker.txt", "sub/up.txt": "../../secret/marker.txt",
             "self": "/proc/self/root", "procfd": "/proc/self/fd", "inlink.txt": "a.txt"}
    for name, target in links.items():
        os.symlink(target, www / name)
    os.mkfifo(www / "pipe")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(www / "sock"))
    s.close()
    try:
        os.mknod(www / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
        has_dev = True
    except (PermissionError, OSError):
        has_dev = False
    return www, has_dev


def files_config(www):
    cfg = base_config(listen=[{"address": "127.0.0.1:0", "h2c": True}])
    cfg["sites"] = [{"name": "main", "hosts": ["*"], "routes": [
        {"path": "/static/", "files": {"root": str(www / "static")}},
        {"path": "/", "files": {"root": str(www)}},
    ]}]
    return cfg


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    top = tmp_path_factory.mktemp("traversal")
    www, has_dev = build_tree(top)
    gh = Gatehouse(top / "gh", files_config(www))
    try:
        gh.start()
        yield gh, top, has_dev
    finally:
        gh.cleanup()
    if SANITIZER:
        assert not gh.sanitizer_reports(), gh.sanitizer_reports()


def raw_get(port, target, timeout=5):
    """One GET with `target` as exact bytes on a fresh connection: (Response, raw bytes read)."""
    with H1(port, timeout=timeout) as c:
        c.send(b"GET " + target + b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        r = c.read_response()
        return r


def no_marker(r):
    head = "\n".join(f"{k}: {v}" for k, v in r.headers).encode("latin-1")
    assert MARKER not in head and MARKER not in r.body, f"the secret leaked: {r}"


# (id, request target as exact bytes, expected status, expected body or None)
# Statuses: 404 for anything that does not name a servable file inside root, 400 where the edge
# parser or the handler refuses the bytes themselves.
CASES = [
    # plain and encoded dot-dot: the normaliser removes them before routing
    ("dotdot", b"/../secret/marker.txt", 404, None),
    ("dotdot-from-sub", b"/sub/../../secret/marker.txt", 404, None),
    ("dotdot-many", b"/" + b"../" * 20 + b"secret/marker.txt", 404, None),
    ("enc-dotdot-lower", b"/%2e%2e/secret/marker.txt", 404, None),
    ("enc-dotdot-upper", b"/%2E%2E/secret/marker.txt", 404, None),
    ("enc-dot-mixed", b"/.%2e/secret/marker.txt", 404, None),
    ("enc-dot-mixed2", b"/%2e./secret/marker.txt", 404, None),
    ("enc-dotdot-in-sub", b"/sub/%2e%2e/%2E%2e/secret/marker.txt", 404, None),
    ("triple-dot", b"/.../secret/marker.txt", 404, None),
    # double encoding: decoded once, so "%2e%2e" is a literal name
    ("double-enc", b"/%252e%252e/secret/marker.txt", 404, None),
    ("double-enc-literal", b"/%252e%252e/literal.txt", 200, b"literal\n"),
    ("double-enc-slash", b"/sub%252f..%252f..%252fsecret%252fmarker.txt", 404, None),
    # encoded slashes and backslashes
    ("enc-slash-dotdot", b"/..%2fsecret/marker.txt", 400, None),
    ("enc-slash-dotdot-upper", b"/..%2Fsecret%2Fmarker.txt", 400, None),
    ("enc-all", b"/%2e%2e%2fsecret%2fmarker.txt", 400, None),
    ("enc-slash-escape", b"/sub%2f..%2f..%2fsecret%2fmarker.txt", 400, None),
    ("enc-backslash", b"/..%5csecret%5cmarker.txt", 400, None),
    ("enc-backslash-upper", b"/..%5Csecret/marker.txt", 400, None),
    ("backslash", b"/..\\secret\\marker.txt", 400, None),
    ("enc-slash-in-segment", b"/sub%2fb.txt", 404, None),     # never a separator for a file
    ("enc-backslash-in-segment", b"/sub%5cb.txt", 404, None),
    ("backslash-sub", b"/sub\\..\\..\\secret\\marker.txt", 400, None),
    # NUL
    ("nul-raw", b"/a.txt\x00.html", 400, None),
    ("nul-enc", b"/a.txt%00.html", 404, None),
    ("nul-enc-dir", b"/sub%00/b.txt", 404, None),
    ("nul-enc-end", b"/a.txt%00", 404, None),
    # overlong UTF-8 for '.' and '/': bytes, never dots or slashes
    ("overlong-dot", b"/%c0%ae%c0%ae/secret/marker.txt", 404, None),
    ("overlong-slash", b"/..%c0%afsecret%c0%afmarker.txt", 404, None),
    ("overlong-dot-3byte", b"/%e0%80%ae%e0%80%ae/secret/marker.txt", 404, None),
    # dot segments and slashes that stay inside root
    ("dot-segment", b"/./a.txt", 200, b"inside\n"),
    ("enc-dot-segment", b"/%2e/a.txt", 200, b"inside\n"),
    ("double-slash", b"//a.txt", 200, b"inside\n"),
    ("double-slash-etc", b"//etc/passwd", 404, None),
    ("dotdot-to-root", b"/sub/..", 200, b"root index\n"),
    ("query-dotdot", b"/a.txt?../../secret/marker.txt", 200, b"inside\n"),
    # absolute-form
    ("absolute-form", b"http://test/../secret/marker.txt", 404, None),
    ("absolute-form-inside", b"http://test/a.txt", 200, b"inside\n"),
    ("absolute-form-file", b"file:///etc/passwd", 400, None),
    # a segment's ";" parameters: part of the file name; a dot segment behind them is refused (400)
    ("params", b"/a.txt;x=1", 404, None),
    ("params-dotdot", b"/..;/secret/marker.txt", 400, None),
    ("params-tomcat", b"/sub/..;/..;/secret/marker.txt", 400, None),
    # long paths
    ("long-segment", b"/" + b"a" * 300, 404, None),
    ("long-deep-path", b"/" + b"a/" * 2000 + b"x", 404, None),
    ("long-dotdot", b"/" + b"a/../" * 1000 + b"secret/marker.txt", 404, None),
    ("too-long", b"/" + b"a" * 9000, 414, None),
    # symbolic links (follow_symlinks: inside_root, the default)
    ("symlink-etc", b"/etc/passwd", 404, None),
    ("symlink-etc-dir", b"/etc/", 404, None),
    ("symlink-etc-noslash", b"/etc", 404, None),
    ("symlink-chain", b"/l1/marker.txt", 404, None),
    ("symlink-chain-deep", b"/l1/sub/deep.txt", 404, None),
    ("symlink-dir-out", b"/outdir/marker.txt", 404, None),
    ("symlink-dir-out-slash", b"/outdir/", 404, None),
    ("symlink-file-out", b"/leak.txt", 404, None),
    ("symlink-up-from-sub", b"/sub/up.txt", 404, None),
    ("symlink-inside", b"/inlink.txt", 200, b"inside\n"),
    # /proc magic links
    ("proc-root", None, 404, None),             # /self/<top>/secret/marker.txt, filled in below
    ("proc-fd", b"/procfd/0", 404, None),
    ("proc-fd-dir", b"/procfd/", 404, None),
    # not regular files: never opened in a way that blocks
    ("fifo", b"/pipe", 404, None),
    ("socket", b"/sock", 404, None),
    ("chardev", b"/zero", 404, None),
    # dot-files (hidden: false, the default)
    ("dotfile", b"/.env", 404, None),
    ("dotdir-file", b"/.git/config", 404, None),
    ("dotdir", b"/.git/", 404, None),
    ("dotdir-enc", b"/%2egit/config", 404, None),
    ("dotfile-enc", b"/%2Eenv", 404, None),
    # case: names are exact bytes
    ("case-exact", b"/Case.txt", 200, b"case\n"),
    ("case-lower", b"/case.txt", 404, None),
    ("case-upper-ext", b"/A.TXT", 404, None),
    ("case-dotdir", b"/.GIT/config", 404, None),
    # the route prefix is removed, and escaping it lands in the other route, still inside root
    ("prefix", b"/static/s.txt", 200, b"static\n"),
    ("prefix-dotdot", b"/static/../secret/marker.txt", 404, None),
    ("prefix-enc-dotdot", b"/static/%2e%2e/a.txt", 200, b"inside\n"),
    ("prefix-enc-slash", b"/static/..%2f..%2fsecret/marker.txt", 400, None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_traversal_h1(env, case):
    gh, top, has_dev = env
    name, target, want, body = case
    if name == "proc-root":
        target = b"/self" + str(top).encode() + b"/secret/marker.txt"
    if name == "chardev" and not has_dev:
        pytest.skip("mknod not permitted here")
    r = raw_get(gh.port, target, timeout=T(5))   # a FIFO that blocked would time out here
    no_marker(r)
    assert r.status == want, f"{name}: {target[:80]!r} -> {r.status} (want {want})"
    if body is not None:
        assert r.body == body


def test_cases_are_many_and_distinct():
    """The issue asks for at least 30 escape encodings; ids and targets are unique."""
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)
    targets = [c[1] for c in CASES if c[1] is not None]
    assert len(set(targets)) == len(targets)


def test_directory_without_slash_redirects_inside(env):
    gh, _, _ = env
    r = raw_get(gh.port, b"/sub?x=1")
    assert r.status == 301
    assert r.header("location") in ("/sub/?x=1", "http://test/sub/?x=1")
    r = raw_get(gh.port, b"/sub/")
    assert (r.status, r.body) == (200, b"sub index\n")


def test_fifo_does_not_block_the_worker(env):
    """A request for a FIFO with no writer must not hang the worker: a request right after it
    (on another connection) is served."""
    gh, _, _ = env
    with H1(gh.port, timeout=T(5)) as c:
        c.send(b"GET /pipe HTTP/1.1\r\nHost: test\r\n\r\n")
        r = c.read_response()
        assert r.status == 404
        r = c.request("GET", "/a.txt")
        assert (r.status, r.body) == (200, b"inside\n")


# ---- HTTP/2: the same rules for :path ----------------------------------------------------------

H2_CASES = [
    ("dotdot", b"/../secret/marker.txt", 404, None),
    ("enc-dotdot-upper", b"/%2E%2E/secret/marker.txt", 404, None),
    ("double-enc-literal", b"/%252e%252e/literal.txt", 200, b"literal\n"),
    ("enc-slash-dotdot", b"/..%2fsecret/marker.txt", 400, None),
    ("backslash", b"/..\\secret\\marker.txt", 400, None),
    ("nul-enc", b"/a.txt%00.html", 404, None),
    ("nul-raw", b"/a.txt\x00", "reset", None),   # nghttp2 refuses the field: RST_STREAM
    ("overlong-dot", b"/%c0%ae%c0%ae/secret/marker.txt", 404, None),
    ("symlink-etc", b"/etc/passwd", 404, None),
    ("symlink-dir-out", b"/outdir/marker.txt", 404, None),
    ("dotdir-file", b"/.git/config", 404, None),
    ("fifo", b"/pipe", 404, None),
    ("inside", b"/sub/../a.txt", 200, b"inside\n"),
]


def h2_get(port, path):
    """(status or "reset", headers, body) of a GET with :path = exact bytes over h2c."""
    c = H2Client(port)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"http"),
                                  (b":authority", b"test"), (b":path", path)], end_stream=True)
        c.flush()
        ended = c.pump(lambda evs: any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
                                       and e.stream_id == sid for e in evs), timeout=5)
        assert ended, f"stream did not end: {c.events[-5:]}"
        if c.of(h2.events.StreamReset, sid):
            return "reset", {}, b""
        return c.response(sid)
    finally:
        c.close()


@pytest.mark.parametrize("case", H2_CASES, ids=[c[0] for c in H2_CASES])
def test_traversal_h2(env, case):
    gh, _, _ = env
    name, path, want, body = case
    status, headers, data = h2_get(gh.port, path)
    assert MARKER not in data and all(MARKER not in v.encode() for v in headers.values())
    assert status == want, f"{name}: {path!r} -> {status} (want {want})"
    if body is not None:
        assert data == body


# ---- follow_symlinks and hardlinks -------------------------------------------------------------

@pytest.mark.parametrize("mode,inside,outside", [
    ("never", 404, 404),
    ("inside_root", 200, 404),
    ("always", 200, 200),
])
def test_follow_symlinks_modes(gatehouse, tmp_path, mode, inside, outside):
    """`never`: no link is followed; `inside_root`: only links that stay inside; `always`: any
    (the operator's explicit choice, so the outside file IS served)."""
    www, _ = build_tree(tmp_path)
    cfg = files_config(www)
    cfg["sites"][0]["routes"][1]["files"]["follow_symlinks"] = mode
    gh = gatehouse(cfg)
    r = raw_get(gh.port, b"/inlink.txt")
    assert r.status == inside
    r = raw_get(gh.port, b"/leak.txt")
    assert r.status == outside
    if outside == 200:
        assert r.body == MARKER + b"\n"
    else:
        no_marker(r)
    r = raw_get(gh.port, b"/l1/marker.txt")
    assert r.status == outside
    if mode != "always":   # (whether `always` follows /proc magic links is the handler's call)
        r = raw_get(gh.port, b"/self" + str(tmp_path).encode() + b"/secret/marker.txt")
        assert r.status == 404
        no_marker(r)


def test_hardlink_is_served_documented(gatehouse, tmp_path):
    """A hard link is the file itself: nothing marks it as "outside". This documents the
    limitation: it is served, like any file inside root."""
    www, _ = build_tree(tmp_path)
    other = tmp_path / "secret" / "hard.txt"
    other.write_bytes(b"hardlinked\n")
    try:
        os.link(other, www / "hard.txt")
    except OSError as e:
        pytest.skip(f"cannot make a hard link here: {e}")
    gh = gatehouse(files_config(www))
    r = raw_get(gh.port, b"/hard.txt")
    assert (r.status, r.body) == (200, b"hardlinked\n")
