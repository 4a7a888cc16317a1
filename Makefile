# Clan Wars serverless backend — the project's commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
DEMO ?= 1
EMULATOR ?= moto
export AWS_ENDPOINT_URL ?= http://127.0.0.1:4566
export AWS_REGION ?= us-east-1
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test

.PHONY: help test unit-test lint fmt run bench soak capacity emulator-up emulator-down ddb-local-up ddb-local-down

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

test: ## Run the whole test suite: installs tools, starts the emulator, runs everything, stops it
	scripts/test.sh

unit-test: ## Domain and edge unit tests only (no emulator)
	$(CARGO) test --workspace --locked --lib

emulator-up: ## Start the local AWS stack in the background (moto + the real Lambda binaries; EMULATOR=localstack)
	scripts/bootstrap.sh
	$(CARGO) build --workspace --bins --locked
	EMULATOR=$(EMULATOR) scripts/localaws.sh up

emulator-down: ## Stop the local AWS stack
	EMULATOR=$(EMULATOR) scripts/localaws.sh down

ddb-local-up: ## Start AWS's DynamoDB Local (port $$DDB_LOCAL_PORT, default 8000)
	scripts/dynamodb-local.sh up

ddb-local-down: ## Stop DynamoDB Local
	scripts/dynamodb-local.sh down

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

run: ## Local stack + a demo war through the public API, then serve until Ctrl-C (DEMO=0: serve only; EMULATOR=localstack)
	DEMO=$(DEMO) EMULATOR=$(EMULATOR) scripts/run.sh

capacity: ## Capacity model of the score path: WCU per partition key at the seed's load (docs/scores.md)
	$(CARGO) test -p clanwar-aws --lib --locked capacity -- --nocapture

soak: ## Reliability soak (own local stack): faults, duplicated deliveries, hostile input; SOAK_SECONDS=300 -> docs/reliability.md
	scripts/soak.sh

bench: ## Load (own local stack), raw-call comparison, AWS latency model, criterion, capacity -> docs/benchmarks.md
	CARGO="$(CARGO)" scripts/bench.sh

# ----- AWS artefacts and deployment (see README "Deploy to AWS") -----------------------------
.PHONY: build footprint deploy
STAGE ?= dev
PHASE_MIN_SECONDS ?= 60
SCORE_SHARDS ?= 16
ALARM_EMAIL ?=

FUNCTIONS := $(notdir $(wildcard functions/*))
PYTHON ?= python3

build: ## Lambda artefacts for AWS: cargo-lambda, arm64, release -> target/lambda/<fn>/bootstrap (+ target/bench/build.json)
	scripts/build-lambdas.sh

footprint: ## Cold start, RSS and size of every function (host release build) -> target/bench/footprint.md
	$(CARGO) build --release --locked --workspace $(addprefix --bin ,$(FUNCTIONS))
	$(PYTHON) tools/footprint/footprint.py

deploy: ## Deploy to AWS with SAM: STAGE=dev PHASE_MIN_SECONDS=60 SCORE_SHARDS=16 ALARM_EMAIL= [GUIDED=1]
	STAGE=$(STAGE) PHASE_MIN_SECONDS=$(PHASE_MIN_SECONDS) SCORE_SHARDS=$(SCORE_SHARDS) \
	    ALARM_EMAIL=$(ALARM_EMAIL) scripts/deploy.sh
