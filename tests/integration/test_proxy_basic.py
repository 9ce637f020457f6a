"""Proxying: what the upstream receives, what the client receives, framing, 1xx, round robin."""

import hashlib

import pytest

from backend import pattern_bytes
from conftest import H1, get, proxy_config

HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
              "proxy-connection", "proxy-authorization", "proxy-foo", "x-secret", "expect"}


def names(headers):
    return [k.lower() for k, _ in headers]


def test_get_is_forwarded_as_received(proxied):
    gh, be = proxied
    r = get(gh.port, "/echo?a=1&b=%20x", host="Example.COM:1234")
    assert r.status == 200
    e = r.json()
    assert (e["method"], e["target"], e["version"]) == ("GET", "/echo?a=1&b=%20x", "HTTP/1.1")
    assert ["host", "Example.COM:1234"] in [[k.lower(), v] for k, v in e["headers"]]
    assert e["body_len"] == 0


@pytest.mark.parametrize("method", ["GET", "DELETE", "OPTIONS", "PATCH", "PROPFIND"])
def test_methods_are_forwarded(proxied, method):
    gh, _ = proxied
    body = b"x" if method == "PATCH" else None
    r = get(gh.port, "/echo", method=method, body=body)
    assert r.status == 200 and r.json()["method"] == method


def test_headers_forwarded_in_order_minus_hop_by_hop(proxied):
    gh, _ = proxied
    sent = [("X-First", "1"), ("Connection", "keep-alive, X-Secret"), ("X-Secret", "hidden"),
            ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Trailer", "X-T"),
            ("Upgrade", "websocket"), ("Proxy-Connection", "keep-alive"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="), ("Proxy-Foo", "1"),
            ("X-Last", "2"), ("x-first", "3"), ("Cookie", "a=1"), ("Cookie", "b=2"),
            ("X-Empty", "")]
    with H1(gh.port) as c:
        r = c.request("GET", "/echo", sent, host="example.com")
    got = r.json()["headers"]
    kept = {"host", "x-first", "x-last", "cookie", "x-empty"}
    assert [[k.lower(), v] for k, v in got if k.lower() in kept] == [
        ["host", "example.com"], ["x-first", "1"], ["x-last", "2"], ["x-first", "3"],
        ["cookie", "a=1"], ["cookie", "b=2"], ["x-empty", ""]]
    leaked = [h for h in got if h[0].lower() in HOP_BY_HOP and h[0].lower() != "connection"]
    assert leaked == [], "hop-by-hop headers forwarded"
    for k, v in got:    # the proxy may speak for itself on its own connection, nothing more
        if k.lower() == "connection":
            assert v.lower() == "keep-alive", got


def test_absolute_form_target_is_sent_as_origin_form(proxied):
    gh, _ = proxied
    with H1(gh.port) as c:
        r = c.request("GET", "http://example.com/echo?x=1", host="example.com")
    assert r.status == 200
    assert r.json()["target"] == "/echo?x=1"


def test_content_length_body_forwarded(proxied):
    gh, _ = proxied
    data = pattern_bytes(100000)
    r = get(gh.port, "/echo", method="POST", body=data)
    e = r.json()
    assert e["body_len"] == len(data)
    assert e["body_sha256"] == hashlib.sha256(data).hexdigest()
    assert ["content-length", "100000"] in [[k.lower(), v] for k, v in e["headers"]]


def chunked(data, size, trailers=b""):
    return b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size])
                    for i in range(0, len(data), size)) + b"0\r\n" + trailers + b"\r\n"


def test_chunked_body_forwarded_chunked_without_trailers(proxied):
    gh, _ = proxied
    data = pattern_bytes(70000)
    with H1(gh.port) as c:
        r = c.request("POST", "/echo", [("Transfer-Encoding", "chunked")],
                      chunked(data, 3000, b"X-Trail: 1\r\n"))
    e = r.json()
    assert (e["body_len"], e["body_sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    hdrs = [[k.lower(), v.lower()] for k, v in e["headers"]]
    assert ["transfer-encoding", "chunked"] in hdrs
    assert "content-length" not in names(e["headers"])
    assert e["trailers"] == []


def test_expect_100_continue_answered_by_gatehouse(proxied):
    gh, _ = proxied
    with H1(gh.port) as c:
        c.send(H1.build("POST", "/echo", [("Expect", "100-continue"), ("Content-Length", "5")]))
        version, status, _, _ = c.read_head()      # before we send a single body byte
        assert (version, status) == ("HTTP/1.1", 100)
        c.send(b"hello")
        r = c.read_response()
    e = r.json()
    assert r.status == 200 and e["body_len"] == 5
    assert "expect" not in names(e["headers"])


def test_response_headers_passed_minus_hop_by_hop(proxied):
    gh, _ = proxied
    r = get(gh.port, "/echo?set=Connection:X-Drop&set=X-Drop:1&set=Keep-Alive:timeout=5"
                     "&set=X-Keep:1&set=Proxy-Foo:1&set=Trailer:X-T&set=Set-Cookie:a=1"
                     "&set=Set-Cookie:b=2")
    assert r.status == 200
    assert r.header("x-keep") == "1"
    assert r.headers_named("set-cookie") == ["a=1", "b=2"]
    for h in ("x-drop", "keep-alive", "proxy-foo", "trailer"):
        assert r.header(h) is None, (h, r.headers)


def test_upstream_status_passed(proxied):
    gh, _ = proxied
    for status in (201, 404, 418, 500, 503):
        r = get(gh.port, f"/status/{status}")
        assert (r.status, r.body) == (status, f"status {status}\n".encode())


def test_content_length_response_kept(proxied):
    gh, _ = proxied
    r = get(gh.port, "/bytes?n=100000")
    assert r.header("content-length") == "100000" and r.header("transfer-encoding") is None
    assert r.body == pattern_bytes(100000)


def test_chunked_response_stays_chunked_for_http11(proxied):
    gh, _ = proxied
    r = get(gh.port, "/bytes?n=100000&chunked=1&chunk=3000")
    assert "chunked" in r.header("transfer-encoding").lower()
    assert r.body == pattern_bytes(100000)


def test_close_delimited_response_becomes_chunked_and_connection_survives(proxied):
    """The backend's data and FIN arrive together (TCP_CORK): the end must still be seen."""
    gh, _ = proxied
    with H1(gh.port, timeout=3) as c:
        r = c.request("GET", "/until-close?n=5000")
        assert r.status == 200 and r.complete
        assert "chunked" in (r.header("transfer-encoding") or "").lower()
        assert r.body == pattern_bytes(5000)
        assert c.request("GET", "/echo").status == 200


def test_close_delimited_response_with_late_fin(proxied):
    gh, _ = proxied
    with H1(gh.port, timeout=5) as c:
        r = c.request("GET", "/until-close?n=5000&cork=0")
        assert r.complete and r.body == pattern_bytes(5000)
        assert c.request("GET", "/echo").status == 200


def test_http10_client_gets_no_chunked_encoding(proxied):
    gh, _ = proxied
    with H1(gh.port) as c:
        r = c.request("GET", "/bytes?n=20000&chunked=1&chunk=1000", version="HTTP/1.0")
    assert r.header("transfer-encoding") is None
    assert r.body == pattern_bytes(20000)


@pytest.mark.parametrize("target,method", [("/bytes?n=1000", "HEAD"), ("/status/204", "GET"),
                                           ("/status/304", "GET"), ("/bytes?n=10&chunked=1", "HEAD")])
def test_no_body_responses(proxied, target, method):
    gh, _ = proxied
    with H1(gh.port) as c:
        r = c.request(method, target)
        assert r.status in (200, 204, 304)
        if method == "HEAD" and "chunked" not in target:
            assert r.header("content-length") == "1000"
        # any stray body byte would be parsed as the head of this response
        r2 = c.request("GET", "/echo?second=1")
        assert r2.status == 200 and r2.json()["target"] == "/echo?second=1"


def test_103_early_hints_forwarded_to_http11(proxied):
    gh, _ = proxied
    r = get(gh.port, "/interim")
    assert [s for s, _ in r.interims] == [103]
    assert ("Link", "</style.css>; rel=preload") in [(k.title(), v) for k, v in r.interims[0][1]]
    assert (r.status, r.body) == (200, b"final\n")


def test_103_not_forwarded_to_http10(proxied):
    gh, _ = proxied
    r = get(gh.port, "/interim", version="HTTP/1.0")
    assert r.interims == []
    assert (r.status, r.body) == (200, b"final\n")


def test_round_robin(backend_factory, gatehouse):
    a, b = backend_factory("a"), backend_factory("b")
    gh = gatehouse(proxy_config(a, b))
    ports = [get(gh.port, "/echo").json()["port"] for _ in range(10)]
    assert sorted(set(ports)) == sorted({a.port, b.port})
    assert abs(ports.count(a.port) - ports.count(b.port)) <= 1, ports


def test_chunk_extensions_are_accepted(proxied):
    gh, _ = proxied
    with H1(gh.port) as c:
        r = c.request("POST", "/echo", [("Transfer-Encoding", "chunked")],
                      b"5;name=value\r\nhello\r\n6 ; x\r\n world\r\n0\r\n\r\n")
    e = r.json()
    assert (r.status, e["body_len"]) == (200, 11)
    assert e["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()


def test_large_request_and_response_headers(proxied):
    gh, _ = proxied
    big = "v" * 6000
    r = get(gh.port, f"/echo?set=X-Big-Response:{big}", headers=[("X-Big", big)])
    assert r.status == 200
    assert ["x-big", big] in [[k.lower(), v] for k, v in r.json()["headers"]]
    assert r.header("x-big-response") == big
