#!/usr/bin/env bash
# Backs up the chat database: `scripts/backup.sh <postgres-url> <file>`.
# pg_dump reads one consistent snapshot (a single repeatable-read
# transaction) while the system keeps running: every message acked before
# the dump began is in it, each with its seq. The custom format (-Fc) is
# compressed and restored by scripts/restore.sh. Postgres is the only
# thing to back up: Redis holds caches, and JetStream only sends and
# commands not yet acked, which their clients resend (deploy/README.md,
# "Backup and restore").
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 <postgres-url> <file>" >&2
  exit 64
fi
url=$1 file=$2
for d in /usr/lib/postgresql/*/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
if [ -e "$file" ]; then
  echo "backup: $file exists; name a new file" >&2
  exit 1
fi
pg_dump --format=custom --no-owner --no-privileges --file="$file.partial" "$url"
mv "$file.partial" "$file"
tables=$(pg_restore --list "$file" | grep -c "TABLE DATA" || true)
echo "backup: $file ($(du -h "$file" | cut -f1), $tables tables of data)"
