-- A hold counts the seats its user has of the performance (live or paid): this index leads
-- with the user, so the count reads that user's rows of that performance and nothing else,
-- whatever the statistics say. Without it, on tables never analyzed, the planner counted
-- through reservations_one_live_per_seat on the performance alone (every live hold of the
-- performance, 160,000 rows per hold; docs/holds-benchmark.md).
CREATE INDEX reservations_live_by_user_and_performance
    ON reservations (user_id, performance_id)
    WHERE status IN ('HELD', 'CONFIRMED');

-- No statement looks reservations up by expiry: lapsed holds are found through their seats
-- (seats_held_by_expiry) and their reservations through the id the seat stores. Kept, this
-- index was the planner's choice for "the HELD reservation of this seat" when statistics were
-- stale, walking every live hold (docs/holds-benchmark.md); and every hold wrote to it.
DROP INDEX reservations_held_by_expiry;
