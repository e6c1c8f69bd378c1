#!/usr/bin/env bash
# Where the CPU of one deposit goes, against one pgbench insert and one bare
# gRPC echo call, in the same run. Target 1 compares throughputs, and on a
# machine whose cores the load generator, the services and PostgreSQL share,
# both sides are CPU-bound: the ratio of throughputs is the inverse ratio of
# CPU per operation. This prints that CPU per operation, process by process
# (each PostgreSQL session by its application_name).
#   bench/cpu_budget.sh            full run (build first: scripts/build.sh)
#   bench/cpu_budget.sh --smoke    a few seconds per phase (ctest)
# Settings (environment): BENCH_CLIENTS (128), BENCH_SECONDS (12),
# BENCH_ACCOUNTS (10000). PostgreSQL runs with fsync on. CPU is read from
# /proc (user + system time of every process) over the middle half of each
# phase's timed part (after the load generator has opened its accounts); the
# operations in that window are the phase's rate times its length.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
BIN="${BANK_BUILD_DIR:-build}/bin"
BIN="$(cd "$BIN" && pwd)"
C="${BENCH_CLIENTS:-128}"
D="${BENCH_SECONDS:-12}"
N="${BENCH_ACCOUNTS:-10000}"
if [ "${1:-}" = "--smoke" ]; then C=4; D=4; N=50; fi

bench_start_system

# The same table and row as bench/run.sh's insert baseline.
W="$BENCH_DIR/work"; mkdir -p "$W"; [ "$(id -u)" -eq 0 ] && chown postgres "$W"
bench_insert_baseline "$W"

# One line per process: "pid ticks label". The services, the load generator
# and pgbench by name. PostgreSQL's sessions by their application_name, read
# once the load generator has opened its accounts (the services' sessions are
# long-lived; a pool names each connection <name>/<12 hex digits>, counted
# under <name>); a session opened later (pgbench's) by its database, from its
# process title; the server's own
# processes by their title. The first line is "time <seconds> time", the last
# the whole machine's busy ticks; /proc is read all at once, with no query
# in between (under load a new connection can take seconds).
session_labels() {  # file
  bench_psql -tA -F' ' -c "SELECT pid, 'PostgreSQL session ' || coalesce(nullif(regexp_replace(application_name, '/[0-9a-f]{12}\$', ''), ''), '(unnamed)') FROM pg_stat_activity WHERE backend_type = 'client backend'" > "$1"
}
# Only this cluster's processes count: the postmaster and its children (other
# clusters may run on the machine, as under ctest).
POSTMASTER_PID="$(head -n 1 "$BENCH_DIR/data/postmaster.pid")"
snap() {  # file session-labels-file "pid:label"...
  POSTMASTER_PID="$POSTMASTER_PID" python3 - "$@" <<'PY'
import os, sys, time
out, labels = sys.argv[1], {}
postmaster = os.environ["POSTMASTER_PID"]
for line in open(sys.argv[2]):
    pid, _, label = line.strip().partition(" ")
    if pid:
        labels[pid] = label
for arg in sys.argv[3:]:
    pid, _, label = arg.partition(":")
    labels[pid] = label
for pid in os.listdir("/proc"):
    if not pid.isdigit() or pid in labels:
        continue
    try:
        comm = open(f"/proc/{pid}/comm").read().strip()
        title = open(f"/proc/{pid}/cmdline").read().replace("\0", " ").split()
    except OSError:
        continue
    if comm == "pgbench":  # a child of runuser when run as root
        labels[pid] = "load"
        continue
    if comm != "postgres":
        continue
    try:
        ppid = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]
    except OSError:
        continue
    if pid != postmaster and ppid != postmaster:
        continue
    elif title[:1] != ["postgres:"]:
        labels[pid] = "PostgreSQL postmaster"
    elif len(title) >= 4 and "(" in title[3]:  # user database host(port) ...
        labels[pid] = f"PostgreSQL session on {title[2]}"
    else:
        labels[pid] = "PostgreSQL " + " ".join(title[1:3])
rows = [f"time {time.time()} time"]
for pid, label in labels.items():
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    rows.append(f"{pid} {int(fields[11]) + int(fields[12])} {label}")
cpu = open("/proc/stat").readline().split()[1:]
rows.append(f"machine {sum(int(cpu[i]) for i in (0, 1, 2, 5, 6))} machine")
open(out, "w").write("\n".join(rows) + "\n")
PY
}

sleep_until() {  # start fraction seconds: sleep until start + fraction of the phase
  sleep "$(python3 -c "import time; print(max(0, $1 + $2 * $3 - time.time()))")"
}

# Runs a phase: the command in the background, snapshots over its middle
# half (the operations in the window: the phase's rate times its length).
# On a busy machine a snapshot can come late, after the load has ended: then
# the window did not see the load, and the phase runs again, twice as long.
phase() {  # name pid-label-list command-function
  local name="$1" labels="$2" run="$3" d="$D" try
  for try in 1 2 3; do
    phase_once "$name" "$labels" "$run" "$d"
    if grep -q " load$" "$W/$name.1" && grep -q " load$" "$W/$name.2"; then
      return 0
    fi
    echo "$name: the load ended before the window did; again for $(( d * 2 )) s" >&2
    d=$(( d * 2 ))
  done
  echo "$name: the load never covered the window" >&2
  exit 1
}

phase_once() {  # name pid-label-list command-function seconds
  local name="$1" labels="$2" run="$3" d="$4" lp
  # pgbench's sessions, opened after this, are named by their database.
  [ "$name" = pgbench ] && session_labels "$W/$name.labels"
  "$run" "$d" > "$W/$name.out" 2> "$W/$name.err" &
  lp=$!
  local t0; t0=$(now_s)
  # The load generator opens its accounts first (three round trips each);
  # the window starts a quarter into its timed part, not into the opening.
  if [ "$name" != pgbench ]; then
    until grep -qs "accounts ready" "$W/$name.err"; do
      kill -0 "$lp" 2>/dev/null || break
      sleep 0.1
    done
    t0=$(now_s)
    session_labels "$W/$name.labels"
  fi
  sleep_until "$t0" 0.25 "$d"
  # shellcheck disable=SC2086
  snap "$W/$name.1" "$W/$name.labels" $labels "$lp:load"
  sleep_until "$t0" 0.75 "$d"
  # shellcheck disable=SC2086
  snap "$W/$name.2" "$W/$name.labels" $labels "$lp:load"
  wait "$lp" || { echo "$name failed:" >&2; cat "$W/$name.err" >&2; exit 1; }
  echo "$d" > "$W/$name.seconds"
}

SERVICES="$CMD_PID:command-service $PROJ_PID:projector $QRY_PID:query-service $ECHO_PID:echo-server"

run_pgbench() {  # seconds
  as_pg "$PGBIN/pgbench" -n -M prepared -h 127.0.0.1 -p "$BENCH_PORT" \
    -U postgres -c "$C" -j 2 -T "$1" -f "$W/insert.sql" baseline
}
run_deposit() {  # seconds
  "$BIN/bank-loadgen" --command-host 127.0.0.1:$CP --query-host 127.0.0.1:$QP \
    --threads 4 --duration "$1" --json --scenario deposit-spread \
    --accounts "$N" --concurrency "$C"
}
run_echo() {  # seconds
  "$BIN/bank-loadgen" --command-host none --query-host 127.0.0.1:$EP \
    --threads 4 --duration "$1" --json --scenario get-balance \
    --accounts "$N" --concurrency "$C"
}

phase pgbench "$SERVICES" run_pgbench
PG_RATE=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$W/pgbench.out" | head -n 1)
phase deposit "$SERVICES" run_deposit
phase echo "$SERVICES" run_echo

[ -n "${BENCH_KEEP_WORK:-}" ] && cp -r "$W" "$BENCH_KEEP_WORK"
python3 - "$W" "$(getconf CLK_TCK)" "$C" "${PG_RATE:-0}" "$D" "$N" <<'PY'
import collections, json, sys
w, hz, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pg_rate = float(sys.argv[4])

def load(path):
    rows = {}
    for line in open(path):
        parts = line.split(None, 2)
        if len(parts) == 3:
            rows[parts[0]] = (float(parts[1]), parts[2].strip())
    return rows

def by_label(name):
    a, b = load(f"{w}/{name}.1"), load(f"{w}/{name}.2")
    ticks = collections.Counter()
    for pid, (t2, label) in b.items():
        if pid in a and pid != "time":
            ticks[label] += t2 - a[pid][0]
    return ticks, b["time"][0] - a["time"][0]

def report(title, name, rate, loadgen_label):
    ticks, window = by_label(name)
    machine = ticks.pop("machine")
    if "load" not in ticks:
        sys.exit(f"{title}: the load ended before the window did")
    ops = rate * window
    per_op = lambda t: t / hz / ops * 1e6
    seconds = open(f"{w}/{name}.seconds").read().strip()
    print(f"\n{title}: {rate:,.0f}/s at {clients} clients for {seconds} s; the machine busy "
          f"{machine / hz / window:.2f} CPUs over {window:.1f} s")
    print(f"  {'process':58} {'CPU us/op':>10} {'share':>6}")
    counted = sum(ticks.values())
    for label, t in sorted(ticks.items(), key=lambda x: -x[1]):
        if t == 0:
            continue
        shown = loadgen_label if label == "load" else label
        print(f"  {shown:58} {per_op(t):>10.1f} {100 * t / max(counted, 1):>5.1f}%")
    if rate <= 0 or counted <= 0:
        sys.exit(f"{title}: nothing measured (rate {rate}, {counted} ticks)")
    print(f"  {'all the processes above':58} {per_op(counted):>10.1f}")
    print(f"  {'the whole machine (with the kernel outside processes)':58} {per_op(machine):>10.1f}")
    return per_op(counted)

dep = json.loads(open(f"{w}/deposit.out").read())
echo = json.loads(open(f"{w}/echo.out").read())
for name, r in (("deposits", dep), ("echo", echo)):
    if r.get("errors"):  # A run with failed calls measures something else.
        sys.exit(f"{name}: {r['errors']} failed calls: {r}")
print(f"CPU per operation, by process; {clients} clients, "
      f"{sys.argv[6]} accounts, fsync on")
pg = report("pgbench one-row insert per transaction", "pgbench", pg_rate, "pgbench")
d = report("deposits over many accounts", "deposit", dep["per_second"], "bank-loadgen")
e = report("bare gRPC echo (GetBalance, no database)", "echo", echo["per_second"],
           "bank-loadgen")
print(f"\nCPU per deposit / CPU per pgbench insert: {d / pg:.2f} "
      f"(throughput ratio, target 1: {dep['per_second'] / pg_rate:.2f})")
print(f"CPU per echo call / CPU per deposit:     {e / d:.2f}")
PY
