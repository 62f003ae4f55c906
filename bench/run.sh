#!/usr/bin/env bash
# make bench / make bench-peers: builds the release binaries, installs the load generator (and,
# with --peers, LiteLLM proxy and Portkey's gateway) into bench/ once, then runs bench/run.py. Writes docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
PYTHON=${PYTHON:-python3}
OHA_VERSION=${OHA_VERSION:-1.16.0}

echo "== building release binaries (router, bench-mock, bench-sse, bench-usage)"
$CARGO build --release -p switchboard-router -p switchboard-bench

if [ ! -x bench/.tools/bin/oha ]; then
  echo "== installing oha $OHA_VERSION from crates.io into bench/.tools (once)"
  $CARGO install oha --version "$OHA_VERSION" --locked --root bench/.tools
fi

if [[ " $* " == *" --peers "* ]] && [ ! -f bench/.venv-litellm/.installed-$(md5sum < bench/requirements-litellm.txt | cut -c1-8) ]; then
  echo "== installing LiteLLM proxy from PyPI into bench/.venv-litellm (once)"
  $PYTHON -m venv bench/.venv-litellm
  bench/.venv-litellm/bin/pip install --quiet --disable-pip-version-check -r bench/requirements-litellm.txt
  touch bench/.venv-litellm/.installed-$(md5sum < bench/requirements-litellm.txt | cut -c1-8)
fi

if [[ " $* " == *" --peers "* ]] && [ ! -f bench/portkey/node_modules/.installed-$(md5sum < bench/portkey/package-lock.json | cut -c1-8) ]; then
  echo "== installing Portkey's gateway from npm into bench/portkey (once)"
  (cd bench/portkey && npm ci --ignore-scripts --no-audit --no-fund --silent)
  touch bench/portkey/node_modules/.installed-$(md5sum < bench/portkey/package-lock.json | cut -c1-8)
fi

command -v taskset >/dev/null || echo "== taskset not found: processes will not be pinned"
exec $PYTHON bench/run.py "$@"
