#!/usr/bin/env bash
# Builds the Debian package of nim-signaling-server with cargo-deb:
#
#   scripts/build-deb.sh [cargo deb options...]
#
# runs `cargo deb -p nim-signaling-server-bin` (a release build, then the
# package from [package.metadata.deb] in crates/server-bin/Cargo.toml) and
# prints the .deb's path last. Options go to cargo deb, e.g.
#
#   scripts/build-deb.sh --output /tmp/debs             # where the .deb goes
#   scripts/build-deb.sh --no-build --profile dev       # package target/debug's binary
#
# Needs cargo-deb (`cargo install cargo-deb`) and dpkg-dev (dpkg-shlibdeps,
# for the dependencies). See docs/PACKAGING.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
if ! cargo deb --version >/dev/null 2>&1; then
  echo "build-deb.sh: cargo-deb is not installed (cargo install cargo-deb)" >&2
  exit 1
fi
cd "$root"
cargo deb -p nim-signaling-server-bin "$@"
