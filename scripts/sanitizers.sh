#!/usr/bin/env bash
# Runs the C ABI under sanitizers:
#
#  (a) the C examples (call_demo, group_call, load briefly, and client_only
#      against a nim-signaling-server on 127.0.0.1) built with
#      AddressSanitizer and UndefinedBehaviorSanitizer (-fsanitize=address,undefined
#      -fno-sanitize-recover=undefined) plus LeakSanitizer, against a debug
#      build of the library;
#  (b) the Rust FFI test binaries (tests/ffi.rs, tests/ffi_hostile.rs) with
#      the whole Rust side built with -Zsanitizer=address (nightly).
#
#   scripts/sanitizers.sh            both
#   scripts/sanitizers.sh c          only (a)
#   scripts/sanitizers.sh rust       only (b)
#
# Builds go to their own target directory, SANITIZERS_TARGET_DIR
# (default target/sanitizers), never to the one `cargo test` uses.
# Needs cc and make for (a), a nightly toolchain for (b)
# (rustup toolchain install nightly). Exits non-zero on any failure or
# sanitizer report.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

what="${1:-all}"
case "$what" in
  all | c | rust) ;;
  *) echo "usage: $0 [all|c|rust]" >&2; exit 2 ;;
esac
dir="${SANITIZERS_TARGET_DIR:-$root/target/sanitizers}"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
logs="$dir/logs"
mkdir -p "$logs"

missing=()
if [ "$what" != rust ]; then
  command -v cc >/dev/null 2>&1 || missing+=("a C compiler (apt-get install gcc)")
  command -v make >/dev/null 2>&1 || missing+=("make (apt-get install make)")
fi
if [ "$what" != c ]; then
  if ! command -v rustup >/dev/null 2>&1 || ! rustup toolchain list | grep -q '^nightly'; then
    missing+=("a nightly toolchain for -Zsanitizer=address (rustup toolchain install nightly)")
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "sanitizers: missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 2
fi

failures=()
fail() {
  failures+=("$1")
  echo "sanitizers: FAILED: $1" >&2
}

# Sanitizer reports that fail a run even when its exit status is 0.
reported() {
  grep -E -m1 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' "$1"
}

# Runs an example; its output goes to $logs/<name>.log.
run_example() {
  local name=$1 want_status=$2 last=$3
  shift 3
  local log="$logs/$name.log"
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    timeout 120 "$@" >"$log" 2>&1
  local status=$?
  if [ "$status" -ne "$want_status" ]; then
    fail "$name exited $status (want $want_status); see $log"
    tail -n 30 "$log" >&2
  elif reported "$log"; then
    fail "$name: sanitizer report in $log"
  elif [ -n "$last" ] && ! grep -qF "$last" "$log"; then
    fail "$name: no line \"$last\" in $log"
  else
    echo "sanitizers: $name ok"
  fi
}

c_examples() {
  local cargo_dir="$dir/c"
  echo "sanitizers: (a) building the library and server (debug) in $cargo_dir"
  if ! CARGO_TARGET_DIR="$cargo_dir" cargo build --lib --bin nim-signaling-server; then
    fail "cargo build"
    return
  fi
  local lib="$cargo_dir/debug" build="$dir/c/examples-san"
  if ! make -C examples-c all LIBDIR="$lib" BUILD="$build" SANITIZE=address,undefined; then
    fail "make SANITIZE=address,undefined"
    return
  fi
  run_example call_demo 0 "call demo: OK" "$build/call_demo"
  run_example group_call 0 "group call: OK" "$build/group_call"
  run_example client_only_usage 64 "" "$build/client_only"
  # The load generator: requests started from library threads.
  run_example load 0 "failures                   0" \
    "$build/load" --pairs 3 --idle 2 --warmup 0.3 --duration 1

  # client_only against the standalone server on a free loopback port.
  local srv_log="$logs/server.log"
  "$cargo_dir/debug/nim-signaling-server" --listen 127.0.0.1:0 >"$srv_log" 2>&1 &
  local srv=$!
  local url=""
  for _ in $(seq 1 100); do
    url=$(sed -n 's/^nim-signaling-server listening on //p' "$srv_log" | head -1)
    [ -n "$url" ] && break
    sleep 0.1
  done
  if [ -z "$url" ]; then
    fail "nim-signaling-server did not start; see $srv_log"
  else
    run_example client_only 0 "" "$build/client_only" "$url" alice "" bob
  fi
  kill "$srv" 2>/dev/null
  wait "$srv" 2>/dev/null
}

rust_ffi() {
  local cargo_dir="$dir/asan"
  local log="$logs/rust-ffi.log"
  echo "sanitizers: (b) tests/ffi.rs and tests/ffi_hostile.rs under -Zsanitizer=address in $cargo_dir"
  # No leak suppressions: the tests keep their callbacks' user data
  # reachable (tests/common/keep.rs), so every leak reported is the
  # library's.
  # --target: the flags apply to the tests and the library, not to build
  # scripts and proc macros.
  RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes" \
    RUSTDOCFLAGS="-Zsanitizer=address" \
    ASAN_OPTIONS="detect_leaks=1" \
    CARGO_TARGET_DIR="$cargo_dir" \
    cargo +nightly test --no-fail-fast --target x86_64-unknown-linux-gnu \
    --test ffi --test ffi_hostile 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ]; then
    fail "cargo +nightly test under ASan exited $status; see $log"
  elif reported "$log"; then
    fail "sanitizer report in $log"
  else
    echo "sanitizers: Rust FFI tests ok"
  fi
}

start=$(date +%s)
[ "$what" != rust ] && c_examples
[ "$what" != c ] && rust_ffi
took=$(( $(date +%s) - start ))

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "sanitizers: ${#failures[@]} failure(s) in ${took}s:" >&2
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "sanitizers: all clean in ${took}s (logs in $logs)"
