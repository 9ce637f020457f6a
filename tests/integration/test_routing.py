"""Site selection by Host, route selection by longest path prefix, respond and redirect."""

import pytest

from conftest import H1, base_config, get, respond_config


def body(text):
    return {"respond": {"body": text + "\n"}}


@pytest.fixture
def sites(gatehouse):
    cfg = base_config()
    # "*" and the wildcard come first: priority must not depend on order in the file.
    cfg["sites"] = [
        {"name": "any", "hosts": ["*"], "routes": [dict(path="/", **body("any"))]},
        {"name": "wild", "hosts": ["*.example.org"], "routes": [dict(path="/", **body("wild"))]},
        {"name": "exact", "hosts": ["example.com", "special.example.org"],
         "routes": [dict(path="/", **body("exact"))]},
    ]
    return gatehouse(cfg)


@pytest.mark.parametrize("host,site", [
    ("example.com", "exact"),
    ("EXAMPLE.Com", "exact"),
    ("example.com:8080", "exact"),
    ("special.example.org", "exact"),     # exact beats wildcard
    ("a.example.org", "wild"),
    ("A.B.Example.ORG:81", "wild"),       # one or more labels, case and port ignored
    ("example.org", "any"),               # "*.example.org" needs at least one label
    ("badexample.org", "any"),
    ("other.net", "any"),
    ("127.0.0.1", "any"),
])
def test_site_by_host(sites, host, site):
    r = get(sites.port, "/", host=host)
    assert (r.status, r.body) == (200, f"{site}\n".encode())


def test_no_matching_site_is_400(gatehouse):
    """An unknown Host is refused (400) unless a site is marked default."""
    cfg = base_config()
    cfg["sites"] = [{"hosts": ["example.com", "*.example.org"], "routes": [dict(path="/", **body("x"))]}]
    gh = gatehouse(cfg)
    assert get(gh.port, "/", host="example.com").status == 200
    assert get(gh.port, "/", host="example.net").status == 400
    assert get(gh.port, "/", host="example.org").status == 400


def test_default_site_answers_unknown_hosts(gatehouse):
    cfg = base_config()
    cfg["sites"] = [{"hosts": ["example.com"], "routes": [dict(path="/", **body("known"))]},
                    {"hosts": ["fallback.example"], "default": True,
                     "routes": [dict(path="/", **body("fallback"))]}]
    gh = gatehouse(cfg)
    assert get(gh.port, "/", host="example.com").body == b"known\n"
    assert get(gh.port, "/", host="unknown.example").body == b"fallback\n"


@pytest.fixture
def routes(gatehouse):
    return gatehouse(respond_config([
        dict(path="/meet", **body("meet")),
        dict(path="/", **body("root")),
        dict(path="/meet/deep", **body("deep")),
    ]))


@pytest.mark.parametrize("target,route", [
    ("/meet", "meet"),
    ("/meet/", "meet"),
    ("/meet/x", "meet"),
    ("/meet?q=1", "meet"),
    ("/meeting", "root"),
    ("/meet/deep", "deep"),
    ("/meet/deep/a/b", "deep"),
    ("/meet/deeper", "meet"),
    ("/", "root"),
    ("/other/path?x", "root"),
])
def test_longest_prefix_on_segment_boundaries(routes, target, route):
    r = get(routes.port, target)
    assert (r.status, r.body) == (200, f"{route}\n".encode())


def test_no_matching_route_is_404(gatehouse):
    gh = gatehouse(respond_config([dict(path="/meet", **body("meet"))]))
    assert get(gh.port, "/meet/1").status == 200
    assert get(gh.port, "/meeting").status == 404
    assert get(gh.port, "/").status == 404


def test_respond_status_body_type_length(gatehouse):
    gh = gatehouse(respond_config([
        {"path": "/tea", "respond": {"status": 418, "body": "short and stout\n",
                                     "content_type": "application/x-tea"}},
        {"path": "/health", "respond": {"status": 200, "body": "ok\n", "content_type": "text/plain"}},
    ]))
    r = get(gh.port, "/tea")
    assert r.status == 418
    assert r.body == b"short and stout\n"
    assert r.header("content-type") == "application/x-tea"
    assert r.header("content-length") == str(len(b"short and stout\n"))
    r = get(gh.port, "/health")
    assert (r.status, r.body, r.header("content-type")) == (200, b"ok\n", "text/plain")


def test_respond_head_has_no_body(gatehouse):
    gh = gatehouse(respond_config([{"path": "/", "respond": {"body": "0123456789"}}]))
    with H1(gh.port) as c:
        r = c.request("HEAD", "/")
        assert r.status == 200 and r.header("content-length") == "10"
        # Had a body been sent, it would be read here as the next response's head.
        r = c.request("GET", "/")
        assert (r.status, r.body) == (200, b"0123456789")


@pytest.fixture
def redirects(gatehouse):
    return gatehouse(respond_config([
        {"path": "/old", "redirect": {"to": "https://example.com/new", "status": 301, "append_path": True}},
        {"path": "/moved", "redirect": {"to": "https://example.com/fixed"}},
        {"path": "/perm", "redirect": {"to": "/elsewhere", "status": 308}},
    ]))


@pytest.mark.parametrize("target,location", [
    ("/old", "https://example.com/new"),
    ("/old/a/b", "https://example.com/new/a/b"),
    ("/old/a?x=1&y=2", "https://example.com/new/a?x=1&y=2"),
    ("/old?q", "https://example.com/new?q"),
])
def test_redirect_append_path(redirects, target, location):
    r = get(redirects.port, target)
    assert r.status == 301
    assert r.header("location") == location


def test_redirect_without_append_path(redirects):
    r = get(redirects.port, "/moved/x?y=1")
    assert r.status == 302           # the default
    assert r.header("location") == "https://example.com/fixed"
    r = get(redirects.port, "/perm")
    assert (r.status, r.header("location")) == (308, "/elsewhere")


def test_http10_without_host_goes_to_the_catch_all_site(sites):
    with H1(sites.port) as c:
        r = c.request("GET", "/", version="HTTP/1.0", host=None)
    assert (r.status, r.body) == (200, b"any\n")


def test_longest_wildcard_wins(gatehouse):
    cfg = base_config()
    cfg["sites"] = [
        {"name": "org", "hosts": ["*.example.org"], "routes": [dict(path="/", **body("org"))]},
        {"name": "b", "hosts": ["*.b.example.org"], "routes": [dict(path="/", **body("b"))]},
    ]
    gh = gatehouse(cfg)
    assert get(gh.port, "/", host="x.b.example.org").body == b"b\n"
    assert get(gh.port, "/", host="b.example.org").body == b"org\n"
    assert get(gh.port, "/", host="x.c.example.org").body == b"org\n"


def test_absolute_form_authority_picks_the_site(sites):
    with H1(sites.port) as c:
        r = c.request("GET", "http://example.com/", host="other.net")
    assert (r.status, r.body) == (200, b"exact\n")


def test_trailing_slash_of_a_route_path_is_ignored(gatehouse):
    gh = gatehouse(respond_config([dict(path="/app/", **body("app")), dict(path="/", **body("root"))]))
    assert get(gh.port, "/app").body == b"app\n"
    assert get(gh.port, "/app/x").body == b"app\n"
    assert get(gh.port, "/apple").body == b"root\n"
