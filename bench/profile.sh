#!/usr/bin/env bash
# Where does each proxy's time go? Same setup as bench/run.sh (proxy on core 0, backend +
# wrk on core 1). For each proxy, two wrk runs of DURATION seconds:
#   1. `perf stat` on syscall tracepoints -> syscalls per request, by syscall
#   2. `perf record -e cpu-clock` -> share of kernel / libc / own code and top symbols
# Needs perf with tracepoint access (root). Hardware counters are not required.
#
# Env (defaults): DURATION=5, CONNECTIONS=50, BODY_SIZE=100, PROXIES="gatehouse nginx haproxy",
#   GATEHOUSE_BIN=build/gatehouse, TOP=15 (symbols listed per proxy), KEEP_WORK=0.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$BENCH_DIR/lib.sh"

DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-50}
BODY_SIZE=${BODY_SIZE:-100}
PROXIES=${PROXIES:-gatehouse nginx haproxy}
TOP=${TOP:-15}
for v in DURATION CONNECTIONS BODY_SIZE TOP; do is_uint "${!v}" || die "$v must be a non-negative integer"; done
need_tools nginx haproxy wrk perf taskset curl python3 ps awk timeout

perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1 || die "perf cannot read syscall tracepoints here"

# syscall tracepoints that exist on this kernel
SYSCALLS=()
for s in epoll_wait epoll_pwait epoll_ctl recvfrom sendto recvmsg sendmsg read write readv writev \
    accept4 close setsockopt getsockopt connect splice; do
    perf stat -e "syscalls:sys_enter_$s" true >/dev/null 2>&1 && SYSCALLS+=("$s")
done
EVENTS=raw_syscalls:sys_enter
for s in "${SYSCALLS[@]}"; do EVENTS+=",syscalls:sys_enter_$s"; done

setup_work
start_backend "$BODY_SIZE"

# the process that does the work: nginx's worker, the process itself otherwise
worker_pid() {
    local pid=${PID_OF[$1]}
    if [[ $1 == nginx ]]; then pgrep -o -P "$pid"; else echo "$pid"; fi
}

SUMMARY=$WORK/syscalls.txt
for name in $PROXIES; do
    if [[ $name == gatehouse ]]; then
        gatehouse_available || { log "SKIP gatehouse: no executable at $GATEHOUSE_BIN"; continue; }
        start_proxy gatehouse || { log "SKIP gatehouse: it did not start"; continue; }
    else
        start_proxy "$name" || die "$name failed to start"
    fi
    check_http "$name" "$BODY_SIZE" || die "$name does not proxy correctly"
    pid=$(worker_pid "$name")
    wrk=(timeout $((DURATION + 30)) taskset -c "$AUX_CPU"
        wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:${PORT_OF[$name]}/")
    log "$name: warm-up, then perf stat and perf record (${DURATION}s each)"
    "${wrk[@]}" >/dev/null
    perf stat -x, -e "$EVENTS" -o "$WORK/stat-$name.csv" -p "$pid" -- "${wrk[@]}" >"$WORK/wrk-stat-$name.txt"
    perf record -q -e cpu-clock -F 2000 -o "$WORK/perf-$name.data" -p "$pid" -- "${wrk[@]}" \
        >"$WORK/wrk-rec-$name.txt" 2>/dev/null
    requests=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WORK/wrk-stat-$name.txt")
    # "name requests syscalls/req by syscall" for the summary table
    awk -F, -v n="$name" -v req="$requests" '
        $3 ~ /sys_enter/ { ev = $3; sub(/.*sys_enter_?/, "", ev); if (ev == "") ev = "all"
                           if ($1 + 0 > 0) printf "%s %s %s %.2f\n", n, req, ev, $1 / req }' \
        "$WORK/stat-$name.csv" >>"$SUMMARY"

    {
        echo "== $name: $(grep -m1 'Requests/sec' "$WORK/wrk-rec-$name.txt" | tr -s ' ') (while profiled)"
        echo "CPU samples by object:"
        perf report -i "$WORK/perf-$name.data" --no-children --sort dso --stdio 2>/dev/null |
            awk '/^ +[0-9]/ && ++n <= 5'
        echo "top $TOP symbols:"
        perf report -i "$WORK/perf-$name.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
            awk -v top="$TOP" '/^ +[0-9]/ && ++n <= top'
        echo
    } >>"$WORK/profile.txt"
    stop_tree "${PID_OF[$name]}"
done

[[ -s $SUMMARY ]] || die "nothing profiled"
mkdir -p "$BENCH_DIR/results"
{
    echo "Syscalls per request (perf stat on the proxy's worker, wrk -c$CONNECTIONS, ${DURATION}s):"
    python3 - "$SUMMARY" <<'EOF'
import sys
rows = [line.split() for line in open(sys.argv[1])]
names = list(dict.fromkeys(r[0] for r in rows))
calls = ["all"] + sorted({r[2] for r in rows} - {"all"})
val = {(r[0], r[2]): r[3] for r in rows}
table = [["proxy"] + calls] + [[n] + [val.get((n, c), "0") for c in calls] for n in names]
w = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
for i, row in enumerate(table):
    print("  ".join(c.ljust(w[j]) if j == 0 else c.rjust(w[j]) for j, c in enumerate(row)))
    if i == 0:
        print("  ".join("-" * x for x in w))
EOF
    echo
    cat "$WORK/profile.txt"
} | tee "$BENCH_DIR/results/profile-latest.txt"
