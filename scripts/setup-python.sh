#!/usr/bin/env bash
# Create (idempotently) the Python virtualenv used by the conformance suite:
#   <repo>/.venv with scim2-tester (library), scim2-cli (the `scim2` command) and
#   scim2-server (the reference server the client library's tests run against).
# Fast when already installed: a stamp file records the pinned set that was installed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SCIMD_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

# Pinned: the checks (and what they accept) change from one release to the next.
PINS=(
  "scim2-tester==0.5.2"
  "scim2-cli==0.6.0"
  "scim2-client==0.13.2"
  "scim2-models==0.12.3"
  "scim2-server==0.8.3"
)
STAMP="$VENV/.scimd-python-stamp"
WANT="$(printf '%s\n' "${PINS[@]}")"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] \
  && "$VENV/bin/python" -c 'import scim2_tester, scim2_client, scim2_server' 2>/dev/null; then
  exit 0
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup-python: '$PYTHON' not found; install python3 (with venv) first" >&2
  exit 1
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup-python: creating $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || {
    echo "setup-python: '$PYTHON -m venv' failed (on Debian: apt-get install -y python3-venv)" >&2
    exit 1
  }
fi

echo "setup-python: installing ${PINS[*]}"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}" || {
  echo "setup-python: pip install failed" >&2
  exit 1
}
"$VENV/bin/python" -c 'import scim2_tester, scim2_client, scim2_server' || {
  echo "setup-python: installed packages do not import" >&2
  exit 1
}
printf '%s' "$WANT" >"$STAMP"
echo "setup-python: ready ($VENV)"
