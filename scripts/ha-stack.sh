#!/usr/bin/env bash
# A local highly available PostgreSQL (issue #26): three PostgreSQL 15 nodes under Patroni, one
# etcd as Patroni's store, `synchronous_mode: true` (a commit is acknowledged only once a standby
# has it, and Patroni promotes only that standby), so losing the primary loses nothing
# acknowledged. The service reaches whichever node is primary through a multi-host URL with
# `target_session_attrs=read-write` (printed by `url`).
#   scripts/ha-stack.sh up | down | status | url | primary | kill-primary | start NODE | wait-primary [OLD]
#   make stack-up PG=ha / make stack-down PG=ha / make stack-status PG=ha
#
# Settings (environment):
#   HA_PORT_BASE (5440): PostgreSQL on BASE+1..3, Patroni's REST API on BASE+11..13, etcd on
#                        BASE+20 (clients) and BASE+21 (peers) -- clear of a PostgreSQL on 5432;
#   HA_NAME (ha): the cluster's name and directory: .stack/$HA_NAME for links, logs, pids;
#   HA_DATABASE (ticketing): the database created on the cluster for the service.
# Data and logs live in /var/tmp/ticketing-$HA_NAME-<checkout hash>/ (the postgres user must reach
# them when run as root); .stack/$HA_NAME/ links to them. patroni and etcd (Debian's `patroni`,
# `etcd-server`) are installed with apt-get when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
name=${HA_NAME:-ha}
base=${HA_PORT_BASE:-5440}
database=${HA_DATABASE:-ticketing}
stack="$root/.stack/$name"
work="/var/tmp/ticketing-$name-$(echo "$root" | cksum | cut -d' ' -f1)"
etcd_port=$((base + 20))
etcd_peer=$((base + 21))
nodes=(1 2 3)
pg_port() { echo $((base + $1)); }
rest_port() { echo $((base + 10 + $1)); }

pg_bin_dir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$found" ] && [ -x "$found/postgres" ] && { echo "$found"; return; }
  echo "ha-stack: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  return 1
}

ensure_installed() {
  local missing=()
  command -v patroni >/dev/null 2>&1 || missing+=(patroni)
  command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
  command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "ha-stack: missing ${missing[*]}: apt-get install ${missing[*]} (as root)" >&2
    return 1
  fi
  echo "ha-stack: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# PostgreSQL (and so Patroni, its parent) refuses to run as root.
as_pg() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

url() {
  local hosts=() n
  for n in "${nodes[@]}"; do hosts+=("127.0.0.1:$(pg_port "$n")"); done
  local IFS=,
  echo "postgres://postgres@${hosts[*]}/$database?target_session_attrs=read-write"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
  local n=$1 bin=$2
  cat >"$work/node$n.yml" <<EOF
scope: ticketing-$name
name: node$n
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:$(rest_port "$n")
  connect_address: 127.0.0.1:$(rest_port "$n")
etcd3:
  hosts: 127.0.0.1:$etcd_port
bootstrap:
  dcs:
    # A dead primary's leader key expires after ttl seconds; then a synchronous standby is
    # promoted. loop_wait + 2 * retry_timeout <= ttl, as Patroni asks.
    ttl: 10
    loop_wait: 2
    retry_timeout: 4
    maximum_lag_on_failover: 1048576
    # Commits wait for one synchronous standby; only it may be promoted. Not strict: with no
    # standby left at all the primary goes on alone rather than stopping every write.
    synchronous_mode: true
    synchronous_node_count: 1
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        max_connections: 200
        wal_log_hints: 'on'
        fsync: 'on'
        wal_keep_size: 256MB
  initdb:
    - encoding: UTF8
    - no-locale
    - auth: trust
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:$(pg_port "$n")
  connect_address: 127.0.0.1:$(pg_port "$n")
  data_dir: $work/node$n
  bin_dir: $bin
  pgpass: $work/pgpass$n
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: '$work'
tags:
  nofailover: false
  noloadbalance: false
EOF
}

start_node() {
  local n=$1
  if alive "$work/patroni$n.pid"; then return 0; fi
  # setpriv and setsid exec (no fork), so $! is Patroni itself: kill-primary can kill -9 it.
  if [ "$(id -u)" = 0 ]; then
    (cd / && exec setpriv --reuid=postgres --regid=postgres --init-groups setsid patroni "$work/node$n.yml") \
      >>"$work/patroni$n.log" 2>&1 </dev/null &
  else
    setsid patroni "$work/node$n.yml" >>"$work/patroni$n.log" 2>&1 </dev/null &
  fi
  echo $! >"$work/patroni$n.pid"
}

rest() { curl -fsS --max-time 1 "http://127.0.0.1:$(rest_port "$1")/$2" 2>/dev/null; }

# The node (1..3) whose Patroni says it is the primary and whose PostgreSQL takes writes.
primary() {
  local n
  for n in "${nodes[@]}"; do
    if rest "$n" primary >/dev/null; then echo "$n"; return 0; fi
  done
  return 1
}

# Waits until a primary other than $1 (if given) runs, and prints it.
wait_primary() {
  local old=${1:-} n
  for _ in $(seq 1 ${HA_WAIT_TENTHS:-900}); do
    n=$(primary || true)
    if [ -n "$n" ] && [ "$n" != "$old" ]; then echo "$n"; return 0; fi
    sleep 0.1
  done
  echo "ha-stack: no primary (other than '${old}') within $(( ${HA_WAIT_TENTHS:-900} / 10 )) s; see $stack/*.log" >&2
  return 1
}

up() {
  ensure_installed
  local bin; bin=$(pg_bin_dir)
  mkdir -p "$stack" "$work"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    chown postgres "$work"
  fi
  chmod 700 "$work"
  ln -sfn "$work" "$stack/data"
  if ! alive "$work/etcd.pid"; then
    echo "ha-stack: starting etcd on 127.0.0.1:$etcd_port"
    setsid etcd --name "ticketing-$name" --data-dir "$work/etcd" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
      --initial-cluster "ticketing-$name=http://127.0.0.1:$etcd_peer" \
      >>"$work/etcd.log" 2>&1 </dev/null &
    echo $! >"$work/etcd.pid"
    for _ in $(seq 1 100); do
      ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$etcd_port" endpoint health >/dev/null 2>&1 && break
      sleep 0.1
    done
  fi
  local n
  for n in "${nodes[@]}"; do
    write_config "$n" "$bin"
    [ "$(id -u)" = 0 ] && chown postgres "$work/node$n.yml"
    ln -sfn "$work/patroni$n.log" "$stack/patroni$n.log"
  done
  echo "ha-stack: starting Patroni nodes on PostgreSQL ports $(pg_port 1)-$(pg_port 3) (data in $work)"
  # The first node bootstraps the cluster alone; the others then copy it with pg_basebackup.
  # initdb and Patroni's start take over a minute on two busy cores: up to 3 minutes.
  start_node 1
  local first; first=$(HA_WAIT_TENTHS=1800 wait_primary) || return 1
  for n in "${nodes[@]}"; do start_node "$n"; done
  psql "postgres://postgres@127.0.0.1:$(pg_port "$first")/postgres" -qAtc \
    "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1 \
    || psql "postgres://postgres@127.0.0.1:$(pg_port "$first")/postgres" -qc "CREATE DATABASE $database"
  # Ready when a synchronous standby streams: only then is a commit on two machines.
  for _ in $(seq 1 900); do
    [ "$(sync_standbys)" -ge 1 ] && break
    sleep 0.1
  done
  [ "$(sync_standbys)" -ge 1 ] || { echo "ha-stack: no synchronous standby; see $stack/*.log" >&2; return 1; }
  status
  echo "DATABASE_URL=$(url)"
}

# How many standbys the primary replicates to synchronously.
sync_standbys() {
  local p; p=$(primary) || { echo 0; return; }
  psql "postgres://postgres@127.0.0.1:$(pg_port "$p")/postgres" -qAtc \
    "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')" 2>/dev/null || echo 0
}

# kill -9 of the primary's Patroni and its postmaster: the machine is gone, nobody demotes it.
kill_primary() {
  local p; p=$(primary) || { echo "ha-stack: no primary to kill" >&2; return 1; }
  local postmaster; postmaster=$(head -n 1 "$work/node$p/postmaster.pid" 2>/dev/null || true)
  kill -9 "$(cat "$work/patroni$p.pid")" 2>/dev/null || true
  [ -n "$postmaster" ] && kill -9 "$postmaster" 2>/dev/null || true
  # The postmaster's children die with it when they next notice; do not wait for that.
  pkill -9 -P "${postmaster:-0}" 2>/dev/null || true
  echo "$p"
}

down() {
  local n
  for n in "${nodes[@]}"; do
    if alive "$work/patroni$n.pid"; then kill "$(cat "$work/patroni$n.pid")" 2>/dev/null || true; fi
  done
  for n in "${nodes[@]}"; do
    for _ in $(seq 1 150); do alive "$work/patroni$n.pid" || break; sleep 0.1; done
    # One still starting may not answer TERM in time: it must not outlive its data directory.
    if alive "$work/patroni$n.pid"; then kill -9 "$(cat "$work/patroni$n.pid")" 2>/dev/null || true; fi
    # A Patroni killed -9 leaves its PostgreSQL running: stop that too.
    if [ -f "$work/node$n/postmaster.pid" ]; then
      as_pg "$(pg_bin_dir)/pg_ctl" -D "$work/node$n" -m immediate -w stop >/dev/null 2>&1 || true
    fi
  done
  if alive "$work/etcd.pid"; then kill "$(cat "$work/etcd.pid")" 2>/dev/null || true; fi
  for _ in $(seq 1 50); do alive "$work/etcd.pid" || break; sleep 0.1; done
  echo "ha-stack: stopped"
  if [ "${HA_PURGE:-0}" = 1 ]; then rm -rf "$work" "$stack"; fi
}

status() {
  local n role
  for n in "${nodes[@]}"; do
    role=$(rest "$n" patroni | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("role","?"), d.get("state","?"))' 2>/dev/null || echo "down")
    echo "node$n: 127.0.0.1:$(pg_port "$n") $role"
  done
  echo "synchronous standbys: $(sync_standbys)"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  url) url ;;
  primary) primary ;;
  wait-primary) wait_primary "${2:-}" ;;
  kill-primary) kill_primary ;;
  start) start_node "${2:?node number}" ;;
  *) echo "usage: $0 up|down|status|url|primary|wait-primary [OLD]|kill-primary|start NODE" >&2; exit 2 ;;
esac
