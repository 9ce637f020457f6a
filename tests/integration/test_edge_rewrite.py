"""Edge: strip_prefix and X-Forwarded-Prefix, dot segments, response rewriting (Location,
Content-Location, Refresh, Link, Set-Cookie, rewrite_names), redirects followed by real clients,
and request/response header rules."""

import subprocess
from urllib.parse import quote

import pytest

from conftest import EDGE_HOST, H1, T, edge_config, header_values

INTERNAL = "http://jenkins.internal:8080"


@pytest.fixture
def gh(backend, gatehouse):
    gh = gatehouse(edge_config(backend, routes=[
        {"path": "/jenkins", "proxy": "app", "strip_prefix": True, "rewrite_names": [INTERNAL]},
        {"path": "/", "proxy": "app", "rewrite_names": [INTERNAL]},
        {"path": "/admin", "respond": {"body": "admin\n"}},
    ]))
    gh.backend = backend
    gh.host = f"{EDGE_HOST}:{gh.port}"
    gh.origin = f"http://{gh.host}"
    gh.bo = f"http://{backend.address}"      # the backend's own origin
    return gh


def req(gh, target, headers=(), method="GET", body=None):
    with H1(gh.port) as c:
        return c.request(method, target, list(headers), body=body, host=gh.host)


def sets(*pairs):
    """Query string asking the backend to add these response headers."""
    return "&".join(f"set={quote(n, safe='')}:{quote(v, safe='')}" for n, v in pairs)


def last_target(be):
    return be.requests[-1][2]


# ---- strip_prefix ------------------------------------------------------------------------------

def test_strip_prefix_keeps_percent_encoding_and_query(gh):
    req(gh, "/jenkins/job/a%2Fb/?x=1")
    assert last_target(gh.backend) == "/job/a%2Fb/?x=1"


def test_strip_prefix_sends_x_forwarded_prefix(gh):
    r = req(gh, "/jenkins/echo?x=1", [("X-Forwarded-Prefix", "/evil")])
    assert r.status == 200
    e = r.json()
    assert e["target"] == "/echo?x=1"
    assert header_values(e["headers"], "x-forwarded-prefix") == ["/jenkins"]


@pytest.mark.parametrize("target,upstream", [("/jenkins", "/"), ("/jenkins/", "/"),
                                             ("/jenkins?x=1", "/?x=1")])
def test_strip_prefix_of_the_prefix_itself(gh, target, upstream):
    req(gh, target)
    assert last_target(gh.backend) == upstream


def test_no_strip_prefix_forwards_path_as_is_without_prefix_header(gh):
    r = req(gh, "/echo?a=%2F", [("X-Forwarded-Prefix", "/evil")])
    e = r.json()
    assert e["target"] == "/echo?a=%2F"
    assert header_values(e["headers"], "x-forwarded-prefix") == []


@pytest.mark.parametrize("target", ["/jenkins/../admin", "/jenkins/%2e%2e/admin",
                                    "/jenkins/%2E%2E/admin", "/jenkins/./../admin",
                                    "/jenkins/job/../../admin", "/jenkins/.%2e/admin"])
def test_dot_segments_normalised_before_routing(gh, target):
    r = req(gh, target)
    assert r.status in (200, 400), r
    if r.status == 200:
        assert r.body == b"admin\n", r
    assert gh.backend.requests == [], "a dot-segment path reached the upstream"


def test_encoded_prefix_is_never_half_stripped(gh):
    r = req(gh, "/jenkin%73/echo?next=/jenkins/x")
    assert r.status in (200, 400, 404), r
    if gh.backend.requests:
        assert last_target(gh.backend) in ("/echo?next=/jenkins/x",
                                           "/jenkin%73/echo?next=/jenkins/x"), gh.backend.requests


def test_strip_prefix_leaves_query_alone(gh):
    r = req(gh, "/jenkins/echo?next=/jenkins/x&p=%2Fjenkins")
    assert r.json()["target"] == "/echo?next=/jenkins/x&p=%2Fjenkins"


def test_dot_segments_into_the_prefix(gh):
    r = req(gh, "/x/../jenkins/echo")
    assert r.status == 200
    e = r.json()
    assert e["target"] == "/echo"
    assert header_values(e["headers"], "x-forwarded-prefix") == ["/jenkins"]


def test_no_upstream_target_contains_dot_segments(gh):
    for t in ("/jenkins/a/./b/../echo", "/a/%2e/b/%2E%2e/echo"):
        req(gh, t)
    for _, _, target in gh.backend.requests:
        segs = target.split("?")[0].split("/")
        assert not any(s.lower() in (".", "..", "%2e", "%2e%2e", ".%2e", "%2e.") for s in segs), target


# ---- response rewriting ------------------------------------------------------------------------

def test_location_of_backend_origin_rewritten_with_prefix(gh):
    r = req(gh, "/jenkins/status/302?" + sets(("Location", gh.bo + "/login?next=%2Fa")))
    assert r.status == 302
    assert r.header("location") == f"{gh.origin}/jenkins/login?next=%2Fa"
    # in the same configuration: relative and foreign locations are left alone
    r = req(gh, "/jenkins/status/302?" + sets(("Location", "/login")))
    assert r.header("location") == "/login"
    r = req(gh, "/jenkins/status/302?" + sets(("Location", "http://other.example:8080/x")))
    assert r.header("location") == "http://other.example:8080/x"


def test_location_of_backend_origin_rewritten_without_prefix(gh):
    r = req(gh, "/status/301?" + sets(("Location", gh.bo + "/login")))
    assert r.header("location") == f"{gh.origin}/login"


def test_location_bare_origin_rewritten(gh):
    r = req(gh, "/jenkins/status/302?" + sets(("Location", gh.bo)))
    assert r.header("location") in (f"{gh.origin}/jenkins", f"{gh.origin}/jenkins/")


def test_origin_lookalikes_not_rewritten(gh):
    for loc in (gh.bo + "0/x", gh.bo + ".evil.example/x", INTERNAL + "0/x",
                INTERNAL + "evil/x", "http://x" + gh.bo[7:] + "/x", "https" + gh.bo[4:] + "/x"):
        r = req(gh, "/jenkins/status/302?" + sets(("Location", loc)))
        assert r.header("location") == loc, (loc, r.header("location"))
    # the real one still is
    r = req(gh, "/jenkins/status/302?" + sets(("Location", gh.bo + "/x")))
    assert r.header("location") == f"{gh.origin}/jenkins/x"


def test_query_and_percent_encoding_of_rewritten_location_kept(gh):
    loc = gh.bo + "/a%2Fb/?next=" + quote(gh.bo + "/x", safe="") + "#frag"
    r = req(gh, "/jenkins/status/302?" + sets(("Location", loc)))
    assert r.header("location") == gh.origin + "/jenkins" + loc[len(gh.bo):]


def test_content_location_rewritten(gh):
    r = req(gh, "/jenkins/status/200?" + sets(("Content-Location", gh.bo + "/doc/1")))
    assert r.header("content-location") == f"{gh.origin}/jenkins/doc/1"


def test_refresh_rewritten(gh):
    r = req(gh, "/jenkins/status/200?" + sets(("Refresh", f"0; url={gh.bo}/x")))
    assert r.header("refresh") == f"0; url={gh.origin}/jenkins/x"


def test_link_rewritten(gh):
    r = req(gh, "/jenkins/status/200?" + sets(("Link", f"<{gh.bo}/s.css>; rel=preload")))
    assert r.header("link") == f"<{gh.origin}/jenkins/s.css>; rel=preload"


def test_refresh_url_case_and_link_lists(gh):
    r = req(gh, "/jenkins/status/200?" + sets(("Refresh", f"5;URL={gh.bo}/y"),
                                              ("Link", f"<{gh.bo}/a.css>; rel=preload, "
                                                       f"<{gh.bo}/b.js>; rel=preload")))
    assert r.header("refresh").replace(" ", "").lower() == f"5;url={gh.origin}/jenkins/y".lower()
    assert r.header("link") == (f"<{gh.origin}/jenkins/a.css>; rel=preload, "
                                f"<{gh.origin}/jenkins/b.js>; rel=preload")


def test_rewrite_names_origin_rewritten(gh):
    r = req(gh, "/jenkins/status/302?" + sets(("Location", INTERNAL + "/job/x/")))
    assert r.header("location") == f"{gh.origin}/jenkins/job/x/"
    r = req(gh, "/status/302?" + sets(("Location", "HTTP://Jenkins.Internal:8080/y")))
    assert r.header("location") == f"{gh.origin}/y"


def test_set_cookie_path_and_domain_mapped(gh):
    r = req(gh, "/jenkins/status/200?" + sets(("Set-Cookie", "a=1; Path=/; Domain=127.0.0.1"),
                                              ("Set-Cookie", "b=2; Path=/job; HttpOnly")))
    cookies = r.headers_named("set-cookie")
    assert len(cookies) == 2, cookies

    def attrs(c):
        return {k.strip().lower(): v.strip() for k, _, v in
                (p.partition("=") for p in c.split(";")[1:])}
    a, b = attrs(cookies[0]), attrs(cookies[1])
    assert cookies[0].startswith("a=1") and a.get("path") == "/jenkins", cookies
    assert a.get("domain") != "127.0.0.1", cookies
    assert cookies[1].startswith("b=2") and b.get("path") == "/jenkins/job", cookies
    assert "httponly" in b


def test_set_cookie_attribute_case_and_lookalike_value(gh):
    r = req(gh, "/jenkins/status/200?" + sets(("Set-Cookie", "c=Path=/x; path=/job"),
                                              ("Set-Cookie", "d=1; Secure; PATH=/")))
    c, d = r.headers_named("set-cookie")
    assert c.split(";")[0] == "c=Path=/x", c
    assert c.split(";")[1].strip().lower() == "path=/jenkins/job", c
    assert d.startswith("d=1") and "path=/jenkins" in d.replace(" ", "").lower(), d
    assert "path=/;" not in (d.replace(" ", "").lower() + ";"), d


def curl_follow(gh, path):
    out = subprocess.run(
        ["curl", "-sS", "-L", "--max-redirs", "5", "--resolve", f"{EDGE_HOST}:{gh.port}:127.0.0.1",
         "-o", "/dev/null", "-w", "%{http_code} %{num_redirects} %{url_effective}",
         f"{gh.origin}{path}"], capture_output=True, timeout=T(20))
    assert out.returncode == 0, out.stderr
    code, n, url = out.stdout.decode().split(" ", 2)
    return int(code), int(n), url


@pytest.mark.parametrize("prefix", ["/jenkins", ""])
def test_client_following_backend_self_redirect_stays_on_gatehouse(gh, prefix):
    """Like Jenkins' reverse-proxy check: the app redirects to its own absolute URL."""
    loc = gh.bo + "/echo?probe=1"
    code, n, url = curl_follow(gh, prefix + "/status/302?" + sets(("Location", loc)))
    assert (code, n) == (200, 1)
    assert url == f"{gh.origin}{prefix}/echo?probe=1"
    assert [t for _, _, t in gh.backend.requests][-1] == "/echo?probe=1"


def test_python_client_following_redirect(gh):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", gh.port, timeout=T(10))
    c.request("GET", "/jenkins/status/303?" + sets(("Location", gh.bo + "/status/200")),
              headers={"Host": gh.host})
    r = c.getresponse()
    r.read()
    assert r.status == 303
    loc = r.getheader("Location")
    assert loc.startswith(gh.origin + "/jenkins/"), loc
    c.request("GET", loc[len(gh.origin):], headers={"Host": gh.host})
    r = c.getresponse()
    assert (r.status, r.read()) == (200, b"status 200\n")
    c.close()


# ---- header rules --------------------------------------------------------------------------------

@pytest.fixture
def rules(backend, gatehouse):
    gh = gatehouse(edge_config(backend, routes=[
        {"path": "/", "proxy": "app",
         "request_headers": {"add": {"X-Added": "1"}, "set": {"X-Set": "ours"},
                             "remove": ["X-Remove", "Cookie"]},
         "response_headers": {"set": {"X-Route": "r1"}, "remove": ["Server"]}},
        {"path": "/health", "respond": {"body": "ok\n"}},
    ], site={"response_headers": {"add": {"X-Content-Type-Options": "nosniff"},
                                  "set": {"X-Frame-Options": "DENY"},
                                  "remove": ["X-Powered-By"]}}))
    gh.backend = backend
    return gh


def test_site_response_rules_on_proxied_response(rules):
    with H1(rules.port) as c:
        r = c.request("GET", "/echo?" + sets(("X-Powered-By", "PHP/5"),
                                             ("X-Frame-Options", "SAMEORIGIN"),
                                             ("Server", "app/1")), host=EDGE_HOST)
    assert r.status == 200
    assert r.headers_named("x-powered-by") == []
    assert r.headers_named("x-frame-options") == ["DENY"]
    assert r.headers_named("x-content-type-options") == ["nosniff"]
    assert r.headers_named("x-route") == ["r1"]
    assert "app/1" not in r.headers_named("server")


def test_site_response_rules_on_respond_response(rules):
    with H1(rules.port) as c:
        r = c.request("GET", "/health", host=EDGE_HOST)
    assert (r.status, r.body) == (200, b"ok\n")
    assert r.headers_named("x-frame-options") == ["DENY"]
    assert r.headers_named("x-content-type-options") == ["nosniff"]


def test_site_response_rules_on_error_response(rules):
    with H1(rules.port) as c:
        r = c.request("GET", "/status/404", host=EDGE_HOST)
    assert r.status == 404
    assert r.headers_named("x-frame-options") == ["DENY"]


def test_site_response_remove_ignores_case(rules):
    with H1(rules.port) as c:
        r = c.request("GET", "/echo?" + sets(("x-powered-by", "a"), ("X-POWERED-BY", "b")),
                      host=EDGE_HOST)
    assert r.headers_named("x-powered-by") == []


def test_route_request_rules(rules):
    with H1(rules.port) as c:
        r = c.request("GET", "/echo", [("X-Set", "theirs"), ("x-set", "theirs2"),
                                       ("X-Remove", "x"), ("x-remove", "y"), ("Cookie", "s=1"),
                                       ("X-Keep", "k")], host=EDGE_HOST)
    h = r.json()["headers"]
    assert header_values(h, "x-set") == ["ours"]
    assert header_values(h, "x-remove") == []
    assert header_values(h, "cookie") == []
    assert header_values(h, "x-added") == ["1"]
    assert header_values(h, "x-keep") == ["k"]


def test_route_request_add_keeps_client_value(rules):
    with H1(rules.port) as c:
        r = c.request("GET", "/echo", [("X-Added", "client")], host=EDGE_HOST)
    vals = header_values(r.json()["headers"], "x-added")
    assert sorted(vals) == ["1", "client"], vals
