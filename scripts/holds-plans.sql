-- The statements of the hold, cancel, payment, refund and expiry paths and the outbox relay's
-- reads as the adapters send them (crates/ticketing_postgres/src/{inventory,payments,refunds,
-- outbox}.rs), with their parameters written in: user 5, performance 1; seats 400 (free) and
-- 401 (lapsed hold); reservation 402 a live hold, 403 a paid one; events 149,501 to 150,002
-- unsent. Run by scripts/holds-plans.sh, each in a transaction rolled back.
-- A copy for reading plans: tests/it/plans.rs is what keeps the adapters' own statements keyed.

\echo '### hold (HOLD_SEATS): seats 400 and 401 for user 5'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
WITH locked AS (
    SELECT s.seat_no, s.status, s.reservation_id
      FROM seats s
     WHERE s.performance_id = 1 AND s.seat_no = ANY('{400,401}'::int[])
     ORDER BY s.seat_no
       FOR UPDATE
), owned AS (
    SELECT count(*) AS owned
      FROM reservations r
     WHERE r.user_id = 5 AND r.performance_id = 1
       AND (r.status = 'CONFIRMED' OR (r.status = 'HELD' AND r.expires_at >= now()))
), taken AS (
    UPDATE seats s
       SET status = 'HELD',
           hold_expires_at = now() + make_interval(secs => 300::float8),
           reservation_id = nextval(pg_get_serial_sequence('reservations', 'id'))
     WHERE s.performance_id = 1 AND s.seat_no = ANY(ARRAY(SELECT seat_no FROM locked))
       AND (s.status = 'AVAILABLE' OR (s.status = 'HELD' AND s.hold_expires_at < now()))
 RETURNING s.reservation_id AS id, s.performance_id, s.seat_no, s.price, s.hold_expires_at
), lapsed AS (
    UPDATE reservations r
       SET status = 'EXPIRED', updated_at = now()
     WHERE r.id = ANY(ARRAY(SELECT locked.reservation_id
                              FROM locked JOIN taken USING (seat_no)
                             WHERE locked.status = 'HELD'))
 RETURNING r.id, r.user_id, r.performance_id, r.seat_no
), expired_events AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no)
    SELECT 'reservation.expired', id, user_id, performance_id, seat_no FROM lapsed
), held AS (
    INSERT INTO reservations (id, user_id, performance_id, seat_no, price, status, expires_at)
    SELECT taken.id, 5, taken.performance_id, taken.seat_no, taken.price, 'HELD', taken.hold_expires_at
      FROM taken
     WHERE (SELECT count(*) FROM lapsed) >= 0
 RETURNING id, user_id, performance_id, seat_no, price, expires_at
), held_events AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no, amount)
    SELECT 'reservation.held', id, user_id, performance_id, seat_no, price FROM held
)
SELECT held.id, held.seat_no, held.price, held.expires_at, owned.owned
  FROM owned LEFT JOIN held ON true;
ROLLBACK;

\echo '### cancel (CANCEL_HOLD): reservation 402'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
WITH released AS (
    UPDATE seats s
       SET status = 'AVAILABLE', hold_expires_at = NULL, reservation_id = NULL
      FROM reservations r
     WHERE r.id = 402 AND s.performance_id = r.performance_id AND s.seat_no = r.seat_no
       AND s.reservation_id = r.id AND s.hold_expires_at >= now()
 RETURNING r.id
), cancelled AS (
    UPDATE reservations r
       SET status = 'CANCELLED', updated_at = now()
     WHERE r.id = (SELECT id FROM released)
 RETURNING r.id, r.user_id, r.performance_id, r.seat_no
), cancelled_events AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no)
    SELECT 'reservation.cancelled', id, user_id, performance_id, seat_no FROM cancelled
)
SELECT count(*) AS cancelled FROM cancelled;
ROLLBACK;

\echo '### expiry sweep (RELEASE_EXPIRED): up to 500 lapsed holds'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
WITH stale AS (
    SELECT performance_id, seat_no, reservation_id
      FROM seats
     WHERE status = 'HELD' AND hold_expires_at < now()
     ORDER BY hold_expires_at
     LIMIT 500
       FOR UPDATE SKIP LOCKED
), released AS (
    UPDATE seats s
       SET status = 'AVAILABLE', hold_expires_at = NULL, reservation_id = NULL
      FROM stale
     WHERE s.performance_id = stale.performance_id AND s.seat_no = stale.seat_no
 RETURNING stale.reservation_id
), expired AS (
    UPDATE reservations r
       SET status = 'EXPIRED', updated_at = now()
     WHERE r.id = ANY(ARRAY(SELECT reservation_id FROM released))
 RETURNING r.id, r.user_id, r.performance_id, r.seat_no
), expired_events AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no)
    SELECT 'reservation.expired', id, user_id, performance_id, seat_no FROM expired
)
SELECT count(*) AS released FROM released;
ROLLBACK;

\echo '### payment, lock and judge (CHECK_HOLDS): reservations 402 and 404'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT r.id, r.user_id, r.price,
       (r.status = 'HELD' AND r.expires_at >= now()
        AND s.status = 'HELD' AND s.reservation_id = r.id AND s.hold_expires_at >= now()) AS payable
  FROM reservations r
  JOIN seats s ON s.performance_id = r.performance_id AND s.seat_no = r.seat_no
 WHERE r.id = ANY('{402,404}'::bigint[])
 ORDER BY s.performance_id, s.seat_no
   FOR UPDATE OF s;
ROLLBACK;

\echo '### payment, sell and confirm (CONFIRM): reservations 402 and 404'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
WITH sold AS (
    UPDATE seats s SET status = 'SOLD', hold_expires_at = NULL
      FROM reservations r
     WHERE r.id = ANY('{402,404}'::bigint[]) AND s.performance_id = r.performance_id
       AND s.seat_no = r.seat_no AND s.reservation_id = r.id
), confirmed AS (
    UPDATE reservations SET status = 'CONFIRMED', updated_at = now()
     WHERE id = ANY('{402,404}'::bigint[])
 RETURNING id, user_id, performance_id, seat_no, price
), confirmed_events AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no, amount)
    SELECT 'reservation.confirmed', id, user_id, performance_id, seat_no, price
      FROM confirmed ORDER BY id
), paid AS (
    INSERT INTO payments (reservation_id, user_id, amount)
    VALUES (402, 403, 300000)
    RETURNING id, paid_at
), items AS (
    INSERT INTO payment_reservations (payment_id, reservation_id, amount)
    SELECT paid.id, r.id, r.price FROM paid, reservations r WHERE r.id = ANY('{402,404}'::bigint[])
)
SELECT id, paid_at FROM paid;
ROLLBACK;

\echo '### refund (REFUND): reservation 403'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
WITH freed AS (
    UPDATE seats SET status = 'AVAILABLE', hold_expires_at = NULL, reservation_id = NULL
     WHERE performance_id = 1 AND seat_no = 403 AND reservation_id = 403 AND status = 'SOLD'
), refunded AS (
    UPDATE reservations SET status = 'REFUNDED', updated_at = now()
     WHERE id = 403 AND status = 'CONFIRMED'
 RETURNING id, user_id, performance_id, seat_no
), refunded_event AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no, amount)
    SELECT 'reservation.refunded', id, user_id, performance_id, seat_no, 150000 FROM refunded
), credited AS (
    UPDATE wallets w SET balance = balance + 150000, updated_at = now()
      FROM refunded
     WHERE w.user_id = refunded.user_id
 RETURNING w.user_id, w.balance
), entry AS (
    INSERT INTO wallet_entries (user_id, amount, reason, balance_after)
    SELECT user_id, 150000, 'REFUND', balance FROM credited WHERE 150000 > 0
), credited_event AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, amount, balance)
    SELECT 'balance.refunded', 403, user_id, 150000, balance FROM credited
)
SELECT balance FROM credited;
ROLLBACK;

\echo '### relay, claim (CLAIM): 500 events'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
UPDATE outbox_events o
   SET claim = pg_current_xact_id()::text::bigint,
       claimed_until = now() + make_interval(secs => 30::float8)
 WHERE o.id IN (
       SELECT id FROM outbox_events
        WHERE sent_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
          AND id >= (SELECT oldest.id FROM outbox_events oldest
                      WHERE oldest.sent_at IS NULL ORDER BY oldest.id LIMIT 1)
        ORDER BY id
        LIMIT 500
          FOR UPDATE SKIP LOCKED)
RETURNING o.id, o.type AS kind, o.occurred_at, o.reservation_id, o.user_id, o.performance_id,
          o.seat_no, o.amount, o.balance, o.claim;
ROLLBACK;

\echo '### relay, earlier unsent events of the claimed events reservations and users (unsent_elsewhere)'
BEGIN;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT id, type, occurred_at, reservation_id, user_id, performance_id, seat_no, amount, balance
  FROM outbox_events
 WHERE sent_at IS NULL
   AND id >= (SELECT unsent.id FROM outbox_events AS unsent
               WHERE unsent.sent_at IS NULL ORDER BY unsent.id LIMIT 1)
   AND id < 150000
   AND id <> ALL(ARRAY(SELECT generate_series(149501, 150000)::bigint))
   AND (reservation_id = ANY(ARRAY(SELECT generate_series(149501, 150000)::bigint))
        OR user_id = ANY(ARRAY(SELECT (generate_series(149501, 150000) % 100000 + 1)::bigint)));
ROLLBACK;
