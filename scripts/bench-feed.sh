#!/usr/bin/env bash
# Time 1,000-entry pages of the change feeds of a running scimd (issue 7):
#   - the lossless cursor feed  GET /scim/v2/Changes?count=1000&cursor=…
#   - Gluu's IDM-sync endpoint  GET /scim/UpdatedUsers?timeStamp=…&start=…&pageSize=1000
# at several depths of the feed. Prints median and p90 per page (ms) over REPS pages.
#
#   scripts/bench-feed.sh http://127.0.0.1:8080 [REPS]
#
# The server must hold the data already (e.g. 1,000,000 users). Bypass protection, or
# set BENCH_TOKEN to a bearer token.
set -euo pipefail
BASE="${1:?usage: bench-feed.sh BASE_URL [REPS]}"
REPS="${2:-20}"
AUTH=()
[[ -n "${BENCH_TOKEN:-}" ]] && AUTH=(-H "Authorization: Bearer $BENCH_TOKEN")

total="$(curl -s "${AUTH[@]}" "$BASE/scim/v2/Users?count=0" | python3 -c 'import json,sys; print(json.load(sys.stdin)["totalResults"])')"
echo "users: $total; $REPS pages per row"

stats() { # stdin: one time in seconds per line -> "median p90" in ms
  sort -n | awk '{a[NR]=$1*1000} END {m=a[int((NR+1)/2)]; p=a[int(NR*0.9)>0?int(NR*0.9):1]; printf "%.1f %.1f", m, p}'
}

page_times() { # $1 = URL template with @N@ replaced by a per-rep value source
  local kind="$1" depth="$2"
  for ((i = 0; i < REPS; i++)); do
    case "$kind" in
      changes)
        pos=$((depth + i * 1000))
        cursor="$(printf 's:%d' "$pos" | od -An -tx1 | tr -d ' \n')"
        url="$BASE/scim/v2/Changes?count=1000&cursor=$cursor" ;;
      updated)
        url="$BASE/scim/UpdatedUsers?timeStamp=2000-01-01T00:00:00Z&start=$((depth + i * 1000))&pageSize=1000" ;;
    esac
    out="$(curl -s "${AUTH[@]}" -o /tmp/bench-feed.$$ -w '%{http_code} %{time_total}' "$url")"
    code="${out%% *}"
    [[ "$code" == "200" ]] || { echo "HTTP $code for $url: $(head -c 300 /tmp/bench-feed.$$)" >&2; exit 1; }
    entries="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d.get("changes", d.get("results", []))))' /tmp/bench-feed.$$)"
    [[ "$entries" == "1000" ]] || { echo "expected 1000 entries, got $entries for $url" >&2; exit 1; }
    echo "${out#* }"
  done | stats
}

printf '%-44s %10s %10s %10s\n' "page of 1,000 entries" "depth" "median ms" "p90 ms"
for depth in 0 $((total / 2)) $((total - REPS * 1000 - 1000)); do
  read -r m p <<<"$(page_times changes "$depth")"
  printf '%-44s %10s %10s %10s\n' "/Changes (cursor)" "$depth" "$m" "$p"
done
for depth in 0 $((total / 2)) $((total - REPS * 1000 - 1000)); do
  read -r m p <<<"$(page_times updated "$depth")"
  printf '%-44s %10s %10s %10s\n' "/UpdatedUsers (start=offset)" "$depth" "$m" "$p"
done
rm -f /tmp/bench-feed.$$
