#!/usr/bin/env bash
# Installs the Debian packages a make target needs, only when one is missing.
#
#   scripts/ensure-tools.sh GROUP...
#
#   node       g++            better-sqlite3 (npm ci) compiles with node-gyp when no prebuilt binary is reachable
#   component  patch          scripts/patch-biscuit.sh patches biscuit-auth for wasm32-wasip2
#   store      redis-server   the Redis store tests start their own redis-server on 127.0.0.1 (a free port)
#   browser    chromium       the browser and inspector tests drive Debian's Chromium through playwright-core
#   cli        jq             scripts/demo.sh reads the public key with jq (python3 otherwise)
#   demo       = node                          (make demo)
#   test       = node component store browser cli   (make test)
#
# When everything is present it does nothing (no apt-get, no root needed). Otherwise it runs
# `apt-get update` once and `DEBIAN_FRONTEND=noninteractive apt-get install -y -qq` for the missing packages,
# which needs root and apt-get; without them it names the packages to install and fails.
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 demo|test|node|component|store|browser|cli..." >&2
  exit 2
fi

# "command package" pairs to check, in order, without duplicates.
wanted=()
want() {  # want COMMAND PACKAGE
  local pair="$1 $2" w
  for w in ${wanted[@]+"${wanted[@]}"}; do [ "$w" = "$pair" ] && return 0; done
  wanted+=("$pair")
}
add_group() {
  case "$1" in
    node) want g++ g++ ;;
    component) want patch patch ;;
    store) want redis-server redis-server ;;
    browser) want chromium chromium ;;
    cli) want jq jq ;;
    demo) add_group node ;;
    test) for g in node component store browser cli; do add_group "$g"; done ;;
    *) echo "$0: unknown group '$1' (demo, test, node, component, store, browser, cli)" >&2; exit 2 ;;
  esac
}
for group in "$@"; do add_group "$group"; done

missing=()
for pair in "${wanted[@]}"; do
  cmd=${pair%% *}
  pkg=${pair#* }
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "ensure-tools: missing Debian packages: ${missing[*]}" >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-tools: apt-get is not available here; install ${missing[*]} with your package manager and rerun" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-tools: installing needs root; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
