#!/usr/bin/env bash
# Postgres's own CPU per stored send, as the worker's function spends it
# (`persist_entries` from V10 on, with chat messages only, and from V17
# `persist_messages_at_once` for batches of 32 or more; before V10
# `persist_messages`).
#
#   bash bench/persist-cost.sh            every migration, i.e. the committed function
#   bash bench/persist-cost.sh V5 V6      each variant: migrations up to and including it
#   BODIES=words bash bench/persist-cost.sh V8 V17   with bodies of English text
#
# A private cluster with fsync off (this counts CPU, not disk waits) gets the
# schema, ROOMS rooms of two members, then CALLS batches of BATCH sends, each
# batch committed on its own as the worker does. Two shapes: every send of a
# batch in a different room (`ingest` under load) and all of them in one room.
# The backend's CPU time comes from its /proc/self/schedstat, measured around
# the batches and around the same loop that only builds the arguments; the
# difference is what storing costs. Prints µs per send.
#
# BODIES picks what the messages say, which is what the search index (V9)
# pays for: `x` (64 x's: one term), `loadgen` (the loadgen's bodies,
# `sender:n:intended_us:` and x's: a number no message had before, and
# three terms that recur), `words` (8 words in a row from a random place in
# the GPL's text, a natural spread of common and rare words).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

BATCH=${BATCH:-256}
BODIES=${BODIES:-x}
case $BODIES in x|loadgen|words) ;; *) echo "BODIES must be x, loadgen or words, not '$BODIES'" >&2; exit 2;; esac
CALLS=${CALLS:-40}
ROOMS=${ROOMS:-100000}
CPU=${CPU:-0}
VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=("$(ls shared/store/migrations | sort -V | tail -1 | cut -d_ -f1)")

TMP=$(mktemp -d /tmp/chat-persist-XXXX)
chmod 755 "$TMP"
as_pg=(); [ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { "${as_pg[@]}" pg_ctl -D "$TMP/pg" stop -m fast >/dev/null 2>&1 || true; rm -rf "$TMP"; }
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chown postgres "$TMP"
"${as_pg[@]}" initdb -U postgres --auth=trust -D "$TMP/pg" >/dev/null
"${as_pg[@]}" taskset -c "$CPU" pg_ctl -D "$TMP/pg" -l "$TMP/pg.log" -w -o \
  "-p $PORT -k $TMP -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c shared_buffers=256MB" start >/dev/null
psql_() { psql -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

# One loop of CALLS batches; $1 = 1 stores them, 0 only builds the arguments.
# $4 is the call that stores them. Prints the backend's CPU ns over the loop
# and the WAL bytes it wrote.
loop_sql() {
  local store=$1 shape=$2 db=$3 persist=$4
  cat <<SQL
SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint AS t0,
       pg_current_wal_insert_lsn() AS w0 \gset
DO \$\$
DECLARE
  k INT;
  rooms TEXT[]; senders TEXT[]; cmids TEXT[]; bodies TEXT[]; ids UUID[]; stamps BIGINT[];
  n INT;
BEGIN
  FOR k IN 1..$CALLS LOOP
    SELECT array_agg(CASE WHEN '$shape' = 'one' THEN 'r1' ELSE 'r' || ((k * $BATCH + g) % $ROOMS + 1) END ORDER BY g),
           array_agg(CASE WHEN '$shape' = 'one' THEN 'u1a' ELSE 'u' || ((k * $BATCH + g) % $ROOMS + 1) || 'a' END ORDER BY g),
           array_agg('$db-$shape-' || k || '-' || g ORDER BY g),
           array_agg(bench_body('$BODIES', k, g) ORDER BY g),
           array_agg(gen_random_uuid() ORDER BY g),
           array_agg((extract(epoch FROM now()) * 1000)::BIGINT ORDER BY g)
      INTO rooms, senders, cmids, bodies, ids, stamps
      FROM generate_series(1, $BATCH) g;
    IF $store = 1 THEN
      SELECT count(*) INTO n FROM $persist p WHERE p.fresh;
      IF n <> $BATCH THEN RAISE EXCEPTION 'stored % of %', n, $BATCH; END IF;
    END IF;
    COMMIT;
  END LOOP;
END
\$\$;
SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint - :t0,
       pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'w0')::bigint;
SQL
}

echo "Postgres CPU per stored send (batches of $BATCH, $CALLS per figure, bodies: $BODIES, fsync off, on CPU $CPU)"
printf '%-8s %-24s %-24s %-24s\n' variant "µs per send, all rooms" "µs per send, one room" "WAL bytes per send, all/one"
for variant in "${VARIANTS[@]}"; do
  db=db_$(echo "$variant" | tr -cd "[:alnum:]" | tr "[:upper:]" "[:lower:]")
  psql_ -c "CREATE DATABASE $db"
  for f in $(ls shared/store/migrations | sort -V); do
    psql_ -d "$db" -f "shared/store/migrations/$f"
    [ "${f%%__*}" = "$variant" ] && break
  done
  # The function this variant's workers call.
  persist="persist_messages(rooms, senders, cmids, bodies, ids, stamps)"
  if [ "$(psql_ -d "$db" -c "SELECT count(*) FROM pg_proc WHERE proname = 'persist_entries'")" = 1 ]; then
    persist="persist_entries(rooms, senders, cmids, bodies, ids, stamps, array_fill(''::text, ARRAY[$BATCH]), array_fill(NULL::int8, ARRAY[$BATCH]))"
  fi
  # From V17 the store sends a batch of AT_ONCE_FROM (32) or more here.
  if [ "$BATCH" -ge 32 ] && [ "$(psql_ -d "$db" -c "SELECT count(*) FROM pg_proc WHERE proname = 'persist_messages_at_once'")" = 1 ]; then
    persist="persist_messages_at_once(rooms, senders, cmids, bodies, ids, stamps)"
  fi
  psql_ -d "$db" -c "CREATE TABLE bench_corpus (i SERIAL PRIMARY KEY, w TEXT)"
  tr -cs 'A-Za-z' '\n' < /usr/share/common-licenses/GPL-3 | grep -v '^$' |
    psql_ -d "$db" -c "COPY bench_corpus (w) FROM STDIN"
  psql_ -d "$db" -c "CREATE FUNCTION bench_body(shape TEXT, k INT, g INT) RETURNS TEXT LANGUAGE sql AS \$\$
    SELECT CASE shape
      WHEN 'x' THEN repeat('x', 64)
      WHEN 'loadgen' THEN rpad(g || ':' || k || ':' || (extract(epoch FROM clock_timestamp()) * 1e6)::BIGINT || ':', 64, 'x')
      WHEN 'words' THEN (SELECT string_agg(w, ' ' ORDER BY i) FROM bench_corpus,
             (SELECT 1 + floor(random() * (SELECT count(*) - 8 FROM bench_corpus))::INT AS o) o
             WHERE i >= o.o AND i < o.o + 8)
    END \$\$"
  psql_ -d "$db" -c "INSERT INTO rooms (id) SELECT 'r' || g FROM generate_series(1, $ROOMS) g;
    INSERT INTO members (room_id, user_id) SELECT 'r' || g, 'u' || g || s FROM generate_series(1, $ROOMS) g, unnest(ARRAY['a', 'b']) s;"
  results=()
  wal=""
  for shape in all one; do
    # A warm-up loop first: plans cached, pages in shared buffers.
    loop_sql 1 "$shape" "$db-warm" "$persist" | psql_ -d "$db" >/dev/null
    rounds=""
    for round in 1 2 3; do
      IFS='|' read -r stored written < <(loop_sql 1 "$shape" "$db-$round" "$persist" | psql_ -d "$db" | tail -1)
      IFS='|' read -r built _ < <(loop_sql 0 "$shape" "$db-$round" "$persist" | psql_ -d "$db" | tail -1)
      us=$(python3 -c "print(f'{($stored - $built) / 1000 / ($CALLS * $BATCH):.1f}')")
      rounds="$rounds $us"
    done
    results+=("$rounds")
    wal="$wal/$((written / (CALLS * BATCH)))"
  done
  printf '%-8s %-24s %-24s %-24s\n' "$variant" "${results[0]# }" "${results[1]# }" "${wal#/}"
done
