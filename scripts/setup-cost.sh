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
#   scripts/setup-cost.sh --store redis-cluster --shards 3 --nodes 2
#
# Options (defaults in brackets):
#   --store memory|redis|redis-cluster
#                          [memory] memory: one node; redis: --nodes nodes on
#                          one redis-server started here; redis-cluster:
#                          --nodes nodes on a Redis Cluster started here
#                          (see "Redis Cluster" below)
#   --nodes N              [1] nodes (redis, redis-cluster only: memory
#                          nodes share nothing)
#   --shards S             [3] redis-cluster: masters, the hash slots split
#                          evenly between them
#   --replicas R           [0] redis-cluster: replicas per master
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
# --store redis and redis-cluster redis-server and redis-cli (7.0 or later
# for redis-cluster; also timeout). Binaries come from
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
#
# Redis Cluster (--store redis-cluster): S*(1+R) redis-server processes,
# each with --cluster-enabled yes, its own directory for nodes.conf, no
# persistence, and a cluster bus port picked free (--cluster-port, not
# port + 10000). S >= 3: `redis-cli --cluster create ... --cluster-replicas
# R --cluster-yes`; S = 1 or 2, which that refuses: the same by hand
# (CLUSTER ADDSLOTSRANGE, MEET, REPLICATE). The script waits until every
# process reports cluster_state:ok, knows all the others and every replica
# has synced, then gives the nodes the first master's URL as their only
# Redis URL (the server is to find the rest of the cluster from it). Each
# redis-server's CPU is read and its counters reset at the window's start
# like the single Redis's (one after the other: a few ms apart). Reported:
# per shard the master's CPU and commands per setup and its commands'
# deviation from the masters' mean, each replica's CPU and commands; in all
# the CPU of every process, the commands of the masters (a replica
# re-executes the masters' writes: counted apart, not in the total), the
# largest |deviation| ("spread"), and the top 12 commands summed over the
# masters (the single Redis shows 10). The cluster bus (gossip, failure
# detection) costs CPU but runs no commands; the replicas' REPLCONF ACKs
# (1/s each) are counted on the masters. A server that does not handle
# Redis Cluster fails on the first key of another shard (MOVED, CROSSSLOT):
# the script then quotes what the nodes logged about it and stops.
#
# --json with redis-cluster: .redis has the single Redis's fields
# (cpu_us_per_setup and cpu_ticks of all the redis-servers; commands,
# commands_per_setup, scripts, scripts_per_setup and top_commands of the
# masters; reads and reads_per_setup only on the single Redis) and
# besides: shard_count, replicas_per_shard, masters_cpu_us_per_setup,
# replicas_cpu_us_per_setup, replica_commands, replica_commands_per_setup, commands_spread_pct (null if no commands),
# and shards: [{shard, master, slots, cpu_us_per_setup, cpu_ticks,
# commands, commands_per_setup, commands_deviation_pct, scripts,
# scripts_per_setup, replicas: [{addr, cpu_us_per_setup, cpu_ticks,
# commands, commands_per_setup}]}]; the other stores print none of these.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

store=memory
nodes=1
shards=3
replicas=0
cluster_opt="" # --shards or --replicas given: redis-cluster only
clients=400
callers=200
rate=500
duration=10
warmup=2

while (($#)); do
  case "$1" in
    --store) store="${2:?$1 needs a value}"; shift 2 ;;
    --nodes) nodes="${2:?$1 needs a value}"; shift 2 ;;
    --shards) shards="${2:?$1 needs a value}"; cluster_opt=$1; shift 2 ;;
    --replicas) replicas="${2:?$1 needs a value}"; cluster_opt=$1; shift 2 ;;
    --clients) clients="${2:?$1 needs a value}"; shift 2 ;;
    --callers) callers="${2:?$1 needs a value}"; shift 2 ;;
    --rate) rate="${2:?$1 needs a value}"; shift 2 ;;
    --duration) duration="${2:?$1 needs a value}"; shift 2 ;;
    --warmup) warmup="${2:?$1 needs a value}"; shift 2 ;;
    *) common_option "$1" || die "unknown option '$1' (--help)"; shift ;;
  esac
done

case "$store" in memory | redis | redis-cluster) ;; *) die "--store is memory, redis or redis-cluster, not '$store'" ;; esac
[[ "$nodes" =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a whole number >= 1"
# Memory nodes each hold their own state: a pair split over two of them
# could never call, so several nodes only make sense on one Redis.
[[ "$store" != memory || "$nodes" == 1 ]] || die "--store memory runs one node (nodes share state only through Redis)"
[[ -z "$cluster_opt" || "$store" == redis-cluster ]] || die "$cluster_opt is for --store redis-cluster"
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || die "--shards must be a whole number >= 1"
[[ "$replicas" =~ ^[0-9]+$ ]] || die "--replicas must be a whole number >= 0"
# Start of the window = first progress line (1 s into the load) + the rest
# of the warm-up; below ~1.5 s there is no time left to see that line and
# read the counters before the window opens.
awk -v d="$duration" 'BEGIN { exit !(d + 0 >= 1) }' || die "--duration must be >= 1 s"
awk -v w="$warmup" 'BEGIN { exit !(w + 0 >= 1.5) }' || die "--warmup must be >= 1.5 s (the window is found from the bench's 1 s progress line)"

need=(python3 jq awk)
[[ "$store" == memory ]] || need+=(redis-server redis-cli)
[[ "$store" == redis-cluster ]] && need+=(timeout)
((build)) && need+=(cargo)
for tool in "${need[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool on PATH"
done
if [[ "$store" == redis-cluster ]]; then
  # --cluster-port, CLUSTER ADDSLOTSRANGE and MEET's bus port are 7.0's.
  redis_major="$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')"
  [[ "${redis_major:-0}" -ge 7 ]] || die "--store redis-cluster needs redis-server 7.0 or later ($(redis-server --version))"
fi

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
helper_pid="" # a redis-cli --cluster create being waited for
# Redis Cluster: every redis-server, in start order (index i), and once the
# cluster is up: shard k's master is process master_of_shard[k].
redis_pids=()
redis_ports=()
redis_bus_ports=()
redis_role=()  # master | replica
redis_shard=() # the shard (0-based) a process serves, master or replica
master_of_shard=()
shard_slots=() # the master's slot ranges, "0-5460" (comma-separated)

# Stops only what this script started, by pid: TERM, a few seconds to
# finish, then KILL.
cleanup() {
  local rc=$?
  trap '' HUP INT TERM # finish stopping everything, whatever comes
  [[ -z "$sleep_pid" ]] || kill -TERM "$sleep_pid" 2>/dev/null || true
  [[ -z "$helper_pid" ]] || kill -TERM "$helper_pid" 2>/dev/null || true
  stop_pids "${started[@]}"
  leave_work_dir setup-cost.sh "$rc" "$work" "$keep"
}
trap cleanup EXIT
trap_signals

# The bench needs an fd per client; so does a node for its share.
raise_fd_limit

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether the redis-server $2 answers PING on port $1 within 10 s (false
# at once if it exits: the port was taken, or it could not start).
answers() {
  local i
  for ((i = 0; i < 100; i++)); do
    redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
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
    if answers "$port" "$redis_pid"; then
      redis_port=$port
      return 0
    fi
    kill -TERM "$redis_pid" 2>/dev/null || true
  done
  echo "setup-cost.sh: redis-server did not start:" >&2
  tail -5 "$work/redis.log" >&2
  exit 1
}

# --- Redis Cluster -------------------------------------------------------

rcli() { # $1: process index, then the command
  local i=$1
  shift
  redis-cli -p "${redis_ports[i]}" "$@" | tr -d '\r'
}

# Two distinct free ports (bound at the same time, so never the same one):
# the client port and the cluster bus port. The bus port is chosen, not
# port + 10000, which can be taken or past 65535.
two_free_ports() {
  python3 -c 'import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])'
}

# One cluster member: no persistence (see start_redis), its own directory
# for nodes.conf (a cluster node rewrites it on every change).
start_cluster_redis() { # $1: process index
  local n=$1 dir="$work/redis$(($1 + 1))" attempt port bus pid i
  mkdir -p "$dir"
  for attempt in 1 2 3; do
    read -r port bus < <(two_free_ports)
    rm -f "$dir/nodes.conf"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --cluster-enabled yes --cluster-port "$bus" --cluster-config-file "$dir/nodes.conf" --dir "$dir" \
      >"$dir/redis.log" 2>&1 &
    pid=$!
    started+=("$pid")
    if answers "$port" "$pid"; then
      redis_pids+=("$pid")
      redis_ports+=("$port")
      redis_bus_ports+=("$bus")
      return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
  done
  echo "setup-cost.sh: redis-server $((n + 1)) of the cluster did not start:" >&2
  tail -5 "$dir/redis.log" >&2
  exit 1
}

# Runs a command in the background and waits for it, so that a signal
# interrupts the wait (and cleanup stops the command) at once.
run_helper() { # $1: log file, then the command
  local log=$1 rc=0
  shift
  "$@" >"$log" 2>&1 &
  helper_pid=$!
  wait "$helper_pid" || rc=$?
  helper_pid=""
  return "$rc"
}

cluster_fail() {
  echo "setup-cost.sh: the Redis Cluster did not come up: $*" >&2
  exit 1
}

start_cluster() {
  local total=$((shards * (1 + replicas))) i k j addrs=() lo hi reply id
  for ((i = 0; i < total; i++)); do start_cluster_redis "$i"; done
  for ((i = 0; i < total; i++)); do addrs+=("127.0.0.1:${redis_ports[i]}"); done
  if ((shards >= 3)); then
    run_helper "$work/cluster-create.log" timeout 120 \
      redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes ||
      { tail -5 "$work/cluster-create.log" >&2; cluster_fail "redis-cli --cluster create failed (log above, all in $work/cluster-create.log)"; }
  else
    # redis-cli --cluster create wants 3 masters at least; the same steps
    # by hand: slots, distinct config epochs, MEET, then the replicas.
    for ((k = 0; k < shards; k++)); do
      lo=$((k * 16384 / shards))
      hi=$(((k + 1) * 16384 / shards - 1))
      reply="$(rcli "$k" CLUSTER ADDSLOTSRANGE "$lo" "$hi" 2>&1 || true)"
      [[ "$reply" == OK ]] || cluster_fail "CLUSTER ADDSLOTSRANGE $lo $hi on ${addrs[k]}: $reply"
      reply="$(rcli "$k" CLUSTER SET-CONFIG-EPOCH $((k + 1)) 2>&1 || true)"
      [[ "$reply" == OK ]] || cluster_fail "CLUSTER SET-CONFIG-EPOCH on ${addrs[k]}: $reply"
    done
    for ((i = 1; i < total; i++)); do
      reply="$(rcli 0 CLUSTER MEET 127.0.0.1 "${redis_ports[i]}" "${redis_bus_ports[i]}" 2>&1 || true)"
      [[ "$reply" == OK ]] || cluster_fail "CLUSTER MEET ${addrs[i]}: $reply"
    done
    wait_cluster known
    # Replicas after the masters: process shards + k * replicas + j
    # replicates master k.
    for ((k = 0; k < shards; k++)); do
      id="$(rcli "$k" CLUSTER MYID 2>&1 || true)"
      for ((j = 0; j < replicas; j++)); do
        i=$((shards + k * replicas + j))
        reply="$(rcli "$i" CLUSTER REPLICATE "$id" 2>&1 || true)"
        [[ "$reply" == OK ]] || cluster_fail "CLUSTER REPLICATE on ${addrs[i]}: $reply"
      done
    done
  fi
  wait_cluster ready
  cluster_layout
}

# known: every process knows all the others; ready: besides, every one
# sees cluster_state:ok and $shards masters with slots, and every replica
# has finished its initial sync (so that no full sync lands in the window).
wait_cluster() { # $1: known | ready
  local total=${#redis_ports[@]} deadline=$(($(date +%s) + 60)) i info bad
  while :; do
    bad=""
    for ((i = 0; i < total; i++)); do
      info="$(rcli "$i" CLUSTER INFO 2>&1 || true)"
      if ! grep -qx "cluster_known_nodes:$total" <<<"$info"; then
        bad="127.0.0.1:${redis_ports[i]} knows $(sed -n 's/^cluster_known_nodes://p' <<<"$info") of $total nodes"
        break
      fi
      [[ "$1" == known ]] && continue
      if ! grep -qx 'cluster_state:ok' <<<"$info" || ! grep -qx "cluster_size:$shards" <<<"$info"; then
        bad="127.0.0.1:${redis_ports[i]}: $(grep -E '^cluster_(state|size):' <<<"$info" | tr '\n' ' ')"
        break
      fi
      info="$(rcli "$i" INFO replication 2>&1 || true)"
      if grep -qx 'role:slave' <<<"$info" &&
        ! { grep -qx 'master_link_status:up' <<<"$info" && grep -qx 'master_sync_in_progress:0' <<<"$info"; }; then
        bad="replica 127.0.0.1:${redis_ports[i]}: $(grep -E '^master_(link_status|sync_in_progress):' <<<"$info" | tr '\n' ' ')"
        break
      fi
    done
    [[ -z "$bad" ]] && return 0
    (($(date +%s) < deadline)) || cluster_fail "after 60 s, $bad"
    sleep 0.2
  done
}

# Who is what, from the processes themselves (redis-cli --cluster create
# picks the masters): shard k is the master holding the k-th lowest slots,
# so shard 1 holds slot 0.
cluster_layout() {
  local total=${#redis_ports[@]} i k role line first masters=() port
  for ((i = 0; i < total; i++)); do
    mapfile -t role < <(rcli "$i" ROLE)
    case "${role[0]}" in
      master)
        redis_role[i]=master
        # The "myself" line of CLUSTER NODES: fields 9 on are its slots.
        line="$(rcli "$i" CLUSTER NODES | awk '$3 ~ /myself/ { s = ""; for (f = 9; f <= NF; f++) s = s (s == "" ? "" : ",") $f; print s }' || true)"
        [[ -n "$line" ]] || cluster_fail "master 127.0.0.1:${redis_ports[i]} holds no slots"
        first="${line%%[-,]*}"
        masters+=("$first $i $line")
        ;;
      slave) redis_role[i]=replica ;;
      *) cluster_fail "ROLE of 127.0.0.1:${redis_ports[i]} is '${role[0]}'" ;;
    esac
  done
  ((${#masters[@]} == shards)) || cluster_fail "${#masters[@]} masters, not $shards"
  k=0
  while read -r first i line; do
    master_of_shard[k]=$i
    shard_slots[k]=$line
    redis_shard[i]=$k
    k=$((k + 1))
  done < <(printf '%s\n' "${masters[@]}" | sort -n -k1,1)
  for ((i = 0; i < total; i++)); do
    [[ "${redis_role[i]}" == replica ]] || continue
    mapfile -t role < <(rcli "$i" ROLE)
    port="${role[2]}"
    for ((k = 0; k < shards; k++)); do
      [[ "${redis_ports[master_of_shard[k]]}" == "$port" ]] && redis_shard[i]=$k
    done
    [[ -n "${redis_shard[i]:-}" ]] || cluster_fail "replica 127.0.0.1:${redis_ports[i]} follows port $port, no master here"
  done
  redis_port="${redis_ports[master_of_shard[0]]}" # the nodes' seed URL
}

# What the nodes logged about Redis Cluster (redirections, slot errors):
# the likely cause when a node or the bench fails on a cluster.
cluster_hint() {
  [[ "$store" == redis-cluster ]] || return 0
  local pattern='CROSSSLOT|MOVED|ASK [0-9]|CLUSTERDOWN|TRYAGAIN|cluster' count
  count="$(cat "$work"/node*.err 2>/dev/null | grep -ciE "$pattern" || true)"
  if ((count > 0)); then
    echo "setup-cost.sh: the nodes logged $count line(s) about Redis Cluster (MOVED/CROSSSLOT/...; a server without Redis Cluster support fails so), the first:" >&2
    cat "$work"/node*.err | grep -iE -m3 "$pattern" | cut -c1-400 | sed 's/^/  /' >&2
  else
    echo "setup-cost.sh: (the nodes logged nothing about Redis Cluster; see $work/node*.err)" >&2
  fi
}

# A node listening on 127.0.0.1:0 (the kernel picks a free port: no race);
# its URL is the line it prints on stdout once it listens.
start_server() {
  local n=$1 cfg="$work/node$1.json" store_json
  if [[ "$store" != memory ]]; then
    # A prefix of this run's own, should the Redis be reused. A cluster's
    # nodes get one master's URL only (redis_port) and find the others.
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
    cluster_hint
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
if [[ "$store" == redis-cluster ]]; then start_cluster; fi
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
    cluster_hint
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
declare -a before_redis after_redis
read_cluster() { # $1: name of the array to fill (one entry per redis-server)
  local -n out=$1
  out=()
  local pid
  for pid in "${redis_pids[@]}"; do out+=("$(cpu_ticks "$pid")"); done
}

sleep_until "$(awk -v s="$load_start" -v w="$warmup" 'BEGIN { printf "%.6f", s + w }')"
t0="$(now)"
read_all before_srv
bench_before="$(cpu_ticks "$bench_pid")"
if [[ "$store" == redis ]]; then
  redis_before="$(cpu_ticks "$redis_pid")"
  redis-cli -p "$redis_port" CONFIG RESETSTAT >/dev/null
  reads_before="$(redis-cli -p "$redis_port" INFO stats | tr -d '\r' | sed -n 's/^total_reads_processed://p')"
fi
if [[ "$store" == redis-cluster ]]; then
  read_cluster before_redis
  for i in "${!redis_ports[@]}"; do rcli "$i" CONFIG RESETSTAT >/dev/null; done
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
  redis-cli -p "$redis_port" INFO stats | tr -d '\r' >"$work/stats.txt"
fi
if [[ "$store" == redis-cluster ]]; then
  read_cluster after_redis
  for i in "${!redis_ports[@]}"; do rcli "$i" INFO commandstats >"$work/redis$((i + 1))/commandstats.txt"; done
fi

if ! wait "$bench_pid"; then
  echo "setup-cost.sh: the bench failed:" >&2
  tail -5 "$work/bench.err" >&2
  cluster_hint
  exit 1
fi

report="$work/bench.json"
setups="$(jq '.setups' "$report")"
((setups > 0)) || { echo "setup-cost.sh: no setups completed in the window; see $work/bench.err" >&2; cluster_hint; exit 1; }
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

# "calls name" per command, most called first, from INFO commandstats.
command_calls() { # $1: the INFO commandstats output
  awk -F'[:,=]' '/^cmdstat_/ { name = substr($1, 9); if (name != "config|resetstat" && name != "info") print $3, name }' \
    "$1" | sort -k1,1nr
}
sum_calls() { awk '{ t += $1 } END { print t + 0 }'; }
sum_scripts() { awk '$2 ~ /^(eval|evalsha|eval_ro|evalsha_ro|fcall|fcall_ro)$/ { t += $1 } END { print t + 0 }'; }
per_setup() { awk -v c="$1" -v s="$in_window" 'BEGIN { printf "%.2f", c / s }'; }

redis_json=null
if [[ "$store" == redis ]]; then
  # cmdstat_NAME:calls=N,usec=...  The counters were reset at the window's
  # start; the reset itself (config|resetstat) and INFO are this script's
  # own commands, not the servers', and are left out. Redis counts each
  # redis.call made inside a Lua script as a command of its own (besides
  # the EVALSHA), and Redis 7.0 keeps no per-client count that would tell
  # them apart, so the total is "commands Redis executed", not round trips;
  # the scripts are also given on their own.
  cmds="$(command_calls "$work/commandstats.txt")"
  cmd_total="$(sum_calls <<<"$cmds")"
  script_total="$(sum_scripts <<<"$cmds")"
  top_json="$(awk -v s="$in_window" 'NF { printf "{\"command\":\"%s\",\"calls\":%d,\"per_setup\":%.2f}\n", $2, $1, $1 / s }' <<<"$cmds" |
    head -10 | jq -s -c .)"
  # What Redis's event loop read off its sockets in the window (RESETSTAT
  # leaves this counter alone: read at both edges): each read is one
  # wake-up of Redis, however many commands it carried, so reads per setup
  # is the round trips as Redis sees them. The second edge's two INFO
  # commands are one read each.
  reads="$(sed -n 's/^total_reads_processed://p' "$work/stats.txt")"
  reads=$((${reads:-0} - ${reads_before:-0} - 2))
  d=$((redis_after - redis_before))
  redis_json="$(jq -n -c --argjson us "$(per_setup_us "$d")" --argjson ticks "$d" --argjson calls "$cmd_total" \
    --argjson per "$(awk -v c="$cmd_total" -v s="$in_window" 'BEGIN { printf "%.2f", c / s }')" --argjson top "$top_json" \
    --argjson scripts "$script_total" --argjson scripts_per "$(awk -v c="$script_total" -v s="$in_window" 'BEGIN { printf "%.2f", c / s }')" \
    --argjson reads "$reads" --argjson reads_per "$(awk -v c="$reads" -v s="$in_window" 'BEGIN { printf "%.2f", c / s }')" \
    '{cpu_us_per_setup: $us, cpu_ticks: $ticks, commands: $calls, commands_per_setup: $per,
      scripts: $scripts, scripts_per_setup: $scripts_per, reads: $reads, reads_per_setup: $reads_per,
      top_commands: $top}')"
fi

if [[ "$store" == redis-cluster ]]; then
  # Per process: CPU ticks, commands, scripts. The masters' commands are
  # the nodes' load; a replica's are the masters' writes again.
  all_ticks=0 master_ticks=0 replica_ticks=0
  master_cmds=0 master_scripts=0 replica_cmds=0
  declare -a p_ticks p_cmds p_scripts
  : >"$work/master-calls.txt"
  for i in "${!redis_pids[@]}"; do
    p_ticks[i]=$((after_redis[i] - before_redis[i]))
    cmds="$(command_calls "$work/redis$((i + 1))/commandstats.txt")"
    p_cmds[i]="$(sum_calls <<<"$cmds")"
    p_scripts[i]="$(sum_scripts <<<"$cmds")"
    all_ticks=$((all_ticks + p_ticks[i]))
    if [[ "${redis_role[i]}" == master ]]; then
      master_ticks=$((master_ticks + p_ticks[i]))
      master_cmds=$((master_cmds + p_cmds[i]))
      master_scripts=$((master_scripts + p_scripts[i]))
      [[ -z "$cmds" ]] || echo "$cmds" >>"$work/master-calls.txt"
    else
      replica_ticks=$((replica_ticks + p_ticks[i]))
      replica_cmds=$((replica_cmds + p_cmds[i]))
    fi
  done
  # Each master's commands against the masters' mean, in %; null when the
  # masters ran nothing at all.
  deviation() { awk -v c="$1" -v t="$master_cmds" -v n="$shards" 'BEGIN { if (t == 0) print "null"; else printf "%.1f", (c - t / n) * 100 / (t / n) }'; }
  shard_json="[]"
  spread=null
  for ((k = 0; k < shards; k++)); do
    m=${master_of_shard[k]}
    dev="$(deviation "${p_cmds[m]}")"
    if [[ "$dev" != null ]]; then
      spread="$(awk -v a="$spread" -v d="$dev" 'BEGIN { d = d < 0 ? -d : d; if (a == "null" || d > a + 0) printf "%.1f", d; else print a }')"
    fi
    rep_json="[]"
    for i in "${!redis_pids[@]}"; do
      [[ "${redis_role[i]}" == replica && "${redis_shard[i]}" == "$k" ]] || continue
      rep_json="$(jq -c --arg addr "127.0.0.1:${redis_ports[i]}" --argjson us "$(per_setup_us "${p_ticks[i]}")" \
        --argjson ticks "${p_ticks[i]}" --argjson calls "${p_cmds[i]}" --argjson per "$(per_setup "${p_cmds[i]}")" \
        '. + [{addr: $addr, cpu_us_per_setup: $us, cpu_ticks: $ticks, commands: $calls, commands_per_setup: $per}]' <<<"$rep_json")"
    done
    shard_json="$(jq -c --argjson shard $((k + 1)) --arg addr "127.0.0.1:${redis_ports[m]}" --arg slots "${shard_slots[k]}" \
      --argjson us "$(per_setup_us "${p_ticks[m]}")" --argjson ticks "${p_ticks[m]}" \
      --argjson calls "${p_cmds[m]}" --argjson per "$(per_setup "${p_cmds[m]}")" --argjson dev "$dev" \
      --argjson scripts "${p_scripts[m]}" --argjson scripts_per "$(per_setup "${p_scripts[m]}")" --argjson reps "$rep_json" \
      '. + [{shard: $shard, master: $addr, slots: $slots, cpu_us_per_setup: $us, cpu_ticks: $ticks,
             commands: $calls, commands_per_setup: $per, commands_deviation_pct: $dev,
             scripts: $scripts, scripts_per_setup: $scripts_per, replicas: $reps}]' <<<"$shard_json")"
  done
  # The calls per command, summed over the masters.
  top_json="$(awk '{ c[$2] += $1 } END { for (n in c) print c[n], n }' "$work/master-calls.txt" | sort -k1,1nr -k2,2 | head -12 |
    awk -v s="$in_window" 'NF { printf "{\"command\":\"%s\",\"calls\":%d,\"per_setup\":%.2f}\n", $2, $1, $1 / s }' | jq -s -c .)"
  redis_json="$(jq -n -c --argjson us "$(per_setup_us "$all_ticks")" --argjson ticks "$all_ticks" \
    --argjson calls "$master_cmds" --argjson per "$(per_setup "$master_cmds")" \
    --argjson scripts "$master_scripts" --argjson scripts_per "$(per_setup "$master_scripts")" --argjson top "$top_json" \
    --argjson nshards "$shards" --argjson nreplicas "$replicas" \
    --argjson m_us "$(per_setup_us "$master_ticks")" --argjson r_us "$(per_setup_us "$replica_ticks")" \
    --argjson r_calls "$replica_cmds" --argjson r_per "$(per_setup "$replica_cmds")" \
    --argjson spread "$spread" --argjson shard_list "$shard_json" \
    '{cpu_us_per_setup: $us, cpu_ticks: $ticks, commands: $calls, commands_per_setup: $per,
      scripts: $scripts, scripts_per_setup: $scripts_per, top_commands: $top,
      shard_count: $nshards, replicas_per_shard: $nreplicas,
      masters_cpu_us_per_setup: $m_us, replicas_cpu_us_per_setup: $r_us,
      replica_commands: $r_calls, replica_commands_per_setup: $r_per,
      commands_spread_pct: $spread, shards: $shard_list}')"
  # Failed setups on a cluster are most likely the server's Redis Cluster
  # support (or its absence): say so, the figures are then not a cost.
  failed="$(jq '.failures | add // 0' "$report")"
  if ((failed > 0)); then
    echo "setup-cost.sh: warning: $failed setups failed on the cluster; the figures below count them" >&2
    cluster_hint
  fi
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
     (if .redis.reads_per_setup then "redis reads/setup     \(.redis.reads_per_setup)  (socket reads: round trips as Redis sees them)" else empty end),
     (if .redis.shards then
        "  masters CPU         \(.redis.masters_cpu_us_per_setup)   replicas CPU \(.redis.replicas_cpu_us_per_setup)  (\(.redis.shard_count) shard(s), \(.redis.replicas_per_shard) replica(s) each; us/setup)",
        "  replica commands    \(.redis.replica_commands_per_setup)/setup  (the writes of the masters again; not in the total)",
        "  spread              \(.redis.commands_spread_pct // "-") %  (largest |deviation| of a master from the mean of the masters, by commands)",
        "  shard  master            slots             CPU us/setup  cmds/setup  deviation %",
        (.redis.shards[] |
           "  \(.shard | tostring | .[0:5] + "     "[0:(5 - length)])  \(.master + "                  "[0:([1, 18 - (.master | length)] | max)])\(.slots + "                  "[0:([1, 18 - (.slots | length)] | max)])\(.cpu_us_per_setup | tostring | "            "[0:([1, 12 - length] | max)] + .)  \(.commands_per_setup | tostring | "          "[0:([1, 10 - length] | max)] + .)  \(.commands_deviation_pct // "-")",
           (.replicas[] | "         replica \(.addr)   CPU \(.cpu_us_per_setup)  cmds \(.commands_per_setup)")),
        "  top \(.redis.top_commands | length) by calls per setup, summed over the masters:"
      else
        "  top 10 by calls per setup:"
      end),
     (.redis.top_commands[] | "  \(.command + ("                    "[0:([1, 20 - (.command | length)] | max)]))\(.per_setup)")
   else empty end),
  "bench CPU us/setup    \(.bench_cpu_us_per_setup)  (the load generator, same machine)"
' <<<"$summary"
