#!/usr/bin/env python3
"""Helpers for bench/run.sh and bench/memory.sh (python3 stdlib only).

  benchlib.py render TEMPLATE OUT KEY=VALUE...   replace @KEY@ in TEMPLATE
  benchlib.py parse-wrk FILE                     print "requests rps p50_ms p99_ms errors"
  benchlib.py parse-h2load FILE                  same for h2load output (p50/p99: nan)
  benchlib.py parse-stime FILE...                same for openssl s_time -new outputs (summed;
                                                 req/s: nan, run.sh divides by wall time)
  benchlib.py summary RUNS.tsv [SCENARIO]        print the per-proxy median table (of SCENARIO)
  benchlib.py overview RUNS.tsv                  one line per scenario and proxy, with ratios
  benchlib.py memory MEM.tsv                     print the RSS table of bench/memory.sh
  benchlib.py throughput RUNS.tsv SCENARIO BYTES MB/s and CPU ns per byte (BYTES per response)
  benchlib.py slow SLOW.tsv                      print the RSS table of files.sh's slow_reader
"""
import re
import statistics
import sys

ORDER = ["gatehouse", "nginx", "haproxy"]


def render(template, out, pairs):
    with open(template) as f:
        text = f.read()
    for pair in pairs:
        key, _, value = pair.partition("=")
        text = text.replace("@%s@" % key, value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        sys.exit("render: unreplaced placeholders in %s: %s" % (template, sorted(set(left))))
    with open(out, "w") as f:
        f.write(text)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(value):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def parse_wrk(path):
    """Extract total requests, req/s, latency p50/p99 (ms) and error count from wrk output."""
    text = open(path).read()
    m = re.search(r"^\s*(\d+) requests in", text, re.M)
    rps = re.search(r"^Requests/sec:\s*([\d.]+)", text, re.M)
    if not m or not rps:
        sys.exit("parse-wrk: cannot parse %s" % path)
    p50 = re.search(r"^\s*50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", text, re.M)
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    print(m.group(1), rps.group(1),
          "%.3f" % _ms(p50.group(1)) if p50 else "nan",
          "%.3f" % _ms(p99.group(1)) if p99 else "nan",
          errors)


def parse_h2load(path):
    """h2load: 'finished in 10.00s, 1234.5 req/s, ...' and 'requests: N total, ... N succeeded,
    N failed, N errored, N timeout' and 'status codes: N 2xx, ...'."""
    text = open(path).read()
    fin = re.search(r"^finished in [\d.]+m?s, ([\d.]+) req/s", text, re.M)
    req = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                    r"(\d+) errored, (\d+) timeout", text, re.M)
    codes = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    if not fin or not req:
        sys.exit("parse-h2load: cannot parse %s" % path)
    errors = int(req.group(5))  # "failed" includes errored, timed-out and non-2xx/3xx ones
    print(req.group(3), fin.group(1), "nan", "nan", errors)


def parse_stime(paths):
    """openssl s_time -new: '415 connections in 2 real seconds, 147 bytes read per connection'.
    Each connection is one full handshake plus one 'GET / HTTP/1.0'."""
    total = 0
    errors = 0
    for path in paths:
        text = open(path).read()
        m = re.search(r"^(\d+) connections in [\d.]+ real seconds, (\d+) bytes read per connection", text, re.M)
        if not m:
            sys.exit("parse-stime: cannot parse %s" % path)
        total += int(m.group(1))
        if int(m.group(2)) == 0:
            errors += int(m.group(1))
        errors += len(re.findall(r"^ERROR", text, re.M))
    print(total, "nan", "nan", "nan", errors)


def _read_tsv(path):
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        return [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]


def _fmt_ratio(num, den):
    if num is None or den is None or den == 0:
        return "-"
    return "%.2fx" % (num / den)


def summary(path, scenario=None):
    rows = _read_tsv(path)
    if scenario is not None:
        rows = [r for r in rows if r.get("scenario") == scenario]
    if not rows:
        print("no runs")
        return
    names = [n for n in ORDER if any(r["name"] == n for r in rows)]
    names += sorted({r["name"] for r in rows} - set(names))
    med = {}
    for n in names:
        runs = [r for r in rows if r["name"] == n]
        col = lambda k: statistics.median(float(r[k]) for r in runs)
        med[n] = {
            "runs": len(runs),
            "rps": col("rps"),
            "rps_range": "%.0f-%.0f" % (min(float(r["rps"]) for r in runs) / 1000,
                                        max(float(r["rps"]) for r in runs) / 1000),
            "cpu_us_req": col("cpu_us_per_req"),
            "cpu_range": "%.1f-%.1f" % (min(float(r["cpu_us_per_req"]) for r in runs),
                                        max(float(r["cpu_us_per_req"]) for r in runs)),
            "core0_us_req": col("core0_us_per_req"),
            "cpu_pct": col("proxy_cpu_pct"),
            "core1_pct": col("core1_busy_pct"),
            "p99": statistics.median(float(r["p99_ms"]) for r in runs),
            "other": col("other_pct"),
            "errors": sum(int(r["errors"]) for r in runs),
        }
    cols = ["proxy", "runs", "req/s", "(min-max k)", "CPU us/req", "(min-max)", "core0 us/req", "proxy CPU%",
            "core1 busy%", "p99 ms", "other%", "errors"]
    table = [cols]
    for n in names:
        m = med[n]
        table.append([n, str(m["runs"]), "%.0f" % m["rps"], m["rps_range"], "%.2f" % m["cpu_us_req"],
                      m["cpu_range"],
                      "%.2f" % m["core0_us_req"], "%.1f" % m["cpu_pct"], "%.1f" % m["core1_pct"],
                      "%.3f" % m["p99"], "%.1f" % m["other"], str(m["errors"])])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("(medians over rounds. CPU us/req: proxy utime+stime / requests. core0 us/req: all busy"
          " time on the proxy's core, incl. softirq, / requests.\n proxy CPU%: of one core."
          " other%: CPU of both cores used by unrelated processes during the run)")
    g = med.get("gatehouse")
    if g:
        print()
        print("Gatehouse ratios (req/s: gatehouse/other, >1 = Gatehouse faster;"
              " CPU us/req: other/gatehouse, >1 = Gatehouse cheaper)")
        for other in ("nginx", "haproxy"):
            o = med.get(other)
            if not o:
                continue
            print("  vs %-8s req/s %s   CPU us/req %s   core0 us/req %s" % (
                other, _fmt_ratio(g["rps"], o["rps"]), _fmt_ratio(o["cpu_us_req"], g["cpu_us_req"]),
                _fmt_ratio(o["core0_us_req"], g["core0_us_req"])))
    else:
        print()
        print("Gatehouse not measured: no ratios.")


def overview(path):
    rows = _read_tsv(path)
    scenarios = []
    for r in rows:
        if r["scenario"] not in scenarios:
            scenarios.append(r["scenario"])
    cols = ["scenario", "proxy", "runs", "req/s", "CPU us/req", "errors", "GH req/s ratio", "GH CPU ratio"]
    table = [cols]
    for sc in scenarios:
        runs_sc = [r for r in rows if r["scenario"] == sc]
        med = {}
        for n in ORDER + sorted({r["name"] for r in runs_sc} - set(ORDER)):
            runs = [r for r in runs_sc if r["name"] == n]
            if runs:
                med[n] = (len(runs), statistics.median(float(r["rps"]) for r in runs),
                          statistics.median(float(r["cpu_us_per_req"]) for r in runs),
                          sum(int(r["errors"]) for r in runs))
        g = med.get("gatehouse")
        for n, (k, rps, cpu, err) in med.items():
            rr = cr = ""
            if g and n != "gatehouse":
                rr, cr = _fmt_ratio(g[1], rps), _fmt_ratio(cpu, g[2])
            table.append([sc, n, str(k), "%.0f" % rps, "%.2f" % cpu, str(err), rr, cr])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("(medians over rounds. GH req/s ratio: gatehouse/other, >1 = Gatehouse faster;"
          " GH CPU ratio: other/gatehouse CPU us/req, >1 = Gatehouse cheaper)")


def memory(path):
    rows = _read_tsv(path)
    cols = ["proxy", "idle RSS KiB", "busy RSS KiB", "delta KiB", "KiB/conn", "conns"]
    table = [cols]
    for r in rows:
        idle, busy, n = int(r["idle_kb"]), int(r["busy_kb"]), int(r["conns"])
        table.append([r["name"], str(idle), str(busy), str(busy - idle),
                      "%.2f" % ((busy - idle) / n) if n else "-", str(n)])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _print_table(table):
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def throughput(path, scenario, nbytes):
    """Medians of a scenario whose every response is `nbytes` long, as bytes: MB/s (10^6) and
    the server's CPU per byte, with Gatehouse's ratios."""
    nbytes = int(nbytes)
    rows = [r for r in _read_tsv(path) if r["scenario"] == scenario]
    med = {}
    for n in ORDER + sorted({r["name"] for r in rows} - set(ORDER)):
        runs = [r for r in rows if r["name"] == n]
        if runs:
            rps = statistics.median(float(r["rps"]) for r in runs)
            cpu = statistics.median(float(r["cpu_us_per_req"]) for r in runs)
            med[n] = (rps * nbytes / 1e6, cpu * 1000 / nbytes)
    table = [["server", "MB/s", "CPU ns/byte", "GH MB/s ratio", "GH CPU ratio"]]
    g = med.get("gatehouse")
    for n, (mbs, ns) in med.items():
        rr = cr = ""
        if g and n != "gatehouse":
            rr, cr = _fmt_ratio(g[0], mbs), _fmt_ratio(ns, g[1])
        table.append([n, "%.0f" % mbs, "%.4f" % ns, rr, cr])
    print()
    _print_table(table)
    print("(MB/s = median req/s x %d bytes; CPU ns/byte = median CPU us/req / bytes. GH MB/s ratio:"
          " gatehouse/other, GH CPU ratio: other/gatehouse, >1 = Gatehouse better)" % nbytes)


def slow(path):
    rows = _read_tsv(path)
    if not rows:
        print("no runs")
        return
    table = [["server", "RSS before KiB", "RSS peak KiB", "growth KiB", "bytes read", "clients",
              "bytes/s each", "seconds"]]
    for r in rows:
        before, peak = int(r["rss_before_kib"]), int(r["rss_max_kib"])
        table.append([r["name"], str(before), str(peak), str(peak - before), r["bytes_read"],
                      r["clients"], r["rate"], r["seconds"]])
    _print_table(table)
    print("(RSS of the server's processes, summed over the process tree, sampled every 100 ms)")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "render" and len(args) >= 2:
        render(args[0], args[1], args[2:])
    elif cmd == "parse-wrk" and len(args) == 1:
        parse_wrk(args[0])
    elif cmd == "parse-h2load" and len(args) == 1:
        parse_h2load(args[0])
    elif cmd == "parse-stime" and len(args) >= 1:
        parse_stime(args)
    elif cmd == "summary" and len(args) in (1, 2):
        summary(*args)
    elif cmd == "overview" and len(args) == 1:
        overview(args[0])
    elif cmd == "memory" and len(args) == 1:
        memory(args[0])
    elif cmd == "throughput" and len(args) == 3:
        throughput(*args)
    elif cmd == "slow" and len(args) == 1:
        slow(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
