#!/usr/bin/env bash
# The hostile-load soak of issue 17: each attack mix of
# `nim-signaling-bench --hostile` against a nim-signaling-server of its own
# started here with short lifetimes, while a well-behaved pair makes calls
# and logs in; the server's RSS at the mix's start, its peak, and after the
# server's lifetimes for what the mix left behind have passed, with the
# well-behaved latencies (docs/PERFORMANCE.md, "Hostile load").
#
#   scripts/soak.sh --pin
#   scripts/soak.sh --mixes room-flood,pre-login --duration 10 --no-build
#   scripts/soak.sh --json > soak.json
#
# Options (defaults in brackets):
#   --mixes LIST        [all] comma-separated: room-flood, ghost-invites,
#                       reconnect-flood, pre-login, slow-bodies, all
#   --duration D        [20] seconds of attack per mix
#   --warmup W          [8] seconds of the well-behaved load alone before
#                       the attack (at least roomTtlMs, so that the pair's
#                       own rooms have reached their steady count)
#   --rate R            [20] the well-behaved pair's calls per second (its
#                       login probe logs in 10 times a second)
#   --sockets N         [1000] pre-login: sockets held open at once
#   --addresses A       [8] pre-login: source addresses 127.0.0.2 ...
#                       (A x maxConnectionsPerIp 100 of the sockets get in;
#                       more than maxPendingLogins / 100 = 10 addresses
#                       fill every pending place)
#   --trim-check        after each mix, have the server's allocator give
#                       back its free memory once more (gdb: malloc_trim(0))
#                       and report the RSS then ("trimmed"): the server
#                       does this itself every 10 s, so "after" and
#                       "trimmed" should agree
#   --pin               run the server on CPU 0 and the bench (attacker and
#                       well-behaved clients) on CPU 1 (taskset), so that
#                       neither takes the other's core
#   --no-build          use the binaries already in the target dir
#   --json              print one JSON object instead of the table
#   --keep              keep the work dir (configs, server logs, bench output)
#
# Each mix gets a server of its own, so that its start, peak and after are
# its own: glibc's malloc keeps what the process once held, which would be
# the next mix's start. The config each server gets is written by
# write_config below; the bench reads the lifetimes, limits, secrets and
# addresses from that file. A run takes about 5 x (--warmup + --duration)
# plus the lifetimes: 62 s after each of room-flood, ghost-invites and
# reconnect-flood (an unused account is kept 60 s), 22 s after pre-login,
# 12 s after slow-bodies.
#
# Needs: cargo (unless --no-build), python3 (free ports), jq, and gdb for
# --trim-check. Binaries come from $CARGO_TARGET_DIR/release (default
# target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

mixes=all
duration=20
warmup=8
rate=20
sockets=1000
addresses=8
trim=0
pin=0

while (($#)); do
  case "$1" in
    --mixes | --duration | --warmup | --rate | --sockets | --addresses)
      value_option "$1" "${2:-}"
      shift 2
      ;;
    --trim-check) trim=1; shift ;;
    --pin) pin=1; shift ;;
    *) common_option "$1" || die "unknown option '$1' (--help)"; shift ;;
  esac
done

[[ "$addresses" =~ ^[1-9][0-9]*$ && "$addresses" -le 250 ]] || die "--addresses must be 1 to 250"
[[ "$sockets" =~ ^[1-9][0-9]*$ ]] || die "--sockets must be a whole number >= 1"
[[ "$mixes" == all ]] && mixes=room-flood,ghost-invites,reconnect-flood,pre-login,slow-bodies
IFS=, read -r -a mix_list <<<"$mixes"
for mix in "${mix_list[@]}"; do
  case "$mix" in
    room-flood | ghost-invites | reconnect-flood | pre-login | slow-bodies) ;;
    *) die "unknown mix '$mix' (--help)" ;;
  esac
done

need=(python3 jq)
((build)) && need+=(cargo)
((trim)) && need+=(gdb)
((pin)) && need+=(taskset)
for tool in "${need[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || die "needs $tool on PATH"
done

server_pin=(env)
bench_pin=(env)
if ((pin)); then
  server_pin=(taskset -c 0)
  bench_pin=(taskset -c 1)
fi

bin="${CARGO_TARGET_DIR:-target}/release"
if ((build)); then
  # niced: on a shared machine the build should not crowd out the others.
  nice cargo build --release -p nim-signaling-server-bin -p nim-signaling-bench >&2
fi
server_bin="$bin/nim-signaling-server"
bench_bin="$bin/nim-signaling-bench"
[[ -x "$server_bin" && -x "$bench_bin" ]] || die "no release binaries in $bin (run without --no-build)"

work="$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")"
server_pid=""
bench_pid=""

cleanup() {
  local rc=$?
  trap '' HUP INT TERM # finish stopping everything, whatever comes
  stop_pids "$bench_pid" "$server_pid"
  leave_work_dir soak.sh "$rc" "$work" "$keep"
}
trap cleanup EXIT
trap_signals

# The pre-login mix holds --sockets connections; the server holds them too.
raise_fd_limit

# The soak's config in $1/soak.json: short lifetimes, so that "after
# expiry" comes within seconds; the limits are the defaults but
# maxConnectionsPerIp, lowered below maxPendingLogins as docs/SECURITY.md
# advises. Three distinct free ports: signaling, metrics, admin.
write_config() {
  local port metrics_port admin_port
  read -r port metrics_port admin_port < <(python3 -c 'import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
  cat >"$1/soak.json" <<EOF
{
  "listen": "127.0.0.1:$port",
  "auth": {"mode": "hmac", "secret": "soak-login-secret-0123456789"},
  "roomTtlMs": 5000,
  "inviteTtlMs": 3000,
  "logRetentionMs": 2000,
  "offlineRetentionMs": 5000,
  "memberDropGraceMs": 2000,
  "maxConnectionsPerIp": 100,
  "metricsListen": "127.0.0.1:$metrics_port",
  "adminListen": "127.0.0.1:$admin_port",
  "adminToken": "soak-admin-token-0123456789",
  "logging": {"level": "warn"}
}
EOF
}

# Starts the server on $1/soak.json; sets server_pid.
start_server() {
  local i
  "${server_pin[@]}" "$server_bin" --config "$1/soak.json" >"$1/server.log" 2>&1 &
  server_pid=$!
  for ((i = 0; i < 100; i++)); do
    grep -qs "listening on" "$1/server.log" && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$1/server.log" >&2
  die "the server did not start"
}

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status"; }

ips="$(seq -f '127.0.0.%g' 2 $((addresses + 1)) | paste -sd,)"
reports=()
for mix in "${mix_list[@]}"; do
  dir="$work/$mix"
  mkdir -p "$dir"
  write_config "$dir"
  start_server "$dir"
  bench_args=(--hostile "$mix" --server-config "$dir/soak.json" --server-pid "$server_pid"
    --rate "$rate" --duration "$duration" --warmup "$warmup"
    --hostile-sockets "$sockets" --source-ips "$ips" --json)
  echo "soak.sh: $bench_bin ${bench_args[*]}" >&2
  "${bench_pin[@]}" "$bench_bin" "${bench_args[@]}" >"$dir/bench.json" 2>"$dir/bench.err" &
  bench_pid=$!
  if ! wait "$bench_pid"; then
    bench_pid=""
    tail -5 "$dir/bench.err" >&2
    die "the bench failed on $mix"
  fi
  bench_pid=""
  trim_json=null
  if ((trim)); then
    # glibc's malloc keeps freed memory for reuse; the server hands it
    # back every 10 s (ops/heap.rs). What this gives back was free in the
    # allocator and not handed back yet.
    before="$(rss)"
    gdb -p "$server_pid" -batch -ex 'call (int) malloc_trim(0)' >"$dir/gdb.log" 2>&1 ||
      { tail -3 "$dir/gdb.log" >&2; die "gdb could not call malloc_trim in the server"; }
    trim_json="{\"before_kb\": $before, \"after_kb\": $(rss)}"
  fi
  jq -c --argjson trim "$trim_json" '.mixes[0] + {malloc_trim: $trim, login_probes_per_s}' "$dir/bench.json" >"$dir/mix.json"
  reports+=("$dir/mix.json")
  # Anything the server warned about.
  grep -v "listening on" "$dir/server.log" | tail -3 >&2 || true
  stop_pids "$server_pid"
  server_pid=""
done

summary="$(jq -s -c --argjson rate "$rate" --argjson duration "$duration" --argjson warmup "$warmup" \
  '{calls_per_s: $rate, attack_s: $duration, warmup_s: $warmup, mixes: .}' "${reports[@]}")"
if ((json)); then
  echo "$summary"
  exit 0
fi

jq -r '
  def ms: if . == null then "-" else (. / 100 | round / 10 | tostring) end;
  def pad($n): tostring | . + (" " * ([0, $n - length] | max));
  def lpad($n): tostring | (" " * ([0, $n - length] | max)) + .;
  def p99($l): ($l.us.p99 | ms) + " ms" + (if ($l.failures | length) > 0 then "*" else "" end);
  "hostile soak: \(.attack_s) s of each mix against a server of its own, after \(.warmup_s) s of the well-behaved pair alone (\(.calls_per_s) calls/s, \(.mixes[0].login_probes_per_s) logins/s)",
  "RSS in KiB; trimmed: after malloc_trim(0) (--trim-check); p99: the well-behaved client during the attack (* some failed); CPU: % of one core during the attack (others: the rest of the machine)",
  "",
  "\("mix" | pad(16))\("attempts/s" | lpad(11))\("start" | lpad(8))\("peak" | lpad(8))\("after" | lpad(8))\("trimmed" | lpad(9))\("login p99" | lpad(11))\("INVITE p99" | lpad(12))\("CPU server" | lpad(12))\("bench" | lpad(7))\("others" | lpad(8))",
  (.mixes[] |
    "\(.mix | pad(16))\(.attempts_per_s | round | lpad(11))\(.rss_kb.start | lpad(8))\(.rss_kb.peak | lpad(8))\(.rss_kb.after | lpad(8))\((.malloc_trim.after_kb // "-") | lpad(9))\(p99(.during.login) | lpad(11))\(p99(.during.call_invite) | lpad(12))\(.server_cpu_pct | round | lpad(12))\(.bench_cpu_pct | round | lpad(7))\(.other_cpu_pct | round | lpad(8))"),
  "",
  (.mixes[] |
    "\(.mix): \(.attempts) \(.unit) in \(.attack_s) s; after sampled \(.settle_s) s after the attack = \(.settle_from)",
    "  outcomes   \(.outcomes | to_entries | map("\(.key): \(.value)") | join(", "))",
    (if .peak_open_sockets > 0 then "  sockets    \(.peak_open_sockets) open at once at most" else empty end),
    (.gauges as $g | if $g.start then
      "  gauges     " + (["connections", "sessions", "rooms", "log_entries", "timers_pending"]
        | map("\(.) \($g.start[.])/\($g.peak[.])/\($g.after[.])") | join("  ")) + "  (start/peak/after)",
      "  counters   " + (["logins_total", "connections_refused_total", "pending_evicted_total", "events_sent_total", "timers_run_total"]
        | map("\(.) +\($g.after[.] - $g.start[.])") | join("  "))
    else empty end),
    "  well-behaved p50/p99/max ms: login \(.during.login.us | "\(.p50 | ms)/\(.p99 | ms)/\(.max | ms)") (\(.during.login.count)), call->INVITE \(.during.call_invite.us | "\(.p50 | ms)/\(.p99 | ms)/\(.max | ms)") (\(.during.call_invite.count)); before the attack: login p99 \(.before.login.us.p99 | ms), INVITE p99 \(.before.call_invite.us.p99 | ms)",
    (if ((.during.login.failures + .during.call_invite.failures + .during.setup.failures) | length) > 0
     then "  well-behaved failures: login \(.during.login.failures), call->INVITE \(.during.call_invite.failures), setup \(.during.setup.failures)" else empty end),
    (if .malloc_trim then "  malloc_trim(0): \(.malloc_trim.before_kb) -> \(.malloc_trim.after_kb) KiB" else empty end),
    "")
' <<<"$summary"
