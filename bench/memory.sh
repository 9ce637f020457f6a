#!/usr/bin/env bash
# Memory footprint of Gatehouse, nginx and HAProxy as reverse proxies: RSS of each
# proxy's process tree idle (after one request) and while CONNS idle keep-alive client
# connections are open (each did one GET, then stays open). Same setup as bench/run.sh:
# one worker/thread on core 0, backend nginx on core 1.
#
# Env (defaults): CONNS=1000, BODY_SIZE=100, PROXIES="gatehouse nginx haproxy",
#   GATEHOUSE_BIN=build/gatehouse, SETTLE=1 (s to wait before reading RSS), KEEP_WORK=0.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$BENCH_DIR/lib.sh"

CONNS=${CONNS:-1000}
BODY_SIZE=${BODY_SIZE:-100}
PROXIES=${PROXIES:-gatehouse nginx haproxy}
SETTLE=${SETTLE:-1}
for v in CONNS BODY_SIZE SETTLE; do is_uint "${!v}" || die "$v must be a non-negative integer"; done
need_tools nginx haproxy taskset curl python3 ps awk

setup_work
MEM_TSV=$WORK/memory.tsv
printf 'name\tidle_kb\tbusy_kb\tconns\n' >"$MEM_TSV"

start_backend "$BODY_SIZE"

# hold_and_measure NAME : open CONNS connections to NAME, print its RSS while they are open
hold_and_measure() {
    local name=$1 out=$WORK/hold-$1.txt i rss
    python3 "$BENCH_DIR/lib/hold_conns.py" "${PORT_OF[$name]}" "$CONNS" 120 >"$out" 2>&1 &
    local cpid=$!
    STARTED_PIDS+=("$cpid")
    for ((i = 0; i < 600; i++)); do                      # up to 60 s
        grep -q '^ready' "$out" 2>/dev/null && break
        alive "$cpid" || break
        sleep 0.1
    done
    if ! grep -q '^ready' "$out"; then
        log "$name: could not hold $CONNS connections: $(cat "$out")"
        stop_tree "$cpid"
        return 1
    fi
    sleep "$SETTLE"
    rss=$(rss_kb "${PID_OF[$name]}")
    stop_tree "$cpid"
    echo "$rss"
}

for name in $PROXIES; do
    if [[ $name == gatehouse ]]; then
        gatehouse_available || { log "SKIP gatehouse: no executable at $GATEHOUSE_BIN"; continue; }
        start_proxy gatehouse || { log "SKIP gatehouse: it did not start"; continue; }
    else
        start_proxy "$name" || die "$name failed to start"
    fi
    if ! check_http "$name" "$BODY_SIZE"; then
        [[ $name == gatehouse ]] || die "$name does not proxy correctly"
        log "SKIP gatehouse: it does not proxy correctly"
        stop_tree "${PID_OF[$name]}"
        continue
    fi
    sleep "$SETTLE"
    idle=$(rss_kb "${PID_OF[$name]}")
    if busy=$(hold_and_measure "$name"); then
        printf '%s\t%s\t%s\t%s\n' "$name" "$idle" "$busy" "$CONNS" >>"$MEM_TSV"
        log "$name: idle ${idle} KiB, ${busy} KiB with $CONNS connections"
    else
        [[ $name == gatehouse ]] || die "$name failed the connection test"
    fi
    stop_tree "${PID_OF[$name]}"                        # one proxy at a time
done

echo
echo "RSS of each proxy's processes (KiB; nginx = master + worker), $CONNS idle keep-alive connections:"
"${BENCHLIB[@]}" memory "$MEM_TSV"
mkdir -p "$BENCH_DIR/results"
"${BENCHLIB[@]}" memory "$MEM_TSV" >"$BENCH_DIR/results/memory-latest.txt"
