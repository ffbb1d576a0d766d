#!/usr/bin/env bash
# The test suite runs the store tests against PostgreSQL too. Make sure one answers on
# 127.0.0.1:5432 for the `postgres` role: use it if it answers; else start an installed
# cluster; else install PostgreSQL with apt (as root) and let local TCP connections in without a
# password (a developer machine's test database only); else stop with what to do.
set -euo pipefail

HOST=127.0.0.1
PORT="${BUS_TEST_POSTGRES_PORT:-5432}"

answers() { timeout 2 bash -c "exec 3<>/dev/tcp/${HOST}/${PORT}" 2>/dev/null; }

if answers; then
  echo "postgresql: reachable at ${HOST}:${PORT}"
  exit 0
fi

start_clusters() {
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
      || pg_ctlcluster "$version" main start || true
  done
}

installed_now=no
if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "postgresql: not installed; installing it with apt"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    installed_now=yes
  else
    cat >&2 <<MSG
postgresql: nothing answers at ${HOST}:${PORT} and PostgreSQL is not installed.
Fix it with: sudo apt-get install postgresql, then allow the postgres role on 127.0.0.1
(or set BUS_TEST_POSTGRES_DSN=postgresql://user:password@127.0.0.1:5432/postgres).
MSG
    exit 1
  fi
fi

if [ "$installed_now" = yes ]; then
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    # Only on a cluster this script just created: its tests connect as postgres over loopback.
    sed -i 's/^\(host\s\+all\s\+all\s\+127\.0\.0\.1\/32\s\+\).*/\1trust/' "$hba"
  done
fi

echo "postgresql: starting the installed cluster"
start_clusters
for _ in $(seq 1 30); do
  if answers; then echo "postgresql: reachable at ${HOST}:${PORT}"; exit 0; fi
  sleep 1
done
echo "postgresql: started but not answering at ${HOST}:${PORT}; see /var/log/postgresql/" >&2
exit 1
