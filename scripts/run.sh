#!/usr/bin/env bash
# The run command: installs what is missing, builds, starts a private local
# PostgreSQL (under .local/ of the checkout, on its own port) holding the
# databases bank_events and bank_read, then the three services. Ctrl-C stops
# everything cleanly.
#
# Settings (environment):
#   BANK_PG_PORT          local PostgreSQL port (default 55432)
#   BANK_COMMAND_LISTEN   command-service address (default 127.0.0.1:50051)
#   BANK_QUERY_LISTEN     query-service address   (default 127.0.0.1:50052)
#   BANK_EVENTS_DB, BANK_READ_DB   use an existing PostgreSQL instead of the
#                         local one (then no local server is started)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
./scripts/install-deps.sh
# Only what a session uses: the services, bankctl and, where the Python
# plugin is installed, the Python example's stubs (not the test binaries).
TARGETS=(command-service projector query-service bankctl)
cmake -S . -B "${BANK_BUILD_DIR:-build}" \
  -DCMAKE_BUILD_TYPE="${BANK_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
if cmake --build "${BANK_BUILD_DIR:-build}" --target help | grep -q python_stubs; then
  TARGETS+=(python_stubs)
fi
./scripts/build.sh "${TARGETS[@]}"
BIN="$ROOT/${BANK_BUILD_DIR:-build}/bin"

PG_PORT="${BANK_PG_PORT:-55432}"
export BANK_COMMAND_LISTEN="${BANK_COMMAND_LISTEN:-127.0.0.1:50051}"
export BANK_QUERY_LISTEN="${BANK_QUERY_LISTEN:-127.0.0.1:50052}"
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
PIDS=()
PG_DATA=""

as_pg() {
  # initdb and postgres refuse to run as root: use the postgres user then.
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

STOPPING=0
stop_all() {
  trap "" INT TERM
  trap - EXIT
  STOPPING=1
  echo
  echo "Stopping..."
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$PG_DATA" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null || true
  fi
  echo "Stopped."
}

if [ -z "${BANK_EVENTS_DB:-}" ] || [ -z "${BANK_READ_DB:-}" ]; then
  LOCAL="$ROOT/.local"
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$ROOT"; then
    # The postgres user cannot enter the checkout (e.g. under /root): keep
    # the cluster in a folder it can reach, named after the checkout.
    LOCAL="/var/tmp/bank-local-$(echo "$ROOT" | md5sum | cut -c1-12)"
  fi
  PG_DATA="$LOCAL/pg"
  SOCK="$LOCAL/sock"
  mkdir -p "$LOCAL" "$SOCK"
  if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$LOCAL" "$SOCK"; fi
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    echo "Creating a local PostgreSQL cluster in $PG_DATA"
    as_pg "$PGBIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  fi
  trap stop_all INT TERM EXIT
  as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$LOCAL/postgres.log" -w \
    -o "-p $PG_PORT -k $SOCK -c listen_addresses=127.0.0.1" start >/dev/null
  # Least-privilege roles (sql/roles.sql); each database is owned by the
  # role that migrates it.
  as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres \
    -f "$ROOT/sql/roles.sql" >/dev/null
  for pair in bank_events:bank_owner bank_read:bank_projector; do
    db="${pair%%:*}"
    owner="${pair##*:}"
    as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
      as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres -O "$owner" "$db"
  done
  URI="postgresql://%s@127.0.0.1:$PG_PORT/%s"
  # The events schema is migrated as its owner by a step that exits: the
  # long-running command service never holds the owner's credentials.
  BANK_EVENTS_DB="$(printf "$URI" bank_owner bank_events)" \
    "$BIN/command-service" --migrate-only --metrics-listen ""
  COMMAND_EVENTS_DB="$(printf "$URI" bank_command bank_events)"
  PROJECTOR_EVENTS_DB="$(printf "$URI" bank_projector bank_events)"
  PROJECTOR_READ_DB="$(printf "$URI" bank_projector bank_read)"
  QUERY_READ_DB="$(printf "$URI" bank_query bank_read)"
else
  trap stop_all INT TERM EXIT
  COMMAND_EVENTS_DB="$BANK_EVENTS_DB"
  PROJECTOR_EVENTS_DB="$BANK_EVENTS_DB"
  PROJECTOR_READ_DB="$BANK_READ_DB"
  QUERY_READ_DB="$BANK_READ_DB"
fi

# Metrics on loopback only, like the gRPC ports.
BANK_METRICS_LISTEN=127.0.0.1:9101 BANK_EVENTS_DB="$COMMAND_EVENTS_DB" \
  "$BIN/command-service" & PIDS+=($!)
BANK_METRICS_LISTEN=127.0.0.1:9102 BANK_EVENTS_DB="$PROJECTOR_EVENTS_DB" \
  BANK_READ_DB="$PROJECTOR_READ_DB" "$BIN/projector" & PIDS+=($!)
BANK_METRICS_LISTEN=127.0.0.1:9103 BANK_READ_DB="$QUERY_READ_DB" \
  "$BIN/query-service" & PIDS+=($!)

# A database URI or key=value string as it may be shown: password masked.
masked() {
  printf '%s' "$1" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#; s#(password=)[^ &]*#\1***#g'
}

cat <<INFO

The bank is running.
  CommandService  $BANK_COMMAND_LISTEN
  QueryService    $BANK_QUERY_LISTEN
  events database $(masked "$COMMAND_EVENTS_DB")
  read database   $(masked "$QUERY_READ_DB")
  metrics         http://127.0.0.1:9101/metrics (command), :9102 (projector), :9103 (query)
Try: $BIN/bankctl open --owner Alice --currency EUR --initial 100.00
Press Ctrl-C to stop.

INFO
# Exit when any service dies, or on Ctrl-C.
wait -n "${PIDS[@]}" || true
if [ "$STOPPING" -eq 0 ]; then
  echo "A service exited; stopping the rest."
  exit 1
fi
