#!/usr/bin/env bash
# THE test command: ./scripts/test.sh   (CI runs it through .ci/run)
#
#   1. PostgreSQL on 127.0.0.1:5432 with database scimd_test   (scripts/ensure-postgres.sh)
#   2. Python venv with scim2-tester / scim2-cli / scim2-server (scripts/setup-python.sh),
#      headless Chromium and ChromeDriver for the console's browser test (scripts/ensure-chromium.sh)
#   3. cargo fmt --all -- --check
#   4. cargo clippy --workspace --all-targets -- -D warnings
#   5. cargo test --workspace   (SCIMD_TEST_POSTGRES_URL points at scimd_test)
#   6. fuzz each cargo-fuzz target for 60 s                    (scripts/fuzz.sh; SCIMD_FUZZ_SECONDS)
#   7. the end-to-end suite again, every server on PostgreSQL  (SCIMD_E2E_DATABASE=postgres),
#      then the logs of every e2e server grepped for the secrets and tokens the tests used
#      (scripts/lib/check-logs.py)
#   8. schemathesis from /openapi.json against a fresh scimd    (scripts/openapi-check.sh; SCIMD_SCHEMATHESIS_SECONDS)
#   9. scim2-tester conformance against a fresh scimd           (scripts/conformance.sh)
#
# Stops at the first failing step. The last line printed is the conformance summary
# `conformance: N passed, M failed` (cargo test prints its own `test result:` lines).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export SCIMD_TEST_POSTGRES_URL="${SCIMD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/scimd_test}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

STEP_START=0
section() {
  STEP_START=$SECONDS
  echo
  echo "==================== $* ===================="
}
done_step() { echo "---- ok: $1 ($((SECONDS - STEP_START)) s)"; }

section "1/9 PostgreSQL (scripts/ensure-postgres.sh)"
./scripts/ensure-postgres.sh
done_step postgres

section "2/9 Python tools and Chromium (scripts/setup-python.sh, scripts/ensure-chromium.sh)"
./scripts/setup-python.sh
./scripts/ensure-chromium.sh
# The console's browser test must run here, never skip.
export SCIMD_TEST_BROWSER=required
done_step tools

section "3/9 cargo fmt --all -- --check"
cargo fmt --all -- --check
done_step fmt

section "4/9 cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
done_step clippy

# The e2e servers' logs, checked for secrets after step 7.
E2E_LOGS="$TARGET_DIR/tmp/e2e-logs"
rm -rf "$E2E_LOGS"

section "5/9 cargo test --workspace"
# The binaries first, with the test build's features: the e2e tests run
# target/debug/scimd and target/debug/scim (another package's binary, which cargo
# test alone would not build).
cargo build --quiet --workspace --bins --tests
cargo test --workspace
done_step test

section "6/9 fuzz (scripts/fuzz.sh, ${SCIMD_FUZZ_SECONDS:-60} s per target)"
./scripts/fuzz.sh "${SCIMD_FUZZ_SECONDS:-60}"
done_step fuzz

section "7/9 end-to-end suite on PostgreSQL"
SCIMD_E2E_DATABASE=postgres cargo test -p scimd --test e2e
python3 scripts/lib/check-logs.py "$E2E_LOGS"
done_step e2e-postgres

section "8/9 OpenAPI document vs the server (scripts/openapi-check.sh, schemathesis)"
SCIMD_BIN="$TARGET_DIR/debug/scimd" ./scripts/openapi-check.sh
done_step openapi

section "9/9 conformance (scripts/conformance.sh, scim2-tester)"
SCIMD_BIN="$TARGET_DIR/debug/scimd" ./scripts/conformance.sh
