"""Edge: forwarding headers (X-Forwarded-*, Forwarded), trusted proxies, host_header,
secret_header."""

import pytest

from conftest import EDGE_HOST, H1, edge_config, header_values

FWD = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "forwarded"]
FORGED = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Proto", "https"),
          ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Port", "1"),
          ("Forwarded", "for=6.6.6.6;proto=https;host=evil.example"),
          ("X-Forwarded-Prefix", "/evil")]


def echo(gh, headers=(), host=None, target="/echo"):
    with H1(gh.port) as c:
        r = c.request("GET", target, list(headers), host=host or f"{EDGE_HOST}:{gh.port}")
    assert r.status == 200, r
    return r.json()["headers"]


def only(headers, name):
    vals = header_values(headers, name)
    assert len(vals) == 1, f"{name}: expected exactly one, got {vals} in {headers}"
    return vals[0]


def forwarded_elements(value):
    """'a=1;b="2", c=3' -> [{'a': '1', 'b': '"2"'}, {'c': '3'}] (values as written)."""
    out = []
    for elem in value.split(","):
        d = {}
        for pair in elem.strip().split(";"):
            k, _, v = pair.strip().partition("=")
            d[k.lower()] = v
        out.append(d)
    return out


@pytest.fixture
def fwd(backend, gatehouse):
    def make(route=None, **over):
        r = dict({"path": "/", "proxy": "app"}, **(route or {}))
        gh = gatehouse(edge_config(backend, routes=[r], **over))
        gh.backend = backend
        return gh
    return make


# ---- untrusted client (127.0.0.1 is not trusted by default) ------------------------------------

def test_untrusted_client_forwarding_headers_are_ours(fwd):
    gh = fwd()
    h = echo(gh, FORGED)
    assert only(h, "x-forwarded-for") == "127.0.0.1"
    assert only(h, "x-forwarded-proto") == "http"
    assert only(h, "x-forwarded-host") == f"{EDGE_HOST}:{gh.port}"
    assert only(h, "x-forwarded-port") == str(gh.port)
    assert header_values(h, "x-forwarded-prefix") == []   # no strip_prefix on this route


def test_forwarded_header_is_ours(fwd):
    gh = fwd()
    value = only(echo(gh, FORGED), "forwarded")
    elems = forwarded_elements(value)
    assert len(elems) == 1, value
    assert elems[0] == {"for": "127.0.0.1", "proto": "http",
                        "host": f'"{EDGE_HOST}:{gh.port}"'}, value


def test_forwarded_exact_form(fwd):
    gh = fwd()
    assert only(echo(gh), "forwarded") == \
        f'for=127.0.0.1;proto=http;host="{EDGE_HOST}:{gh.port}"'


def test_forwarding_headers_replaced_when_sent_twice(fwd):
    gh = fwd()
    h = echo(gh, [("X-Forwarded-For", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2"),
                  ("X-Forwarded-Proto", "https"), ("X-FORWARDED-PROTO", "https")])
    assert only(h, "x-forwarded-for") == "127.0.0.1"
    assert only(h, "x-forwarded-proto") == "http"


def test_x_forwarded_host_without_port_and_port_is_listeners(fwd):
    gh = fwd()
    h = echo(gh, host="CI.example.com")
    assert only(h, "x-forwarded-host") == "CI.example.com"
    assert only(h, "x-forwarded-port") == str(gh.port)
    assert only(h, "host") == "CI.example.com"


def test_untrusted_when_trusted_proxies_do_not_cover_peer(fwd):
    gh = fwd(trusted_proxies=["10.0.0.0/8", "192.168.0.0/16"])
    h = echo(gh, FORGED)
    assert only(h, "x-forwarded-for") == "127.0.0.1"
    assert only(h, "x-forwarded-proto") == "http"
    assert len(forwarded_elements(only(h, "forwarded"))) == 1


# ---- trusted peer ------------------------------------------------------------------------------

@pytest.mark.parametrize("cidr", ["127.0.0.0/8", "127.0.0.1/32"])
def test_trusted_proxy_chain_is_extended(fwd, cidr):
    gh = fwd(trusted_proxies=[cidr])
    h = echo(gh, [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-Proto", "https"),
                  ("Forwarded", "for=6.6.6.6;proto=https")])
    assert only(h, "x-forwarded-for") == "6.6.6.6, 127.0.0.1"
    assert only(h, "x-forwarded-proto") == "https"
    fw = only(h, "forwarded")
    assert fw.startswith("for=6.6.6.6;proto=https, for=127.0.0.1"), fw
    assert len(forwarded_elements(fw)) == 2


def test_trusted_proxy_without_incoming_headers(fwd):
    gh = fwd(trusted_proxies=["127.0.0.0/8"])
    h = echo(gh)
    assert only(h, "x-forwarded-for") == "127.0.0.1"
    assert only(h, "x-forwarded-proto") == "http"
    assert forwarded_elements(only(h, "forwarded"))[0]["for"] == "127.0.0.1"


# ---- forward_headers ---------------------------------------------------------------------------

def test_forward_headers_empty_sends_none_and_strips_clients(fwd):
    gh = fwd(route={"forward_headers": []})
    h = echo(gh, FORGED)
    for name in FWD + ["x-forwarded-prefix"]:
        assert header_values(h, name) == [], (name, h)


@pytest.mark.parametrize("name", FWD)
def test_forward_headers_individually(fwd, name):
    gh = fwd(route={"forward_headers": [name]})
    h = echo(gh, FORGED)
    present = [n for n in FWD if header_values(h, n)]
    assert present == [name], h
    expect = {"x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "http",
              "x-forwarded-host": f"{EDGE_HOST}:{gh.port}", "x-forwarded-port": str(gh.port)}
    if name in expect:
        assert only(h, name) == expect[name]
    else:
        assert forwarded_elements(only(h, name))[0]["for"] == "127.0.0.1"


def test_forward_headers_pair(fwd):
    gh = fwd(route={"forward_headers": ["x-forwarded-for", "forwarded"]})
    h = echo(gh, FORGED)
    assert [n for n in FWD if header_values(h, n)] == ["x-forwarded-for", "forwarded"]


# ---- host_header ---------------------------------------------------------------------------------

def test_host_header_upstream(fwd):
    gh = fwd(route={"host_header": "upstream"})
    h = echo(gh, host="ci.example.com")
    assert only(h, "host") == gh.backend.address
    assert only(h, "x-forwarded-host") == "ci.example.com"


@pytest.mark.parametrize("route", [{}, {"host_header": "client"}])
def test_host_header_client_is_unchanged(fwd, route):
    gh = fwd(route=route)
    h = echo(gh, host=f"CI.Example.com:{gh.port}")
    assert only(h, "host") == f"CI.Example.com:{gh.port}"


# ---- secret_header -------------------------------------------------------------------------------

SECRET = {"secret_header": {"name": "X-Gatehouse-Secret", "value": "s3cret"}}


def test_secret_header_on_every_request(fwd):
    gh = fwd(upstream=SECRET)
    with H1(gh.port) as c:
        for i in range(3):
            r = c.request("GET", f"/echo?i={i}", host=EDGE_HOST)
            assert only(r.json()["headers"], "x-gatehouse-secret") == "s3cret"
    with H1(gh.port) as c:   # bodies too
        r = c.request("POST", "/echo", body=b"x" * 100, host=EDGE_HOST)
        assert only(r.json()["headers"], "x-gatehouse-secret") == "s3cret"


def test_client_secret_header_is_replaced(fwd):
    gh = fwd(upstream=SECRET)
    h = echo(gh, [("X-Gatehouse-Secret", "forged"), ("x-gatehouse-secret", "s3cret"),
                  ("X-GATEHOUSE-SECRET", "")])
    assert only(h, "x-gatehouse-secret") == "s3cret"



def test_connection_header_cannot_remove_our_headers(fwd):
    """Hop-by-hop abuse: a client naming our headers in Connection must not make them vanish."""
    gh = fwd(upstream=SECRET)
    h = echo(gh, [("Connection", "keep-alive, X-Forwarded-For, Forwarded, X-Forwarded-Proto, "
                                 "X-Forwarded-Host, X-Forwarded-Port, X-Gatehouse-Secret, Host"),
                  ("X-Forwarded-For", "6.6.6.6")])
    assert only(h, "x-forwarded-for") == "127.0.0.1"
    assert only(h, "x-forwarded-proto") == "http"
    assert only(h, "x-forwarded-host") == f"{EDGE_HOST}:{gh.port}"
    assert only(h, "x-forwarded-port") == str(gh.port)
    assert forwarded_elements(only(h, "forwarded"))[0]["for"] == "127.0.0.1"
    assert only(h, "x-gatehouse-secret") == "s3cret"
    assert only(h, "host") == f"{EDGE_HOST}:{gh.port}"


def test_trusted_proxy_multiple_xff_lines_combined_in_order(fwd):
    gh = fwd(trusted_proxies=["127.0.0.0/8"])
    h = echo(gh, [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "2.2.2.2, 3.3.3.3")])
    assert only(h, "x-forwarded-for") == "1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1"


def test_trusted_proxy_multiple_forwarded_lines_combined_in_order(fwd):
    gh = fwd(trusted_proxies=["127.0.0.0/8"])
    h = echo(gh, [("Forwarded", "for=1.1.1.1"), ("Forwarded", "for=2.2.2.2")])
    fw = only(h, "forwarded")
    assert [e["for"] for e in forwarded_elements(fw)] == ["1.1.1.1", "2.2.2.2", "127.0.0.1"], fw


def _ipv6_loopback():
    import socket
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_client_forwarded_for_is_quoted(fwd):
    gh = fwd(listen=[{"address": "[::1]:0"}])
    with H1(gh.port, host="::1") as c:
        r = c.request("GET", "/echo", host=EDGE_HOST)
    h = r.json()["headers"]
    assert only(h, "x-forwarded-for") == "::1"
    assert forwarded_elements(only(h, "forwarded"))[0]["for"] == '"[::1]"'
