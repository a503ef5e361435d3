#!/usr/bin/env bash
# A local Redis Cluster of three masters from the installed redis-server, under .stack/:
#   scripts/redis-cluster.sh up | down | status | urls
# Ports REDIS_CLUSTER_PORTS (default "7001 7002 7003"), each with an append-only file, under
# REDIS_CLUSTER_DIR (default .stack/redis-cluster). `up` is
# idempotent: a cluster that already answers "cluster_state:ok" is left as it is. `urls` prints
# the value for REDIS_CLUSTER_URLS.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${REDIS_CLUSTER_DIR:-$(pwd)/.stack/redis-cluster}"
read -r -a ports <<< "${REDIS_CLUSTER_PORTS:-7001 7002 7003}"

need() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 \
    || { echo "redis-cluster: redis-server is not installed; apt-get install redis-server" >&2; exit 1; }
}
answers() { redis-cli -p "$1" ping 2>/dev/null | grep -q PONG; }
cluster_ok() { redis-cli -p "${ports[0]}" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; }
urls() { local list=(); for port in "${ports[@]}"; do list+=("redis://127.0.0.1:$port"); done; (IFS=,; echo "${list[*]}"); }

up() {
  need
  if cluster_ok; then echo "redis-cluster: up on ${ports[*]}"; return 0; fi
  mkdir -p "$dir"
  for port in "${ports[@]}"; do
    if ! answers "$port"; then
      mkdir -p "$dir/$port"
      redis-server --port "$port" --bind 127.0.0.1 --daemonize yes \
        --cluster-enabled yes --cluster-config-file "$dir/$port/nodes.conf" \
        --cluster-node-timeout 2000 --dir "$dir/$port" --appendonly yes --save "" \
        --pidfile "$dir/$port.pid" --logfile "$dir/$port.log"
    fi
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 1 50); do answers "$port" && break; sleep 0.1; done
    answers "$port" || { echo "redis-cluster: node $port did not start; see $dir/$port.log" >&2; exit 1; }
  done
  if ! cluster_ok; then
    local nodes=(); for port in "${ports[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  fi
  for _ in $(seq 1 100); do cluster_ok && break; sleep 0.1; done
  cluster_ok || { echo "redis-cluster: the cluster did not become ready" >&2; exit 1; }
  echo "redis-cluster: up on ${ports[*]} (REDIS_CLUSTER_URLS=$(urls))"
}

down() {
  local pids=()
  for port in "${ports[@]}"; do
    if [ -f "$dir/$port.pid" ] && kill -0 "$(cat "$dir/$port.pid")" 2>/dev/null; then
      pids+=("$(cat "$dir/$port.pid")")
      kill "${pids[-1]}" 2>/dev/null || true
    fi
  done
  # Wait for them to finish writing before their files are removed.
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$dir" 2>/dev/null || true
  echo "redis-cluster: stopped and removed"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) if cluster_ok; then echo "redis-cluster: ok on ${ports[*]}"; else echo "redis-cluster: not ready"; fi ;;
  urls) urls ;;
  *) echo "usage: scripts/redis-cluster.sh up|down|status|urls" >&2; exit 2 ;;
esac
