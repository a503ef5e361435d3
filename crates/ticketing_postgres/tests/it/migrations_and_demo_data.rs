//! Migrations and the demo data set are safe to run again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ticketing_testkit::TestDatabase;

#[tokio::test(flavor = "multi_thread")]
async fn migrating_a_migrated_schema_applies_nothing() {
    let db = TestDatabase::new().await;

    let applied = ticketing_postgres::migrations::run_pending(db.url())
        .await
        .unwrap();

    assert_eq!(applied, 0);
}

#[tokio::test]
async fn loading_the_demo_data_twice_changes_nothing() {
    let db = TestDatabase::with_demo_data().await;
    let count_everything = "SELECT (SELECT count(*) FROM concerts) * 1000000000
                                 + (SELECT count(*) FROM performances) * 1000000
                                 + (SELECT count(*) FROM seats) * 10
                                 + (SELECT count(*) FROM users)
                                 + (SELECT coalesce(sum(balance), 0) FROM wallets)::bigint";
    let before = db.query_i64(count_everything).await;

    ticketing_postgres::demo_data::load(db.pool())
        .await
        .unwrap();

    assert_eq!(db.query_i64(count_everything).await, before);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE performance_id = 119")
            .await,
        1000
    );
    assert_eq!(db.query_i64("SELECT count(*) FROM users").await, 10_000);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM wallets WHERE balance = 0")
            .await,
        10_000
    );
}

#[tokio::test]
async fn at_most_one_live_reservation_per_seat_is_enforced_by_the_schema() {
    let db = TestDatabase::with_demo_data().await;
    db.execute(
        "INSERT INTO reservations (user_id, performance_id, seat_no, price, status, expires_at)
         VALUES (1, 119, 7, 150000, 'EXPIRED', now()),
                (2, 119, 7, 150000, 'CANCELLED', now()),
                (3, 119, 7, 150000, 'HELD', now() + interval '5 minutes')",
    )
    .await;

    let client = {
        let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    };
    let second_live = client
        .batch_execute(
            "INSERT INTO reservations (user_id, performance_id, seat_no, price, status, expires_at)
             VALUES (4, 119, 7, 150000, 'CONFIRMED', now())",
        )
        .await;

    let error = second_live.expect_err("a second live reservation must be refused");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
}

#[tokio::test]
async fn resetting_the_demo_data_frees_every_seat_and_zeroes_every_balance() {
    let db = TestDatabase::with_demo_data().await;
    db.execute(
        "UPDATE wallets SET balance = 5000 WHERE user_id = 7;
         INSERT INTO wallet_entries (user_id, amount, reason, balance_after) VALUES (7, 5000, 'CHARGE', 5000);
         UPDATE seats SET status = 'HELD', hold_expires_at = now() + interval '5 minutes', reservation_id = 1
          WHERE performance_id = 119 AND seat_no = 1;
         INSERT INTO reservations (id, user_id, performance_id, seat_no, price, status, expires_at)
         VALUES (1, 7, 119, 1, 150000, 'HELD', now() + interval '5 minutes');",
    )
    .await;

    ticketing_postgres::demo_data::reset(db.pool())
        .await
        .unwrap();

    assert_eq!(db.query_i64("SELECT count(*) FROM reservations").await, 0);
    assert_eq!(db.query_i64("SELECT count(*) FROM wallet_entries").await, 0);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE status <> 'AVAILABLE'")
            .await,
        0
    );
    assert_eq!(
        db.query_i64("SELECT coalesce(sum(balance), 0)::bigint FROM wallets")
            .await,
        0
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE performance_id = 119")
            .await,
        1000
    );
}
