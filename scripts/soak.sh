#!/usr/bin/env bash
# Soak: mixed load against a release scimd on SQLite for SECONDS (default 600), a
# kill -9 of the server half-way and an immediate restart on the same data, then a
# check that every acknowledged write is there as acknowledged, and how RSS moved.
#
#   ./scripts/soak.sh [SECONDS]
#
# Prints the load's counts (reads, creates, patches, deletes, unanswered, 5xx), the
# check, and RSS (sampled every 5 s) per process: after warm-up, first and last
# third; "flat" when the last third's peak is within 20 % of the first third's.
# Env: SCIMD_BIN (use this binary, build nothing), SOAK_KEEP=1 (keep the data).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_TOTAL="${1:-600}"
say() { echo "soak: $*" >&2; }

# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"
if [[ -n "${SCIMD_BIN:-}" ]]; then
  SCIMD="$SCIMD_BIN"
else
  say "cargo build --release -p scimd"
  cargo build --release --quiet -p scimd
  SCIMD="${CARGO_TARGET_DIR:-$ROOT/target}/release/scimd"
fi

WORK="$(mktemp -d /tmp/scimd-soak.XXXXXX)"
PORT="$(free_port)"
URL="http://127.0.0.1:$PORT"
SERVER_PID=""
SAMPLER_PID=""
cleanup() {
  local rc=$?
  [[ -n "$SAMPLER_PID" ]] && kill "$SAMPLER_PID" 2>/dev/null || true
  stop_server
  [[ "${SOAK_KEEP:-0}" == "1" ]] || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() {
  RUST_LOG=warn "$SCIMD" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
    --protection bypass >>"$WORK/scimd.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "$URL/health/ready" && return 0
    sleep 0.05
  done
  say "scimd did not start (see $WORK/scimd.log)"
  exit 1
}

# rss LABEL PID: one sample line "t label kib" per 5 s into $WORK/rss.
sample_rss() {
  local label="$1" pid="$2" t0="$3"
  while kill -0 "$pid" 2>/dev/null; do
    local kib
    kib="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
    [[ -n "$kib" ]] && echo "$(($(date +%s) - t0)) $label $kib" >>"$WORK/rss"
    sleep 5
  done
}

start
T0="$(date +%s)"
sample_rss first "$SERVER_PID" "$T0" &
SAMPLER_PID=$!
say "load for $SECONDS_TOTAL s on $URL; kill -9 at half-time"
python3 scripts/lib/soak.py load "$URL" "$SECONDS_TOTAL" "$WORK/state.json" &
LOAD_PID=$!
sleep $((SECONDS_TOTAL / 2))
say "kill -9 $SERVER_PID"
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
kill "$SAMPLER_PID" 2>/dev/null || true
DOWN_AT="$(date +%s.%N)"
start
UP_AT="$(date +%s.%N)"
say "restarted in $(python3 -c "print(f'{$UP_AT - $DOWN_AT:.2f}')") s"
sample_rss second "$SERVER_PID" "$T0" &
SAMPLER_PID=$!
wait "$LOAD_PID"
python3 scripts/lib/soak.py check "$URL" "$WORK/state.json"
python3 - "$WORK/rss" "$SECONDS_TOTAL" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
total = int(sys.argv[2])
half = total / 2
ok = True
for label, lo, hi in (("first", 0, half), ("second", half, total)):
    xs = [(int(t), int(k)) for t, l, k in rows if l == label]
    warm = lo + (hi - lo) * 0.2  # after warm-up
    xs = [x for x in xs if x[0] >= warm]
    if len(xs) < 3:
        print(f"soak: rss {label}: too few samples")
        continue
    third = max(1, len(xs) // 3)
    early = max(k for _, k in xs[:third])
    late = max(k for _, k in xs[-third:])
    flat = late <= early * 1.2
    ok &= flat
    print(f"soak: rss {label} process: {min(k for _, k in xs) // 1024}-{max(k for _, k in xs) // 1024} MiB after warm-up; "
          f"peak first third {early // 1024} MiB, last third {late // 1024} MiB: {'flat' if flat else 'GROWING'}")
sys.exit(0 if ok else 1)
PY
