#!/usr/bin/env bash
# Two scimd builds on the same workload, interleaved so that both see the same machine:
#
#   ./scripts/bench-compare.sh OLD_SCIMD NEW_SCIMD [N] [ROUNDS]
#
# Each round starts each build on a fresh SQLite data directory (protection bypass),
# loads N users (default 10000) by /Bulk, and runs the scenarios for BENCH_DURATION
# seconds (default 3) on 32 connections; rounds alternate OLD, NEW, OLD, NEW, ... so
# background load hits both alike. Prints req/s per scenario and round, the median of
# each build and NEW/OLD. Needs scimd-bench (BENCH_BIN, default the release build).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OLD="$1"
NEW="$2"
N="${3:-10000}"
ROUNDS="${4:-2}"
DURATION="${BENCH_DURATION:-3}"
BENCH="${BENCH_BIN:-$ROOT/target/release/scimd-bench}"
SCENARIOS="${BENCH_SCENARIOS:-get-by-id filter-username-eq filter-email-eq filter-email-co sorted-page post-user patch-user}"
WORK="$(mktemp -d)"
TSV="$WORK/results.tsv"

say() { echo "bench-compare: $*"; }
# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"
trap 'stop_server; rm -rf "$WORK"' EXIT

one() {
  local label="$1" bin="$2" port base
  port="$(free_port)"
  base="http://127.0.0.1:$port/scim/v2"
  rm -rf "$WORK/data"
  RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --data-dir "$WORK/data" \
    --protection bypass --bulk-max-operations 1000 --bulk-max-payload-bytes 10000000 \
    --max-payload-bytes 10000000 >"$WORK/$label.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/ServiceProviderConfig")" == "200" ]] && break
    sleep 0.1
  done
  "$BENCH" --base "$base" load --users "$N" --concurrency 4 >/dev/null
  for s in $SCENARIOS; do
    "$BENCH" --base "$base" run --scenario "$s" --users "$N" --duration "$DURATION" \
      --connections 32 --tsv "$TSV" --label "$label" >/dev/null
  done
  stop_server
}

for r in $(seq 1 "$ROUNDS"); do
  say "round $r: old"
  one old "$OLD"
  say "round $r: new"
  one new "$NEW"
done

python3 - "$TSV" <<'PY'
import csv, statistics, sys
rows = {}
order = []
for rec in csv.reader(open(sys.argv[1]), delimiter="\t"):
    if len(rec) < 5 or rec[0] not in ("old", "new"):
        continue
    label, scenario = rec[0], rec[1]
    try:
        rate = float(rec[4])
    except ValueError:
        continue
    if scenario not in order:
        order.append(scenario)
    rows.setdefault((scenario, label), []).append(rate)
print(f"{'scenario':<22} {'old req/s (runs)':<28} {'new req/s (runs)':<28} new/old")
for s in order:
    o, n = rows.get((s, "old"), []), rows.get((s, "new"), [])
    if not o or not n:
        continue
    mo, mn = statistics.median(o), statistics.median(n)
    fmt = lambda v: ", ".join(f"{x:,.0f}" for x in v)
    print(f"{s:<22} {mo:>9,.0f} ({fmt(o)}){'':<4} {mn:>9,.0f} ({fmt(n)}){'':<4} {mn / mo:.2f}")
PY
