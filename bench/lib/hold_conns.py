#!/usr/bin/env python3
"""Open N keep-alive connections to 127.0.0.1:PORT, do one GET on each, then hold them idle.

Usage: hold_conns.py PORT N [MAX_HOLD_SECONDS]
Prints "ready N" once every connection got a complete 200 response, then sleeps until
killed (or MAX_HOLD_SECONDS, default 120, pass). Exits non-zero on any failure.
"""
import resource
import socket
import sys
import time


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response headers")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split()[1]
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if status != b"200" or length is None:
        raise ConnectionError("unexpected response: %r" % lines[:3])
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed inside the body")
        body += chunk


def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    max_hold = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 64), hard))
    request = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: hold_conns\r\n\r\n"
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request)
        read_response(s)
        socks.append(s)
    print("ready", len(socks), flush=True)
    time.sleep(max_hold)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report and fail: the caller checks for "ready"
        print("error", e, flush=True)
        sys.exit(1)
