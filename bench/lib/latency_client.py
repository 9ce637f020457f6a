#!/usr/bin/env python3
"""Client of bench/latency.sh (python3 stdlib only).

  latency_client.py run PORT REQUESTS WARMUP OUT      one keep-alive connection, REQUESTS
                                                      sequential GETs (after WARMUP unmeasured
                                                      ones); appends one latency (us) per line
                                                      to OUT
  latency_client.py table DIRECT_FILE NAME=FILE...    p50/p99/mean per target and what each
                                                      proxy adds over DIRECT_FILE

Each request is sent whole, then its response read whole (Content-Length framing); the time
is from before the send to the last body byte, perf_counter_ns. Any status other than 200 or
a closed connection is an error (exit 1)."""
import socket
import statistics
import sys
import time

REQ = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: latency\r\n\r\n"


def one(sock, buf):
    sock.sendall(REQ)
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            sys.exit("latency_client: connection closed")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        sys.exit("latency_client: unexpected response: %r" % head[:80])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        d = sock.recv(65536)
        if not d:
            sys.exit("latency_client: connection closed mid-body")
        rest += d
    return rest[length:]


def run(port, requests, warmup, out):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    for _ in range(warmup):
        buf = one(sock, buf)
    times = []
    for _ in range(requests):
        t0 = time.perf_counter_ns()
        buf = one(sock, buf)
        times.append((time.perf_counter_ns() - t0) / 1000)
    sock.close()
    with open(out, "a") as f:
        f.write("".join("%.1f\n" % t for t in times))


def pct(sorted_v, p):
    return sorted_v[min(len(sorted_v) - 1, int(p / 100 * len(sorted_v)))]


def stats(path):
    v = sorted(float(x) for x in open(path) if x.strip())
    return {"n": len(v), "p50": pct(v, 50), "p99": pct(v, 99), "mean": statistics.fmean(v),
            "over10ms": sum(1 for x in v if x > 10000)}


def table(direct_file, pairs):
    d = stats(direct_file)
    print("%-10s %7s %10s %10s %10s %12s %12s %9s" % (
        "target", "n", "p50 us", "p99 us", "mean us", "+p50 us", "+p99 us", ">10ms"))
    print("%-10s %7d %10.0f %10.0f %10.0f %12s %12s %9d" % (
        "direct", d["n"], d["p50"], d["p99"], d["mean"], "-", "-", d["over10ms"]))
    for pair in pairs:
        name, _, path = pair.partition("=")
        s = stats(path)
        print("%-10s %7d %10.0f %10.0f %10.0f %12.0f %12.0f %9d" % (
            name, s["n"], s["p50"], s["p99"], s["mean"], s["p50"] - d["p50"], s["p99"] - d["p99"],
            s["over10ms"]))


def main():
    if len(sys.argv) >= 6 and sys.argv[1] == "run":
        run(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) >= 3 and sys.argv[1] == "table":
        table(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
