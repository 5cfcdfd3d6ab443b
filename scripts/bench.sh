#!/usr/bin/env bash
# Benchmark scimd end to end with scimd-bench (crates/scim-bench).
#
#   ./scripts/bench.sh [N]          # N users (default 10000)
#
# Builds the release binaries, starts a fresh scimd on embedded SQLite (temporary data
# dir, a free loopback port, --protection bypass, Bulk limits raised for loading),
# loads N users by /Bulk, runs every closed-loop scenario, the groups benchmark
# (issue 4) and the search benchmark (issue 3), prints one table with the server's
# peak RSS, and stops the server. Then the same against PostgreSQL (run_postgres),
# skipped with a message while the server refuses a postgres:// URL.
#
# Env (all optional):
#   SCIMD_BIN, BENCH_BIN       use these binaries, build nothing
#   BENCH_DURATION=5           seconds measured per scenario (after BENCH_WARMUP=1)
#   BENCH_CONNECTIONS=32       connections of the read scenarios (and mixed)
#   BENCH_WRITE_CONNECTIONS=32 connections of post-user, patch-user, patch-add-member
#   BENCH_GROUP_MEMBERS=100000 size of the large group (scenario and groups benchmark)
#   BENCH_SCENARIOS="…"        space-separated subset of the scenarios
#   BENCH_SKIP_GROUPS=1, BENCH_SKIP_SEARCH=1   skip those benchmarks
#   BENCH_POSTGRES=0           do not try PostgreSQL at all
#   BENCH_POSTGRES_URL=postgres://…   an EMPTY database to use (default: a local
#                              scimd_bench database made fresh via scripts/ensure-postgres.sh)
#   BENCH_OUT=DIR              keep results (results.tsv, server logs) there
#   BENCH_KEEP=1               keep the temporary data dir
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

N="${1:-10000}"
DURATION="${BENCH_DURATION:-5}"
WARMUP="${BENCH_WARMUP:-1}"
CONNS="${BENCH_CONNECTIONS:-32}"
WCONNS="${BENCH_WRITE_CONNECTIONS:-32}"
GROUP_MEMBERS="${BENCH_GROUP_MEMBERS:-100000}"
READS="get-by-id filter-username-eq filter-email-eq filter-email-co filter-username-co filter-username-sw filter-email-ew sorted-page sorted-page-deep"
WRITES="post-user patch-user patch-add-member-large-group"
SCENARIOS="${BENCH_SCENARIOS:-$READS $WRITES mixed}"

say() { echo "bench: $*"; }

# --- binaries -------------------------------------------------------------------------
# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"
bench_binaries

WORK="$(mktemp -d "${TMPDIR:-/tmp}/scimd-bench.XXXXXX")"
OUT="${BENCH_OUT:-$WORK}"
mkdir -p "$OUT"
TSV="$OUT/results.tsv"
SERVER_PID=""


cleanup() {
  local rc=$?
  stop_server
  if [[ "${BENCH_KEEP:-0}" != "1" ]]; then
    rm -rf "$WORK/data" "$WORK"/data-*
    [[ "$OUT" == "$WORK" ]] || rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_scimd NAME [extra serve args…]: starts scimd, sets SERVER_PID and BASE.
# Returns 1 (server log on stderr) when it exits or does not answer within 60 s.
start_scimd() {
  local name="$1"
  shift
  local port log
  port="$(free_port)"
  log="$OUT/scimd-$name.log"
  BASE="http://127.0.0.1:$port/scim/v2"
  RUST_LOG="${RUST_LOG:-warn}" "$SCIMD" serve --listen "127.0.0.1:$port" \
    --protection bypass \
    --bulk-max-operations 1000 --bulk-max-payload-bytes 10000000 \
    --max-payload-bytes 10000000 \
    "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      wait "$SERVER_PID" 2>/dev/null || true
      SERVER_PID=""
      echo "bench: scimd ($name) exited at start; its log:" >&2
      tail -n 5 "$log" >&2
      return 1
    fi
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/ServiceProviderConfig")" == "200" ]]; then
      say "scimd ($name) pid $SERVER_PID at $BASE"
      return 0
    fi
    sleep 0.1
  done
  echo "bench: scimd ($name) did not answer within 60 s" >&2
  stop_server
  return 1
}

peak_mib() { awk '/^VmHWM:/ {printf "%.1f", $2/1024}' "/proc/$SERVER_PID/status" 2>/dev/null || echo "-"; }

# run_suite LABEL: load N users into the running server, then every benchmark.
run_suite() {
  local label="$1"
  local b=("$BENCH" --base "$BASE")
  say "[$label] loading $N users"
  "${b[@]}" load --users "$N" --concurrency 4 | tee "$OUT/load-$label.txt"
  local rate
  rate="$(sed -n 's/.* in \([0-9.]*\) s: \([0-9]*\) users\/s.*/\2 users\/s (\1 s)/p' "$OUT/load-$label.txt" | tail -n 1)"
  local load_peak
  load_peak="$(peak_mib)"
  printf '%s\tload\t4\t%s\t%s\t-\t-\t-\t0\t%s\n' "$label" "$N" "${rate%% *}" "$load_peak" >>"$TSV"
  say "[$label] load: $rate, server peak RSS after load $load_peak MiB"
  for s in $SCENARIOS; do
    local c="$CONNS"
    case " $WRITES " in *" $s "*) c="$WCONNS" ;; esac
    "${b[@]}" run --scenario "$s" --users "$N" --duration "$DURATION" --warmup "$WARMUP" \
      --connections "$c" --group-members "$GROUP_MEMBERS" \
      --server-pid "$SERVER_PID" --reset-peak --tsv "$TSV" --label "$label"
  done
  if [[ "${BENCH_SKIP_GROUPS:-0}" != "1" ]]; then
    say "[$label] groups benchmark ($GROUP_MEMBERS members)"
    "${b[@]}" groups --members "$GROUP_MEMBERS" --reps 50 --max-secs 10 \
      --server-pid "$SERVER_PID" --reset-peak --tsv "$OUT/groups.tsv" --label "$label"
    printf '%s\tgroups-benchmark\t1\t-\t-\t-\t-\t-\t0\t%s\n' "$label" "$(peak_mib)" >>"$TSV"
  fi
  if [[ "${BENCH_SKIP_SEARCH:-0}" != "1" ]]; then
    say "[$label] search benchmark"
    "${b[@]}" search --users "$N" --requests 200 --connections 16 --duration 3 \
      --server-pid "$SERVER_PID" --reset-peak --tsv "$TSV" --label "$label"
  fi
}

run_sqlite() {
  mkdir -p "$WORK/data-sqlite"
  start_scimd sqlite --data-dir "$WORK/data-sqlite" || return 1
  run_suite "sqlite-$N"
  du -sh "$WORK/data-sqlite" | awk '{print "bench: SQLite data dir size: " $1}'
  stop_server
}

# PostgreSQL: same suite with --database URL. Skipped (with a message) when disabled,
# when no database can be prepared, or when scimd refuses the URL.
run_postgres() {
  if [[ "${BENCH_POSTGRES:-1}" == "0" ]]; then
    say "PostgreSQL: skipped (BENCH_POSTGRES=0)"
    return 0
  fi
  local url="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/scimd_bench}"
  local default_url=0
  [[ -z "${BENCH_POSTGRES_URL:-}" ]] && default_url=1
  # A fresh database when a local server already answers (the default URL only).
  if [[ "$default_url" == "1" ]] && command -v pg_isready >/dev/null 2>&1 &&
    pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    fresh_bench_db || true
  fi
  mkdir -p "$WORK/data-postgres"
  local why="$OUT/postgres-start.txt"
  if ! start_scimd postgres --data-dir "$WORK/data-postgres" --database "$url" 2>"$why"; then
    # Refused because no database answers? Then prepare one (default URL) and retry once.
    if [[ "$default_url" == "1" ]] && grep -qiE 'connect|refused|does not exist|authentication|password' "$why"; then
      if SCIMD_TEST_DB=scimd_bench "$ROOT/scripts/ensure-postgres.sh" >"$OUT/ensure-postgres.log" 2>&1 &&
        fresh_bench_db && start_scimd postgres --data-dir "$WORK/data-postgres" --database "$url" 2>"$why"; then
        :
      else
        say "PostgreSQL: skipped: $(grep -v '^bench:' "$why" | grep -v WARN | tail -n 1) (see $OUT/ensure-postgres.log)"
        return 0
      fi
    else
      say "PostgreSQL: skipped: scimd refused --database $url: $(grep -v '^bench:' "$why" | grep -v WARN | tail -n 1)"
      return 0
    fi
  fi
  run_suite "postgres-$N"
  stop_server
}

say "N=$N users; scenarios: $SCENARIOS; ${DURATION}s each; $CONNS read / $WCONNS write connections; results in $OUT"
nproc_out="$(nproc)"
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
mem="$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
say "machine: $nproc_out cores, $cpu, $mem"
T0=$SECONDS
run_sqlite
run_postgres

echo
say "results (N=$N; req/s and ms; peak RSS = server VmHWM during that step):"
{
  printf 'label\tscenario\tconns\trequests\treq/s\tp50\tp99\tmax\terrors\tpeakMiB\n'
  cat "$TSV"
} | column -t -s $'\t'
if [[ -f "$OUT/groups.tsv" ]]; then
  echo
  say "groups benchmark (median ms: 10-member group, $GROUP_MEMBERS-member group):"
  column -t -s $'\t' "$OUT/groups.tsv"
fi
echo
overall="$(awk -F'\t' '$10 != "-" && $10+0 > m {m = $10+0} END {printf "%.1f", m}' "$TSV")"
say "server peak RSS (max over all steps): $overall MiB"
say "done in $((SECONDS - T0)) s"
