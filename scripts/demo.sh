#!/usr/bin/env bash
# Builds Gatehouse and runs it on 127.0.0.1:8080 (examples/demo.yaml) in front of the test
# backend on 127.0.0.1:9090. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
make -j"$(nproc)"

PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
log=$(mktemp)
"$PY" tests/integration/backend.py --host 127.0.0.1 --port 9090 >"$log" 2>&1 &
backend=$!
cleanup() {
  kill "$backend" 2>/dev/null || true
  wait "$backend" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

for _ in $(seq 50); do
  grep -q "listening on" "$log" && break
  if ! kill -0 "$backend" 2>/dev/null; then
    echo "demo: the backend did not start:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.1
done
grep -q "listening on" "$log" || { echo "demo: the backend did not start" >&2; exit 1; }

echo "Backend on http://127.0.0.1:9090/ (try /echo, /bytes?n=1000, /delay?ms=500)"
echo "Open http://127.0.0.1:8080/   (also /health, /docs, /echo)   Ctrl-C to stop"
build/gatehouse -c examples/demo.yaml
