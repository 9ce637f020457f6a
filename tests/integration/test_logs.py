"""Access log (combined and JSON, stdout / file / off) and error log (format, file, level)."""

import json
import re
import signal
import socket
from datetime import datetime, timezone

from conftest import H1, free_port, get, proxy_config, wait_until

COMBINED = re.compile(
    r'^(?P<client>\S+) - - \[(?P<time>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" '
    r'"(?P<ua>[^"]*)" upstream=(?P<upstream>\S+) upstream_time=(?P<upstream_time>\S+) '
    r'request_time=(?P<request_time>\d+\.\d{3})$')
ERRLOG = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[(debug|info|warn|error)\] \S")


def config(backend, **over):
    return proxy_config(backend, routes=[
        {"path": "/", "proxy": "app"},
        {"path": "/health", "respond": {"body": "ok\n"}},
    ], **over)


def one_line(gh, mark):
    return gh.wait_access(1, since=mark)[0]


def test_combined_format_for_a_proxied_request(backend, gatehouse):
    gh = gatehouse(config(backend))
    mark = gh.out_mark()
    r = get(gh.port, "/delay?ms=300", headers=[("Referer", "http://ref.example/a"),
                                              ("User-Agent", "test-agent/1.0")])
    line = one_line(gh, mark)
    m = COMBINED.match(line)
    assert m, line
    assert m["client"] == "127.0.0.1"
    assert m["request"] == "GET /delay?ms=300 HTTP/1.1"
    assert int(m["status"]) == 200 and int(m["bytes"]) == len(r.body)
    assert (m["referer"], m["ua"]) == ("http://ref.example/a", "test-agent/1.0")
    assert m["upstream"] == backend.address
    assert float(m["upstream_time"]) >= 0.29 and float(m["request_time"]) >= 0.29
    when = datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z")
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 60


def test_combined_format_for_local_responses(backend, gatehouse):
    gh = gatehouse(config(backend))
    mark = gh.out_mark()
    get(gh.port, "/health")
    m = COMBINED.match(one_line(gh, mark))
    assert m and m["request"] == "GET /health HTTP/1.1" and m["bytes"] == "3"
    assert (m["upstream"], m["upstream_time"]) == ("-", "-")
    assert (m["referer"], m["ua"]) == ("-", "-")


def test_bytes_is_body_bytes_sent(backend, gatehouse):
    gh = gatehouse(config(backend))
    mark = gh.out_mark()
    with H1(gh.port) as c:
        c.request("GET", "/bytes?n=12345&chunked=1&chunk=1000")
        c.request("HEAD", "/bytes?n=999")
        c.request("GET", "/status/204")
    lines = gh.wait_access(3, since=mark)
    assert [COMBINED.match(l)["bytes"] for l in lines] == ["12345", "0", "0"]
    assert [COMBINED.match(l)["status"] for l in lines] == ["200", "200", "204"]


def test_errors_are_logged_too(backend, gatehouse):
    gh = gatehouse(config(backend, hosts=["example.com"]))
    mark = gh.out_mark()
    assert get(gh.port, "/x", host="nope.example").status == 400
    m = COMBINED.match(one_line(gh, mark))
    assert m and m["status"] == "400" and m["upstream"] == "-"


def test_json_format(backend, gatehouse):
    gh = gatehouse(config(backend, logs={"access": "stdout", "format": "json",
                                         "error": "stderr", "level": "info"}))
    mark = gh.out_mark()
    get(gh.port, "/echo?x=1", headers=[("User-Agent", 'quote" and \\ backslash')])
    get(gh.port, "/health")
    a, b = (json.loads(l) for l in gh.wait_access(2, since=mark))
    keys = {"time", "client", "method", "target", "protocol", "status", "bytes", "referer",
            "user_agent", "upstream", "upstream_time", "request_time"}
    assert keys <= set(a) and keys <= set(b)
    assert (a["client"], a["method"], a["target"], a["protocol"]) == \
        ("127.0.0.1", "GET", "/echo?x=1", "HTTP/1.1")
    assert int(a["status"]) == 200 and int(a["bytes"]) > 0
    assert a["user_agent"] == 'quote" and \\ backslash'
    assert a["upstream"] == backend.address
    assert float(a["upstream_time"]) >= 0 and float(a["request_time"]) >= 0
    assert b["upstream"] in (None, "-", "") and b["target"] == "/health"


def test_access_log_to_file(backend, gatehouse, tmp_path):
    path = tmp_path / "access.log"
    gh = gatehouse(config(backend, logs={"access": str(path), "error": "stderr"}))
    get(gh.port, "/health")
    assert wait_until(lambda: path.exists() and "GET /health HTTP/1.1" in path.read_text())
    assert COMBINED.match(path.read_text().splitlines()[0])
    assert gh.stop() == 0
    assert gh.access_lines() == []


def test_access_log_off(backend, gatehouse):
    gh = gatehouse(config(backend, logs={"access": "off", "error": "stderr"}))
    assert get(gh.port, "/health").status == 200
    assert gh.stop() == 0
    assert gh.access_lines() == []


def test_error_log_format(backend, gatehouse):
    gh = gatehouse(config(backend))
    get(gh.port, "/health")
    assert gh.stop() == 0
    lines = [l for l in gh.err_lines() if l.strip()]
    assert lines and all(ERRLOG.match(l) for l in lines), lines


def started_on(port):
    def ok():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    assert wait_until(ok, timeout=10), "gatehouse did not start listening"


def test_error_log_to_file(backend, gatehouse, tmp_path):
    path = tmp_path / "error.log"
    port = free_port()
    gh = gatehouse(config(backend, listen=[{"address": f"127.0.0.1:{port}"}],
                          logs={"access": "stdout", "error": str(path)}), wait_ready=False)
    started_on(port)
    assert wait_until(lambda: path.exists() and "ready:" in path.read_text())
    text = path.read_text()
    assert f"listening on 127.0.0.1:{port}" in text
    assert all(ERRLOG.match(l) for l in text.splitlines() if l), text
    assert gh.stop() == 0
    assert not [l for l in gh.err_lines() if "[info]" in l]


def test_error_log_level_filters(backend, gatehouse):
    port = free_port()
    gh = gatehouse(config(backend, listen=[{"address": f"127.0.0.1:{port}"}],
                          logs={"access": "stdout", "error": "stderr", "level": "warn"}),
                   wait_ready=False)
    started_on(port)
    with H1(port) as c:      # an info-level event: a malformed request
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n")
        assert c.read_response().status == 400
    gh.send_signal(signal.SIGHUP)   # `configuration reloaded` is info too
    assert get(port, "/health").status == 200
    assert gh.stop() == 0
    assert not [l for l in gh.err_lines() if "[info]" in l or "[debug]" in l], gh.err_lines()
