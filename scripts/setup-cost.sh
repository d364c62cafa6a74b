#!/usr/bin/env bash
# What one call setup costs: server CPU, Redis CPU and Redis commands per
# setup, for sizing cluster mode ("Cluster mode that scales").
#
# Starts its own servers (and Redis) on free loopback ports, loads them with
# nim-signaling-bench, reads the processes' CPU time (/proc/PID/stat) and
# Redis's command counters around the bench's measured window, and divides
# by the setups the bench completed in the part of it that was read.
#
#   scripts/setup-cost.sh --store memory
#   scripts/setup-cost.sh --store redis --nodes 2 --rate 500 --duration 10
#   scripts/setup-cost.sh --store redis --nodes 2 --no-build --json
#
# Options (defaults in brackets):
#   --store memory|redis   [memory] memory: one node; redis: --nodes nodes on
#                          one redis-server started here
#   --nodes N              [1] nodes (redis only: memory nodes share nothing)
#   --clients C            [400] logged-in clients, callers and callees included
#   --callers K            [200] caller/callee pairs making calls
#   --rate R               [500] setups per second (0: back to back)
#   --duration D           [10] measured seconds
#   --warmup W             [2] seconds of load before measuring (>= 1.5, see
#                          "Which setups the CPU is divided by" below)
#   --no-build             use the binaries already in the target dir
#   --json                 print one JSON object instead of the table
#   --keep                 keep the work dir (configs, logs, bench output)
#
# Needs: cargo (unless --no-build), python3 (free ports), jq, awk, and for
# --store redis redis-server and redis-cli. Binaries come from
# $CARGO_TARGET_DIR/release (default target/release).
#
# Which setups the CPU is divided by: the bench reports only the setups
# *started inside* its measured window (--duration after --warmup); the
# warm-up setups and the connecting/logins before them are not in any count
# it prints. Dividing the CPU of the whole run by the measured setups would
# charge the logins and the warm-up setups to them. So the CPU and Redis
# counters are read at the edges of the measured window instead: the bench
# prints its first progress line on stderr exactly 1 s after the load starts
# (a tokio interval starting at start + 1 s), which fixes the start of the
# load; the script then sleeps until start + warmup, reads, sleeps
# --duration less 0.25 s (so that the second reading never lands after the
# bench has exited and its connections are torn down) and reads again. The
# bench's count is scaled to the window read (setups x read / --duration:
# the bench starts setups at a steady rate). The readings are a few ms off
# the bench's own clock (the polling of stderr every 10 ms, a late tick on a
# loaded machine); in steady state that shifts the window without changing
# what falls in it, and the setups that straddle an edge even out between
# the two edges. What the window holds besides setups is charged to them
# too: the idle clients' heartbeats, timers, cluster keepalives. At hundreds
# of setups per second that is small, but it is part of "per setup" here.
# Past the rate the machine sustains (missed starts > 0) the figures are
# those of a saturated system, not of the asked rate.
set -euo pipefail
cd "$(dirname "$0")/.."

store=memory
nodes=1
clients=400
callers=200
rate=500
duration=10
warmup=2
build=1
json=0
keep=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --store) store="${2:?$1 needs a value}"; shift 2 ;;
    --nodes) nodes="${2:?$1 needs a value}"; shift 2 ;;
    --clients) clients="${2:?$1 needs a value}"; shift 2 ;;
    --callers) callers="${2:?$1 needs a value}"; shift 2 ;;
    --rate) rate="${2:?$1 needs a value}"; shift 2 ;;
    --duration) duration="${2:?$1 needs a value}"; shift 2 ;;
    --warmup) warmup="${2:?$1 needs a value}"; shift 2 ;;
    --no-build) build=0; shift ;;
    --json) json=1; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "setup-cost.sh: unknown option '$1' (--help)" >&2; exit 2 ;;
  esac
done

die() { echo "setup-cost.sh: $*" >&2; exit 2; }
case "$store" in memory | redis) ;; *) die "--store is memory or redis, not '$store'" ;; esac
[[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a whole number >= 1"
# Memory nodes each hold their own state: a pair split over two of them
# could never call, so several nodes only make sense on one Redis.
[[ "$store" == redis || "$nodes" == 1 ]] || die "--store memory runs one node (nodes share state only through Redis)"
# Start of the window = first progress line (1 s into the load) + the rest
# of the warm-up; below ~1.5 s there is no time left to see that line and
# read the counters before the window opens.
awk -v d="$duration" 'BEGIN { exit !(d + 0 >= 1) }' || die "--duration must be >= 1 s"
awk -v w="$warmup" 'BEGIN { exit !(w + 0 >= 1.5) }' || die "--warmup must be >= 1.5 s (the window is found from the bench's 1 s progress line)"

need=(python3 jq awk)
[[ "$store" == redis ]] && need+=(redis-server redis-cli)
((build)) && need+=(cargo)
for tool in "${need[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool on PATH"
done

bin="${CARGO_TARGET_DIR:-target}/release"
if ((build)); then
  # Release only: debug builds cost several times the CPU and would say
  # nothing about a deployment.
  # niced: on a shared machine the build should not crowd out the others.
  nice cargo build --release -p nim-signaling-server-bin -p nim-signaling-bench >&2
fi
server_bin="$bin/nim-signaling-server"
bench_bin="$bin/nim-signaling-bench"
[[ -x "$server_bin" && -x "$bench_bin" ]] || die "no release binaries in $bin (run without --no-build)"

work="$(mktemp -d "${TMPDIR:-/tmp}/setup-cost.XXXXXX")"
started=()     # every process started here, stopped on exit
server_pids=()
server_urls=()
redis_pid=""
bench_pid=""
sleep_pid=""

# Stops only what this script started, by pid: TERM, a few seconds to
# finish, then KILL.
cleanup() {
  local rc=$? pid i
  trap '' HUP INT TERM # finish stopping everything, whatever comes
  [[ -z "$sleep_pid" ]] || kill -TERM "$sleep_pid" 2>/dev/null || true
  for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${started[@]}"; do
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if ((rc != 0)); then
    # A failed run leaves its logs for a look.
    echo "setup-cost.sh: failed; logs in $work" >&2
  elif ((keep)); then
    echo "setup-cost.sh: work dir kept: $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
# Signals would otherwise end the script without the EXIT trap, leaving the
# servers running. A closed pipe (`... | head`) is ignored rather than
# trapped: the failed write then ends the script through set -e, and no
# SIGPIPE can cut the cleanup short halfway.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
trap '' PIPE

# The bench needs an fd per client; so does a node for its share. Raise the
# soft limit to the hard one for everything started from here.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# One Redis of our own, without persistence: fork-and-save or AOF writes
# would land in the Redis CPU and say nothing about the commands.
start_redis() {
  local attempt port
  # A free port can be taken between asking and binding; try again then.
  for attempt in 1 2 3; do
    port="$(free_port)"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      >"$work/redis.log" 2>&1 &
    redis_pid=$!
    started+=("$redis_pid")
    for ((i = 0; i < 100; i++)); do
      if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
        redis_port=$port
        return 0
      fi
      kill -0 "$redis_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -TERM "$redis_pid" 2>/dev/null || true
  done
  echo "setup-cost.sh: redis-server did not start:" >&2
  tail -5 "$work/redis.log" >&2
  exit 1
}

# A node listening on 127.0.0.1:0 (the kernel picks a free port: no race);
# its URL is the line it prints on stdout once it listens.
start_server() {
  local n=$1 cfg="$work/node$1.json" store_json
  if [[ "$store" == redis ]]; then
    # A prefix of this run's own, should the Redis be reused.
    store_json="{\"kind\":\"redis\",\"url\":\"redis://127.0.0.1:$redis_port\",\"prefix\":\"cost$$\"}"
  else
    store_json='{"kind":"memory"}'
  fi
  # Every client comes from 127.0.0.1 and a busy pair sends more than the
  # default 100 requests/s per connection (the bench's --help): raise both
  # so that no limit answers 416 in the middle of the measurement.
  cat >"$cfg" <<EOF
{"listen": "127.0.0.1:0", "store": $store_json,
 "maxConnectionsPerIp": 1000000, "maxRequestsPerSecond": 1000000}
EOF
  # Created here: the child opens them only after the fork, and the wait
  # below may look first.
  : >"$work/node$n.out"
  "$server_bin" --config "$cfg" >"$work/node$n.out" 2>"$work/node$n.err" &
  local pid=$!
  started+=("$pid")
  server_pids+=("$pid")
  local url=""
  for ((i = 0; i < 200; i++)); do
    url="$(sed -n 's/^nim-signaling-server listening on //p' "$work/node$n.out")"
    [[ -n "$url" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if [[ -z "$url" ]]; then
    echo "setup-cost.sh: node $n did not start:" >&2
    tail -5 "$work/node$n.err" >&2
    exit 1
  fi
  server_urls+=("$url")
}

# utime + stime (fields 14 and 15 of /proc/PID/stat, clock ticks) of the
# whole process, all threads. The command name (field 2) may hold spaces,
# so split after its closing parenthesis: field 3 is then index 0.
cpu_ticks() {
  local line rest f
  read -r line <"/proc/$1/stat" || return 1
  rest="${line##*) }"
  read -ra f <<<"$rest"
  echo $((f[11] + f[12]))
}

now() { date +%s.%N; }
sleep_until() {
  local left
  left="$(awk -v t="$1" -v n="$(now)" 'BEGIN { d = t - n; printf "%.3f", (d > 0 ? d : 0) }')"
  # In the background and waited for: bash runs a trap only once the
  # foreground command is done, and `wait` is what a signal interrupts, so
  # Ctrl-C stops everything at once instead of after the window.
  sleep "$left" &
  sleep_pid=$!
  wait "$sleep_pid"
  sleep_pid=""
}

if [[ "$store" == redis ]]; then start_redis; fi
for ((n = 1; n <= nodes; n++)); do start_server "$n"; done
urls="$(IFS=,; echo "${server_urls[*]}")"

# The bench logs in to the nodes in turn, so with two nodes each pair's
# caller and callee sit on different nodes.
bench_args=(--url "$urls" --clients "$clients" --callers "$callers" --rate "$rate"
  --duration "$duration" --warmup "$warmup" --json)
: >"$work/bench.err"
"$bench_bin" "${bench_args[@]}" >"$work/bench.json" 2>"$work/bench.err" &
bench_pid=$!
started+=("$bench_pid")

# Wait for the first progress line ("   1s warmup setups/s ..."): it is
# printed 1 s after the load starts. Connecting comes first and takes
# longer with more clients, hence the generous limit.
progress='^ *[0-9]+s +(warmup|run|drain) '
deadline=$(($(date +%s) + 120 + clients / 100))
first=""
while :; do
  first="$(grep -m1 -E "$progress" "$work/bench.err" || true)"
  [[ -n "$first" ]] && break
  if ! kill -0 "$bench_pid" 2>/dev/null; then
    echo "setup-cost.sh: the bench ended before its load started:" >&2
    tail -5 "$work/bench.err" >&2
    exit 1
  fi
  (($(date +%s) < deadline)) || { echo "setup-cost.sh: the bench did not start its load in time" >&2; exit 1; }
  sleep 0.01
done
t_line="$(now)"
load_start="$(awk -v t="$t_line" 'BEGIN { printf "%.6f", t - 1 }')"
[[ "$first" =~ ^\ *1s\ +warmup ]] ||
  echo "setup-cost.sh: warning: first progress line is '$first' (expected 1 s, warmup); the window may be off" >&2

declare -a before_srv after_srv
read_all() { # $1: name of the array to fill (one entry per node)
  local -n out=$1
  out=()
  local pid
  for pid in "${server_pids[@]}"; do out+=("$(cpu_ticks "$pid")"); done
}

sleep_until "$(awk -v s="$load_start" -v w="$warmup" 'BEGIN { printf "%.6f", s + w }')"
t0="$(now)"
read_all before_srv
bench_before="$(cpu_ticks "$bench_pid")"
if [[ "$store" == redis ]]; then
  redis_before="$(cpu_ticks "$redis_pid")"
  redis-cli -p "$redis_port" CONFIG RESETSTAT >/dev/null
fi

# The second reading comes a little before the bench's window closes: the
# first one is a few ms late (the polling above), and the bench exits the
# moment its window has drained, so reading at t0 + duration could come
# after its 400 connections closed and charge their teardown to the
# setups. The shorter window is accounted for below.
end_margin=0.25
sleep_until "$(awk -v t="$t0" -v d="$duration" -v m="$end_margin" 'BEGIN { printf "%.6f", t + d - m }')"
t1="$(now)"
read_all after_srv
# At a low --rate the bench's last setup starts up to 1/rate s before its
# window ends, and it exits as soon as that one is done.
kill -0 "$bench_pid" 2>/dev/null ||
  echo "setup-cost.sh: warning: the bench had exited before the second reading, which then includes its connections' teardown" >&2
bench_after="$(cpu_ticks "$bench_pid" 2>/dev/null || echo "$bench_before")"
if [[ "$store" == redis ]]; then
  redis_after="$(cpu_ticks "$redis_pid")"
  redis-cli -p "$redis_port" INFO commandstats | tr -d '\r' >"$work/commandstats.txt"
fi

if ! wait "$bench_pid"; then
  echo "setup-cost.sh: the bench failed:" >&2
  tail -5 "$work/bench.err" >&2
  exit 1
fi

report="$work/bench.json"
setups="$(jq '.setups' "$report")"
((setups > 0)) || { echo "setup-cost.sh: no setups completed in the window; see $work/bench.err" >&2; exit 1; }
tck="$(getconf CLK_TCK)"
window_s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
# The setups that fall in the window read: the bench starts setups at a
# fixed rate (open loop; with --rate 0 every pair back to back, also
# steady), so its count scales with the window's length.
in_window="$(awk -v n="$setups" -v w="$window_s" -v d="$duration" 'BEGIN { printf "%.1f", n * w / d }')"

# µs per setup from a tick difference.
per_setup_us() { awk -v d="$1" -v hz="$tck" -v s="$in_window" 'BEGIN { printf "%.1f", d * 1e6 / hz / s }'; }

node_json="[]"
srv_total=0
for i in "${!server_pids[@]}"; do
  d=$((after_srv[i] - before_srv[i]))
  srv_total=$((srv_total + d))
  node_json="$(jq -c --arg url "${server_urls[i]}" --argjson us "$(per_setup_us "$d")" \
    --argjson ticks "$d" '. + [{url: $url, cpu_us_per_setup: $us, cpu_ticks: $ticks}]' <<<"$node_json")"
done

redis_json=null
if [[ "$store" == redis ]]; then
  # cmdstat_NAME:calls=N,usec=...  The counters were reset at the window's
  # start; the reset itself (config|resetstat) and INFO are this script's
  # own commands, not the servers', and are left out. Redis counts each
  # redis.call made inside a Lua script as a command of its own (besides
  # the EVALSHA), and Redis 7.0 keeps no per-client count that would tell
  # them apart, so the total is "commands Redis executed", not round trips;
  # the scripts are also given on their own.
  cmds="$(awk -F'[:,=]' '/^cmdstat_/ { name = substr($1, 9); if (name != "config|resetstat" && name != "info") print $3, name }' \
    "$work/commandstats.txt" | sort -k1,1nr)"
  cmd_total="$(awk '{ t += $1 } END { print t + 0 }' <<<"$cmds")"
  script_total="$(awk '$2 ~ /^(eval|evalsha|eval_ro|evalsha_ro|fcall|fcall_ro)$/ { t += $1 } END { print t + 0 }' <<<"$cmds")"
  top_json="$(awk -v s="$in_window" 'NF { printf "{\"command\":\"%s\",\"calls\":%d,\"per_setup\":%.2f}\n", $2, $1, $1 / s }' <<<"$cmds" |
    head -10 | jq -s -c .)"
  d=$((redis_after - redis_before))
  redis_json="$(jq -n -c --argjson us "$(per_setup_us "$d")" --argjson ticks "$d" --argjson calls "$cmd_total" \
    --argjson per "$(awk -v c="$cmd_total" -v s="$in_window" 'BEGIN { printf "%.2f", c / s }')" --argjson top "$top_json" \
    --argjson scripts "$script_total" --argjson scripts_per "$(awk -v c="$script_total" -v s="$in_window" 'BEGIN { printf "%.2f", c / s }')" \
    '{cpu_us_per_setup: $us, cpu_ticks: $ticks, commands: $calls, commands_per_setup: $per,
      scripts: $scripts, scripts_per_setup: $scripts_per, top_commands: $top}')"
fi

summary="$(jq -n -c \
  --arg store "$store" --argjson nodes "$nodes" --argjson bench "$(jq -c . "$report")" \
  --argjson window "$window_s" --argjson tck "$tck" --argjson setups "$setups" --argjson in_window "$in_window" \
  --argjson srv_us "$(per_setup_us "$srv_total")" --argjson srv_ticks "$srv_total" \
  --argjson bench_us "$(per_setup_us $((bench_after - bench_before)))" \
  --argjson node_list "$node_json" --argjson redis "$redis_json" \
  '{store: $store, nodes: $nodes,
    clients: $bench.clients, pairs: $bench.pairs, rate: $bench.rate,
    duration_s: $bench.duration_s, warmup_s: $bench.warmup_s,
    measured_window_s: $window, clk_tck: $tck,
    setups: $setups, setups_per_s: $bench.setups_per_s, setups_in_window_read: $in_window,
    failures: ($bench.failures | add // 0), failures_by_code: $bench.failures,
    missed_starts: $bench.missed_starts, connection_drops: $bench.connection_drops,
    setup_latency_us: $bench.setup_us,
    server: {cpu_us_per_setup: $srv_us, cpu_ticks: $srv_ticks, nodes: $node_list},
    redis: $redis,
    bench_cpu_us_per_setup: $bench_us}')"

if ((json)); then
  echo "$summary"
  exit 0
fi

jq -r '
  "setup cost: store \(.store), \(.nodes) node(s); \(.clients) clients, \(.pairs) pairs, rate \(.rate)/s, \(.duration_s) s after \(.warmup_s) s warm-up",
  "setups                \(.setups)  (\(.setups_per_s)/s, bench'"'"'s \(.duration_s) s window)",
  "window read           \(.measured_window_s) s: \(.setups_in_window_read) setups, the divisor below (clock ticks of \(1000000 / .clk_tck) us)",
  "failures              \(.failures)\(if .failures > 0 then "  \(.failures_by_code)" else "" end)",
  "missed starts         \(.missed_starts)   connection drops \(.connection_drops)",
  "setup latency us      p50 \(.setup_latency_us.p50)  p99 \(.setup_latency_us.p99)",
  "server CPU us/setup   \(.server.cpu_us_per_setup) in all",
  (.server.nodes | to_entries[] | "  node \(.key + 1) \(.value.url)   \(.value.cpu_us_per_setup)"),
  (if .redis then
     "redis CPU us/setup    \(.redis.cpu_us_per_setup)",
     "redis commands/setup  \(.redis.commands_per_setup)  (\(.redis.commands) in the window; a script'"'"'s redis.calls count too)",
     "  of which scripts    \(.redis.scripts_per_setup)  (EVAL/EVALSHA/FCALL)",
     "  top 10 by calls per setup:",
     (.redis.top_commands[] | "  \(.command + ("                    "[0:([1, 20 - (.command | length)] | max)]))\(.per_setup)")
   else empty end),
  "bench CPU us/setup    \(.bench_cpu_us_per_setup)  (the load generator, same machine)"
' <<<"$summary"
