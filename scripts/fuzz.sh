#!/usr/bin/env bash
# OpenAPI-driven fuzzing of a running stack with schemathesis (from PyPI, into .stack/fuzz-venv):
#   scripts/fuzz.sh [BASE_URL]
# Fails on any 5xx, any status code the document does not list for the operation, and any answer
# whose body or Content-Type does not match the document. Start the stack first:
# APP__QUEUE__ENTRY_RATE_PER_CLIENT=0 make run. `.ci/run` starts a server of its own and runs this.
# MAX_EXAMPLES (50) sets how many inputs each operation gets per phase.
set -euo pipefail
cd "$(dirname "$0")/.."
base_url=${1:-${BASE_URL:-http://127.0.0.1:8080}}
venv=.stack/fuzz-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  echo "fuzz: installing schemathesis from PyPI into $venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install --quiet schemathesis
fi
fresh_token() {
  curl -fsS -X POST "$base_url/api/queue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
run() {
  "$venv/bin/schemathesis" run "$base_url/api/openapi.json" --url "$base_url" \
    -H "Queue-Token: $(fresh_token)" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "${MAX_EXAMPLES:-50}" "$@"
}
echo "fuzz: pass 1, every operation"
run
# Leaving the queue and paying end the shared token's session; without them every protected
# operation is fuzzed with a live token.
echo "fuzz: pass 2, protected operations with a token that stays ACTIVE"
run --exclude-path /api/queue --exclude-path /api/payments
