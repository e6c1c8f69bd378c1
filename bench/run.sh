#!/usr/bin/env bash
# The benchmark suite: the real system and, in the same run on the same
# machine, the limits it is up against; prints one table with the ratios.
#   bench/run.sh            full run (build first: scripts/build.sh)
#   bench/run.sh --smoke    a few seconds per scenario, no targets (ctest)
# Settings (environment): BENCH_CLIENTS (32), BENCH_SECONDS (10),
# BENCH_ACCOUNTS (10000), BENCH_SWEEP_CLIENTS ("8 32 64 128": the client
# counts of target 1), BENCH_WATCHERS (1000) and BENCH_STREAM_RATE (1000): the
# streams row, BENCH_NOTIFY_TRIGGER (see below). PostgreSQL runs
# with fsync on.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN="${BANK_BUILD_DIR:-build}/bin"
BIN="$(cd "$BIN" && pwd)"
C="${BENCH_CLIENTS:-32}"
D="${BENCH_SECONDS:-10}"
N="${BENCH_ACCOUNTS:-10000}"
if [ "${1:-}" = "--smoke" ]; then C=4; D=1; N=50; BENCH_WATCHERS=${BENCH_WATCHERS:-20}; fi

bench_start_system

# BENCH_NOTIFY_TRIGGER=1: measure the old design, a NOTIFY inside every
# writing transaction (the trigger removed by sql/events/004), for comparison.
if [ -n "${BENCH_NOTIFY_TRIGGER:-}" ]; then
  bench_psql -d bank_events <<'SQL'
CREATE FUNCTION bench_events_notify() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_notify('bank_events', ''); RETURN NULL; END; $$;
CREATE TRIGGER bench_events_notify AFTER INSERT ON events
  FOR EACH STATEMENT EXECUTE FUNCTION bench_events_notify();
SQL
fi

# Baselines with pgbench, at the same client count: the insert's table and
# row (bench_insert_baseline) and a table of balances for the point read.
W="$BENCH_DIR/work"; mkdir -p "$W"; [ "$(id -u)" -eq 0 ] && chown postgres "$W"
bench_insert_baseline "$W"
bench_psql -d baseline <<'SQL'
CREATE TABLE balances (account_id integer PRIMARY KEY, balance bigint NOT NULL);
INSERT INTO balances SELECT g, 100 FROM generate_series(1, 10000) g;
VACUUM ANALYZE balances;
SQL
cat > "$W/read.sql" <<'SQL'
\set id random(1, 10000)
SELECT balance FROM balances WHERE account_id = :id;
SQL
pgbench_tps() {  # script [clients]
  local out
  out=$(as_pg "$PGBIN/pgbench" -n -M prepared -h 127.0.0.1 -p "$BENCH_PORT" -U postgres \
    -c "${2:-$C}" -j 2 -T "$D" -f "$1" baseline 2>&1) ||
    { echo "pgbench failed: $out" >&2; return 1; }
  sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1
}
PG_READ=$(pgbench_tps "$W/read.sql")

LG() { "$BIN/bank-loadgen" --command-host 127.0.0.1:$CP --query-host 127.0.0.1:$QP \
        --threads 4 --duration "$D" --json "$@"; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
# True once the projector has applied every event (the scenarios below start
# from a steady state, not behind a backlog another scenario left).
caught_up() {
  local head applied
  head=$(bench_psql -d bank_events -tAc "SELECT count(*) FROM events")
  applied=$(bench_psql -d bank_read -tAc "SELECT coalesce(sum(events_applied), 0) FROM projection_checkpoints")
  [ "$head" = "$applied" ]
}
# Target 1 is "at the best client count": deposits and pgbench's one-row
# insert at each client count of BENCH_SWEEP_CLIENTS (and BENCH_CLIENTS),
# back to back; the other scenarios run at BENCH_CLIENTS.
SWEEP="${BENCH_SWEEP_CLIENTS:-8 32 64 128}"
[ "${1:-}" = "--smoke" ] && SWEEP="$C"
case " $SWEEP " in *" $C "*) ;; *) SWEEP="$SWEEP $C" ;; esac
SWEEPJ="["
for c in $SWEEP; do
  for _ in $(seq 1 600); do caught_up && break; sleep 0.5; done
  ins=$(pgbench_tps "$W/insert.sql" "$c")
  dep=$(LG --scenario deposit-spread --accounts "$N" --concurrency "$c")
  [ "$c" = "$C" ] && { PG_INSERT=$ins; SPREAD=$dep; }
  SWEEPJ="$SWEEPJ$([ "$SWEEPJ" = "[" ] || echo ,){\"clients\":$c,\"pgbench\":${ins:-0},\"r\":$dep}"
done
SWEEPJ="$SWEEPJ]"
PEAK=$(python3 -c "import json,sys; print(max(x['r']['per_second'] for x in json.loads(sys.argv[1])))" "$SWEEPJ")
HOT=$(LG --scenario deposit-hot --accounts 1 --concurrency "$C")
MIX=$(LG --scenario mix --accounts "$N" --concurrency "$C")
GET=$(LG --scenario get-balance --accounts "$N" --concurrency "$C")
ECHO=$("$BIN/bank-loadgen" --command-host none --query-host 127.0.0.1:$EP --threads 4 \
        --duration "$D" --json --scenario get-balance --accounts "$N" --concurrency "$C")
# Half the peak: the best deposit rate of the sweep.
HALF=$(python3 -c "print(max(1, round($PEAK / 2)))")
# The lag is measured in a steady state: first let the projector apply the
# backlog the closed-loop scenarios left behind.
for _ in $(seq 1 600); do caught_up && break; sleep 0.5; done
LAGW=$(LG --scenario lag-wait --accounts "$N" --rate "$HALF")
LAGP=$(LG --scenario lag-poll --accounts "$N" --rate "$HALF")
# The lag also at fixed, lower rates (BENCH_LAG_RATES, default "500 1000").
LAGX="["
for r in ${BENCH_LAG_RATES:-500 1000}; do
  for _ in $(seq 1 600); do caught_up && break; sleep 0.5; done
  LAGX="$LAGX$([ "$LAGX" = "[" ] || echo ,){\"rate\":$r,\"r\":$(LG --scenario lag-wait --accounts "$N" --rate "$r")}"
done
LAGX="$LAGX]"
# Streams: a deposit's entry from its acknowledgement to its arrival on a
# StreamEntries stream (which first catches up from the first entry: its rate
# is reported) and on one of BENCH_WATCHERS WatchAccount streams, at
# BENCH_STREAM_RATE deposits/s (1000) open loop.
for _ in $(seq 1 600); do caught_up && break; sleep 0.5; done
STREAMS=$("$BIN/bank-streamlag" --command-host 127.0.0.1:$CP --query-host 127.0.0.1:$QP \
  --accounts "${BENCH_WATCHERS:-1000}" --rate "${BENCH_STREAM_RATE:-1000}" --duration "$D" --json)
# Consumer groups: a new group of four members drains the whole history from
# the first entry (each member acknowledging what it gets), against one
# StreamEntries stream reading the same in the same run.
for _ in $(seq 1 600); do caught_up && break; sleep 0.5; done
HISTORY=$(bench_psql -d bank_read -tAc "SELECT count(*) FROM account_history")
GROUP=$("$BIN/bank-groupdrain" --query-host 127.0.0.1:$QP --entries "$HISTORY" \
  --members 4 --json)
# Projection catch-up from a backlog: the projector is frozen (SIGSTOP)
# while deposits run, then let go; the time until it has applied everything
# gives its catch-up rate. Baseline in the same run: streaming the events
# table in the projector's reading order (COPY to nowhere).
for _ in $(seq 1 600); do caught_up && break; sleep 0.5; done
kill -STOP "$PROJ_PID"
LG --scenario deposit-spread --accounts "$N" --concurrency "$C" >/dev/null
BACKLOG=$(python3 -c "print($(bench_psql -d bank_events -tAc "SELECT count(*) FROM events") - $(bench_psql -d bank_read -tAc "SELECT coalesce(sum(events_applied), 0) FROM projection_checkpoints"))")
T0=$(now_s)
kill -CONT "$PROJ_PID"
for _ in $(seq 1 6000); do caught_up && break; sleep 0.05; done
CATCHUP=$(python3 -c "print(round($BACKLOG / ($(now_s) - $T0)))")
EVENTS=$(bench_psql -d bank_events -tAc "SELECT count(*) FROM events")
T0=$(now_s)
bench_psql -d bank_events -c "COPY (SELECT position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, transaction_id, recorded_at FROM events ORDER BY transaction_id, position) TO STDOUT" >/dev/null
SEQREAD=$(python3 -c "print(round($EVENTS / ($(now_s) - $T0)))")
rss() { awk '/VmRSS/ {print int($2/1024) " MiB"}' /proc/$1/status; }
RSS="command-service $(rss $CMD_PID), projector $(rss $PROJ_PID), query-service $(rss $QRY_PID)"

[ -n "${BENCH_DEBUG:-}" ] && printf "%s\n" "$HOT" "$MIX" "$LAGW" >&2
python3 - "$C" "$D" "$N" "$PG_INSERT" "$PG_READ" "$SPREAD" "$HOT" "$MIX" "$GET" "$ECHO" "$LAGW" "$LAGP" "$HALF" "$RSS" "$LAGX" "$BACKLOG" "$CATCHUP" "$SEQREAD" "$SWEEPJ" "$STREAMS" "$GROUP" <<'PY'
import json, sys
c, d, n, pg_ins, pg_read = sys.argv[1:6]
spread, hot, mix, get, echo, lagw, lagp = [json.loads(x) for x in sys.argv[6:13]]
half, rss = sys.argv[13], sys.argv[14]
lagx = json.loads(sys.argv[15])
backlog, catchup, seqread = int(sys.argv[16]), float(sys.argv[17]), float(sys.argv[18])
sweep = json.loads(sys.argv[19])
streams = json.loads(sys.argv[20])
group = json.loads(sys.argv[21])
pg_ins, pg_read = float(pg_ins or 0), float(pg_read or 0)
print(f"\nbank benchmark: {c} clients, {d} s per scenario, {n} accounts, PostgreSQL 15 fsync on\n")
print(f"{'measure':48} {'per s':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9':>8} {'errors':>7}")
def row(name, r):
    print(f"{name:48} {r['per_second']:>10.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['p999_ms']:>8.2f} {r['errors']:>7}")
print(f"{'baseline: pgbench one-row insert per transaction':48} {pg_ins:>10.0f}")
print(f"{'baseline: pgbench prepared point read':48} {pg_read:>10.0f}")
row("baseline: bare gRPC echo (GetBalance, no db)", echo)
row("deposits over the accounts", spread)
row("deposits on one hot account", hot)
row("mix: deposits, withdrawals, transfers", mix)
row("GetBalance over the accounts", get)
row(f"lag ack->visible, min_version, {half}/s open loop", lagw)
row(f"lag ack->visible, polling, {half}/s open loop", lagp)
for x in lagx:
    row(f"lag ack->visible, min_version, {x['rate']}/s open loop", x['r'])
srate = round(streams['watch']['per_second'])
row(f"lag ack->WatchAccount stream, {srate}/s", streams['watch'])
row(f"lag ack->StreamEntries stream, {srate}/s", streams['entries'])
row(f"  same run: ack->visible (min_version)", streams['visible'])
row(f"  visible->WatchAccount stream", streams['watch_after_visible'])
row(f"  visible->StreamEntries stream", streams['entries_after_visible'])
print(f"{'StreamEntries catch-up from the first entry':48} {streams['catchup_per_second']:>10.0f}")
print(f"{'baseline: one StreamEntries stream, whole history':48} {group['stream_per_second']:>10.0f}")
print(f"{'a group of 4 members drains the whole history':48} {group['group_per_second']:>10.0f}")
print(f"{'baseline: COPY of events in reading order':48} {seqread:>10.0f}")
print(f"{f'projection catch-up of a {backlog}-event backlog':48} {catchup:>10.0f}")
def ratio(a, b): return a / b if b else float('nan')
print(f"\ndeposits over {n} accounts against pgbench's one-row insert, by client count:")
print(f"{'clients':>8} {'pgbench/s':>10} {'deposits/s':>11} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
for x in sweep:
    r = x['r']
    print(f"{x['clients']:>8} {x['pgbench']:>10.0f} {r['per_second']:>11.0f} {ratio(r['per_second'], x['pgbench']):>6.2f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7}")
best = max(sweep, key=lambda x: x['r']['per_second'])
print("\ntargets (ratios in this run):")
print(f"  1. deposits / pgbench insert      {ratio(best['r']['per_second'], best['pgbench']):.2f}  at {best['clients']} clients, the best deposit rate (target >= 1.0)")
print(f"  2. hot account / spread           {ratio(hot['per_second'], spread['per_second']):.2f}  (target >= 0.5; ABORTED seen: {hot['errors_by_code'].get('10', 0)})")
print(f"  3. GetBalance / bare gRPC echo    {ratio(get['per_second'], echo['per_second']):.2f}  (target >= 0.7)")
print(f"  4. lag p50 / p99 with min_version {lagw['p50_ms']:.2f} / {lagw['p99_ms']:.2f} ms  (target < 5 / < 25)")
print(f"  -  catch-up / sequential read   {ratio(catchup, seqread):.2f}  (the rebuild's target 5 is >= 0.5; bench/rebuild.sh)")
print(f"  6. resident memory after the run: {rss}")
print(f"  7. stream lag p99 from the read model's commit, WatchAccount / StreamEntries {streams['watch_after_visible']['p99_ms']:.2f} / {streams['entries_after_visible']['p99_ms']:.2f} ms  (target < 25; from the acknowledgement, the projector's lag included: {streams['watch']['p99_ms']:.2f} / {streams['entries']['p99_ms']:.2f})")
print(f"  8. group of 4 / one StreamEntries stream, draining {group['entries']} entries  {ratio(group['group_per_second'], group['stream_per_second']):.2f}  (target >= 0.5)")
names = {'1': 'CANCELLED', '2': 'UNKNOWN', '4': 'DEADLINE_EXCEEDED', '8': 'RESOURCE_EXHAUSTED',
         '10': 'ABORTED', '13': 'INTERNAL', '14': 'UNAVAILABLE'}
errs = [(name, r) for name, r in [("deposits over the accounts", spread), ("hot account", hot),
        ("mix", mix), ("GetBalance", get), ("echo", echo), (f"lag min_version {half}/s", lagw),
        (f"lag polling {half}/s", lagp), ("WatchAccount stream lag", streams['watch']),
        ("StreamEntries stream lag", streams['entries'])] + [(f"lag min_version {x['rate']}/s", x['r']) for x in lagx]
        + [(f"deposits at {x['clients']} clients", x['r']) for x in sweep] if r['errors']]
if errs:
    print("\nerrors by status code:")
    for name, r in errs:
        codes = ", ".join(f"{names.get(k, 'code ' + k)} {v}" for k, v in sorted(r['errors_by_code'].items()))
        print(f"  {name}: {codes}")
PY
