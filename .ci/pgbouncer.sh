#!/usr/bin/env bash
# Starts Debian's PgBouncer in transaction pooling mode on 127.0.0.1:${PGBOUNCER_PORT:-6432}, in front of the
# PostgreSQL on 127.0.0.1:${PGBOUNCER_UPSTREAM_PORT:-5432} (every database name is forwarded). Installs it when
# missing. Prints the folder holding its configuration, log and pid file.
# The session settings the service would send at connect go in connect_query instead (docs/scaling.md).
set -euo pipefail
PORT="${PGBOUNCER_PORT:-6432}"
UPSTREAM_PORT="${PGBOUNCER_UPSTREAM_PORT:-5432}"
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
fi
DIR="$(mktemp -d /tmp/acct-pgbouncer-XXXXXX)"
cat >"$DIR/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=${UPSTREAM_PORT} connect_query='SET TimeZone TO ''UTC''; SET default_transaction_isolation TO ''read committed''; SET lock_timeout TO 3000; SET statement_timeout TO 60000'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${PORT}
unix_socket_dir =
auth_type = trust
auth_file = ${DIR}/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 40
max_db_connections = 60
server_idle_timeout = 30
logfile = ${DIR}/pgbouncer.log
pidfile = ${DIR}/pgbouncer.pid
INI
echo '"postgres" ""' >"$DIR/userlist.txt"
chown -R postgres "$DIR" 2>/dev/null || true
# PgBouncer refuses to run as root: -u drops to the postgres user.
if [ "$(id -u)" = 0 ]; then /usr/sbin/pgbouncer -d -u postgres "$DIR/pgbouncer.ini"; else /usr/sbin/pgbouncer -d "$DIR/pgbouncer.ini"; fi
for _ in $(seq 1 50); do
  if node -e "require('net').connect(${PORT},'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))"; then
    echo "$DIR"; exit 0
  fi
  sleep 0.1
done
echo "pgbouncer did not start; log:" >&2; cat "$DIR/pgbouncer.log" >&2; exit 1
