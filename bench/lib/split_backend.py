#!/usr/bin/env python3
"""Backend for bench/latency.sh: answers every request with 200 and a fixed body, writing the
response head and the body in two send() calls on a TCP_NODELAY socket, as Python's
http.server, many WSGI/ASGI servers and other app servers do. Optionally waits SPLIT_MS
between them (0 by default: the two writes leave back to back, two segments).

    split_backend.py PORT BODY_SIZE [SPLIT_MS]

One thread per connection, keep-alive, requests without a body (GET/HEAD), HTTP/1.1."""
import socket
import sys
import threading
import time


def serve(conn, head, body, split_s):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            req, _, buf = buf.partition(b"\r\n\r\n")
            conn.sendall(head)
            if split_s:
                time.sleep(split_s)
            if not req.startswith(b"HEAD "):
                conn.sendall(body)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    port, size = int(sys.argv[1]), int(sys.argv[2])
    split_s = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.0
    body = b"x" * size
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % size)
    lsn = socket.socket()
    lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsn.bind(("127.0.0.1", port))
    lsn.listen(1024)
    while True:
        conn, _ = lsn.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(conn, head, body, split_s), daemon=True).start()


if __name__ == "__main__":
    main()
