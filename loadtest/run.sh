#!/usr/bin/env bash
# Runs one k6 scenario (or all) against BASE_URL. Scenarios are added with the load-test work.
set -euo pipefail
echo "loadtest: no k6 scenarios yet (scenario '${1:-all}', base URL '${2:-http://127.0.0.1:8080}'); see loadtest/README.md" >&2
exit 1
