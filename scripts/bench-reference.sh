#!/usr/bin/env bash
# scimd against the reference SCIM server (PyPI scim2-server, in-memory) on this machine.
#
#   ./scripts/bench-reference.sh [N]     # N users (default 10000)
#
# Installs scim2-server into .venv-bench, starts it on a free loopback port, loads N users
# by POST, runs the read scenarios (and post-user, patch-user) with scimd-bench at each of
# BENCH_REF_CONNECTIONS; then the same against a fresh scimd on embedded SQLite and a
# fresh scimd on PostgreSQL (N users loaded by /Bulk; the local server prepared by
# scripts/ensure-postgres.sh, database scimd_bench recreated), and prints each server's
# best throughput per scenario and scimd's ratios to the reference.
#
# Env: SCIMD_BIN, BENCH_BIN (skip the build), BENCH_DURATION=3, BENCH_WARMUP=1,
#      BENCH_REF_CONNECTIONS="32 4" (the reference's small listen backlog makes it do
#      better with few connections, so both are tried and the best counts),
#      SCIM2_SERVER_VERSION=0.8.3, BENCH_OUT=DIR (keep results.tsv and logs),
#      BENCH_POSTGRES=0 (skip PostgreSQL).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

N="${1:-10000}"
DURATION="${BENCH_DURATION:-3}"
WARMUP="${BENCH_WARMUP:-1}"
CONNS_LIST="${BENCH_REF_CONNECTIONS:-32 4}"
VERSION="${SCIM2_SERVER_VERSION:-0.8.3}"
SCENARIOS="get-by-id filter-username-eq filter-email-eq filter-email-co filter-username-co filter-username-sw filter-email-ew sorted-page sorted-page-deep post-user patch-user"
VENV="$ROOT/.venv-bench"

say() { echo "bench-reference: $*"; }

# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"
bench_binaries

installed="$("$VENV/bin/pip" show scim2-server 2>/dev/null || true)"
if [[ ! -x "$VENV/bin/scim2-server" ]] || ! grep -qx "Version: $VERSION" <<<"$installed"; then
  say "installing scim2-server==$VERSION into $VENV"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "scim2-server==$VERSION"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/scimd-bench-ref.XXXXXX")"
OUT="${BENCH_OUT:-$WORK}"
mkdir -p "$OUT"
TSV="$OUT/results.tsv"
: >"$TSV"
SERVER_PID=""

cleanup() {
  local rc=$?
  stop_server
  rm -rf "$WORK/data"
  [[ "$OUT" == "$WORK" ]] || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() { # URL NAME
  for _ in $(seq 1 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || {
      echo "bench-reference: $2 exited at start" >&2
      return 1
    }
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "$1/ServiceProviderConfig")" == "200" ]] && return 0
    sleep 0.1
  done
  echo "bench-reference: $2 did not answer within 30 s" >&2
  return 1
}

# bench_server LABEL BASE LOAD_ARGS…: load N users, then every scenario at every
# connection count.
bench_server() {
  local label="$1" base="$2"
  shift 2
  say "[$label] loading $N users"
  "$BENCH" --base "$base" load --users "$N" "$@" | tee "$OUT/load-$label.txt"
  for c in $CONNS_LIST; do
    for s in $SCENARIOS; do
      "$BENCH" --base "$base" run --scenario "$s" --users "$N" --duration "$DURATION" \
        --warmup "$WARMUP" --connections "$c" --server-pid "$SERVER_PID" --reset-peak \
        --tsv "$TSV" --label "$label"
    done
  done
}

# --- the reference ----------------------------------------------------------------------
PORT="$(free_port)"
"$VENV/bin/scim2-server" --hostname 127.0.0.1 --port "$PORT" >"$OUT/scim2-server.log" 2>&1 &
SERVER_PID=$!
REF_BASE="http://127.0.0.1:$PORT/v2"
wait_ready "$REF_BASE" scim2-server
say "scim2-server $VERSION pid $SERVER_PID at $REF_BASE"
bench_server reference "$REF_BASE" --no-bulk --concurrency 4
stop_server

# --- scimd ------------------------------------------------------------------------------
# bench_scimd LABEL ARGS…: a fresh scimd with these storage arguments, benchmarked.
bench_scimd() {
  local label="$1"
  shift
  PORT="$(free_port)"
  RUST_LOG="${RUST_LOG:-warn}" "$SCIMD" serve --listen "127.0.0.1:$PORT" "$@" \
    --protection bypass --bulk-max-operations 1000 --bulk-max-payload-bytes 10000000 \
    >"$OUT/scimd-$label.log" 2>&1 &
  SERVER_PID=$!
  SCIMD_BASE="http://127.0.0.1:$PORT/scim/v2"
  wait_ready "$SCIMD_BASE" "scimd ($label)"
  say "scimd ($label) pid $SERVER_PID at $SCIMD_BASE"
  bench_server "$label" "$SCIMD_BASE" --concurrency 4
  stop_server
}

mkdir -p "$WORK/data" "$WORK/data-postgres"
bench_scimd sqlite --data-dir "$WORK/data"
LABELS="sqlite"
if [[ "${BENCH_POSTGRES:-1}" != "0" ]]; then
  SCIMD_TEST_DB=scimd_bench "$ROOT/scripts/ensure-postgres.sh" >"$OUT/ensure-postgres.log" 2>&1
  fresh_bench_db
  bench_scimd postgres --data-dir "$WORK/data-postgres" \
    --database "postgres://postgres@127.0.0.1:5432/scimd_bench"
  LABELS="sqlite postgres"
fi

# --- ratios -----------------------------------------------------------------------------
echo
say "N=$N users; best req/s over connections {$CONNS_LIST}; p99 ms at that connection count"
awk -F'\t' -v order="$SCENARIOS" -v labels="$LABELS" '
  { key = $1 SUBSEP $2
    if (!(key in best) || $5 + 0 > best[key] + 0) { best[key] = $5; conns[key] = $3; p99[key] = $7 } }
  END {
    nl = split(labels, l, " ")
    printf "%-22s %22s", "scenario", "reference r/s (c, p99)"
    for (j = 1; j <= nl; j++) printf " %24s %8s", "scimd " l[j] " r/s (c, p99)", "ratio"
    printf "\n"
    n = split(order, s, " ")
    for (i = 1; i <= n; i++) {
      r = "reference" SUBSEP s[i]
      if (!(r in best)) continue
      printf "%-22s %22s", s[i], sprintf("%.1f (%s, %.1f)", best[r], conns[r], p99[r])
      for (j = 1; j <= nl; j++) {
        m = l[j] SUBSEP s[i]
        if (!(m in best)) { printf " %24s %8s", "-", "-"; continue }
        ratio = (best[r] + 0 > 0) ? best[m] / best[r] : 0
        printf " %24s %7.1fx", sprintf("%.1f (%s, %.1f)", best[m], conns[m], p99[m]), ratio
      }
      printf "\n"
    }
  }' "$TSV"
echo
rate() { sed -n 's/.* in \([0-9.]*\) s: \([0-9]*\) users\/s.*/\2 users\/s/p' "$OUT/load-$1.txt"; }
say "load: reference $(rate reference) by POST; scimd $(for l in $LABELS; do printf '%s %s by /Bulk; ' "$l" "$(rate "$l")"; done)"
say "all rows: $TSV"
