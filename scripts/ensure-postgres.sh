#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 and that the database the tests
# use exists (default scimd_test; override with SCIMD_TEST_DB). Order of attempts:
#   1. already answering (pg_isready)            -> nothing to start
#   2. installed but stopped                     -> pg_ctlcluster ... main start
#   3. not installed                             -> apt-get install postgresql, then start
# Then: psql -h 127.0.0.1 -U postgres must work without a password (trust); if it does not
# (a fresh Debian install uses scram), trust is enabled for loopback TCP in pg_hba.conf.
# Fails loudly (non-zero exit, a message on stderr) when any step cannot be done.
set -euo pipefail

HOST=127.0.0.1
PORT=5432
DB="${SCIMD_TEST_DB:-scimd_test}"

say() { echo "ensure-postgres: $*"; }
die() {
  echo "ensure-postgres: ERROR: $*" >&2
  exit 1
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    die "need root to run: $*"
  fi
}

ready() { pg_isready -q -h "$HOST" -p "$PORT" >/dev/null 2>&1; }

wait_ready() {
  for _ in $(seq 1 60); do
    ready && return 0
    sleep 0.5
  done
  return 1
}

# shellcheck disable=SC2012  # version directory names are plain
cluster_version() {
  # The newest installed major version that has a "main" cluster.
  local v
  v="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true)"
  [[ -n "$v" && -d "/etc/postgresql/$v/main" ]] && echo "$v"
}

start_cluster() {
  local v
  v="$(cluster_version)" || true
  if [[ -z "${v:-}" ]]; then
    if [[ -d /usr/lib/postgresql ]] && command -v pg_createcluster >/dev/null 2>&1; then
      # shellcheck disable=SC2012
      v="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
      say "creating cluster $v/main"
      as_root pg_createcluster "$v" main >/dev/null || die "pg_createcluster $v main failed"
    else
      return 1
    fi
  fi
  say "starting cluster $v/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$v" main start ||
    as_root pg_ctlcluster "$v" main start ||
    die "pg_ctlcluster $v main start failed (log: /var/log/postgresql/postgresql-$v-main.log)"
}

if ready; then
  :
else
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ -z "$(cluster_version || true)" && ! -d /usr/lib/postgresql ]]; then
    command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is unavailable"
    say "PostgreSQL not installed: apt-get install -y postgresql"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
      die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null ||
      die "apt-get install postgresql failed"
  fi
  start_cluster || die "no PostgreSQL cluster found to start"
  wait_ready || die "PostgreSQL did not become ready on $HOST:$PORT within 30 s"
fi

PSQL=(psql -h "$HOST" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qAtX)

if ! "${PSQL[@]}" -d postgres -c 'select 1' >/dev/null 2>&1; then
  # Likely password (scram/md5) auth on loopback: switch loopback TCP to trust (test box).
  v="$(cluster_version || true)"
  hba="/etc/postgresql/${v:-none}/main/pg_hba.conf"
  [[ -n "${v:-}" && -f "$hba" ]] || die "cannot connect as postgres on $HOST:$PORT and no pg_hba.conf to fix"
  say "enabling trust auth for loopback TCP in $hba"
  tmp="$(mktemp)"
  {
    echo "host all all 127.0.0.1/32 trust"
    echo "host all all ::1/128 trust"
    cat "$hba"
  } >"$tmp"
  as_root cp "$tmp" "$hba"
  rm -f "$tmp"
  as_root pg_ctlcluster --skip-systemctl-redirect "$v" main reload ||
    as_root pg_ctlcluster "$v" main reload || die "reloading PostgreSQL failed"
  sleep 0.5
  "${PSQL[@]}" -d postgres -c 'select 1' >/dev/null ||
    die "still cannot connect: psql -h $HOST -U postgres"
fi

exists="$("${PSQL[@]}" -d postgres -c "select 1 from pg_database where datname = '$DB'")" ||
  die "querying pg_database failed"
if [[ "$exists" != "1" ]]; then
  say "creating database $DB"
  "${PSQL[@]}" -d postgres -c "create database \"$DB\"" >/dev/null ||
    die "create database $DB failed"
fi

say "ok: postgres://postgres@$HOST:$PORT/$DB"
