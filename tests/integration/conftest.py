"""Fixtures and helpers for Gatehouse integration tests.

- `backend` / `backend_factory`: the test backend (backend.py), each in its own process;
  its counters (connections, closed, dropped, bytes_sent, requests) via its control port.
- `gatehouse`: a factory; gatehouse(config) writes the YAML config to a tmp dir, starts the
  binary (env GATEHOUSE_BIN, default <repo>/build/gatehouse) with `-c FILE`, waits for its
  `listening on HOST:PORT` and `[info] ready:` lines, and returns a running `Gatehouse`.
  Every instance is killed at teardown; with env GH_SANITIZER set, teardown also fails the test
  if the binary reported an AddressSanitizer / UBSan error.
- `H1`: a raw-socket HTTP/1.1 client (exact bytes on the wire, keep-alive, pipelining).
- `proxy_config`, `base_config`, `to_yaml`, `refused_port`, `blackhole_port`, `RssSampler`.
"""

import contextlib
import itertools
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[2]
GATEHOUSE_BIN = os.environ.get("GATEHOUSE_BIN") or str(REPO / "build" / "gatehouse")
SANITIZER = bool(os.environ.get("GH_SANITIZER"))
SLOWDOWN = 3 if SANITIZER else 1          # timeouts stretch under ASan/UBSan
GiB = 1 << 30
MiB = 1 << 20
BIG = 64 * MiB if SANITIZER else GiB      # size of the "1 GiB" streaming tests
RSS_LIMIT_KIB = 64 * 1024
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
VERSION = (REPO / "VERSION").read_text().strip() if (REPO / "VERSION").exists() else "0.1.0"


def T(seconds):
    """A timeout, stretched when the binary is instrumented."""
    return seconds * SLOWDOWN


# ---- config ---------------------------------------------------------------------------------

def _scalar(v):
    if v is True or v is False:
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts, lists and scalars (what our configs need, nothing more)."""
    pad = "  " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 1))
            else:
                lines.append(f"{pad}{k}: {_scalar(v) if not isinstance(v, (dict, list)) else json.dumps(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                sub = to_yaml(item, indent + 1)
                lines.append(pad + "- " + sub[len(pad) + 2:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(obj))
    return "\n".join(lines)


def base_config(**over):
    cfg = {
        "workers": 1,
        "shutdown_timeout": "2s",   # bounds teardown when a test leaves a request stuck
        "logs": {"access": "stdout", "format": "combined", "error": "stderr", "level": "info"},
        "listen": [{"address": "127.0.0.1:0"}],
    }
    cfg.update(over)
    return cfg


def proxy_config(*backends, routes=None, upstream=None, hosts=("*",), **over):
    """Config proxying every path (or `routes`) of any host to upstream `app` = backends."""
    servers = [b if isinstance(b, str) else b.address for b in backends]
    cfg = base_config(**over)
    cfg["upstreams"] = {"app": dict({"servers": servers, "connect_timeout": "2s",
                                     "read_timeout": "10s"}, **(upstream or {}))}
    cfg["sites"] = [{"name": "main", "hosts": list(hosts),
                     "routes": routes or [{"path": "/", "proxy": "app"}]}]
    return cfg


def respond_config(routes, hosts=("*",), **over):
    cfg = base_config(**over)
    cfg["sites"] = [{"name": "main", "hosts": list(hosts), "routes": routes}]
    return cfg


# ---- ports ----------------------------------------------------------------------------------

def refused_port():
    """A port nobody listens on (bound, then closed): connecting is refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


free_port = refused_port


@contextlib.contextmanager
def blackhole_port():
    """A port whose SYNs are dropped: a listener with backlog 0 whose accept queue we fill and
    never drain, so a further connect() hangs until the caller's connect timeout."""
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(0)
    port = lsn.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", port))
            hangs = False
        except (socket.timeout, TimeoutError):
            hangs = True
        except OSError:
            hangs = False
        finally:
            probe.close()
        if not hangs:
            pytest.skip("cannot make a black-hole port on this kernel")
        yield port
    finally:
        for c in fillers:
            c.close()
        lsn.close()


# ---- a raw HTTP/1.1 client ------------------------------------------------------------------

class Response:
    def __init__(self, version, status, reason, headers, body=b"", interims=(), complete=True):
        self.version, self.status, self.reason = version, status, reason
        self.headers, self.body = headers, body
        self.interims = list(interims)    # [(status, headers)] of 1xx responses before this one
        self.complete = complete          # False: the connection closed before the body ended

    def header(self, name):
        vals = self.headers_named(name)
        return vals[0] if vals else None

    def headers_named(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:200]!r}>"


class H1:
    """Raw HTTP/1.1 client over one TCP connection."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=T(timeout))
        self.buf = bytearray()
        self.eof = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    @staticmethod
    def build(method="GET", target="/", headers=(), body=None, version="HTTP/1.1", host="test"):
        lines = [f"{method} {target} {version}"]
        if host is not None:
            lines.append(f"Host: {host}")
        lines += [f"{k}: {v}" for k, v in headers]
        names = {k.lower() for k, _ in headers}
        if body is not None and "content-length" not in names and "transfer-encoding" not in names:
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return data + (body or b"")

    def request(self, method="GET", target="/", headers=(), body=None, version="HTTP/1.1",
                host="test"):
        self.send(self.build(method, target, headers, body, version, host))
        return self.read_response(method)

    def _fill(self):
        try:
            d = self.sock.recv(1 << 16)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            raise EOFError
        self.buf += d

    def _until(self, sep):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + len(sep)]
                return out
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self):
        head = self._until(b"\r\n\r\n").decode("latin-1")
        line, *hlines = head.split("\r\n")
        version, status, reason = (line.split(" ", 2) + [""])[:3]
        headers = []
        for h in hlines:
            k, _, v = h.partition(":")
            headers.append((k, v.strip()))
        return version, int(status), reason, headers

    def read_response(self, method="GET"):
        """Read one response (after any 1xx). Raises EOFError if the connection closes first."""
        interims = []
        while True:
            version, status, reason, headers = self.read_head()
            if 100 <= status < 200 and status != 101:
                interims.append((status, headers))
                continue
            break
        r = Response(version, status, reason, headers, interims=interims)
        if method == "HEAD" or status in (204, 304):
            return r
        body = bytearray()
        try:
            if "chunked" in (r.header("transfer-encoding") or "").lower():
                while True:
                    size = int(self._until(b"\r\n").split(b";")[0], 16)
                    if size == 0:
                        while self._until(b"\r\n") != b"":
                            pass
                        break
                    body += self._exact(size)
                    self._until(b"\r\n")
            elif r.header("content-length") is not None:
                body += self._exact(int(r.header("content-length")))
            else:
                while True:
                    body += self.buf
                    self.buf.clear()
                    self._fill()
        except EOFError:
            r.complete = r.header("content-length") is None and \
                "chunked" not in (r.header("transfer-encoding") or "").lower()
            body += self.buf
            self.buf.clear()
        r.body = bytes(body)
        return r

    def closed_by_peer(self, timeout=3):
        """True if the peer closes the connection within timeout (data before the close is
        discarded)."""
        deadline = time.monotonic() + T(timeout)
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                d = self.sock.recv(1 << 16)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not d:
                return True
        return False


def get(port, target="/", host="test", headers=(), method="GET", body=None, version="HTTP/1.1"):
    """One request on a fresh connection."""
    with H1(port) as c:
        return c.request(method, target, headers, body, version, host)


def curl(*args, timeout=30, input_bytes=None):
    return subprocess.run(["curl", "-sS", *map(str, args)], capture_output=True,
                          timeout=T(timeout), input=input_bytes)


# ---- memory ---------------------------------------------------------------------------------

def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


class RssSampler:
    """Samples a process' VmRSS every 20 ms in a thread; `.max_kib` is the peak seen."""

    def __init__(self, pid):
        self.pid, self.max_kib, self.samples = pid, 0, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.max_kib = max(self.max_kib, rss_kib(self.pid))
            self.samples += 1
            self._stop.wait(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)
        self.max_kib = max(self.max_kib, rss_kib(self.pid))


# ---- the server under test ------------------------------------------------------------------

LISTEN_RE = re.compile(r"listening on (\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d+)")


class Gatehouse:
    def __init__(self, workdir, config, binary=GATEHOUSE_BIN):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.dir / "gatehouse.yaml"
        self.binary = binary
        self.proc = None
        self.out, self.err = [], []          # stdout / stderr lines, decoded, without newline
        self.cond = threading.Condition()
        self.readers = []
        self.ports = []
        self.write_config(config)

    # config
    def write_config(self, config):
        text = config if isinstance(config, str) else to_yaml(config) + "\n"
        self.config_path.write_text(text)

    # process
    def start(self, wait_ready=True):
        if not os.access(self.binary, os.X_OK):
            pytest.fail(f"gatehouse binary not found: {self.binary} (run make, or set GATEHOUSE_BIN)")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config_path)], cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        for pipe, lines, fname in ((self.proc.stdout, self.out, "stdout.log"),
                                   (self.proc.stderr, self.err, "stderr.log")):
            t = threading.Thread(target=self._reader, args=(pipe, lines, self.dir / fname),
                                 daemon=True)
            t.start()
            self.readers.append(t)
        if wait_ready:
            self.wait_ready()
        return self

    def _reader(self, pipe, lines, path):
        with open(path, "wb") as f:
            for raw in iter(pipe.readline, b""):
                f.write(raw)
                f.flush()
                with self.cond:
                    lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                    self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_ready(self, timeout=10):
        self.wait_err(r"\[info\] ready:", timeout=timeout, what="the `ready:` line")
        with self.cond:
            for line in self.err:
                m = LISTEN_RE.search(line)
                if m:
                    self.ports.append(int(m.group(2)))
        assert self.ports, "no `listening on HOST:PORT` line before `ready:`:\n" + self.stderr_text()

    @property
    def port(self):
        return self.ports[0]

    @property
    def pid(self):
        return self.proc.pid

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=10):
        """Waits for the process to exit; returns its exit status (fails the test on timeout)."""
        try:
            return self.proc.wait(timeout=T(timeout))
        except subprocess.TimeoutExpired:
            pytest.fail(f"gatehouse did not exit within {T(timeout)}s\n" + self.stderr_text())

    def stop(self, sig=signal.SIGTERM, timeout=10):
        self.send_signal(sig)
        return self.wait_exit(timeout)

    def cleanup(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=T(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for t in self.readers:
            t.join(timeout=5)
        for p in (self.proc.stdout, self.proc.stderr):
            p.close()

    def sanitizer_reports(self):
        with self.cond:
            return [l for l in self.out + self.err if any(m in l for m in SANITIZER_MARKERS)]

    # logs
    def stderr_text(self):
        with self.cond:
            return "\n".join(self.err[-60:])

    def err_mark(self):
        with self.cond:
            return len(self.err)

    def out_mark(self):
        with self.cond:
            return len(self.out)

    def _wait_line(self, lines, regex, timeout, since, what):
        rx = re.compile(regex)
        deadline = time.monotonic() + T(timeout)
        with self.cond:
            while True:
                for line in lines[since:]:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                exited = self.proc.poll() is not None and not any(t.is_alive() for t in self.readers)
                if left <= 0 or exited:
                    break
                self.cond.wait(min(left, 0.1))
        pytest.fail(f"no line matching {regex!r} ({what}) within {T(timeout)}s"
                    f"{' (process exited: %s)' % self.proc.returncode if self.proc.poll() is not None else ''}"
                    f"\n--- stderr:\n{self.stderr_text()}\n--- stdout:\n" + "\n".join(lines[-20:] if lines is self.out else self.out[-20:]))

    def wait_err(self, regex, timeout=5, since=0, what="error log"):
        return self._wait_line(self.err, regex, timeout, since, what)

    def wait_out(self, regex, timeout=5, since=0, what="stdout"):
        return self._wait_line(self.out, regex, timeout, since, what)

    def err_lines(self, since=0):
        with self.cond:
            return list(self.err[since:])

    def access_lines(self, since=0):
        """stdout lines (the access log when logs.access is stdout)."""
        with self.cond:
            return list(self.out[since:])

    def wait_access(self, count, since=0, timeout=5):
        deadline = time.monotonic() + T(timeout)
        with self.cond:
            while len(self.out) - since < count and time.monotonic() < deadline:
                self.cond.wait(0.05)
            lines = list(self.out[since:])
        assert len(lines) >= count, f"expected {count} access-log lines, got {lines}"
        return lines


# ---- the test backend, as a separate process -------------------------------------------------

BACKEND_PY = Path(__file__).resolve().parent / "backend.py"


class BackendProcess:
    """backend.py in its own process (so the test process' GIL never throttles it). Its
    counters come from its control port: .stats() or the properties below."""

    def __init__(self, logfile):
        self.logfile = Path(logfile)
        self.proc = None
        self.port = self.control_port = None

    def start(self, timeout=10):
        with open(self.logfile, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(BACKEND_PY), "--port", "0", "--control-port", "0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in iter(self.proc.stdout.readline, b"")],
                         daemon=True).start()
        deadline = time.monotonic() + timeout
        while self.port is None or self.control_port is None:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic())).decode()
            except queue.Empty:
                self.stop()
                pytest.fail("backend did not start: " + self.logfile.read_text())
            port = int(line.rsplit(":", 1)[1])
            if line.startswith("listening on"):
                self.port = port
            elif line.startswith("control on"):
                self.control_port = port
        return self.port

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def stats(self):
        with H1(self.control_port) as c:
            return types.SimpleNamespace(**c.request("GET", "/stats").json())

    connections = property(lambda self: self.stats().connections)  # accepted so far
    closed = property(lambda self: self.stats().closed)            # closed so far
    dropped = property(lambda self: self.stats().dropped)          # requests not answered
    bytes_sent = property(lambda self: self.stats().bytes_sent)    # body bytes sent by /bytes
    requests = property(lambda self: self.stats().requests)        # [[conn_id, method, target]]

    def wait_for(self, predicate, timeout=5):
        """Polls until predicate(stats) is true; returns the last stats (check it)."""
        deadline = time.monotonic() + T(timeout)
        while True:
            st = self.stats()
            if predicate(st) or time.monotonic() >= deadline:
                return st
            time.sleep(0.02)


# ---- fixtures -------------------------------------------------------------------------------

@pytest.fixture
def backend_factory(tmp_path):
    started = []

    def make(name="backend"):
        b = BackendProcess(tmp_path / f"{name}{len(started)}.log")
        started.append(b)
        b.start()
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def backend(backend_factory):
    return backend_factory()


@pytest.fixture
def gatehouse(tmp_path, request):
    """Factory: gatehouse(config, wait_ready=True) -> a started Gatehouse."""
    started = []

    def make(config, wait_ready=True, start=True):
        gh = Gatehouse(tmp_path / f"gh{len(started)}", config)
        started.append(gh)
        if start:
            gh.start(wait_ready=wait_ready)
        return gh

    yield make
    reports = []
    for gh in started:
        gh.cleanup()
        if SANITIZER:
            reports += gh.sanitizer_reports()
    if reports:
        pytest.fail("sanitizer reported errors:\n" + "\n".join(reports) +
                    "\n--- stderr:\n" + "\n".join(gh.stderr_text() for gh in started))


@pytest.fixture
def proxied(backend, gatehouse):
    """A Gatehouse proxying everything to one backend: returns (gatehouse, backend)."""
    return gatehouse(proxy_config(backend)), backend


def wait_until(predicate, timeout=5, interval=0.02):
    """Polls predicate() until true or timeout; returns its last value."""
    deadline = time.monotonic() + T(timeout)
    while True:
        v = predicate()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---- edge semantics (test_edge_*.py) ---------------------------------------------------------

EDGE_HOST = "ci.example.com"


def edge_config(backend, routes=None, hosts=(EDGE_HOST,), site=None, sites=None, upstream=None,
                **over):
    """One upstream `app` = backend; one site `public` (hosts, routes, plus the keys in `site`),
    or the given `sites` list instead."""
    cfg = base_config(**over)
    cfg["upstreams"] = {"app": dict({"servers": [backend.address], "connect_timeout": "2s",
                                     "read_timeout": "10s"}, **(upstream or {}))}
    if sites is None:
        s = {"name": "public", "hosts": list(hosts),
             "routes": routes or [{"path": "/", "proxy": "app"}]}
        s.update(site or {})
        sites = [s]
    cfg["sites"] = sites
    return cfg


def header_values(headers, name):
    """Values of header `name` (any case) in a [[name, value], ...] list such as /echo's."""
    return [v for k, v in headers if k.lower() == name.lower()]


_edge_probe = itertools.count()


def edge_env(tmp_path_factory, name, limits):
    """A module's Gatehouse in front of one backend on the edge site, as a generator for a
    module-scoped fixture (`yield from edge_env(...)`): yields (gatehouse, backend)."""
    yield from backend_env(tmp_path_factory, name, lambda be: edge_config(
        be, routes=[{"path": "/", "proxy": "app"}], limits=limits))


def backend_env(tmp_path_factory, name, make_config):
    """A module's Gatehouse running make_config(backend) in front of one backend, as a generator
    for a module-scoped fixture: yields (gatehouse, backend), checks sanitizer reports at the end."""
    d = tmp_path_factory.mktemp(name)
    be = BackendProcess(d / "backend.log")
    be.start()
    gh = Gatehouse(d / "gh", make_config(be))
    try:
        gh.start()
        yield gh, be
    finally:
        gh.cleanup()
        be.stop()
    if SANITIZER:
        assert not gh.sanitizer_reports(), gh.sanitizer_reports()


def edge_probe(gh):
    """A fresh GET through the edge site after a case: Gatehouse still serves. Returns the
    unique target, so the caller can find it in the backend's log."""
    tag = f"/echo?probe={next(_edge_probe)}"
    with H1(gh.port) as c:
        r = c.request("GET", tag, host=EDGE_HOST)
    assert r.status == 200, f"gatehouse unwell after the case: {r}"
    return tag
