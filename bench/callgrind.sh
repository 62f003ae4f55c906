#!/usr/bin/env bash
# Instructions per request, counted by callgrind: repeatable to the instruction on a noisy VM,
# where timed runs are not. The release router and the zero-work relays (bench-relay: the TCP
# relay, the floor of any proxy, and `--http`, the floor of an HTTP proxy on hyper) are each run under callgrind in front of bench-mock and driven with the same load
# (concurrency 1, one keep-alive connection, N requests after 50 warm-ups); the router/relay
# ratio is printed last.
#
# Needs the release binaries (switchboard-router, bench-relay, bench-mock; `make bench` builds
# them) and valgrind; the load is a Python client (one connection, requests one at a time). The manifest and bodies are
# written by `bench/run.py --fixtures`.
#
# Usage: bench/callgrind.sh [ROUTER_BIN] [REQUESTS] [BODY: 1KB|16KB]
# ROUTER_ONLY=1 counts the router alone (no relays).
# ROUTER_ARGS adds router flags (e.g. ROUTER_ARGS="--usage-store off" for the router without the
# usage store; by default every request is recorded in SQLite, as in `make bench`).
# Then: callgrind_annotate --inclusive=yes bench/out/callgrind.out | less
#       (bench/out/callgrind-relay.out for the relay)
set -euo pipefail
cd "$(dirname "$0")/.."
RELEASE=${CARGO_TARGET_DIR:-target}/release
ROUTER=${1:-$RELEASE/switchboard-router}
N=${2:-500}
BODY=${3:-1KB}
OUT=bench/out
mkdir -p $OUT
python3 bench/run.py --fixtures > /dev/null
rm -rf $OUT/state-callgrind

$RELEASE/bench-mock 127.0.0.1:18000 1 > $OUT/callgrind-mock.log 2>&1 &
M=$!
P=
trap 'kill $M 2>/dev/null || true; [ -n "$P" ] && kill $P 2>/dev/null || true' EXIT

load() { # URL BODY_FILE COUNT: one keep-alive connection, requests one after another
  python3 - "$@" <<'PY'
import http.client, sys, urllib.parse
url, body, n = urllib.parse.urlsplit(sys.argv[1]), open(sys.argv[2], "rb").read(), int(sys.argv[3])
conn = http.client.HTTPConnection(url.hostname, url.port)
headers = {"Authorization": "Bearer sk-sb-bench-0000-0123456789abcdef", "Content-Type": "application/json"}
for _ in range(n):
    conn.request("POST", url.path, body, headers)
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{sys.argv[1]} answered {r.status}")
PY
}

# count NAME URL BODY_FILE READY_CHECK ARGV...: runs ARGV under callgrind, instruments only the
# measured requests, sets TOTAL to the instructions counted.
count() {
  local name=$1 url=$2 body=$3 ready=$4
  shift 4
  valgrind --tool=callgrind --callgrind-out-file=$OUT/callgrind$name.out --instr-atstart=no \
    "$@" > $OUT/callgrind$name.log 2>&1 &
  P=$!
  for _ in $(seq 300); do eval "$ready" && break; sleep 0.5; done
  load "$url" "$body" 50 # warm-up: connections, lazy statics
  callgrind_control -i on $P > /dev/null 2>&1
  load "$url" "$body" "$N"
  callgrind_control -i off $P > /dev/null 2>&1
  kill -TERM $P
  wait $P || true
  P=
  TOTAL=$(callgrind_annotate $OUT/callgrind$name.out 2>/dev/null |
    awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
}

count "" http://127.0.0.1:18080/v1/chat/completions $OUT/body-$BODY-router.json \
  "curl -sf 127.0.0.1:18090/readyz >/dev/null" \
  "$ROUTER" --manifests $OUT/manifests.yaml --listen 127.0.0.1:18080 \
  --admin-listen 127.0.0.1:18090 --state-dir $OUT/state-callgrind ${ROUTER_ARGS:-}
ROUTER_TOTAL=$TOTAL
echo "router: $N requests ($BODY): $ROUTER_TOTAL instructions, $((ROUTER_TOTAL / N)) per request"
[ -n "${ROUTER_ONLY:-}" ] && exit 0

count -relay http://127.0.0.1:18070/v1/chat/completions $OUT/body-$BODY-relay.json \
  "grep -qs 'bench-relay on' $OUT/callgrind-relay.log" \
  $RELEASE/bench-relay 127.0.0.1:18070 127.0.0.1:18000
RELAY_TOTAL=$TOTAL
count -relay-http http://127.0.0.1:18071/v1/chat/completions $OUT/body-$BODY-relay.json \
  "grep -qs 'bench-relay --http on' $OUT/callgrind-relay-http.log" \
  $RELEASE/bench-relay --http 127.0.0.1:18071 127.0.0.1:18000
RELAY_HTTP_TOTAL=$TOTAL

echo "relay: $N requests ($BODY): $RELAY_TOTAL instructions, $((RELAY_TOTAL / N)) per request"
echo "relay-http: $N requests ($BODY): $RELAY_HTTP_TOTAL instructions, $((RELAY_HTTP_TOTAL / N)) per request"
python3 -c "print(f'router/relay: {$ROUTER_TOTAL / $RELAY_TOTAL:.2f}x, router/relay-http: {$ROUTER_TOTAL / $RELAY_HTTP_TOTAL:.2f}x')"
