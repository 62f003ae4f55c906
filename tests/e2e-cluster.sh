#!/usr/bin/env bash
# `make e2e`: the operator's full loop on a real cluster (kind or k3d), when one is reachable.
#
# Runs the operator and a router as local processes against the current kubectl context (no image
# build, no in-cluster install): installs the CRDs, applies examples/quickstart.yaml to a scratch
# namespace, waits for Ready conditions, sends a request through the router, changes the Provider
# and times the change until the router serves it, stops the operator (the router keeps serving),
# restarts it (the router catches up), then deletes what it created.
#
# Skips (exit 0, with a message) when kubectl is missing, no cluster answers, or the context is
# not a kind-*/k3d-* one (set SWITCHBOARD_E2E_ANY_CLUSTER=1 to use another context on purpose).
set -euo pipefail
cd "$(dirname "$0")/.."

skip() { echo "e2e SKIPPED: $*"; exit 0; }
say() { printf '\n== %s\n' "$*"; }

command -v kubectl >/dev/null || skip "kubectl is not installed"
command -v curl >/dev/null || skip "curl is not installed"
kubectl version --request-timeout=5s >/dev/null 2>&1 || skip "no Kubernetes cluster reachable with the current kubectl context"
ctx=$(kubectl config current-context 2>/dev/null || true)
case "$ctx" in
  kind-*|k3d-*) ;;
  *) [ "${SWITCHBOARD_E2E_ANY_CLUSTER:-}" = 1 ] || skip "context '$ctx' is not kind-*/k3d-* (set SWITCHBOARD_E2E_ANY_CLUSTER=1 to use it anyway)" ;;
esac

NS=switchboard-e2e
SYS=switchboard-system
OP_PORT=${SWITCHBOARD_E2E_OPERATOR_PORT:-18081}
TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
KEY=sk-sb-quickstart-0123456789
BIN=${CARGO_TARGET_DIR:-target}/debug
LOGS=$(mktemp -d)
op_pid=""; router_pid=""

cleanup() {
  [ -n "$router_pid" ] && kill "$router_pid" 2>/dev/null || true
  [ -n "$op_pid" ] && kill "$op_pid" 2>/dev/null || true
  kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  kubectl -n "$SYS" delete secret switchboard-config >/dev/null 2>&1 || true
  kubectl -n "$SYS" delete lease switchboard-e2e >/dev/null 2>&1 || true
  echo "logs: $LOGS"
}
trap cleanup EXIT

start_operator() {
  SWITCHBOARD_OPERATOR_ROUTER_TOKEN=$TOKEN "$BIN/switchboard-operator" --namespace "$NS" \
    --listen "127.0.0.1:$OP_PORT" --admin-listen 127.0.0.1:0 --lease-name switchboard-e2e \
    --snapshot-secret "$SYS/switchboard-config" >>"$LOGS/operator.log" 2>&1 &
  op_pid=$!
}

chat() {
  curl -sf http://127.0.0.1:18080/v1/chat/completions -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' \
    -d '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'
}

# wait_for SECONDS DESCRIPTION COMMAND...
wait_for() {
  local limit=$1 what=$2; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - start)) -lt "$limit" ] || { echo "FAILED: $what (after ${limit}s)"; exit 1; }
    sleep 0.1
  done
}

say "build"
cargo build -q -p switchboard-operator -p switchboard-router

say "install CRDs and namespaces (context $ctx)"
kubectl apply -f crds/
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kubectl create namespace "$SYS" --dry-run=client -o yaml | kubectl apply -f -
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -

say "operator, then examples/quickstart.yaml"
start_operator
kubectl -n "$NS" apply -f examples/quickstart.yaml
kubectl -n "$NS" wait --for=condition=Ready provider/mock modelroute/gpt-4o-mini apikey/quickstart --timeout=60s
kubectl -n "$NS" get providers,modelroutes,apikeys,budgets

say "router following the operator"
SWITCHBOARD_OPERATOR_TOKEN=$TOKEN "$BIN/switchboard-router" --operator-url "http://127.0.0.1:$OP_PORT" \
  --listen 127.0.0.1:18080 --admin-listen 127.0.0.1:19090 >>"$LOGS/router.log" 2>&1 &
router_pid=$!
wait_for 30 "router ready" curl -sf http://127.0.0.1:19090/readyz
chat | grep -q 'echo: Hello' || { echo "FAILED: unexpected reply"; chat; exit 1; }
echo "request served: $(curl -s http://127.0.0.1:19090/readyz)"

say "change a Provider and time it"
t0=$(date +%s%N)
kubectl -n "$NS" patch provider mock --type merge -p '{"spec":{"mock":{"reply":"e2e changed"}}}' >/dev/null
wait_for 10 "router serving the change" sh -c "$(declare -f chat); KEY=$KEY chat | grep -q 'e2e changed'"
echo "propagation: $(( ($(date +%s%N) - t0) / 1000000 )) ms (kubectl patch to the router serving it)"

say "operator stopped: the router keeps serving"
kill "$op_pid"; wait "$op_pid" 2>/dev/null || true; op_pid=""
chat | grep -q 'e2e changed' || { echo "FAILED: router stopped serving without the operator"; exit 1; }
kubectl -n "$NS" patch provider mock --type merge -p '{"spec":{"mock":{"reply":"after restart"}}}' >/dev/null

say "operator restarted: the router catches up"
start_operator
wait_for 30 "router catching up" sh -c "$(declare -f chat); KEY=$KEY chat | grep -q 'after restart'"
echo "caught up: $(curl -s http://127.0.0.1:19090/readyz)"

say "an invalid object gets Ready=False with the reason"
kubectl -n "$NS" apply -f - <<'YAML'
apiVersion: switchboard.dev/v1alpha1
kind: ModelRoute
metadata: {name: e2e-ghost}
spec: {model: e2e/ghost, targets: [{provider: nobody, model: x}]}
YAML
wait_for 30 "Ready=False on e2e-ghost" sh -c "kubectl -n $NS get modelroute e2e-ghost -o jsonpath='{.status.conditions[0].reason}' | grep -q UnknownProvider"
kubectl -n "$NS" get modelroute e2e-ghost -o jsonpath='{.status.conditions[0].message}'; echo
chat | grep -q 'after restart' || { echo "FAILED: the invalid route disturbed serving"; exit 1; }

say "e2e PASSED"
