# cflogs: every target installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FN     ?= IngestFunction
export SAM_CLI_TELEMETRY := 0
EVENT  ?= events/s3-put.json

.DEFAULT_GOAL := help
.PHONY: help install test test-slow fuzz lint validate build demo serve invoke sam-invoke bench \
	bench-dashboard clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## make .venv with cflogs (editable) and the dev tools

test: $(STAMP) ## run the test suite (DATABASE_URL, or an embedded PostgreSQL)
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP) ## the slow end-to-end tests (browser, long loads); .ci/run runs them
	$(BIN)/pytest -q -m slow $(PYTEST_ARGS)

fuzz: $(STAMP) ## the load fuzzed long, with a fresh seed: make fuzz EXAMPLES=5000
	CFLOGS_FUZZ_EXAMPLES=$(or $(EXAMPLES),3000) CFLOGS_FUZZ_RANDOM=1 $(BIN)/pytest -q -s tests/test_fuzz.py

lint: $(STAMP) ## ruff over the code and tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

validate: $(STAMP) ## sam validate --lint on template.yaml
	$(BIN)/sam validate --lint --region us-east-1

build: $(STAMP) ## sam build: layer with aarch64 cp313 wheels, no Docker needed
	$(BIN)/sam build --region us-east-1

demo: $(STAMP) ## the whole pipeline locally on a generated week of logs; writes report.html
	$(BIN)/cflogs demo

serve: $(STAMP) ## the dashboard on http://127.0.0.1:8080 (the demo's data until you load your own)
	$(BIN)/cflogs serve $(if $(PORT),--port $(PORT))

invoke: $(STAMP) ## run a handler in-process: make invoke FN=IngestFunction EVENT=events/s3-put.json
	$(BIN)/cflogs invoke $(FN) $(EVENT)

sam-invoke: $(STAMP) ## sam local invoke (needs Docker) with env.json: make sam-invoke FN=... EVENT=...
	test -f env.json || cp events/env.example.json env.json
	$(BIN)/sam build --region us-east-1
	$(BIN)/sam local invoke $(FN) --event $(EVENT) --env-vars env.json --region us-east-1

bench: $(STAMP) ## the DESIGN.md figures: ingest, parse+enrich, stitch, RSS, cold start
	$(BIN)/python -m cflogs.bench
	$(BIN)/python -m cflogs.bench_stitch

bench-dashboard: $(STAMP) ## dashboard latency on 10M synthetic page views: make bench-dashboard ROWS=...
	$(BIN)/python -m cflogs.dashboard.bench $(if $(ROWS),--page-views $(ROWS))

clean: ## remove build output (the data folder, ~/.local/share/cflogs, stays)
	rm -rf .aws-sam build
