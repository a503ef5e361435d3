#!/usr/bin/env bash
# Waiting rooms side by side (issue #23): N instances (default 3) on a local 3-master Redis
# Cluster behind HAProxy (scripts/run-cluster.sh), on a database and a key prefix of the
# benchmark's own, dropped afterwards. It measures, and prints as Markdown:
#   1. four rooms with different rates (20, 50, 100, 200 per second), each with more people
#      waiting than it admits in the window: each room's admissions over WINDOW seconds (10)
#      against its own rate, all four running at once;
#   2. polls of people far from the front of a fifth room, spread round robin over the
#      instances by HAProxy: Redis commands (on every master, commands inside scripts
#      included) per poll, net of what the same time costs with no polls;
#   3. which master holds each room's line.
#   scripts/rooms-bench.sh            (needs the release binary: cargo build --release -p ticketing_app)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
n=${N:-3}
window=${WINDOW:-10}
port=${LB_PORT:-18080}
database_base=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ticketing}
database_base=${database_base%/*}
database=ticketing_rooms_bench
prefix="bench-rooms-$$"
admin_token=a-benchmark-admin-token-of-32-characters-or-more

psql "$database_base/postgres" -qc "DROP DATABASE IF EXISTS $database" >/dev/null
psql "$database_base/postgres" -qc "CREATE DATABASE $database" >/dev/null
cluster_pid=
cleanup() {
  [ -n "$cluster_pid" ] && kill "$cluster_pid" 2>/dev/null || true
  LB_PORT=$port scripts/run-cluster.sh "$n" down >/dev/null 2>&1 || true
  for p in $(scripts/redis-cluster.sh urls | tr ',' '\n' | sed 's/.*://'); do
    redis-cli -p "$p" --scan --pattern "{$prefix*" 2>/dev/null | xargs -r -n 500 redis-cli -p "$p" del >/dev/null 2>&1 || true
  done
  psql "$database_base/postgres" -qc "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
}
trap cleanup EXIT

export DATABASE_URL="$database_base/$database" APP__REDIS__KEY_PREFIX="$prefix" \
  APP__ADMIN__TOKEN="$admin_token" APP__QUEUE__ENTRY_RATE_PER_CLIENT=0 RUST_LOG=warn
LB_PORT=$port scripts/run-cluster.sh "$n" up > "$root/.stack/rooms-bench-cluster.log" 2>&1 &
cluster_pid=$!
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { echo "rooms-bench: the cluster did not come up; see .stack/rooms-bench-cluster.log" >&2; exit 1; }

BASE="http://127.0.0.1:$port" ADMIN="$admin_token" PREFIX="$prefix" WINDOW="$window" \
  INSTANCES="$n" MASTERS="$(scripts/redis-cluster.sh urls)" python3 - <<'PY'
import http.client, json, os, subprocess, threading, time
from concurrent.futures import ThreadPoolExecutor

base = os.environ['BASE'].removeprefix('http://')
host, port = base.split(':')
admin = os.environ['ADMIN']
prefix = os.environ['PREFIX']
window = float(os.environ['WINDOW'])
instances = int(os.environ['INSTANCES'])
masters = [u.rsplit(':', 1)[1] for u in os.environ['MASTERS'].split(',')]
local = threading.local()

def call(method, path, body=None, headers=None):
    if not hasattr(local, 'conn'):
        local.conn = http.client.HTTPConnection(host, int(port), timeout=30)
    hdrs = {'content-type': 'application/json'}
    hdrs.update(headers or {})
    for attempt in range(3):
        try:
            local.conn.request(method, path, json.dumps(body) if body is not None else None, hdrs)
            r = local.conn.getresponse()
            data = r.read()
            return r.status, (json.loads(data) if data else None)
        except (http.client.HTTPException, OSError):
            local.conn = http.client.HTTPConnection(host, int(port), timeout=30)
    raise RuntimeError(f'{method} {path} failed')

def as_admin(method, path, body=None):
    return call(method, path, body, {'authorization': f'Bearer {admin}'})

def redis(port, *args):
    return subprocess.run(['redis-cli', '-p', port, *args], capture_output=True, text=True).stdout

def commands():
    total = 0
    for m in masters:
        for line in redis(m, 'info', 'stats').splitlines():
            if line.startswith('total_commands_processed:'):
                total += int(line.split(':')[1])
    return total

rates = {'rate-20': (20, 120), 'rate-50': (50, 121), 'rate-100': (100, 201), 'rate-200': (200, 202)}
people = {room: int(rate * window * 1.6) + 200 for room, (rate, _) in rates.items()}
for room, (rate, performance) in rates.items():
    status, body = as_admin('POST', '/api/admin/rooms', {
        'id': room, 'name': room, 'performanceIds': [performance], 'admitPerSecond': rate,
        'maxActive': 100000, 'activeTtlSeconds': 3600, 'paused': True})
    assert status == 201, (status, body)
status, body = as_admin('POST', '/api/admin/rooms', {
    'id': 'far', 'name': 'far', 'performanceIds': [301], 'admitPerSecond': 1, 'paused': True})
assert status == 201, (status, body)
time.sleep(1.2)  # every instance follows within a second

def enter(room):
    status, body = call('POST', '/api/queue', {'roomId': room})
    assert status == 200, (status, body)
    return body['token']

started = time.time()
with ThreadPoolExecutor(32) as pool:
    for room, count in people.items():
        list(pool.map(enter, [room] * count))
    far_tokens = list(pool.map(enter, ['far'] * 3000))
entered = sum(people.values()) + 3000
print(f'Entered {entered} people through the balancer in {time.time() - started:.1f} s.\n')

def active():
    status, rooms = as_admin('GET', '/api/admin/rooms')
    return {r['id']: r['active'] for r in rooms}

for room in rates:
    assert as_admin('PATCH', f'/api/admin/rooms/{room}', {'paused': False})[0] == 200
time.sleep(2)  # past the first, partial second of admissions
before, t0 = active(), time.time()
time.sleep(window)
after, t1 = active(), time.time()
print(f'### Admissions per room, {instances} instances, all four rooms at once, {t1 - t0:.1f} s\n')
print('| room | rate | admitted | per second | vs. its rate |')
print('|---|---:|---:|---:|---:|')
for room, (rate, _) in rates.items():
    admitted = after[room] - before[room]
    per_second = admitted / (t1 - t0)
    print(f'| {room} | {rate} | {admitted} | {per_second:.1f} | {per_second / rate - 1:+.1%} |')

# Far from the front of a paused room: tokens 1001.. are beyond its keep-alive window (1,000).
far = far_tokens[1100:]
for room in rates:
    as_admin('PATCH', f'/api/admin/rooms/{room}', {'paused': True})
time.sleep(1.5)
idle_before, i0 = commands(), time.time()
time.sleep(5)
idle_cost = (commands() - idle_before) / (time.time() - i0)
polls = 0
def poll(token):
    status, body = call('GET', '/api/queue', headers={'queue-token': token})
    assert status == 200 and body['status'] == 'WAITING', (status, body)
busy_before, b0 = commands(), time.time()
with ThreadPoolExecutor(16) as pool:
    for _ in range(5):
        list(pool.map(poll, far))
        polls += len(far)
busy_seconds = time.time() - b0
busy = commands() - busy_before
net = busy - idle_cost * busy_seconds
print(f'\n### Polls far from the front, round robin over {instances} instances\n')
print(f'{polls} polls of {len(far)} people (places 1,101..3,000 of a paused room, keep-alive window 1,000) in {busy_seconds:.1f} s ({polls / busy_seconds:.0f}/s).')
print(f'Redis commands on all masters: {busy} during the polls; {idle_cost:.0f}/s with no polls (the instances\' own steps); net {net:.0f}, **{max(net, 0) / polls:.4f} per poll**.')

print('\n### Where each room\'s line lives\n')
print('| room | hash tag | slot | master |')
print('|---|---|---:|---|')
for room in ['default', *rates, 'far']:
    tag = prefix if room == 'default' else f'{prefix}:room:{room}'
    slot = int(redis(masters[0], 'cluster', 'keyslot', '{' + tag + '}').strip())
    owner = '?'
    for line in redis(masters[0], 'cluster', 'nodes').splitlines():
        fields = line.split()
        for spec in fields[8:]:
            lo, _, hi = spec.partition('-')
            if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                owner = fields[1].split('@')[0]
    print(f'| {room} | `{{{tag}}}` | {slot} | {owner} |')
PY
