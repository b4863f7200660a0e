#!/usr/bin/env bash
# make dist: the artifacts as users get them, in build/dist/ — the npm tarballs (npm pack) of mcpvault,
# mcpvault-express, mcpvault-mcp and mcpvault-store, the Python wheel (with the component, schema.sql and spend.lua),
# and the crates (cargo package: mcpvault, mcpvault-cli). Needs `make npm component` first (the Makefile does it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
out=build/dist
rm -rf "$out"
mkdir -p "$out"
for p in mcpvault mcpvault-express mcpvault-mcp mcpvault-store; do
  (cd "npm/$p" && npm pack --silent --pack-destination "../../$out" >/dev/null)
done
"$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w "$out" ./python
# --no-verify: `make test-dist` builds the packaged crate in a project of its own
cargo package -q --workspace --allow-dirty --no-verify
cp "${CARGO_TARGET_DIR:-target}"/package/mcpvault-0.1.0.crate "${CARGO_TARGET_DIR:-target}"/package/mcpvault-cli-0.1.0.crate "$out/"
ls -l "$out"
