#!/usr/bin/env bash
# The console's page times of docs/benchmarks.md:
#
#   ./scripts/bench-console.sh [N] [MEMBERS]   # default 1000000 users, a group of 100000
#
# Starts a release scimd (SQLite, OAuth on) in a temp dir, loads N users
# (`scim import --bulk`), makes a group of MEMBERS of them, an admin
# (`scimd admins add`), logs in through the form and times every console page
# (GET, one at a time, 20 times each after a warm-up): p50, p95 and max in ms.
# Run it on a quiet machine. Env: SCIMD_BIN, SCIM_BIN (use these binaries,
# build nothing), BENCH_KEEP=1 (keep the temp dir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
N="${1:-1000000}"
MEMBERS="${2:-100000}"
say() { echo "bench-console: $*" >&2; }

# shellcheck source=lib/bench-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-common.sh"
cli_binaries

WORK="$(mktemp -d /tmp/scimd-bench-console.XXXXXX)"
PID=""
cleanup() {
  local rc=$?
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  [[ "${BENCH_KEEP:-0}" == "1" ]] || rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(free_port)"
RUST_LOG="${RUST_LOG:-warn}" "$SCIMD" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
  --protection oauth --bulk-max-operations 1000 --bulk-max-payload-bytes 10000000 \
  --max-results 1000 >>"$WORK/scimd.log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/scim/v2/ServiceProviderConfig" && break
  sleep 0.1
done

read -r CID CSECRET < <("$SCIMD" clients create --name bench --scope all --json --data-dir "$WORK/data" |
  python3 -c 'import json,sys; c=json.load(sys.stdin); print(c["client_id"], c["client_secret"])')
printf '%s' "$CSECRET" >"$WORK/client.secret"

say "loading $N users"
users_csv "$N" "$WORK/users.csv"
"$SCIM" import --in "$WORK/users.csv" --bulk --concurrency 4 --url "http://127.0.0.1:$PORT/scim/v2" \
  --client-id "$CID" --client-secret-file "$WORK/client.secret" >&2

printf 'bench console password\n' >"$WORK/admin.pw"
"$SCIMD" admins add --user-name benchadmin --password-file "$WORK/admin.pw" --data-dir "$WORK/data" >&2

python3 - "$PORT" "$CID" "$CSECRET" "$MEMBERS" <<'PY'
import base64, http.client, json, re, statistics, sys, time, urllib.parse

port, cid, secret, members = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

def call(method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.getheaders(), r.read()

basic = base64.b64encode(f"{cid}:{secret}".encode()).decode()
_, _, b = call("POST", "/oauth/token", "grant_type=client_credentials",
               {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})
api = {"Authorization": "Bearer " + json.loads(b)["access_token"], "Content-Type": "application/scim+json"}

# A group of `members` users, 1,000 per PATCH.
ids, cursor = [], ""
while len(ids) < members:
    _, _, b = call("GET", f"/scim/v2/Users?attributes=id&count=1000&cursor={cursor}", headers=api)
    page = json.loads(b)
    ids += [r["id"] for r in page["Resources"]]
    cursor = page.get("nextCursor")
    if not cursor:
        break
ids = ids[:members]
st, _, b = call("POST", "/scim/v2/Groups", json.dumps(
    {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "everyone-big"}), api)
group = json.loads(b)["id"]
for i in range(0, len(ids), 1000):
    ops = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
           "Operations": [{"op": "add", "path": "members", "value": [{"value": x} for x in ids[i:i + 1000]]}]}
    st, _, b = call("PATCH", f"/scim/v2/Groups/{group}?excludedAttributes=members", json.dumps(ops), api)
    assert st in (200, 204), (st, b[:200])
print(f"bench-console: group of {len(ids)} members", file=sys.stderr)

# Log in through the form.
cookies = {}
def keep(headers):
    for k, v in headers:
        if k.lower() == "set-cookie":
            name, _, val = v.split(";")[0].partition("=")
            cookies[name] = val
def browse(method, path, form=None):
    h = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        h["Content-Type"] = "application/x-www-form-urlencoded"
    st, headers, b = call(method, path, body, h)
    keep(headers)
    return st, b.decode()
_, page = browse("GET", "/ui/login")
token = re.search(r'name="login_token" value="([^"]+)"', page).group(1)
st, _ = browse("POST", "/ui/login", {"login_token": token, "user_name": "benchadmin",
                                     "password": "bench console password"})
assert st == 303, st
user = ids[len(ids) // 2]
q = urllib.parse.quote
pages = [
    ("dashboard", "/ui/"),
    ("users, first page by userName", "/ui/users"),
    ("users, newest first (meta.created)", "/ui/users?sort=meta.created&order=descending"),
    ("users, search 'user00123' (sw/co)", "/ui/users?q=user00123"),
    ("users, filter userName eq", "/ui/users?q=" + q('userName eq "user0500000"')),
    ("users, page at startIndex 10001", "/ui/users?start=10001"),
    ("user page", f"/ui/users/{user}"),
    ("groups", "/ui/groups"),
    (f"group of {len(ids)} members, first page", f"/ui/groups/{group}"),
    (f"group of {len(ids)} members, last page", f"/ui/groups/{group}?start={max(1, len(ids) - 49)}"),
    ("clients", "/ui/clients"),
    ("audit", "/ui/audit"),
]
print(f"{'page':48} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
for name, path in pages:
    st, _ = browse("GET", path)
    assert st == 200, (path, st)
    times = []
    for _ in range(20):
        t = time.perf_counter()
        st, body = browse("GET", path)
        times.append((time.perf_counter() - t) * 1000)
        assert st == 200, (path, st)
    times.sort()
    print(f"{name:48} {statistics.median(times):8.1f} {times[18]:8.1f} {times[-1]:8.1f}")
PY
