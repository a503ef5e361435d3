#!/usr/bin/env bash
# Makes PostgreSQL and Redis answer where the settings point (DATABASE_URL, REDIS_URL, defaults
# 127.0.0.1:5432 and 127.0.0.1:6379): uses running servers when they answer, otherwise starts
# project-local instances under .stack/ from the installed server binaries.
#   scripts/stack.sh up | down | status
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stack="$root/.stack"
install_hint="install the servers with: apt-get install postgresql redis-server"

database_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ticketing}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}

# host and port of a URL such as scheme://user:pw@host:port/path
url_host() { local rest=${1#*://}; rest=${rest##*@}; rest=${rest%%/*}; rest=${rest%%\?*}; echo "${rest%%:*}"; }
url_port() {
  local rest=${1#*://}; rest=${rest##*@}; rest=${rest%%/*}; rest=${rest%%\?*}
  if [[ $rest == *:* ]]; then echo "${rest##*:}"; else echo "$2"; fi
}
pg_host=$(url_host "$database_url"); pg_port=$(url_port "$database_url" 5432)
redis_host=$(url_host "$redis_url"); redis_port=$(url_port "$redis_url" 6379)

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
redis_answers() {
  (exec 3<>"/dev/tcp/$redis_host/$redis_port" && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null
}
pg_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$pg_host" -p "$pg_port" -t 2
  else
    tcp_open "$pg_host" "$pg_port"
  fi
}
wait_for() { local what=$1 check=$2; for _ in $(seq 1 50); do $check && return 0; sleep 0.2; done; echo "stack: $what did not start; see .stack/*.log" >&2; return 1; }

pg_bin_dir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$found" ] && [ -x "$found/postgres" ]; then echo "$found"; return; fi
  if command -v postgres >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v postgres)")"; return; fi
  return 1
}

# PostgreSQL refuses to run as root: as root, run it as the 'postgres' user, with its data
# where that user can reach it.
as_pg() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
pg_data_dir() {
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres; fi
    local dir; dir="/var/tmp/ticketing-stack-$(echo "$root" | cksum | cut -d' ' -f1)"
    mkdir -p "$dir" && chown postgres "$dir"
    echo "$dir/postgres"
  else
    echo "$stack/postgres"
  fi
}

start_postgres() {
  local bin; bin=$(pg_bin_dir) || { echo "stack: PostgreSQL is not answering at $pg_host:$pg_port and is not installed; $install_hint" >&2; return 1; }
  local data; data=$(pg_data_dir)
  local sockets; sockets=$(dirname "$data")
  if [ ! -f "$data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >"$stack/initdb.log" 2>&1 \
      || { echo "stack: initdb failed, see .stack/initdb.log" >&2; return 1; }
  fi
  ln -sfn "$data" "$stack/postgres-data" 2>/dev/null || true
  echo "stack: starting a project-local PostgreSQL on $pg_host:$pg_port ($data)"
  # The log sits beside the data, where the server's user can write even when the checkout is
  # private to root; .stack/postgres.log links to it.
  ln -sfn "$sockets/postgres.log" "$stack/postgres.log"
  as_pg "$bin/pg_ctl" -D "$data" -l "$sockets/postgres.log" -w -t 30 \
    -o "-c listen_addresses=$pg_host -p $pg_port -k $sockets -c max_connections=200 -c fsync=on" start >/dev/null
  wait_for PostgreSQL pg_answers
}

start_redis() {
  command -v redis-server >/dev/null 2>&1 || { echo "stack: Redis is not answering at $redis_host:$redis_port and is not installed; $install_hint" >&2; return 1; }
  mkdir -p "$stack/redis"
  echo "stack: starting a project-local Redis on $redis_host:$redis_port (append-only file in .stack/redis)"
  # appendonly: a restart keeps everyone's place in the waiting queue.
  redis-server --bind "$redis_host" --port "$redis_port" --daemonize yes \
    --dir "$stack/redis" --appendonly yes --appendfsync everysec --save "" \
    --pidfile "$stack/redis.pid" --logfile "$stack/redis.log"
  wait_for Redis redis_answers
}

up() {
  mkdir -p "$stack"
  if pg_answers; then echo "stack: PostgreSQL answers at $pg_host:$pg_port"; else start_postgres; fi
  if redis_answers; then echo "stack: Redis answers at $redis_host:$redis_port"; else start_redis; fi
}

down() {
  local data="$stack/postgres-data"
  if [ -e "$data/postmaster.pid" ]; then
    local bin; bin=$(pg_bin_dir)
    as_pg "$bin/pg_ctl" -D "$(readlink -f "$data")" -m fast -w stop >/dev/null && echo "stack: stopped the project-local PostgreSQL"
  fi
  if [ -f "$stack/redis.pid" ] && kill -0 "$(cat "$stack/redis.pid")" 2>/dev/null; then
    kill "$(cat "$stack/redis.pid")" && echo "stack: stopped the project-local Redis"
    for _ in $(seq 1 50); do kill -0 "$(cat "$stack/redis.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
  fi
  return 0
}

status() {
  pg_answers && echo "PostgreSQL: up at $pg_host:$pg_port" || echo "PostgreSQL: down at $pg_host:$pg_port"
  redis_answers && echo "Redis: up at $redis_host:$redis_port" || echo "Redis: down at $redis_host:$redis_port"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
