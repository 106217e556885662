# cflogs: every target installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# checkov pins its own boto3, which aws-sam-cli's pin excludes: it gets a venv of its own.
SCAN   := .venv-scan
SCAN_STAMP := $(SCAN)/.installed
FN     ?= IngestFunction
export SAM_CLI_TELEMETRY := 0
EVENT  ?= events/s3-put.json

.DEFAULT_GOAL := help
.PHONY: help install test test-slow test-3.13 has-python3.13 fuzz lint validate build demo serve \
	invoke sam-invoke bench bench-scale bench-dashboard clean

help: ## list the targets
	@grep -E '^[a-z0-9.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

$(SCAN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(SCAN)
	$(SCAN)/bin/pip install -q --upgrade pip
	$(SCAN)/bin/pip install -q "$$($(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["scan"][0])')"
	touch $(SCAN_STAMP)

install: $(STAMP) ## make .venv with cflogs (editable) and the dev tools

test: $(STAMP) ## run the test suite (DATABASE_URL, or an embedded PostgreSQL)
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP) ## the slow end-to-end tests (browser, long loads); .ci/run runs them
	$(BIN)/pytest -q -m slow $(PYTEST_ARGS)

fuzz: $(STAMP) ## the load fuzzed long, with a fresh seed: make fuzz EXAMPLES=5000
	CFLOGS_FUZZ_EXAMPLES=$(or $(EXAMPLES),3000) CFLOGS_FUZZ_RANDOM=1 $(BIN)/pytest -q -s tests/test_fuzz.py

# The suite on the Lambda runtime's Python with the layer's pinned versions.
# (a pyenv shim answers to python3.13 without running it, hence the trial run)
PYTHON313 ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13; do \
	$$p -c '' 2>/dev/null && echo $$p && break; done)
VENV313   := .venv-3.13
STAMP313  := $(VENV313)/.installed

$(STAMP313): pyproject.toml layers/cflogs/requirements.txt
	test -n "$(PYTHON313)" || { echo "no python3.13 found (set PYTHON313=...)"; exit 1; }
	$(PYTHON313) -m venv $(VENV313)
	$(VENV313)/bin/pip install -q --upgrade pip
	$(VENV313)/bin/pip install -q -e '.[test]' -c layers/cflogs/requirements.txt
	touch $(STAMP313)

has-python3.13:
	@test -n "$(PYTHON313)"

test-3.13: $(STAMP313) ## the test suite on Python 3.13 with the layer's dependency versions
	$(VENV313)/bin/python --version
	$(VENV313)/bin/pytest -q $(PYTEST_ARGS)

# checkov offline: no Prisma Cloud download (--skip-download), no PyPI version check.
lint: $(STAMP) $(SCAN_STAMP) ## ruff over the code and tests, checkov over template.yaml (offline)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(SCAN)/bin/checkov --file template.yaml \
		--framework cloudformation --skip-download --quiet --compact

validate: $(STAMP) ## sam validate --lint on template.yaml
	$(BIN)/sam validate --lint --region us-east-1

build: $(STAMP) ## sam build: layer with aarch64 cp313 wheels, no Docker needed; its size
	$(BIN)/sam build --region us-east-1
	@echo "layer, unzipped: $$(du -sm .aws-sam/build/CflogsLayer | cut -f1) MB (Lambda allows 250 MB for function and layers)"
	@test -s .aws-sam/build/CflogsLayer/python/cflogs/data/rds-global-bundle.pem || echo "WARNING: \
	the layer has no RDS CA bundle (it could not be downloaded): the functions will refuse \
	to connect to RDS until it is built with network access or RDS_CA_BUNDLE=FILE"

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

bench: $(STAMP) ## ingest, parse+enrich and stitch rates, RSS, cold start
	$(BIN)/python -m cflogs.bench
	$(BIN)/python -m cflogs.bench_stitch

SIZES ?= 1000000,3000000
bench-scale: $(STAMP) ## one new file against stored history: make bench-scale SIZES=1000000,10000000
	$(BIN)/python -m cflogs.bench_scale --sizes $(SIZES)

bench-dashboard: $(STAMP) ## dashboard latency on 10M synthetic page views: make bench-dashboard ROWS=...
	$(BIN)/python -m cflogs.dashboard.bench $(if $(ROWS),--page-views $(ROWS))

clean: ## remove build output (the data folder, ~/.local/share/cflogs, stays)
	rm -rf .aws-sam build
