#!/usr/bin/env bash
# Copies biscuit-auth 6.0.0 from cargo's registry cache to
# crates/component/.build/ and applies patches/biscuit-auth-6.0.0-wasi.patch.
# Only the component build (its own workspace) uses the patched copy.
set -euo pipefail
cd "$(dirname "$0")/.."
PATCH=patches/biscuit-auth-6.0.0-wasi.patch
DEST=crates/component/.build/biscuit-auth-6.0.0
STAMP="$DEST/.mcpvault-patched"

if [ -f "$STAMP" ] && [ "$STAMP" -nt "$PATCH" ]; then
  exit 0
fi

registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
# (a fresh machine has no registry directory yet: find fails, which is not an error here)
find_src() { find "$registry" -maxdepth 2 -type d -name biscuit-auth-6.0.0 2>/dev/null | head -n1 || true; }
src="$(find_src)"
if [ -z "$src" ]; then
  cargo fetch --manifest-path Cargo.toml >/dev/null   # the root crate depends on biscuit-auth =6.0.0
  src="$(find_src)"
fi
[ -n "$src" ] || { echo "biscuit-auth-6.0.0 not found in $registry" >&2; exit 1; }

rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
cp -R "$src" "$DEST"
chmod -R u+w "$DEST"
patch --quiet -p1 -d "$DEST" < "$PATCH"
touch "$STAMP"
echo "patched biscuit-auth 6.0.0 for wasm32-wasip2 in $DEST"
