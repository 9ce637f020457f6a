"""Issue 11 item 7: the admin listener answers only IP-literal hosts and the names in
`admin.hosts` (421 Misdirected Request otherwise), so a web page using DNS rebinding (its own
name pointed at the admin address) cannot read /status."""

import pytest

from conftest import H1, base_config, proxy_config


def status(port, host, target="/status", version="HTTP/1.1"):
    with H1(port) as c:
        return c.request("GET", target, host=host, version=version)


def admin_config(backend, **admin):
    cfg = proxy_config(backend)
    cfg["admin"] = dict({"address": "127.0.0.1:0"}, **admin)
    return cfg


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "localhost",
                                  "localhost:{port}", "127.0.0.1.nip.io", "test"])
def test_rebinding_names_get_421(gatehouse, backend, host):
    gh = gatehouse(admin_config(backend))
    port = gh.ports[-1]
    r = status(port, host.format(port=port))
    assert r.status == 421, r
    assert b"upstreams" not in r.body
    gh.wait_err(r"421: Host '.*' is not an IP address or in admin\.hosts")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:{port}", "[::1]", "[::1]:{port}",
                                  "10.0.0.1"])
def test_ip_literals_are_answered(gatehouse, backend, host):
    gh = gatehouse(admin_config(backend))
    port = gh.ports[-1]
    r = status(port, host.format(port=port))
    assert r.status == 200 and "upstreams" in r.json(), r


def test_missing_host_gets_421(gatehouse, backend):
    gh = gatehouse(admin_config(backend))
    r = status(gh.ports[-1], None, version="HTTP/1.0")
    assert r.status == 421, r


def test_listed_names_are_answered(gatehouse, backend):
    gh = gatehouse(admin_config(backend, hosts=["status.internal", "localhost"]))
    port = gh.ports[-1]
    for host in ("status.internal", "Status.Internal:%d" % port, "localhost", "127.0.0.1"):
        r = status(port, host)
        assert r.status == 200, (host, r)
    for host in ("evil.example", "internal", "status.internal.evil.example"):
        assert status(port, host).status == 421, host
    # Sites are not concerned: the main listener answers any host its sites do.
    assert status(gh.port, "evil.example", "/echo").status == 200
