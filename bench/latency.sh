#!/usr/bin/env bash
# Latency a proxy adds to one client's sequential requests, when the backend writes the
# response head and body in two writes (as Python's and many other app servers do):
# Gatehouse vs nginx vs HAProxy, and the backend direct as the baseline.
#
# One keep-alive connection, REQUESTS sequential GETs per run (after WARMUP unmeasured ones),
# ROUNDS rounds over direct + every proxy in rotating order; per target the p50 and p99 of all
# its requests, and what the proxy adds over direct (+p50, +p99). A proxy whose second write
# waits for the client's delayed ACK (Nagle, no TCP_NODELAY on the client socket) adds ~40 ms
# per request; the ">10ms" column counts such requests.
#
# Layout: proxy on PROXY_CPU (0); backend (bench/lib/split_backend.py) and client on AUX_CPU (1).
# Env (defaults): REQUESTS=2000, WARMUP=100, ROUNDS=3, BODY_SIZE=100, SPLIT_MS=1 (pause between
#   head and body), PROXIES="gatehouse nginx haproxy", GATEHOUSE_BIN=build/gatehouse,
#   RESULTS_DIR=bench/results, KEEP_WORK=0.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$BENCH_DIR/lib.sh"

REQUESTS=${REQUESTS:-2000}
WARMUP=${WARMUP:-100}
ROUNDS=${ROUNDS:-3}
BODY_SIZE=${BODY_SIZE:-100}
SPLIT_MS=${SPLIT_MS:-1}
PROXIES=${PROXIES:-gatehouse nginx haproxy}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
for v in REQUESTS WARMUP ROUNDS BODY_SIZE SPLIT_MS; do
    is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
done
((REQUESTS > 0 && ROUNDS > 0)) || die "REQUESTS and ROUNDS must be > 0"
need_tools nginx haproxy taskset curl python3 ps awk timeout

CLIENT=(python3 "$BENCH_DIR/lib/latency_client.py")
setup_work

PORT_OF[backend]=$(free_port)
spawn backend "$AUX_CPU" python3 "$BENCH_DIR/lib/split_backend.py" "${PORT_OF[backend]}" \
    "$BODY_SIZE" "$SPLIT_MS"
wait_port backend || die "backend failed to start"
check_http backend "$BODY_SIZE" || die "backend does not answer correctly"

ACTIVE=()
GATEHOUSE_DESC="not measured"
for name in $PROXIES; do
    if [[ $name == gatehouse ]]; then
        if ! gatehouse_available; then
            log "SKIP gatehouse: no executable at $GATEHOUSE_BIN"
            continue
        fi
        GATEHOUSE_DESC="$GATEHOUSE_BIN (sha1 $(sha1sum "$GATEHOUSE_BIN" | cut -c1-12))"
    fi
    if ! start_proxy "$name"; then
        [[ $name == gatehouse ]] || die "$name failed to start"
        log "SKIP gatehouse: did not start"
        continue
    fi
    if ! check_http "$name" "$BODY_SIZE"; then
        [[ $name == gatehouse ]] || die "$name does not answer correctly"
        log "SKIP gatehouse: wrong answer"
        continue
    fi
    ACTIVE+=("$name")
done

PORT_OF[direct]=${PORT_OF[backend]}
targets=(direct "${ACTIVE[@]}")
for ((round = 1; round <= ROUNDS; round++)); do
    n=${#targets[@]}
    for ((i = 0; i < n; i++)); do
        t=${targets[$(((i + round - 1) % n))]}
        log "round $round/$ROUNDS: $t ($REQUESTS sequential requests)"
        timeout 600 taskset -c "$AUX_CPU" "${CLIENT[@]}" run "${PORT_OF[$t]}" "$REQUESTS" \
            "$WARMUP" "$WORK/lat-$t.txt" || die "client failed against $t"
    done
done

mkdir -p "$RESULTS_DIR"
out=$RESULTS_DIR/latency-latest.txt
{
    echo "bench/latency.sh $(date -u +%Y-%m-%dT%H:%M:%SZ): one connection, sequential GETs,"
    echo "backend writes head and body apart (SPLIT_MS=$SPLIT_MS), BODY_SIZE=$BODY_SIZE,"
    echo "REQUESTS=$REQUESTS x ROUNDS=$ROUNDS per target; +p50/+p99 = added over direct"
    echo "gatehouse: $GATEHOUSE_DESC"
    echo
    pairs=()
    for name in "${ACTIVE[@]}"; do pairs+=("$name=$WORK/lat-$name.txt"); done
    "${CLIENT[@]}" table "$WORK/lat-direct.txt" "${pairs[@]}"
} | tee "$out"
log "written: $out"
