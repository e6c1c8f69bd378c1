# Shared by the benchmark scripts: a throwaway PostgreSQL cluster with fsync
# on (as in production), started as the postgres user when run as root.
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

bench_pg_start() {
  BENCH_DIR="$(mktemp -d /tmp/bank-bench-XXXXXX)"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$BENCH_DIR"
  BENCH_PORT="$(python3 scripts/free_port.py)"
  as_pg "$PGBIN/initdb" -D "$BENCH_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$BENCH_DIR/data" -l "$BENCH_DIR/server.log" -w \
    -o "-p $BENCH_PORT -k $BENCH_DIR -c listen_addresses=127.0.0.1 -c shared_buffers=512MB -c max_wal_size=4GB -c max_connections=300 ${BENCH_PG_OPTS:-}" start >/dev/null
  trap bench_pg_stop EXIT
}

bench_pg_stop() {
  [ -n "${BENCH_KEEP_LOG:-}" ] && cp "$BENCH_DIR/server.log" "$BENCH_KEEP_LOG"
  as_pg "$PGBIN/pg_ctl" -D "$BENCH_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$BENCH_DIR"
}

bench_psql() {
  as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$BENCH_PORT" -U postgres "$@"
}

bench_uri() { echo "postgresql://postgres@127.0.0.1:$BENCH_PORT/$1"; }

now_s() { date +%s.%N; }
