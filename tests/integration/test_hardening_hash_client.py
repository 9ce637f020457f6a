"""`hash_key: client_ip` behind a trusted proxy (issue 11, item 21): the key is the client the
proxy forwards for (the rightmost X-Forwarded-For entry that is not a trusted proxy), not the
proxy's own address; from an untrusted peer X-Forwarded-For is ignored.

Where each client address hashes to is learnt by connecting from it directly (any 127.x.y.z
is ours on Linux, and only 127.0.0.1 is trusted here), then compared with where the same
address lands when a trusted proxy (127.0.0.1) forwards for it."""
import pytest

from test_balance import _connect_from, balance_config

CLIENTS = [f"127.0.0.{k}" for k in range(2, 26)]


@pytest.fixture
def hashed(gatehouse, backend_factory):
    bs = [backend_factory() for _ in range(3)]
    cfg = balance_config([b.address for b in bs], {"balance": "hash", "hash_key": "client_ip"},
                         workers=1, trusted_proxies=["127.0.0.1/32"])
    gh = gatehouse(cfg)

    def served(source, xff=None, tag=""):
        headers = [("X-Forwarded-For", xff)] if xff else []
        with _connect_from(gh.port, source) as c:
            r = c.request("GET", f"/echo?tag={tag}", headers=headers)
        assert r.status == 200, r
        return r.json()["port"]

    return served


def test_trusted_proxy_forwarded_client_is_hashed(hashed):
    direct = {ip: hashed(ip) for ip in CLIENTS}
    assert len(set(direct.values())) > 1, "every client on one server: the test proves nothing"
    for ip in CLIENTS:
        assert hashed("127.0.0.1", ip) == direct[ip], ip
        # A client's own claim to the left of the trusted proxy's entry changes nothing, and
        # neither does a port or a chain of trusted proxies to the right.
        assert hashed("127.0.0.1", f"6.6.6.6, {ip}") == direct[ip], ip
        assert hashed("127.0.0.1", f"{ip}:4711, 127.0.0.1") == direct[ip], ip


def test_untrusted_peer_forwarded_for_is_ignored(hashed):
    direct = {ip: hashed(ip) for ip in CLIENTS}
    peer = CLIENTS[0]
    # Claims naming clients that hash elsewhere: the untrusted peer's own address still rules.
    elsewhere = [ip for ip in CLIENTS if direct[ip] != direct[peer]]
    assert elsewhere, "every client on one server: the test proves nothing"
    for ip in elsewhere:
        assert hashed(peer, ip) == direct[peer], ip
