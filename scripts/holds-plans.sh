#!/usr/bin/env bash
# EXPLAIN (ANALYZE, BUFFERS) of every statement on the hold, cancel, payment, refund and expiry
# paths and of the outbox relay's reads (scripts/holds-plans.sql) on a 400,000-seat performance with 150,000 live holds, with
# the tables' statistics empty (never analyzed), stale (analyzed before the holds were made)
# and fresh (analyzed after), autovacuum off for the tables. docs/holds-benchmark.md shows the
# result.
# Usage: scripts/holds-plans.sh [empty|stale|fresh ...]  (default: all three)
# Needs psql and a PostgreSQL at $PLANS_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
admin="${PLANS_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(empty stale fresh)
db="holds_plans_$$"
url="${admin%/*}/$db"
psql -q "$admin" -c "CREATE DATABASE $db"
trap 'psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
run() { psql -q -X -v ON_ERROR_STOP=1 "$url" "$@"; }

for mode in "${modes[@]}"; do
  run -c "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"
  for migration in migrations/*/up.sql; do run -f "$migration"; done
  run <<'SQL'
ALTER TABLE seats SET (autovacuum_enabled = off);
ALTER TABLE reservations SET (autovacuum_enabled = off);
ALTER TABLE outbox_events SET (autovacuum_enabled = off);
ALTER TABLE users SET (autovacuum_enabled = off);
ALTER TABLE wallets SET (autovacuum_enabled = off);
INSERT INTO concerts (id, title, artist, venue) VALUES (1, 'Plans', 'Plans', 'Plans');
INSERT INTO performances (id, concert_id, starts_at, total_seats)
     VALUES (1, 1, now() + interval '30 days', 400000);
INSERT INTO seats (performance_id, seat_no, grade, price)
     SELECT 1, n, 'R', 150000 FROM generate_series(1, 400000) n;
INSERT INTO users (id) SELECT generate_series(1, 100000);
INSERT INTO wallets (user_id, balance) SELECT generate_series(1, 100000), 10000000;
SQL
  [ "$mode" = stale ] && run -c "ANALYZE"
  # 150,000 live holds (seven seats of every eight up to seat 171,430), each with its event,
  # all sent but the last 502 (their entries left in the unsent-event indexes, as no vacuum
  # ran); seats 401 and 409 lapsed, 403 sold.
  run <<'SQL'
WITH held AS (
    UPDATE seats SET status = 'HELD', hold_expires_at = now() + interval '1 hour',
                     reservation_id = seat_no
     WHERE performance_id = 1 AND seat_no % 8 <> 0 AND seat_no <= 171430
 RETURNING seat_no, reservation_id, hold_expires_at)
INSERT INTO reservations (id, user_id, performance_id, seat_no, price, status, expires_at)
SELECT reservation_id, seat_no % 100000 + 1, 1, seat_no, 150000, 'HELD', hold_expires_at FROM held;
INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no, amount)
SELECT 'reservation.held', id, user_id, 1, seat_no, price FROM reservations ORDER BY id;
UPDATE outbox_events SET sent_at = now() WHERE id <= 149500;
SELECT setval(pg_get_serial_sequence('reservations', 'id'), 1000000);
UPDATE seats SET hold_expires_at = now() - interval '1 second'
 WHERE performance_id = 1 AND seat_no IN (401, 409);
UPDATE reservations SET expires_at = now() - interval '1 second' WHERE id IN (401, 409);
UPDATE seats SET status = 'SOLD', hold_expires_at = NULL WHERE performance_id = 1 AND seat_no = 403;
UPDATE reservations SET status = 'CONFIRMED' WHERE id = 403;
SQL
  [ "$mode" = fresh ] && run -c "ANALYZE"
  echo "## statistics $mode"
  run -f scripts/holds-plans.sql
done
