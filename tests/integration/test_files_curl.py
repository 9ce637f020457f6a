"""The `files` handler against a real client (issue 13, "Proof"): curl's -r (single, suffix,
open-ended, multiple and unsatisfiable ranges), -z (If-Modified-Since / If-Unmodified-Since),
If-None-Match, --compressed with precompressed siblings made by the brotli / zstd / gzip
command-line tools and decoded by curl (and by Python's decoders, for the exact encoded bytes),
--http2 over TLS, HEAD (-I) against GET, and the access log's status and byte count.

The file under test is 10000 bytes of backend.pattern() (so `-r 9500-` and `-r -500` name the
same last 500 bytes), its mtime fixed at 2020-06-01 12:00:00 UTC.
"""
import gzip
import hashlib
import re
import shutil
import subprocess

import pytest

from backend import pattern_bytes
from conftest import T, base_config, curl
from test_logs import COMBINED
from test_tls import make_cert

SIZE = 10000
DATA = pattern_bytes(SIZE)
MTIME = 1591012800                      # Mon, 01 Jun 2020 12:00:00 GMT
MTIME_HTTP = "Mon, 01 Jun 2020 12:00:00 GMT"
BEFORE = "Sun, 31 May 2020 12:00:00 GMT"
AFTER = "Tue, 02 Jun 2020 12:00:00 GMT"
JS = (b"/* app */\n" + b"".join(b"function f%d(x) { return x * %d + \"%s\"; }\n" % (i, i, b"y" * (i % 17))
                                   for i in range(600)))


def need(tool):
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed")


def compress_cli(path, tool):
    """path.br / .zst / .gz next to path, made by the command-line tool (kept: -k)."""
    args = {"br": ["brotli", "-k", "-f", "-q", "9"], "zst": ["zstd", "-q", "-k", "-f", "-19"],
            "gz": ["gzip", "-k", "-f", "-9"]}[tool]
    need(args[0])
    subprocess.run([*args, str(path)], check=True, capture_output=True, timeout=T(30))
    return path.with_name(path.name + "." + tool)


@pytest.fixture
def site(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "data.bin").write_bytes(DATA)
    import os
    os.utime(www / "data.bin", (MTIME, MTIME))
    js = www / "app.js"
    js.write_bytes(JS)
    os.utime(js, (MTIME, MTIME))
    sib = {t: compress_cli(js, t) for t in ("br", "zst", "gz")}
    for p in sib.values():              # siblings newer than the file: valid
        os.utime(p, (MTIME + 10, MTIME + 10))
    (www / "plain.txt").write_bytes(b"no siblings here\n")
    return www, sib


def files_cfg(www, listen=None, **files):
    cfg = base_config()
    if listen:
        cfg["listen"] = listen
    f = {"root": str(www), "precompressed": ["br", "zstd", "gzip"]}
    f.update(files)
    cfg["sites"] = [{"name": "main", "hosts": ["*"], "routes": [{"path": "/", "files": f}]}]
    return cfg


def run(*args):
    """curl with -i (head and body in stdout): (status, headers {lower: value}, body)."""
    p = curl("-i", *args)
    assert p.returncode == 0, p.stderr
    return split(p.stdout)


def split(out):
    """The last response in curl -i output (curl prints interim and final heads)."""
    while True:
        head, _, body = out.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if status >= 200 or not body.startswith(b"HTTP/"):
            break
        out = body
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), v.strip())
    return status, headers, body


# ---- ranges ----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,first,last", [("0-99", 0, 99), ("-500", 9500, 9999),
                                            ("9500-", 9500, 9999), ("9999-20000", 9999, 9999)])
def test_single_ranges(gatehouse, site, spec, first, last):
    gh = gatehouse(files_cfg(site[0]))
    status, h, body = run("-r", spec, gh.url("/data.bin"))
    assert status == 206
    assert h["content-range"] == f"bytes {first}-{last}/{SIZE}"
    assert int(h["content-length"]) == last - first + 1
    assert body == DATA[first:last + 1]
    assert h["accept-ranges"] == "bytes"


def test_multiple_ranges_are_multipart(gatehouse, site):
    gh = gatehouse(files_cfg(site[0]))
    status, h, body = run("-r", "0-1,5-6", gh.url("/data.bin"))
    assert status == 206
    m = re.match(r"multipart/byteranges;\s*boundary=(\S+)$", h["content-type"])
    assert m, h["content-type"]
    assert int(h["content-length"]) == len(body)
    boundary = m.group(1).strip('"').encode()
    parts = body.split(b"--" + boundary)
    assert parts[-1].strip() == b"--", parts[-1]       # the closing delimiter
    got = []
    for part in parts[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        assert data.endswith(b"\r\n")
        fields = dict(l.split(b": ", 1) for l in head.strip().split(b"\r\n"))
        got.append((fields[b"Content-Range"].decode(), data[:-2]))
    assert got == [(f"bytes 0-1/{SIZE}", DATA[0:2]), (f"bytes 5-6/{SIZE}", DATA[5:7])]


def test_unsatisfiable_range_is_416(gatehouse, site):
    gh = gatehouse(files_cfg(site[0]))
    status, h, _ = run("-r", "20000-30000", gh.url("/data.bin"))
    assert status == 416
    assert h["content-range"] == f"bytes */{SIZE}"


def test_too_many_ranges_are_a_plain_200(gatehouse, site):
    """More than 16 ranges: the range amplification defence sends the file once."""
    gh = gatehouse(files_cfg(site[0]))
    spec = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(17))
    status, h, body = run("-r", spec, gh.url("/data.bin"))
    assert (status, body) == (200, DATA)


def test_if_range(gatehouse, site):
    gh = gatehouse(files_cfg(site[0]))
    _, h, _ = run(gh.url("/data.bin"))
    etag = h["etag"]
    status, _, body = run("-r", "0-9", "-H", f"If-Range: {etag}", gh.url("/data.bin"))
    assert (status, body) == (206, DATA[:10])
    status, _, body = run("-r", "0-9", "-H", 'If-Range: "other"', gh.url("/data.bin"))
    assert (status, body) == (200, DATA)


# ---- conditional requests ------------------------------------------------------------------------

def test_validators(gatehouse, site):
    gh = gatehouse(files_cfg(site[0]))
    status, h, body = run(gh.url("/data.bin"))
    assert (status, body) == (200, DATA)
    assert h["last-modified"] == MTIME_HTTP
    assert re.fullmatch(r'"[^"]+"', h["etag"]), h["etag"]      # strong
    assert h["content-type"] == "application/octet-stream"
    assert h["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("when,want", [(BEFORE, 200), (MTIME_HTTP, 304), (AFTER, 304)])
def test_curl_z_if_modified_since(gatehouse, site, when, want):
    gh = gatehouse(files_cfg(site[0]))
    status, h, body = run("-z", when, gh.url("/data.bin"))
    assert status == want
    assert body == (DATA if want == 200 else b"")
    # the same with the header written out
    status2, _, _ = run("-H", f"If-Modified-Since: {when}", gh.url("/data.bin"))
    assert status2 == want


@pytest.mark.parametrize("when,want", [(BEFORE, 412), (AFTER, 200)])
def test_curl_z_minus_if_unmodified_since(gatehouse, site, when, want):
    gh = gatehouse(files_cfg(site[0]))
    status, _, body = run("-z", "-" + when, gh.url("/data.bin"))
    assert status == want
    if want == 200:
        assert body == DATA


def test_curl_z_with_a_file_uses_its_mtime(gatehouse, site, tmp_path):
    gh = gatehouse(files_cfg(site[0]))
    ref = tmp_path / "ref"
    ref.write_bytes(b"")
    import os
    os.utime(ref, (MTIME + 3600, MTIME + 3600))
    status, _, _ = run("-z", str(ref), gh.url("/data.bin"))
    assert status == 304
    os.utime(ref, (MTIME - 3600, MTIME - 3600))
    status, _, _ = run("-z", str(ref), gh.url("/data.bin"))
    assert status == 200


def test_if_none_match(gatehouse, site):
    gh = gatehouse(files_cfg(site[0]))
    _, h, _ = run(gh.url("/data.bin"))
    etag = h["etag"]
    status, h304, body = run("-H", f"If-None-Match: {etag}", gh.url("/data.bin"))
    assert (status, body) == (304, b"")
    assert h304["etag"] == etag
    status, _, _ = run("-H", f"If-None-Match: W/{etag}", gh.url("/data.bin"))   # weak comparison
    assert status == 304
    status, _, _ = run("-H", f'If-None-Match: "nope", {etag}', gh.url("/data.bin"))
    assert status == 304
    status, _, body = run("-H", 'If-None-Match: "nope"', gh.url("/data.bin"))
    assert (status, body) == (200, DATA)
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
    status, _, _ = run("-H", 'If-None-Match: "nope"', "-H", f"If-Modified-Since: {AFTER}",
                       gh.url("/data.bin"))
    assert status == 200
    status, _, _ = run("-H", 'If-Match: "nope"', gh.url("/data.bin"))
    assert status == 412


# ---- precompressed siblings ----------------------------------------------------------------------

DECODE = {"br": lambda b: __import__("brotli").decompress(b),
          "zstd": lambda b: __import__("zstandard").ZstdDecompressor().decompressobj().decompress(b),
          "gzip": gzip.decompress}
EXT = {"br": "br", "zstd": "zst", "gzip": "gz"}


def test_compressed_flag_decodes_to_the_original(gatehouse, site):
    """curl --compressed offers every coding it can decode; the body after decoding is the
    file, and what came over the wire is one of the siblings, byte for byte."""
    www, sib = site
    gh = gatehouse(files_cfg(www))
    p = curl("--compressed", "-D", "-", "-o", "-", gh.url("/app.js"))
    assert p.returncode == 0, p.stderr
    status, h, body = split(p.stdout)
    assert status == 200
    assert h["content-encoding"] in ("br", "zstd", "gzip")
    assert body == JS
    assert "accept-encoding" in h["vary"].lower()
    wire = sib[EXT[h["content-encoding"]]].read_bytes()
    assert int(h["content-length"]) == len(wire)


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip"])
def test_each_sibling_exactly(gatehouse, site, coding):
    www, sib = site
    pytest.importorskip({"br": "brotli", "zstd": "zstandard", "gzip": "gzip"}[coding])
    gh = gatehouse(files_cfg(www))
    _, hid, _ = run("-H", "Accept-Encoding: identity", gh.url("/app.js"))
    status, h, body = run("-H", f"Accept-Encoding: {coding}", gh.url("/app.js"))
    assert status == 200
    assert h["content-encoding"] == coding
    assert body == sib[EXT[coding]].read_bytes()
    assert DECODE[coding](body) == JS
    assert int(h["content-length"]) == len(body)
    assert "accept-encoding" in h["vary"].lower()
    assert h["etag"] != hid["etag"]                          # its own validator
    assert h["content-type"] == hid["content-type"]          # the file's type, not .br's
    # a range applies to the encoded bytes
    status, h, part = run("-r", "0-9", "-H", f"Accept-Encoding: {coding}", gh.url("/app.js"))
    assert status == 206 and h["content-encoding"] == coding
    assert part == sib[EXT[coding]].read_bytes()[:10]
    assert h["content-range"] == f"bytes 0-9/{len(sib[EXT[coding]].read_bytes())}"


def test_identity_of_a_file_with_siblings_varies(gatehouse, site):
    gh = gatehouse(files_cfg(site[0]))
    status, h, body = run(gh.url("/app.js"))           # no Accept-Encoding
    assert (status, body) == (200, JS)
    assert "content-encoding" not in h
    assert "accept-encoding" in h["vary"].lower()


def test_stale_sibling_is_not_used(gatehouse, site):
    """A sibling older than the file is out of date: the file itself is sent."""
    import os
    www, sib = site
    os.utime(sib["gz"], (MTIME - 10, MTIME - 10))
    gh = gatehouse(files_cfg(www, precompressed=["gzip"]))
    status, h, body = run("-H", "Accept-Encoding: gzip", gh.url("/app.js"))
    assert status == 200
    assert h.get("content-encoding") is None
    assert body == JS


def test_refused_coding_is_not_sent(gatehouse, site):
    gh = gatehouse(files_cfg(site[0]))
    status, h, body = run("-H", "Accept-Encoding: br;q=0, gzip", gh.url("/app.js"))
    assert h["content-encoding"] == "gzip"
    status, h, body = run("-H", "Accept-Encoding: br;q=0, zstd;q=0, gzip;q=0", gh.url("/app.js"))
    assert h.get("content-encoding") is None and body == JS


# ---- HTTP/2 over TLS, HEAD, access log -------------------------------------------------------------

def test_http2_over_tls(gatehouse, site, tmp_path):
    crt, key = make_cert(tmp_path, "main", ["localhost"])
    gh = gatehouse(files_cfg(site[0], listen=[{"address": "127.0.0.1:0", "tls": {
        "certificates": [{"cert": str(crt), "key": str(key)}]}}]))
    url = f"https://localhost:{gh.port}"
    common = ("-k", "--http2", "--resolve", f"localhost:{gh.port}:127.0.0.1")
    p = curl(*common, "-o", "-", "-w", "%{http_version} %{http_code}", f"{url}/data.bin")
    assert p.returncode == 0, p.stderr
    assert p.stdout[:-5] == DATA and p.stdout[-5:] == b"2 200"
    status, h, body = run(*common, "-r", "-500", f"{url}/data.bin")
    assert (status, body) == (206, DATA[-500:])
    assert h["content-range"] == f"bytes 9500-9999/{SIZE}"
    p = curl(*common, "--compressed", "-o", "-", f"{url}/app.js")
    assert p.returncode == 0 and p.stdout == JS


@pytest.mark.parametrize("path,extra", [("/data.bin", ()), ("/app.js", ("--compressed",)),
                                        ("/data.bin", ("-r", "0-99")), ("/plain.txt", ())])
def test_head_headers_equal_get(gatehouse, site, path, extra):
    gh = gatehouse(files_cfg(site[0]))
    p = curl("-I", *extra, gh.url(path))
    assert p.returncode == 0, p.stderr
    hs, hh, hbody = split(p.stdout)
    p = curl("-D", "-", "-o", "/dev/null", *extra, gh.url(path))
    gs, gh_, _ = split(p.stdout)
    assert hs == gs and hbody == b""
    hh.pop("date", None)
    gh_.pop("date", None)
    assert hh == gh_


def test_access_log_status_and_bytes(gatehouse, site):
    gh = gatehouse(files_cfg(site[0]))
    mark = gh.out_mark()
    run(gh.url("/data.bin"))
    run("-r", "0-99", gh.url("/data.bin"))
    run("-H", f"If-Modified-Since: {AFTER}", gh.url("/data.bin"))
    run(gh.url("/missing"))
    lines = gh.wait_access(4, since=mark)
    got = [(COMBINED.match(l)["status"], COMBINED.match(l)["bytes"]) for l in lines]
    assert got[:3] == [("200", str(SIZE)), ("206", "100"), ("304", "0")]
    assert got[3][0] == "404"


def test_large_body_sha(gatehouse, tmp_path):
    """A 64 MiB file arrives whole (curl's own byte count and a digest)."""
    www = tmp_path / "www"
    www.mkdir()
    big = pattern_bytes(1 << 20) * 64
    (www / "big.bin").write_bytes(big)
    gh = gatehouse(files_cfg(www))
    p = subprocess.run(["curl", "-sS", "-o", "-", gh.url("/big.bin")], capture_output=True,
                       timeout=T(60))
    assert p.returncode == 0, p.stderr
    assert hashlib.sha256(p.stdout).digest() == hashlib.sha256(big).digest()
