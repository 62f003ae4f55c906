#!/usr/bin/env bash
# Instructions per request through the router, counted by callgrind: repeatable on a noisy VM
# (the count does not depend on what else the machine is doing), so it shows the effect of a
# hot-path change that timed runs cannot resolve. Needs a previous `make bench` (binaries, oha,
# bench/out/manifests.yaml and bodies) and valgrind.
# Usage: bench/callgrind.sh [ROUTER_BIN] [REQUESTS] [BODY: 1KB|16KB]
# Then: callgrind_annotate --inclusive=yes bench/out/callgrind.out | less
set -euo pipefail
cd "$(dirname "$0")/.."
ROUTER=${1:-target/release/switchboard-router}
N=${2:-500}
BODY=${3:-1KB}
OUT=bench/out
KEY="Authorization: Bearer sk-sb-bench-0000-0123456789abcdef"
target/release/bench-mock 127.0.0.1:18000 1 > $OUT/callgrind-mock.log 2>&1 &
M=$!
valgrind --tool=callgrind --callgrind-out-file=$OUT/callgrind.out --instr-atstart=no \
  "$ROUTER" --manifests $OUT/manifests.yaml --listen 127.0.0.1:18080 \
  --admin-listen 127.0.0.1:18090 > $OUT/callgrind-router.log 2>&1 &
R=$!
trap 'kill $M 2>/dev/null || true; kill $R 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -sf 127.0.0.1:18090/readyz >/dev/null && break; sleep 0.5; done
load() {
  bench/.tools/bin/oha --no-tui -n "$1" -c 1 -m POST -H "$KEY" -H "Content-Type: application/json" \
    -D $OUT/body-$BODY-router.json http://127.0.0.1:18080/v1/chat/completions > /dev/null
}
load 50 # warm-up: connections, lazy statics
callgrind_control -i on $R > /dev/null 2>&1
load "$N"
callgrind_control -i off $R > /dev/null 2>&1
kill -TERM $R
wait $R || true
TOTAL=$(callgrind_annotate $OUT/callgrind.out 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$N requests ($BODY): $TOTAL instructions, $((TOTAL / N)) per request"
