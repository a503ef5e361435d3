#!/usr/bin/env bash
# Compares the catalog's reads as diesel's query builder writes them (crates/ticketing_postgres/
# src/catalog.rs, text printed with diesel::debug_query) with the raw SQL they replaced (a4d6663^):
# EXPLAIN (ANALYZE) of each, then pgbench, each pair in one run on one database.
# Usage: scripts/catalog-sql-bench.sh [seconds per statement, default 10]
# Needs psql and pgbench (Debian: postgresql-client; pgbench is in postgresql-contrib or the
# server package) and a PostgreSQL at $BENCH_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
admin="${BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
for tool in psql pgbench; do
  command -v "$tool" >/dev/null || { echo "catalog-sql-bench: $tool not found: apt-get install postgresql-client postgresql-contrib" >&2; exit 1; }
done
db="catalog_sql_bench_$$"
url="${admin%/*}/$db"
psql -q "$admin" -c "CREATE DATABASE $db"
trap 'psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
cargo build -q --bin ticketing
DATABASE_URL="$url" ./target/debug/ticketing migrate >/dev/null
DATABASE_URL="$url" ./target/debug/ticketing seed >/dev/null
# Performance 119: 200 seats sold, 300 held (half of the holds lapsed), 500 free.
psql -q "$url" <<'SQL'
UPDATE seats SET status = 'SOLD', reservation_id = seat_no WHERE performance_id = 119 AND seat_no <= 200;
UPDATE seats SET status = 'HELD', reservation_id = seat_no,
       hold_expires_at = now() + CASE WHEN seat_no % 2 = 0 THEN interval '5 min' ELSE interval '-5 min' END
 WHERE performance_id = 119 AND seat_no BETWEEN 201 AND 500;
VACUUM ANALYZE;
SQL

dir="$(mktemp -d)"
cat > "$dir/performances.old.sql" <<'SQL'
SELECT p.id, p.concert_id, p.starts_at, p.total_seats, (SELECT count(*) FROM seats s WHERE s.performance_id = p.id AND (s.status = 'AVAILABLE' OR (s.status = 'HELD' AND s.hold_expires_at < now())))::int AS available_seats FROM performances p WHERE p.concert_id = 1 ORDER BY p.starts_at, p.id;
SQL
cat > "$dir/performances.new.sql" <<'SQL'
SELECT "performances"."id", "performances"."concert_id", "performances"."starts_at", "performances"."total_seats", (SELECT COUNT(*) FROM "seats" WHERE (("seats"."performance_id" = "performances"."id") AND (("seats"."status" = 'AVAILABLE') OR (("seats"."status" = 'HELD') AND ("seats"."hold_expires_at" < CURRENT_TIMESTAMP)))) LIMIT 1) FROM "performances" WHERE ("performances"."concert_id" = 1) ORDER BY "performances"."starts_at", "performances"."id";
SQL
cat > "$dir/seats.old.sql" <<'SQL'
SELECT s.seat_no, s.grade, s.price, CASE WHEN (s.status = 'AVAILABLE' OR (s.status = 'HELD' AND s.hold_expires_at < now())) THEN 'AVAILABLE' ELSE s.status END AS status FROM seats s JOIN performances p ON p.id = s.performance_id WHERE p.id = 119 AND p.concert_id = 1 ORDER BY s.seat_no;
SQL
cat > "$dir/seats.new.sql" <<'SQL'
SELECT "seats"."seat_no", "seats"."grade", "seats"."price", "seats"."status", (("seats"."status" = 'AVAILABLE') OR (("seats"."status" = 'HELD') AND ("seats"."hold_expires_at" < CURRENT_TIMESTAMP))) FROM ("seats" INNER JOIN "performances" ON ("seats"."performance_id" = "performances"."id")) WHERE (("performances"."id" = 119) AND ("performances"."concert_id" = 1)) ORDER BY "seats"."seat_no";
SQL
cat > "$dir/taken.old.sql" <<'SQL'
SELECT now() AS read_at, s.seat_no, s.status, s.hold_expires_at FROM performances p LEFT JOIN seats s ON s.performance_id = p.id AND (s.status = 'SOLD' OR (s.status = 'HELD' AND s.hold_expires_at >= now())) WHERE p.id = 119 AND p.concert_id = 1;
SQL
cat > "$dir/taken.new.sql" <<'SQL'
SELECT CURRENT_TIMESTAMP, "seats"."seat_no", "seats"."status", "seats"."hold_expires_at" FROM ("performances" LEFT OUTER JOIN "seats" ON (("seats"."performance_id" = "performances"."id") AND (("seats"."status" = 'SOLD') OR (("seats"."status" = 'HELD') AND ("seats"."hold_expires_at" >= CURRENT_TIMESTAMP))))) WHERE (("performances"."id" = 119) AND ("performances"."concert_id" = 1));
SQL

for query in performances seats taken; do
  for version in old new; do
    echo "== $query ($version): plan"
    psql -q "$url" -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) $(cat "$dir/$query.$version.sql")" | sed -n '3,$p' | sed '/^$/d; /rows)$/d'
  done
  for version in old new; do
    tps="$(pgbench -n -M prepared -c 2 -j 2 -T "$seconds" -f "$dir/$query.$version.sql" "$url" 2>/dev/null | awk '/^tps/ {print $3}')"
    echo "== $query ($version): $tps statements/s (pgbench -M prepared -c 2 -T $seconds)"
  done
done
rm -r "$dir"
