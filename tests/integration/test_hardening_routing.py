"""Issue 11 item 2: route rules are not bypassed by encodings the application decodes.

A route /admin that refuses (403) must catch every spelling an application reads as /admin:
percent-encoded unreserved characters, repeated slashes, `;` segment parameters, an encoded
slash after the prefix, and any case on a site with case_insensitive_paths. None of them may
reach the `/` route's backend. What the backend sees is the normalised path, with %2F still
encoded. HTTP/1.1 (raw socket) and HTTP/2 (python-h2, h2c) go through the same router."""

import pytest

from conftest import H1, base_config
from test_h2_server import H2Client

ADMIN = b"admin route\n"


def routing_config(backend, **listen):
    cfg = base_config(listen=[dict({"address": "127.0.0.1:0"}, **listen)])
    cfg["upstreams"] = {"app": {"servers": [backend.address], "connect_timeout": "2s",
                                "read_timeout": "10s"}}
    admin = {"path": "/admin", "respond": {"status": 403, "body": ADMIN.decode()}}
    cfg["sites"] = [
        {"name": "main", "hosts": ["*"], "routes": [
            {"path": "/", "proxy": "app"},
            admin,
            {"path": "/app", "proxy": "app", "strip_prefix": True},
            {"path": "/old", "redirect": {"to": "https://new.example/", "append_path": True}},
        ]},
        {"name": "iis", "hosts": ["iis.test"], "case_insensitive_paths": True, "routes": [
            {"path": "/", "proxy": "app"}, admin,
        ]},
    ]
    return cfg


@pytest.fixture
def gh(backend, gatehouse):
    gh = gatehouse(routing_config(backend))
    gh.backend = backend
    return gh


def send(gh, target, host="test"):
    with H1(gh.port) as c:
        return c.request("GET", target, host=host)


def backend_targets(be):
    return [t for _, _, t in be.requests]


BYPASSES = [
    "/%61dmin",              # unreserved character, encoded
    "/%61%64%6D%69%6e/x",    # all of it, either case of hex
    "//admin",               # repeated slash
    "///admin//x",
    "/admin;x",              # segment parameters
    "/admin;jsessionid=1/x",
    "/;x/admin",             # a segment that is only parameters
    "/admin%2Fx",            # encoded slash after the prefix
    "/admin%2fx",
    "/x/%2e%2e/admin",       # encoded dot segments
    "/x/..//admin",
    "/%2Fadmin",
    "/admin\\x",             # a backslash, which IIS reads as '/'
    "/admin%5cx",
]


@pytest.mark.parametrize("target", BYPASSES)
def test_bypass_forms_hit_the_admin_route(gh, target):
    r = send(gh, target)
    assert (r.status, r.body) == (403, ADMIN), (target, r)
    assert backend_targets(gh.backend) == []


@pytest.mark.parametrize("target", ["/ADMIN", "/Admin/x", "/%41DMIN", "//aDmIn;x/y"])
def test_case_insensitive_site_matches_any_case(gh, target):
    r = send(gh, target, host="iis.test")
    assert (r.status, r.body) == (403, ADMIN), (target, r)
    # On a site that keeps case (the default), /ADMIN is another path: the app's business.
    r = send(gh, target.replace(";x", ""))
    assert r.status == 404 and r.body == b"no such command\n", r
    assert backend_targets(gh.backend) == [target.replace(";x", "").replace("//", "/")
                                           .replace("%41", "A")]


@pytest.mark.parametrize("target", ["/public/..;/admin", "/public/.;x/admin",
                                    "/public%2F..%2Fadmin", "/a/..%2fadmin",
                                    "/public\\..\\admin", "/public/..%5Cadmin"])
def test_dot_segment_hidden_by_parameters_or_encoded_slash_is_400(gh, target):
    """Tomcat reads "/public/..;/admin" as /admin; an app that decodes %2F reads
    "/public%2F..%2Fadmin" the same, IIS "/public\\..\\admin": none is routed, none reaches a
    backend."""
    r = send(gh, target)
    assert r.status == 400, (target, r)
    assert backend_targets(gh.backend) == []


@pytest.mark.parametrize("target", ["/100%", "/%%61dmin", "/%6", "/%zz/x", "/%/../%61dmin"])
def test_malformed_percent_encoding_is_400(gh, target):
    """A '%' that starts no percent-encoding is read differently by each application (and
    decoding around it could make a new one: "%%61" -> "%a")."""
    r = send(gh, target)
    assert r.status == 400, (target, r)
    assert backend_targets(gh.backend) == []


@pytest.mark.parametrize("target,seen", [
    ("/%7Euser//a/%2e/b?q=%61//", "/~user/a/b?q=%61//"),   # the query goes as it came
    ("/job/a%2fb/x", "/job/a%2Fb/x"),                       # %2F stays encoded
    ("/caf%c3%a9;v=1", "/caf%C3%A9;v=1"),                   # parameters are forwarded
    ("/app/x", "/x"),                                       # strip_prefix
    ("/%61pp;s=1/x%2Fy", "/x%2Fy"),                         # the prefix as the router saw it
    ("/app%2Fx", "/%2Fx"),                                  # rest after an encoded slash
    ("/app;s=1", "/"),
])
def test_backend_sees_the_normalised_path(gh, target, seen):
    r = send(gh, target)
    assert r.status in (200, 404) and r.body != ADMIN, r   # the backend's own answer
    assert backend_targets(gh.backend) == [seen]


@pytest.mark.parametrize("target,location", [
    ("/old;x/y", "https://new.example/y"),
    ("/%6Fld//y/z", "https://new.example/y/z"),
    ("/old%2Fy", "https://new.example/%2Fy"),
])
def test_redirect_append_path_follows_the_matched_prefix(gh, target, location):
    r = send(gh, target)
    assert (r.status, r.header("Location")) == (302, location), r


def test_http2_path_goes_through_the_same_router(backend, gatehouse):
    gh = gatehouse(routing_config(backend, h2c=True))
    c = H2Client(gh.port)
    try:
        for target in BYPASSES:
            status, _, body = c.response(c.request(target))
            assert (status, body) == (403, ADMIN), target
        status, _, _ = c.response(c.request("/public/..;/admin"))
        assert status == 400
        status, _, _ = c.response(c.request("/%41DMIN", authority="iis.test"))
        assert status == 403
        assert backend_targets(backend) == []
        status, _, _ = c.response(c.request("/x//y/..?a=%61"))
        assert status == 404
        status, _, _ = c.response(c.request("/job/a%2fb/%7e"))
        assert status == 404
        assert backend_targets(backend) == ["/x/?a=%61", "/job/a%2Fb/~"]
    finally:
        c.close()
