#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time, coverage-guided,
# and fails on any crash (a panic, a failed check, a sanitizer report, a
# leak, a timeout or running out of memory).
#
# The targets' checks live in fuzz/checks/ (a target is one call of its
# check); `cargo test` (tests/fuzz_smoke.rs) runs the same checks on stable
# over the seeds and a fixed set of mutations of them. This script is the
# longer, coverage-guided run under AddressSanitizer.
#
#   scripts/fuzz-smoke.sh                 every target, 20 s each
#   FUZZ_SECONDS=300 scripts/fuzz-smoke.sh frame_decode
#
# Needs a nightly toolchain (rustup toolchain install nightly) and
# cargo-fuzz (cargo install cargo-fuzz). Settings (environment):
#   FUZZ_SECONDS     seconds per target (20)
#   FUZZ_TARGET_DIR  cargo target dir of the fuzz build (fuzz/target)
#
# Each target starts from fuzz/seeds/<target> and grows fuzz/corpus/<target>;
# a crashing input is saved under fuzz/artifacts/<target>/ and its log under
# fuzz/artifacts/logs/. Reproduce one with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/crash-...
# (an input `cargo test` failed on, saved as
# target/fuzz-smoke-failures/<target>-<n>, the same way).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
target_dir="${FUZZ_TARGET_DIR:-fuzz/target}"
case "$seconds" in
  '' | *[!0-9]*) echo "FUZZ_SECONDS must be a whole number of seconds, not '$seconds'" >&2; exit 2 ;;
esac

# What is needed, said up front.
missing=()
if ! command -v rustup >/dev/null 2>&1; then
  missing+=("rustup (to run the nightly toolchain): https://rustup.rs")
elif ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  missing+=("a nightly toolchain: rustup toolchain install nightly")
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  missing+=("cargo-fuzz: cargo install cargo-fuzz")
fi
if ! command -v cc >/dev/null 2>&1 && ! command -v c++ >/dev/null 2>&1; then
  missing+=("a C/C++ compiler for libFuzzer (apt-get install g++)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "fuzz-smoke: missing:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 2
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz-smoke: no fuzz targets found in fuzz/" >&2
  exit 2
fi

echo "fuzz-smoke: building ${#targets[@]} targets (nightly, ASan) in $target_dir"
if ! cargo +nightly fuzz build --target-dir "$target_dir"; then
  echo "fuzz-smoke: build failed" >&2
  exit 1
fi

logs=fuzz/artifacts/logs
mkdir -p "$logs"
failed=()
summary=()
for t in "${targets[@]}"; do
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  log="$logs/$t.log"
  echo "fuzz-smoke: $t for ${seconds}s (log: $log)"
  start=$(date +%s)
  cargo +nightly fuzz run --target-dir "$target_dir" "$t" "$corpus" "${seeds[@]}" -- \
    -max_total_time="$seconds" -dict=fuzz/json.dict -timeout=30 -rss_limit_mb=4096 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  if [ $rc -eq 0 ]; then
    summary+=("$t: ok, ${took}s, ${execs:-?} runs, corpus $(ls "$corpus" | wc -l) inputs")
  else
    failed+=("$t")
    summary+=("$t: CRASH (exit $rc) after ${took}s")
    echo "---- $t: last lines of $log" >&2
    tail -n 60 "$log" >&2
    grep -h -A2 'Failing input\|Test unit written to' "$log" >&2 || true
  fi
done

echo
echo "fuzz-smoke summary:"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-smoke: crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz-smoke: no crash"
