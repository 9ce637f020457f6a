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

log "work dir $WORK; backend + load generator on core $AUX_CPU, proxies on core $PROXY_CPU"
start_backend "$BODY_SIZE"
log "backend nginx on port ${PORT_OF[backend]} (${BODY_SIZE}-byte body); scenarios: $SCENARIOS"

for SCENARIO in $SCENARIOS; do
    TLS_MODE=0 CHECK_H2=0
    [[ $SCENARIO != plain ]] && TLS_MODE=1
    [[ $SCENARIO == h2 ]] && CHECK_H2=1
    log "==== scenario $SCENARIO"
    start_all "$SCENARIO"
    warm_up_and_measure
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
