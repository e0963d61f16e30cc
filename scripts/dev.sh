#!/usr/bin/env bash
# Starts the whole system locally: Postgres, Redis and NATS (JetStream), the
# schema, one worker and two gateways (ports 8080 and 8081), each serving
# the web chat page (clients/web) at /. Uses servers
# already listening on the standard ports, else starts private ones in .dev/.
# Ctrl-C stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --workspace --bins
command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
(cd clients/ts && npm ci --no-audit --no-fund --loglevel=error && npm run build)
(cd clients/web && npm ci --no-audit --no-fund --loglevel=error && npm run build)
BIN=target/debug
STATE=.dev
mkdir -p "$STATE"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 100); do listening "$1" && return 0; sleep 0.2; done; echo "nothing on port $1" >&2; exit 1; }

PG_PORT=5432 REDIS_PORT=6379 NATS_PORT=4222
if ! listening $PG_PORT; then
  as_pg=(); [ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
  if [ ! -d "$STATE/pg" ]; then
    mkdir -p "$STATE/pg"; [ "$(id -u)" = 0 ] && chown postgres "$STATE/pg" && chmod 755 "$STATE"
    "${as_pg[@]}" initdb -U postgres --auth=trust -D "$STATE/pg" >/dev/null
  fi
  "${as_pg[@]}" postgres -D "$STATE/pg" -p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 >"$STATE/postgres.log" 2>&1 &
  pids+=($!)
fi
if ! listening $REDIS_PORT; then
  redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no >"$STATE/redis.log" 2>&1 &
  pids+=($!)
fi
# The workers need consumer priority groups (nats-server >= 2.11). An older
# server on 4222 (Debian's 2.9) is left alone: ours runs on 4223 then.
nats_version() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; head -n 1 <&3" 2>/dev/null | grep -o '"version":"[0-9.]*"' | grep -o '[0-9][0-9.]*'; }
if listening $NATS_PORT; then
  v=$(nats_version $NATS_PORT)
  if [ "$(printf '%s\n2.11.0\n' "${v:-0}" | sort -V | head -1)" != 2.11.0 ]; then
    echo "nats-server ${v:-?} on $NATS_PORT is older than 2.11: starting ours on 4223"
    NATS_PORT=4223
  fi
fi
export CHAT_GATEWAY_NATS_URL=nats://127.0.0.1:$NATS_PORT CHAT_WORKER_NATS_URL=nats://127.0.0.1:$NATS_PORT
if ! listening $NATS_PORT; then
  "$NATS_SERVER_BIN" -c deploy/nats.conf -js -a 127.0.0.1 -p $NATS_PORT -sd "$STATE/jetstream" >"$STATE/nats.log" 2>&1 &
  pids+=($!)
fi
wait_port $PG_PORT; wait_port $REDIS_PORT; wait_port $NATS_PORT
sleep 0.5
if ! psql -h 127.0.0.1 -p $PG_PORT -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='chat'" | grep -q 1; then
  psql -h 127.0.0.1 -p $PG_PORT -U postgres -c "CREATE DATABASE chat" >/dev/null
fi

export CHAT_GATEWAY_POSTGRES__URL=postgres://postgres@127.0.0.1:$PG_PORT/chat
export CHAT_WORKER_POSTGRES__URL=$CHAT_GATEWAY_POSTGRES__URL
export CHAT_GATEWAY_JWT__HS256_SECRET=${CHAT_GATEWAY_JWT__HS256_SECRET:-dev-secret-change-me-dev-secret-change-me}
export CHAT_GATEWAY_ADMIN_TOKEN=${CHAT_GATEWAY_ADMIN_TOKEN:-dev-admin-token}
export CHAT_GATEWAY_ALLOWED_ORIGINS='["http://localhost:8000"]'
export CHAT_GATEWAY_WEB__ENABLED=true CHAT_GATEWAY_WEB__DIR=clients/web/dist

$BIN/worker migrate
$BIN/worker >"$STATE/worker.log" 2>&1 & pids+=($!)
CHAT_GATEWAY_LISTEN=127.0.0.1:8080 CHAT_GATEWAY_GATEWAY_ID=gw-a $BIN/gateway >"$STATE/gateway-a.log" 2>&1 & pids+=($!)
CHAT_GATEWAY_LISTEN=127.0.0.1:8081 CHAT_GATEWAY_GATEWAY_ID=gw-b $BIN/gateway >"$STATE/gateway-b.log" 2>&1 & pids+=($!)
wait_port 8080; wait_port 8081

curl -sf -X POST http://127.0.0.1:8080/v1/rooms \
  -H "Authorization: Bearer $CHAT_GATEWAY_ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d '{"room":"lobby","members":["alice","bob"]}' >/dev/null
cat <<MSG

Chat is running (logs in $STATE/).
  Web chat:        http://127.0.0.1:8080/   http://127.0.0.1:8081/  (sign in with a token below)
  WebSocket URLs:  ws://127.0.0.1:8080/v1/ws   ws://127.0.0.1:8081/v1/ws
  Room "lobby" has members alice and bob.
  alice's token:   $($BIN/gateway dev-token alice)
  bob's token:     $($BIN/gateway dev-token bob)
Chat from two terminals:
  $BIN/chat --url ws://127.0.0.1:8080/v1/ws --room lobby --token <alice's token>
  $BIN/chat --url ws://127.0.0.1:8081/v1/ws --room lobby --token <bob's token> --proto
Ctrl-C stops everything started here.
MSG
wait
