#!/usr/bin/env bash
# Holds per second as an on-sale fills, statistics stale, against pgbench's one-row
# UPDATE + commit (crates/ticketing_postgres/examples/hold_bench.rs; docs/holds-benchmark.md).
# Usage: scripts/holds-bench.sh [seconds per phase, default 15] [callers, default 32]
# With BEFORE=<revision>, the same example runs first on that revision's adapters and
# migrations (an export of it with this example copied in), then on this checkout: both in one
# run, one after the other. Needs pgbench and a PostgreSQL at TEST_DATABASE_URL (the testkit's
# default when unset).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
callers="${2:-32}"
example=crates/ticketing_postgres/examples/hold_bench.rs
if [ -n "${BEFORE:-}" ]; then
  before_dir=$(mktemp -d)
  trap 'rm -rf "$before_dir"' EXIT
  git archive "$BEFORE" | tar -x -C "$before_dir"
  cp "$example" "$before_dir/$example"
  echo "## before: $(git log -1 --format='%h %s' "$BEFORE")"
  # A build directory of its own: cargo names both builds' artifacts alike and would run one
  # in place of the other.
  (cd "$before_dir" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OLDPWD/target}/holds-bench-before" \
    cargo run -q --release -p ticketing_postgres --example hold_bench -- "$seconds" "$callers")
  echo
fi
echo "## after: $(git log -1 --format='%h %s') $(git diff --quiet HEAD || echo '(with uncommitted changes)')"
cargo run -q --release -p ticketing_postgres --example hold_bench -- "$seconds" "$callers"
