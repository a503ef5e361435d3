#!/usr/bin/env bash
# `make run-cluster N=3`: N app instances on a local 3-master Redis Cluster, behind HAProxy on
# 127.0.0.1:8080 (round robin, health-checked on /readyz), with the demo data.
#   scripts/run-cluster.sh [N] [up|down]
# Instances listen on 127.0.0.1:8081.. and trust HAProxy's X-Forwarded-For. HAProxy comes from
# Debian's haproxy package (installed as root when missing). Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
n=${1:-3}
action=${2:-up}
stack="$root/.stack/run-cluster"
binary="${CARGO_TARGET_DIR:-$root/target}/release/ticketing"
listen_port=${LB_PORT:-8080}

stop_all() {
  for pid_file in "$stack"/*.pid; do
    [ -f "$pid_file" ] || continue
    kill "$(cat "$pid_file")" 2>/dev/null || true
    rm -f "$pid_file"
  done
}

if [ "$action" = down ]; then stop_all; echo "run-cluster: stopped"; exit 0; fi

if ! command -v haproxy >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "run-cluster: installing haproxy"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends haproxy >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends haproxy >/dev/null; }
  else
    echo "run-cluster: haproxy is missing: apt-get install haproxy" >&2; exit 1
  fi
fi

scripts/stack.sh up
scripts/redis-cluster.sh up
cluster_urls=$(scripts/redis-cluster.sh urls)
cargo build --release -p ticketing_app
mkdir -p "$stack"
stop_all

export REDIS_CLUSTER_URLS="$cluster_urls"
export APP__SERVER__TRUSTED_PROXIES=127.0.0.1
"$binary" seed

backends=""
backups=""
for i in $(seq 1 "$n"); do
  port=$((8080 + i))
  APP__SERVER__PORT=$port "$binary" serve > "$stack/app-$i.log" 2>&1 &
  echo $! > "$stack/app-$i.pid"
  backends+="    server app$i 127.0.0.1:$port check inter 1s fall 2 rise 1"$'\n'
  # The same instance, unchecked, as a backup: when every instance fails /readyz (Redis down
  # for all of them) traffic still reaches them, and they answer what they can from memory
  # (fail static) and 503 with Retry-After for the rest, instead of the balancer's own 503.
  backups+="    server app$i-direct 127.0.0.1:$port backup"$'\n'
done

cat > "$stack/haproxy.cfg" <<CFG
global
    maxconn 8000
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch
frontend ticketing
    bind 127.0.0.1:$listen_port
    option forwardfor
    default_backend instances
backend instances
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    option allbackups
$backends$backups
CFG
haproxy -f "$stack/haproxy.cfg" -p "$stack/haproxy.pid" -D
trap 'stop_all; echo "run-cluster: stopped"; exit 0' INT TERM

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$listen_port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
echo "run-cluster: $n instances behind HAProxy on http://127.0.0.1:$listen_port (logs: .stack/run-cluster/)"
while true; do sleep 3600 & wait $!; done
