#!/usr/bin/env bash
# Gatehouse vs nginx vs HAProxy as reverse proxies in front of one backend, in scenarios:
#   plain     HTTP/1.1 keep-alive GET (wrk, http://)
#   https     HTTP/1.1 keep-alive GET over TLS 1.3 (wrk, https://; one handshake per connection)
#   handshake a full TLS 1.3 handshake per request: HS_CLIENTS parallel `openssl s_time -new
#             -www /` (no session reuse; wrk and h2load both resume sessions on reconnect)
#   h2        HTTP/2 over TLS 1.3 (h2load -c H2_CONNECTIONS -m H2_STREAMS, ALPN h2)
# TLS: every proxy serves the same ECDSA P-256 self-signed certificate, generated with the
# openssl CLI into the temp dir at run time. The proxies are restarted for every scenario.
#
# Layout on a 2-core box, loopback only:
#   core 0 (PROXY_CPU): the proxy under test, one worker/thread, access log off
#   core 1 (AUX_CPU):   backend nginx (fixed BODY_SIZE body, keep-alive) + wrk
# Each proxy is warmed up, then ROUNDS rounds run all proxies in rotating order.
# Per run: wrk req/s and the proxy's utime+stime (/proc/PID/stat over its process tree).
#
# Env (defaults): DURATION=10 (s per run), CONNECTIONS=50, THREADS=1 (wrk), ROUNDS=3,
#   WARMUP=3 (s), BODY_SIZE=100, GATEHOUSE_BIN=build/gatehouse, PROXIES="gatehouse nginx haproxy",
#   NOISE_MAX=5 (%), RETRIES=2, QUIET_WAIT=30 (s): this box is shared with other work, so each
#   run first waits up to QUIET_WAIT s for a second with the cores < NOISE_MAX % busy, and a
#   run during which other processes used more than NOISE_MAX % is repeated up to RETRIES times,
#   RESULTS_DIR=bench/results, KEEP_WORK=0 (1 keeps the temp dir with configs and logs),
#   SCENARIOS="plain https handshake h2", H2_CONNECTIONS=10, H2_STREAMS=10, HS_CLIENTS=4.
# Gatehouse is skipped with a message when its binary is missing or does not start.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$BENCH_DIR/lib.sh"

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3}
BODY_SIZE=${BODY_SIZE:-100}
NOISE_MAX=${NOISE_MAX:-5}
RETRIES=${RETRIES:-2}
QUIET_WAIT=${QUIET_WAIT:-30}
PROXIES=${PROXIES:-gatehouse nginx haproxy}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
SCENARIOS=${SCENARIOS:-plain https handshake h2}
H2_CONNECTIONS=${H2_CONNECTIONS:-10}
H2_STREAMS=${H2_STREAMS:-10}
HS_CLIENTS=${HS_CLIENTS:-4}

for sc in $SCENARIOS; do
    [[ $sc =~ ^(plain|https|handshake|h2)$ ]] || die "unknown scenario '$sc' (plain https handshake h2)"
done
for v in DURATION CONNECTIONS THREADS ROUNDS WARMUP BODY_SIZE NOISE_MAX RETRIES QUIET_WAIT \
    H2_CONNECTIONS H2_STREAMS HS_CLIENTS; do
    is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
done
((DURATION > 0 && CONNECTIONS > 0 && THREADS > 0 && ROUNDS > 0)) || die "DURATION, CONNECTIONS, THREADS, ROUNDS must be > 0"
need_tools nginx haproxy wrk taskset curl python3 ps awk timeout
[[ " $SCENARIOS " =~ \ (https|handshake|h2)\  ]] && need_tools openssl h2load
CLK_TCK=$(getconf CLK_TCK)

setup_work
RUNS_TSV=$WORK/runs.tsv
printf 'scenario\tround\tname\trequests\trps\tp50_ms\tp99_ms\terrors\tcpu_us\tcpu_us_per_req\tcore0_us_per_req\tproxy_cpu_pct\tcore1_busy_pct\tother_pct\ttries\n' >"$RUNS_TSV"

# ---------------------------------------------------------------- start everything


[[ " $SCENARIOS " =~ \ (https|handshake|h2)\  ]] && make_cert

GATEHOUSE_DESC="not measured"
declare -A GATEHOUSE_FAILED=()     # scenario -> why Gatehouse was skipped or dropped

# start_all SCENARIO : start the proxies of PROXIES for SCENARIO; sets ACTIVE
start_all() {
    local sc=$1 name
    ACTIVE=()
    for name in $PROXIES; do
        if [[ $name == gatehouse ]]; then
            if ! gatehouse_available; then
                log "SKIP gatehouse: no executable at $GATEHOUSE_BIN (build it with 'make' or set GATEHOUSE_BIN)"
                GATEHOUSE_FAILED[$sc]="no binary"
                continue
            fi
            if ! start_proxy gatehouse; then
                log "SKIP gatehouse ($sc): it did not start"
                GATEHOUSE_FAILED[$sc]="did not start"
                continue
            fi
        else
            start_proxy "$name" || die "$name failed to start"
        fi
        if ! check_http "$name" "$BODY_SIZE"; then
            [[ $name == gatehouse ]] || die "$name does not proxy correctly ($sc)"
            log "SKIP gatehouse ($sc): it does not proxy correctly"
            GATEHOUSE_FAILED[$sc]="check request failed"
            stop_tree "${PID_OF[$name]}"
            continue
        fi
        log "$name on port ${PORT_OF[$name]} (pid ${PID_OF[$name]})"
        [[ $name == gatehouse ]] &&
            GATEHOUSE_DESC="$GATEHOUSE_BIN ($(date -r "$GATEHOUSE_BIN" '+%F %T'), sha1 $(sha1sum "$WORK/gatehouse" | cut -c1-12))"
        ACTIVE+=("$name")
    done
    ((${#ACTIVE[@]} > 0)) || die "no proxy to measure"
}

# ---------------------------------------------------------------- measuring

# run_load NAME SECONDS OUTFILE : the load generator of $SCENARIO against NAME
# (in the background + wait, so that a TERM/INT to this script is handled at once)
run_load() {
    local name=$1 secs=$2 out=$3 rc=0 port=${PORT_OF[$1]}
    case $SCENARIO in
    plain | https)
        local scheme=http
        [[ $SCENARIO == https ]] && scheme=https
        timeout $((secs + 30)) taskset -c "$AUX_CPU" \
            wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --latency \
            "$scheme://127.0.0.1:$port/" >"$out" 2>&1 &
        ;;
    h2)
        timeout $((secs + 30)) taskset -c "$AUX_CPU" \
            h2load -t1 -c"$H2_CONNECTIONS" -m"$H2_STREAMS" -D"$secs" \
            "https://127.0.0.1:$port/" >"$out" 2>&1 &
        ;;
    handshake)
        # HS_CLIENTS processes, each: connect, full handshake (-new: no session reuse),
        # "GET / HTTP/1.0", read the response until close; repeat for secs seconds
        (
            for ((i = 0; i < HS_CLIENTS; i++)); do
                timeout $((secs + 30)) taskset -c "$AUX_CPU" \
                    openssl s_time -connect "127.0.0.1:$port" -new -www / -time "$secs" \
                    >"$out.$i" 2>&1 </dev/null &
            done
            wait
        ) &
        ;;
    esac
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    [[ $SCENARIO == handshake ]] && cat "$out".* >"$out"
    return "$rc"
}

# parse_load OUT : "requests rps p50_ms p99_ms errors" of the run's output
parse_load() {
    case $SCENARIO in
    plain | https) "${BENCHLIB[@]}" parse-wrk "$1" ;;
    h2) "${BENCHLIB[@]}" parse-h2load "$1" ;;
    handshake) "${BENCHLIB[@]}" parse-stime "$1".[0-9]* ;;
    esac
}

# run_once NAME OUT : one timed wrk run; sets R_* globals with the run's counters
run_once() {
    local name=$1 out=$2 pid=${PID_OF[$1]} bpid=${PID_OF[backend]}
    local p0 p1 b0 b1 w0 w1 s0 s1 c0b c0t c1b c1t d0b d0t d1b d1t _
    p0=$(cpu_ticks "$pid")
    b0=$(cpu_ticks "$bpid")
    read -r c0b c0t _ < <(cpu_jiffies "$PROXY_CPU")
    read -r c1b c1t _ < <(cpu_jiffies "$AUX_CPU")
    w0=$(children_ticks)
    s0=$(date +%s%N)
    run_load "$name" "$DURATION" "$out" || { log "load generator ($SCENARIO) failed against $name"; tail -n 30 "$out" >&2; return 1; }
    s1=$(date +%s%N)
    w1=$(children_ticks)
    read -r d0b d0t _ < <(cpu_jiffies "$PROXY_CPU")
    read -r d1b d1t _ < <(cpu_jiffies "$AUX_CPU")
    p1=$(cpu_ticks "$pid")
    b1=$(cpu_ticks "$bpid")
    alive "$pid" || { log "$name died during the run"; show_log "$name"; return 1; }

    read -r R_REQUESTS R_RPS R_P50 R_P99 R_ERRORS < <(parse_load "$out")
    [[ -n ${R_REQUESTS:-} ]] || { log "$name: cannot parse the load generator output"; tail -n 30 "$out" >&2; return 1; }
    ((R_REQUESTS > 0)) || { log "$name: the load generator completed no request"; tail -n 30 "$out" >&2; return 1; }
    R_WALL_US=$(((s1 - s0) / 1000))
    [[ $R_RPS == nan ]] && R_RPS=$(awk -v n="$R_REQUESTS" -v w="$R_WALL_US" 'BEGIN { printf "%.2f", n * 1e6 / w }')
    R_CPU_US=$(((p1 - p0) * 1000000 / CLK_TCK))
    R_CORE0_US=$(((d0b - c0b) * 1000000 / CLK_TCK))
    R_CORE1_BUSY=$(((d1b - c1b) * 1000 / (d1t - c1t > 0 ? d1t - c1t : 1)))       # per mille
    # CPU used on either core by anything but proxy, backend and wrk (softirq time is
    # charged to the task it interrupted, so it is in theirs): other engineers' builds
    # and tests share this box and skew req/s.
    local other=$(((d0b - c0b) + (d1b - c1b) - (p1 - p0) - (b1 - b0) - (w1 - w0)))
    ((other > 0)) || other=0
    R_OTHER=$((other * 1000 / ((d0t - c0t) + (d1t - c1t) > 0 ? (d0t - c0t) + (d1t - c1t) : 1)))  # per mille
}

# wait_quiet : wait (at most QUIET_WAIT s) for a second in which the two cores were busy
# less than NOISE_MAX % (our servers idle in between runs, so that is other work)
wait_quiet() {
    local waited b0 t0 b1 t1 x0 y0 x1 y1 busy
    ((QUIET_WAIT > 0)) || return 0
    for ((waited = 0; waited < QUIET_WAIT; waited++)); do
        read -r b0 t0 _ < <(cpu_jiffies "$PROXY_CPU")
        read -r b1 t1 _ < <(cpu_jiffies "$AUX_CPU")
        sleep 1
        read -r x0 y0 _ < <(cpu_jiffies "$PROXY_CPU")
        read -r x1 y1 _ < <(cpu_jiffies "$AUX_CPU")
        busy=$((((x0 - b0) + (x1 - b1)) * 1000 / ((y0 - t0) + (y1 - t1) > 0 ? (y0 - t0) + (y1 - t1) : 1)))
        ((busy <= NOISE_MAX * 10)) && return 0
        ((waited % 10 == 0)) && log "waiting for other work to calm down (CPUs $(pm "$busy")% busy)"
    done
    log "still busy after ${QUIET_WAIT}s, measuring anyway"
}

# measure ROUND NAME : a timed run, repeated (up to RETRIES times) while other
# processes used more than NOISE_MAX % of the machine; appends a row to $RUNS_TSV
measure() {
    local round=$1 name=$2 attempt out
    for ((attempt = 0; ; attempt++)); do
        wait_quiet
        out=$WORK/load-$SCENARIO-$name-r$round-a$attempt.txt
        run_once "$name" "$out" || return 1
        ((R_OTHER <= NOISE_MAX * 10 || attempt >= RETRIES)) && break
        log "round $round $name: other processes used $(pm "$R_OTHER")% of the CPUs, repeating the run"
    done
    ((R_ERRORS == 0)) || log "WARNING: $name: $R_ERRORS socket errors / non-2xx responses"
    awk -v OFS='\t' -v sc="$SCENARIO" -v r="$round" -v n="$name" -v req="$R_REQUESTS" -v rps="$R_RPS" -v p50="$R_P50" \
        -v p99="$R_P99" -v err="$R_ERRORS" -v cpu="$R_CPU_US" -v core0="$R_CORE0_US" -v wall="$R_WALL_US" \
        -v c1="$R_CORE1_BUSY" -v other="$R_OTHER" -v tries="$((attempt + 1))" \
        'BEGIN { print sc, r, n, req, rps, p50, p99, err, cpu, sprintf("%.3f", cpu / req),
                 sprintf("%.3f", core0 / req), sprintf("%.1f", 100 * cpu / wall),
                 sprintf("%.1f", c1 / 10), sprintf("%.1f", other / 10), tries }' >>"$RUNS_TSV"
    log "$(printf '%s round %s %-9s %7.0f req/s  %6.2f us CPU/req  proxy %5.1f%% CPU  p99 %s ms  other %s%%' \
        "$SCENARIO" "$round" "$name" "$R_RPS" "$(awk -v c="$R_CPU_US" -v r="$R_REQUESTS" 'BEGIN { print c / r }')" \
        "$(awk -v c="$R_CPU_US" -v w="$R_WALL_US" 'BEGIN { print 100 * c / w }')" "$R_P99" "$(pm "$R_OTHER")")"
}

pm() { printf '%d.%d' $(($1 / 10)) $(($1 % 10)); }   # per mille -> percent with one decimal

log "work dir $WORK; backend + load generator on core $AUX_CPU, proxies on core $PROXY_CPU"
start_backend "$BODY_SIZE"
log "backend nginx on port ${PORT_OF[backend]} (${BODY_SIZE}-byte body); scenarios: $SCENARIOS"

for SCENARIO in $SCENARIOS; do
    TLS_MODE=0 CHECK_H2=0
    [[ $SCENARIO != plain ]] && TLS_MODE=1
    [[ $SCENARIO == h2 ]] && CHECK_H2=1
    log "==== scenario $SCENARIO"
    start_all "$SCENARIO"
    if ((WARMUP > 0)); then
        for name in "${ACTIVE[@]}"; do
            log "warm-up $name (${WARMUP}s)"
            if ! run_load "$name" "$WARMUP" "$WORK/warmup-$SCENARIO-$name.txt"; then
                [[ $name == gatehouse ]] || die "warm-up against $name failed"
                log "warm-up against gatehouse failed:"; tail -n 30 "$WORK/warmup-$SCENARIO-$name.txt" >&2
            fi
        done
    fi
    DROPPED=""
    for ((round = 1; round <= ROUNDS; round++)); do
        n=${#ACTIVE[@]}
        for ((i = 0; i < n; i++)); do
            name=${ACTIVE[$(((i + round - 1) % n))]}     # rotate the order every round
            [[ $name == "$DROPPED" ]] && continue
            if ! measure "$round" "$name"; then
                [[ $name == gatehouse ]] || die "measurement of $name failed ($SCENARIO)"
                log "dropping gatehouse from the remaining runs of $SCENARIO"
                GATEHOUSE_FAILED[$SCENARIO]="run failed in round $round (see the log above)"
                DROPPED=gatehouse
            fi
        done
    done
    for name in "${ACTIVE[@]}"; do stop_tree "${PID_OF[$name]}"; done
done

# ---------------------------------------------------------------- report

scenario_desc() {
    case $1 in
    plain) echo "HTTP/1.1 keep-alive, wrk -t$THREADS -c$CONNECTIONS http://" ;;
    https) echo "HTTP/1.1 keep-alive over TLS 1.3, wrk -t$THREADS -c$CONNECTIONS https://" ;;
    handshake) echo "full TLS 1.3 handshake + 1 request per connection, $HS_CLIENTS x openssl s_time -new -www / (req/s = connections/wall s)" ;;
    h2) echo "HTTP/2 over TLS 1.3, h2load -t1 -c$H2_CONNECTIONS -m$H2_STREAMS" ;;
    esac
}

mkdir -p "$RESULTS_DIR"
REPORT=$RESULTS_DIR/latest.txt
{
    echo "Gatehouse reverse-proxy benchmark  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "repo $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO_DIR" diff --quiet 2>/dev/null || echo ' (dirty)')," \
        "$(nproc) cores, kernel $(uname -r)"
    echo "versions: $(nginx -v 2>&1 | sed 's/.*: //'), haproxy $(haproxy -v | awk 'NR == 1 { print $3 }')," \
        "$(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }' || true), gatehouse $GATEHOUSE_DESC"
    echo "params: DURATION=${DURATION}s CONNECTIONS=$CONNECTIONS THREADS=$THREADS ROUNDS=$ROUNDS" \
        "WARMUP=${WARMUP}s BODY_SIZE=$BODY_SIZE H2_CONNECTIONS=$H2_CONNECTIONS H2_STREAMS=$H2_STREAMS" \
        "HS_CLIENTS=$HS_CLIENTS; proxy on core $PROXY_CPU, backend+load generator on core $AUX_CPU"
    echo "scenarios: $SCENARIOS; TLS: TLS 1.3, ECDSA P-256 self-signed certificate" \
        "($(openssl version | awk '{ print $1, $2 }'), h2load $(h2load --version 2>/dev/null | awk '{ print $2 }'))"
    echo
    echo "Overview:"
    "${BENCHLIB[@]}" overview "$RUNS_TSV"
    for sc in "${!GATEHOUSE_FAILED[@]}"; do echo "Gatehouse in scenario $sc: ${GATEHOUSE_FAILED[$sc]}"; done
    for sc in $SCENARIOS; do
        echo
        echo "== $sc: $(scenario_desc "$sc")"
        "${BENCHLIB[@]}" summary "$RUNS_TSV" "$sc"
    done
    echo
    echo "Per run:"
    column -t -s $'\t' "$RUNS_TSV" 2>/dev/null || cat "$RUNS_TSV"
} >"$REPORT"
cp "$RUNS_TSV" "$RESULTS_DIR/latest-runs.tsv"
echo
cat "$REPORT"
echo
log "written $REPORT"
