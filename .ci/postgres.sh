#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for the store tests: `source .ci/postgres.sh; pg_start; ...; pg_stop`.
# initdb as the `postgres` user into a temp dir, trust auth, a free port on 127.0.0.1.
pg_bin() {
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && { echo "$dir"; return; }; done
  command -v initdb >/dev/null && dirname "$(command -v initdb)"
}

pg_start() {
  local bin; bin="$(pg_bin)"
  if [ -z "$bin" ] && [ "$(id -u)" = 0 ]; then
    echo "installing PostgreSQL"; apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; bin="$(pg_bin)"
  fi
  if [ -z "$bin" ]; then echo "PostgreSQL binaries not found (apt-get install postgresql)"; return 1; fi
  PG_DIR="$(mktemp -d /tmp/asbru-pg.XXXXXX)"
  PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  local as_pg=()
  if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DIR"; as_pg=(runuser -u postgres --); fi
  "${as_pg[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log"; return 1; }
  "${as_pg[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || { cat "$PG_DIR/server.log"; return 1; }
  export ASBRU_TEST_POSTGRES_URL="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres"
  export ASBRU_REQUIRE_POSTGRES=1
  echo "PostgreSQL started on 127.0.0.1:$PG_PORT"
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  local bin; bin="$(pg_bin)"
  local as_pg=()
  [ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
  "${as_pg[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=""
}
