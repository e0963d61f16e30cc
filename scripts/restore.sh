#!/usr/bin/env bash
# Restores a backup made by scripts/backup.sh into a new, empty database:
# `scripts/restore.sh <file> <postgres-url> [<redis-url>]`.
# Refuses a database that holds any table (exit 3): a restore never mixes
# with data already there. With a Redis URL, deletes the system's keys
# (chat:*), whose caches would show what the backup does not hold. Start
# the workers after it: they create JetStream's streams empty and find the
# migrations applied (newer ones run as usual).
# The lost system may have handed out seqs after the backup, which clients
# hold: each room's counter moves on by $CHAT_RESTORE_SEQ_GAP (10^9) and
# the skipped seqs are recorded (restore_gaps), so no seq ever names two
# messages; replays step over the gap.
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 <file> <postgres-url> [<redis-url>]" >&2
  exit 64
fi
file=$1 url=$2 redis=${3:-}
gap=${CHAT_RESTORE_SEQ_GAP:-1000000000}
[[ $gap =~ ^[1-9][0-9]*$ ]] || { echo "restore: CHAT_RESTORE_SEQ_GAP must be a positive integer" >&2; exit 64; }
for d in /usr/lib/postgresql/*/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
[ -r "$file" ] || { echo "restore: cannot read $file" >&2; exit 1; }
tables=$(psql "$url" -XAtc "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
if [ "$tables" != 0 ]; then
  echo "restore: refused: the database is not empty ($tables tables); restore into a new, empty database" >&2
  exit 3
fi
pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname="$url" "$file"
psql "$url" -X -q -v ON_ERROR_STOP=1 -1 -v gap="$gap" <<'SQL'
INSERT INTO restore_gaps (room_id, after_seq, to_seq)
SELECT id, last_seq, last_seq + :gap FROM rooms;
UPDATE rooms SET last_seq = last_seq + :gap;
SQL
psql "$url" -XAtc "ANALYZE" >/dev/null
if [ -n "$redis" ]; then
  redis-cli -u "$redis" --scan --pattern 'chat:*' | xargs -r -n 500 redis-cli -u "$redis" UNLINK >/dev/null
fi
counts=$(psql "$url" -XAtc "SELECT (SELECT count(*) FROM rooms) || ' rooms, ' || (SELECT count(*) FROM messages) || ' messages'")
echo "restore: $file restored: $counts"
