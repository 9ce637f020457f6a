"""The `files` route action (issue 13, docs/files.md), against the real binary: methods, the
directory redirect, index files, dot-files, symbolic links per follow_symlinks, FIFOs and
devices, Content-Type, validators and conditionals (RFC 9110 13.2.2's order), ranges (206,
multipart/byteranges with its exact length, 416, amplification), precompressed siblings chosen
by q-value and decoded by real decoders, Vary, the single-page-app fallback and Cache-Control,
over HTTP/1.1 (exact bytes), HTTP/2 and TLS (curl)."""
import gzip
import hashlib
import os
import re
import socket
import stat
import subprocess
import time

import pytest

from conftest import H1, T, base_config, curl, get

brotli = pytest.importorskip("brotli")
zstandard = pytest.importorskip("zstandard")

ETAG_RE = re.compile(r'^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$')
NUMBERS = b"".join(b"%05d\n" % i for i in range(2000))  # 12000 bytes, every offset known
JS = b"function f(){return 1}\n" * 400


def make_tree(root):
    """The site every test serves; returns the root."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_bytes(b"<h1>home</h1>\n")
    (root / "numbers.txt").write_bytes(NUMBERS)
    (root / "empty.txt").write_bytes(b"")
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_bytes(b"sub index\n")
    (root / "noindex").mkdir()
    (root / "noindex" / "a.txt").write_bytes(b"a\n")
    (root / "my dir").mkdir()
    (root / "my dir" / "index.html").write_bytes(b"spaced\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(b"[core]\n")
    (root / ".env").write_bytes(b"SECRET=1\n")
    (root / "sub" / ".hidden").write_bytes(b"hidden\n")
    for name, body in (("style.css", b"a{}"), ("app.js", JS), ("data.json", b"{}"),
                       ("mod.wasm", b"\0asm"), ("pic.svg", b"<svg/>"), ("blob.bin", b"\1\2"),
                       ("README", b"readme"), ("UPPER.CSS", b"b{}"), ("x.foo", b"foo")):
        (root / name).write_bytes(body)
    # Precompressed siblings of app.js, each not older than it.
    (root / "app.js.br").write_bytes(brotli.compress(JS))
    (root / "app.js.zst").write_bytes(zstandard.ZstdCompressor().compress(JS))
    (root / "app.js.gz").write_bytes(gzip.compress(JS))
    # A stale sibling: older than its file, so never used.
    (root / "stale.txt").write_bytes(b"fresh text\n")
    (root / "stale.txt.gz").write_bytes(gzip.compress(b"old text\n"))
    old = time.time() - 3600
    os.utime(root / "stale.txt.gz", (old, old))
    return root


def files_config(root, files=None, routes=None, **over):
    spec = {"root": str(root)}
    spec.update(files or {})
    cfg = base_config(**over)
    cfg["sites"] = [{"name": "main", "hosts": ["*"],
                     "routes": routes or [{"path": "/", "files": spec}]}]
    return cfg


@pytest.fixture
def site(tmp_path, gatehouse):
    """A started Gatehouse serving make_tree's root at / with the options given."""
    root = make_tree(tmp_path / "www")

    def start(files=None, routes=None, **over):
        gh = gatehouse(files_config(root, files, routes, **over))
        gh.root = root
        return gh
    return start


def raw(port, request):
    """Exact bytes of one response (the request must ask for the connection to close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=T(5)) as s:
        s.sendall(request)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out
            out += d


# ---- methods -----------------------------------------------------------------------------------

def test_get_and_head_carry_the_same_head(site):
    gh = site()
    r = get(gh.port, "/numbers.txt")
    assert r.status == 200 and r.body == NUMBERS
    assert r.header("content-type") == "text/plain; charset=utf-8"
    assert r.header("content-length") == str(len(NUMBERS))
    assert r.header("x-content-type-options") == "nosniff"
    assert r.header("accept-ranges") == "bytes"
    assert ETAG_RE.match(r.header("etag"))
    st = os.stat(gh.root / "numbers.txt")
    assert r.header("etag") == '"%x-%x-%x"' % (st.st_ino, st.st_size, st.st_mtime_ns)
    assert r.header("last-modified") == time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                                      time.gmtime(int(st.st_mtime)))
    h = get(gh.port, "/numbers.txt", method="HEAD")
    assert h.status == 200 and h.body == b""
    for name in ("content-type", "content-length", "etag", "last-modified", "accept-ranges",
                 "x-content-type-options"):
        assert h.header(name) == r.header(name), name


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "PROPFIND"])
def test_other_methods_are_405_with_allow(site, method):
    gh = site()
    r = get(gh.port, "/numbers.txt", method=method, body=b"x" if method != "DELETE" else None)
    assert r.status == 405
    assert r.header("allow") == "GET, HEAD"


def test_options_is_204_with_allow(site):
    gh = site()
    out = raw(gh.port, b"OPTIONS /numbers.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    head = out.split(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert b"\r\nAllow: GET, HEAD" in head
    assert b"Content-Length" not in head and out.endswith(b"\r\n\r\n")


def test_empty_file_is_200_with_length_0(site):
    gh = site()
    r = get(gh.port, "/empty.txt", headers=[("Range", "bytes=0-10")])
    assert r.status == 200 and r.header("content-length") == "0" and r.body == b""


# ---- directories -------------------------------------------------------------------------------

def test_directory_without_slash_redirects_with_query(site):
    gh = site()
    r = get(gh.port, "/sub?a=1&b=%20x")
    assert r.status == 301
    assert r.header("location") == "/sub/?a=1&b=%20x"
    # The client's encoding is kept: the Location is a URL path, not the file name.
    r = get(gh.port, "/my%20dir")
    assert r.status == 301 and r.header("location") == "/my%20dir/"
    assert get(gh.port, "/my%20dir/").body == b"spaced\n"
    # Normalised first: "//sub" never becomes the protocol-relative "//sub/".
    r = get(gh.port, "//sub")
    assert r.status == 301 and r.header("location") == "/sub/"


def test_route_prefix_is_removed_and_its_root_redirects(tmp_path, gatehouse):
    root = make_tree(tmp_path / "www")
    gh = gatehouse(files_config(root, routes=[
        {"path": "/assets", "files": {"root": str(root)}},
        {"path": "/", "respond": {"body": "app\n"}}]))
    assert get(gh.port, "/assets/numbers.txt").body == NUMBERS
    r = get(gh.port, "/assets?v=2")
    assert r.status == 301 and r.header("location") == "/assets/?v=2"
    assert get(gh.port, "/assets/").body == b"<h1>home</h1>\n"
    assert get(gh.port, "/numbers.txt").body == b"app\n"


def test_index_files(site):
    gh = site()
    assert get(gh.port, "/").body == b"<h1>home</h1>\n"
    r = get(gh.port, "/sub/")
    assert r.status == 200 and r.body == b"sub index\n"
    assert r.header("content-type") == "text/html; charset=utf-8"
    # No index and no listing: as if missing.
    assert get(gh.port, "/noindex/").status == 404
    # A file asked for as a directory is not that file.
    assert get(gh.port, "/numbers.txt/").status == 404


def test_listing_when_no_index(site):
    gh = site({"listing": True})
    r = get(gh.port, "/noindex/")
    assert r.status == 200
    assert r.header("content-type").startswith("text/html")
    assert r.header("vary") == "Accept" and r.header("x-content-type-options") == "nosniff"
    assert b'href="./a.txt"' in r.body and r.header("content-length") == str(len(r.body))
    r = get(gh.port, "/noindex/", headers=[("Accept", "application/json")])
    assert r.status == 200 and r.header("content-type").startswith("application/json")
    assert [e["name"] for e in r.json()] == ["a.txt"]
    h = get(gh.port, "/noindex/", method="HEAD")
    assert h.status == 200 and h.body == b"" and h.header("content-length")
    assert get(gh.port, "/sub/").body == b"sub index\n"      # an index still wins
    r = get(gh.port, "/")                                   # the root has index.html
    assert r.body == b"<h1>home</h1>\n"
    r = get(gh.port, "/noindex")
    assert r.status == 301 and r.header("location") == "/noindex/"
    big = gh.root / "many"
    big.mkdir()
    for i in range(3000):
        (big / f"file-with-a-long-name-{i:05d}.txt").write_bytes(b"")
    r = get(gh.port, "/many/")                              # larger than a send: back-pressure
    assert r.status == 200 and len(r.body) == int(r.header("content-length")) > 200000
    assert b"file-with-a-long-name-02999.txt" in r.body
    assert b".env" not in get(gh.port, "/", headers=[("Accept", "application/json")]).body


def test_listing_leaves_dot_files_out_unless_hidden(site):
    gh = site({"listing": True, "index": []})
    assert b".env" not in get(gh.port, "/").body and b"numbers.txt" in get(gh.port, "/").body
    gh2 = site({"listing": True, "index": [], "hidden": True})
    assert b".env" in get(gh2.port, "/").body


def test_index_list_order_and_none(tmp_path, gatehouse):
    root = make_tree(tmp_path / "www")
    (root / "sub" / "default.htm").write_bytes(b"default\n")
    gh = gatehouse(files_config(root, {"index": ["default.htm", "index.html"]}))
    assert get(gh.port, "/sub/").body == b"default\n"
    assert get(gh.port, "/").body == b"<h1>home</h1>\n"
    gh2 = gatehouse(files_config(root, {"index": []}))
    assert get(gh2.port, "/sub/").status == 404


# ---- what is never served ---------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/.git/config", "/.env", "/sub/.hidden", "/%2egit/config",
                                    "/%2Eenv", "/sub/%2ehidden", "/.git/"])
def test_dot_files_are_404_unless_hidden(site, target):
    gh = site()
    assert get(gh.port, target).status == 404


def test_hidden_true_serves_dot_files(site):
    gh = site({"hidden": True})
    assert get(gh.port, "/.env").body == b"SECRET=1\n"
    assert get(gh.port, "/.git/config").body == b"[core]\n"


@pytest.mark.parametrize("target", ["/sub%2Findex.html", "/sub%2findex.html", "/sub%5Cindex.html",
                                    "/sub\\index.html", "/numbers.txt%00", "/numbers%00.txt"])
def test_encoded_separators_and_nul_are_404(site, target):
    gh = site()
    r = get(gh.port, target)
    assert r.status in (400, 404), r
    assert NUMBERS not in r.body and b"sub index" not in r.body


def make_links(root, outside):
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_bytes(b"outside secret\n")
    (root / "inside-link.txt").symlink_to("numbers.txt")
    (root / "inside-dir").symlink_to("sub")
    (root / "outside-link.txt").symlink_to(outside / "secret.txt")
    (root / "outside-dir").symlink_to(outside)
    (root / "dotdot-link.txt").symlink_to("../outside/secret.txt")


def test_symlinks_inside_root_by_default(tmp_path, gatehouse):
    root = make_tree(tmp_path / "www")
    make_links(root, tmp_path / "outside")
    gh = gatehouse(files_config(root))
    assert get(gh.port, "/inside-link.txt").body == NUMBERS
    assert get(gh.port, "/inside-dir/").body == b"sub index\n"
    for target in ("/outside-link.txt", "/outside-dir/secret.txt", "/dotdot-link.txt"):
        r = get(gh.port, target)
        assert r.status == 404 and b"outside" not in r.body, target


def test_symlinks_always_and_never(tmp_path, gatehouse):
    root = make_tree(tmp_path / "www")
    make_links(root, tmp_path / "outside")
    always = gatehouse(files_config(root, {"follow_symlinks": "always"}))
    assert get(always.port, "/outside-link.txt").body == b"outside secret\n"
    assert get(always.port, "/outside-dir/secret.txt").body == b"outside secret\n"
    assert get(always.port, "/inside-link.txt").body == NUMBERS
    never = gatehouse(files_config(root, {"follow_symlinks": "never"}))
    for target in ("/inside-link.txt", "/inside-dir/", "/outside-link.txt"):
        assert get(never.port, target).status == 404, target
    assert get(never.port, "/numbers.txt").body == NUMBERS


def test_fifo_socket_and_device_are_404_without_blocking(tmp_path, gatehouse):
    root = make_tree(tmp_path / "www")
    os.mkfifo(root / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    targets = ["/pipe", "/sock"]
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        targets.append("/null")
    except PermissionError:
        pass
    gh = gatehouse(files_config(root))
    with H1(gh.port, timeout=3) as c:   # a blocking open of the FIFO would time this out
        for t in targets:
            r = c.request("GET", t)
            assert r.status == 404, t
        assert c.request("GET", "/numbers.txt").body == NUMBERS
    sock.close()


# ---- content types -----------------------------------------------------------------------------

@pytest.mark.parametrize("name,ctype", [
    ("style.css", "text/css; charset=utf-8"),
    ("UPPER.CSS", "text/css; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("data.json", "application/json; charset=utf-8"),
    ("mod.wasm", "application/wasm"),
    ("pic.svg", "image/svg+xml; charset=utf-8"),
    ("blob.bin", "application/octet-stream"),
    ("README", "application/octet-stream"),
    ("x.foo", "application/octet-stream"),
])
def test_content_type_by_extension(site, name, ctype):
    gh = site()
    r = get(gh.port, "/" + name)
    assert r.status == 200 and r.header("content-type") == ctype
    assert r.header("x-content-type-options") == "nosniff"


def test_mime_types_additions_win(site):
    gh = site({"mime_types": {".foo": "application/x-foo", "bin": "application/x-thing",
                              ".txt": "text/x-mine"}})
    assert get(gh.port, "/x.foo").header("content-type") == "application/x-foo"
    assert get(gh.port, "/blob.bin").header("content-type") == "application/x-thing"
    assert get(gh.port, "/numbers.txt").header("content-type") == "text/x-mine; charset=utf-8"
    assert get(gh.port, "/style.css").header("content-type") == "text/css; charset=utf-8"


# ---- validators and conditionals ----------------------------------------------------------------

def validators(gh, target="/numbers.txt"):
    r = get(gh.port, target)
    return r.header("etag"), r.header("last-modified")


def test_if_none_match_and_if_modified_since_give_304(site):
    gh = site({"cache_control": "public, max-age=60"})
    etag, lm = validators(gh)
    for hdrs in ([("If-None-Match", etag)], [("If-None-Match", "W/" + etag)],
                 [("If-None-Match", '"other", ' + etag)], [("If-None-Match", "*")],
                 [("If-Modified-Since", lm)],
                 [("If-None-Match", '"x"'), ("If-None-Match", etag)]):
        r = get(gh.port, "/numbers.txt", headers=hdrs)
        assert r.status == 304, hdrs
        assert r.header("etag") == etag and r.header("last-modified") == lm
        assert r.header("cache-control") == "public, max-age=60"
        assert r.header("content-type") is None
    out = raw(gh.port, b"GET /numbers.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                       b"If-None-Match: " + etag.encode() + b"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 304 Not Modified\r\n") and out.endswith(b"\r\n\r\n")


def test_conditionals_that_do_not_match_give_200(site):
    gh = site()
    etag, lm = validators(gh)
    past = "Sun, 06 Nov 1994 08:49:37 GMT"
    for hdrs in ([("If-None-Match", '"other"')], [("If-Modified-Since", past)],
                 [("If-Modified-Since", "garbage")], [("If-None-Match", "not-a-tag")],
                 # If-None-Match present: If-Modified-Since is not looked at (13.2.2 step 4)
                 [("If-None-Match", '"other"'), ("If-Modified-Since", lm)],
                 [("If-Match", etag)], [("If-Match", "*")], [("If-Unmodified-Since", lm)]):
        r = get(gh.port, "/numbers.txt", headers=hdrs)
        assert r.status == 200 and r.body == NUMBERS, hdrs


def test_preconditions_fail_with_412_before_304(site):
    gh = site()
    etag, lm = validators(gh)
    past = "Sun, 06 Nov 1994 08:49:37 GMT"
    for hdrs in ([("If-Match", '"other"')], [("If-Match", "W/" + etag)],
                 [("If-Unmodified-Since", past)],
                 # If-Match is evaluated first: its failure wins over a matching If-None-Match
                 [("If-Match", '"other"'), ("If-None-Match", etag)],
                 [("If-Unmodified-Since", past), ("If-None-Match", etag)]):
        r = get(gh.port, "/numbers.txt", headers=hdrs)
        assert r.status == 412, hdrs
        assert NUMBERS not in r.body
    out = raw(gh.port, b"GET /numbers.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                       b"If-Match: \"nope\"\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 412 Precondition Failed\r\n")


# ---- ranges ----------------------------------------------------------------------------------

SIZE = len(NUMBERS)


@pytest.mark.parametrize("spec,first,last", [
    ("bytes=0-99", 0, 99), ("bytes=-500", SIZE - 500, SIZE - 1), ("bytes=9500-", 9500, SIZE - 1),
    ("bytes=100-100", 100, 100), ("BYTES=5-9", 5, 9), ("bytes=11990-99999", 11990, SIZE - 1),
])
def test_single_range_is_206(site, spec, first, last):
    gh = site()
    r = get(gh.port, "/numbers.txt", headers=[("Range", spec)])
    assert r.status == 206
    assert r.header("content-range") == f"bytes {first}-{last}/{SIZE}"
    assert r.header("content-length") == str(last - first + 1)
    assert r.header("content-type") == "text/plain; charset=utf-8"
    assert r.body == NUMBERS[first:last + 1]


def test_single_range_exact_bytes(site):
    gh = site()
    out = raw(gh.port, b"GET /numbers.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                       b"Range: bytes=6-11\r\n\r\n")
    head, body = out.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 206 Partial Content\r\n")
    assert b"\r\nContent-Range: bytes 6-11/12000\r\n" in head
    assert b"\r\nContent-Length: 6\r\n" in head
    assert body == b"00001\n"


def parse_multipart(ctype, body):
    """(Content-Range, Content-Type, bytes) of each part, read strictly (RFC 2046 framing)."""
    boundary = ctype.split("boundary=")[1].encode()
    assert body.endswith(b"\r\n--" + boundary + b"--\r\n")
    body = b"\r\n" + body[:-len(b"\r\n--" + boundary + b"--\r\n")]
    parts = []
    for chunk in body.split(b"\r\n--" + boundary + b"\r\n")[1:]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n"))
        parts.append((fields[b"Content-Range"].decode(), fields[b"Content-Type"].decode(), data))
    return parts


def test_several_ranges_are_multipart_with_exact_length(site):
    gh = site()
    r = get(gh.port, "/numbers.txt", headers=[("Range", "bytes=0-5, 600-611,-6")])
    assert r.status == 206
    ctype = r.header("content-type")
    m = re.fullmatch(r"multipart/byteranges; boundary=(gh[0-9a-f]{30})", ctype)
    assert m, ctype
    assert int(r.header("content-length")) == len(r.body)
    assert r.header("content-range") is None
    parts = parse_multipart(ctype, r.body)
    assert parts == [
        (f"bytes 0-5/{SIZE}", "text/plain; charset=utf-8", NUMBERS[0:6]),
        (f"bytes 600-611/{SIZE}", "text/plain; charset=utf-8", NUMBERS[600:612]),
        (f"bytes {SIZE - 6}-{SIZE - 1}/{SIZE}", "text/plain; charset=utf-8", NUMBERS[-6:]),
    ]
    b = m.group(1).encode()
    assert r.body.startswith(b"--" + b + b"\r\n")
    assert r.body.endswith(b"\r\n--" + b + b"--\r\n")


def test_unsatisfiable_range_is_416(site):
    gh = site()
    for spec in (f"bytes={SIZE}-", "bytes=-0", f"bytes={SIZE + 5}-{SIZE + 10}"):
        r = get(gh.port, "/numbers.txt", headers=[("Range", spec)])
        assert r.status == 416, spec
        assert r.header("content-range") == f"bytes */{SIZE}"
        assert NUMBERS[:100] not in r.body


@pytest.mark.parametrize("spec", [
    ",".join(f"{i}-{i}" for i in range(17)),          # more than 16 ranges
    "bytes=0-11999,0-11999",                          # overlaps adding up to more than the file
    "bytes=5-1", "bytes=a-b", "items=0-5", "bytes = 0-5",  # malformed or another unit
])
def test_ignored_ranges_give_the_whole_file(site, spec):
    if not spec.startswith(("bytes", "items")):
        spec = "bytes=" + spec
    gh = site()
    r = get(gh.port, "/numbers.txt", headers=[("Range", spec)])
    assert r.status == 200 and r.body == NUMBERS
    assert r.header("content-length") == str(SIZE)


def test_if_range(site):
    gh = site()
    etag, lm = validators(gh)
    r = get(gh.port, "/numbers.txt", headers=[("Range", "bytes=0-5"), ("If-Range", etag)])
    assert r.status == 206 and r.body == NUMBERS[:6]
    r = get(gh.port, "/numbers.txt", headers=[("Range", "bytes=0-5"), ("If-Range", lm)])
    assert r.status == 206
    for stale in ('"other"', "W/" + etag, "Sun, 06 Nov 1994 08:49:37 GMT"):
        r = get(gh.port, "/numbers.txt", headers=[("Range", "bytes=0-5"), ("If-Range", stale)])
        assert r.status == 200 and r.body == NUMBERS, stale


def test_head_gets_the_head_get_would_with_range(site):
    gh = site()
    r = get(gh.port, "/numbers.txt", method="HEAD", headers=[("Range", "bytes=0-5")])
    assert r.status == 206 and r.body == b""
    assert r.header("content-length") == "6" and r.header("content-range") == f"bytes 0-5/{SIZE}"


# ---- precompressed siblings --------------------------------------------------------------------

PRE = {"precompressed": ["br", "zstd", "gzip"]}


def decode(coding, body):
    return {"br": brotli.decompress, "zstd": lambda b: zstandard.ZstdDecompressor().
            decompressobj().decompress(b), "gzip": gzip.decompress}[coding](body)


@pytest.mark.parametrize("accept,coding", [
    ("gzip", "gzip"), ("br", "br"), ("zstd", "zstd"),
    ("gzip;q=0.5, br;q=0.9", "br"),
    ("gzip, zstd;q=0.8", "gzip"),
    ("gzip, br, zstd", "br"),                           # equal q: the route's order
    ("br;q=0, zstd;q=0.1, gzip;q=0.1", "zstd"),
    ("*", "br"), ("x-gzip", "gzip"), ("GZIP", "gzip"),
])
def test_precompressed_sibling_by_q_value(site, accept, coding):
    gh = site(PRE)
    r = get(gh.port, "/app.js", headers=[("Accept-Encoding", accept)])
    assert r.status == 200
    assert r.header("content-encoding") == coding
    assert r.header("vary") == "Accept-Encoding"
    assert r.header("content-type") == "text/javascript; charset=utf-8"
    ext = {"br": ".br", "zstd": ".zst", "gzip": ".gz"}[coding]
    sib = gh.root / ("app.js" + ext)
    assert r.header("content-length") == str(sib.stat().st_size)
    assert r.body == sib.read_bytes()
    assert decode(coding, r.body) == JS
    st = sib.stat()
    assert r.header("etag") == '"%x-%x-%x"' % (st.st_ino, st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("accept", [None, "identity", "br;q=0, gzip;q=0, zstd;q=0", "deflate",
                                    "", "*;q=0"])
def test_identity_variant_also_varies(site, accept):
    gh = site(PRE)
    r = get(gh.port, "/app.js", headers=[("Accept-Encoding", accept)] if accept is not None else [])
    assert r.status == 200 and r.body == JS
    assert r.header("content-encoding") is None
    assert r.header("vary") == "Accept-Encoding"
    st = (gh.root / "app.js").stat()
    assert r.header("etag") == '"%x-%x-%x"' % (st.st_ino, st.st_size, st.st_mtime_ns)


def test_no_siblings_no_vary_and_stale_sibling_unused(site):
    gh = site(PRE)
    r = get(gh.port, "/numbers.txt", headers=[("Accept-Encoding", "gzip, br")])
    assert r.body == NUMBERS and r.header("vary") is None and r.header("content-encoding") is None
    r = get(gh.port, "/stale.txt", headers=[("Accept-Encoding", "gzip")])
    assert r.body == b"fresh text\n" and r.header("content-encoding") is None
    assert r.header("vary") is None


def test_precompressed_off_by_default(site):
    gh = site()
    r = get(gh.port, "/app.js", headers=[("Accept-Encoding", "br, gzip")])
    assert r.body == JS and r.header("content-encoding") is None and r.header("vary") is None


def test_ranges_apply_to_the_encoded_file(site):
    gh = site(PRE)
    enc = (gh.root / "app.js.br").read_bytes()
    r = get(gh.port, "/app.js", headers=[("Accept-Encoding", "br"), ("Range", "bytes=0-9")])
    assert r.status == 206
    assert r.header("content-encoding") == "br" and r.header("vary") == "Accept-Encoding"
    assert r.header("content-range") == f"bytes 0-9/{len(enc)}"
    assert r.body == enc[:10]


def test_conditionals_use_the_variant_etag(site):
    gh = site(PRE)
    gz = get(gh.port, "/app.js", headers=[("Accept-Encoding", "gzip")])
    plain = get(gh.port, "/app.js")
    assert gz.header("etag") != plain.header("etag")
    r = get(gh.port, "/app.js", headers=[("Accept-Encoding", "gzip"),
                                         ("If-None-Match", gz.header("etag"))])
    assert r.status == 304 and r.header("vary") == "Accept-Encoding"
    r = get(gh.port, "/app.js", headers=[("If-None-Match", gz.header("etag"))])
    assert r.status == 200 and r.body == JS


# ---- fallback, Cache-Control -----------------------------------------------------------------

def test_fallback_serves_the_app_for_missing_paths(site):
    gh = site({"fallback": "/index.html", "cache_control": "no-cache"})
    for target in ("/app/route/42", "/missing.txt", "/noindex/", "/sub/nothing"):
        r = get(gh.port, target)
        assert r.status == 200 and r.body == b"<h1>home</h1>\n", target
        assert r.header("content-type") == "text/html; charset=utf-8"
        assert r.header("cache-control") == "no-cache"
    assert get(gh.port, "/numbers.txt").body == NUMBERS
    assert get(gh.port, "/.env").status == 404          # refused paths are not "missing"
    etag = get(gh.port, "/deep/link").header("etag")
    assert get(gh.port, "/other/link", headers=[("If-None-Match", etag)]).status == 304


def test_fallback_that_does_not_exist_is_404(site):
    gh = site({"fallback": "/nope.html"})
    assert get(gh.port, "/missing").status == 404


def test_cache_control(site):
    gh = site({"cache_control": "public, max-age=3600"})
    r = get(gh.port, "/numbers.txt")
    assert r.header("cache-control") == "public, max-age=3600"
    r = get(gh.port, "/numbers.txt", headers=[("Range", "bytes=0-1")])
    assert r.status == 206 and r.header("cache-control") == "public, max-age=3600"
    assert site().port and get(site().port, "/numbers.txt").header("cache-control") is None


# ---- the access log ----------------------------------------------------------------------------

def test_access_log_shows_status_and_bytes(site):
    gh = site()
    etag, _ = validators(gh)
    get(gh.port, "/numbers.txt", headers=[("Range", "bytes=0-9")])
    get(gh.port, "/numbers.txt", headers=[("If-None-Match", etag)])
    get(gh.port, "/nothing")
    lines = [l for l in gh.wait_access(4) if '"GET ' in l]
    assert f'"GET /numbers.txt HTTP/1.1" 200 {SIZE} ' in lines[0]
    assert '"GET /numbers.txt HTTP/1.1" 206 10 ' in lines[1]
    assert '"GET /numbers.txt HTTP/1.1" 304 0 ' in lines[2]
    assert '"GET /nothing HTTP/1.1" 404 ' in lines[3]


# ---- HTTP/2 and TLS ----------------------------------------------------------------------------

def make_cert(d):
    key, crt = d / "k.pem", d / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-keyout", str(key), "-out", str(crt), "-days", "2",
                    "-subj", "/CN=files.example", "-addext", "subjectAltName=DNS:files.example"],
                   check=True, capture_output=True)
    return crt, key


def curl_get(url, *args):
    p = curl("-s", "-D", "-", *args, url)
    assert p.returncode == 0, p.stderr
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return lines[0], hdrs, body


def big_file(root):
    data = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32 + 7)  # ~3 MiB
    (root / "big.bin").write_bytes(data)
    return data


def test_over_http2_cleartext(tmp_path, gatehouse):
    root = make_tree(tmp_path / "www")
    data = big_file(root)
    gh = gatehouse(files_config(root, PRE, listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    url = f"http://127.0.0.1:{gh.port}"
    status, h, body = curl_get(url + "/big.bin", "--http2-prior-knowledge")
    assert status.startswith("HTTP/2 200") and body == data
    assert h["content-length"] == str(len(data)) and h["x-content-type-options"] == "nosniff"
    status, h, body = curl_get(url + "/numbers.txt", "--http2-prior-knowledge", "-r", "10-19")
    assert status.startswith("HTTP/2 206") and body == NUMBERS[10:20]
    status, h, body = curl_get(url + "/numbers.txt", "--http2-prior-knowledge", "-r", "0-1,5-6")
    assert status.startswith("HTTP/2 206") and len(body) == int(h["content-length"])
    assert h["content-type"].startswith("multipart/byteranges; boundary=")
    status, h, body = curl_get(url + "/app.js", "--http2-prior-knowledge", "-H",
                               "Accept-Encoding: br")
    assert h["content-encoding"] == "br" and brotli.decompress(body) == JS
    status, h, _ = curl_get(url + "/numbers.txt", "--http2-prior-knowledge", "-H",
                            "If-None-Match: " + get(gh.port, "/numbers.txt").header("etag"))
    assert status.startswith("HTTP/2 304")
    status, h, _ = curl_get(url + "/sub?q=1", "--http2-prior-knowledge")
    assert status.startswith("HTTP/2 301") and h["location"] == "/sub/?q=1"
    status, h, _ = curl_get(url + "/numbers.txt", "--http2-prior-knowledge", "-X", "DELETE")
    assert status.startswith("HTTP/2 405") and h["allow"] == "GET, HEAD"


@pytest.mark.parametrize("proto", ["--http1.1", "--http2"])
def test_over_tls(tmp_path, gatehouse, proto):
    root = make_tree(tmp_path / "www")
    data = big_file(root)
    crt, key = make_cert(tmp_path)
    listen = [{"address": "127.0.0.1:0",
               "tls": {"certificates": [{"cert": str(crt), "key": str(key)}]}}]
    gh = gatehouse(files_config(root, PRE, listen=listen))
    url = f"https://files.example:{gh.port}"
    args = (proto, "--cacert", str(crt), "--resolve", f"files.example:{gh.port}:127.0.0.1")
    status, h, body = curl_get(url + "/big.bin", *args)
    assert " 200" in status and hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    status, h, body = curl_get(url + "/big.bin", *args, "-r", "1000000-1000099")
    assert " 206" in status and body == data[1000000:1000100]
    status, h, body = curl_get(url + "/app.js", *args, "-H", "Accept-Encoding: zstd")
    assert h["content-encoding"] == "zstd" and decode("zstd", body) == JS
    assert h["vary"] == "Accept-Encoding"


def test_a_route_of_its_own_serves_a_dot_directory(tmp_path, gatehouse):
    root = make_tree(tmp_path / "www")
    acme = tmp_path / "acme"
    acme.mkdir()
    (acme / "tok123").write_bytes(b"tok123.key\n")
    gh = gatehouse(files_config(root, routes=[
        {"path": "/.well-known/acme-challenge", "files": {"root": str(acme)}},
        {"path": "/", "files": {"root": str(root)}}]))
    assert get(gh.port, "/.well-known/acme-challenge/tok123").body == b"tok123.key\n"
    assert get(gh.port, "/.well-known/other").status == 404
    assert get(gh.port, "/.env").status == 404
