# Shared by scripts/bench.sh and scripts/bench-reference.sh (source it).
# Server lifecycle around the global SERVER_PID.

# Stop the server in SERVER_PID: TERM, up to 10 s to exit, then KILL.
stop_server() {
  if [[ -n "${SERVER_PID:-}" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

# A free loopback port: bind port 0, read it back, release it.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# An empty scimd_bench database on the local PostgreSQL (trust auth, as
# scripts/ensure-postgres.sh sets it up).
fresh_bench_db() {
  psql -q -h 127.0.0.1 -U postgres -c 'DROP DATABASE IF EXISTS scimd_bench' >/dev/null 2>&1 &&
    psql -q -h 127.0.0.1 -U postgres -c 'CREATE DATABASE scimd_bench' >/dev/null 2>&1
}

# SCIMD and BENCH: the binaries in SCIMD_BIN and BENCH_BIN when both are set, else a
# release build of this checkout (needs ROOT and say).
bench_binaries() {
  if [[ -n "${SCIMD_BIN:-}" && -n "${BENCH_BIN:-}" ]]; then
    SCIMD="$SCIMD_BIN"
    BENCH="$BENCH_BIN"
  else
    say "cargo build --release -p scimd -p scim-bench"
    cargo build --release --quiet -p scimd -p scim-bench
    SCIMD="${CARGO_TARGET_DIR:-$ROOT/target}/release/scimd"
    BENCH="${CARGO_TARGET_DIR:-$ROOT/target}/release/scimd-bench"
  fi
  local b
  for b in "$SCIMD" "$BENCH"; do
    [[ -x "$b" ]] || {
      echo "binary not found: $b" >&2
      return 1
    }
  done
}

# SCIMD and SCIM (the client): the binaries in SCIMD_BIN and SCIM_BIN when both
# are set, else a release build of this checkout (needs ROOT and say).
cli_binaries() {
  if [[ -n "${SCIMD_BIN:-}" && -n "${SCIM_BIN:-}" ]]; then
    SCIMD="$SCIMD_BIN"
    SCIM="$SCIM_BIN"
  else
    say "cargo build --release -p scimd -p scim-cli"
    cargo build --release --quiet -p scimd -p scim-cli
    SCIMD="${CARGO_TARGET_DIR:-$ROOT/target}/release/scimd"
    SCIM="${CARGO_TARGET_DIR:-$ROOT/target}/release/scim"
  fi
}

# users_csv N FILE: N users as a `scim import` CSV (user0000000 …, one work email each).
users_csv() {
  python3 - "$1" "$2" <<'PY'
import csv, sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["userName", "name.givenName", "name.familyName", "displayName",
                'emails[type eq "work"].value', "active"])
    for i in range(n):
        w.writerow([f"user{i:07d}", f"Given{i}", f"Family{i % 977}", f"User {i}",
                    f"user{i}@example.com", "true"])
PY
}
