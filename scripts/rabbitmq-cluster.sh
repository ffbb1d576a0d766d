#!/usr/bin/env bash
# A private RabbitMQ cluster on loopback: N nodes of this machine's rabbitmq-server, clustered, for
# the fault suite and for trying the bus against a cluster. It never touches the machine's own
# broker (rabbit@localhost on 5672): its nodes have their own names, ports, data and cookie.
#
#   scripts/rabbitmq-cluster.sh start [N]     start N nodes (default 3; then the recorded count),
#                                             join them into one cluster, print BUS_AMQP_URL
#   scripts/rabbitmq-cluster.sh stop          stop every node (data kept)
#   scripts/rabbitmq-cluster.sh stop-node K   stop node K (1-based) and its Erlang VM
#   scripts/rabbitmq-cluster.sh kill-node K   SIGKILL node K's Erlang VM: a crash, not a shutdown
#   scripts/rabbitmq-cluster.sh start-node K  restart node K with its data; back in the cluster
#   scripts/rabbitmq-cluster.sh status        each node, and the cluster as node 1 sees it
#   scripts/rabbitmq-cluster.sh url           the BUS_AMQP_URL of the cluster (one URL per node)
#   scripts/rabbitmq-cluster.sh ctl K ARGS    rabbitmqctl ARGS against node K
#
# Node K listens for AMQP on 127.0.0.1:BASE+K-1 and is named lienthong-<port>@localhost, so
# clusters with different base ports can run side by side. Its distribution port is the AMQP
# port + 20000 (as RabbitMQ's own default), on loopback too.
#
# Environment: BUS_CLUSTER_BASE_PORT (default 5701), BUS_CLUSTER_DIR (default var/rabbitmq-cluster
# in the repository: each node's data, logs and config, and the cluster's Erlang cookie),
# BUS_CLUSTER_BOOT_TIMEOUT (seconds a node may take to start, default 120).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE_PORT="${BUS_CLUSTER_BASE_PORT:-5701}"
DIR="${BUS_CLUSTER_DIR:-$ROOT/var/rabbitmq-cluster}"
BOOT_TIMEOUT="${BUS_CLUSTER_BOOT_TIMEOUT:-120}"
STOP_TIMEOUT=60
DEFAULT_COUNT=3

say() { echo "rabbitmq-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

case "$BASE_PORT" in
  ''|*[!0-9]*) die "BUS_CLUSTER_BASE_PORT must be a port number, not '$BASE_PORT'" ;;
esac
# The distribution port is the AMQP port + 20000 and must stay a valid port.
[ "$BASE_PORT" -ge 1024 ] && [ "$BASE_PORT" -le 45000 ] \
  || die "BUS_CLUSTER_BASE_PORT must be between 1024 and 45000 (got $BASE_PORT)"
if [ "${1:-}" = start ]; then
  mkdir -p "$DIR" || die "cannot create $DIR: set BUS_CLUSTER_DIR to a writable directory"
fi
[ -d "$DIR" ] && DIR="$(cd "$DIR" && pwd)"  # absolute: the nodes run from their own directories
# Erlang reads the cookie from $HOME/.erlang.cookie, the nodes and rabbitmqctl alike: a private
# HOME gives them one cookie of their own, and no CLI call writes a cookie into the user's home.
COOKIE_HOME="$DIR/home"

find_rabbitmq() {
  # The real scripts, not Debian's /usr/sbin wrappers: those switch to the `rabbitmq` user (who
  # could not read a root-owned data directory) and chdir to /var/lib/rabbitmq.
  if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    RABBITMQ_BIN=/usr/lib/rabbitmq/bin
  elif command -v rabbitmq-server >/dev/null 2>&1; then
    RABBITMQ_BIN="$(dirname "$(command -v rabbitmq-server)")"
  else
    die "rabbitmq-server is not installed: apt-get install rabbitmq-server (RabbitMQ 3.10+)"
  fi
}

# --- one node ---------------------------------------------------------------------------------
port_of() { echo $((BASE_PORT + $1 - 1)); }
name_of() { echo "lienthong-$(port_of "$1")@localhost"; }
dir_of() { echo "$DIR/lienthong-$(port_of "$1")"; }
size_file() { echo "$(dir_of 1)/cluster-size"; }

# The environment RabbitMQ's scripts read for node $1 (exported in the caller's subshell).
node_env() {
  local d; d="$(dir_of "$1")"
  export HOME="$COOKIE_HOME"
  # Our own (empty) env file: /etc/rabbitmq/rabbitmq-env.conf names the machine's broker.
  export RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
  export RABBITMQ_NODENAME; RABBITMQ_NODENAME="$(name_of "$1")"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT; RABBITMQ_NODE_PORT="$(port_of "$1")"
  export RABBITMQ_DIST_PORT=$((RABBITMQ_NODE_PORT + 20000))
  export RABBITMQ_CONFIG_FILE="$d/rabbitmq"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
  export RABBITMQ_MNESIA_BASE="$d/mnesia"
  export RABBITMQ_LOG_BASE="$d/log"
  export RABBITMQ_PID_FILE="$d/pid"
  export ERL_EPMD_ADDRESS=127.0.0.1
  # One scheduler, not bound to a CPU: several VMs share this machine's few cores (bound, each
  # VM would put its scheduler on the same first core). Distribution on loopback only.
  export RABBITMQ_SCHEDULER_BIND_TYPE=u
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1 -kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  unset ERL_FLAGS
}

ctl() {  # ctl K ARGS: rabbitmqctl against node K, bounded by CTL_TIMEOUT seconds
  local k="$1"; shift
  (node_env "$k"; exec timeout "${CTL_TIMEOUT:-120}" "$RABBITMQ_BIN/rabbitmqctl" -n "$(name_of "$k")" "$@")
}

write_node_files() {
  local k="$1" d; d="$(dir_of "$k")"
  mkdir -p "$d/mnesia" "$d/log"
  : >"$d/rabbitmq-env.conf"
  echo '[].' >"$d/enabled_plugins"  # no plugins: no management UI, nothing else listening
  cat >"$d/rabbitmq.conf" <<CONF
# Written by scripts/rabbitmq-cluster.sh: node $k of a private loopback cluster.
listeners.tcp.default = 127.0.0.1:$(port_of "$k")
loopback_users.guest = true
# A small footprint: several nodes share one machine with the bus and its tests.
vm_memory_high_watermark.relative = 0.2
disk_free_limit.absolute = 100MB
raft.wal_max_size_bytes = 64000000
log.console = false
log.file.level = info
CONF
}

ensure_cookie() {
  mkdir -p "$COOKIE_HOME"
  local cookie="$COOKIE_HOME/.erlang.cookie"
  if [ ! -f "$cookie" ]; then
    # od reads a fixed number of bytes, so no pipe is cut short (pipefail would see SIGPIPE).
    head -c 24 /dev/urandom | od -An -tx1 | tr -dc '0-9a-f' | tr 'a-f' 'A-F' >"$cookie"
    chmod 400 "$cookie"
  fi
  [ -r "$cookie" ] || die "cannot read the cluster's Erlang cookie $cookie: run as its owner ($(stat -c %U "$cookie")) or remove $DIR"
}

answers() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

vm_pid() {  # the node's Erlang VM, if it runs (a stale pid file may name another process now)
  local pidfile pid; pidfile="$(dir_of "$1")/pid"
  [ -s "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  # The node name is not on the VM's command line (RabbitMQ sets it at boot): its environment.
  tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ" | grep -qx -- "RABBITMQ_NODENAME=$(name_of "$1")" \
    && echo "$pid"
}

is_running() { vm_pid "$1" >/dev/null && answers "$(port_of "$1")"; }

launch() {
  local k="$1" d port; d="$(dir_of "$k")"; port="$(port_of "$k")"
  if answers "$port" || answers $((port + 20000)); then
    die "port $port or $((port + 20000)) is taken by another process (ss -ltnp shows which; a node of an interrupted run?): stop it or choose another BUS_CLUSTER_BASE_PORT"
  fi
  rm -f "$d/pid"
  # In the background and in its own session, with every descriptor redirected, so whoever
  # called this script (a test's subprocess pipe) does not wait for the node to exit.
  (node_env "$k"; cd "$d"; exec setsid "$RABBITMQ_BIN/rabbitmq-server" \
    >"$d/log/startup.log" 2>&1 </dev/null) &
  echo $! >"$d/launcher.pid"
}

log_hint() { echo "see $(dir_of "$1")/log/ ($(name_of "$1").log, startup.log)"; }

wait_booted() {
  local k="$1" deadline=$((SECONDS + BOOT_TIMEOUT)) launcher
  launcher="$(cat "$(dir_of "$k")/launcher.pid" 2>/dev/null || true)"
  while [ "$SECONDS" -lt "$deadline" ]; do
    if [ -n "$launcher" ] && ! kill -0 "$launcher" 2>/dev/null && ! vm_pid "$k" >/dev/null; then
      die "node $k ($(name_of "$k")) exited while starting; $(log_hint "$k")"
    fi
    if answers "$(port_of "$k")" && ctl "$k" await_startup --timeout 10 >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  die "node $k ($(name_of "$k")) did not serve AMQP on 127.0.0.1:$(port_of "$k") within ${BOOT_TIMEOUT}s; $(log_hint "$k")"
}

# The nodes node $1 knows as members ("Disk Nodes") or sees running ("Running Nodes").
cluster_nodes() {
  local k="$1" section="$2"
  ctl "$k" cluster_status 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' \
    | awk -v want="$section" '/^[A-Z]/ { on = ($0 == want); next } on && /@/ { print $1 }'
}

is_member() { cluster_nodes "$1" "Disk Nodes" | grep -qx -- "$(name_of 1)"; }

join_seed() {
  local k="$1" out; out="$(dir_of "$k")/log/join.log"
  say "node $k: joining $(name_of 1)"
  # A fresh node only (reset wipes it); the CLI echoes the node's boot warnings: kept in a file.
  for step in stop_app reset "join_cluster $(name_of 1)" start_app; do
    # shellcheck disable=SC2086  # the step's words are separate arguments
    ctl "$k" $step >>"$out" 2>&1 || die "node $k: 'rabbitmqctl $step' failed; see $out"
  done
}

# Wait until node $1 sees every node in $2... running.
wait_running() {
  local k="$1"; shift
  local deadline=$((SECONDS + BOOT_TIMEOUT)) missing
  while [ "$SECONDS" -lt "$deadline" ]; do
    local running; running="$(cluster_nodes "$k" "Running Nodes")"
    missing=""
    for j in "$@"; do grep -qx -- "$(name_of "$j")" <<<"$running" || missing="$missing $j"; done
    [ -z "$missing" ] && return 0
    sleep 0.5
  done
  die "node $k does not see node(s)$missing running after ${BOOT_TIMEOUT}s; $(log_hint "$k")"
}

stop_one() {
  local k="$1" pid port; port="$(port_of "$k")"
  if ! pid="$(vm_pid "$k")"; then
    say "node $k ($(name_of "$k")) is not running"
    return 0
  fi
  if ! CTL_TIMEOUT="$STOP_TIMEOUT" ctl "$k" stop "$(dir_of "$k")/pid" >/dev/null 2>&1; then
    say "node $k did not stop within ${STOP_TIMEOUT}s: killing its VM (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait_gone "$k" "$pid"
  say "node $k ($(name_of "$k")) stopped"
}

wait_gone() {  # until the VM has exited and its AMQP port is closed
  local k="$1" pid="$2" deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null || answers "$(port_of "$k")"; do
    [ "$SECONDS" -lt "$deadline" ] || die "node $k (pid $pid) is still running after ${STOP_TIMEOUT}s"
    sleep 0.2
  done
}

# --- the cluster -------------------------------------------------------------------------------
recorded_count() { cat "$(size_file)" 2>/dev/null || true; }

count() {
  local n; n="$(recorded_count)"
  [ -n "$n" ] || die "no cluster in $DIR with base port $BASE_PORT: run '$0 start' first"
  echo "$n"
}

check_index() {
  local k="$1" n="$2"
  case "$k" in ''|*[!0-9]*) die "node index must be a number from 1 to $n, not '$k'" ;; esac
  [ "$k" -ge 1 ] && [ "$k" -le "$n" ] || die "node index must be from 1 to $n (got $k)"
}

url() {
  local n="$1" urls=() k
  for k in $(seq 1 "$n"); do urls+=("amqp://guest:guest@127.0.0.1:$(port_of "$k")/"); done
  (IFS=,; echo "${urls[*]}")
}

start() {
  local n="${1:-}" recorded; recorded="$(recorded_count)"
  [ -n "$n" ] || n="${recorded:-$DEFAULT_COUNT}"
  case "$n" in ''|*[!0-9]*|0) die "the node count must be a positive number, not '$n'" ;; esac
  if [ -n "$recorded" ] && [ "$recorded" != "$n" ]; then
    die "the cluster in $DIR has $recorded nodes: '$0 stop', remove $DIR, then start $n"
  fi
  find_rabbitmq
  ensure_cookie
  local k launched=()
  for k in $(seq 1 "$n"); do
    if is_running "$k"; then
      say "node $k ($(name_of "$k")) is already running"
      continue
    fi
    write_node_files "$k"
    launch "$k"
    launched+=("$k")
  done
  echo "$n" >"$(size_file)"
  # All at once: a node that was not the last to stop waits at boot for the peers it knew.
  for k in "${launched[@]}"; do
    wait_booted "$k"
    say "node $k ($(name_of "$k")) serves AMQP on 127.0.0.1:$(port_of "$k")"
  done
  for k in $(seq 2 "$n"); do
    is_member "$k" || join_seed "$k"
  done
  wait_running 1 $(seq 1 "$n")
  say "cluster of $n nodes running in $DIR"
  echo "BUS_AMQP_URL=$(url "$n")"
}

start_node() {
  local k="$1" n; n="$(count)"; check_index "$k" "$n"
  find_rabbitmq
  ensure_cookie
  if is_running "$k"; then
    say "node $k ($(name_of "$k")) is already running"
  else
    [ -d "$(dir_of "$k")/mnesia" ] || die "node $k has never been started: run '$0 start' first"
    write_node_files "$k"
    launch "$k"
    wait_booted "$k"
  fi
  local others=() j
  for j in $(seq 1 "$n"); do is_running "$j" && others+=("$j"); done
  wait_running "$k" "${others[@]}"
  say "node $k ($(name_of "$k")) serves AMQP on 127.0.0.1:$(port_of "$k") and is in the cluster"
}

stop() {
  local n k; n="$(recorded_count)"
  if [ -z "$n" ]; then
    say "no cluster in $DIR with base port $BASE_PORT: nothing to stop"
    return 0
  fi
  find_rabbitmq
  # Node 1 last: the last node to stop is the one that may start alone.
  for k in $(seq "$n" -1 1); do stop_one "$k"; done
}

kill_node() {
  local k="$1" n pid; n="$(count)"; check_index "$k" "$n"
  if ! pid="$(vm_pid "$k")"; then
    say "node $k ($(name_of "$k")) is not running"
    return 0
  fi
  kill -KILL "$pid"
  wait_gone "$k" "$pid"
  say "node $k ($(name_of "$k")) killed"
}

status() {
  local n k down=0 first=""; n="$(count)"
  find_rabbitmq
  for k in $(seq 1 "$n"); do
    local pid state
    if pid="$(vm_pid "$k")" && answers "$(port_of "$k")"; then
      state="running (pid $pid)"; [ -n "$first" ] || first="$k"
    else
      state="stopped"; down=1
    fi
    echo "node $k  $(name_of "$k")  amqp 127.0.0.1:$(port_of "$k")  $state"
  done
  if [ -n "$first" ]; then
    echo "running nodes as node $first sees them: $(cluster_nodes "$first" "Running Nodes" | xargs)"
  fi
  echo "BUS_AMQP_URL=$(url "$n")"
  return $((down * 3))
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
  start) start "${1:-}" ;;
  stop) stop ;;
  stop-node) n="$(count)"; check_index "${1:-}" "$n"; find_rabbitmq; stop_one "$1" ;;
  kill-node) kill_node "${1:-}" ;;
  start-node) start_node "${1:-}" ;;
  status) status ;;
  url) url "$(count)" ;;
  ctl) n="$(count)"; check_index "${1:-}" "$n"; find_rabbitmq; k="$1"; shift; ctl "$k" "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
