#!/usr/bin/env bash
# Raises the arrival rate of one endpoint family until p(99) < 100 ms with no errors stops
# holding, and prints the highest rate that held:
#   loadtest/find-max.sh FAMILY [BASE_URL] [RATES...]
# FAMILY: catalog, seats, queue or holds (see scenarios/open-model.js). Each step runs 20 s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
family=${1:?usage: find-max.sh FAMILY [BASE_URL] [RATES...]}
base_url=${2:-${BASE_URL:-http://127.0.0.1:8080}}
shift $(( $# >= 2 ? 2 : $# ))
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(250 500 1000 1500 2000 3000 4000 5000 6000 8000)
best=0
for rate in "${rates[@]}"; do
  # Holds fill the seats and queue entries fill the line: each step starts from the demo state.
  case "$family" in holds|queue) RESET=1 ;; *) RESET=0 ;; esac
  if RESET=$RESET FAMILY=$family RATE=$rate "$here/run.sh" open-model "$base_url" >"$here/results/.step.txt" 2>&1; then
    p99=$(grep -Eo 'p\(99\)=[0-9.]+[a-zµ]+' "$here/results/.step.txt" | head -1 || true)
    echo "$family at $rate/s: passed ($p99)"
    best=$rate
  else
    p99=$(grep -Eo 'p\(99\)=[0-9.]+[a-zµ]+' "$here/results/.step.txt" | head -1 || true)
    echo "$family at $rate/s: failed (${p99:-no p99}); see the last results/open-model-*.txt"
    break
  fi
done
echo "$family: highest rate with p(99) < 100 ms and no errors: $best/s"
