# shellcheck shell=bash
# Shared helpers for bench/run.sh and bench/memory.sh. Source it; do not run it.
# Expects: set -euo pipefail, BENCH_DIR set to the bench/ directory.
# Provides: a temp work dir ($WORK), process tracking + cleanup on exit, port
# picking, config rendering, and start_backend / start_proxy for the three proxies.

PROXY_CPU=${PROXY_CPU:-0}     # core for the proxy under test
AUX_CPU=${AUX_CPU:-1}         # core for the backend and the load generator
START_TIMEOUT=${START_TIMEOUT:-10}
# idle upstream connections kept per proxy (nginx `keepalive N`, Gatehouse `keepalive: N`;
# HAProxy's http-reuse pool is unbounded). Keep it >= the requests in flight (CONNECTIONS,
# and H2_CONNECTIONS x H2_STREAMS = 100 for h2): a smaller pool closes and reopens upstream
# connections under load (measured: ~0.09 connect/request at 32 with 50 connections; at 64
# with 100 h2 streams Gatehouse spent ~10% more CPU per request on connects and closes).
UPSTREAM_KEEPALIVE=${UPSTREAM_KEEPALIVE:-128}
BENCHLIB=(python3 "$BENCH_DIR/lib/benchlib.py")

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_tools() {
    local t
    for t in "$@"; do command -v "$t" >/dev/null 2>&1 || die "missing tool: $t"; done
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ---------------------------------------------------------------- processes

declare -A PID_OF=()          # name -> pid of the process we started
declare -A PORT_OF=()         # name -> listening port
STARTED_PIDS=()

# pid and all its descendants, one per line
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { pid[NR] = $1; ppid[NR] = $2 }
        END {
            want[root] = 1
            do {
                changed = 0
                for (i = 1; i <= NR; i++)
                    if (!(pid[i] in want) && (ppid[i] in want)) { want[pid[i]] = 1; changed = 1 }
            } while (changed)
            for (p in want) print p
        }'
}

alive() { kill -0 "$1" 2>/dev/null; }

# stop one process tree: TERM, wait up to 5 s, then KILL what is left
stop_tree() {
    local root=$1 pids i
    pids=$(tree_pids "$root" | tr '\n' ' ')
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        local left=""
        for p in $pids; do alive "$p" && left+="$p "; done
        [[ -z $left ]] && break
        sleep 0.1
    done
    for p in $pids; do if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi; done
    wait "$root" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local p
    [[ -n ${WRK_PID:-} ]] && stop_tree "$WRK_PID"       # a load generator still running
    for p in "${STARTED_PIDS[@]}"; do stop_tree "$p"; done
    if [[ -n ${WORK:-} && -d $WORK ]]; then
        if [[ ${KEEP_WORK:-0} == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}

setup_work() {
    WORK=$(mktemp -d -t gatehouse-bench.XXXXXX)
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -p "$WORK"/tmp/{body,proxy,fastcgi,uwsgi,scgi} "$WORK/www"
    # 1000+ connections per process: lift the soft fd limit to the hard one.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# spawn NAME CPU CMD... : run CMD pinned to CPU in the background, output to $WORK/NAME.log
spawn() {
    local name=$1 cpu=$2
    shift 2
    taskset -c "$cpu" "$@" >"$WORK/$name.log" 2>&1 </dev/null &
    local pid=$!
    PID_OF[$name]=$pid
    STARTED_PIDS+=("$pid")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port NAME : until NAME's port accepts connections; fail if it exits or times out
wait_port() {
    local name=$1 port=${PORT_OF[$1]} pid=${PID_OF[$1]} i
    for ((i = 0; i < START_TIMEOUT * 20; i++)); do
        port_open "$port" && return 0
        alive "$pid" || { log "$name exited during startup"; show_log "$name"; return 1; }
        sleep 0.05
    done
    log "$name did not open port $port within ${START_TIMEOUT}s"
    show_log "$name"
    return 1
}

show_log() {
    [[ -s $WORK/$1.log ]] || return 0
    log "last lines of $1 output:"
    tail -n 20 "$WORK/$1.log" | sed 's/^/    /' >&2
}

# sum of utime+stime (clock ticks) over a process tree
cpu_ticks() {
    local total=0 p line rest
    for p in $(tree_pids "$1"); do
        read -r line <"/proc/$p/stat" 2>/dev/null || continue
        rest=${line##*) }                 # drop "pid (comm) ", comm may contain spaces
        read -r -a f <<<"$rest"           # f[0] = state (field 3) -> utime = f[11], stime = f[12]
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# sum of VmRSS (KiB) over a process tree
rss_kb() {
    local total=0 p kb
    for p in $(tree_pids "$1"); do
        kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

# "busy total irq" jiffies of one CPU from /proc/stat: busy = all but idle and
# iowait; irq = hardirq + softirq time (loopback TCP work lands there; with tick-based
# accounting it is also charged to the task it interrupted)
cpu_jiffies() {
    awk -v cpu="cpu$1" '$1 == cpu {
        t = 0; for (i = 2; i <= NF; i++) t += $i
        print t - $5 - $6, t, $7 + $8 }' /proc/stat
}

# CPU ticks of this shell's waited-for children (cutime + cstime); a builtin read, no fork
children_ticks() {
    local line rest
    read -r line <"/proc/$$/stat"
    rest=${line##*) }
    read -r -a f <<<"$rest"               # f[13] = cutime (field 16), f[14] = cstime (field 17)
    echo $((f[13] + f[14]))
}

# ---------------------------------------------------------------- servers

render() { "${BENCHLIB[@]}" render "$@"; }

# start_backend BODY_SIZE [JSON_FILE] : nginx origin on AUX_CPU answering any GET with
# BODY_SIZE bytes of 'x' (text/plain), or with the JSON file (application/json) when given
start_backend() {
    local size=$1 json=${2:-} body directive
    body=$(head -c "$size" /dev/zero | tr '\0' 'x')
    printf '%s' "$body" >"$WORK/www/body.txt"
    if [[ -n $json ]]; then
        cp "$json" "$WORK/www/body.json"
        size=$(stat -c %s "$json")
        directive="            try_files /body.json =404;"
    elif ((size <= 3000)); then
        # cheapest path: a literal body (nginx config tokens are limited to ~4 KiB)
        directive="            return 200 \"$body\";"
    else
        directive="            try_files /body.txt =404;"
    fi
    PORT_OF[backend]=$(free_port)
    render "$BENCH_DIR/templates/backend-nginx.conf" "$WORK/backend.conf" \
        "DIR=$WORK" "PORT=${PORT_OF[backend]}" "BODY_DIRECTIVE=$directive"
    spawn backend "$AUX_CPU" nginx -p "$WORK" -e "$WORK/backend-error.log" -c "$WORK/backend.conf"
    wait_port backend || die "backend failed to start"
    check_http backend "$size" || die "backend does not answer correctly"
}

# TLS_MODE=1: start_proxy starts the proxies with a TLS 1.3 listener (certificate from
# make_cert) offering h2 and http/1.1 by ALPN, and check_http uses https://
TLS_MODE=${TLS_MODE:-0}

# make_cert : self-signed ECDSA P-256 certificate for 127.0.0.1 in $WORK/tls (made at run
# time, never committed): cert.pem, key.pem, and combined.pem (cert + key, for HAProxy)
make_cert() {
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >"$WORK/tls/openssl.log" 2>&1 ||
        { cat "$WORK/tls/openssl.log" >&2; die "openssl could not make the certificate"; }
    cat "$WORK/tls/cert.pem" "$WORK/tls/key.pem" >"$WORK/tls/combined.pem"
}

# TEMPLATES: which configs start_proxy renders: "" (templates/nginx.conf, haproxy.cfg,
# gatehouse.yaml) or a suffix such as "-files" (templates/nginx-files.conf, ...); EXTRA_VARS:
# more KEY=VALUE pairs for those templates
TEMPLATES=${TEMPLATES:-}
EXTRA_VARS=()

# start_proxy NAME : start nginx | haproxy | gatehouse on PROXY_CPU in front of the backend
start_proxy() {
    local name=$1 t=$WORK/tls
    PORT_OF[$name]=$(free_port)
    local vars=("DIR=$WORK" "PORT=${PORT_OF[$name]}" "BACKEND_PORT=${PORT_OF[backend]}"
        "UPSTREAM_KEEPALIVE=$UPSTREAM_KEEPALIVE" ${EXTRA_VARS[@]+"${EXTRA_VARS[@]}"})
    if [[ $TLS_MODE == 1 ]]; then
        # nginx's default ssl_session_cache is none but session tickets are on; all three keep
        # their default resumption settings (the clients of run.sh decide whether to resume)
        vars+=("GATEHOUSE_TLS=, tls: { certificates: [ { cert: \"$t/cert.pem\", key: \"$t/key.pem\" } ], min_version: \"1.3\" }"
            "NGINX_LISTEN= ssl http2"
            "NGINX_TLS=        ssl_certificate $t/cert.pem;
        ssl_certificate_key $t/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;"
            "HAPROXY_BIND= ssl crt $t/combined.pem ssl-min-ver TLSv1.3 alpn h2,http/1.1")
    else
        vars+=("GATEHOUSE_TLS=" "NGINX_LISTEN=" "NGINX_TLS=" "HAPROXY_BIND=")
    fi
    case $name in
    nginx)
        render "$BENCH_DIR/templates/nginx$TEMPLATES.conf" "$WORK/nginx.conf" "${vars[@]}"
        spawn nginx "$PROXY_CPU" nginx -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf"
        ;;
    haproxy)
        render "$BENCH_DIR/templates/haproxy$TEMPLATES.cfg" "$WORK/haproxy.cfg" "${vars[@]}"
        spawn haproxy "$PROXY_CPU" haproxy -db -f "$WORK/haproxy.cfg"
        ;;
    gatehouse)
        render "$BENCH_DIR/templates/gatehouse$TEMPLATES.yaml" "$WORK/gatehouse.yaml" "${vars[@]}"
        # run a private copy: others may rebuild build/gatehouse while we measure
        cp "$GATEHOUSE_BIN" "$WORK/gatehouse"
        spawn gatehouse "$PROXY_CPU" "$WORK/gatehouse" -c "$WORK/gatehouse.yaml"
        ;;
    *) die "unknown proxy: $name" ;;
    esac
    wait_port "$name" || { stop_tree "${PID_OF[$name]}"; return 1; }
}

# check_http NAME SIZE [PATH] : GET PATH (default /) returns 200 with exactly SIZE body bytes
# (TLS_MODE=1: over https; CHECK_H2=1: also require that ALPN selects h2)
CHECK_H2=${CHECK_H2:-0}
check_http() {
    local name=$1 size=$2 path=${3:-/} out
    local scheme=http opts=() ver
    # --tlsv1.3: the run is void unless every peer negotiates TLS 1.3, as the scenarios state
    [[ $TLS_MODE == 1 && $name != backend ]] && { scheme=https; opts=(-k --tlsv1.3); }
    [[ $CHECK_H2 == 1 && $name != backend ]] && opts+=(--http2)
    read -r out ver < <(curl -sS --max-time 5 "${opts[@]}" -o "$WORK/check-$name.body" \
        -w '%{http_code} %{http_version}\n' "$scheme://127.0.0.1:${PORT_OF[$name]}$path") ||
        { log "$name: request failed"; return 1; }
    if [[ $CHECK_H2 == 1 && $name != backend && $ver != 2 ]]; then
        log "$name: ALPN did not select h2 (curl --http2 got HTTP/$ver)"
        return 1
    fi
    local got
    got=$(stat -c %s "$WORK/check-$name.body")
    if [[ $out != 200 || $got != "$size" ]]; then
        log "$name: expected 200 with $size bytes, got HTTP $out with $got bytes"
        return 1
    fi
}

# resolve GATEHOUSE_BIN (default build/gatehouse of the repo); 0 if usable
# (a relative GATEHOUSE_BIN is taken from the current directory, else from the repo)
gatehouse_available() {
    GATEHOUSE_BIN=${GATEHOUSE_BIN:-build/gatehouse}
    if [[ $GATEHOUSE_BIN != /* ]]; then
        if [[ -e $GATEHOUSE_BIN ]]; then GATEHOUSE_BIN=$PWD/$GATEHOUSE_BIN; else GATEHOUSE_BIN=$REPO_DIR/$GATEHOUSE_BIN; fi
    fi
    [[ -x $GATEHOUSE_BIN ]]
}

# ---------------------------------------------------------------- measuring
# Shared by run.sh and files.sh. The sourcing script defines run_load NAME SECONDS OUTFILE (the
# load generator of $SCENARIO) and parse_load OUTFILE ("requests rps p50_ms p99_ms errors"),
# and sets SCENARIO, DURATION, RUNS_TSV, NOISE_MAX, RETRIES, QUIET_WAIT and CLK_TCK.

declare -A GATEHOUSE_FAILED=()     # scenario -> why Gatehouse was skipped or dropped

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

# warm_up_and_measure : WARMUP seconds of load per server of ACTIVE, then ROUNDS rounds of
# `measure` in an order rotated every round. Another server's failure is fatal; Gatehouse's
# drops it from the scenario's remaining runs (GATEHOUSE_FAILED[$SCENARIO] says why).
warm_up_and_measure() {
    local name round i n DROPPED=""
    if ((WARMUP > 0)); then
        for name in "${ACTIVE[@]}"; do
            log "warm-up $name (${WARMUP}s)"
            if ! run_load "$name" "$WARMUP" "$WORK/warmup-$SCENARIO-$name.txt"; then
                [[ $name == gatehouse ]] || die "warm-up against $name failed"
                log "warm-up against gatehouse failed:"; tail -n 30 "$WORK/warmup-$SCENARIO-$name.txt" >&2
            fi
        done
    fi
    for ((round = 1; round <= ROUNDS; round++)); do
        n=${#ACTIVE[@]}
        for ((i = 0; i < n; i++)); do
            name=${ACTIVE[$(((i + round - 1) % n))]}     # rotate the order every round
            [[ $name == "$DROPPED" ]] && continue
            if ! measure "$round" "$name"; then
                [[ $name == gatehouse ]] || die "measurement of $name failed ($SCENARIO)"
                log "dropping gatehouse from the remaining runs of $SCENARIO"
                # shellcheck disable=SC2034  # read by the scripts' reports
                GATEHOUSE_FAILED[$SCENARIO]="run failed in round $round (see the log above)"
                DROPPED=gatehouse
            fi
        done
    done
}
