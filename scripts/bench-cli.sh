#!/usr/bin/env bash
# The `scim` client's import and export figures of docs/benchmarks.md:
#
#   ./scripts/bench-cli.sh [N]      # default 100000 users
#
# Builds release scimd and scim, starts scimd on a temp data dir with OAuth
# protection on (a client made with `scimd clients create`, its secret in a file),
# generates a CSV of N users, times `scim import --bulk` of it and `scim export`
# of them as JSON lines, checks that the export holds exactly the CSV's content,
# and prints `import: N users in S s (R users/s)` and `export: ...`.
# Run it on a quiet machine (nothing else building or benchmarking).
# Env: SCIMD_BIN, SCIM_BIN (use these binaries, build nothing),
# BENCH_CONCURRENCY (Bulk requests in flight, default 4), BENCH_EXPORT_CONCURRENCY
# (parallel searches of the export, default 2), BENCH_KEEP=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${1:-100000}"
CONC="${BENCH_CONCURRENCY:-4}"
EXPORT_CONC="${BENCH_EXPORT_CONCURRENCY:-2}"
say() { echo "bench-cli: $*" >&2; }

# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"

cli_binaries

WORK="$(mktemp -d /tmp/scimd-bench-cli.XXXXXX)"
DATA="$WORK/data"
mkdir -p "$DATA"
SERVER_PID=""
cleanup() {
  local rc=$?
  stop_server
  [[ "${BENCH_KEEP:-0}" == "1" ]] || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT/scim/v2"
RUST_LOG="${RUST_LOG:-warn}" "$SCIMD" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" \
  --protection oauth --bulk-max-operations 1000 --bulk-max-payload-bytes 10000000 \
  --max-results 1000 >>"$WORK/scimd.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 600); do
  curl -s -o /dev/null "$BASE/ServiceProviderConfig" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { say "scimd exited, see $WORK/scimd.log"; exit 1; }
  sleep 0.1
done

CLIENT="$("$SCIMD" clients create --name bench-cli --scope all --json --data-dir "$DATA")"
CLIENT_ID="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$CLIENT")"
python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$CLIENT" >"$WORK/secret"
chmod 600 "$WORK/secret"
CONN=(--url "$BASE" --client-id "$CLIENT_ID" --client-secret-file "$WORK/secret")

say "generating $N users"
python3 - "$N" "$WORK/users.csv" <<'PY'
import csv, sys
n, path = int(sys.argv[1]), sys.argv[2]
ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["userName", "name.givenName", "name.familyName", "displayName",
                'emails[type eq "work"].value', "active", f"{ent}:employeeNumber", "title"])
    for i in range(n):
        w.writerow([f"user{i:07d}", f"Given{i}", f"Family{i % 977}", f"User, {i}",
                    f"user{i}@example.com", "true" if i % 5 else "false", str(100000 + i),
                    "" if i % 3 else f'Title "{i % 7}"'])
PY

now() { date +%s.%N; }
rate() { python3 -c "import sys; n,s=int(sys.argv[1]),float(sys.argv[2]); print(f'{n} users in {s:.1f} s ({n/s:.0f} users/s)')" "$1" "$2"; }

say "import --bulk --concurrency $CONC"
T0="$(now)"
"$SCIM" import --in "$WORK/users.csv" --bulk --concurrency "$CONC" "${CONN[@]}"
T1="$(now)"
IMPORT_S="$(python3 -c "print($T1 - $T0)")"

say "export --concurrency $EXPORT_CONC"
T0="$(now)"
"$SCIM" export --out "$WORK/users.jsonl" --resource users --concurrency "$EXPORT_CONC" "${CONN[@]}"
T1="$(now)"
EXPORT_S="$(python3 -c "print($T1 - $T0)")"

say "comparing content"
python3 - "$WORK/users.csv" "$WORK/users.jsonl" <<'PY'
import csv, json, sys
ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
def project(u):
    work = [e for e in u.get("emails", []) if e.get("type") == "work"]
    return (u["userName"], u.get("name", {}).get("givenName", ""), u.get("name", {}).get("familyName", ""),
            u.get("displayName", ""), work[0]["value"] if work else "",
            str(u.get("active", "")).lower(), u.get(ent, {}).get("employeeNumber", ""), u.get("title", ""))
with open(sys.argv[1], newline="") as f:
    r = csv.reader(f)
    next(r)
    want = sorted(tuple(row) for row in r)
with open(sys.argv[2]) as f:
    got = sorted(project(json.loads(line)) for line in f)
if want != got:
    missing = set(want) - set(got)
    extra = set(got) - set(want)
    print(f"bench-cli: content differs: {len(want)} in the CSV, {len(got)} exported, "
          f"{len(missing)} missing, {len(extra)} different; e.g. {sorted(missing)[:1]} vs {sorted(extra)[:1]}", file=sys.stderr)
    sys.exit(1)
print(f"bench-cli: identical content: {len(got)} users", file=sys.stderr)
PY

echo "import: $(rate "$N" "$IMPORT_S")"
echo "export: $(rate "$N" "$EXPORT_S")"
