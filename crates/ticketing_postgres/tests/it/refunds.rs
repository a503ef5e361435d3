//! Refunds against a real PostgreSQL, one schema per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use ticketing_domain::idempotency::{IdempotencyKey, IdempotentRequest};
use ticketing_domain::ids::{ConcertId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::money::ChargeAmount;
use ticketing_domain::payment::{PaymentLedger, PaymentRequest};
use ticketing_domain::refund::{RefundLedger, RefundOutcome, RefundRefusal, RefundRequest};
use ticketing_domain::reservation::{
    HoldRequest, HoldTtl, ReservationStatus, SeatInventory, SeatLimit, SeatSelection,
};
use ticketing_domain::wallet::Wallet;
use ticketing_postgres::{PgPaymentLedger, PgRefundLedger, PgSeatInventory, PgWallet};
use ticketing_testkit::TestDatabase;

fn user(id: i64) -> UserId {
    UserId::new(id).unwrap()
}

async fn hold(db: &TestDatabase, user_id: i64, seat: i64) -> ReservationId {
    PgSeatInventory::new(db.pool().clone())
        .hold(
            HoldRequest {
                user: user(user_id),
                concert: ConcertId::new(1).unwrap(),
                performance: PerformanceId::new(119).unwrap(),
                seats: SeatSelection::one(SeatNo::new(seat).unwrap()),
            },
            HoldTtl::new(Duration::from_secs(300)).unwrap(),
            SeatLimit::unlimited(),
        )
        .await
        .unwrap()[0]
        .id
}

/// A seat of performance 119 held and paid by `user_id`, who has 1,000,000 won before paying.
async fn bought(db: &TestDatabase, user_id: i64, seat: i64) -> ReservationId {
    PgWallet::new(db.pool().clone())
        .charge(user(user_id), ChargeAmount::new(1_000_000).unwrap(), None)
        .await
        .unwrap();
    let reservation = hold(db, user_id, seat).await;
    PgPaymentLedger::new(db.pool().clone())
        .pay(PaymentRequest::one(reservation, user(user_id)), None)
        .await
        .unwrap()
        .outcome
        .unwrap();
    reservation
}

fn refund(reservation: ReservationId, user_id: i64) -> RefundRequest {
    RefundRequest {
        reservation,
        user: user(user_id),
    }
}

async fn outcome(ledger: &PgRefundLedger, request: RefundRequest) -> RefundOutcome {
    ledger.refund(request, None).await.unwrap().outcome
}

async fn balance(db: &TestDatabase, user_id: i64) -> i64 {
    PgWallet::new(db.pool().clone())
        .balance(user(user_id))
        .await
        .unwrap()
        .get()
}

async fn ledger_matches_balances(db: &TestDatabase) {
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM wallets w
              WHERE w.balance <> (SELECT coalesce(sum(amount), 0) FROM wallet_entries e WHERE e.user_id = w.user_id)",
        )
        .await,
        0,
        "every balance is the sum of its ledger entries"
    );
}

#[tokio::test]
async fn a_paid_reservation_is_refunded_credited_and_its_seat_freed() {
    let db = TestDatabase::with_demo_data().await;
    let ledger = PgRefundLedger::new(db.pool().clone());
    let reservation = bought(&db, 7, 42).await;
    assert_eq!(balance(&db, 7).await, 850_000);

    let refunded = outcome(&ledger, refund(reservation, 7)).await.unwrap();

    assert_eq!(refunded.id, reservation);
    assert_eq!(refunded.status, ReservationStatus::Refunded);
    assert_eq!(refunded.price.get(), 150_000);
    assert_eq!(refunded.concert.get(), 1);
    assert_eq!(balance(&db, 7).await, 1_000_000);
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM seats WHERE performance_id = 119 AND seat_no = 42
                AND status = 'AVAILABLE' AND reservation_id IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        PgSeatInventory::new(db.pool().clone())
            .find(reservation)
            .await
            .unwrap()
            .unwrap()
            .status,
        ReservationStatus::Refunded
    );
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM wallet_entries WHERE reason = 'REFUND' AND amount = 150000"
        )
        .await,
        1
    );
    ledger_matches_balances(&db).await;
    hold(&db, 8, 42).await;
}

#[tokio::test]
async fn only_the_owners_paid_reservation_before_the_show_is_refundable() {
    let db = TestDatabase::with_demo_data().await;
    let ledger = PgRefundLedger::new(db.pool().clone());
    let paid = bought(&db, 7, 1).await;
    let held = hold(&db, 7, 2).await;
    let started = bought(&db, 7, 3).await;
    db.execute("UPDATE performances SET starts_at = now() - interval '1 minute' WHERE id = 119")
        .await;
    let before = balance(&db, 7).await;

    assert_eq!(
        outcome(&ledger, refund(paid, 8)).await,
        Err(RefundRefusal::ReservationNotFound(paid)),
        "another user's reservation"
    );
    let unknown = ReservationId::new(987_654).unwrap();
    assert_eq!(
        outcome(&ledger, refund(unknown, 7)).await,
        Err(RefundRefusal::ReservationNotFound(unknown))
    );
    assert_eq!(
        outcome(&ledger, refund(held, 7)).await,
        Err(RefundRefusal::NotRefundable(held))
    );
    assert_eq!(
        outcome(&ledger, refund(started, 7)).await,
        Err(RefundRefusal::NotRefundable(started)),
        "the performance has started"
    );

    assert_eq!(balance(&db, 7).await, before);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM reservations WHERE status = 'REFUNDED'")
            .await,
        0
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE status = 'SOLD'")
            .await,
        2
    );
}

#[tokio::test]
async fn twenty_concurrent_refunds_of_one_reservation_refund_it_once() {
    let db = TestDatabase::with_demo_data().await;
    let ledger = Arc::new(PgRefundLedger::new(db.pool().clone()));
    let reservation = bought(&db, 7, 42).await;

    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let ledger = ledger.clone();
            tokio::spawn(async move { outcome(&ledger, refund(reservation, 7)).await })
        })
        .collect();
    let mut refunded = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => refunded += 1,
            Err(RefundRefusal::NotRefundable(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    assert_eq!(refunded, 1);
    assert_eq!(balance(&db, 7).await, 1_000_000);
    ledger_matches_balances(&db).await;
}

#[tokio::test]
async fn a_keyed_refund_is_replayed_and_not_applied_twice() {
    let db = TestDatabase::with_demo_data().await;
    let ledger = PgRefundLedger::new(db.pool().clone());
    let reservation = bought(&db, 7, 42).await;
    let request = refund(reservation, 7);
    let key = Some(IdempotentRequest {
        key: IdempotencyKey::parse("refund-1").unwrap(),
        fingerprint: request.fingerprint(),
    });

    let first = ledger.refund(request, key.clone()).await.unwrap();
    let again = ledger.refund(request, key).await.unwrap();

    assert!(!first.replayed && again.replayed);
    assert_eq!(first.outcome, again.outcome);
    assert_eq!(balance(&db, 7).await, 1_000_000);
}

/// A refund racing the payment of its own reservation: either the refund read the hold before
/// the payment (refused, the payment stands) or after it (both succeed, the money is back).
/// Never a refund of an unpaid reservation, never money made or lost.
#[tokio::test]
async fn a_refund_racing_the_payment_of_its_reservation_sees_it_paid_or_not_at_all() {
    let db = TestDatabase::with_demo_data().await;
    let payments = Arc::new(PgPaymentLedger::new(db.pool().clone()));
    let refunds = Arc::new(PgRefundLedger::new(db.pool().clone()));
    PgWallet::new(db.pool().clone())
        .charge(user(7), ChargeAmount::new(10_000_000).unwrap(), None)
        .await
        .unwrap();
    let mut expected_balance = 10_000_000;

    for seat in 1..=20 {
        let reservation = hold(&db, 7, seat).await;
        let (paid, refunded) = tokio::join!(
            {
                let payments = payments.clone();
                async move {
                    payments
                        .pay(PaymentRequest::one(reservation, user(7)), None)
                        .await
                        .unwrap()
                        .outcome
                }
            },
            {
                let refunds = refunds.clone();
                async move { outcome(&refunds, refund(reservation, 7)).await }
            }
        );
        let price = paid.as_ref().map(|p| p.amount.get()).unwrap();
        let status = PgSeatInventory::new(db.pool().clone())
            .find(reservation)
            .await
            .unwrap()
            .unwrap()
            .status;
        match refunded {
            Ok(_) => assert_eq!(status, ReservationStatus::Refunded),
            Err(RefundRefusal::NotRefundable(_)) => {
                assert_eq!(status, ReservationStatus::Confirmed);
                expected_balance -= price;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    assert_eq!(balance(&db, 7).await, expected_balance);
    ledger_matches_balances(&db).await;
}
