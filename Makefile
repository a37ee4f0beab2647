# tickwire — `make help` lists the targets. CI calls the same targets (.ci/run -> make test).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.8
PYTEST_ARGS ?=

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.PHONY: install
install: $(UV) ## Create .venv with every service, the tests and the tools (pinned by uv.lock)
	$(UV) sync --frozen --all-extras --python $(PYTHON)

.PHONY: stack-up
stack-up: install postgres ## Start local Kafka (KRaft, from Maven jars) and FerretDB on PostgreSQL; BROKERS=3 for three nodes, STORE=sqlite for FerretDB on SQLite
	$(BIN)/tickwire-stack up --brokers $(or $(BROKERS),1) $(if $(STORE),--store $(STORE))

.PHONY: stack-down
stack-down: ## Stop everything the local stack started
	@if [ -x $(BIN)/tickwire-stack ]; then $(BIN)/tickwire-stack down; else echo "nothing installed"; fi

.PHONY: stack-status
stack-status: ## Print bootstrap servers, MongoDB URL, log paths and liveness
	$(BIN)/tickwire-stack status

.PHONY: run
run: install postgres ## Run the whole system live: stack, ingest, processor, gateway, simulator (Ctrl-C stops)
	$(BIN)/tickwire-stack run $(if $(RATE),--rate $(RATE))

.PHONY: test
test: install browser postgres redis rabbitmq prometheus toxiproxy ## Run every test: unit, integration and e2e against real Kafka + FerretDB, and the dashboard in Chromium
	cd bench/loadgen && GOTOOLCHAIN=local go test ./...
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-slow
test-slow: install browser postgres redis rabbitmq prometheus toxiproxy ## Run the long scenarios (marked `slow`) that `make test` leaves out
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install ## Run the unit tests only (no infrastructure)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: bench
bench: bench-ingest bench-processor bench-gateway bench-deltas bench-write-floor bench-e2e bench-store bench-query bench-bridge ## Run every benchmark against its peer; figures to bench/results/
	$(BIN)/python -m bench.report

.PHONY: bench-ingest bench-processor bench-gateway bench-deltas bench-write-floor bench-e2e bench-store bench-query bench-bridge
bench-ingest: install ## Ingest vs Kafka's ProducerPerformance ceiling
	$(BIN)/python -m bench.ingest
bench-processor: install ## Processor (1 and 2 processes, py-spy profile) vs Quix Streams; quick: BENCH_EVENTS=200000 BENCH_SIDES=ours,profile
	$(BIN)/python -m bench.processor
bench-gateway: install ## Gateway SSE fan-out vs Centrifugo v6, then market semantics: replay from an hour back, 1k delayed subscribers' memory (BENCH_MARKET_QUICK=1: smoke run of the second)
	$(BIN)/python -m bench.gateway
	$(BIN)/python -m bench.gateway_market
bench-deltas: install ## SSE bytes per delivered quote, delta=1 vs full frames (no servers: the real hub and connections)
	$(BIN)/python -m bench.deltas
bench-write-floor: install ## CPU per delivered update against updates per socket write: the gateway's flush path vs bare uvloop writes (no servers)
	$(BIN)/python -m bench.write_floor
bench-e2e: install ## End to end (ingest accept -> SSE write) at 1k/5k/20k events/s, 1,000 SSE clients, vs two plain aiokafka hops (E2E_QUICK=1: smoke run)
	$(BIN)/python -m bench.e2e

bench-store: install postgres ## FerretDB on PostgreSQL vs on SQLite: the processor's writes, the query API, the deadlock (STORE_QUICK=1: smoke run)
	$(BIN)/python -m bench.store
bench-query: install postgres redis wrk ## /v1/bars and /v1/quotes p50/p99 at 50 in flight on a store holding a day of bars, with and without the Redis cache (QUERY_QUICK=1: smoke run; QUERY_CACHE=0: no cache column)
	$(BIN)/python -m bench.query
bench-bridge: install rabbitmq ## The bridge (RabbitMQ -> ticks.raw, acked after Kafka) vs a bare aio-pika consumer (BRIDGE_MESSAGES=10000: quick)
	$(BIN)/python -m bench.bridge

.PHONY: faults
faults: install postgres toxiproxy ## The fault report: the pipeline under broker, processor, gateway, store, network (Toxiproxy) and slow-client faults -> bench/results/faults.json, docs/reliability.md (FAULTS_QUICK=1: short; FAULTS_SCENARIOS=network: only those, the others' figures kept)
	$(BIN)/python -m bench.faults

.PHONY: soak
soak: install postgres ## The soak: the pipeline under steady ingest and connection churn, RSS and fds per service -> bench/results/soak.json, docs/img/soak.png (SOAK_MINUTES, default 30)
	$(BIN)/python -m bench.soak
	$(BIN)/python -m bench.report

.PHONY: postgres
postgres: ## Install Debian's PostgreSQL 15 for the embedded store (only when missing)
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y postgresql-15; \
	fi

.PHONY: toxiproxy
toxiproxy: install ## Build Toxiproxy's server from its Go module into the cache (only when missing), for the network fault tests
	$(BIN)/python -m tickwire.devstack.toxiproxy

.PHONY: redis
redis: ## Install Debian's redis-server for the shared limits and the query cache (only when missing)
	@if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y redis-server; \
	fi

.PHONY: rabbitmq
rabbitmq: ## Install Debian's rabbitmq-server for the bridge (only when missing)
	@if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y rabbitmq-server; \
	fi

.PHONY: prometheus
prometheus: ## Install Debian's prometheus (and its promtool) for the observability tests (only when missing)
	@if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends prometheus; \
	fi

.PHONY: wrk
wrk: ## Install Debian's wrk, the HTTP load generator of bench/query.py (only when missing)
	@if ! command -v wrk >/dev/null 2>&1; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y wrk; \
	fi

.PHONY: browser
browser: ## Install Debian's chromium for the dashboard's browser test (only when missing)
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium; \
	fi

.PHONY: lint
lint: install ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: format
format: install ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: clean
clean: stack-down ## Remove the virtualenvs (the download cache in ~/.cache/tickwire stays)
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
