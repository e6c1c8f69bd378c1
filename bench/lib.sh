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

# The system under test on the throwaway cluster: databases bank_events,
# bank_read and baseline; the three services and the bare-gRPC echo server
# (from $BIN), stopped with the cluster on exit. Sets PIDS, CP, QP, EP (the
# gRPC ports) and CMD_PID, PROJ_PID, QRY_PID, ECHO_PID; returns once the
# read database's schema is in place.
bench_start_system() {
  bench_pg_start
  PIDS=()
  trap bench_stop_system EXIT
  bench_psql -c "CREATE DATABASE bank_events" -c "CREATE DATABASE bank_read" \
             -c "CREATE DATABASE baseline"
  CP=$(python3 scripts/free_port.py); QP=$(python3 scripts/free_port.py)
  EP=$(python3 scripts/free_port.py)
  "$BIN/command-service" --listen 127.0.0.1:$CP --events-db "$(bench_uri bank_events)" \
    --metrics-listen "" --log-level warn --db-pool-size 16 & PIDS+=($!); CMD_PID=$!
  "$BIN/projector" --events-db "$(bench_uri bank_events)" --read-db "$(bench_uri bank_read)" \
    --metrics-listen "" --log-level warn & PIDS+=($!); PROJ_PID=$!
  "$BIN/query-service" --listen 127.0.0.1:$QP --read-db "$(bench_uri bank_read)" \
    --metrics-listen "" --log-level warn & PIDS+=($!); QRY_PID=$!
  "$BIN/bank-echo-server" --listen 127.0.0.1:$EP & PIDS+=($!); ECHO_PID=$!
  until bench_psql -d bank_read -tAc "SELECT to_regclass('account_balances') IS NOT NULL" 2>/dev/null | grep -q t; do sleep 0.2; done
}

bench_stop_system() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bench_pg_stop
}

# pgbench's insert baseline in database baseline: a table with the columns
# and the four indexes of sql/events/001_events.sql, and in $1/insert.sql a
# deposit's row, metadata of the same size included.
bench_insert_baseline() {  # work-dir (readable by postgres)
  bench_psql -d baseline <<'SQL'
CREATE TABLE events (
  position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id uuid NOT NULL UNIQUE, stream_id uuid NOT NULL,
  stream_version bigint NOT NULL, event_type text NOT NULL,
  schema_version integer NOT NULL, data jsonb NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}', transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
  recorded_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (stream_id, stream_version));
CREATE INDEX ON events (transaction_id, position);
SQL
  cat > "$1/insert.sql" <<'SQL'
INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data, metadata)
VALUES (gen_random_uuid(), gen_random_uuid(), 1, 'MoneyDeposited', 1, '{"amount":"1"}',
        '{"instance":"command-service@bench:12345","command_id":"58c03ed3-14fb-4b76-9863-60d4add62aaa","causation_id":"58c03ed3-14fb-4b76-9863-60d4add62aaa"}');
SQL
}
