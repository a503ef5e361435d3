#!/usr/bin/env bash
# OpenAPI-driven fuzzing of a running stack with schemathesis (from PyPI, into .stack/fuzz-venv):
#   scripts/fuzz.sh [BASE_URL]
# Runs every check schemathesis has (`--checks all`): fails on any 5xx, any status code the
# document does not list, any answer whose body or Content-Type does not match it, a request the
# document calls valid that is refused or one it calls invalid that is accepted, an undeclared
# method answered other than 405, and a missing credential not answered 401. With
# APP__ADMIN__TOKEN set (to the server's admin token) the admin API is fuzzed too; without it the
# admin operations are left out (the server answers them 404, as the contract says when the
# admin API is off). Start the stack first:
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
    -H "Queue-Token: $(fresh_token)" --checks all \
    --max-examples "${MAX_EXAMPLES:-50}" "$@"
}
echo "fuzz: pass 1, every operation but the admin API's"
run --exclude-path-regex '^/api/admin/'

# Leaving the queue and paying end the shared token's session; without them every protected
# operation is fuzzed with a live token.
echo "fuzz: pass 2, protected operations with a token that stays ACTIVE"
run --exclude-path /api/queue --exclude-path /api/payments --exclude-path-regex '^/api/admin/'
if [ -n "${APP__ADMIN__TOKEN:-}" ]; then
  # A schedule must lie in the future (opensAt, closesAt): what no document can say, so a
  # generated past time is rightly refused; that one check is left out for the admin API.
  echo "fuzz: pass 3, the admin API"
  run --include-path-regex '^/api/admin/' -H "Authorization: Bearer $APP__ADMIN__TOKEN" \
    --exclude-checks positive_data_acceptance
fi
