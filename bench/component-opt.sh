#!/usr/bin/env bash
# Rust opt-level and wasm-opt level for the WIT component (build/mcpvault.wasm, the Python package's), measured
# through the Python package (bench/python_vs_tenuo.py --quick, tenuo's authorize_one in the same process): size and
# speed of each build, so the profile in crates/component/Cargo.toml is chosen with numbers. Writes
# build/bench/component-opt.json, then rebuilds what ships. Part of `make bench`; PYTHON is the bench venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TARGET_DIR="${CARGO_TARGET_DIR:-crates/component/target}"
RAW="$TARGET_DIR/wasm32-wasip2/release/mcpvault_component.wasm"
WASM_OPT="$PWD/tools/wasm/node_modules/.bin/wasm-opt"
FEATURES=(--strip-debug --strip-producers --enable-bulk-memory --enable-sign-ext --enable-mutable-globals
  --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types)
SIG=(curve25519-dalek ed25519-dalek sha2)
toml() { case "$1" in [0-9]) echo "$1" ;; *) echo "\"$1\"" ;; esac; }
out=build/bench/component-opt.json
mkdir -p build/bench
echo "[" > "$out.tmp"
first=1
# name | opt-level of every crate | of the signature crates | wasm-opt level
for variant in "z z -Oz" "z 3 -Oz" "3 3 -O3"; do
  set -- $variant
  config=()
  for c in "${SIG[@]}"; do config+=(--config "profile.release.package.$c.opt-level=$(toml "$2")"); done
  config+=(--config "profile.release.opt-level=$(toml "$1")")
  cargo build -q --release --target wasm32-wasip2 --manifest-path crates/component/Cargo.toml "${config[@]}"
  wasm="build/bench/component-$1-$2.wasm"
  python3 scripts/opt-component.py "$RAW" "$wasm" "$WASM_OPT" "$3" "${FEATURES[@]}" >/dev/null
  "$PYTHON" bench/python_vs_tenuo.py "build/bench/component-$1-$2.json" --component "$wasm" --quick
  [ $first = 1 ] || echo "," >> "$out.tmp"
  first=0
  echo "{\"opt_level\": \"$1\", \"signature_crates\": \"$2\", \"wasm_opt\": \"$3\", \"result\": $(cat "build/bench/component-$1-$2.json")}" >> "$out.tmp"
done
echo "]" >> "$out.tmp"
mv "$out.tmp" "$out"
# back to what ships (crates/component/Cargo.toml's profile and the Makefile's flags)
make --no-print-directory component >/dev/null
