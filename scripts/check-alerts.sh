#!/usr/bin/env bash
# Unit-tests the Prometheus alert rules with promtool (Debian's prometheus package), installing
# it as root with apt-get when it is missing; otherwise says in one line what to install.
set -euo pipefail
cd "$(dirname "$0")/../config/prometheus"
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "check-alerts: installing prometheus (for promtool)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
  else
    echo "check-alerts: promtool is missing: apt-get install prometheus" >&2
    exit 1
  fi
fi
promtool check rules alerts.yml
promtool test rules alerts_test.yml
