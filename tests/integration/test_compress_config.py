"""`gatehouse -t` on the compress keys: a good file is OK; an unknown algorithm, a level out of
range and a bad media range are refused, each with FILE:LINE:COL."""

import subprocess
import textwrap

from conftest import GATEHOUSE_BIN, T


def check(tmp_path, text):
    path = tmp_path / "gatehouse.yaml"
    path.write_text(textwrap.dedent(text))
    p = subprocess.run([GATEHOUSE_BIN, "-t", "-c", str(path)], capture_output=True, text=True,
                       timeout=T(10), stdin=subprocess.DEVNULL)
    return p, str(path)


def test_good_compress_is_ok(tmp_path):
    p, path = check(tmp_path, """\
        listen: [{address: "127.0.0.1:0"}]
        sites:
          - hosts: ["*"]
            compress: {algorithms: [br, gzip], min_size: 2k, types: [text/*, "*/*"], level: {br: 11}}
            routes:
              - {path: /, respond: {body: hi}}
              - {path: /a, respond: {body: hi}, compress: false}
              - {path: /b, respond: {body: hi}, compress: true}
        """)
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stdout + p.stderr


def test_bad_compress_refused_with_positions(tmp_path):
    p, path = check(tmp_path, """\
        listen: [{address: "127.0.0.1:0"}]
        sites:
          - hosts: ["*"]
            compress:
              algorithms: [gzip, lzma]
              types: [text/html, "text/html; charset=utf-8"]
              level: {gzip: 10, zstd: 20, br: 12}
            routes:
              - {path: /, respond: {body: hi}, compress: yes}
        """)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert lines == [
        f"{path}:5:26: unknown algorithm 'lzma' (expected gzip, br or zstd)",
        f"{path}:6:26: bad media range 'text/html; charset=utf-8' in 'types' (expected "
        "type/subtype, type/* or */*, without parameters)",
        f"{path}:7:21: 'gzip' level must be an integer 1..9",
        f"{path}:7:31: 'zstd' level must be an integer 1..19",
        f"{path}:7:39: 'br' level must be an integer 0..11",
        f"{path}:9:50: 'compress' must be true, false or a map",
    ], p.stderr
