#!/usr/bin/env bash
# Install PostgreSQL from Debian, start it on 127.0.0.1, create a user and a database for the registry
# tests, and export IMPACT_TEST_POSTGRES_URL.
#
#   . .ci/postgres.sh               # sourced: exports IMPACT_TEST_POSTGRES_URL in the calling shell
#   eval "$(.ci/postgres.sh)"       # executed: prints the export line on stdout (progress on stderr)
#
# Without root (or sudo) nothing can be installed or started: the script says so and returns 1, and
# the PostgreSQL tests skip with a visible reason. Re-running is harmless (install, cluster, role and
# database are only created when missing). Settings: IMPACT_PG_PORT (default: the cluster's port,
# usually 5432), IMPACT_PG_USER / IMPACT_PG_PASSWORD / IMPACT_PG_DB (default impact / impact /
# impact_test).

_impact_postgres_setup() (
  set -euo pipefail
  log() { echo "postgres.sh: $*" >&2; }
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi; }
  as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -n -u postgres "$@"; fi; }

  user="${IMPACT_PG_USER:-impact}"; password="${IMPACT_PG_PASSWORD:-impact}"; db="${IMPACT_PG_DB:-impact_test}"

  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing postgresql from Debian"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
      && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 \
      || { log "cannot install postgresql (need root or passwordless sudo, and apt)"; return 1; }
  fi
  version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
  bin="/usr/lib/postgresql/$version/bin"

  if ! pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
    log "creating cluster $version/main"
    as_root pg_createcluster "$version" main >&2
  fi
  port="${IMPACT_PG_PORT:-$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')}"
  status="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}')"
  if [ "$status" != "online" ]; then
    log "starting PostgreSQL $version on 127.0.0.1:$port"
    # pg_ctlcluster works without systemd; listen on loopback only
    as_root pg_ctlcluster -o "-c listen_addresses=127.0.0.1 -c port=$port" "$version" main start >&2 || {
      log "pg_ctlcluster failed; starting the server binary directly as the postgres user"
      as_postgres "$bin/pg_ctl" -D "/var/lib/postgresql/$version/main" -w -l "/tmp/impact-postgres-$version.log" \
        -o "-c config_file=/etc/postgresql/$version/main/postgresql.conf -c listen_addresses=127.0.0.1 -c port=$port" start >&2
    }
  fi
  for _ in $(seq 1 30); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 1
  done
  "$bin/pg_isready" -h 127.0.0.1 -p "$port" >&2 || { log "server did not come up on 127.0.0.1:$port"; return 1; }

  as_postgres psql -q -p "$port" -v ON_ERROR_STOP=1 -d postgres >&2 <<SQL
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', '$user', '$password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user')\gexec
ALTER ROLE "$user" WITH LOGIN PASSWORD '$password';
SELECT format('CREATE DATABASE %I OWNER %I', '$db', '$user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\gexec
SQL
  echo "postgresql://$user:$password@127.0.0.1:$port/$db"
)

if _impact_postgres_url="$(_impact_postgres_setup)"; then
  export IMPACT_TEST_POSTGRES_URL="$_impact_postgres_url"
  echo "postgres.sh: IMPACT_TEST_POSTGRES_URL=$IMPACT_TEST_POSTGRES_URL" >&2
  # executed rather than sourced: print the line for eval
  if [ "${BASH_SOURCE[0]}" = "$0" ]; then echo "export IMPACT_TEST_POSTGRES_URL='$IMPACT_TEST_POSTGRES_URL'"; fi
  unset _impact_postgres_url
else
  echo "postgres.sh: PostgreSQL is not available; the registry's PostgreSQL tests will be skipped" >&2
  unset _impact_postgres_url
  if [ "${BASH_SOURCE[0]}" = "$0" ]; then exit 1; else return 1; fi
fi
