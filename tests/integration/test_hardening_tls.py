"""TLS hardening (issue 11, items 13 and 18): resumption chains, and the defaults as testssl.sh
rates them.

Item 13: a client uses each TLS 1.3 ticket once (RFC 8446 C.4). Gatehouse's ticket callback
answered "use, do not renew" for TLS 1.3 too, so a resumed connection got no new ticket and
the next connection was a full handshake again (s_client: New, Reused, then nothing to
resume from). Each resumption is chained here from the ticket the previous one received."""
import re

import pytest

from conftest import T
from test_tls import certs, tls_listener  # noqa: F401  (certs is a fixture)
from test_tls_clients import (BODY, WORKERS, assert_served, has_ticket, new_session,
                              respond_listener_config, s_client, session_text)


def ticket_of(path):
    """The ticket bytes of a stored session, as `openssl sess_id -text` prints them."""
    text = session_text(path)
    m = re.search(r"TLS session ticket:\n((?:\s+[0-9a-f]{4} - .*\n)+)", text)
    assert m, text
    return m.group(1)


def test_tls13_resumption_chain_gets_a_fresh_ticket_each_time(gatehouse, certs, tmp_path):
    """New, then Reused three times, each from the ticket the connection before received.
    Four workers: the links land on different workers, which share the ticket keys."""
    gh = gatehouse(respond_listener_config(tls_listener(certs), workers=WORKERS))
    sess = [tmp_path / f"s{i}.pem" for i in range(4)]
    assert_served(new_session(gh.port, sess[0], "-tls1_3"), "TLSv1.3")
    seen = {ticket_of(sess[0])}
    for prev, nxt in zip(sess, sess[1:]):
        r = s_client(gh.port, "-tls1_3", "-sess_in", prev, "-sess_out", nxt)
        assert_served(r, "TLSv1.3")
        assert r.kind == "Reused", r
        # s_client writes -sess_out only when the server sent a ticket on this connection
        assert nxt.exists() and has_ticket(nxt), f"no ticket on a resumed connection: {r}"
        ticket = ticket_of(nxt)
        assert ticket not in seen, "the same ticket again, not a fresh one"
        seen.add(ticket)


def test_tls13_renewed_ticket_keeps_its_server_name(gatehouse, certs, tmp_path):
    """A ticket issued on a resumed connection is bound to the name of the first handshake,
    as the first ticket was: offered for another name, it gets a full handshake."""
    gh = gatehouse(respond_listener_config(tls_listener(certs)))
    first, second = tmp_path / "s1.pem", tmp_path / "s2.pem"
    new_session(gh.port, first, "-tls1_3", sni="main.example")
    r = s_client(gh.port, "-tls1_3", "-sess_in", first, "-sess_out", second, sni="main.example")
    assert r.kind == "Reused", r
    assert second.exists(), r
    other = s_client(gh.port, "-tls1_3", "-sess_in", second, sni="other.example",
                     request=b"GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n")
    assert other.kind == "New", other
    assert "CN = other.example" in other.stdout, other


@pytest.mark.parametrize("no_ticket", [False, True], ids=["ticket", "cache"])
def test_tls12_resumes_again_and_again(gatehouse, certs, tmp_path, no_ticket):
    """TLS 1.2 clients keep their session: a ticket (or a cached session ID) resumes every
    connection until it expires, with or without a renewed ticket."""
    gh = gatehouse(respond_listener_config(tls_listener(certs), workers=WORKERS))
    opts = ["-tls1_2"] + (["-no_ticket"] if no_ticket else [])
    sess = tmp_path / "s.pem"
    assert_served(new_session(gh.port, sess, *opts), "TLSv1.2")
    assert has_ticket(sess) != no_ticket, session_text(sess)
    for _ in range(3):
        r = s_client(gh.port, *opts, "-sess_in", sess)
        assert_served(r, "TLSv1.2")
        assert r.kind == "Reused", r
        assert BODY in r.stdout
