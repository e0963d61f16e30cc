#!/usr/bin/env bash
# The randomized fault run: FAULT_ROUNDS faults (default 30) chosen and
# timed from FAULT_SEED (random unless given; printed first, so that a
# failing run can be replayed with the same seed), one after another under
# steady traffic, judged by the lost/duplicate checker at the end.
#   bash scripts/faults.sh                 # a new seed
#   FAULT_SEED=42 bash scripts/faults.sh   # replay
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
features=(--features chat-gateway/failpoints,chat-worker/failpoints)
cargo build --workspace --bins "${features[@]}"
export FAULT_TABLE=$(mktemp -u)
status=0
cargo test --workspace "${features[@]}" --test e2e faults::random_faults \
  -- --ignored --nocapture || status=$?
cat "$FAULT_TABLE" 2>/dev/null || true
rm -f "$FAULT_TABLE"
exit $status
