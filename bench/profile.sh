#!/usr/bin/env bash
# Three back-to-back 10 s saturation runs (64 connections, 1 KB) against a fresh release router,
# with `perf record -g` on the router during the third. Needs a previous `make bench` (for the
# binaries, oha and bench/out/manifests.yaml) and `perf`. Usage: bench/profile.sh [ROUTER_BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUTER=${1:-target/release/switchboard-router}
OUT=bench/out
taskset -c 0 target/release/bench-mock 127.0.0.1:18000 1 > $OUT/profile-mock.log 2>&1 &
M=$!
taskset -c 1 "$ROUTER" --manifests $OUT/manifests.yaml --listen 127.0.0.1:18080 \
  --admin-listen 127.0.0.1:18090 > $OUT/profile-router.log 2>&1 &
R=$!
trap 'kill $M $R 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf 127.0.0.1:18090/readyz >/dev/null && break; sleep 0.2; done
for run in 1 2 3; do
  P=
  if [ $run = 3 ]; then
    perf record -F 499 -g -p $R -o $OUT/perf.data -- sleep 8 >/dev/null 2>&1 &
    P=$!
  fi
  taskset -c 0 bench/.tools/bin/oha --no-tui --output-format json -z 10s -c 64 -m POST \
    -H "Authorization: Bearer sk-sb-bench-0000-0123456789abcdef" -H "Content-Type: application/json" \
    -D $OUT/body-1KB-router.json http://127.0.0.1:18080/v1/chat/completions |
    python3 -c "import json,sys; d=json.load(sys.stdin); print('run $run:', round(d['summary']['requestsPerSec']), 'req/s')"
  [ -n "$P" ] && wait $P
done
grep VmRSS /proc/$R/status
echo "profile: perf report -i $OUT/perf.data --no-children"
