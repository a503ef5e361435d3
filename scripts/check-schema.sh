#!/usr/bin/env bash
# Checks that crates/ticketing_postgres/src/schema.rs is what `diesel print-schema` makes of
# migrations/: runs them on a database of its own (created for the check, dropped after it) on
# the server of TEST_DATABASE_URL and fails on any difference from the committed file.
#   scripts/check-schema.sh                 check (CI: .ci/run)
#   scripts/check-schema.sh --write         regenerate the file after changing a migration
#   scripts/check-schema.sh --install-cli   first build the diesel CLI if it is missing
# The CLI is the one built into target/tools (next to the build cache, so CI builds it once and
# `cargo clean` takes it away), or `diesel` on PATH if it is the same version: the version of the
# diesel library, with libpq and OpenSSL built from the crates' bundled sources (no libpq-dev).
set -euo pipefail
cd "$(dirname "$0")/.."

diesel_cli_version=2.3.14
tools=${CARGO_TARGET_DIR:-target}/tools
schema_file=crates/ticketing_postgres/src/schema.rs

mode=check
for argument in "$@"; do
  case $argument in
    --write) mode=write ;;
    --install-cli) install=yes ;;
    *) echo "usage: $0 [--write] [--install-cli]" >&2; exit 2 ;;
  esac
done

# Another version may print the same schema differently: only the pinned one will do.
diesel=$tools/bin/diesel
if [ ! -x "$diesel" ] && command -v diesel >/dev/null 2>&1 \
  && diesel --version | grep -q "Version: $diesel_cli_version\$"; then
  diesel=$(command -v diesel)
fi
if [ ! -x "$diesel" ]; then
  install_command=(cargo install --locked diesel_cli --version "=$diesel_cli_version"
    --no-default-features --features postgres-bundled --root "$tools")
  if [ "${install:-}" != yes ]; then
    echo "check-schema: no diesel CLI; run $0 --install-cli, or: ${install_command[*]}" >&2
    exit 1
  fi
  echo "check-schema: building the diesel CLI $diesel_cli_version into $tools"
  "${install_command[@]}"
fi

server=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ticketing_test}
server=${server%/*}
url=$server/ticketing_schema_check_$$
# Only migration commands read diesel.toml's [print_schema] file, and they would rewrite it:
# these run with a configuration that names no file; print-schema then writes to stdout.
config=$(mktemp)
generated=$(mktemp)
cleanup() {
  "$diesel" database drop --database-url "$url" --config-file "$config" >/dev/null 2>&1 || true
  rm -f "$config" "$generated"
}
trap cleanup EXIT
printf '[migrations_directory]\ndir = "%s"\n' "$(pwd)/migrations" > "$config"

# --no-default-migration: otherwise setup writes diesel's own first migration into migrations/.
"$diesel" database setup --no-default-migration --database-url "$url" --config-file "$config" >/dev/null
"$diesel" print-schema --database-url "$url" > "$generated"

if [ "$mode" = write ]; then
  cp "$generated" "$schema_file"
  echo "check-schema: wrote $schema_file"
elif ! diff -u "$schema_file" "$generated"; then
  echo "check-schema: $schema_file is not what the migrations make (above: - committed," \
    "+ generated); run scripts/check-schema.sh --write and commit it" >&2
  exit 1
else
  echo "check-schema: $schema_file matches the migrations"
fi
