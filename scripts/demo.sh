#!/usr/bin/env bash
# The main job: the README's CLI walkthrough, verbatim, on a fresh key in a
# temporary HOME. Run by `make demo`.
set -euo pipefail
BIN_DIR="$(cd "$(dirname "$1")" && pwd)"
export PATH="$BIN_DIR:$PATH"
export HOME="$(mktemp -d)"
trap 'rm -rf "$HOME"' EXIT

jq_pubkey() {  # jq when present, python3 otherwise
  if command -v jq >/dev/null; then jq -r .public_key "$1"
  else python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["public_key"])' "$1"; fi
}

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step mcpvault keygen
mcpvault keygen

step 'TOKEN=$(mcpvault mint --key ~/.mcpvault/keys/default.json --tools db_query,file_read --ttl 3600 --issuer auth-server --subject agent-a)'
TOKEN=$(mcpvault mint --key ~/.mcpvault/keys/default.json --tools db_query,file_read --ttl 3600 --issuer auth-server --subject agent-a)
echo "$TOKEN"

step 'mcpvault inspect --token "$TOKEN"   # (blocks shown as Datalog)'
mcpvault inspect --token "$TOKEN" | grep -E '"(verified|issuer|subject|depth)"|^    "(db_query|file_read)"' || true

PUBKEY=$(jq_pubkey ~/.mcpvault/keys/default.json)
step 'mcpvault verify --token "$TOKEN" --pubkey "$(jq -r .public_key ~/.mcpvault/keys/default.json)" --tool db_query'
mcpvault verify --token "$TOKEN" --pubkey "$PUBKEY" --tool db_query

step 'NARROW=$(mcpvault attenuate --token "$TOKEN" --tools db_query --ttl 300)'
NARROW=$(mcpvault attenuate --token "$TOKEN" --tools db_query --ttl 300)
echo "$NARROW"

step 'mcpvault verify --token "$NARROW" --pubkey "$PUBKEY" --tool db_query'
mcpvault verify --token "$NARROW" --pubkey "$PUBKEY" --tool db_query

fail=0
for tool in file_read admin_delete; do
  step "mcpvault verify --token \"\$NARROW\" --pubkey \"\$PUBKEY\" --tool $tool   # refused, exit 1"
  set +e; mcpvault verify --token "$NARROW" --pubkey "$PUBKEY" --tool "$tool"; code=$?; set -e
  echo "exit $code"
  [ "$code" = 1 ] || fail=1
done

step 'mcpvault attenuate --token "$NARROW" --tools db_query,admin_delete   # cannot widen'
mcpvault attenuate --token "$NARROW" --tools db_query,admin_delete >/dev/null

if [ "$fail" = 0 ]; then echo; echo "demo ok: db_query allowed, file_read and admin_delete refused"; else exit 1; fi
