#!/usr/bin/env bash
# Fuzz the protocol code: ./scripts/fuzz.sh [SECONDS]   (SECONDS per target, default 60)
#
# Runs every cargo-fuzz target of fuzz/ (see fuzz/README.md) for SECONDS, one after
# another, and stops at the first crash, printing the path of the crashing input.
# SECONDS=0 skips fuzzing.
#
# Works on the pinned stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# -Z flags. Installs what is missing: cargo-fuzz (cargo install --locked) and, when
# run as root, a C++ compiler for libFuzzer (apt-get).
#
#   FUZZ_SANITIZER   address (default) or none
#   FUZZ_TARGETS     space-separated subset of the targets (default: all)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"

SECS="${1:-60}"
if ! [[ "$SECS" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi
if [ "$SECS" -eq 0 ]; then
  echo "fuzz: skipped (0 seconds)"
  exit 0
fi
SANITIZER="${FUZZ_SANITIZER:-address}"
read -r -a TARGETS <<<"${FUZZ_TARGETS:-filter patch_path patch validate_user}"

export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# libFuzzer is C++: the cc crate compiles it with $CXX, else c++.
if [ -z "${CXX:-}" ] && ! command -v c++ >/dev/null 2>&1; then
  if command -v clang++ >/dev/null 2>&1; then
    export CXX=clang++
  elif command -v g++ >/dev/null 2>&1; then
    export CXX=g++
  elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "fuzz: installing a C++ compiler (apt-get install g++)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
  else
    echo "fuzz: no C++ compiler (c++, clang++ or g++) and cannot install one: install g++ or clang" >&2
    exit 1
  fi
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked
fi

BUILD_START=$SECONDS
cargo fuzz build --sanitizer "$SANITIZER"
echo "fuzz: built the targets (sanitizer: $SANITIZER) in $((SECONDS - BUILD_START)) s"

LOG_DIR="$ROOT/fuzz/target/fuzz-logs"
mkdir -p "$LOG_DIR"
for t in "${TARGETS[@]}"; do
  log="$LOG_DIR/$t.log"
  echo "fuzz: $t for $SECS s (log: $log)"
  # The corpus directory fuzz/corpus/$t holds the checked-in seeds; libFuzzer adds
  # what it finds there (ignored by git), so later runs start further along.
  if ! cargo fuzz run --sanitizer "$SANITIZER" "$t" -- \
    -max_total_time="$SECS" -timeout=10 -dict=dict/scim.dict -print_final_stats=1 >"$log" 2>&1; then
    # The panic (or sanitizer report) and cargo-fuzz's summary; the rest is in $log.
    grep -m1 -A2 -E 'panicked at|==ERROR:|ERROR: libFuzzer' "$log" || tail -n 20 "$log"
    sed -n '/^Output of `std::fmt::Debug`:/,/^Reproduce with:/p' "$log" | grep -v '^Reproduce with:' | head -n 20
    echo "fuzz: $t FAILED. Crashing input:" >&2
    grep -o 'Test unit written to .*' "$log" | sed 's/^Test unit written to /  /' >&2 || true
    echo "Reproduce: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $SANITIZER $t <that file>" >&2
    exit 1
  fi
  runs="$(grep -o '^stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  rate="$(grep -o '^stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  echo "fuzz: $t ok: $runs runs, $rate exec/s"
done
