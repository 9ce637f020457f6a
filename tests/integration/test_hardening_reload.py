"""Issue 11 item 5: a reload that adds, drops or reorders listeners.

Listeners are known by their address, never by their place in the file: after SIGHUP every
socket that stays keeps serving its own listener's (new) settings, new listeners are opened
while running, dropped ones are closed, and nothing in flight is lost. Before the fix the
running sockets took the settings of whatever listener was now at their position."""

import signal
import socket
import threading

from conftest import H1, T, free_port, get


def respond_site(name, body):
    return {"name": name, "hosts": [f"{name}.test"], "routes": [
        {"path": "/delay", "proxy": "app"},
        {"path": "/", "respond": {"body": body}},
    ]}


def config(backend, listen, admin_port, version):
    return {
        "workers": 2,
        "shutdown_timeout": "5s",
        "logs": {"access": "stdout", "format": "combined", "error": "stderr", "level": "info"},
        "upstreams": {"app": {"servers": [backend.address], "read_timeout": "10s"}},
        "sites": [respond_site("public", f"public-{version}\n"),
                  respond_site("internal", f"internal-{version}\n"),
                  respond_site("fresh", f"fresh-{version}\n")],
        "listen": [{"address": f"127.0.0.1:{port}", "sites": [site]} for port, site in listen],
        "admin": {"address": f"127.0.0.1:{admin_port}"},
    }


class InFlight:
    """A slow request on its own connection, in a thread; .response or .error when done."""

    def __init__(self, port, target, host):
        self.response = self.error = None
        self.t = threading.Thread(target=self._run, args=(port, target, host), daemon=True)
        self.t.start()

    def _run(self, port, target, host):
        try:
            self.response = get(port, target, host=host)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e

    def join(self, timeout=15):
        self.t.join(T(timeout))
        assert not self.t.is_alive(), "request still running"
        return self.response


def body(port, site, target="/"):
    """The body `port` answers for a request to `site`; None when it serves no such site."""
    r = get(port, target, host=f"{site}.test")
    return r.body if r.status == 200 else None


def serves(port, site, version):
    """`port` serves `site` (with the snapshot of `version`) and no other site."""
    others = [s for s in ("public", "internal", "fresh") if s != site]
    return body(port, site) == f"{site}-{version}\n".encode() and \
        all(body(port, o) is None for o in others)


def refused(port):
    s = socket.socket()
    s.settimeout(T(2))
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


def reload(gh, since_regex):
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    return gh.wait_err(since_regex, since=mark, timeout=10), mark


def admin_status(port):
    r = get(port, "/status", host="127.0.0.1")
    return r.status == 200 and isinstance(r.json(), dict)


def test_reload_matches_listeners_by_address(backend, gatehouse):
    pa, pb, pr, pd, pn = (free_port() for _ in range(5))
    gh = gatehouse(config(backend, [(pa, "public"), (pb, "internal"), (pr, "public")], pd, 1))
    assert serves(pa, "public", 1) and serves(pb, "internal", 1) and serves(pr, "public", 1)
    assert admin_status(pd)

    # Keep-alive connections opened before the reload, one per listener.
    ka = {"a": H1(pa), "b": H1(pb), "r": H1(pr)}
    assert ka["a"].request(host="public.test").body == b"public-1\n"
    assert ka["b"].request(host="internal.test").body == b"internal-1\n"
    assert ka["r"].request(host="public.test").body == b"public-1\n"
    # Requests in flight across the reload, on a listener that stays and on one that goes.
    slow_a = InFlight(pa, "/delay?ms=1500", "public.test")
    slow_r = InFlight(pr, "/delay?ms=1500", "public.test")
    st = backend.wait_for(lambda s: sum(r[2] == "/delay?ms=1500" for r in s.requests) >= 2)
    assert sum(r[2] == "/delay?ms=1500" for r in st.requests) >= 2, "slow requests not started"

    # A new listener first, the other two swapped, the third dropped: no one keeps its place.
    gh.write_config(config(backend, [(pn, "fresh"), (pb, "internal"), (pa, "public")], pd, 2))
    _, mark = reload(gh, r"\[info\] configuration reloaded")

    # Each port serves its own listener's sites, with the new snapshot; two workers, so new
    # connections land on either worker's socket.
    for _ in range(4):
        assert serves(pa, "public", 2)
        assert serves(pb, "internal", 2)
        assert serves(pn, "fresh", 2)
        assert admin_status(pd)
    # Connections from before the reload take their own listener's new settings.
    assert ka["a"].request(host="public.test").body == b"public-2\n"
    assert ka["a"].request(host="fresh.test").status == 400
    assert ka["b"].request(host="internal.test").body == b"internal-2\n"
    # The dropped listener: no new connections; its idle keep-alive connection is closed.
    assert refused(pr)
    assert ka["r"].closed_by_peer(timeout=5)
    for c in ka.values():
        c.close()
    # Nothing in flight was lost, on either listener.
    for slow in (slow_a, slow_r):
        r = slow.join()
        assert slow.error is None and r.status == 200, (slow.error, r)
    lines = "\n".join(gh.err_lines(mark))
    assert f"listening on 127.0.0.1:{pn}" in lines, lines
    assert f"no longer listening on 127.0.0.1:{pr}" in lines, lines
    assert "after a restart" not in lines, lines


def test_reload_that_cannot_open_a_listener_changes_nothing(backend, gatehouse):
    pa, pb, pd = free_port(), free_port(), free_port()
    gh = gatehouse(config(backend, [(pa, "public"), (pb, "internal")], pd, 1))
    # A port held by another socket (without SO_REUSEPORT): the new listener cannot bind.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    try:
        gh.write_config(config(backend, [(taken, "fresh"), (pb, "public")], pd, 2))
        _, mark = reload(gh, r"reload failed, keeping the running configuration")
        lines = "\n".join(gh.err_lines(mark))
        assert f"cannot listen on 127.0.0.1:{taken}" in lines, lines
        assert "configuration reloaded" not in lines, lines
        # The old configuration, whole: both listeners, their sites, the old snapshot.
        for _ in range(4):
            assert serves(pa, "public", 1)
            assert serves(pb, "internal", 1)
    finally:
        holder.close()
    # A later good reload still works.
    gh.write_config(config(backend, [(pb, "public"), (pa, "internal")], pd, 3))
    reload(gh, r"\[info\] configuration reloaded")
    for _ in range(4):
        assert serves(pa, "internal", 3)
        assert serves(pb, "public", 3)


def test_reload_that_inserts_a_listener_keeps_the_admin_port_admin(backend, gatehouse):
    """The issue's case: the admin listener is last in the snapshot, so inserting a listener
    moved it; before the fix the admin port then served the public site."""
    pa, pd, pn = free_port(), free_port(), free_port()
    gh = gatehouse(config(backend, [(pa, "public")], pd, 1))
    assert admin_status(pd)
    gh.write_config(config(backend, [(pn, "internal"), (pa, "public")], pd, 2))
    reload(gh, r"\[info\] configuration reloaded")
    for _ in range(4):
        assert admin_status(pd)
        assert body(pd, "public") is None
        assert serves(pa, "public", 2)
        assert serves(pn, "internal", 2)
