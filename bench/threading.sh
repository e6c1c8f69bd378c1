#!/usr/bin/env bash
# gRPC server threading, measured: the same GetBalance handler served by the
# synchronous API (work on gRPC's threads, as command-service does) and by
# the callback API with a separate work pool (as query-service does), with
# no work and with a wait per call standing in for a database round trip.
#   bench/threading.sh       (build first: scripts/build.sh)
# Settings: BENCH_CLIENTS (32), BENCH_SECONDS (5), BENCH_WORK_US (500).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(cd "${BANK_BUILD_DIR:-build}/bin" && pwd)"
C="${BENCH_CLIENTS:-32}"
D="${BENCH_SECONDS:-5}"
WORK="${BENCH_WORK_US:-500}"
free_port() { python3 scripts/free_port.py; }
echo "gRPC threading: $C clients, $D s each, work per call 0 and $WORK us"
printf "%-40s %10s %8s %8s\n" "server" "per s" "p50 ms" "p99 ms"
for work in 0 "$WORK"; do
  for model in sync callback; do
    P=$(free_port)
    "$BIN/bank-echo-server" --listen 127.0.0.1:$P --model $model --work-us "$work" &
    PID=$!
    sleep 0.5
    OUT=$("$BIN/bank-loadgen" --command-host none --query-host 127.0.0.1:$P --threads 4 \
      --duration "$D" --json --scenario get-balance --accounts 1000 --concurrency "$C")
    kill -TERM $PID; wait $PID 2>/dev/null || true
    python3 -c "
import json, sys
r = json.loads(sys.argv[1])
print(f\"{sys.argv[2]:40} {r['per_second']:>10.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}\")" \
      "$OUT" "$model, work $work us"
  done
done
