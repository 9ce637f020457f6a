#!/usr/bin/env bash
# Runs every test: setup, build, unit tests, static analysis (make lint: clang-tidy and
# cppcheck), integration tests, the sanitizer pass (ASan+UBSan, slow tests excluded) and each
# libFuzzer harness for FUZZ_SECONDS (default 10).
# Exits non-zero if anything failed; the last line is always `N passed, N failed`, summing the
# pytest counts, the unit-test counts, one for lint and one per fuzz harness.
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-10}
JOBS=$(nproc 2>/dev/null || echo 2)
LOGS=build/test-logs
PASSED=0
FAILED=0
SUMMARY=()
START=$SECONDS

note() { SUMMARY+=("$(printf '%-22s %s' "$1" "$2")"); }

# run NAME TIMEOUT CMD...: runs CMD, output to the console and to $LOGS/NAME.log; sets RC.
run() {
  local name=$1 limit=$2
  shift 2
  echo "=== $name: $*"
  # libFuzzer's per-input progress lines (`#1234 NEW ...`) go to the log file only.
  timeout --kill-after=30 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log" |
    grep --line-buffered -vE '^#[0-9]+[[:space:]]'
  RC=${PIPESTATUS[0]}
  [ "$RC" -eq 124 ] && echo "=== $name: timed out after $limit"
  return 0
}

# Unit-test lines: `name: N passed, N failed`.
count_unit() {
  local log=$1 p=0 f=0 line
  while read -r line; do
    set -- $(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/' <<<"$line")
    p=$((p + $1)); f=$((f + $2))
  done < <(grep -E '^[A-Za-z0-9_./-]+: [0-9]+ passed, [0-9]+ failed$' "$log")
  echo "$p $f"
}

# pytest's closing summary, e.g. `2 failed, 149 passed, 3 deselected in 80.1s`.
count_pytest() {
  local line p f e
  line=$(grep -E '^=* ?[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed)\b.* in [0-9.]+s' "$1" | tail -1)
  [ -z "$line" ] && { echo "none"; return; }
  p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
  f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
  e=$(grep -oE '[0-9]+ errors?' <<<"$line" | grep -oE '[0-9]+' || echo 0)
  echo "$p $((f + e))"
}

# add STEP PASSED FAILED RC: adds counts; a failed command that reported no failure counts 1.
add() {
  local step=$1 p=$2 f=$3 rc=$4
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
  note "$step" "$p passed, $f failed (exit $rc)"
}

mkdir -p "$LOGS"

run setup 900 scripts/setup.sh
add setup 0 0 "$RC"

PY=python3
for cand in /usr/bin/python3 python3; do
  if "$cand" -c 'import pytest, requests' 2>/dev/null; then PY=$cand; break; fi
done
PYTEST="$PY -m pytest"

run build 600 make -j"$JOBS"
add build 0 0 "$RC"

run unit 300 make -j"$JOBS" unit
read -r p f < <(count_unit "$LOGS/unit.log")
add unit "$p" "$f" "$RC"

run lint 600 make lint LINT_JOBS="$JOBS"
if [ "$RC" -eq 0 ]; then add lint 1 0 0; else add lint 0 1 "$RC"; fi

run integration 900 make integration PYTEST="$PYTEST"
read -r p f < <(count_pytest "$LOGS/integration.log" | sed 's/^none$/0 1/')
add integration "$p" "$f" "$RC"

run asan 1200 make -j"$JOBS" asan PYTEST="$PYTEST" PYTEST_ARGS='-m "not slow"'
read -r up uf < <(count_unit "$LOGS/asan.log")
read -r p f < <(count_pytest "$LOGS/asan.log" | sed 's/^none$/0 1/')
add asan $((up + p)) $((uf + f)) "$RC"

harnesses=$(ls tests/fuzz/fuzz_*.c 2>/dev/null | wc -l)
run fuzz 900 make -j"$JOBS" fuzz FUZZ_SECONDS="$FUZZ_SECONDS"
done_runs=$(grep -cE '^Done [0-9]+ runs in' "$LOGS/fuzz.log")
[ "$done_runs" -gt "$harnesses" ] && done_runs=$harnesses
add fuzz "$done_runs" $((harnesses - done_runs)) "$RC"

echo
echo "=== summary ($((SECONDS - START)) s; logs in $LOGS/)"
printf '%s\n' "${SUMMARY[@]}"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
