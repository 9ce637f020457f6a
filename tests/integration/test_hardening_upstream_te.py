"""Upstream transfer codings (issue 11, item 17). Gatehouse forwards a body de-chunked and drops
Transfer-Encoding (hop by hop), so a coding besides chunked (`gzip, chunked`, `chunked, gzip`,
a lone `gzip`) would be lost and the client would get bytes it cannot read: such a response is
answered 502 and logged, over HTTP/1.1 and HTTP/2. The backend writes the raw head
(backend.py /raw-te?te=V) with the body "hello\\n" as one chunk."""
import shutil
from urllib.parse import quote

import pytest

from conftest import H1, curl, proxy_config

REFUSED = ["gzip, chunked", "deflate,chunked", "chunked, gzip", "gzip", "x-custom, chunked"]


def target(te):
    return "/raw-te?te=" + quote(te)


@pytest.mark.parametrize("te", REFUSED)
def test_transfer_coding_besides_chunked_is_502(backend, gatehouse, te):
    gh = gatehouse(proxy_config(backend))
    with H1(gh.port) as c:
        r = c.request("GET", target(te))
    assert r.status == 502, r
    assert b"hello" not in r.body
    line = gh.wait_err(r"sent Transfer-Encoding '.*' \(no coding but chunked is forwarded\) -> 502")
    assert te in line, line


@pytest.mark.parametrize("te", ["chunked", "Chunked", " chunked "])
def test_lone_chunked_is_forwarded(backend, gatehouse, te):
    gh = gatehouse(proxy_config(backend))
    with H1(gh.port) as c:
        r = c.request("GET", target(te))
    assert r.status == 200, r
    assert r.body == b"hello\n"
    assert not r.header("transfer-encoding") or r.header("transfer-encoding").lower() == "chunked"


def test_head_response_with_a_coding_has_no_body_to_lose(backend, gatehouse):
    """A HEAD answer carries no body: its Transfer-Encoding only describes a GET's, and is not
    forwarded (hop by hop); nothing is lost, so it is passed."""
    gh = gatehouse(proxy_config(backend))
    with H1(gh.port) as c:
        r = c.request("HEAD", target("gzip, chunked"))
    assert r.status == 200, r


@pytest.mark.parametrize("te", ["gzip, chunked", "chunked, gzip"])
def test_transfer_coding_besides_chunked_is_502_over_h2(backend, gatehouse, te):
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    gh = gatehouse(proxy_config(backend, listen=[{"address": "127.0.0.1:0", "h2c": True}]))
    out = curl("--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
               gh.url(target(te)))
    assert out.stdout.decode() == "2 502", out
