# Switchboard — the front door. `make help` lists the targets.
CARGO       ?= cargo
VENV        ?= $(CURDIR)/.venv
PYTHON      ?= python3
MANIFESTS   ?= examples/quickstart.yaml
# Container images: `make images` uses docker, else podman (override with CONTAINER_ENGINE=...).
CONTAINER_ENGINE ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)
IMAGE_PREFIX ?= ghcr.io/switchboard-dev/
IMAGE_TAG    ?= $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)

.PHONY: help run build test test-rust venv lint fmt gen check-clean clean e2e chart-crds images bench bench-peers bench-usage bench-controlplane bench-console bench-cache bench-identity bench-replicas

help: ## List targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

run: ## Run the router standalone on $(MANIFESTS) (API :8080, admin :9090)
	$(CARGO) run -p switchboard-router -- --manifests $(MANIFESTS)

build: ## Build every crate
	$(CARGO) build --workspace --all-targets

venv: ## Everything the tests need, pinned: SDKs, redis-server, Postgres, chromium, helm, kubectl, agent CLIs
	$(PYTHON) tests/tools/bootstrap.py --venv $(VENV)

test: venv ## Run every test (Rust unit, integration, e2e, SDK, browser and chart), tools from `make venv`
	set -a && . $(VENV)/test-tools.env && set +a && $(CARGO) test --workspace

lint: ## rustfmt check and clippy with warnings denied
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

gen: ## Regenerate the CRD YAML in crds/ (and the Helm chart's copy) from the Rust types
	$(CARGO) run -q -p switchboard-operator --bin crdgen -- crds
	@$(MAKE) -s chart-crds

check-clean: gen ## Fail when generated files differ from what is committed
	@git diff --exit-code -- crds charts/switchboard/crds || (echo "crds/ is stale: run 'make gen' and commit" && exit 1)

e2e: ## Operator + router on a real cluster (kind/k3d) when kubectl reaches one; skips otherwise
	tests/e2e-cluster.sh

chart-crds: ## Copy crds/ into the Helm chart (run after `make gen`; a test fails when they differ)
	rm -f charts/switchboard/crds/*.yaml
	cp crds/*.yaml charts/switchboard/crds/

images: ## Build the router and operator images with docker or podman (IMAGE_PREFIX, IMAGE_TAG)
	@if [ -z "$(CONTAINER_ENGINE)" ] || ! $(CONTAINER_ENGINE) info >/dev/null 2>&1; then \
	  echo "images: no working container engine (docker or podman) on this machine; nothing was built."; \
	  echo "        Install one, or set CONTAINER_ENGINE=/path/to/docker, then run 'make images' again."; \
	  exit 1; \
	fi
	for c in router operator; do \
	  $(CONTAINER_ENGINE) build -f docker/$$c.Dockerfile -t $(IMAGE_PREFIX)switchboard-$$c:$(IMAGE_TAG) . || exit 1; \
	done

bench: ## Benchmarks: release router vs direct on a mock upstream; writes docs/benchmarks.md (~6 min)
	bench/run.sh

bench-peers: ## `make bench` plus LiteLLM proxy (PyPI, in bench/.venv-litellm) and Portkey's gateway (npm, in bench/portkey) side by side
	bench/run.sh --peers

bench-usage: ## Only the usage store's rows of `make bench` (store off/SQLite/Postgres, write rates, 10M-row queries)
	bench/run.sh --usage-only

bench-controlplane: ## Control plane at 1k/10k/100k keys: compile, one change, snapshot bytes, RSS, operator→router latency; writes its section of docs/benchmarks.md (~5 min)
	$(CARGO) build --release -p switchboard-router -p switchboard-bench --bin switchboard-router --bin bench-controlplane
	$${CARGO_TARGET_DIR:-target}/release/bench-controlplane --write docs/benchmarks.md

bench-identity: ## Admitting a request with a ServiceAccount token (RS256, ES256; cached or not) vs a static key, in-process; writes its section of docs/benchmarks.md (~1 min)
	$(CARGO) build --release -p switchboard-bench --bin bench-identity
	$${CARGO_TARGET_DIR:-target}/release/bench-identity --write docs/benchmarks.md

bench-replicas: ## Three routers on one Redis (lease and per-request ledger) vs one standalone router: saturation ratio and Redis commands per request; writes its section of docs/benchmarks.md (~3 min)
	$(CARGO) build --release -p switchboard-router -p switchboard-bench --bin switchboard-router --bin bench-mock
	@[ -x bench/.tools/bin/oha ] || $(CARGO) install oha --version 1.16.0 --locked --root bench/.tools
	$(PYTHON) bench/replicas.py

bench-console: ## The console's server time per page on a SQLite store of 10 million seeded records (BENCH_USAGE_ROWS); writes its section of docs/benchmarks.md
	$(CARGO) build --release -p switchboard-bench --bin bench-usage --bin bench-console
	mkdir -p bench/out && rm -f bench/out/console.db*
	$${CARGO_TARGET_DIR:-target}/release/bench-usage seed --store sqlite://$(CURDIR)/bench/out/console.db --rows $${BENCH_USAGE_ROWS:-10000000} > bench/out/console-seed.json
	$${CARGO_TARGET_DIR:-target}/release/bench-console --store sqlite://$(CURDIR)/bench/out/console.db --seed bench/out/console-seed.json --write docs/benchmarks.md
	rm -f bench/out/console.db*

bench-cache: ## Response cache: saturation of exact hits vs the miss path, added latency of a miss with caching on vs off; writes its section of docs/benchmarks.md (~1 min)
	$(CARGO) build --release -p switchboard-router -p switchboard-bench --bin switchboard-router --bin bench-mock --bin bench-cache
	$${CARGO_TARGET_DIR:-target}/release/bench-cache --write docs/benchmarks.md

clean: ## Remove build outputs and the virtualenv
	$(CARGO) clean
	rm -rf $(VENV)
