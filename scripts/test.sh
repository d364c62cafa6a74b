#!/usr/bin/env bash
# The README's test command: every test of the workspace.
#
#   scripts/test.sh [cargo test arguments]
#
# The suites need more than the Rust toolchain and a C compiler: redis-server
# and redis-cli (each cluster test binary starts its own Redis on a free
# loopback port, cluster_sharded a Redis Cluster of six nodes), cmake
# and pkg-config (the packaging tests), curl (the operator walkthrough),
# a C++ compiler, Python 3 with venv, and Node with npm (the bindings).
# This script checks for each first. Run as root on a Debian-like system it
# installs what is missing from the distribution's packages; otherwise it
# names what to install and stops, instead of letting suites fail one by one.
# Then it runs `cargo test` (with --workspace, so every crate's tests run,
# whatever the current directory).
set -euo pipefail
cd "$(dirname "$0")/.."

# "command-to-look-for package" pairs; a command may be a check of its own.
missing=()
want() { # check package
  if ! eval "$1" >/dev/null 2>&1; then missing+=("$2"); fi
}
want "command -v cc" gcc
want "command -v c++" g++
want "command -v make" make
want "command -v pkg-config" pkg-config
want "command -v cmake" cmake
want "command -v curl" curl
want "command -v redis-server" redis-server
# Debian's redis-server pulls redis-tools in; a redis-server from elsewhere
# may come without it.
want "command -v redis-cli" redis-tools
want "command -v python3" python3
want "python3 -c 'import ensurepip, venv'" python3-venv
want "command -v node" nodejs
want "command -v npm" npm

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "scripts/test.sh: the tests need these, which are missing: ${missing[*]}" >&2
    echo "  install them (Debian/Ubuntu: sudo apt-get install ${missing[*]}), or run this as root" >&2
    exit 1
  fi
fi

exec cargo test --workspace "$@"
