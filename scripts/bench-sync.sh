#!/usr/bin/env bash
# The sync engine's figures of docs/benchmarks.md:
#
#   ./scripts/bench-sync.sh [N]      # default 100000 users
#
# Builds release scimd and scim, starts two scimd (each on its own SQLite, OAuth
# on): "local" with a sync directory whose connector is "remote" (OAuth client
# credentials, secret in a file) and the example's four mappings. Loads N users
# into local (`scim import --bulk`), then times, over REST with waitForCompletion:
#   initial:  managedUser_systemScimAccount into the empty remote (N creates);
#   re-run:   the same mapping again (nothing to change);
#   live:     100 local users changed, then a liveSync of the mapping;
# checks the remote holds N users and the 100 changes, and prints the figures.
# Run it on a quiet machine (nothing else building or benchmarking).
# Env: SCIMD_BIN, SCIM_BIN (use these binaries, build nothing), BENCH_KEEP=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${1:-100000}"
CHANGES=100
say() { echo "bench-sync: $*" >&2; }

# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"
cli_binaries

WORK="$(mktemp -d /tmp/scimd-bench-sync.XXXXXX)"
mkdir -p "$WORK/remote" "$WORK/local" "$WORK/sync"
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ "${BENCH_KEEP:-0}" == "1" ]] || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME PORT [FLAGS...]: scimd on its own data dir, waited for.
start() {
  local name="$1" port="$2"
  shift 2
  RUST_LOG="${RUST_LOG:-warn}" "$SCIMD" serve --listen "127.0.0.1:$port" --data-dir "$WORK/$name" \
    --protection oauth --bulk-max-operations 1000 --bulk-max-payload-bytes 10000000 \
    --max-results 1000 "$@" >>"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 600); do
    curl -s -o /dev/null "http://127.0.0.1:$port/scim/v2/ServiceProviderConfig" && return 0
    sleep 0.1
  done
  say "$name did not start, see $WORK/$name.log"
  exit 1
}

# client NAME: a client with every scope on NAME's database, as "id secret".
client() {
  "$SCIMD" clients create --name "bench-sync" --scope all --json --data-dir "$WORK/$1" |
    python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["client_id"], c["client_secret"])'
}

token() {
  curl -s -u "$2:$3" -d grant_type=client_credentials "http://127.0.0.1:$1/oauth/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

RPORT="$(free_port)"
LPORT="$(free_port)"
start remote "$RPORT"
read -r RID RSECRET < <(client remote)
printf '%s' "$RSECRET" >"$WORK/sync/remote.secret"
cat >"$WORK/sync/provisioner.openicf-scim.json" <<JSON
{"name": "scim", "enabled": true, "configurationProperties": {
  "SCIMEndpoint": "http://127.0.0.1:$RPORT/scim/v2", "SCIMVersion": 2,
  "authenticationMethod": "OAUTH", "clientId": "$RID",
  "clientSecret": {"\$file": "remote.secret"},
  "tokenEndpoint": "http://127.0.0.1:$RPORT/oauth/token", "pageSize": 1000}}
JSON
cp examples/sync-with-scim/sync.json "$WORK/sync/sync.json"
start local "$LPORT" --sync-dir "$WORK/sync"
read -r LID LSECRET < <(client local)
printf '%s' "$LSECRET" >"$WORK/local.secret"
LTOKEN="$(token "$LPORT" "$LID" "$LSECRET")"

say "loading $N users into local"
users_csv "$N" "$WORK/users.csv"
"$SCIM" import --in "$WORK/users.csv" --bulk --concurrency 4 --url "http://127.0.0.1:$LPORT/scim/v2" \
  --client-id "$LID" --client-secret-file "$WORK/local.secret"

MAPPING=managedUser_systemScimAccount
now() { date +%s.%N; }
# run ACTION: one run of the mapping, waited for; prints its seconds, checks SUCCESS.
run() {
  local t0 t1 out
  t0="$(now)"
  out="$(curl -s -X POST -H "Authorization: Bearer $LTOKEN" \
    "http://127.0.0.1:$LPORT/sync/recon?_action=$1&mapping=$MAPPING&waitForCompletion=true")"
  t1="$(now)"
  python3 - "$out" <<'PY' >&2
import json, sys
r = json.loads(sys.argv[1])
print(f"bench-sync: {r.get('kind')} {r['state']} situations {r['situationSummary']} statuses {r['statusSummary']}")
if r["state"] != "SUCCESS" or set(r["statusSummary"]) - {"SUCCESS"}:
    sys.exit(f"bench-sync: the run did not succeed: {r}")
PY
  python3 -c "print($t1 - $t0)"
}

say "initial reconciliation of $N users into the empty remote"
INITIAL="$(run recon)"
say "re-run, nothing changed"
RERUN="$(run recon)"

say "changing $CHANGES local users"
python3 - "$LPORT" "$LTOKEN" "$CHANGES" <<'PY'
import http.client, json, sys
port, token, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}
for i in range(n):
    q = f'/scim/v2/Users?filter=userName%20eq%20%22user{i * 7:07d}%22'
    c.request("GET", q, headers=h)
    uid = json.loads(c.getresponse().read())["Resources"][0]["id"]
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "displayName", "value": f"Changed {i}"}]}
    c.request("PATCH", f"/scim/v2/Users/{uid}", body=json.dumps(body), headers=h)
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
say "live sync of $CHANGES changes"
LIVE="$(run liveSync)"

RTOKEN="$(token "$RPORT" "$RID" "$RSECRET")"
python3 - "$RPORT" "$RTOKEN" "$N" "$CHANGES" <<'PY'
import http.client, json, sys
port, token, n, changes = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"Authorization": f"Bearer {token}"}
c.request("GET", "/scim/v2/Users?count=0", headers=h)
total = json.loads(c.getresponse().read())["totalResults"]
c.request("GET", '/scim/v2/Users?count=0&filter=displayName%20sw%20%22Changed%20%22', headers=h)
changed = json.loads(c.getresponse().read())["totalResults"]
if (total, changed) != (n, changes):
    sys.exit(f"bench-sync: the remote holds {total} users, {changed} changed; want {n}, {changes}")
print(f"bench-sync: remote holds {total} users, {changed} changed", file=sys.stderr)
PY

python3 - "$N" "$INITIAL" "$RERUN" "$CHANGES" "$LIVE" <<'PY'
import sys
n, initial, rerun, changes, live = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
print(f"initial: {n} users in {initial:.1f} s ({n / initial:.0f} users/s)")
print(f"re-run (no change): {rerun:.2f} s ({initial / rerun:.1f}x faster than the initial run)")
print(f"live sync of {changes} changes: {live:.2f} s")
PY
