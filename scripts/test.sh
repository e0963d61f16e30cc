#!/usr/bin/env bash
# Runs every test: unit tests and the end-to-end suite, which starts its own
# NATS, Postgres and Redis on free ports (never the machine's own instances).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --workspace --bins
# Each e2e test runs a whole cluster; three at a time suit a 2-core machine.
cargo test --workspace -- --test-threads=3
