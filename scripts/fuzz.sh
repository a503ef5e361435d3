#!/usr/bin/env bash
# OpenAPI-driven fuzzing of a running stack with schemathesis (from PyPI, into .stack/fuzz-venv):
#   scripts/fuzz.sh [BASE_URL]
# Fails on any 5xx. Start the stack first: APP__QUEUE__ENTRY_RATE_PER_CLIENT=0 make run
set -euo pipefail
cd "$(dirname "$0")/.."
base_url=${1:-${BASE_URL:-http://127.0.0.1:8080}}
venv=.stack/fuzz-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "fuzz: installing schemathesis from PyPI into $venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install --quiet schemathesis
fi
token=$(curl -fsS -X POST "$base_url/api/queue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
exec "$venv/bin/schemathesis" run "$base_url/api/openapi.json" --url "$base_url" \
  -H "Queue-Token: $token" --checks not_a_server_error --max-examples "${MAX_EXAMPLES:-50}"
