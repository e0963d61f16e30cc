#!/usr/bin/env bash
# Fuzzes the decoders of untrusted input with libFuzzer (fuzz/): client
# frames as the gateway reads them (JSON, protobuf) and ingest envelopes as
# the worker reads them. Each target runs for FUZZ_SECONDS (60) from the
# seeds in fuzz/seeds (real frames, written by the protocol crate's
# `fuzz_seeds` example) plus what earlier runs found (fuzz/corpus). A crash
# leaves its input in fuzz/artifacts/<target>/ and fails the script: make
# it a regression test (shared/protocol/tests/codec_props.rs), then fix it.
#
#   bash scripts/fuzz.sh                          # every target, 60 s each
#   FUZZ_SECONDS=300 bash scripts/fuzz.sh envelope
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(client_frame_json client_frame_proto envelope)
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
# cargo-fuzz passes nightly-only flags (-Zsanitizer, coverage passes); this
# lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
cargo run --quiet -p chat-protocol --example fuzz_seeds -- fuzz/seeds
failed=()
for target in "${TARGETS[@]}"; do
  mkdir -p "fuzz/corpus/$target" fuzz/artifacts
  log="fuzz/artifacts/$target.log"
  echo "== $target: ${FUZZ_SECONDS}s (log: $log)"
  if cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
      -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 >"$log" 2>&1; then
    # libFuzzer's last status line: executions, coverage, corpus.
    grep -E '^#[0-9]+' "$log" | tail -1 || true
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$log" || true
  else
    failed+=("$target")
    grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -20 || tail -20 "$log"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
echo "no crash in ${TARGETS[*]} (${FUZZ_SECONDS}s each)"
