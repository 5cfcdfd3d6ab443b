#!/usr/bin/env bash
# What interception scripts cost: POST /Users and GET /Users/{id} with no script, with
# a trivial v1+v3 script, and with the department-restriction v5 script, in one run on
# one server (SQLite, OAuth protection with a real client_credentials token).
#
#   ./scripts/bench-scripts.sh [N]        # N users (default 10000)
#
# Env: SCIMD_BIN, BENCH_BIN (skip the build), BENCH_DURATION=5, BENCH_CONNECTIONS=32.
# Prints req/s (p50 / p99 ms) per phase and each script's cost against no script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${1:-10000}"
DURATION="${BENCH_DURATION:-5}"
CONNS="${BENCH_CONNECTIONS:-32}"
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

# How many scripts the running server has loaded, through the admin API.
loaded() {
  curl -s -H "Authorization: Bearer $TOKEN" "$HOST/admin/scripts" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); s=d.get("scripts", d.get("Resources", d)) if isinstance(d, dict) else d; print(sum(1 for x in s if x.get("enabled")))'
}

# Wait (at most 10 s) until the server runs WANT enabled scripts.
wait_for() {
  for _ in $(seq 1 100); do
    [[ "$(loaded)" == "$1" ]] && return 0
    sleep 0.1
  done
  echo "bench-scripts: the server did not pick up the script change" >&2
  return 1
}

phase() {
  local label="$1"
  # The server reloads scripts within a second of a change; give it a moment more
  # so no request of the phase runs on the old set.
  sleep 2
  for s in post-user get-by-id; do
    "${B[@]}" run --scenario "$s" --users "$N" --duration "$DURATION" --connections "$CONNS" \
      --tsv "$TSV" --label "$label" >/dev/null
  done
}

phase none
"$SCIMD" scripts add --data-dir "$DATA" --name trivial --file examples/scripts/trivial.lua >/dev/null
wait_for 1
phase trivial
"$SCIMD" scripts disable --data-dir "$DATA" trivial >/dev/null
# Every user of the benchmark is in the client's department (SCIMD_BENCH_DEPARTMENTS=1),
# so every request passes the check, and pays for it: the filter prepended to each
# search, the department compared on each GET and POST.
"$SCIMD" scripts add --data-dir "$DATA" --name departments \
  --file examples/scripts/department_restriction.lua \
  --property "departments=$client_id=Dept 0" >/dev/null
wait_for 1
phase department

python3 - "$TSV" <<'PY'
import csv, sys
rows = {}
for r in csv.reader(open(sys.argv[1]), delimiter="\t"):
    rows[(r[0], r[1])] = (float(r[4]), r[5], r[6], r[8])
print(f"{'phase':<12} {'scenario':<10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'cost':>8}")
for phase in ("none", "trivial", "department"):
    for s in ("post-user", "get-by-id"):
        if (phase, s) not in rows:
            continue
        rps, p50, p99, errs = rows[(phase, s)]
        base = rows.get(("none", s), (rps,))[0]
        cost = f"{(1 - rps / base) * 100:+.1f}%" if phase != "none" else ""
        print(f"{phase:<12} {s:<10} {rps:>10,.0f} {float(p50):>8.2f} {float(p99):>8.2f} {errs:>7} {cost:>8}")
PY
