//! Holds, cancellations, payments and the expiry sweep reach their rows through keys, whatever
//! the statistics say: with autovacuum off and no ANALYZE, after 20,000 live holds, each of them
//! reads a handful of rows, counted by PostgreSQL's own statistics views (issue #30).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use ticketing_domain::ids::{ConcertId, PerformanceId, SeatNo, UserId};
use ticketing_domain::payment::{PaymentLedger, PaymentRequest};
use ticketing_domain::reservation::{
    CancelOutcome, HoldError, HoldRequest, HoldTtl, SeatInventory, SeatLimit, SeatSelection,
};
use ticketing_postgres::pool::build_pool;
use ticketing_postgres::{PgPaymentLedger, PgPool, PgPoolSettings, PgSeatInventory};
use ticketing_testkit::TestDatabase;

const LIVE_HOLDS: i64 = 20_000;
const SEATS: i64 = 40_000;
const USERS: i64 = 5_000;
/// Seats 1..=LIVE_HOLDS are held live, four per user; the next ones lapsed; the rest are free.
const LAPSED_HOLDS: i64 = 1_000;
/// What one hold, cancellation, payment or swept hold may read, in table rows and again in index
/// entries: a key reaches a handful; the plans this replaced read every live hold.
const READS_PER_STEP: f64 = 30.0;

/// Autovacuum off first, so nothing analyzes the tables behind the test's back; then the
/// holds, as the adapter writes them, in a few statements.
const FIXTURE: &str = "
ALTER TABLE seats SET (autovacuum_enabled = off);
ALTER TABLE reservations SET (autovacuum_enabled = off);
ALTER TABLE outbox_events SET (autovacuum_enabled = off);
ALTER TABLE users SET (autovacuum_enabled = off);
ALTER TABLE wallets SET (autovacuum_enabled = off);
ALTER TABLE payments SET (autovacuum_enabled = off);
ALTER TABLE payment_reservations SET (autovacuum_enabled = off);
INSERT INTO concerts (id, title, artist, venue) VALUES (1, 'Plans', 'Plans', 'Plans');
INSERT INTO performances (id, concert_id, starts_at, total_seats)
     VALUES (1, 1, now() + interval '30 days', 40000);
INSERT INTO seats (performance_id, seat_no, grade, price)
     SELECT 1, n, 'R', 1000 FROM generate_series(1, 40000) n;
INSERT INTO users (id) SELECT generate_series(1, 5000);
INSERT INTO wallets (user_id, balance) SELECT generate_series(1, 5000), 1000000;
WITH held AS (
    UPDATE seats
       SET status = 'HELD',
           hold_expires_at = now() + CASE WHEN seat_no <= 20000 THEN interval '1 hour'
                                          ELSE interval '-1 second' END,
           reservation_id = nextval(pg_get_serial_sequence('reservations', 'id'))
     WHERE performance_id = 1 AND seat_no <= 21000
 RETURNING reservation_id, seat_no, price, hold_expires_at
), recorded AS (
    INSERT INTO reservations (id, user_id, performance_id, seat_no, price, status, expires_at)
    SELECT reservation_id, (seat_no - 1) % 5000 + 1, 1, seat_no, price, 'HELD', hold_expires_at
      FROM held
 RETURNING id, user_id, seat_no, price
)
INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no, amount)
SELECT 'reservation.held', id, user_id, 1, seat_no, price FROM recorded;";

/// Rows read from the schema's tables, sequentially or through an index, as PostgreSQL counts
/// them.
const ROWS_READ: &str = "
SELECT coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)), 0)::bigint
  FROM pg_stat_user_tables WHERE schemaname = current_schema()";

/// Index entries read (a bitmap of a whole index reads entries and no row).
const INDEX_ENTRIES_READ: &str = "
SELECT coalesce(sum(idx_tup_read), 0)::bigint
  FROM pg_stat_user_indexes WHERE schemaname = current_schema()";

/// Rows and index entries read.
#[derive(Debug, Clone, Copy)]
struct Reads {
    rows: f64,
    index_entries: f64,
}

/// A pool of one connection: every statement measured runs on the backend whose counters are
/// flushed before each reading.
fn one_connection(db: &TestDatabase) -> PgPool {
    let mut settings = PgPoolSettings::new(db.url());
    settings.max_size = 1;
    build_pool(&settings).unwrap()
}

/// What the statements run so far have read. A backend hands its counters over when it goes
/// idle, at most once a second unless told to at once: this tells it, and the next statement
/// (on a new connection, with a fresh view of the counters) reads them.
async fn reads(db: &TestDatabase, measured: &PgPool) -> Reads {
    measured
        .get()
        .await
        .unwrap()
        .batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .unwrap();
    #[allow(clippy::cast_precision_loss)]
    Reads {
        rows: db.query_i64(ROWS_READ).await as f64,
        index_entries: db.query_i64(INDEX_ENTRIES_READ).await as f64,
    }
}

fn hold_of(user: i64, seat: i64) -> HoldRequest {
    HoldRequest {
        user: UserId::new(user).unwrap(),
        concert: ConcertId::new(1).unwrap(),
        performance: PerformanceId::new(1).unwrap(),
        seats: SeatSelection::one(SeatNo::new(seat).unwrap()),
    }
}

/// Runs `steps` and answers what they read, each.
async fn per_step<F: std::future::Future<Output = ()>>(
    db: &TestDatabase,
    measured: &PgPool,
    steps: u32,
    run: F,
) -> Reads {
    let before = reads(db, measured).await;
    run.await;
    let after = reads(db, measured).await;
    Reads {
        rows: (after.rows - before.rows) / f64::from(steps),
        index_entries: (after.index_entries - before.index_entries) / f64::from(steps),
    }
}

#[tokio::test]
async fn holds_read_a_handful_of_rows_after_20000_live_holds_without_statistics() {
    let db = TestDatabase::new().await;
    db.execute(FIXTURE).await;
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM pg_stat_user_tables
              WHERE schemaname = current_schema()
                AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)"
        )
        .await,
        0,
        "no table of the test has statistics"
    );
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM reservations WHERE status = 'HELD' AND expires_at > now()"
        )
        .await,
        LIVE_HOLDS
    );
    let measured = one_connection(&db);
    let inventory = PgSeatInventory::new(measured.clone());
    let ledger = PgPaymentLedger::new(measured.clone());
    let ttl = HoldTtl::new(Duration::from_secs(600)).unwrap();
    let limit = SeatLimit::new(8);

    // Free seats, by users who hold four live seats each already: the count reads their own.
    let free_seats = 200;
    let mut held = Vec::new();
    let per_free_hold = per_step(&db, &measured, free_seats, async {
        for i in 0..i64::from(free_seats) {
            let user = i + 1;
            let taken = inventory
                .hold(hold_of(user, SEATS - i), ttl, limit)
                .await
                .unwrap();
            held.push((taken[0].id, user));
        }
    })
    .await;

    // Seats whose hold lapsed: the hold retires the old reservation through the seat's id.
    let lapsed_seats = 100;
    let per_lapsed_hold = per_step(&db, &measured, lapsed_seats, async {
        for i in 0..i64::from(lapsed_seats) {
            inventory
                .hold(hold_of(USERS - i, LIVE_HOLDS + 1 + i), ttl, limit)
                .await
                .unwrap();
        }
    })
    .await;

    // Taken seats are refused by the first read.
    let taken_seats = 100;
    let per_refused_hold = per_step(&db, &measured, taken_seats, async {
        for i in 0..i64::from(taken_seats) {
            let refused = inventory
                .hold(hold_of(1000 + i, 2 * i + 1), ttl, limit)
                .await;
            assert!(matches!(refused, Err(HoldError::SeatUnavailable { .. })));
        }
    })
    .await;

    let cancelled = 50;
    let per_cancel = per_step(&db, &measured, cancelled, async {
        for (id, _) in &held[..50] {
            assert_eq!(
                inventory.cancel(*id).await.unwrap(),
                CancelOutcome::Cancelled
            );
        }
    })
    .await;

    let paid = 50;
    let per_payment = per_step(&db, &measured, paid, async {
        for (id, user) in &held[50..100] {
            let answer = ledger
                .pay(PaymentRequest::one(*id, UserId::new(*user).unwrap()), None)
                .await
                .unwrap();
            assert!(answer.outcome.is_ok(), "{answer:?}");
        }
    })
    .await;

    // The sweep finds the rest of the lapsed holds by their seats' expiry.
    let swept = LAPSED_HOLDS - i64::from(lapsed_seats);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let per_swept_hold = per_step(&db, &measured, swept as u32, async {
        assert_eq!(
            inventory.release_expired(5_000).await.unwrap(),
            swept as u64
        );
    })
    .await;

    for (what, read) in [
        ("hold of a free seat", per_free_hold),
        ("hold of a lapsed seat", per_lapsed_hold),
        ("hold refused", per_refused_hold),
        ("cancellation", per_cancel),
        ("payment", per_payment),
        ("swept hold", per_swept_hold),
    ] {
        assert!(
            read.rows <= READS_PER_STEP && read.index_entries <= READS_PER_STEP,
            "a {what} read {read:?} (at most {READS_PER_STEP} of each)"
        );
    }
}
