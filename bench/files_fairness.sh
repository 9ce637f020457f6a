#!/bin/sh
# Fairness of a large download (issue 13): one worker serves a 4 GiB sparse file to curl
# (to /dev/null, as fast as loopback goes) while wrk -c1 -t1 requests a 1 KiB file on the same
# worker for 3 s. Prints wrk's latency (p50/p99/max) and the downloads' throughput.
# usage: bench/files_fairness.sh [BINARY]   (default build/gatehouse; needs curl and wrk)
set -eu
B=${1:-build/gatehouse}
D=$(mktemp -d)
trap 'kill $P 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$D"' EXIT
mkdir "$D/www"
truncate -s 4G "$D/www/big.bin"
head -c 1024 /dev/urandom > "$D/www/small.bin"
cat > "$D/g.yaml" <<Y
workers: 1
logs: {access: "off", error: stderr, level: info}
limits: {max_requests_per_connection: 100000000}
listen: [{address: "127.0.0.1:0"}]
sites:
  - name: main
    hosts: ["*"]
    routes:
      - path: /
        files: {root: $D/www}
Y
"$B" -c "$D/g.yaml" 2>"$D/err" &
P=$!
for _ in 1 2 3 4 5 6 7 8 9 10; do grep -q 'ready:' "$D/err" && break; sleep 0.2; done
PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$D/err" | head -1 | cut -d: -f2)
URL=http://127.0.0.1:$PORT
curl -s -o /dev/null "$URL/big.bin"   # warms the page cache (a fresh sparse file is slow once)
for _ in 1 2; do curl -s -o /dev/null -w "download alone: %{speed_download} B/s\n" "$URL/big.bin"; done
(curl -s -o /dev/null -w "download with wrk: %{speed_download} B/s\n" "$URL/big.bin") &
C=$!
sleep 0.3
wrk -c1 -t1 -d3 --latency "$URL/small.bin" | grep -E "Latency  |50%|99%|Requests/sec"
wait $C
