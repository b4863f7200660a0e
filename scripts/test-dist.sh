#!/usr/bin/env bash
# make test-dist: every artifact of build/dist installed from those files alone into an empty project, and the README
# snippets run there — npm on Node 18, 20 and 22 (18 and 22 from npm's node packages in npm/hosts), the wheel in a
# clean venv, the crate in a new Cargo project. Dependencies come from the registries, mcpvault's own from the files.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dist="$root/build/dist"
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
check() { # check NAME COMMAND...
  if "${@:2}"; then passed=$((passed + 1)); echo "ok: $1"; else failed=$((failed + 1)); echo "FAILED: $1"; fi
}

# npm: the four tarballs together (they depend on each other at 0.1.0), plus the MCP SDK (a peer of mcpvault-mcp)
npm_project() {
  local dir="$work/npm"
  mkdir -p "$dir" && cd "$dir"
  echo '{ "name": "dist-test", "private": true }' > package.json
  npm install --silent --no-audit --no-fund "$dist"/mcpvault-0.1.0.tgz "$dist"/mcpvault-express-0.1.0.tgz \
    "$dist"/mcpvault-mcp-0.1.0.tgz "$dist"/mcpvault-store-0.1.0.tgz @modelcontextprotocol/sdk@^1.24.0 zod@^3 >/dev/null
  cp "$root"/scripts/dist-smoke/smoke.mjs "$root"/scripts/dist-smoke/smoke.cjs .
  # the README snippet of npm/mcpvault, verbatim
  awk '/^```js/{n++; if (n==1) {f=1; next}} /^```/{f=0} f' "$root/npm/mcpvault/README.md" > readme.mjs
  echo 'if (facts.tool !== "db_query") throw new Error("README snippet: " + JSON.stringify(facts));' >> readme.mjs
}
check "npm install of the four tarballs" npm_project
for node in "$root/npm/hosts/node_modules/node18/bin/node" "$(command -v node)" "$root/npm/hosts/node_modules/node22/bin/node"; do
  [ -x "$node" ] || { echo "skip: $node (make test-node-versions installs it)"; continue; }
  v="$("$node" --version)"
  check "node $v: README snippet" "$node" "$work/npm/readme.mjs"
  check "node $v: require + import, one instance, the guard, the middleware, withMcpVault" \
    bash -c "cd '$work/npm' && '$node' smoke.cjs && '$node' smoke.mjs"
done

# Python: each wheel alone in a clean venv (wasmtime from PyPI), the README's Python blocks: the platform wheel (pip
# picks it: the native extension answers) and the pure one (the component answers)
py() {
  local kind="$1" wheel
  if [ "$kind" = native ]; then wheel="$(ls "$dist"/mcpvault-0.1.0-cp39-abi3-*.whl)"; else wheel="$dist/mcpvault-0.1.0-py3-none-any.whl"; fi
  # a Linux wheel PyPI takes: manylinux, not the bare linux tag pip wheel writes
  if [ "$kind" = native ] && [ "$(uname -s)" = Linux ]; then
    case "$wheel" in *-manylinux_*.whl) ;; *) echo "not a manylinux wheel: $wheel" >&2; return 1 ;; esac
  fi
  # (&&: check runs this inside an `if`, where set -e does not stop at a failure)
  rm -rf "$work/venv-$kind" && "$PYTHON" -m venv "$work/venv-$kind" &&
    "$work/venv-$kind/bin/pip" install -q --disable-pip-version-check "$wheel" &&
    env -u MCPVAULT_BACKEND "$work/venv-$kind/bin/python" -c "import mcpvault; v = mcpvault.MCPVault(); assert v.backend == '$kind', v.backend" &&
    cd "$work" && "$work/venv-$kind/bin/python" "$root/scripts/dist-smoke/readme.py" "$root/README.md"
}
check "python $("$PYTHON" --version 2>&1 | cut -d' ' -f2): the platform wheel (native extension) in a clean venv, the README's Python blocks" py native
check "python $("$PYTHON" --version 2>&1 | cut -d' ' -f2): the pure wheel (component) in a clean venv, the README's Python blocks" py component

# Rust: the packaged crate in a new project, the README's Rust snippet as its main
rust() {
  mkdir -p "$work/crate" && tar -xzf "$dist/mcpvault-0.1.0.crate" -C "$work/crate"
  mkdir -p "$work/app/src" && cd "$work/app"
  cat > Cargo.toml <<TOML
[package]
name = "dist-app"
version = "0.0.0"
edition = "2021"
publish = false
[dependencies]
mcpvault = { path = "$work/crate/mcpvault-0.1.0" }
rand_core = "0.6"
rand_chacha = "0.3"
[workspace]
TOML
  { echo "fn main() {"; awk '/^```rust/{n++; if (n==1) {f=1; next}} /^```/{f=0} f' "$root/README.md"; echo "}"; } > src/main.rs
  cargo run -q
  # a library user compiles no CLI: clap, rusqlite and redis stay out
  ! cargo tree -e normal --prefix none | grep -Eq '^(clap|rusqlite|redis) '
}
check "the crate in a new Cargo project: the README's Rust snippet; no CLI dependencies" rust

echo "dist: $passed passed, $failed failed"
[ "$failed" = 0 ]
