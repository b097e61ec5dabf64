#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1 for the test suite, from Debian's `postgresql` package.
#   scripts/postgres.sh start   -> prints the URL to export as FORGEGOV_TEST_POSTGRES_URL
#   scripts/postgres.sh stop
#   scripts/postgres.sh status  -> exit 0 when the cluster is running
# initdb refuses to run as root, so the cluster belongs to the `postgres` system user when we are root.
set -euo pipefail

PGPORT="${FORGEGOV_PG_PORT:-54329}"
PGDATA="${FORGEGOV_PG_DATA:-/tmp/forgegov-pg-$PGPORT}"
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
  start)
    if ! as_owner "$bindir/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
      rm -rf "$PGDATA"
      mkdir -p "$PGDATA"
      [ "$(id -u)" = 0 ] && chown postgres: "$PGDATA"
      as_owner "$bindir/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 >/dev/null
      as_owner "$bindir/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$PGPORT -c unix_socket_directories=$PGDATA -c fsync=on" start >/dev/null
    fi
    as_owner "$bindir/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='forgegov_test'" | grep -q 1 \
      || as_owner "$bindir/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres forgegov_test
    echo "postgresql+psycopg://postgres@127.0.0.1:$PGPORT/forgegov_test"
    ;;
  stop)
    as_owner "$bindir/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true
    ;;
  status)
    as_owner "$bindir/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
