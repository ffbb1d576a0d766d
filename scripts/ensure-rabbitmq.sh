#!/usr/bin/env bash
# Make sure a RabbitMQ broker answers at BUS_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/):
# use it if it answers; else start an installed rabbitmq-server; else install it with apt (as
# root); else stop with a message that says how to fix it.
set -euo pipefail

URL="${BUS_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
# host and port from amqp://user:pass@host:port/vhost
hostport="${URL#*://}"; hostport="${hostport##*@}"; hostport="${hostport%%/*}"
HOST="${hostport%%:*}"; PORT="${hostport##*:}"
[ "$PORT" = "$hostport" ] && PORT=5672

answers() { timeout 2 bash -c "exec 3<>/dev/tcp/${HOST}/${PORT}" 2>/dev/null; }

wait_answer() {
  for _ in $(seq 1 "${1:-60}"); do answers && return 0; sleep 1; done
  return 1
}

if answers; then
  echo "rabbitmq: reachable at ${HOST}:${PORT}"
  exit 0
fi

case "$HOST" in
  127.*|localhost|::1) ;;
  *) echo "rabbitmq: ${HOST}:${PORT} does not answer. Start the broker there or fix BUS_AMQP_URL." >&2
     exit 1 ;;
esac

if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "rabbitmq: not installed; installing rabbitmq-server with apt"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
  else
    cat >&2 <<MSG
rabbitmq: no broker answers at ${HOST}:${PORT} and rabbitmq-server is not installed.
Fix it with one of:
  sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached
  or point BUS_AMQP_URL at a running RabbitMQ 3.10+ (quorum queues are required).
MSG
    exit 1
  fi
fi

echo "rabbitmq: starting rabbitmq-server"
PATH="$PATH:/usr/sbin"
if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
  systemctl start rabbitmq-server || rabbitmq-server -detached
else
  rabbitmq-server -detached || true
fi
if wait_answer 90; then
  echo "rabbitmq: reachable at ${HOST}:${PORT}"
  exit 0
fi
echo "rabbitmq: started but not answering at ${HOST}:${PORT} after 90 s; see /var/log/rabbitmq/" >&2
exit 1
