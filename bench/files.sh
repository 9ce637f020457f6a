#!/usr/bin/env bash
# Gatehouse vs nginx serving static files and compressing proxied JSON (issue 13), scenarios:
#   static_small   a 1 KiB file, HTTP/1.1 keep-alive, wrk -c SMALL_CONNECTIONS (64)
#   static_large   a 100 MiB file, wrk -c LARGE_CONNECTIONS (8): MB/s and CPU per byte
#   compress_json  a 20 KiB JSON answer proxied from the backend and gzip-compressed (level 5 on
#                  all), wrk -c JSON_CONNECTIONS (50) with Accept-Encoding: gzip
#   slow_reader    a 4 GiB sparse file to SLOW_CLIENTS clients reading SLOW_RATE bytes/s for
#                  SLOW_SECONDS s: the server's RSS sampled every 100 ms (peak vs before)
# nginx: sendfile on, gzip on (level 5, application/json, gzip_proxied any), open_file_cache
# (templates/nginx-files.conf). HAProxy serves no files: it takes part in compress_json only
# (compression algo gzip, tune.comp.maxlevel 5). Same layout as run.sh: the server on core 0
# (one worker), backend nginx + wrk on core 1, warm-up, ROUNDS rounds in rotating order, runs
# repeated when other processes use the box (NOISE_MAX, RETRIES, QUIET_WAIT as in run.sh).
#
# Env (defaults): SCENARIOS="static_small static_large compress_json slow_reader", DURATION=10,
#   ROUNDS=3, WARMUP=3, THREADS=1, PROXIES="gatehouse nginx haproxy", GATEHOUSE_BIN,
#   SMALL_CONNECTIONS=64, LARGE_CONNECTIONS=8, JSON_CONNECTIONS=50, SLOW_CLIENTS=4,
#   SLOW_RATE=262144, SLOW_SECONDS=10, NOISE_MAX=5, RETRIES=2, QUIET_WAIT=30,
#   RESULTS_DIR=bench/results (files-latest.txt, files-latest-runs.tsv), KEEP_WORK=0.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$BENCH_DIR/lib.sh"

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-1}
NOISE_MAX=${NOISE_MAX:-5}
RETRIES=${RETRIES:-2}
QUIET_WAIT=${QUIET_WAIT:-30}
PROXIES=${PROXIES:-gatehouse nginx haproxy}
RESULTS_DIR=${RESULTS_DIR:-$BENCH_DIR/results}
SCENARIOS=${SCENARIOS:-static_small static_large compress_json slow_reader}
SMALL_CONNECTIONS=${SMALL_CONNECTIONS:-64}
LARGE_CONNECTIONS=${LARGE_CONNECTIONS:-8}
JSON_CONNECTIONS=${JSON_CONNECTIONS:-50}
SLOW_CLIENTS=${SLOW_CLIENTS:-4}
SLOW_RATE=${SLOW_RATE:-262144}
SLOW_SECONDS=${SLOW_SECONDS:-10}
SMALL_SIZE=1024
LARGE_SIZE=$((100 << 20))
HUGE_SIZE=$((4 << 30))

for sc in $SCENARIOS; do
    [[ $sc =~ ^(static_small|static_large|compress_json|slow_reader)$ ]] ||
        die "unknown scenario '$sc' (static_small static_large compress_json slow_reader)"
done
for v in DURATION ROUNDS WARMUP THREADS NOISE_MAX RETRIES QUIET_WAIT SMALL_CONNECTIONS \
    LARGE_CONNECTIONS JSON_CONNECTIONS SLOW_CLIENTS SLOW_RATE SLOW_SECONDS; do
    is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
done
((DURATION > 0 && ROUNDS > 0 && SLOW_CLIENTS > 0 && SLOW_RATE > 0)) || die "DURATION, ROUNDS, SLOW_* must be > 0"
need_tools nginx wrk taskset curl python3 ps awk timeout truncate
[[ " $PROXIES " == *" haproxy "* ]] && need_tools haproxy
CLK_TCK=$(getconf CLK_TCK)

setup_work
TEMPLATES=-files
FILES_DIR=$WORK/files
EXTRA_VARS=("FILES_DIR=$FILES_DIR")
RUNS_TSV=$WORK/runs.tsv
SLOW_TSV=$WORK/slow.tsv
printf 'scenario\tround\tname\trequests\trps\tp50_ms\tp99_ms\terrors\tcpu_us\tcpu_us_per_req\tcore0_us_per_req\tproxy_cpu_pct\tcore1_busy_pct\tother_pct\ttries\n' >"$RUNS_TSV"
printf 'name\trss_before_kib\trss_max_kib\tbytes_read\tclients\trate\tseconds\n' >"$SLOW_TSV"

# ---------------------------------------------------------------- the files

mkdir -p "$FILES_DIR"
head -c "$SMALL_SIZE" /dev/urandom | base64 -w 76 | head -c "$SMALL_SIZE" >"$FILES_DIR/small.txt"
head -c "$LARGE_SIZE" /dev/urandom >"$FILES_DIR/large.bin"
truncate -s "$HUGE_SIZE" "$FILES_DIR/huge.bin"        # sparse: 4 GiB of holes, no disk used
python3 "$BENCH_DIR/lib/make_json.py" "$WORK/api.json" 20480
JSON_SIZE=$(stat -c %s "$WORK/api.json")
# nginx's worker drops root for `nobody` (its master runs as root here): let it read the files
chmod 755 "$WORK" "$FILES_DIR"
chmod 644 "$FILES_DIR"/*

# ---------------------------------------------------------------- servers

GATEHOUSE_DESC="not measured"
declare -A GZIP_SIZE=()          # server -> bytes of its gzip-encoded JSON (compress_json check)

# scenario_proxies SCENARIO : the names of PROXIES that can do SCENARIO
scenario_proxies() {
    local name names=()
    for name in $PROXIES; do
        [[ $name == haproxy && $1 != compress_json ]] && continue
        names+=("$name")
    done
    echo "${names[@]}"
}

# check_scenario NAME : the server answers the scenario's request correctly
check_scenario() {
    local name=$1 port=${PORT_OF[$1]} enc
    case $SCENARIO in
    static_small) check_http "$name" "$SMALL_SIZE" /small.txt ;;
    static_large) check_http "$name" "$LARGE_SIZE" /large.bin ;;
    slow_reader) check_http "$name" "$SMALL_SIZE" /small.txt ;;
    compress_json)
        check_http "$name" "$JSON_SIZE" /api/data.json || return 1
        enc=$(curl -sS --max-time 5 -H 'Accept-Encoding: gzip' -o "$WORK/check-$name.gz" \
            -D - "http://127.0.0.1:$port/api/data.json" | tr -d '\r' |
            awk -F': ' 'tolower($1) == "content-encoding" { print $2 }')
        [[ $enc == gzip ]] || { log "$name: the JSON came back with content-encoding '$enc', not gzip"; return 1; }
        gzip -dc "$WORK/check-$name.gz" | cmp -s - "$WORK/api.json" ||
            { log "$name: the gzip body does not decode to the JSON"; return 1; }
        GZIP_SIZE[$name]=$(stat -c %s "$WORK/check-$name.gz")
        ;;
    esac
}

# start_scenario SCENARIO : start the servers that can do it; sets ACTIVE
start_scenario() {
    local sc=$1 name
    ACTIVE=()
    for name in $(scenario_proxies "$sc"); do
        if [[ $name == gatehouse ]]; then
            if ! gatehouse_available; then
                log "SKIP gatehouse: no executable at $GATEHOUSE_BIN"
                GATEHOUSE_FAILED[$sc]="no binary"
                continue
            fi
            if ! start_proxy gatehouse; then
                GATEHOUSE_FAILED[$sc]="did not start"
                continue
            fi
        else
            start_proxy "$name" || die "$name failed to start"
        fi
        if ! check_scenario "$name"; then
            [[ $name == gatehouse ]] || die "$name does not answer correctly ($sc)"
            log "SKIP gatehouse ($sc): it does not answer correctly"
            GATEHOUSE_FAILED[$sc]="check request failed"
            stop_tree "${PID_OF[$name]}"
            continue
        fi
        [[ $name == gatehouse ]] &&
            GATEHOUSE_DESC="$GATEHOUSE_BIN ($(date -r "$GATEHOUSE_BIN" '+%F %T'), sha1 $(sha1sum "$WORK/gatehouse" | cut -c1-12))"
        log "$name on port ${PORT_OF[$name]} (pid ${PID_OF[$name]})"
        ACTIVE+=("$name")
    done
    ((${#ACTIVE[@]} > 0)) || die "no server to measure in $sc"
}

# ---------------------------------------------------------------- load (hooks of lib.sh's measure)

run_load() {
    local name=$1 secs=$2 out=$3 rc=0 port=${PORT_OF[$1]} conns path hdr=()
    case $SCENARIO in
    static_small) conns=$SMALL_CONNECTIONS path=/small.txt ;;
    static_large) conns=$LARGE_CONNECTIONS path=/large.bin ;;
    compress_json) conns=$JSON_CONNECTIONS path=/api/data.json hdr=(-H 'Accept-Encoding: gzip') ;;
    esac
    timeout $((secs + 30)) taskset -c "$AUX_CPU" \
        wrk -t"$THREADS" -c"$conns" -d"${secs}s" --timeout 30s --latency "${hdr[@]}" \
        "http://127.0.0.1:$port$path" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=""
    return "$rc"
}

parse_load() { "${BENCHLIB[@]}" parse-wrk "$1"; }

# slow_run NAME : SLOW_CLIENTS slow readers of the 4 GiB file; appends a row to SLOW_TSV
slow_run() {
    local name=$1 out=$WORK/slow-$1.txt pids before peak bytes len status
    pids=$(tree_pids "${PID_OF[$name]}" | tr '\n' ' ')
    # shellcheck disable=SC2086
    if ! timeout $((SLOW_SECONDS + 60)) taskset -c "$AUX_CPU" python3 "$BENCH_DIR/lib/slow_reader.py" \
        "${PORT_OF[$name]}" /huge.bin "$SLOW_CLIENTS" "$SLOW_RATE" "$SLOW_SECONDS" $pids >"$out" 2>&1; then
        log "$name: slow readers failed: $(tail -n 3 "$out")"
        return 1
    fi
    read -r before peak bytes len status <"$out"
    [[ $len == "$HUGE_SIZE" && $status == 200 ]] || { log "$name: slow reader got status $status, length $len"; return 1; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$before" "$peak" "$bytes" "$SLOW_CLIENTS" \
        "$SLOW_RATE" "$SLOW_SECONDS" >>"$SLOW_TSV"
    log "slow_reader $name: RSS ${before} KiB before, peak ${peak} KiB; clients read $bytes bytes"
}

# ---------------------------------------------------------------- run

log "work dir $WORK; backend + load generator on core $AUX_CPU, servers on core $PROXY_CPU"
start_backend 100 "$WORK/api.json"
log "backend nginx on port ${PORT_OF[backend]} (${JSON_SIZE}-byte JSON); scenarios: $SCENARIOS"
[[ " $PROXIES " == *" haproxy "* ]] && log "HAProxy serves no files: it runs in compress_json only"

for SCENARIO in $SCENARIOS; do
    log "==== scenario $SCENARIO"
    start_scenario "$SCENARIO"
    if [[ $SCENARIO == slow_reader ]]; then
        for name in "${ACTIVE[@]}"; do
            slow_run "$name" || { [[ $name == gatehouse ]] || die "slow_reader against $name failed"
                GATEHOUSE_FAILED[$SCENARIO]="slow readers failed"; }
        done
        for name in "${ACTIVE[@]}"; do stop_tree "${PID_OF[$name]}"; done
        continue
    fi
    warm_up_and_measure
    for name in "${ACTIVE[@]}"; do stop_tree "${PID_OF[$name]}"; done
done

# ---------------------------------------------------------------- report

scenario_desc() {
    case $1 in
    static_small) echo "1 KiB file, HTTP/1.1 keep-alive, wrk -t$THREADS -c$SMALL_CONNECTIONS" ;;
    static_large) echo "100 MiB file, wrk -t$THREADS -c$LARGE_CONNECTIONS --timeout 30s" ;;
    compress_json) echo "${JSON_SIZE}-byte JSON proxied, gzip level 5, wrk -t$THREADS -c$JSON_CONNECTIONS -H 'Accept-Encoding: gzip'" ;;
    slow_reader) echo "4 GiB sparse file, $SLOW_CLIENTS clients reading $SLOW_RATE bytes/s for ${SLOW_SECONDS}s" ;;
    esac
}

mkdir -p "$RESULTS_DIR"
REPORT=$RESULTS_DIR/files-latest.txt
{
    echo "Gatehouse static files and compression benchmark  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "repo $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO_DIR" diff --quiet 2>/dev/null || echo ' (dirty)')," \
        "$(nproc) cores, kernel $(uname -r)"
    echo "versions: $(nginx -v 2>&1 | sed 's/.*: //'), haproxy $(haproxy -v 2>/dev/null | awk 'NR == 1 { print $3 }')," \
        "$(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }' || true), gatehouse $GATEHOUSE_DESC"
    echo "command: SCENARIOS=\"$SCENARIOS\" DURATION=$DURATION ROUNDS=$ROUNDS WARMUP=$WARMUP PROXIES=\"$PROXIES\" bench/files.sh"
    echo "server on core $PROXY_CPU (one worker), backend + wrk on core $AUX_CPU"
    echo
    if (($(wc -l <"$RUNS_TSV") > 1)); then
        echo "Overview:"
        "${BENCHLIB[@]}" overview "$RUNS_TSV"
    fi
    for sc in "${!GATEHOUSE_FAILED[@]}"; do echo "Gatehouse in scenario $sc: ${GATEHOUSE_FAILED[$sc]}"; done
    for sc in $SCENARIOS; do
        echo
        echo "== $sc: $(scenario_desc "$sc")"
        case $sc in
        slow_reader) "${BENCHLIB[@]}" slow "$SLOW_TSV" ;;
        *)
            "${BENCHLIB[@]}" summary "$RUNS_TSV" "$sc"
            [[ $sc == static_large ]] && "${BENCHLIB[@]}" throughput "$RUNS_TSV" "$sc" "$LARGE_SIZE"
            if [[ $sc == compress_json ]]; then
                echo "gzip-encoded size of the ${JSON_SIZE}-byte JSON:$(for n in "${!GZIP_SIZE[@]}"; do printf ' %s %s' "$n" "${GZIP_SIZE[$n]}"; done)"
            fi
            ;;
        esac
    done
    echo
    echo "Per run:"
    column -t -s $'\t' "$RUNS_TSV" 2>/dev/null || cat "$RUNS_TSV"
} >"$REPORT"
cp "$RUNS_TSV" "$RESULTS_DIR/files-latest-runs.tsv"
echo
cat "$REPORT"
echo
log "written $REPORT"
