#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL cluster for the test suite.
#   eval "$(bash .ci/postgres.sh start DIR)"   prints `export NEWSLETTER_TEST_POSTGRES_URL=...`
#   bash .ci/postgres.sh stop DIR
# Uses Debian's postgresql server binaries (initdb, pg_ctl), run as the `postgres` user when started as root.
set -euo pipefail
action=${1:?start or stop}
dir=${2:?cluster directory}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "echo 'PostgreSQL server not found: the PostgreSQL test cases will be skipped' >&2"
  exit 0
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$action" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres newsletter_test
    echo "export NEWSLETTER_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:$port/newsletter_test"
    ;;
  stop)
    [ -d "$dir/data" ] && as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null || true
    ;;
esac
