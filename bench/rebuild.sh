#!/usr/bin/env bash
# Rebuild speed against PostgreSQL's own sequential read speed, in one run.
#   bench/rebuild.sh [EVENTS]     (default 1,000,000; build first)
# Prints events per second for: streaming the events table in tailing order
# with COPY (the baseline), and `projector --rebuild` of the same events,
# BENCH_ROUNDS times (default 3) one after the other, each round's ratio,
# and the median of the rounds' ratios: on a shared machine one
# measurement of each can be off by a fifth.
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

ROUNDS="${BENCH_ROUNDS:-3}"
printf '\n%-8s %16s %16s %8s\n' "round" "COPY events/s" "rebuild events/s" "ratio"
ratios=()
for round in $(seq 1 "$ROUNDS"); do
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
  [ "$rows" -eq "$EVENTS" ] || { echo "rebuild projected $rows of $EVENTS events" >&2; exit 1; }
  ratio=$(python3 -c "print(round($rebuild_rate / $copy_rate, 3))")
  ratios+=("$ratio")
  printf '%-8s %16s %16s %8s\n' "$round" "$copy_rate" "$rebuild_rate" "$ratio"
done

printf '\n%s events, fsync on, batch %s, %s rounds\n' "$EVENTS" "${BATCH:-5000}" "$ROUNDS"
printf 'ratio rebuild / COPY, median of the rounds: %s (target >= 0.5)\n' \
  "$(python3 -c "import statistics, sys; print(round(statistics.median(float(x) for x in sys.argv[1:]), 3))" "${ratios[@]}")"
