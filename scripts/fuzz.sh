#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, seeded from
# tests/vectors: `scripts/fuzz.sh [SECONDS] [TARGET…]`; `make fuzz` runs 60 s
# each (what CI runs), `make fuzz FUZZ_SECONDS=3600` an hour each.
# Corpora grow in $FUZZ_CORPUS (default build/fuzz); a crash is written to
# $FUZZ_CORPUS/artifacts/TARGET/ and fails the run: turn it into a vector and
# a fix (see SECURITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(inspect verify attenuate arg_spec boundary constraints)
corpus="${FUZZ_CORPUS:-build/fuzz}"
python3 scripts/fuzz-seed.py tests/vectors "$corpus"
cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  mkdir -p "$corpus/$t" "$corpus/artifacts/$t"
  echo "== fuzz $t for ${secs}s ($(ls "$corpus/$t" | wc -l) inputs in the corpus)"
  cargo +nightly fuzz run -O "$t" "$corpus/$t" -- \
    -max_total_time="$secs" -artifact_prefix="$corpus/artifacts/$t/" -print_final_stats=1 2>&1 |
    grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|ERROR|panicked|SUMMARY|crash-|Test unit written" || true
  # grep hides libFuzzer's progress lines; a crash still fails the run:
  if compgen -G "$corpus/artifacts/$t/crash-*" >/dev/null || compgen -G "$corpus/artifacts/$t/oom-*" >/dev/null \
     || compgen -G "$corpus/artifacts/$t/timeout-*" >/dev/null; then
    echo "fuzz $t: found a failing input in $corpus/artifacts/$t/" >&2
    exit 1
  fi
done
