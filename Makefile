# Clan Wars serverless backend — the project's commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
export AWS_ENDPOINT_URL ?= http://127.0.0.1:4566
export AWS_REGION ?= us-east-1
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test

.PHONY: help test unit-test lint fmt run bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

test: unit-test ## Run the whole test suite

unit-test: ## Domain and adapter unit tests (no emulator needed)
	$(CARGO) test --workspace --locked

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

run: ## Bring up the local stack and play a demo war (see README: not built yet)
	@echo "make run: the local stack (emulator, functions, state machines, HTTP API) is not built yet."
	@echo "Today the product is the domain library; 'make test' exercises every rule of the spec."
	@exit 1
