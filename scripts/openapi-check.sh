#!/usr/bin/env bash
# The OpenAPI document against the server it describes: starts a fresh scimd
# (SQLite, bypass so that every operation is reachable), and runs schemathesis
# (PyPI, pinned, in its own venv .venv-schemathesis) from /openapi.json for a
# bounded time. Fails on any server error, any status code, content type, header
# or body that contradicts the document, or a crash.
#
#   SCIMD_BIN=target/debug/scimd ./scripts/openapi-check.sh [SECONDS]   # default 60
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECS="${1:-${SCIMD_SCHEMATHESIS_SECONDS:-60}}"
VENV="$ROOT/.venv-schemathesis"
PIN="schemathesis==4.32.5"
say() { echo "openapi-check: $*"; }

if [[ ! -x "$VENV/bin/schemathesis" || "$(cat "$VENV/.stamp" 2>/dev/null)" != "$PIN" ]]; then
  say "installing $PIN into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$PIN"
  printf '%s' "$PIN" >"$VENV/.stamp"
fi

SCIMD="${SCIMD_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/scimd}"
[[ -x "$SCIMD" ]] || { say "no scimd at $SCIMD (cargo build -p scimd)"; exit 1; }
WORK="$(mktemp -d /tmp/scimd-openapi.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
RUST_LOG=warn "$SCIMD" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --protection bypass \
  >"$WORK/scimd.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 200); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/health/ready" && break
  sleep 0.05
done
say "schemathesis for $SECS s against http://127.0.0.1:$PORT/openapi.json"
# Its example cache goes to the temporary directory, not the checkout.
cd "$WORK"
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/openapi.json" \
  --max-time "$SECS" --request-timeout 10 --generation-deterministic \
  -c not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  2>&1 | tee "$WORK/schemathesis.out" | tail -25
status=${PIPESTATUS[0]}
if ! kill -0 "$PID" 2>/dev/null; then
  say "scimd died during the run:"
  tail -20 "$WORK/scimd.log"
  exit 1
fi
if [[ $status -ne 0 ]]; then
  say "schemathesis found failures (exit $status)"
  exit 1
fi
say "ok: no server error, no response contradicting the document, no crash"
