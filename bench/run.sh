#!/usr/bin/env bash
# Benchmarks this system side by side with its peers and floors, on one
# machine: servers pinned to CPU 0, the load generator to CPU 1, the same
# loadgen and parameters for everyone.
#
#   bench/run.sh                 every scenario
#   bench/run.sh high fanout     some scenarios
#   TARGETS="ours socketio" bench/run.sh high      some targets
#     (targets: ours, durablefloor, socketio, socketio-pg (Socket.IO that stores
#      each send in Postgres, then emits), fastapi, wsfloor, nats)
#   SWEEP=1 bench/run.sh high    also sweep the rate to find throughput at P99_BOUND_MS
#   CONNS=100000 bench/run.sh connections-many   idle sockets beyond one process's file limit
#   bench/run.sh idle-rooms      what 10,000 joined, silent rooms cost at rest
#   bench/run.sh control-backlog  a member's removal, in effect on every gateway,
#                                 with 100,000 sends queued for the workers
#   bench/run.sh history         readers paging back over HTTP while writers send:
#                                 Redis hit ratio, page p99 by source, sends' p99
#   bench/run.sh scaling         ingest with 1, 2 and 4 workers: stored sends/s,
#                                 CPU per stored send, Postgres lock waits
#   bench/run.sh takeover        20 SIGKILLs of a partition owner: time to a new owner
#   bench/run.sh typing          high's sends beside 10,000 members in 1,000 rooms each
#                                typing every 3 s (LOADGEN_ARGS="--typing-every 0": without)
#   bench/run.sh presence        10,000 users online in rooms of 10: what presence
#                                costs Redis and NATS coming online, at rest, going offline
#   bench/run.sh retention       high's sends (LOADGEN_ARGS apply) with nothing to delete,
#                                then while retention deletes 1,000,000 old entries of one
#                                room (at retention.rows_per_sec), on the same servers: p99 and CPU side by side
#   bench/run.sh feed            100 users each watching the feed of the same 500 rooms
#                                while a sender sends to them: the gateways' CPU per
#                                message with and without the watchers, send -> feed latency
#
# Any loadgen flag can be passed through LOADGEN_ARGS (e.g. "--conns 20000", or
# "--body-text /usr/share/common-licenses/GPL-3": bodies of English text, not x's).
#   BIN=/tmp/bin-before bench/run.sh ingest   binaries built elsewhere (A/B runs)
#   PERF=1 bench/run.sh ingest                also a flame graph of the server CPU
#   NATS_CONF=other.conf bench/run.sh ingest  another nats-server configuration
#   ONE_GATEWAY=1 bench/run.sh high           ours: every socket on the first gateway
#                                             (the second starts, and idles)
# Reports, charts and the table land in bench/out/<timestamp>/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(baseline moderate high extreme fanout ingest connections connections-many churn spike slow-consumer soak)
TARGETS=${TARGETS:-"ours durablefloor socketio socketio-pg fastapi wsfloor nats"}
P99_BOUND_MS=${P99_BOUND_MS:-100}
PGB_BATCH=${PGB_BATCH:-100}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
OUT=bench/out/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/chat-bench-XXXX)
as_pg=(); [ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
chmod 755 "$TMP"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  mkdir -p "$OUT/logs" && cp "$TMP"/*.log "$OUT/logs/" 2>/dev/null || true
  [ -d "$TMP/pg" ] && "${as_pg[@]}" pg_ctl -D "$TMP/pg" stop -m fast >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# --- tools -----------------------------------------------------------------
command -v pgbench >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-contrib >/dev/null || true; }
command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
(cd bench/peers/socketio && npm install --no-audit --no-fund --silent >/dev/null)
VENV=bench/peers/fastapi/.venv
[ -x $VENV/bin/uvicorn ] || { python3 -m venv $VENV && $VENV/bin/pip install -q -r bench/peers/fastapi/requirements.txt; }
# BIN=<dir> runs binaries built elsewhere (another commit, for an A/B run).
# PERF=1: a flame graph of the server CPU over each run of ours (perf and
# inferno), beside its report, from release code with frame pointers.
if [ -n "${BIN:-}" ]; then
  echo "binaries from $BIN"
elif [ "${PERF:-0}" = 1 ]; then
  RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=target/fp \
    cargo build --profile profiling -p chat-gateway -p chat-worker -p loadgen
  BIN=target/fp/profiling
else
  cargo build --release -p chat-gateway -p chat-worker -p loadgen
  BIN=target/release
fi
if [ "${PERF:-0}" = 1 ]; then
  command -v inferno-flamegraph >/dev/null || cargo install --locked inferno
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 150); do listening "$1" && return 0; sleep 0.2; done; echo "nothing on port $1" >&2; exit 1; }
# spawn LOG CMD...: starts CMD on the server CPU (taskset execs it, so $LAST
# is the server's own pid, whose memory the loadgen watches).
spawn() { local log=$1; shift; taskset -c "$SERVER_CPU" "$@" >"$TMP/$log.log" 2>&1 & LAST=$!; pids+=("$LAST"); }
stop() { for p in "$@"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; sleep 0.5; }

# --- shared services: Postgres (durable: fsync on), Redis, NATS -------------
PG_PORT=$(free_port); REDIS_PORT=$(free_port); NATS_PORT=$(free_port); NATS_MON=$(free_port)
mkdir -p "$TMP/pg"; [ "$(id -u)" = 0 ] && chown postgres "$TMP/pg"
"${as_pg[@]}" initdb -U postgres --auth=trust -D "$TMP/pg" >/dev/null
spawn postgres "${as_pg[@]}" postgres -D "$TMP/pg" -p $PG_PORT -k "$TMP/pg" -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB -c min_wal_size=512MB ${PG_ARGS:-}
spawn redis redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no; REDIS_PID=$LAST
spawn nats "$NATS_SERVER_BIN" -c "${NATS_CONF:-deploy/nats.conf}" -js -a 127.0.0.1 -p $NATS_PORT -m $NATS_MON -sd "$TMP/js"; NATS_PID=$LAST
wait_port $PG_PORT; wait_port $REDIS_PORT; wait_port $NATS_PORT; sleep 1
psql -h 127.0.0.1 -p $PG_PORT -U postgres -qc "CREATE DATABASE chat"
# A Postgres that has run a while reuses its WAL segments (recycled at each
# checkpoint); a fresh one creates, zero-fills and syncs a new 16 MB file
# every few seconds under load, stalling commits meanwhile. Write about
# 300 MB of WAL and checkpoint, so that runs find recycled segments as on a
# server in service (min_wal_size above keeps them).
psql -h 127.0.0.1 -p $PG_PORT -U postgres -q \
  -c "CREATE TABLE wal_warmup AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 1000000) g" \
  -c "DROP TABLE wal_warmup" -c "CHECKPOINT"
echo "   WAL segments ready for reuse: $(find "$TMP/pg/pg_wal" -maxdepth 1 -name '0*' | wc -l)"
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
SECRET=bench-secret-bench-secret-bench-secret
ADMIN=bench-admin
# Loadgen's senders go faster than a person (ingest: 40/s each, more with
# SWEEP) and all its sockets come from 127.0.0.x: the per-user limits would
# measure themselves, not the system.
export CHAT_GATEWAY_LIMITS__SEND_RATE_PER_CONNECTION=1000000 CHAT_GATEWAY_LIMITS__SEND_BURST_PER_CONNECTION=1000000
export CHAT_GATEWAY_LIMITS__SEND_RATE_PER_USER=1000000 CHAT_GATEWAY_LIMITS__SEND_BURST_PER_USER=1000000
export CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS_PER_IP=1000000

start_ours() {
  export CHAT_WORKER_NATS_URL=nats://127.0.0.1:$NATS_PORT CHAT_WORKER_REDIS_URL=$REDIS_URL
  export CHAT_WORKER_POSTGRES__URL=postgres://postgres@127.0.0.1:$PG_PORT/chat CHAT_WORKER_HTTP_LISTEN=127.0.0.1:$(free_port)
  export CHAT_GATEWAY_NATS_URL=$CHAT_WORKER_NATS_URL CHAT_GATEWAY_REDIS_URL=$REDIS_URL
  export CHAT_GATEWAY_POSTGRES__URL=$CHAT_WORKER_POSTGRES__URL CHAT_GATEWAY_JWT__HS256_SECRET=$SECRET CHAT_GATEWAY_ADMIN_TOKEN=$ADMIN
  export CHAT_GATEWAY_LOG__FILTER=${LOG_FILTER:-warn} CHAT_WORKER_LOG__FILTER=${LOG_FILTER:-warn}
  WORKER_PORTS=(); WORKER_PIDS=()
  start_worker; SERVER_PIDS=("$LAST")
  G1=$(free_port); G2=$(free_port)
  export CHAT_GATEWAY_LISTEN=127.0.0.1:$G1; spawn gateway1 $BIN/gateway; SERVER_PIDS+=("$LAST")
  export CHAT_GATEWAY_LISTEN=127.0.0.1:$G2; spawn gateway2 $BIN/gateway; SERVER_PIDS+=("$LAST")
  # WORKERS=N: N workers sharing the ingest partitions (scaling, takeover).
  for _ in $(seq 2 "${WORKERS:-1}"); do start_worker; SERVER_PIDS+=("$LAST"); done
  wait_port $G1; wait_port $G2
  local g2=$G2; [ "${ONE_GATEWAY:-0}" = 1 ] && g2=$G1
  URLS=(--url ws://127.0.0.1:$G1/v1/ws --url ws://127.0.0.1:$g2/v1/ws --admin-url http://127.0.0.1:$G1 --admin-token $ADMIN --jwt-secret $SECRET)
  WATCH=${SERVER_PIDS[1]},${SERVER_PIDS[2]}
}
start_worker() {
  local port; port=$(free_port)
  CHAT_WORKER_HTTP_LISTEN=127.0.0.1:$port spawn "worker-$port" $BIN/worker
  WORKER_PORTS+=("$port"); WORKER_PIDS+=("$LAST")
}
start_socketio() {
  P1=$(free_port); P2=$(free_port)
  spawn sio1 node bench/peers/socketio/server.js $P1; SERVER_PIDS=("$LAST")
  spawn sio2 node bench/peers/socketio/server.js $P2; SERVER_PIDS+=("$LAST")
  wait_port $P1; wait_port $P2
  URLS=(--url ws://127.0.0.1:$P1 --url ws://127.0.0.1:$P2); WATCH=${SERVER_PIDS[0]},${SERVER_PIDS[1]}
}
# Target `socketio-pg`: the same stack, each send stored in Postgres (its
# own sio_ tables in the chat database) before it is emitted and acked.
start_socketio_pg() {
  P1=$(free_port); P2=$(free_port)
  local pg=postgres://postgres@127.0.0.1:$PG_PORT/chat
  PG_URL=$pg spawn sio-pg1 node bench/peers/socketio/store.js $P1; SERVER_PIDS=("$LAST")
  PG_URL=$pg spawn sio-pg2 node bench/peers/socketio/store.js $P2; SERVER_PIDS+=("$LAST")
  wait_port $P1; wait_port $P2
  URLS=(--url ws://127.0.0.1:$P1 --url ws://127.0.0.1:$P2); WATCH=${SERVER_PIDS[0]},${SERVER_PIDS[1]}
}
start_fastapi() {
  P1=$(free_port); P2=$(free_port); SERVER_PIDS=()
  for port in $P1 $P2; do
    spawn "fastapi-$port" bash -c "cd bench/peers/fastapi && exec .venv/bin/uvicorn app:app --host 127.0.0.1 --port $port --log-level warning"
    SERVER_PIDS+=("$LAST")
  done
  wait_port $P1; wait_port $P2
  URLS=(--url ws://127.0.0.1:$P1 --url ws://127.0.0.1:$P2); WATCH=${SERVER_PIDS[0]},${SERVER_PIDS[1]}
}
start_wsfloor() {
  P1=$(free_port)
  spawn wsfloor $BIN/wsfloor 127.0.0.1:$P1; SERVER_PIDS=("$LAST"); wait_port $P1
  URLS=(--url ws://127.0.0.1:$P1); WATCH=${SERVER_PIDS[0]}
}
# The durable floor: the least code that keeps "committed before delivered"
# (loadgen/src/bin/durablefloor.rs), on the same NATS and Postgres.
start_durablefloor() {
  P1=$(free_port)
  spawn durablefloor $BIN/durablefloor 127.0.0.1:$P1 nats://127.0.0.1:$NATS_PORT postgres://postgres@127.0.0.1:$PG_PORT/chat
  SERVER_PIDS=("$LAST"); wait_port $P1
  URLS=(--url ws://127.0.0.1:$P1); WATCH=${SERVER_PIDS[0]}
}
start_nats() { SERVER_PIDS=(); URLS=(--url nats://127.0.0.1:$NATS_PORT); WATCH=$NATS_PID; }

rss_sum() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmRSS/ {print $2}' /proc/$p/status 2>/dev/null || echo 0))); done; echo $t; }

# `connections-many`: more idle sockets than one process may hold (20,000
# open files each): CONNS sockets over one gateway and one loadgen per
# PER_PROCESS sockets, each loadgen from its own 127.0.0.x address.
run_connections_many() {
  local conns=${CONNS:-100000} per=${PER_PROCESS:-15000}
  local n=$(( (conns + per - 1) / per )) gateways=() urls=() i
  export CHAT_WORKER_NATS_URL=nats://127.0.0.1:$NATS_PORT CHAT_WORKER_REDIS_URL=$REDIS_URL
  export CHAT_WORKER_POSTGRES__URL=postgres://postgres@127.0.0.1:$PG_PORT/chat CHAT_WORKER_HTTP_LISTEN=127.0.0.1:$(free_port)
  export CHAT_GATEWAY_NATS_URL=$CHAT_WORKER_NATS_URL CHAT_GATEWAY_REDIS_URL=$REDIS_URL
  export CHAT_GATEWAY_POSTGRES__URL=$CHAT_WORKER_POSTGRES__URL CHAT_GATEWAY_JWT__HS256_SECRET=$SECRET CHAT_GATEWAY_ADMIN_TOKEN=$ADMIN
  export CHAT_GATEWAY_LOG__FILTER=warn CHAT_WORKER_LOG__FILTER=warn CHAT_GATEWAY_POSTGRES__POOL_SIZE=4
  spawn worker $BIN/worker; local worker=$LAST
  for i in $(seq 0 $((n - 1))); do
    local port; port=$(free_port); export CHAT_GATEWAY_LISTEN=127.0.0.1:$port
    spawn "gateway-many-$i" $BIN/gateway; gateways+=("$LAST"); urls+=("$port")
  done
  for port in "${urls[@]}"; do wait_port "$port"; done
  local before; before=$(rss_sum "${gateways[@]}")
  echo "== connections-many / ours: $conns sockets over $n gateways and $n loadgen processes"
  local loadgens=()
  for i in $(seq 0 $((n - 1))); do
    local count=$(( i == n - 1 ? conns - per * (n - 1) : per ))
    taskset -c "$LOADGEN_CPU" $BIN/loadgen --scenario connections --conns "$count" --warmup 20 --duration 10 --quiet \
      --url "ws://127.0.0.1:${urls[$i]}/v1/ws" --admin-url "http://127.0.0.1:${urls[$i]}" --admin-token $ADMIN --jwt-secret $SECRET \
      --local-addrs "127.0.0.$((i + 2))" --label "ours-part$i" --report "$OUT/connections-many--part$i.json.part" \
      >"$TMP/loadgen-many-$i.log" 2>&1 &
    loadgens+=($!)
  done
  local peak=0
  while kill -0 "${loadgens[@]}" 2>/dev/null; do
    local now; now=$(rss_sum "${gateways[@]}"); [ "$now" -gt "$peak" ] && peak=$now
    sleep 1
  done
  wait "${loadgens[@]}" || true
  python3 - "$OUT" "$before" "$peak" "$n" <<'PY' | tee "$OUT/connections-many.txt"
import glob, json, sys
out, before, peak, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
parts = [json.load(open(p)) for p in glob.glob(f"{out}/connections-many--part*.json.part")]
connected = sum(p["connected"] for p in parts)
failed = sum(p["connect_failures"] for p in parts)
pongs = sum(p["pongs"] for p in parts)
print(f"connections-many: {connected} sockets open at once over {n} gateways ({failed} failed), "
      f"{pongs} pings answered, gateway RSS {before/1024:.0f} -> {peak/1024:.0f} MiB: "
      f"{(peak - before) / max(connected, 1):.1f} KiB per socket")
PY
  stop "${loadgens[@]}" "${gateways[@]}" "$worker"
}

# Rooms idle-0 .. idle-(N-1), once the worker has made the schema.
insert_idle_rooms() {
  for _ in $(seq 60); do
    psql -h 127.0.0.1 -p $PG_PORT -U postgres -d chat -qc "INSERT INTO rooms (id) SELECT 'idle-' || g FROM generate_series(0, $1 - 1) g ON CONFLICT DO NOTHING" 2>/dev/null && return
    sleep 1
  done
}
# Commands Redis has processed since it started.
redis_commands() { redis-cli -p $REDIS_PORT info stats | awk -F: '/total_commands_processed/ {print $2+0}'; }

# `idle-rooms`: IDLE_ROOMS rooms (default 10,000) joined over both gateways
# and silent. Prints what they cost at rest: the gateways' CPU (share of a
# core), Postgres statements/s and Redis commands/s, over IDLE_SECS after
# the lost-tail prober has backed off (its longest interval, 30 s).
run_idle_rooms() {
  local rooms=${IDLE_ROOMS:-10000} secs=${IDLE_SECS:-60}
  start_ours
  # The worker creates the schema as it starts.
  insert_idle_rooms "$rooms"
  psql -h 127.0.0.1 -p $PG_PORT -U postgres -d chat -qc "INSERT INTO members (room_id, user_id) SELECT 'idle-' || g, 'idle-' || (g / 100) FROM generate_series(0, $rooms - 1) g ON CONFLICT DO NOTHING"
  echo "== idle-rooms / ours: $rooms silent rooms over 2 gateways"
  taskset -c "$LOADGEN_CPU" $BIN/idlerooms --url "ws://127.0.0.1:$G1/v1/ws" --url "ws://127.0.0.1:$G2/v1/ws" \
    --jwt-secret $SECRET --rooms "$rooms" --per-socket 100 --hold $((secs + 60)) >"$TMP/idlerooms.log" 2>&1 &
  local client=$!
  for _ in $(seq 120); do grep -q ready "$TMP/idlerooms.log" && break; sleep 1; done
  grep ready "$TMP/idlerooms.log" || { echo "   idle-rooms: the client did not get ready"; cat "$TMP/idlerooms.log"; }
  sleep 40
  local g1=${SERVER_PIDS[1]} g2=${SERVER_PIDS[2]}
  ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
  # Every server process: gateways, worker, NATS, Redis, Postgres and its backends.
  local postmaster; postmaster=$(head -1 "$TMP/pg/postmaster.pid")
  all_ticks() {
    local t=0 p
    for p in "${SERVER_PIDS[@]}" $NATS_PID $REDIS_PID $postmaster $(pgrep -P $postmaster); do
      t=$((t + $(ticks $p 2>/dev/null || echo 0)))
    done
    echo $t
  }
  statements() { psql -h 127.0.0.1 -p $PG_PORT -U postgres -d chat -Atc "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database"; }
  commands() { redis_commands; }
  probes() { for port in $G1 $G2; do curl -s "http://127.0.0.1:$port/metrics"; done | awk '/^chat_gateway_head_probes_total/ {s += $2} END {print s + 0}'; }
  # Each of the others on its own: worker, NATS, Redis, Postgres.
  each_ticks() {
    local pg=0 p
    for p in $postmaster $(pgrep -P $postmaster); do pg=$((pg + $(ticks $p 2>/dev/null || echo 0))); done
    echo "$(ticks ${SERVER_PIDS[0]}) $(ticks $NATS_PID) $(ticks $REDIS_PID) $pg"
  }
  local t1=$(( $(ticks $g1) + $(ticks $g2) )) a1 q1 r1 p1 e1; a1=$(all_ticks); q1=$(statements); r1=$(commands); p1=$(probes); e1=$(each_ticks)
  sleep "$secs"
  local t2=$(( $(ticks $g1) + $(ticks $g2) )) a2 q2 r2 p2 e2; a2=$(all_ticks); q2=$(statements); r2=$(commands); p2=$(probes); e2=$(each_ticks)
  python3 - "$secs" "$(getconf CLK_TCK)" $e1 $e2 <<'PY' | tee "$OUT/idle-rooms-each.txt"
import sys
secs, hz, *t = map(float, sys.argv[1:])
names = ("worker", "NATS", "Redis", "Postgres")
print("   of a core: " + ", ".join(f"{n} {100 * (t[i + 4] - t[i]) / hz / secs:.2f}%" for i, n in enumerate(names)))
PY
  python3 - "$rooms" "$secs" "$t1" "$t2" "$a1" "$a2" "$q1" "$q2" "$r1" "$r2" "$p1" "$p2" "$(getconf CLK_TCK)" <<'PY' | tee "$OUT/idle-rooms.txt"
import sys
rooms, secs, t1, t2, a1, a2, q1, q2, r1, r2, p1, p2, hz = map(float, sys.argv[1:])
# Each statements() reading is itself one transaction, and one commands()
# reading is one Redis command: both taken out.
print(f"idle-rooms: {rooms:.0f} joined silent rooms over 2 gateways for {secs:.0f} s: "
      f"gateways {100 * (t2 - t1) / hz / secs:.2f}% of a core, "
      f"all servers {100 * (a2 - a1) / hz / secs:.2f}%, "
      f"Postgres {(q2 - q1 - 1) / secs:.2f} statements/s, Redis {(r2 - r1 - 1) / secs:.1f} commands/s, "
      f"{(p2 - p1) / secs:.0f} room heads probed/s")
PY
  stop "$client" "${SERVER_PIDS[@]}"
}

# `presence`: PRESENCE_USERS users (default 10,000), each with one socket
# joined to one room, over both gateways; each user is a member of the 10
# rooms of their group of 10. Prints Redis commands and NATS messages per
# user coming online (connect, join and presence together) and going
# offline (their sockets all close, then the grace), and per second at rest.
run_presence() {
  local users=${PRESENCE_USERS:-10000} secs=${PRESENCE_SECS:-30}
  export CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS_PER_USER=1000000
  start_ours
  insert_idle_rooms "$users"
  psql -h 127.0.0.1 -p $PG_PORT -U postgres -d chat -qc "INSERT INTO members (room_id, user_id) SELECT 'idle-' || g, 'idle-' || (g / 10 * 10 + m) FROM generate_series(0, $users - 1) g, generate_series(0, 9) m WHERE g / 10 * 10 + m < $users ON CONFLICT DO NOTHING"
  commands() { redis_commands; }
  messages() { curl -s "http://127.0.0.1:$NATS_MON/varz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["in_msgs"])'; }
  # The commands presence uses (at rest: only its heartbeats and mends).
  presence_commands() { redis-cli -p $REDIS_PORT info commandstats | awk -F'[:=,]' '/^cmdstat_(zadd|zrangebyscore|exists|sadd|srem|smembers|evalsha|del):/ {s += $3} END {print s + 0}'; }
  changes() { for port in $G1 $G2; do curl -s "http://127.0.0.1:$port/metrics"; done | awk '/^chat_gateway_presence_changes_total/ {s += $2} END {print s + 0}'; }
  ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $t; }
  echo "== presence / ours: $users users online over 2 gateways, in rooms of 10"
  sleep 5
  local r0 n0; r0=$(commands); n0=$(messages)
  taskset -c "$LOADGEN_CPU" $BIN/idlerooms --url "ws://127.0.0.1:$G1/v1/ws" --url "ws://127.0.0.1:$G2/v1/ws" \
    --jwt-secret $SECRET --rooms "$users" --per-socket 1 --hold 600 >"$TMP/presence.log" 2>&1 &
  local client=$!
  for _ in $(seq 300); do grep -q ready "$TMP/presence.log" && break; sleep 1; done
  grep ready "$TMP/presence.log" || { echo "   presence: the client did not get ready"; cat "$TMP/presence.log"; }
  sleep 10
  local r1 n1 c1 t1 p1; r1=$(commands); n1=$(messages); c1=$(changes); t1=$(ticks "${SERVER_PIDS[@]}" $NATS_PID $REDIS_PID); p1=$(presence_commands)
  sleep "$secs"
  local r2 n2 t2 p2; r2=$(commands); n2=$(messages); t2=$(ticks "${SERVER_PIDS[@]}" $NATS_PID $REDIS_PID); p2=$(presence_commands)
  stop "$client"
  # The grace (5 s), then every user's departure.
  sleep 20
  local r3 n3 c3; r3=$(commands); n3=$(messages); c3=$(changes)
  python3 - "$users" "$secs" "$(getconf CLK_TCK)" $r0 $n0 $r1 $n1 $c1 $t1 $r2 $n2 $t2 $r3 $n3 $c3 $p1 $p2 <<'PY' | tee "$OUT/presence.txt"
import sys
users, secs, hz, r0, n0, r1, n1, c1, t1, r2, n2, t2, r3, n3, c3, p1, p2 = map(float, sys.argv[1:])
print(f"presence: {users:.0f} users online over 2 gateways (each in 10 rooms of 10, one joined)")
print(f"   coming online (connect, join, presence): {(r1 - r0) / users:.1f} Redis commands and "
      f"{(n1 - n0) / users:.1f} NATS messages per user; {c1:.0f} announced online")
print(f"   at rest for {secs:.0f} s: {(r2 - r1) / secs:.1f} Redis commands/s of which presence's {(p2 - p1) / secs:.2f}/s "
      f"(the rest: the lost-tail prober of the 10,000 joined rooms), {(n2 - n1) / secs:.1f} NATS messages/s "
      f"(none of them presence's: it publishes only on a change), servers {100 * (t2 - t1) / hz / secs:.2f}% of a core")
print(f"   going offline (every socket closed, after the grace): {(r3 - r2) / users:.1f} Redis commands and "
      f"{(n3 - n2) / users:.1f} NATS messages per user; {c3 - c1:.0f} announced offline")
PY
  stop "${SERVER_PIDS[@]}"
}

# `feed`: FEED_WATCHERS users (default 100), spread over both gateways, each
# watching the feed of the same FEED_ROOMS rooms (500) without joining any;
# a sender sends FEED_RATE messages a second (200) to the rooms in turn for
# FEED_SECS (20). Run without watchers, then with them: the gateways' CPU
# per message side by side, what the feed adds per message and per feed
# frame, and the send -> feed latency.
run_feed() {
  local watchers=${FEED_WATCHERS:-100} rooms=${FEED_ROOMS:-500} rate=${FEED_RATE:-200} secs=${FEED_SECS:-20}
  local knob
  for knob in SEND_RATE_PER_CONNECTION SEND_BURST_PER_CONNECTION SEND_RATE_PER_USER SEND_BURST_PER_USER; do
    export "CHAT_GATEWAY_LIMITS__$knob=1000000"
  done
  start_ours
  for _ in $(seq 60); do
    psql -h 127.0.0.1 -p $PG_PORT -U postgres -d chat -qc "INSERT INTO rooms (id) SELECT 'feed-r' || g FROM generate_series(0, $rooms - 1) g ON CONFLICT DO NOTHING" 2>/dev/null && break
    sleep 1
  done
  psql -h 127.0.0.1 -p $PG_PORT -U postgres -d chat -qc "INSERT INTO members (room_id, user_id) SELECT 'feed-r' || g, u FROM generate_series(0, $rooms - 1) g, (SELECT 'feed-w' || w AS u FROM generate_series(0, $watchers - 1) w UNION ALL SELECT 'feed-sender') us ON CONFLICT DO NOTHING; INSERT INTO read_markers (room_id, user_id, seq) SELECT room_id, user_id, 0 FROM members WHERE room_id LIKE 'feed-r%' ON CONFLICT DO NOTHING"
  gw_ticks() { local t=0 p; for p in "${SERVER_PIDS[1]}" "${SERVER_PIDS[2]}"; do t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $t; }
  local w results=()
  for w in 0 "$watchers"; do
    echo "== feed / ours: $w watchers of $rooms rooms, $rate messages/s for $secs s"
    taskset -c "$LOADGEN_CPU" $BIN/feedbench --url "ws://127.0.0.1:$G1/v1/ws" --url "ws://127.0.0.1:$G2/v1/ws" \
      --jwt-secret $SECRET --watchers "$w" --rooms "$rooms" --rate "$rate" --secs "$secs" >"$TMP/feed-$w.log" 2>&1 &
    local client=$!
    for _ in $(seq 300); do grep -q ready "$TMP/feed-$w.log" && break; sleep 0.2; done
    local t1; t1=$(gw_ticks)
    wait "$client" || true
    local t2; t2=$(gw_ticks)
    grep -E "^sent" "$TMP/feed-$w.log" | tee -a "$OUT/feed.txt" || cat "$TMP/feed-$w.log"
    results+=("$(grep -oE '^sent [0-9]+' "$TMP/feed-$w.log" | awk '{print $2}') $((t2 - t1)) $(grep -oE 'got [0-9]+ feed frames' "$TMP/feed-$w.log" | awk '{print $2}')")
  done
  python3 - "$(getconf CLK_TCK)" "$watchers" ${results[@]} <<'PY' | tee -a "$OUT/feed.txt"
import sys
hz, watchers, n0, t0, _f0, n1, t1, f1 = (float(x or 0) for x in sys.argv[1:])
per0, per1 = 1e6 * t0 / hz / n0, 1e6 * t1 / hz / n1
print(f"feed: gateways' CPU per message without watchers {per0:.0f} us, with {watchers:.0f} watchers {per1:.0f} us: "
      f"the feed adds {per1 - per0:.0f} us a message, {(per1 - per0) / max(watchers, 1):.1f} us per message per watcher "
      f"(each frame carries the rooms changed in a flush: {f1 / n1:.1f} frames a message in all)")
PY
  stop "${SERVER_PIDS[@]}"
}

# `control-backlog`: CONTROL_BACKLOG sends (default 100,000) queued on the
# ingest stream, then CONTROL_TRIES (100) removals of a member with a socket
# on each gateway: how soon each is committed and in effect everywhere.
run_control_backlog() {
  start_ours
  echo "== control-backlog / ours: removals behind ${CONTROL_BACKLOG:-100000} queued sends"
  taskset -c "$LOADGEN_CPU" $BIN/controlbench --url "ws://127.0.0.1:$G1/v1/ws" --url "ws://127.0.0.1:$G2/v1/ws" \
    --admin-url "http://127.0.0.1:$G1" --admin-token $ADMIN --jwt-secret $SECRET --nats "nats://127.0.0.1:$NATS_PORT" \
    --backlog "${CONTROL_BACKLOG:-100000}" --tries "${CONTROL_TRIES:-100}" | tee "$OUT/control-backlog.txt"
  stop "${SERVER_PIDS[@]}"
}

# `history`: HISTORY_ROOMS rooms (20) seeded with HISTORY_SEED messages
# (3,000), writers at HISTORY_RATE sends/s (400) alone, then with
# HISTORY_READERS readers (20) paging back over HTTP, HISTORY_THINK_MS
# (100) between pages; both phases HISTORY_SECS (10) long.
run_history() {
  start_ours
  echo "== history / ours: readers paging back while writers send"
  taskset -c "$LOADGEN_CPU" $BIN/historybench --url "ws://127.0.0.1:$G1/v1/ws" --url "ws://127.0.0.1:$G2/v1/ws" \
    --http "http://127.0.0.1:$G1" --http "http://127.0.0.1:$G2" --admin-token $ADMIN --jwt-secret $SECRET \
    --nats "nats://127.0.0.1:$NATS_PORT" --rooms "${HISTORY_ROOMS:-20}" --seed "${HISTORY_SEED:-3000}" \
    --rate "${HISTORY_RATE:-400}" --readers "${HISTORY_READERS:-20}" \
    --think-ms "${HISTORY_THINK_MS:-100}" --secs "${HISTORY_SECS:-10}" | tee "$OUT/history.txt"
  stop "${SERVER_PIDS[@]}"
}

# `retention`: RETENTION_ROWS (1,000,000) old entries seeded in one room;
# `high` runs four times on the same servers, taking turns: with nothing to
# delete ("quiet": the room has no limit), and while retention deletes the
# room's entries ("purging": its limit is 1 entry). Prints how many entries
# went during each run.
run_retention() {
  local rows=${RETENTION_ROWS:-1000000}
  export CHAT_WORKER_RETENTION__SWEEP_MS=1000 CHAT_WORKER_RETENTION__GRACE_MS=0
  start_ours
  insert_idle_rooms 1
  echo "== retention / ours: seeding $rows old entries in one room"
  psql -h 127.0.0.1 -p $PG_PORT -U postgres -d chat -qc "INSERT INTO rooms (id, last_seq) VALUES ('archive', $rows)" \
    -c "INSERT INTO messages (room_id, seq, id, sender_id, client_msg_id, body, created_at) SELECT 'archive', g, gen_random_uuid(), 'seed', 'seed-' || g, 'an old message ' || g, now() - interval '1 day' FROM generate_series(1, $rows) g" \
    -c "VACUUM ANALYZE messages"
  deleted() { for port in "${WORKER_PORTS[@]}"; do curl -s "http://127.0.0.1:$port/metrics"; done | awk '/^chat_worker_retention_deleted_total\{what="entries"\}/ {s += $2} END {print s + 0}'; }
  local label limit
  for label in quiet-1 purging-1 quiet-2 purging-2; do
    case $label in quiet*) limit='{}';; *) limit='{"maxCount": 1}';; esac
    curl -sf -X PUT -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' \
      -d "$limit" "http://127.0.0.1:$G1/v1/rooms/archive/retention"
    local before; before=$(deleted)
    echo "== retention / ours-$label"
    taskset -c "$LOADGEN_CPU" $BIN/loadgen --scenario high --target ours "${URLS[@]}" \
      --watch-pid "$WATCH" --server-cpus "$SERVER_CPU" --label "ours-$label" \
      --report "$OUT/retention--ours-$label.json" ${LOADGEN_ARGS:-} || echo "   ours-$label failed"
    echo "   entries deleted by retention during the run: $(( $(deleted) - before ))" | tee -a "$OUT/retention.txt"
  done
  echo "   entries left in the room: $(psql -h 127.0.0.1 -p $PG_PORT -U postgres -d chat -Atc "SELECT count(*) FROM messages WHERE room_id = 'archive'")" | tee -a "$OUT/retention.txt"
  stop "${SERVER_PIDS[@]}"
  unset CHAT_WORKER_RETENTION__SWEEP_MS CHAT_WORKER_RETENTION__GRACE_MS
}

loadgen_target() { case $1 in socketio|socketio-pg) echo socketio;; fastapi|wsfloor|durablefloor) echo json;; nats) echo nats;; *) echo ours;; esac; }

# Every server process's CPU ticks: gateways, workers, NATS, Redis, Postgres.
server_ticks() {
  local postmaster t=0 p; postmaster=$(head -1 "$TMP/pg/postmaster.pid")
  for p in "${SERVER_PIDS[@]}" $NATS_PID $REDIS_PID $postmaster $(pgrep -P $postmaster); do
    t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || echo 0)))
  done
  echo $t
}
# Each kind of server's CPU ticks so far: gateways, workers, NATS, Postgres
# (and its backends), Redis. For the durable floor ($1), its one process
# counts as the gateways, and workers as 0.
each_server_ticks() {
  local postmaster pg=0 gw=0 wk=0 p; postmaster=$(head -1 "$TMP/pg/postmaster.pid")
  ticks() { awk '{print $14 + $15}' /proc/$1/stat 2>/dev/null || echo 0; }
  if [ "${1:-}" = durablefloor ]; then
    gw=$(ticks "${SERVER_PIDS[0]}")
  else
    for p in "${SERVER_PIDS[1]}" "${SERVER_PIDS[2]}"; do gw=$((gw + $(ticks $p))); done
    for p in "${WORKER_PIDS[@]}"; do wk=$((wk + $(ticks $p))); done
  fi
  for p in $postmaster $(pgrep -P $postmaster); do pg=$((pg + $(ticks $p))); done
  echo "$gw $wk $(ticks $NATS_PID) $pg $(ticks $REDIS_PID)"
}
nats_varz() { curl -s "http://127.0.0.1:$NATS_MON/varz"; }
# Postgres's committed transactions and WAL so far, as JSON.
pg_wal() {
  psql -h 127.0.0.1 -p $PG_PORT -U postgres -Atc "SELECT json_build_object('xacts', (SELECT sum(xact_commit) FROM pg_stat_database),
    'records', wal_records, 'fpi', wal_fpi, 'bytes', wal_bytes) FROM pg_stat_wal"
}
stored_count() { psql -h 127.0.0.1 -p $PG_PORT -U postgres -d chat -Atc "SELECT count(*) FROM messages"; }

# `scaling`: the ingest load at SCALING_RATE (2,000 sends/s) with 1, 2 and
# 4 workers (SCALING_WORKERS): stored sends/s, all servers' CPU per stored
# send, and how often a Postgres backend waited for a lock (pg_locks
# sampled every 100 ms). A two-core box cannot show more throughput; it
# shows whether the work per send and the contention grow with workers.
run_scaling() {
  for w in ${SCALING_WORKERS:-1 2 4}; do
    WORKERS=$w start_ours
    echo "== scaling / ours: $w workers"
    local t1 s1 waits=0 samples=0
    t1=$(server_ticks); s1=$(stored_count)
    taskset -c "$LOADGEN_CPU" $BIN/loadgen --scenario ingest --rate "${SCALING_RATE:-2000}" "${URLS[@]}" \
      --watch-pid "$WATCH" --server-cpus "$SERVER_CPU" --label "ours-$w" --report "$OUT/scaling--$w.json" >"$TMP/scaling-$w.log" 2>&1 &
    local lg=$!
    while kill -0 $lg 2>/dev/null; do
      local n; n=$(psql -h 127.0.0.1 -p $PG_PORT -U postgres -d chat -Atc "SELECT count(*) FROM pg_locks WHERE NOT granted" 2>/dev/null || echo 0)
      samples=$((samples + 1)); [ "${n:-0}" -gt 0 ] && waits=$((waits + 1))
      sleep 0.1
    done
    sleep 2
    local t2 s2; t2=$(server_ticks); s2=$(stored_count)
    grep "^ours" "$TMP/scaling-$w.log" | tail -1
    python3 - "$w" "$t1" "$t2" "$s1" "$s2" "$waits" "$samples" "$(getconf CLK_TCK)" <<'PY' | tee -a "$OUT/scaling.txt"
import sys
w, t1, t2, s1, s2, waits, samples, hz = map(float, sys.argv[1:])
stored = max(s2 - s1, 1)
print(f"scaling: {w:.0f} workers: {stored:.0f} sends stored, all servers {1e6 * (t2 - t1) / hz / stored:.0f} µs CPU per stored send, "
      f"lock waits in {waits:.0f} of {samples:.0f} samples of pg_locks")
PY
    stop "${SERVER_PIDS[@]}"
  done
}

# `takeover`: two workers under 500 sends/s; TAKEOVERS times (20) SIGKILL
# the one owning partitions and time until each of them has a new pinned
# owner (`takeover`), then start a worker in its place and let the
# partitions spread again. Prints p50 and max.
run_takeover() {
  WORKERS=2 start_ours
  echo "== takeover / ours: ${TAKEOVERS:-20} SIGKILLs of a partition owner"
  taskset -c "$LOADGEN_CPU" $BIN/loadgen --scenario ingest --rate 500 --duration 100000 "${URLS[@]}" \
    --watch-pid "$WATCH" --server-cpus "$SERVER_CPU" --label ours-takeover >"$TMP/takeover-load.log" 2>&1 &
  local lg=$! times=() i k
  sleep 20
  for i in $(seq "${TAKEOVERS:-20}"); do
    local victim="" owned=""
    for k in "${!WORKER_PORTS[@]}"; do
      owned=$(curl -s "http://127.0.0.1:${WORKER_PORTS[$k]}/metrics" \
        | awk -F'"' '/^chat_worker_partition_owned\{/ && $NF ~ / 1$/ {printf "%s%s", sep, $2; sep=","}')
      if [ -n "$owned" ] && kill -0 "${WORKER_PIDS[$k]}" 2>/dev/null; then victim=$k; break; fi
    done
    [ -n "$victim" ] || { echo "   no worker owns a partition"; sleep 5; continue; }
    local ms; ms=$($BIN/takeover --nats "nats://127.0.0.1:$NATS_PORT" --kill "${WORKER_PIDS[$victim]}" --partitions "$owned") \
      && times+=("$ms") && echo "   kill $i: partitions $owned owned again after $ms ms"
    unset "WORKER_PORTS[$victim]" "WORKER_PIDS[$victim]"
    start_worker; SERVER_PIDS+=("$LAST")
    sleep 15
  done
  kill $lg 2>/dev/null || true
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {if (NR) printf "takeover: %d kills, p50 %d ms, max %d ms\n", NR, a[int((NR + 1) / 2)], a[NR]}' | tee "$OUT/takeover.txt"
  stop "${SERVER_PIDS[@]}"
}

run_one() { # scenario target label [extra loadgen args...]
  local scenario=$1 target=$2 label=$3; shift 3
  "start_${target//-/_}"
  echo "== $scenario / $label"
  local perf=
  if [ "${PERF:-0}" = 1 ] && [ "$target" = ours ]; then
    perf record -q -F 997 -g -C "$SERVER_CPU" -o "$OUT/$scenario--$label.perf.data" 2>/dev/null & perf=$!
  fi
  local each1= varz1= wal1=; case $target in ours|durablefloor) each1=$(each_server_ticks "$target"); varz1=$(nats_varz); wal1=$(pg_wal);; esac
  taskset -c "$LOADGEN_CPU" $BIN/loadgen --scenario "$scenario" --target "$(loadgen_target "$target")" "${URLS[@]}" \
    --watch-pid "$WATCH" --server-cpus "$SERVER_CPU" --label "$label" \
    --report "$OUT/$scenario--$label.json" --chart "$OUT/$scenario--$label.svg" ${LOADGEN_ARGS:-} "$@" \
    || echo "   $label failed on $scenario (see $TMP logs)"
  if [ -n "$each1" ]; then
    # Over the whole run (connecting included): what each kind of server spent.
    python3 - "$target" "$(getconf CLK_TCK)" $each1 $(each_server_ticks "$target") <<'PY' | tee "$OUT/$scenario--$label.cpu-each.txt"
import sys
target = sys.argv[1]
hz, *t = map(float, sys.argv[2:])
names = ("gateways", "workers", "NATS", "Postgres", "Redis")
if target == "durablefloor":
    names = ("durablefloor", "-", "NATS", "Postgres", "-")
print("   CPU s over the run: " + ", ".join(f"{n} {(t[i + 5] - t[i]) / hz:.2f}" for i, n in enumerate(names) if n != "-"))
PY
    # Over the whole run (connecting included), per send of the run (rate x
    # (warm-up + duration), from the report): what NATS carried, and what
    # Postgres committed and logged (the WAL every commit writes and syncs
    # before it answers).
    python3 - "$OUT/$scenario--$label.json" "$varz1" "$(nats_varz)" "$wal1" "$(pg_wal)" <<'PY' | tee -a "$OUT/$scenario--$label.cpu-each.txt"
import json, sys
params = json.load(open(sys.argv[1]))["params"]
sends = params["rate"] * (params["warmup"] + params["duration"])
varz0, varz1, wal0, wal1 = (json.loads(v) for v in sys.argv[2:6])
n = {k: varz1[k] - varz0[k] for k in ("in_msgs", "out_msgs", "in_bytes", "out_bytes")}
w = {k: float(wal1[k]) - float(wal0[k]) for k in wal0}
print(f"   NATS over the run: {n['in_msgs']:,} msgs in, {n['out_msgs']:,} out; per send {n['in_msgs'] / sends:.2f} in,"
      f" {n['out_msgs'] / sends:.2f} out, {(n['in_bytes'] + n['out_bytes']) / sends:,.0f} bytes")
print(f"   Postgres over the run: {w['xacts']:,.0f} transactions (reads included), {w['bytes'] / 1e6:,.1f} MB of WAL;"
      f" per send {w['records'] / sends:.1f} WAL records, {w['bytes'] / sends:,.0f} bytes, {w['fpi'] / sends:.3f} full-page images")
PY
  fi
  if [ "$target" = ours ]; then
    # Where the time went, by stage (the servers' stage histograms).
    local urls=() port
    for port in $G1 $G2 "${WORKER_PORTS[@]}"; do urls+=("http://127.0.0.1:$port/metrics"); done
    python3 bench/stages.py "${urls[@]}" | tee "$OUT/$scenario--$label.stages.md" || true
  fi
  if [ -n "$perf" ]; then
    kill -INT "$perf"; wait "$perf" 2>/dev/null || true
    perf script -i "$OUT/$scenario--$label.perf.data" 2>/dev/null | inferno-collapse-perf --all >"$OUT/$scenario--$label.folded"
    inferno-flamegraph --minwidth 0.5 --title "$scenario / $label: CPU $SERVER_CPU (all servers)" <"$OUT/$scenario--$label.folded" >"$OUT/$scenario--$label.flame.svg"
    # Share of the server CPU's samples by process (pid 0 is idle); the
    # servers still run, so ps names them.
    ps -eo pid=,args= | awk '{print $1, $2}' >"$TMP/names"
    perf script -i "$OUT/$scenario--$label.perf.data" -F pid,tid 2>/dev/null | awk '
      NR == FNR { name[$1] = $2; next }
      { split($1, id, "/"); n[id[1]]++; t++ }
      END { for (p in n) printf "%5.1f%%  %s (%s)\n", 100 * n[p] / t, p == 0 ? "idle" : (p in name ? name[p] : "?"), p }' \
      "$TMP/names" - | sort -rn | tee "$OUT/$scenario--$label.cpu.txt"
  fi
  stop "${SERVER_PIDS[@]}"
  if [ "$target" = durablefloor ]; then
    # The floor prints its stage table as it stops.
    sed -n '/^| stage/,$p' "$TMP/durablefloor.log" | tee "$OUT/$scenario--$label.stages.md"
  fi
}

targets_for() {
  case $1 in
    # Those that store sends (the others persist nothing); the floors:
    # durablefloor, and pgbench below.
    ingest) for t in $TARGETS; do case $t in ours|durablefloor|socketio-pg) echo "$t";; esac; done;;
    typing) echo ours;;                       # the peers have no typing signal
    connections) echo "$TARGETS" | sed 's/ nats//; s/^nats //';;
    *) echo "$TARGETS";;
  esac
}

for scenario in "${SCENARIOS[@]}"; do
  if [ "$scenario" = connections-many ]; then
    run_connections_many
    continue
  fi
  if [ "$scenario" = idle-rooms ]; then
    run_idle_rooms
    continue
  fi
  if [ "$scenario" = control-backlog ]; then
    run_control_backlog
    continue
  fi
  if [ "$scenario" = history ]; then
    run_history
    continue
  fi
  if [ "$scenario" = scaling ] || [ "$scenario" = takeover ] || [ "$scenario" = presence ] || [ "$scenario" = feed ] || [ "$scenario" = retention ]; then
    "run_$scenario"
    continue
  fi
  for target in $(targets_for "$scenario"); do
    run_one "$scenario" "$target" "$target"
  done
  # The pgbench floors write ours' tables: they exist once ours has run.
  if [ "$scenario" = ingest ] && [[ " $TARGETS " == *" ours "* ]] && command -v pgbench >/dev/null; then
    echo "== ingest / pgbench floor (same schema, one row per transaction, fsync on)"
    cat >"$TMP/insert.sql" <<'SQL'
\set r random(1, 1000)
BEGIN;
UPDATE rooms SET last_seq = last_seq + 1 WHERE id = 'pgb' || :r;
INSERT INTO messages (room_id, seq, id, sender_id, client_msg_id, body, created_at)
  SELECT id, last_seq, gen_random_uuid(), 'bench', gen_random_uuid()::text, repeat('x', 64), now() FROM rooms WHERE id = 'pgb' || :r;
COMMIT;
SQL
    psql -h 127.0.0.1 -p $PG_PORT -U postgres -d chat -qc "INSERT INTO rooms (id) SELECT 'pgb' || g FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING"
    taskset -c "$LOADGEN_CPU" pgbench -h 127.0.0.1 -p $PG_PORT -U postgres -n -c 8 -j 1 -T 10 -f "$TMP/insert.sql" chat 2>&1 \
      | tee "$OUT/ingest--pgbench.txt" | grep -E "^tps" || true
    echo "== ingest / pgbench batched floor (same schema, $PGB_BATCH rows of one room per transaction, fsync on): rows/s = tps x $PGB_BATCH"
    cat >"$TMP/insert-batch.sql" <<SQL
\\set r random(1, 1000)
BEGIN;
UPDATE rooms SET last_seq = last_seq + $PGB_BATCH WHERE id = 'pgb' || :r;
INSERT INTO messages (room_id, seq, id, sender_id, client_msg_id, body, created_at)
  SELECT id, last_seq - $PGB_BATCH + g, gen_random_uuid(), 'bench', gen_random_uuid()::text, repeat('x', 64), now()
  FROM rooms, generate_series(1, $PGB_BATCH) g WHERE id = 'pgb' || :r;
COMMIT;
SQL
    { echo "rows per transaction: $PGB_BATCH"
      taskset -c "$LOADGEN_CPU" pgbench -h 127.0.0.1 -p $PG_PORT -U postgres -n -c 8 -j 1 -T 10 -f "$TMP/insert-batch.sql" chat 2>&1; } \
      | tee "$OUT/ingest--pgbench-batched.txt" | grep -E "^tps" || true
  fi
  if [ "${SWEEP:-0}" = 1 ]; then
    for target in $(targets_for "$scenario"); do
      for factor in 0.5 2 4 8; do
        rate=$(python3 -c "import sys; sys.path.insert(0,'bench'); from table import preset_rate; print(preset_rate('$scenario') * $factor)")
        run_one "$scenario" "$target" "$target@x$factor" --rate "$rate"
      done
    done
  fi
done

python3 bench/table.py "$OUT" --p99-bound "$P99_BOUND_MS" | tee "$OUT/table.md"
echo "reports, charts and table in $OUT"
