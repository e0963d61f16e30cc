#!/usr/bin/env bash
# Runs every test: the dependency checks, unit tests and the end-to-end
# suite, which starts its own NATS, Postgres and Redis on free ports (never the
# machine's own instances).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
# Unused dependencies cost build time and pull servers' crates into clients.
# cargo-machete finds them from the sources alone, in seconds, so it runs
# first; a false positive (a crate used only by generated code or a macro) is
# listed under [package.metadata.cargo-machete] in its Cargo.toml, with why.
MACHETE_VERSION=0.9.2
if ! cargo machete --version 2>/dev/null | grep -qx "$MACHETE_VERSION"; then
  echo "installing cargo-machete $MACHETE_VERSION"
  cargo install --locked --quiet cargo-machete --version "$MACHETE_VERSION"
fi
cargo machete
# The client library is embedded in users' apps: it must not pull a server's
# backends (Postgres, Redis, OpenTelemetry, axum).
bash scripts/check-client-deps.sh
# Each crate's modules form a graph without cycles (state and contexts live
# in modules of their own that handlers depend on).
python3 scripts/check-module-cycles.py
# docs/architecture.md's module map lists every module file, and only those.
python3 scripts/check-module-map.py
# Code that reads in pieces: no file over 400 lines, no function over 80.
python3 scripts/check-sizes.py
# One format, and no lint left standing (workspace lints in Cargo.toml).
cargo fmt --all -- --check
# Test builds compile in failpoints (fault injection driven by $FAILPOINTS);
# build and test must agree on features or cargo rebuilds the binaries.
features=(--features chat-gateway/failpoints,chat-worker/failpoints)
cargo build --workspace --bins "${features[@]}"
cargo clippy --workspace --all-targets "${features[@]}" -- -D warnings
# The Helm chart, kustomize overlays and Dockerfile, checked offline (the
# property check asks the binaries just built which variables they read).
bash scripts/check-deploy.sh
# The TypeScript SDK, built for its tests (tests/tests/e2e/ts_sdk.rs runs
# them against a real cluster).
command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
(cd clients/ts && npm ci --no-audit --no-fund --loglevel=error && npm run build)
# The web page, built for the gateways to serve, and the browser its tests
# drive (tests/tests/e2e/web_page.rs): Debian's Chromium, as Playwright's own
# download cannot work here, and an emoji font so screenshots show reactions.
if ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -qi "color emoji"; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-noto-color-emoji >/dev/null
fi
(cd clients/web && npm ci --no-audit --no-fund --loglevel=error && npm run build)
# The Python example's virtualenv (tests/tests/e2e/python_client.rs).
python3 -c "import venv, ensurepip" 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
[ -x .tools/py/bin/python ] || python3 -m venv .tools/py
.tools/py/bin/pip install -q --disable-pip-version-check -r clients/python/requirements.txt
# The alert rules, their promtool unit tests and the chart's PrometheusRule.
bash scripts/check-alerts.sh
# Each e2e test runs a whole cluster; three at a time suit a 2-core machine.
log=$(mktemp)
# The fault suite writes its table here, a row per fault; printed at the end.
export FAULT_TABLE=$(mktemp -u)
status=0
cargo test --workspace --all-targets "${features[@]}" -- --test-threads=3 2>&1 | tee "$log" || status=$?
echo
echo "Fault suite (tests/tests/e2e/faults.rs):"
cat "$FAULT_TABLE" 2>/dev/null || echo "(no fault test ran)"
rm -f "$FAULT_TABLE"
passed=$(grep -oE '^test result: .* ([0-9]+) passed' "$log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log"
echo "$passed passed, $failed failed"
exit $status
