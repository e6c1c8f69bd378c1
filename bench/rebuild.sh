#!/usr/bin/env bash
# Rebuild speed against PostgreSQL's own sequential read speed, in one run.
#   bench/rebuild.sh [EVENTS]     (default 1,000,000; build first)
# Prints events per second for: streaming the events table in tailing order
# with COPY (the baseline), and `projector --rebuild` of the same events.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
EVENTS="${1:-1000000}"
BIN="${BANK_BUILD_DIR:-build}/bin"
PER_ACCOUNT=100
ACCOUNTS=$(( EVENTS / PER_ACCOUNT ))

bench_pg_start
bench_psql -c "CREATE DATABASE bank_events" -c "CREATE DATABASE bank_read"
# The command service owns the events schema: let it migrate, then stop it.
"$BIN/command-service" --listen 127.0.0.1:0 --events-db "$(bench_uri bank_events)" --log-level warn &
CS=$!
until bench_psql -d bank_events -tAc "SELECT to_regclass('events') IS NOT NULL" | grep -q t; do sleep 0.1; done
kill -TERM $CS; wait $CS || true

echo "Inserting $EVENTS events ($ACCOUNTS accounts x $PER_ACCOUNT)..."
bench_psql -d bank_events <<SQL
INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, data)
SELECT gen_random_uuid(), id, v,
       CASE WHEN v = 1 THEN 'AccountOpened' ELSE 'MoneyDeposited' END,
       CASE WHEN v = 1 THEN 2 ELSE 1 END,
       CASE WHEN v = 1 THEN jsonb_build_object('account_id', id::text, 'owner', 'Bench',
                              'currency', 'EUR', 'initial_deposit', '100')
            ELSE jsonb_build_object('amount', (v * 7)::text) END
FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, $ACCOUNTS)) ids,
     generate_series(1, $PER_ACCOUNT) AS v;
VACUUM ANALYZE events;
SQL

t0=$(now_s)
bench_psql -d bank_events -c "COPY (SELECT position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, transaction_id, recorded_at FROM events ORDER BY transaction_id, position) TO STDOUT" > /dev/null
t1=$(now_s)
copy_rate=$(python3 -c "print(round($EVENTS / ($t1 - $t0)))")

t0=$(now_s)
${BENCH_WRAP:-} "$BIN/projector" --events-db "$(bench_uri bank_events)" --read-db "$(bench_uri bank_read)" \
  --rebuild --batch-size "${BATCH:-5000}" --log-level "${BENCH_LOG_LEVEL:-warn}"
t1=$(now_s)
rebuild_rate=$(python3 -c "print(round($EVENTS / ($t1 - $t0)))")
rows=$(bench_psql -d bank_read -tAc "SELECT count(*) FROM account_history")

printf '\n%-44s %12s\n' "measure ($EVENTS events, fsync on)" "events/s"
printf '%-44s %12s\n' "baseline: COPY events in tailing order" "$copy_rate"
printf '%-44s %12s\n' "projector --rebuild (batch ${BATCH:-5000})" "$rebuild_rate"
printf '%-44s %12s\n' "ratio rebuild / COPY" "$(python3 -c "print(round($rebuild_rate / $copy_rate, 3))")"
[ "$rows" -eq "$EVENTS" ] || { echo "rebuild projected $rows of $EVENTS events" >&2; exit 1; }
