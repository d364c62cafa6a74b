# Shared by the scripts that start processes of their own and keep a work
# dir (setup-cost.sh, soak.sh): `source` it after `set -euo pipefail`.

# The script's header comment, from its second line to `set -euo`.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

die() { echo "$(basename "$0"): $*" >&2; exit 2; }

# The options these scripts share: --no-build, --json, --keep and --help,
# which set these (their defaults). False for any other option, which is
# then refused unless the script knows it.
build=1
json=0
keep=0
common_option() {
  case "$1" in
    --no-build) build=0 ;;
    --json) json=1 ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) return 1 ;;
  esac
}

# `--NAME VALUE`: sets the variable NAME (its dashes as underscores).
value_option() {
  [[ -n "${2:-}" ]] || die "$1 needs a value"
  local name="${1#--}"
  printf -v "${name//-/_}" '%s' "$2"
}

# Stops processes this script started, by pid: TERM to each, then up to
# 5 s for each to finish before KILL. Empty arguments are skipped.
stop_pids() {
  local pid i
  for pid in "$@"; do
    [[ -z "$pid" ]] || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "$@"; do
    [[ -n "$pid" ]] || continue
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# The end of an EXIT trap: a failed run (exit code $2 not 0) leaves the
# work dir $3 for a look, --keep ($4 = 1) keeps it, otherwise it goes.
# $1: the script's name, for the messages.
leave_work_dir() {
  if (($2 != 0)); then
    echo "$1: failed; logs in $3" >&2
  elif (($4)); then
    echo "$1: work dir kept: $3" >&2
  else
    rm -rf "$3"
  fi
}

# Signals would otherwise end the script without its EXIT trap, leaving
# what it started running. A closed pipe (`... | head`) is ignored rather
# than trapped: the failed write then ends the script through set -e, and
# no SIGPIPE can cut the cleanup short halfway.
trap_signals() {
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap '' PIPE
}

# Raises the soft limit on open files to the hard one, for everything
# started from here (every connection is a file descriptor).
raise_fd_limit() {
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}
