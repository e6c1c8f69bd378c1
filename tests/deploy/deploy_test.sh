#!/usr/bin/env bash
# The deploy test (ctest label deploy): builds the images of deploy/, brings
# the compose stack up with docker-compose, waits for health, runs a scenario
# through the published ports only (open, deposit, transfer, read-your-writes
# balances), restarts a service container and checks it recovers; then the
# same for the highly available stack (docker-compose.ha.yml): the primary's
# container killed under a deposit that must succeed, and the old primary
# rejoining. Each stack is brought down with its containers, network and
# volumes.
#
# Uses the Docker engine at DOCKER_HOST (or the default socket) when one
# answers; otherwise starts dockerd itself, with its data under
# $BANK_DOCKER_DATA (default: <build dir>/deploy/docker, kept between runs as
# the image cache) and stops it again by PID. When debian:bookworm is neither
# present nor pullable, it is made with debootstrap from the Debian mirror of
# the machine's apt sources. The PostgreSQL servers run deploy/postgres
# unless BANK_POSTGRES_IMAGE names another image (e.g. postgres:15).
#
# Needs: BANKCTL (path to the host-built bankctl), root (or sudo) for dockerd.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BANKCTL="${BANKCTL:?BANKCTL must name the bankctl binary}"
WORK="${BANK_DEPLOY_WORK:-$(dirname "$BANKCTL")/../deploy}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
PROJECT="banktest$$"
TMP="$(mktemp -d /tmp/bank-deploy.XXXXXX)"
STARTED_DOCKERD_PID=""
CREATED_BRIDGE=0
SUDO=""
T0=$(date +%s)

log() { echo "[deploy $(($(date +%s) - T0))s] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    # Under CI a skip would make a green run that never brought the stack up.
    [ "${CI:-}" = true ] && fail "the deploy test needs root or sudo to start a Docker engine, and CI must run it"
    echo "SKIP: the deploy test starts a Docker engine and needs root or sudo" >&2
    exit 77
  fi
fi

DOCKER_BIN=/usr/bin/docker
[ -x "$DOCKER_BIN" ] || DOCKER_BIN="$(command -v docker)"
docker() { $SUDO env DOCKER_HOST="$DOCKER_HOST" "$DOCKER_BIN" "$@"; }
# The stack of COMPOSE_FILE (docker-compose.yml, later docker-compose.ha.yml).
COMPOSE_FILE=docker-compose.yml
compose() {
  $SUDO env DOCKER_HOST="$DOCKER_HOST" COMPOSE_HTTP_TIMEOUT=300 \
    BANK_POSTGRES_IMAGE="$PG_IMAGE" BANK_IMAGE=bank-services:test \
    BANK_HA_IMAGE=bank-ha:test \
    BANK_COMMAND_PORT="$CMD_PORT" BANK_QUERY_PORT="$QRY_PORT" \
    BANK_COMMAND_METRICS_PORT="$CMD_METRICS" BANK_PROJECTOR_METRICS_PORT="$PRJ_METRICS" \
    BANK_QUERY_METRICS_PORT="$QRY_METRICS" \
    docker-compose --ansi never -p "$PROJECT" -f "$ROOT/deploy/$COMPOSE_FILE" "$@"
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "${PG_IMAGE:-}" ] && [ "$rc" -ne 0 ]; then
    log "logs of the stack (failure):"
    compose logs --no-color --tail 40 2>&1 | tail -n 200
  fi
  if [ -n "${PG_IMAGE:-}" ]; then
    compose down -v --remove-orphans --timeout 20 >/dev/null 2>&1
  fi
  if [ -n "$STARTED_DOCKERD_PID" ]; then
    log "stopping dockerd (pid $STARTED_DOCKERD_PID)"
    $SUDO kill -TERM "$STARTED_DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 60); do
      $SUDO kill -0 "$STARTED_DOCKERD_PID" 2>/dev/null || break
      sleep 0.5
    done
    if [ "$CREATED_BRIDGE" -eq 1 ]; then $SUDO ip link delete docker0 2>/dev/null; fi
  fi
  # dockerd leaves its network namespace mounted under its exec root; with
  # the mount in place the directory cannot be removed.
  awk -v p="$TMP/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do $SUDO umount -l "$m" 2>/dev/null; done
  $SUDO rm -rf "$TMP"
  log "done (rc=$rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

for tool in docker-compose dockerd; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/install-deps.sh"
done

# --- a Docker engine: the running one, or one of our own ---------------------
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
if ! docker info >/dev/null 2>&1; then
  DATA="${BANK_DOCKER_DATA:-$WORK/docker}"
  $SUDO mkdir -p "$DATA" "$TMP/exec"
  ip link show docker0 >/dev/null 2>&1 || CREATED_BRIDGE=1
  export DOCKER_HOST="unix://$TMP/docker.sock"
  log "starting dockerd (data root $DATA)"
  $SUDO dockerd --data-root "$DATA" --exec-root "$TMP/exec" \
    --pidfile "$TMP/dockerd.pid" -H "$DOCKER_HOST" >"$TMP/dockerd.log" 2>&1 &
  for _ in $(seq 1 120); do
    if [ -s "$TMP/dockerd.pid" ]; then STARTED_DOCKERD_PID="$(cat "$TMP/dockerd.pid")"; fi
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { tail -n 30 "$TMP/dockerd.log" >&2; fail "dockerd did not start"; }
  STARTED_DOCKERD_PID="$(cat "$TMP/dockerd.pid")"
fi

# --- the base image ------------------------------------------------------------
if ! docker image inspect debian:bookworm >/dev/null 2>&1; then
  if ! timeout 60 "$DOCKER_BIN" -H "$DOCKER_HOST" pull debian:bookworm >/dev/null 2>&1; then
    TARBALL="$WORK/debian-bookworm-minbase.tar"
    if [ ! -s "$TARBALL" ]; then
      MIRROR="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v '^[[:space:]]*#' |
        grep -oE 'https?://[^ ]+' | grep -v -e security -e updates | head -n 1 || true)"
      MIRROR="${MIRROR:-http://deb.debian.org/debian}"
      log "debootstrap bookworm (minbase) from $MIRROR"
      $SUDO debootstrap --variant=minbase bookworm "$TMP/rootfs" "$MIRROR" >"$TMP/debootstrap.log" 2>&1 ||
        { tail -n 20 "$TMP/debootstrap.log" >&2; fail "debootstrap failed"; }
      $SUDO rm -rf "$TMP/rootfs/var/cache/apt/archives/"*.deb "$TMP/rootfs/var/lib/apt/lists/"*
      $SUDO tar -C "$TMP/rootfs" -cf "$TARBALL.part" . && mv "$TARBALL.part" "$TARBALL"
    fi
    docker import "$TARBALL" debian:bookworm >/dev/null
    log "imported debian:bookworm"
  fi
fi

# --- images ----------------------------------------------------------------------
PG_IMAGE="${BANK_POSTGRES_IMAGE:-bank-postgres:15}"
if [ -z "${BANK_POSTGRES_IMAGE:-}" ]; then
  log "building $PG_IMAGE from deploy/postgres"
  docker build -q -t "$PG_IMAGE" "$ROOT/deploy/postgres" >/dev/null
fi
free_port() { python3 "$ROOT/scripts/free_port.py"; }
CMD_PORT=$(free_port); QRY_PORT=$(free_port)
CMD_METRICS=$(free_port); PRJ_METRICS=$(free_port); QRY_METRICS=$(free_port)
log "building the service image (docker-compose build)"
compose build >"$TMP/build.log" 2>&1 || { tail -n 40 "$TMP/build.log" >&2; fail "image build failed"; }
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^(bank-|debian:)' | sed 's/^/  image /'

# --- up, and wait for health -----------------------------------------------------
log "docker-compose up"
compose up -d >"$TMP/up.log" 2>&1 || { cat "$TMP/up.log" >&2; fail "docker-compose up failed"; }
wait_healthy() {
  local svc="$1" id status
  for _ in $(seq 1 180); do
    id="$(compose ps -q "$svc")"
    status="$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || true)"
    [ "$status" = "healthy" ] && return 0
    sleep 1
  done
  fail "$svc is not healthy (status: ${status:-none})"
}
for svc in postgres-events postgres-read command-service projector query-service; do
  wait_healthy "$svc"
done
log "all five containers healthy"

# The events schema was migrated by the one-shot container, which exited 0,
# and no running service container holds the schema owner's password (the
# owner can drop the append-only triggers).
mid="$(compose ps -q migrate-events)"
[ "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$mid")" = "exited 0" ] ||
  fail "migrate-events did not exit 0: $(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$mid")"
for svc in command-service projector query-service; do
  if docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$(compose ps -q "$svc")" |
      grep -q "change-me-owner"; then
    fail "$svc holds the events owner's password"
  fi
done

# Published ports are bound to 127.0.0.1 only, and the databases are not
# published at all.
ports="$(compose ps 2>/dev/null)"
echo "$ports" | grep -q "127.0.0.1:$CMD_PORT->50051" || fail "command port not on 127.0.0.1: $ports"
echo "$ports" | grep -q "127.0.0.1:$QRY_PORT->50052" || fail "query port not on 127.0.0.1: $ports"
if echo "$ports" | grep -q -- "->5432"; then fail "a database port is published: $ports"; fi

# --- the scenario, through the published ports --------------------------------
ctl() { "$BANKCTL" --command-host "127.0.0.1:$CMD_PORT" --query-host "127.0.0.1:$QRY_PORT" --timeout 15 "$@"; }
A="$(ctl --json open --owner Alice --currency EUR --initial 100.00 | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["account_id"])')"
B="$(ctl --json open --owner Bob --currency EUR | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["account_id"])')"
ctl deposit "$A" 25.50 >/dev/null
ctl transfer "$A" "$B" 40.00 >/dev/null
# bankctl waits (min_version) for its own writes before it prints a balance.
out="$(ctl deposit "$B" 0.01)"
echo "$out" | grep -q "balance  40.01 EUR" || fail "B after the deposit: $out"
bal_a="$(ctl --json balance "$A" --wait --version 3 | python3 -c 'import json,sys; print(json.load(sys.stdin)["balance"])')"
[ "$bal_a" = "8550" ] || fail "A's balance is $bal_a minor units, not 8550"
ctl health command | grep -q SERVING || fail "command service not SERVING"
for p in "$CMD_METRICS" "$PRJ_METRICS" "$QRY_METRICS"; do
  python3 - "$p" <<'PY' || fail "no metrics on port $p"
import sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode()
sys.exit(0 if "\nbank_" in body or body.startswith("bank_") or "# TYPE bank_" in body else 1)
PY
done
# bankctl from the image itself, as the README shows it.
out="$(docker run --rm --network host bank-services:test bankctl \
  --query-host "127.0.0.1:$QRY_PORT" balance "$A")"
echo "$out" | grep -q "balance  85.50 EUR" || fail "bankctl in the image: $out"
log "scenario passed: A=85.50 B=40.01 EUR"

# --- a service container restarts and recovers ----------------------------------
log "restarting command-service and projector"
compose restart -t 20 command-service projector >/dev/null 2>&1
wait_healthy command-service
wait_healthy projector
out="$(ctl withdraw "$A" 5.50)"
echo "$out" | grep -q "balance  80.00 EUR" || fail "A after the restart: $out"
hist="$(ctl history "$A")"
[ "$(echo "$hist" | wc -l)" -eq 4 ] || fail "A's history should have 4 entries: $hist"
log "recovered after the restart"

# The query service's process killed with SIGKILL (a crash, not a stop): the
# restart policy brings it back.
$SUDO kill -KILL "$(docker inspect -f '{{.State.Pid}}' "$(compose ps -q query-service)")"
sleep 1
wait_healthy query-service
out="$(ctl balance "$B")"
echo "$out" | grep -q "balance  40.01 EUR" || fail "B after the query service was killed: $out"
log "query-service came back after kill -9"

# --- the highly available stack: docker-compose.ha.yml -------------------------
# Three etcd members, three Patroni nodes, the services on multi-host URIs.
# The primary's container is killed (SIGKILL) under a command that must then
# succeed on the new primary, and the old primary comes back as a replica.
log "the single-server stack down; the HA stack (docker-compose.ha.yml) up"
compose down -v --remove-orphans --timeout 20 >/dev/null 2>&1
COMPOSE_FILE=docker-compose.ha.yml
compose build >"$TMP/build-ha.log" 2>&1 || { tail -n 40 "$TMP/build-ha.log" >&2; fail "HA image build failed"; }
compose up -d >"$TMP/up-ha.log" 2>&1 || { cat "$TMP/up-ha.log" >&2; fail "docker-compose up (HA) failed"; }
for svc in pg1 pg2 pg3 command-service projector query-service; do
  wait_healthy "$svc"
done
# The members as Patroni sees them: "name role state timeline" lines.
members() {
  docker exec "$(compose ps -q "$1")" patronictl -c /etc/patroni.yml list -f json |
    python3 -c 'import json,sys
for m in json.load(sys.stdin): print(m["Member"], m["Role"].replace(" ", "_"), m["State"], m.get("TL", ""))'
}
# Until every one of the three nodes runs on one timeline, with a leader
# and a synchronous standby (asked of node $1).
wait_cluster() {
  local out=""
  for _ in $(seq 1 120); do
    out="$(members "$1" 2>/dev/null || true)"
    if [ "$(echo "$out" | awk '$3 == "running" || $3 == "streaming"' | wc -l)" -eq 3 ] &&
       [ "$(echo "$out" | awk '{print $4}' | sort -u | wc -l)" -eq 1 ] &&
       echo "$out" | grep -q " Leader " && echo "$out" | grep -q " Sync_Standby "; then
      return 0
    fi
    sleep 1
  done
  fail "the Patroni cluster is not whole: $out"
}
wait_cluster pg1
log "HA stack healthy: $(members pg1 | tr '\n' ';')"
A="$(ctl --json open --owner Carol --currency EUR --initial 100.00 | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["account_id"])')"
ctl deposit "$A" 10.00 >/dev/null
leader="$(members pg1 | awk '$2 == "Leader" {print $1}')"
[ -n "$leader" ] || fail "no leader"
other=pg1; [ "$leader" = pg1 ] && other=pg2
log "killing the primary's container ($leader)"
docker update --restart no "$(compose ps -q "$leader")" >/dev/null
docker kill "$(compose ps -q "$leader")" >/dev/null
# Sent at once: bankctl asks the query service for the account's currency
# (a min_version read, which waits through the failover: BANK_MAX_WAIT),
# then the command service waits for the new primary (BANK_DB_OUTAGE_WAIT,
# 20 s) and answers the true result.
t0=$(date +%s)
out="$("$BANKCTL" --command-host "127.0.0.1:$CMD_PORT" --query-host "127.0.0.1:$QRY_PORT" --timeout 40 deposit "$A" 5.00)" ||
  fail "a deposit during the failover failed: $out"
echo "$out" | grep -q "balance  115.00 EUR" || fail "A after the failover: $out"
log "a deposit sent as the primary died succeeded after $(( $(date +%s) - t0 )) s: new leader $(members "$other" | awk '$2 == "Leader" {print $1}')"
docker update --restart unless-stopped "$(compose ps -q "$leader")" >/dev/null
docker start "$(compose ps -q "$leader")" >/dev/null
wait_cluster "$other"
log "the old primary rejoined: $(members "$other" | tr '\n' ';')"
out="$(ctl withdraw "$A" 15.00)"
echo "$out" | grep -q "balance  100.00 EUR" || fail "A after the rejoin: $out"
[ "$(ctl history "$A" | wc -l)" -eq 4 ] || fail "A's history should have 4 entries"
log "HA scenario passed"
