# cflogs: every target installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FN     ?= IngestFunction
export SAM_CLI_TELEMETRY := 0
EVENT  ?= events/s3-put.json

.DEFAULT_GOAL := help
.PHONY: help install test lint validate build demo invoke sam-invoke bench bench-scale clean

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

lint: $(STAMP) ## ruff over the code and tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

validate: $(STAMP) ## sam validate --lint on template.yaml
	$(BIN)/sam validate --lint --region us-east-1

build: $(STAMP) ## sam build: layer with aarch64 cp313 wheels, no Docker needed
	$(BIN)/sam build --region us-east-1

demo: $(STAMP) ## the whole pipeline locally on a generated week of logs; writes report.html
	$(BIN)/cflogs demo

invoke: $(STAMP) ## run a handler in-process: make invoke FN=IngestFunction EVENT=events/s3-put.json
	$(BIN)/cflogs invoke $(FN) $(EVENT)

sam-invoke: $(STAMP) ## sam local invoke (needs Docker) with env.json: make sam-invoke FN=... EVENT=...
	test -f env.json || cp events/env.example.json env.json
	$(BIN)/sam build --region us-east-1
	$(BIN)/sam local invoke $(FN) --event $(EVENT) --env-vars env.json --region us-east-1

bench: $(STAMP) ## the DESIGN.md figures: ingest, parse+enrich, stitch, RSS, cold start
	$(BIN)/python -m cflogs.bench
	$(BIN)/python -m cflogs.bench_stitch

SIZES ?= 1000000,3000000
bench-scale: $(STAMP) ## one new file against stored history: make bench-scale SIZES=1000000,10000000
	$(BIN)/python -m cflogs.bench_scale --sizes $(SIZES)

clean: ## remove build output and the local data folder
	rm -rf .aws-sam .cflogs build
