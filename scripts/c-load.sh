#!/usr/bin/env bash
# What C users get: call setups driven through the C ABI only
# (examples-c/load.c) against nim-signaling-server in another process,
# each pinned to a core of its own (server: core 0, client: core 1), as in
# issue 19.
#
#   scripts/c-load.sh                 build, then runs (a) and (b)
#   scripts/c-load.sh --no-build --only flat --json
#   scripts/c-load.sh --only flat --perf      + a profile of the client
#
# (a) flat out: --pairs pairs (200), each back to back (--rate 0);
# (b) --rate setups/s (1,000) over the pairs while --idle more clients
#     (10,000) are logged in and idle.
# Each run gets a fresh server. Per run the load generator prints
# setups/s, failures, call->INVITE and call->ROOM_CLOSE latency, CPU time
# per setup of the client and of the server (read at the edges of the
# measured window), and both processes' memory.
#
# Options (defaults in brackets):
#   --only flat|idle       run only (a) or only (b)
#   --pairs N              [200] caller/callee pairs
#   --rate R               [1000] setups/s of (b)
#   --idle M               [10000] idle clients of (b)
#   --duration S           [10] measured seconds
#   --warmup S             [3] seconds of load before measuring
#   --no-receipts          clients send no INVITE receipts
#   --perf                 perf record -g the client during each measured
#                          window (perf.data kept in the work dir, the top
#                          symbols by self time printed)
#   --no-pin               do not pin the processes (taskset)
#   --lib DIR              the load generator uses DIR/libnim_signaling.so
#                          instead of the build's (through LD_LIBRARY_PATH:
#                          A/B of two library builds, same server)
#   --no-build             use the binaries already built
#   --json                 one JSON object per run (the load generator's)
#   --keep                 keep the work dir (configs, logs)
#
# Needs cargo (unless --no-build), cc and make, taskset (util-linux) unless
# --no-pin, perf for --perf. Binaries: $CARGO_TARGET_DIR/release (default
# target/release); the load generator is built into <that>/c-load/.
#
# The server's config lifts the limits that a load from one address runs
# into (docs/CONFIG.md): maxConnectionsPerIp, maxPendingLoginsPerIp (10,000
# logins from 127.0.0.1 would otherwise be closed at accept beyond 100
# pending), maxRequestsPerSecond (a back-to-back pair sends far more than
# 100/s). Every client connects from 127.0.0.1: past ~28,000 clients the
# ephemeral ports run out; `ulimit -n` is raised to the hard limit.
#
# The machine should be quiet: each run prints the load average and any
# other nim-signaling process before it starts.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh

only=""
pairs=200
rate=1000
idle=10000
duration=10
warmup=3
receipts=()
perf=0
pin=1
lib=""

while (($#)); do
  if common_option "$1"; then
    shift
    continue
  fi
  case "$1" in
    --only | --pairs | --rate | --idle | --duration | --warmup | --lib)
      value_option "$1" "${2:-}"
      shift 2
      ;;
    --no-receipts) receipts=(--no-receipts); shift ;;
    --perf) perf=1; shift ;;
    --no-pin) pin=0; shift ;;
    *) die "unknown option '$1' (--help)" ;;
  esac
done
case "$only" in "" | flat | idle) ;; *) die "--only is flat or idle" ;; esac
need=(make cc)
((build)) && need+=(cargo)
((pin)) && need+=(taskset)
((perf)) && need+=(perf)
for tool in "${need[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool on PATH"
done

target="${CARGO_TARGET_DIR:-target}"
target="$(mkdir -p "$target" && cd "$target" && pwd)"
bin="$target/release"
load="$target/c-load/load"
if ((build)); then
  # Release only: a debug build costs several times the CPU. Niced: on a
  # shared machine the build should not crowd out the others.
  nice cargo build --release -p nim-signaling -p nim-signaling-server-bin >&2
fi
if ((build)) || [[ ! -x "$load" ]]; then
  nice make -s -C examples-c LIBDIR="$bin" BUILD="$target/c-load" CFLAGS="-O2 -g" "$load" >&2
fi
server_bin="$bin/nim-signaling-server"
[[ -x "$server_bin" && -x "$load" ]] || die "no release build in $bin (run without --no-build)"

work="$(mktemp -d "${TMPDIR:-/tmp}/c-load.XXXXXX")"
if [[ -n "$lib" ]]; then
  [[ -f "$lib/libnim_signaling.so" ]] || die "no libnim_signaling.so in $lib"
  # The program asks for the library's SONAME: a link of that name.
  soname=$(objdump -p "$lib/libnim_signaling.so" | awk '$1 == "SONAME" { print $2 }')
  mkdir -p "$work/lib"
  ln -s "$(cd "$lib" && pwd)/libnim_signaling.so" "$work/lib/${soname:-libnim_signaling.so}"
  export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
server_pid=""
perf_pid=""
cleanup() {
  local rc=$?
  trap '' HUP INT TERM
  stop_pids "$perf_pid" "$server_pid"
  leave_work_dir c-load.sh "$rc" "$work" "$((keep || perf))"
}
trap cleanup EXIT
trap_signals
raise_fd_limit
clients_max=$((2 * pairs + idle))
(($(ulimit -n) > clients_max + 100)) || die "ulimit -n is $(ulimit -n); $clients_max clients need more"

# Run in the background only (`exec_pinned 0 cmd &`): the background
# subshell becomes the command, so $! is the command's pid.
exec_pinned() { # $1: core, then the command
  local core=$1
  shift
  if ((pin)); then exec taskset -c "$core" "$@"; else exec "$@"; fi
}

# A fresh server for each run, on a free port of its choosing.
start_server() { # $1: name of the run
  local cfg="$work/$1-server.json" log="$work/$1-server.log" i
  cat >"$cfg" <<EOF
{
  "listen": "127.0.0.1:0",
  "maxConnections": 200000,
  "maxConnectionsPerIp": 200000,
  "maxPendingLoginsPerIp": 1000,
  "maxRequestsPerSecond": 1000000,
  "logging": {"level": "warn"}
}
EOF
  exec_pinned 0 "$server_bin" --config "$cfg" >"$log" 2>&1 &
  server_pid=$!
  url=""
  for ((i = 0; i < 100; i++)); do
    url=$(sed -n 's/^nim-signaling-server listening on //p' "$log" | head -1)
    [[ -n "$url" ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "c-load.sh: nim-signaling-server did not start:" >&2
  tail -5 "$log" >&2
  exit 1
}

stop_server() {
  stop_pids "$server_pid"
  server_pid=""
}

machine_state() {
  local others
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  others=$(pgrep -fa 'nim-signaling-bench|soak.sh|nim-signaling-server' | grep -v "^$server_pid " || true)
  [[ -z "$others" ]] || printf 'c-load.sh: other load on this machine:\n%s\n' "$others" >&2
}

run() { # $1: name, then the load generator's options
  local name=$1 out status=0
  shift
  start_server "$name"
  machine_state
  echo "c-load.sh: ($name) load $* against $url (server pid $server_pid)" >&2
  out="$work/$name.out"
  exec_pinned 1 "$load" --url "$url" --server-pid "$server_pid" --duration "$duration" \
    --warmup "$warmup" "${receipts[@]}" "$@" $( ((json)) && echo --json) \
    >"$out" 2>"$work/$name.err" &
  local load_pid=$!
  if ((perf)); then
    # The profile starts once the logins are done and the warm-up is over.
    (
      while ! grep -q 'clients logged in' "$work/$name.err" 2>/dev/null; do
        kill -0 "$load_pid" 2>/dev/null || exit 0
        sleep 0.1
      done
      sleep "$(awk -v w="$warmup" 'BEGIN { print w + 1 }')"
      perf record -g -F 999 -p "$load_pid" -o "$work/$name.perf.data" -- sleep "$duration" \
        >"$work/$name.perf-record.log" 2>&1 || true
    ) &
    perf_pid=$!
  fi
  wait "$load_pid" || status=$?
  if [[ -n "$perf_pid" ]]; then
    wait "$perf_pid" || true
    perf_pid=""
  fi
  stop_server
  if ((status != 0)); then
    echo "c-load.sh: ($name) the load generator exited $status:" >&2
    tail -20 "$work/$name.err" >&2
    exit 1
  fi
  cat "$out"
  if ((perf)) && [[ -s "$work/$name.perf.data" ]]; then
    echo "c-load.sh: ($name) client profile, self time by symbol ($work/$name.perf.data):"
    perf report -i "$work/$name.perf.data" --no-children --sort symbol -g none --stdio 2>/dev/null \
      | grep -v '^#' | grep '%' | sed 's/[ -]*$//' | cut -c1-150 | head -30 || true
  fi
}

if [[ -z "$only" || "$only" == flat ]]; then
  run flat --pairs "$pairs" --rate 0
fi
if [[ -z "$only" || "$only" == idle ]]; then
  run idle --pairs "$pairs" --rate "$rate" --idle "$idle" --login-concurrency 200
fi
