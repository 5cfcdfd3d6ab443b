#!/usr/bin/env bash
# What interception scripts cost: POST /Users and GET /Users/{id} with no script, with
# a trivial v1+v3 script, and with the department-restriction v5 script, in one run on
# one server (SQLite, OAuth protection with a real client_credentials token).
#
#   ./scripts/bench-scripts.sh [N]        # N users (default 10000)
#
# Env: SCIMD_BIN, BENCH_BIN (skip the build), BENCH_DURATION=5, BENCH_CONNECTIONS=32,
# BENCH_ROUNDS=3. Prints, per phase, the median over the rounds of req/s (p50 / p99 ms)
# and each script's cost against no script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${1:-10000}"
DURATION="${BENCH_DURATION:-5}"
CONNS="${BENCH_CONNECTIONS:-32}"
ROUNDS="${BENCH_ROUNDS:-3}"
WORK="$(mktemp -d)"
export SCIMD_BENCH_DEPARTMENTS=1
DATA="$WORK/data"
TSV="$WORK/results.tsv"

say() { echo "bench-scripts: $*"; }
# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"
trap 'stop_server; rm -rf "$WORK"' EXIT
bench_binaries

# A client with the scopes of the benchmark, its token from the running server.
client="$("$SCIMD" clients create --data-dir "$DATA" --name bench \
  --scope "users.read users.write bulk admin" --json)"
client_id="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$client")"
secret="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$client")"

port="$(free_port)"
HOST="http://127.0.0.1:$port"
BASE="$HOST/scim/v2"
RUST_LOG=warn "$SCIMD" serve --listen "127.0.0.1:$port" --data-dir "$DATA" \
  --token-lifetime 3600 --bulk-max-operations 1000 --bulk-max-payload-bytes 10000000 \
  --max-payload-bytes 10000000 >"$WORK/scimd.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  [[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/ServiceProviderConfig")" == "200" ]] && break
  sleep 0.1
done
TOKEN="$(curl -s -u "$client_id:$secret" -d grant_type=client_credentials "$HOST/oauth/token" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
B=("$BENCH" --base "$BASE" --token "$TOKEN")
say "loading $N users"
"${B[@]}" load --users "$N" --concurrency 4 >/dev/null

# Both scripts are loaded once, disabled; each phase enables the one it measures.
"$SCIMD" scripts add --data-dir "$DATA" --name trivial --file examples/scripts/trivial.lua \
  --disabled >/dev/null
# Every user of the benchmark is in the client's department (SCIMD_BENCH_DEPARTMENTS=1),
# so every request passes the check, and pays for it: the filter prepended to each
# search, the department compared on each GET and POST.
"$SCIMD" scripts add --data-dir "$DATA" --name departments \
  --file examples/scripts/department_restriction.lua \
  --property "departments=$client_id=Dept 0" --disabled >/dev/null

# Enable exactly the script of phase $1 (none: no script) and wait out the reload
# (running servers pick script changes up within 3 s).
switch_to() {
  for s in trivial departments; do
    if [[ "$s" == "$1" ]]; then
      "$SCIMD" scripts enable --data-dir "$DATA" "$s" >/dev/null
    else
      "$SCIMD" scripts disable --data-dir "$DATA" "$s" >/dev/null
    fi
  done
  sleep 4
}

phase() {
  local label="$1" round="$2" scenario="$3"
  switch_to "$label"
  "${B[@]}" run --scenario "$scenario" --users "$N" --duration "$DURATION" --connections "$CONNS" \
    --tsv "$TSV" --label "$label/$round" >/dev/null
}

# GET phases alternate round by round, so a machine that gets noisier (or quieter)
# during the run weighs on every phase alike; medians are reported. POST runs
# once per phase, after them: each POST phase adds thousands of users, and the
# GET rounds should all see the same database.
for round in $(seq 1 "$ROUNDS"); do
  say "round $round of $ROUNDS"
  for label in none trivial departments; do
    phase "$label" "$round" get-by-id
  done
done
for label in none trivial departments; do
  phase "$label" 1 post-user
done

python3 - "$TSV" <<'PY'
import csv, statistics, sys
runs = {}
for r in csv.reader(open(sys.argv[1]), delimiter="\t"):
    phase = r[0].split("/")[0]
    runs.setdefault((phase, r[1]), []).append((float(r[4]), float(r[5]), float(r[6]), int(float(r[8]))))
def med(xs, i):
    return statistics.median(x[i] for x in xs)
print(f"{'phase':<12} {'scenario':<10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'cost':>8}  (GET: median of the rounds)")
for phase in ("none", "trivial", "departments"):
    for s in ("post-user", "get-by-id"):
        xs = runs.get((phase, s))
        if not xs:
            continue
        rps = med(xs, 0)
        base = med(runs[("none", s)], 0)
        cost = f"{(1 - rps / base) * 100:+.1f}%" if phase != "none" else ""
        errs = sum(x[3] for x in xs)
        rounds = " ".join(f"{x[0]:,.0f}" for x in xs) if len(xs) > 1 else ""
        print(f"{phase:<12} {s:<10} {rps:>10,.0f} {med(xs, 1):>8.2f} {med(xs, 2):>8.2f} {errs:>7} {cost:>8}  {rounds}")
PY
