"""Passive health counts the statuses of a failing application (issue 11, item 14): 500, 502,
503 and 504 by default, or the upstream's `passive_health.statuses`.

The failing server is a real backend switched by its control port (backend.py
`/misbehave?status=500`): it answers every request with that status."""
from conftest import H1, get, wait_until
from test_balance import balance_config


def answer_everything_with(backend, status):
    with H1(backend.control_port) as c:
        assert c.request("GET", f"/misbehave?status={status}").status == 200


def statuses_of(gh, n):
    return [get(gh.port, f"/echo?n={i}").status for i in range(n)]


def test_server_answering_500_to_everything_is_ejected(gatehouse, backend_factory):
    good, bad = backend_factory(), backend_factory()
    answer_everything_with(bad, 500)
    gh = gatehouse(balance_config([good.address, bad.address],
                                  {"passive_health": {"failures": 3, "eject": "30s"}}, workers=1))
    seen = statuses_of(gh, 30)
    # Round robin sends every other request to the bad server until its third 500 in a row
    # ejects it; from then on the good one serves everything.
    assert seen.count(500) == 3, seen
    assert seen[-10:] == [200] * 10, seen
    assert wait_until(lambda: "ejected" in gh.stderr_text(), timeout=3), gh.stderr_text()
    line = next(l for l in gh.stderr_text().splitlines() if "ejected" in l)
    assert bad.address in line and "answered 500" in line, line


def test_statuses_list_replaces_the_default(gatehouse, backend_factory):
    """With `statuses: [429]`, 500 is an answer like any other (the server stays in rotation)
    and 429 is what ejects."""
    good, bad = backend_factory(), backend_factory()
    answer_everything_with(bad, 500)
    ph = {"passive_health": {"failures": 3, "eject": "30s", "statuses": [429]}}
    gh = gatehouse(balance_config([good.address, bad.address], ph, workers=1))
    seen = statuses_of(gh, 20)
    assert seen.count(500) == 10, seen
    assert "ejected" not in gh.stderr_text()
    answer_everything_with(bad, 429)
    seen = statuses_of(gh, 20)
    assert seen.count(429) == 3, seen
    assert wait_until(lambda: "ejected" in gh.stderr_text(), timeout=3), gh.stderr_text()


def test_empty_statuses_counts_no_answer(gatehouse, backend_factory):
    good, bad = backend_factory(), backend_factory()
    answer_everything_with(bad, 503)
    ph = {"passive_health": {"failures": 2, "eject": "30s", "statuses": []}}
    gh = gatehouse(balance_config([good.address, bad.address], ph, workers=1))
    seen = statuses_of(gh, 10)
    assert seen.count(503) == 5, seen
    assert "ejected" not in gh.stderr_text()
