#!/usr/bin/env bash
# Run the scim2-tester conformance suite against a fresh scimd.
#
#   ./scripts/conformance.sh                 # builds (debug) scimd, then tests it
#   SCIMD_BIN=path/to/scimd ./scripts/conformance.sh   # tests that binary, builds nothing
#
# Starts `scimd serve` on a free loopback port with an empty temporary data dir and
# --protection bypass, waits (30 s max) for GET /scim/v2/ServiceProviderConfig, runs
# scripts/conformance.py against http://127.0.0.1:PORT/scim/v2, stops the server and exits
# with the wrapper's status. Last line: `conformance: N passed, M failed`.
#
# Env: SCIMD_BIN (skip the build), SCIMD_CONFORMANCE_ARGS (extra wrapper args, e.g.
# "--trace /tmp/scim.trace"), SCIMD_CONFORMANCE_KEEP=1 (keep the data dir and log).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/scripts/setup-python.sh"
PY="$ROOT/.venv/bin/python"

if [[ -n "${SCIMD_BIN:-}" ]]; then
  BIN="$SCIMD_BIN"
else
  echo "conformance: cargo build -p scimd"
  cargo build --quiet -p scimd
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/scimd"
fi
if [[ ! -x "$BIN" ]]; then
  echo "conformance: scimd binary not found or not executable: $BIN"
  echo "conformance: 0 passed, 1 failed"
  exit 1
fi

DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/scimd-conformance.XXXXXX")"
LOG="$DATA_DIR/scimd.log"
SERVER_PID=""

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ "${SCIMD_CONFORMANCE_KEEP:-0}" == "1" ]]; then
    echo "conformance: kept $DATA_DIR (server log: $LOG)" >&2
  else
    rm -rf "$DATA_DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port: bind port 0, read it back, release it (tiny race, fine on a test box).
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
BASE="http://127.0.0.1:$PORT/scim/v2"

# Custom attributes (the Gluu user extension) are checked too. Only string and
# boolean ones: the checker generates invalid values for decimal and dateTime
# extension attributes, and expects `add` on a multi-valued attribute to replace
# (RFC 7644 §3.5.2.1 says append); those are covered by the project's own tests.
for kind in string boolean; do
  "$BIN" attributes add --name "conformance_$kind" --type "$kind" --data-dir "$DATA_DIR" >>"$LOG" 2>&1
done

# Protection on, with a real token (set SCIMD_CONFORMANCE_PROTECTION=bypass to
# check the protocol alone): a client with every scope, registered on the database.
PROTECTION="${SCIMD_CONFORMANCE_PROTECTION:-oauth}"
CLIENT_JSON=""
if [[ "$PROTECTION" != "bypass" ]]; then
  CLIENT_JSON="$("$BIN" clients create --name conformance --scope all --json --data-dir "$DATA_DIR" 2>>"$LOG")"
fi

echo "conformance: starting $BIN serve --listen 127.0.0.1:$PORT --protection $PROTECTION (data dir $DATA_DIR)"
# --no-devices: scim2-tester creates a resource of every published type with POST,
# and FIDO devices cannot be created over SCIM (they are enrolled by the
# authentication flows, as in Gluu): those 24 checks would only measure that.
# The device endpoints are covered by the project's own end-to-end tests.
NO_COLOR=1 RUST_LOG="${RUST_LOG:-warn}" "$BIN" serve \
  --listen "127.0.0.1:$PORT" \
  --data-dir "$DATA_DIR" \
  --protection "$PROTECTION" \
  --no-devices \
  ${SCIMD_CONFORMANCE_SERVER_ARGS:-} \
  >"$LOG" 2>&1 &
SERVER_PID=$!

ready=0
code=""
deadline=$((SECONDS + 30))
while ((SECONDS < deadline)); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "conformance: scimd exited before answering; its log:"
    sed 's/^/  | /' "$LOG" || true
    echo "conformance: 0 passed, 1 failed"
    exit 1
  fi
  code="$("$PY" - "$BASE/ServiceProviderConfig" <<'EOF' 2>/dev/null || true
import sys, urllib.request
try:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(sys.argv[1], timeout=1) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
EOF
)"
  if [[ "$code" == "200" ]]; then
    ready=1
    break
  fi
  sleep 0.1
done
if [[ "$ready" != "1" ]]; then
  echo "conformance: scimd did not answer GET $BASE/ServiceProviderConfig with 200 within 30 s (last HTTP status: ${code:-none}, 0 = no connection); its log:"
  tail -n 50 "$LOG" | sed 's/^/  | /' || true
  echo "conformance: 0 passed, 1 failed"
  exit 1
fi

TOKEN_ARGS=()
if [[ -n "$CLIENT_JSON" ]]; then
  TOKEN="$("$PY" "$ROOT/scripts/get-token.py" "http://127.0.0.1:$PORT/oauth/token" "$CLIENT_JSON")"
  echo "conformance: obtained an access token from /oauth/token (client_credentials, all scopes)"
  TOKEN_ARGS=(--token "$TOKEN")
fi

OUT="$DATA_DIR/conformance.out"
set +e
# shellcheck disable=SC2086  # word splitting of the extra args is intended
"$PY" "$ROOT/scripts/conformance.py" "$BASE" "${TOKEN_ARGS[@]}" ${SCIMD_CONFORMANCE_ARGS:-} | tee "$OUT"
status=${PIPESTATUS[0]}
set -e
if [[ $status -ne 0 ]]; then
  echo "conformance: last lines of the server log ($LOG):"
  tail -n 20 "$LOG" | sed 's/^/  | /' || true
  # Keep the summary as the very last line.
  tail -n 1 "$OUT"
fi
exit "$status"
