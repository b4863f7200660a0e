# mcpvault entry points. `make demo` and `make test` are the README's two
# set-up commands; .ci/run calls `make lint test demo`.
SHELL := bash
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: build demo test test-rust test-vectors test-props lint fmt vectors bench clean

## build: every artifact (today: the CLI, release)
build:
	$(CARGO) build --release --bin mcpvault

## demo: the CLI walkthrough on a fresh key in a temporary HOME
demo:
	$(CARGO) build --bin mcpvault
	scripts/demo.sh "$(TARGET_DIR)/debug/mcpvault"

## test: every test: vectors unchanged, unit, integration, CLI, property (10,000 chains), doc tests
test: test-vectors test-rust

test-vectors:
	$(CARGO) run -q --example gen_vectors -- --check
	$(CARGO) test -q --test vectors -- --nocapture

test-rust:
	$(CARGO) test

## test-props: only the property tests (MCPVAULT_PROP_CASES=N to change the count)
test-props:
	$(CARGO) test --test props

## lint: rustfmt and clippy with warnings denied
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## vectors: regenerate tests/vectors from the fixed seed (review the diff!)
vectors:
	$(CARGO) run -q --example gen_vectors

## bench: medians of mint / attenuate / verify / inspect
bench:
	$(CARGO) run -q --release --example bench

clean:
	$(CARGO) clean
