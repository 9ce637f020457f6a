"""Edge: host filtering, the default site, absolute-form targets, sites per listener."""

import pytest

from conftest import EDGE_HOST, H1, edge_config, free_port, get, header_values


def respond_site(name, hosts, body, default=False):
    s = {"name": name, "hosts": list(hosts), "routes": [{"path": "/", "respond": {"body": body}}]}
    if default:
        s["default"] = True
    return s


@pytest.fixture
def two_sites(backend, gatehouse):
    """public (ci.example.com) proxies to the backend; no default site."""
    gh = gatehouse(edge_config(backend, sites=[
        {"name": "public", "hosts": [EDGE_HOST], "routes": [{"path": "/", "proxy": "app"}]},
        respond_site("other", ["other.example"], "other\n"),
    ]))
    gh.backend = backend
    return gh


@pytest.fixture
def with_default(backend, gatehouse):
    """public (ci.example.com) answers "public", fallback (default: true) answers "default"."""
    gh = gatehouse(edge_config(backend, sites=[
        respond_site("public", [EDGE_HOST], "public\n"),
        respond_site("fallback", ["fallback.example"], "default\n", default=True),
    ]))
    gh.backend = backend
    return gh


def test_unknown_host_is_400_without_default_site(two_sites):
    r = get(two_sites.port, "/echo", host="nobody.example")
    assert r.status == 400, r
    assert two_sites.backend.requests == []
    # the known host still works on the same listener
    r = get(two_sites.port, "/echo", host=EDGE_HOST)
    assert r.status == 200 and r.json()["target"] == "/echo"


def test_unknown_host_answered_by_default_site(with_default):
    r = get(with_default.port, "/", host="nobody.example")
    assert (r.status, r.body) == (200, b"default\n")
    r = get(with_default.port, "/", host=EDGE_HOST)
    assert (r.status, r.body) == (200, b"public\n")


@pytest.mark.parametrize("fixture", ["two_sites", "with_default"])
def test_missing_host_on_http11_is_400(request, fixture):
    gh = request.getfixturevalue(fixture)
    with H1(gh.port) as c:
        r = c.request("GET", "/", host=None)
    assert r.status == 400, r
    assert gh.backend.requests == []


@pytest.mark.parametrize("fixture", ["two_sites", "with_default"])
@pytest.mark.parametrize("second", [EDGE_HOST, "other.example", "CI.example.com"])
def test_duplicated_host_is_400(request, fixture, second):
    gh = request.getfixturevalue(fixture)
    with H1(gh.port) as c:
        r = c.request("GET", "/", [("Host", second)], host=EDGE_HOST)
        assert r.status == 400, r
        assert c.closed_by_peer(), "connection left open after a duplicated Host"
    assert gh.backend.requests == []


@pytest.mark.parametrize("bad", ["a b", "x/y", "[::1", "h:abc", "h:99999x", "a@b",
                                 "ci.example.com:80:80", "a\\b", "[::1]x"])
def test_invalid_host_is_400_even_with_default_site(with_default, bad):
    with H1(with_default.port) as c:
        r = c.request("GET", "/", host=bad)
    assert r.status == 400, (bad, r)
    assert r.body != b"default\n"


@pytest.mark.parametrize("host", ["CI.Example.COM", "ci.example.com:8443", "ci.example.com.",
                                  "Ci.Example.Com.:80"])
def test_host_matching_ignores_case_port_and_trailing_dot(with_default, host):
    r = get(with_default.port, "/", host=host)
    assert (r.status, r.body) == (200, b"public\n"), host


@pytest.mark.parametrize("host", ["[::1]:8080", "[::1]", "127.0.0.1", "127.0.0.1:8080"])
def test_ip_literal_hosts_are_valid_and_go_to_default(with_default, host):
    r = get(with_default.port, "/", host=host)
    assert (r.status, r.body) == (200, b"default\n"), host


def test_ipv6_literal_host_without_default_is_400_not_misparsed(two_sites):
    r = get(two_sites.port, "/", host="[::1]:8080")
    assert r.status == 400


def test_absolute_form_target_routes_by_its_authority(backend, gatehouse):
    gh = gatehouse(edge_config(backend, sites=[
        respond_site("public", [EDGE_HOST], "public\n"),
        {"name": "other", "hosts": ["other.example"], "routes": [{"path": "/", "proxy": "app"}]},
    ]))
    with H1(gh.port) as c:
        r = c.request("GET", "http://other.example/echo?x=1", host=EDGE_HOST)
    assert r.status == 200, r
    e = r.json()
    assert e["target"] == "/echo?x=1"
    assert header_values(e["headers"], "host") == ["other.example"]
    # and the reverse: the Host header names the proxied site, the target another one
    with H1(gh.port) as c:
        r = c.request("GET", "http://ci.example.com/echo", host="other.example")
    assert (r.status, r.body) == (200, b"public\n")
    assert len(backend.requests) == 1


def test_absolute_form_with_port_keeps_authority_as_host(backend, gatehouse):
    gh = gatehouse(edge_config(backend, sites=[
        {"name": "other", "hosts": ["other.example"], "routes": [{"path": "/", "proxy": "app"}]},
    ]))
    with H1(gh.port) as c:
        r = c.request("GET", "http://Other.Example:8080/echo", host="whatever.example")
    assert r.status == 200, r
    hosts = header_values(r.json()["headers"], "host")
    assert len(hosts) == 1 and hosts[0].lower() == "other.example:8080"


def test_two_sites_share_one_listener(backend, gatehouse):
    gh = gatehouse(edge_config(backend, sites=[
        respond_site("a", ["a.example"], "site a\n"),
        respond_site("b", ["b.example", "*.b.example"], "site b\n"),
    ]))
    assert get(gh.port, "/", host="a.example").body == b"site a\n"
    assert get(gh.port, "/", host="b.example").body == b"site b\n"
    assert get(gh.port, "/", host="x.b.example:99").body == b"site b\n"
    with H1(gh.port) as c:    # one connection, both sites in turn
        assert c.request("GET", "/", host="a.example").body == b"site a\n"
        assert c.request("GET", "/", host="b.example").body == b"site b\n"
    assert get(gh.port, "/", host="c.example").status == 400


def test_listener_serves_only_its_sites(backend, gatehouse):
    p_internal, p_all = free_port(), free_port()
    cfg = edge_config(backend, sites=[
        respond_site("public", [EDGE_HOST], "public\n"),
        respond_site("internal", ["internal.example"], "internal\n"),
    ], listen=[{"address": f"127.0.0.1:{p_internal}", "sites": ["internal"]},
               {"address": f"127.0.0.1:{p_all}"}])
    gh = gatehouse(cfg)
    assert sorted(gh.ports) == sorted([p_internal, p_all])
    assert get(p_internal, "/", host="internal.example").body == b"internal\n"
    r = get(p_internal, "/", host=EDGE_HOST)
    assert r.status == 400 and r.body != b"public\n", r
    assert get(p_all, "/", host=EDGE_HOST).body == b"public\n"
    assert get(p_all, "/", host="internal.example").body == b"internal\n"


def test_listener_sites_with_default_site_elsewhere(backend, gatehouse):
    """The default site answers unknown hosts only on listeners that serve it."""
    p_internal, p_public = free_port(), free_port()
    cfg = edge_config(backend, sites=[
        respond_site("public", [EDGE_HOST], "public\n", default=True),
        respond_site("internal", ["internal.example"], "internal\n"),
    ], listen=[{"address": f"127.0.0.1:{p_internal}", "sites": ["internal"]},
               {"address": f"127.0.0.1:{p_public}", "sites": ["public"]}])
    gatehouse(cfg)
    assert get(p_public, "/", host="nobody.example").body == b"public\n"
    # a host of a site this listener does not serve: never that site (400, or the default)
    r = get(p_public, "/", host="internal.example")
    assert r.body != b"internal\n" and (r.status == 400 or r.body == b"public\n"), r
    assert get(p_internal, "/", host="nobody.example").status == 400
    assert get(p_internal, "/", host=EDGE_HOST).status == 400


@pytest.mark.parametrize("host", ["ci.example.com..", ".ci.example.com", "ci..example.com",
                                  "[::1]:99999", "ci.example.com:-1"])
def test_near_miss_hosts_never_reach_the_named_site(with_default, host):
    r = get(with_default.port, "/", host=host)
    assert r.body != b"public\n", (host, r)
    assert r.status in (200, 400)


def test_wildcard_host_with_trailing_dot_and_case(backend, gatehouse):
    gh = gatehouse(edge_config(backend, sites=[
        respond_site("b", ["*.b.example"], "site b\n"),
        respond_site("d", ["d.example"], "d\n", default=True)]))
    assert get(gh.port, "/", host="X.B.Example.:81").body == b"site b\n"
    assert get(gh.port, "/", host="b.example").body == b"d\n"


@pytest.mark.parametrize("target", ["http:///echo", "http://evil@ci.example.com/echo",
                                    "http://ci.example.com:abc/echo", "http://a b/echo"])
def test_bad_absolute_form_authority_is_400(backend, gatehouse, target):
    gh = gatehouse(edge_config(backend, site={"default": True}))
    with H1(gh.port) as c:
        c.send(f"GET {target} HTTP/1.1\r\nHost: {EDGE_HOST}\r\n\r\n")
        r = c.read_response()
    assert r.status == 400, (target, r)
    assert backend.requests == []


def test_absolute_form_dot_segments_normalised(backend, gatehouse):
    gh = gatehouse(edge_config(backend, routes=[
        {"path": "/", "proxy": "app"}, {"path": "/admin", "respond": {"body": "admin\n"}},
        {"path": "/app", "proxy": "app", "strip_prefix": True}]))
    with H1(gh.port) as c:
        c.send(f"GET http://{EDGE_HOST}/app/../admin HTTP/1.1\r\nHost: {EDGE_HOST}\r\n\r\n")
        r = c.read_response()
    assert r.status in (200, 400) and r.body != b"" and backend.requests == [], r
