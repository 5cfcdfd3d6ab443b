#!/usr/bin/env bash
# The 1,000,000-user figures of docs/benchmarks.md, on embedded SQLite:
#
#   ./scripts/bench-1m.sh [DATA_DIR]      # default /tmp/scimd-bench-1m (about 6.5 GB)
#
# 1. a fresh scimd on DATA_DIR loads 1M users by /Bulk (prints users/s and the time:
#    the "1M users imported" figure) and stops;
# 2. a restarted scimd on the same data runs every scenario at 32 connections (reads
#    first, so their peak RSS is not inflated by the writes), then `mixed` for 10 s,
#    then the search benchmark, then the groups benchmark (100,000-member group);
#    each step prints the server's peak RSS (VmHWM) of that step.
# Env: SCIMD_BIN, BENCH_BIN (use these binaries, build nothing), BENCH_USERS=1000000,
#      BENCH_KEEP=1 (keep DATA_DIR).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA="${1:-/tmp/scimd-bench-1m}"
N="${BENCH_USERS:-1000000}"
say() { echo "bench-1m: $*"; }

# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"
bench_binaries

SERVER_PID=""
cleanup() {
  local rc=$?
  stop_server
  [[ "${BENCH_KEEP:-0}" == "1" ]] || rm -rf "$DATA"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT/scim/v2"
start() {
  RUST_LOG="${RUST_LOG:-warn}" "$SCIMD" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" \
    --protection bypass --bulk-max-operations 1000 --bulk-max-payload-bytes 10000000 \
    >>"$DATA.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null "$BASE/ServiceProviderConfig" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "bench-1m: scimd exited, see $DATA.log" >&2; return 1; }
    sleep 0.1
  done
  echo "bench-1m: scimd did not answer within 60 s" >&2
  return 1
}
rss() { grep -E 'VmHWM' "/proc/$SERVER_PID/status"; }

rm -rf "$DATA" && mkdir -p "$DATA"
start
say "loading $N users into $DATA"
"$BENCH" --base "$BASE" load --users "$N" --concurrency 4 | tail -n 1
say "server peak RSS during the load: $(rss)"
stop_server
say "data dir: $(du -sh "$DATA" | cut -f1)"
# Where the bytes go, table by table (bytes per user).
python3 scripts/lib/db-size.py "$DATA/scimd.db" "$N"

start
B=("$BENCH" --base "$BASE" --timeout 300)
"${B[@]}" run --scenario get-by-id,filter-username-eq,filter-email-eq,sorted-page,sorted-page-deep,filter-email-co,filter-username-co,filter-username-sw,filter-email-ew,post-user,patch-user,patch-add-member-large-group \
  --users "$N" --duration 5 --connections 32 --server-pid "$SERVER_PID" --reset-peak
"${B[@]}" run --scenario mixed --users "$N" --duration 10 --connections 32 \
  --server-pid "$SERVER_PID" --reset-peak
"${B[@]}" search --users "$N" --requests 200 --connections 16 --duration 3 --max-secs 30 \
  --server-pid "$SERVER_PID" --reset-peak
"${B[@]}" groups --members 100000 --server-pid "$SERVER_PID" --reset-peak
say "server peak RSS over the whole run: $(rss)"
