#!/usr/bin/env python3
"""A small HTTP/1.1 app for the supervised-app tests (test_apps*.py), started by Gatehouse.

Listens where Gatehouse says: GATEHOUSE_SOCKET (a Unix socket path) or 127.0.0.1:$PORT (or the
variable named by APP_PORT_ENV). Every request must carry X-Gatehouse-App-Token equal to
GATEHOUSE_APP_TOKEN, else 403: the pairing check an app does to refuse what did not come
through the proxy.

Environment knobs:
  APP_VERSION          returned in every answer (tells blue-green versions apart)
  APP_START_DELAY      seconds to sleep before listening (a slow start)
  APP_EXIT_AT_START    exit with this status before listening (a crash loop)
  APP_NOT_READY        /health answers 503 for ever (never ready)
  APP_DELAY            seconds every request waits before answering (requests in flight)

Endpoints:
  /health   200 "ok" (the readiness path)
  /pid      JSON: pid, ppid, pgid, fds (the entries of /proc/self/fd with their targets),
            version, token_seen (the header value), env (selected variables)
  /crash    exits at once with status 3 (no answer)
  /hang     never answers
  /slow?s=N answers after N seconds
  anything  200 "hello from <version> pid <pid>"
"""
import json
import os
import socket
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

VERSION = os.environ.get("APP_VERSION", "v1")
TOKEN = os.environ.get("GATEHOUSE_APP_TOKEN", "")


def fds():
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[name] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body are two writes: without TCP_NODELAY every answer waits for a delayed ACK.
    disable_nagle_algorithm = not os.environ.get("GATEHOUSE_SOCKET")

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, ctype="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Version", VERSION)
        self.send_header("X-App-Pid", str(os.getpid()))
        # Head and body in one write, as a small answer usually is: an instance killed with -9
        # then dies before its answer or after it, never with half of it sent (no proxy can
        # save an answer its client already has the head of).
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()

    def do_GET(self):
        url = urlsplit(self.path)
        token = self.headers.get("X-Gatehouse-App-Token")
        if token != TOKEN:
            self.reply(403, f"bad token {token!r}\n")
            return
        delay = float(os.environ.get("APP_DELAY", "0") or 0)
        if delay:
            time.sleep(delay)
        if url.path == "/health":
            if os.environ.get("APP_NOT_READY"):
                self.reply(503, "not ready\n")
            else:
                self.reply(200, "ok\n")
        elif url.path == "/pid":
            env = {k: os.environ.get(k) for k in ("PORT", "ASPNETCORE_URLS", "GATEHOUSE_SOCKET",
                                                  "GATEHOUSE_APP_NAME", "GATEHOUSE_APP_INSTANCE",
                                                  "APP_VERSION", "MY_PORT")}
            self.reply(200, json.dumps({"pid": os.getpid(), "ppid": os.getppid(),
                                        "pgid": os.getpgid(0), "fds": fds(), "version": VERSION,
                                        "token_seen": token, "env": env,
                                        "cwd": os.getcwd(), "uid": os.getuid(),
                                        "gid": os.getgid(), "groups": os.getgroups()}),
                       "application/json")
        elif url.path == "/crash":
            sys.stdout.flush()
            os._exit(3)
        elif url.path == "/hang":
            time.sleep(3600)
        elif url.path == "/slow":
            time.sleep(float(parse_qs(url.query).get("s", ["1"])[0]))
            self.reply(200, f"slow from {VERSION}\n")
        else:
            self.reply(200, f"hello from {VERSION} pid {os.getpid()}\n")


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 512

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)


def main():
    code = os.environ.get("APP_EXIT_AT_START")
    print(f"pyapp {VERSION} starting pid {os.getpid()}", flush=True)
    if code:
        print(f"pyapp {VERSION}: exiting with {code} as told", flush=True)
        sys.exit(int(code))
    time.sleep(float(os.environ.get("APP_START_DELAY", "0") or 0))
    path = os.environ.get("GATEHOUSE_SOCKET")
    if path:
        server = UnixHTTPServer(path, Handler)
        where = path
    else:
        port = int(os.environ[os.environ.get("APP_PORT_ENV", "PORT")])
        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer.request_queue_size = 512  # socketserver's 5 drops bursts of connects
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        where = f"127.0.0.1:{port}"
    print(f"pyapp {VERSION} listening on {where}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
