#!/usr/bin/env python3
"""Slow readers of one large file, and the server's memory meanwhile (bench/files.sh slow_reader).

Usage: slow_reader.py PORT PATH CLIENTS RATE SECONDS PID...
CLIENTS connections each send `GET PATH` and then read RATE bytes per second (in 16 KiB reads,
receive buffer 64 KiB) for SECONDS seconds, then close. Meanwhile the VmRSS of the PIDs (the
server's processes) is summed every 100 ms. Prints one line:
  "rss_before_kib rss_max_kib bytes_read content_length status"
Exits non-zero if a connection fails or the response is not 200.
"""
import socket
import sys
import time


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def main(argv):
    if len(argv) < 7:
        sys.exit(__doc__)
    port, path, clients, rate, seconds = int(argv[1]), argv[2], int(argv[3]), int(argv[4]), float(argv[5])
    pids = [int(p) for p in argv[6:]]
    before = rss_kib(pids)
    socks, length, status = [], None, None
    for _ in range(clients):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        socks.append(s)
    got = [0] * clients
    heads = [b""] * clients
    peak = before
    start = time.monotonic()
    step = 0.1
    per_step = max(1, int(rate * step))
    while time.monotonic() - start < seconds:
        tick = time.monotonic()
        for i, s in enumerate(socks):
            want = per_step
            while want > 0:
                d = s.recv(min(16384, want))
                if not d:
                    sys.exit(f"connection {i} closed after {got[i]} bytes")
                if heads[i] is not None:
                    heads[i] += d
                    if b"\r\n\r\n" not in heads[i]:
                        continue
                    head, _, rest = heads[i].partition(b"\r\n\r\n")
                    lines = head.split(b"\r\n")
                    status = int(lines[0].split()[1])
                    for line in lines[1:]:
                        k, _, v = line.partition(b":")
                        if k.strip().lower() == b"content-length":
                            length = int(v.strip())
                    heads[i] = None
                    d = rest
                got[i] += len(d)
                want -= len(d)
        peak = max(peak, rss_kib(pids))
        time.sleep(max(0.0, step - (time.monotonic() - tick)))
    peak = max(peak, rss_kib(pids))
    for s in socks:
        s.close()
    print(before, peak, sum(got), length, status)
    if status != 200:
        sys.exit(f"status {status}")


if __name__ == "__main__":
    main(sys.argv)
