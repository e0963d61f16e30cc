#!/usr/bin/env bash
# Checks that the client library links no server backend: a chat client (the
# CLI, the load generator, an application embedding it) needs none of Redis,
# Postgres, OpenTelemetry or axum. Prints each such crate in chat-client's
# normal dependency tree and fails if there is any.
# Run by test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
# Whole crate families: deadpool-postgres, opentelemetry_sdk, axum-core...
forbidden='^(redis|deadpool|tokio-postgres|opentelemetry|tracing-opentelemetry|axum)([-_].*)?$'
offending=$(cargo tree -p chat-client -e normal --prefix none -f '{p}' \
  | awk '{print $1, $2}' | sort -u | awk -v re="$forbidden" '$1 ~ re')
if [ -n "$offending" ]; then
  echo "chat-client depends on server backends:"
  echo "$offending" | sed 's/^/  /'
  echo "see why with: cargo tree -p chat-client -e normal -i <crate>"
  exit 1
fi
echo "chat-client depends on no server backend"
