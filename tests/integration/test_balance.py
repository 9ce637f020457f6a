"""Upstream pools with several real backends: weighted round robin shares and smoothness, least
requests and power of two choices, consistent hashing on each kind of key (and how few keys move
when a server is added), backups, max_conns and the queue (shared by all workers), retries on
another server, passive ejection, and a backend killed under load with zero failed idempotent
requests. More on retries in test_retry.py."""
import json
import signal
import socket
import threading
import time

import pytest

from conftest import H1, T, base_config, get, refused_port, wait_until


def balance_config(servers, upstream=None, workers=2, **over):
    cfg = base_config(workers=workers, **over)
    up = {"servers": servers, "connect_timeout": "2s", "read_timeout": "10s"}
    up.update(upstream or {})
    cfg["upstreams"] = {"app": up}
    cfg["sites"] = [{"name": "main", "hosts": ["*"], "routes": [{"path": "/", "proxy": "app"}]}]
    return cfg


def served_by(resp):
    assert resp.status == 200, resp
    return json.loads(resp.body)["port"]


def test_weighted_round_robin_shares_and_never_three_in_a_row(gatehouse, backend_factory):
    bs = [backend_factory() for _ in range(3)]
    servers = [{"address": b.address, "weight": w} for b, w in zip(bs, (1, 2, 3))]
    gh = gatehouse(balance_config(servers, workers=1))
    order = []
    with H1(gh.port) as c:
        for _ in range(300):
            order.append(served_by(c.request("GET", "/echo")))
    share = {b.port: order.count(b.port) / len(order) for b in bs}
    for b, w in zip(bs, (1, 2, 3)):
        assert abs(share[b.port] - w / 6) <= 0.05, share
    runs = max(len(list(g)) for g in _groups(order))
    assert runs <= 2, order[:30]


def _groups(seq):
    import itertools
    return (list(g) for _, g in itertools.groupby(seq))


def test_shares_hold_with_several_workers(gatehouse, backend_factory):
    """State is shared: with 2 workers and a fresh connection per request (spread over both),
    the weights still hold."""
    bs = [backend_factory() for _ in range(2)]
    servers = [{"address": bs[0].address, "weight": 1}, {"address": bs[1].address, "weight": 3}]
    gh = gatehouse(balance_config(servers, workers=2))
    order = [served_by(get(gh.port, "/echo")) for _ in range(200)]
    assert abs(order.count(bs[1].port) / 200 - 0.75) <= 0.05, order.count(bs[1].port)


def picks_beside_a_slow_request(gh, bs, n):
    """Holds one 4 s request on some backend and makes up to n quick ones meanwhile. Returns
    the busy backend's port and the ports that served the quick requests; only those made while
    the slow one is surely in flight count (a loaded machine may take seconds for them)."""
    slow = {}
    t = threading.Thread(target=lambda: slow.update(r=get(gh.port, "/delay?ms=4000")))
    t.start()
    busy = wait_until(lambda: [b for b in bs if b.stats().requests], timeout=3)
    assert busy, "the slow request reached no backend"
    during = []
    for _ in range(n):
        if not t.is_alive():
            break
        during.append(served_by(get(gh.port, "/echo")))
    t.join()
    assert slow["r"].status == 200
    return busy[0].port, during


def test_least_requests_avoids_the_busy_server(gatehouse, backend_factory):
    bs = [backend_factory() for _ in range(2)]
    # One worker: with two, a quick request's next one can be picked on the other worker in
    # the microseconds before the first one's end is counted, a tie that may go either way.
    gh = gatehouse(balance_config([b.address for b in bs], {"balance": "least_requests"},
                                  workers=1))
    busy, during = picks_beside_a_slow_request(gh, bs, 6)
    assert during and busy not in during, (during, busy)


def test_hash_on_header_is_sticky_and_moves_few_keys_when_a_server_is_added(gatehouse,
                                                                            backend_factory):
    bs = [backend_factory() for _ in range(4)]
    up = {"balance": "hash", "hash_key": "header X-Tenant"}
    gh = gatehouse(balance_config([b.address for b in bs[:3]], up))
    keys = [f"tenant-{i}" for i in range(120)]

    def placement():
        out = {}
        with H1(gh.port) as c:
            for k in keys:
                out[k] = served_by(c.request("GET", "/echo", headers=[("X-Tenant", k)]))
        return out

    before = placement()
    assert placement() == before                         # sticky
    assert len(set(before.values())) == 3                # spread over all three
    gh.write_config(balance_config([b.address for b in bs], up))
    gh.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "configuration reloaded" in gh.stderr_text(), timeout=5)
    after = placement()
    moved = [k for k in keys if after[k] != before[k]]
    assert all(after[k] == bs[3].port for k in moved), "a key moved between old servers"
    assert 0.10 <= len(moved) / len(keys) <= 0.45, len(moved)


def test_backup_serves_only_when_primaries_are_down(gatehouse, backend_factory):
    primary, backup = backend_factory(), backend_factory()
    servers = [primary.address, {"address": backup.address, "backup": True}]
    gh = gatehouse(balance_config(servers, {"passive_health": {"failures": 1, "eject": "30s"}}))
    assert {served_by(get(gh.port, "/echo")) for _ in range(10)} == {primary.port}
    primary.stop()
    # The failed attempt on the primary is retried on the backup, and the primary ejected.
    assert {served_by(get(gh.port, "/echo")) for _ in range(10)} == {backup.port}


def test_connect_refused_is_retried_on_another_server(gatehouse, backend_factory):
    good = backend_factory()
    gh = gatehouse(balance_config([f"127.0.0.1:{refused_port()}", good.address],
                                  {"passive_health": {"failures": 0}}))
    statuses = [get(gh.port, "/echo").status for _ in range(20)]
    assert statuses == [200] * 20


def test_every_server_refusing_is_502_after_bounded_retries(gatehouse):
    gh = gatehouse(balance_config([f"127.0.0.1:{refused_port()}" for _ in range(3)],
                                  {"retries": 1}))
    r = get(gh.port, "/echo")
    assert r.status == 502
    # the first failure, its retry, and the final answer are each logged
    assert wait_until(lambda: gh.stderr_text().count("connect failed") >= 2, timeout=3), \
        gh.stderr_text()[-2000:]


def test_post_that_reached_a_server_is_not_retried(gatehouse, backend_factory):
    bs = [backend_factory() for _ in range(2)]
    gh = gatehouse(balance_config([b.address for b in bs]))
    r = get(gh.port, "/close-before-response", method="POST", body=b"x" * 100)
    assert r.status == 502
    assert sum(len(b.stats().requests) for b in bs) == 1


def test_max_conns_full_is_503(gatehouse, backend_factory):
    b = backend_factory()
    gh = gatehouse(balance_config([{"address": b.address, "max_conns": 1}]))
    slow = {}
    t = threading.Thread(target=lambda: slow.update(r=get(gh.port, "/delay?ms=1000")))
    t.start()
    assert wait_until(lambda: b.stats().requests, timeout=3)
    r = get(gh.port, "/echo")
    t.join()
    assert r.status == 503
    assert slow["r"].status == 200
    assert get(gh.port, "/echo").status == 200


def test_failing_server_is_ejected_and_logged(gatehouse, backend_factory):
    good, bad = backend_factory(), backend_factory()
    gh = gatehouse(balance_config([good.address, bad.address],
                                  {"passive_health": {"failures": 2, "eject": "30s"}}))
    bad.stop()
    for _ in range(10):
        assert get(gh.port, "/echo").status == 200
    assert wait_until(lambda: "ejected" in gh.stderr_text(), timeout=3), gh.stderr_text()
    assert bad.address in gh.stderr_text()


def test_killing_a_backend_under_load_fails_no_idempotent_request(gatehouse, backend_factory):
    bs = [backend_factory() for _ in range(2)]
    gh = gatehouse(balance_config([b.address for b in bs], workers=2))
    results, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                with H1(gh.port) as c:
                    for _ in range(20):
                        results.append(c.request("GET", "/echo").status)
            except OSError as e:
                results.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(T(0.7))
    bs[0].stop()
    time.sleep(T(1.0))
    stop.set()
    for t in threads:
        t.join(timeout=T(10))
    assert len(results) > 100
    bad = [r for r in results if r != 200]
    assert not bad, bad[:5]


def test_sticky_cookie_keeps_a_client_on_its_server(gatehouse, backend_factory):
    bs = [backend_factory() for _ in range(3)]
    gh = gatehouse(balance_config([b.address for b in bs], {"sticky": {"cookie": "gh_srv"}}))
    first = get(gh.port, "/echo")
    cookie = first.header("set-cookie")
    assert cookie and cookie.startswith("gh_srv=") and "HttpOnly" in cookie, first
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) == 16 and all(b.address.split(":")[0] not in token for b in bs)
    home = served_by(first)
    for _ in range(10):
        r = get(gh.port, "/echo", headers=[("Cookie", f"a=1; gh_srv={token}; b=2")])
        assert served_by(r) == home
        assert r.header("set-cookie") is None        # already right: not set again
    # Without the cookie, round robin goes on over all servers.
    assert len({served_by(get(gh.port, "/echo")) for _ in range(6)}) == 3


def test_sticky_server_down_moves_the_client_and_resets_the_cookie(gatehouse, backend_factory):
    bs = [backend_factory() for _ in range(2)]
    gh = gatehouse(balance_config([b.address for b in bs], {"sticky": {"cookie": "s"},
                                                            "passive_health": {"failures": 1}}))
    first = get(gh.port, "/echo")
    token = first.header("set-cookie").split(";")[0].split("=", 1)[1]
    home = served_by(first)
    next(b for b in bs if b.port == home).stop()
    r = get(gh.port, "/echo", headers=[("Cookie", f"s={token}")])
    assert served_by(r) != home
    assert r.header("set-cookie") and token not in r.header("set-cookie")


def test_queue_waits_for_a_free_server_then_times_out(gatehouse, backend_factory):
    b = backend_factory()
    gh = gatehouse(balance_config([{"address": b.address, "max_conns": 1}],
                                  {"queue": {"size": 5, "timeout": "3s"}}))
    results = {}
    slow = threading.Thread(target=lambda: results.update(slow=get(gh.port, "/delay?ms=800")))
    slow.start()
    assert wait_until(lambda: b.stats().requests, timeout=3)
    t0 = time.monotonic()
    queued = get(gh.port, "/echo")          # waits for the slow one to finish
    waited = time.monotonic() - t0
    slow.join()
    assert queued.status == 200 and results["slow"].status == 200
    assert waited >= 0.3, waited
    # A queue wait longer than its timeout is 503.
    gh2 = gatehouse(balance_config([{"address": b.address, "max_conns": 1}],
                                   {"queue": {"size": 5, "timeout": "300ms"}}))
    slow = threading.Thread(target=lambda: results.update(slow=get(gh2.port, "/delay?ms=1500")))
    slow.start()
    assert wait_until(lambda: len(b.stats().requests) >= 3, timeout=3)
    r = get(gh2.port, "/echo")
    slow.join()
    assert r.status == 503


class HungServer:
    """Accepts connections and reads requests, never answers: an app that hangs."""

    def __init__(self):
        self.lsn = socket.socket()
        self.lsn.bind(("127.0.0.1", 0))
        self.lsn.listen(64)
        self.address = "127.0.0.1:%d" % self.lsn.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsn.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.lsn.close()
        for c in self.conns:
            c.close()


def test_hanging_backend_is_ejected(gatehouse, backend_factory):
    """A server that accepts and never answers: its requests end in 504 at read_timeout (not
    retried: they were sent) and count as failures; after `failures` of them it is ejected and
    every later request goes to the healthy server."""
    good, hung = backend_factory(), HungServer()
    try:
        gh = gatehouse(balance_config([good.address, hung.address],
                                      {"read_timeout": "300ms",
                                       "passive_health": {"failures": 2, "eject": "30s"}},
                                      workers=1))
        codes = [get(gh.port, "/echo").status for _ in range(12)]
    finally:
        hung.close()
    assert codes.count(504) == 2, codes
    assert codes[-6:] == [200] * 6, codes
    assert "ejected" in gh.stderr_text() and hung.address in gh.stderr_text()


def test_draining_server_keeps_its_sticky_clients_and_gets_no_new_ones(gatehouse,
                                                                       backend_factory):
    """Rolling restart: mark a server `drain: true` and reload; clients it holds (by sticky
    cookie) stay until they leave, new clients go elsewhere, and /status says draining."""
    bs = [backend_factory() for _ in range(2)]
    up = {"sticky": {"cookie": "s"}}
    cfg = balance_config([b.address for b in bs], up)
    cfg["admin"] = {"address": "127.0.0.1:0", "hosts": ["test"]}  # the Host get() sends
    gh = gatehouse(cfg)
    first = get(gh.port, "/echo")
    home, token = served_by(first), first.header("set-cookie").split(";")[0].split("=", 1)[1]
    cfg["upstreams"]["app"]["servers"] = [
        {"address": b.address, "drain": b.port == home} for b in bs]
    gh.write_config(cfg)
    mark = gh.err_mark()
    gh.send_signal(signal.SIGHUP)
    gh.wait_err(r"configuration reloaded", since=mark)
    for _ in range(4):
        assert served_by(get(gh.port, "/echo", headers=[("Cookie", f"s={token}")])) == home
    assert {served_by(get(gh.port, "/echo")) for _ in range(6)} == {
        b.port for b in bs if b.port != home}
    with H1(gh.ports[-1]) as c:
        st = c.request("GET", "/status").json()
    states = {s["address"]: s["state"] for s in st["upstreams"][0]["servers"]}
    assert states[f"127.0.0.1:{home}"] == "draining", states


def test_retries_stop_at_retry_timeout(gatehouse):
    """Servers whose connects hang until connect_timeout (300 ms): with retry_timeout 500 ms
    the second attempt starts at ~300 ms, a third would start at ~600 ms, too late: 502 after
    two attempts, though `retries` allows five."""
    from conftest import blackhole_port
    with blackhole_port() as a, blackhole_port() as b, blackhole_port() as c:
        gh = gatehouse(balance_config([f"127.0.0.1:{p}" for p in (a, b, c)],
                                      {"connect_timeout": "300ms", "retries": 5,
                                       "retry_timeout": "500ms",
                                       "passive_health": {"failures": 0}}, workers=1))
        t0 = time.monotonic()
        r = get(gh.port, "/echo")
        took = time.monotonic() - t0
    assert r.status == 502
    assert 0.5 <= took < T(2.0), took
    assert wait_until(lambda: "connect timed out" in gh.stderr_text(), timeout=3)
    assert gh.stderr_text().count("retrying on another server") == 1, gh.stderr_text()[-2000:]


def test_power_of_two_avoids_the_busy_server(gatehouse, backend_factory):
    """Of two random candidates the one with fewer requests in flight wins: with three servers
    and one busy, the busy one is never picked (round robin would pick it every third time)."""
    bs = [backend_factory() for _ in range(3)]
    gh = gatehouse(balance_config([b.address for b in bs], {"balance": "power_of_two"},
                                  workers=1))
    busy, during = picks_beside_a_slow_request(gh, bs, 9)
    assert len(during) >= 3 and busy not in during, (during, busy)


def _connect_from(port, source):
    """An H1 client whose connection comes from `source` (any 127.x.y.z is ours on Linux)."""
    c = H1.__new__(H1)
    c.sock = socket.create_connection(("127.0.0.1", port), timeout=T(10),
                                      source_address=(source, 0))
    c.buf, c.eof = bytearray(), False
    return c


HASH_KEYS = {
    # hash_key -> how a request carries key k (target, headers, source address); the query,
    # the other cookies and the connection vary between the repeats and must not matter.
    "cookie tenant": lambda k, rep: (f"/echo?k={k}&rep={rep}",
                                     [("Cookie", f"a={rep}; tenant={k}; z=1")], "127.0.0.1"),
    "path": lambda k, rep: (f"/p/{k}?k={k}&rep={rep}", [], "127.0.0.1"),
    "client_ip": lambda k, rep: (f"/echo?k={k}&rep={rep}", [], f"127.0.0.{k + 2}"),
}


@pytest.mark.parametrize("hash_key", list(HASH_KEYS))
def test_hash_keeps_a_key_on_one_server_and_spreads_keys(gatehouse, backend_factory,
                                                         hash_key):
    """Every request with the same key goes to the same server (whichever worker takes it);
    different keys spread over all servers. Where a request went is read from the backends'
    own logs (a path like /p/7 is a 404 there, but still arrives)."""
    bs = [backend_factory() for _ in range(3)]
    gh = gatehouse(balance_config([b.address for b in bs],
                                  {"balance": "hash", "hash_key": hash_key}, workers=2))
    keys = range(29)
    # Each repeat in another order: round robin must not pass by placing key k on k % 3.
    orders = [list(keys), list(reversed(keys)), [k for k in keys if k % 2] + list(keys)[::2]]
    for rep, order in enumerate(orders):
        for k in order:
            target, headers, source = HASH_KEYS[hash_key](k, rep)
            with _connect_from(gh.port, source) as c:
                assert c.request("GET", target, headers=headers).status in (200, 404)
    placed = {}
    for b in bs:
        for target in [t for _, _, t in b.stats().requests]:
            k = int(target.split("k=")[1].split("&")[0])
            placed.setdefault(k, set()).add(b.port)
    assert sorted(placed) == list(keys)
    assert all(len(ports) == 1 for ports in placed.values()), placed
    assert len({next(iter(p)) for p in placed.values()}) == 3, placed


@pytest.mark.parametrize("workers,queue", [(1, True), (2, True), (2, False)])
def test_full_queue_or_max_conns_is_503_at_once_for_all_workers(gatehouse, backend_factory,
                                                                workers, queue):
    """max_conns 1 and a queue of 1: one request in flight, one waiting, and every further
    one is 503 at once, well before the queue timeout (10 s), not queued behind it. With two
    workers and a fresh connection per request (spread over both by SO_REUSEPORT) the same
    holds: the slot and the queue are the upstream's, not a worker's. Without a queue, every
    request beside the one in flight is 503."""
    b = backend_factory()
    up = {"read_timeout": "60s"}  # above the slow request's T(4), stretched under ASan
    if queue:
        up["queue"] = {"size": 1, "timeout": f"{T(10)}s"}  # outlasts the slow request
    cfg = balance_config([{"address": b.address, "max_conns": 1}], up, workers=workers)
    cfg["admin"] = {"address": "127.0.0.1:0", "hosts": ["test"]}  # the Host get() sends
    gh = gatehouse(cfg)
    res = {}
    slow = threading.Thread(
        target=lambda: res.update(slow=get(gh.port, f"/delay?ms={int(T(4) * 1000)}")))
    slow.start()
    assert wait_until(lambda: b.stats().requests, timeout=3)
    if queue:
        waiter = threading.Thread(target=lambda: res.update(queued=get(gh.port, "/echo?q")))
        waiter.start()

        def queued():
            with H1(gh.ports[-1]) as c:
                return c.request("GET", "/status").json()["upstreams"][0]["queued"] == 1
        assert wait_until(queued, timeout=3), "the second request never queued"
    during = []
    for i in range(10):
        t0 = time.monotonic()
        r = get(gh.port, f"/echo?n={i}")
        took = time.monotonic() - t0
        if not slow.is_alive():
            break          # too late to count: the slot may have been free
        during.append((i, r.status, round(took, 2)))
    slow.join()
    assert len(during) >= 4, during
    assert all(status == 503 and took < T(2) for _, status, took in during), during
    assert res["slow"].status == 200
    if queue:
        waiter.join()
        assert res["queued"].status == 200
    refused = {f"/echo?n={i}" for i, _, _ in during}
    assert not [t for _, _, t in b.stats().requests if t in refused]


def test_tunnel_keeps_flowing_while_draining_and_its_end_lets_the_process_exit(gatehouse,
                                                                               backend_factory):
    """Shutdown drains tunnels politely: after SIGTERM an open upgraded connection still
    carries bytes both ways, a half-close still crosses, and once the tunnel ended on its own
    terms the process exits at once, long before shutdown_timeout (10 s). (That it is cut at
    the deadline otherwise is in test_websocket.py.)"""
    b = backend_factory()
    gh = gatehouse(balance_config([b.address], workers=1, shutdown_timeout="10s"))
    s = socket.create_connection(("127.0.0.1", gh.port), timeout=T(5))
    try:
        s.sendall(H1.build("GET", "/upgrade-echo", [("Connection", "Upgrade"),
                                                   ("Upgrade", "echo")]))
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            assert d, buf
            buf += d
        head, _, buf = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head

        def echo(data):
            nonlocal buf
            s.sendall(data)
            while len(buf) < len(data):
                d = s.recv(65536)
                assert d, f"tunnel closed after {buf!r}"
                buf += d
            got, buf = buf[:len(data)], buf[len(data):]
            return got

        assert echo(b"before") == b"before"
        mark = gh.err_mark()
        t0 = time.monotonic()
        gh.send_signal(signal.SIGTERM)
        gh.wait_err(r"draining with 1 open tunnel", since=mark)
        for i in range(3):
            assert echo(b"during %d" % i) == b"during %d" % i
        s.sendall(b"last")
        s.shutdown(socket.SHUT_WR)        # the echo server answers our FIN with its own
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        assert buf == b"last"
    finally:
        s.close()
    assert gh.wait_exit(timeout=T(5)) == 0
    assert time.monotonic() - t0 < T(5), "the process waited for the grace period"
    assert "grace period over" not in "\n".join(gh.err_lines(mark))
