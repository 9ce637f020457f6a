"""Issue 11, hosts and listeners: a site may list IPv6 literals, matched with or without a port
and in any spelling of the address (item 19); the same host may be in different sites on
different listeners, and is unique only among the sites of one listener (item 20)."""

import re
import subprocess

import pytest

from conftest import H1, base_config
from test_h2_server import H2Client


def body(text):
    return {"respond": {"body": text + "\n"}}


def send(port, host):
    with H1(port) as c:
        return c.request("GET", "/", host=host)


@pytest.fixture
def v6(gatehouse):
    cfg = base_config(listen=[{"address": "127.0.0.1:0", "h2c": True}])
    cfg["sites"] = [
        {"name": "v6", "hosts": ["[::1]", "[2001:DB8::a]"], "routes": [dict(path="/", **body("v6"))]},
        {"name": "any", "hosts": ["*"], "routes": [dict(path="/", **body("any"))]},
    ]
    return gatehouse(cfg)


@pytest.mark.parametrize("host,site", [
    ("[::1]", "v6"),
    ("[::1]:8080", "v6"),
    ("[0:0:0:0:0:0:0:1]:80", "v6"),     # another spelling of the same address
    ("[2001:db8::A]", "v6"),
    ("[2001:0db8:0::a]:443", "v6"),
    ("[::2]", "any"),
    ("[::2]:8080", "any"),
    ("localhost", "any"),
])
def test_ipv6_literal_host(v6, host, site):
    r = send(v6.port, host)
    assert (r.status, r.body) == (200, f"{site}\n".encode()), (host, r)


def test_ipv6_literal_authority_over_http2(v6):
    c = H2Client(v6.port)
    try:
        for authority, site in (("[::1]:8443", "v6"), ("[::1]", "v6"), ("[::3]:1", "any")):
            status, _, data = c.response(c.request("/", authority=authority))
            assert (status, data) == (200, f"{site}\n".encode()), authority
    finally:
        c.close()


def test_ipv6_literal_without_catch_all_is_the_only_host(gatehouse):
    cfg = base_config()
    cfg["sites"] = [{"hosts": ["[::1]"], "routes": [dict(path="/", **body("v6"))]}]
    gh = gatehouse(cfg)
    assert send(gh.port, "[::1]:9").body == b"v6\n"
    assert send(gh.port, "[::1:0]").status == 400   # no site for it
    assert send(gh.port, "127.0.0.1").status == 400


def test_bad_ipv6_literal_is_a_config_error(gatehouse):
    cfg = base_config()
    cfg["sites"] = [{"hosts": ["[::g]"], "routes": [dict(path="/", **body("x"))]}]
    gh = gatehouse(cfg, start=False)
    out = subprocess.run([gh.binary, "-t", "-c", str(gh.config_path)], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode != 0
    assert "bad IPv6 address '[::g]'" in out.stderr + out.stdout


# ---- item 20: one host, two listeners, two sites, two upstreams ----------------------------

def two_listener_config(internal, public, internal_sites=("internal",)):
    cfg = base_config(listen=[{"address": "127.0.0.1:0", "sites": list(internal_sites)},
                              {"address": "127.0.0.1:0", "sites": ["public"]}])
    cfg["upstreams"] = {
        "internal_app": {"servers": [internal.address], "connect_timeout": "2s"},
        "public_app": {"servers": [public.address], "connect_timeout": "2s"},
    }
    cfg["sites"] = [
        {"name": "internal", "hosts": ["app.example.com", "intranet.example.com"],
         "routes": [{"path": "/", "proxy": "internal_app"}]},
        {"name": "public", "hosts": ["app.example.com"],
         "routes": [{"path": "/", "proxy": "public_app"}]},
    ]
    return cfg


def test_same_host_on_two_listeners_goes_to_each_ones_site(gatehouse, backend_factory):
    internal, public = backend_factory("internal"), backend_factory("public")
    gh = gatehouse(two_listener_config(internal, public))
    inner, outer = gh.ports[0], gh.ports[1]
    for _ in range(3):
        with H1(inner) as c:
            r = c.request("GET", "/echo?side=inner", host="app.example.com")
        assert r.status == 200 and r.json()["port"] == internal.port, r
        with H1(outer) as c:
            r = c.request("GET", "/echo?side=outer", host="App.Example.COM:443")
        assert r.status == 200 and r.json()["port"] == public.port, r
    # The public listener does not serve the internal site's other names.
    assert send(outer, "intranet.example.com").status == 400
    assert [t for _, _, t in internal.requests] == ["/echo?side=inner"] * 3
    assert [t for _, _, t in public.requests] == ["/echo?side=outer"] * 3


def test_same_host_twice_on_one_listener_is_refused(gatehouse, backend_factory):
    internal, public = backend_factory("internal"), backend_factory("public")
    gh = gatehouse(two_listener_config(internal, public, ("internal", "public")), start=False)
    out = subprocess.run([gh.binary, "-t", "-c", str(gh.config_path)], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode != 0
    assert re.search(r"gatehouse\.yaml:\d+:\d+: duplicate host 'app\.example\.com' "
                     r"\(already in site 'internal'\)", out.stderr + out.stdout), out
