#!/usr/bin/env bash
# opt-level "z" vs "s" vs 3 (and wasm-opt -Oz / -Os / -O3) for the npm build: size and speed, measured, so the
# choice in crates/wasm/Cargo.toml is made with numbers. Writes build/bench/opt-levels.json, then rebuilds the
# shipped configuration. Part of `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR="${CARGO_TARGET_DIR:-crates/wasm/target}"
RAW="$TARGET_DIR/wasm32-unknown-unknown/release/mcpvault_wasm.wasm"
WASM_OPT="$PWD/tools/wasm/node_modules/.bin/wasm-opt"
FEATURES=(--strip-debug --strip-producers --enable-bulk-memory --enable-sign-ext --enable-mutable-globals
  --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types)
out=build/bench/opt-levels.json
mkdir -p build/bench
echo "[" > "$out.tmp"
first=1
# "s" with -Oz: what ships (crates/wasm/Cargo.toml, the Makefile's flags)
for variant in "z -Oz" "s -Oz" "3 -O3"; do
  set -- $variant
  CARGO_PROFILE_RELEASE_OPT_LEVEL=$1 cargo build -q --release --target wasm32-unknown-unknown \
    --manifest-path crates/wasm/Cargo.toml
  node npm/mcpvault/scripts/build.mjs "$RAW" wasm-bindgen "$WASM_OPT" "$2" "${FEATURES[@]}" >/dev/null
  line=$(cd bench && node mini.mjs)
  echo "opt-level $1, wasm-opt $2: $line"
  [ $first = 1 ] || echo "," >> "$out.tmp"
  first=0
  echo "{\"opt_level\": \"$1\", \"wasm_opt\": \"$2\", \"result\": $line}" >> "$out.tmp"
done
echo "]" >> "$out.tmp"
mv "$out.tmp" "$out"
# back to what ships (crates/wasm/Cargo.toml's profile and the Makefile's flags)
make --no-print-directory npm >/dev/null
