//! Balances and payments against a real PostgreSQL, one schema per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The outcome of a payment, replayed or not: what most of these tests look at.
trait PayOutcome {
    async fn pay_outcome(
        &self,
        request: ticketing_domain::payment::PaymentRequest,
        idempotency: Option<ticketing_domain::idempotency::IdempotentRequest>,
    ) -> Result<ticketing_domain::payment::PaymentOutcome, ticketing_domain::payment::LedgerError>;
}

impl PayOutcome for ticketing_postgres::PgPaymentLedger {
    async fn pay_outcome(
        &self,
        request: ticketing_domain::payment::PaymentRequest,
        idempotency: Option<ticketing_domain::idempotency::IdempotentRequest>,
    ) -> Result<ticketing_domain::payment::PaymentOutcome, ticketing_domain::payment::LedgerError>
    {
        use ticketing_domain::payment::PaymentLedger;
        self.pay(request, idempotency)
            .await
            .map(|answer| answer.outcome)
    }
}

use std::sync::Arc;
use std::time::Duration;

use ticketing_domain::idempotency::{IdempotencyConflict, IdempotencyKey, IdempotentRequest};
use ticketing_domain::ids::{ConcertId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::money::ChargeAmount;
use ticketing_domain::payment::{
    LedgerError, PaymentForm, PaymentLedger, PaymentRefusal, PaymentRequest, ReservationSelection,
};
use ticketing_domain::reservation::{
    HoldRequest, HoldTtl, SeatInventory, SeatLimit, SeatSelection,
};
use ticketing_domain::wallet::{Wallet, WalletError};
use ticketing_postgres::{PgPaymentLedger, PgSeatInventory, PgWallet};
use ticketing_testkit::TestDatabase;

fn user(id: i64) -> UserId {
    UserId::new(id).unwrap()
}

fn amount(won: i64) -> ChargeAmount {
    ChargeAmount::new(won).unwrap()
}

fn keyed(key: &str, fingerprint: &str) -> Option<IdempotentRequest> {
    Some(IdempotentRequest {
        key: IdempotencyKey::parse(key).unwrap(),
        fingerprint: fingerprint.to_string(),
    })
}

async fn hold(db: &TestDatabase, user_id: i64, seat: i64, ttl_seconds: u64) -> ReservationId {
    PgSeatInventory::new(db.pool().clone())
        .hold(
            HoldRequest {
                user: user(user_id),
                concert: ConcertId::new(1).unwrap(),
                performance: PerformanceId::new(119).unwrap(),
                seats: SeatSelection::one(SeatNo::new(seat).unwrap()),
            },
            HoldTtl::new(Duration::from_secs(ttl_seconds)).unwrap(),
            SeatLimit::unlimited(),
        )
        .await
        .unwrap()[0]
        .id
}

fn pay(reservation: ReservationId, user_id: i64) -> PaymentRequest {
    PaymentRequest::one(reservation, user(user_id))
}

fn pay_several(reservations: &[ReservationId], user_id: i64) -> PaymentRequest {
    PaymentRequest {
        reservations: ReservationSelection::new(reservations.to_vec()).unwrap(),
        user: user(user_id),
        form: PaymentForm::Several,
    }
}

async fn ledger_matches_balances(db: &TestDatabase) {
    let mismatches = db
        .query_i64(
            "SELECT count(*) FROM wallets w
              WHERE w.balance <> (SELECT coalesce(sum(amount), 0) FROM wallet_entries e WHERE e.user_id = w.user_id)",
        )
        .await;
    assert_eq!(
        mismatches, 0,
        "every balance is the sum of its ledger entries"
    );
}

#[tokio::test]
async fn a_hundred_concurrent_charges_all_count() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = Arc::new(PgWallet::new(db.pool().clone()));

    let charges: Vec<_> = (0..100)
        .map(|_| {
            let wallet = wallet.clone();
            tokio::spawn(async move { wallet.charge(user(7), amount(1000), None).await })
        })
        .collect();
    for charge in charges {
        charge.await.unwrap().unwrap();
    }

    assert_eq!(wallet.balance(user(7)).await.unwrap().get(), 100_000);
    ledger_matches_balances(&db).await;
}

#[tokio::test]
async fn a_keyed_charge_applies_once_and_answers_the_same_balance_again() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = PgWallet::new(db.pool().clone());

    let first = wallet
        .charge(user(7), amount(5000), keyed("c1", "a"))
        .await
        .unwrap();
    wallet.charge(user(7), amount(1), None).await.unwrap();
    let again = wallet
        .charge(user(7), amount(5000), keyed("c1", "a"))
        .await
        .unwrap();

    assert_eq!(first.get(), 5000);
    assert_eq!(
        again.get(),
        5000,
        "the first answer, not the current balance"
    );
    assert_eq!(wallet.balance(user(7)).await.unwrap().get(), 5001);
}

#[tokio::test]
async fn a_key_reused_for_another_charge_is_a_conflict() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = PgWallet::new(db.pool().clone());
    wallet
        .charge(user(7), amount(5000), keyed("c1", "a"))
        .await
        .unwrap();

    let reused = wallet.charge(user(7), amount(6000), keyed("c1", "b")).await;

    assert_eq!(
        reused,
        Err(WalletError::Conflict(IdempotencyConflict::DifferentRequest))
    );
    assert_eq!(wallet.balance(user(7)).await.unwrap().get(), 5000);
}

#[tokio::test]
async fn racing_charges_under_one_key_apply_once() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = Arc::new(PgWallet::new(db.pool().clone()));

    let charges: Vec<_> = (0..50)
        .map(|_| {
            let wallet = wallet.clone();
            tokio::spawn(async move {
                wallet
                    .charge(user(7), amount(1000), keyed("same", "x"))
                    .await
            })
        })
        .collect();
    for charge in charges {
        match charge.await.unwrap() {
            Ok(balance) => assert_eq!(balance.get(), 1000),
            Err(WalletError::Conflict(IdempotencyConflict::InFlight)) => {}
            Err(other) => panic!("unexpected: {other:?}"),
        }
    }

    assert_eq!(wallet.balance(user(7)).await.unwrap().get(), 1000);
}

#[tokio::test]
async fn an_unknown_user_has_no_balance_and_cannot_be_charged() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = PgWallet::new(db.pool().clone());

    assert_eq!(
        wallet.balance(user(99_999)).await,
        Err(WalletError::UserNotFound(user(99_999)))
    );
    assert_eq!(
        wallet
            .charge(user(99_999), amount(1), keyed("k", "f"))
            .await,
        Err(WalletError::UserNotFound(user(99_999)))
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM idempotency_keys").await,
        0
    );
}

#[tokio::test]
async fn a_payment_debits_confirms_sells_and_records() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = PgWallet::new(db.pool().clone());
    let ledger = PgPaymentLedger::new(db.pool().clone());
    wallet.charge(user(7), amount(200_000), None).await.unwrap();
    let reservation = hold(&db, 7, 42, 300).await;

    let payment = ledger
        .pay_outcome(pay(reservation, 7), None)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(payment.amount.get(), 150_000);
    assert_eq!(wallet.balance(user(7)).await.unwrap().get(), 50_000);
    let confirmed = db
        .query_i64(&format!(
            "SELECT count(*) FROM reservations WHERE id = {reservation} AND status = 'CONFIRMED'"
        ))
        .await;
    assert_eq!(confirmed, 1);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE performance_id = 119 AND seat_no = 42 AND status = 'SOLD'").await,
        1
    );
    assert_eq!(db.query_i64("SELECT count(*) FROM payments").await, 1);
    ledger_matches_balances(&db).await;
}

#[tokio::test]
async fn an_insufficient_balance_changes_nothing() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = PgWallet::new(db.pool().clone());
    let ledger = PgPaymentLedger::new(db.pool().clone());
    wallet.charge(user(7), amount(100_000), None).await.unwrap();
    let reservation = hold(&db, 7, 42, 300).await;

    let outcome = ledger.pay_outcome(pay(reservation, 7), None).await.unwrap();

    assert!(matches!(
        outcome,
        Err(PaymentRefusal::InsufficientBalance { .. })
    ));
    assert_eq!(wallet.balance(user(7)).await.unwrap().get(), 100_000);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE performance_id = 119 AND seat_no = 42 AND status = 'HELD'").await,
        1,
        "still held, so the buyer can charge and pay"
    );
    assert_eq!(db.query_i64("SELECT count(*) FROM payments").await, 0);
}

#[tokio::test]
async fn lapsed_cancelled_and_paid_reservations_are_not_payable() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = PgWallet::new(db.pool().clone());
    let ledger = PgPaymentLedger::new(db.pool().clone());
    let inventory = PgSeatInventory::new(db.pool().clone());
    wallet
        .charge(user(7), amount(1_000_000), None)
        .await
        .unwrap();
    let lapsing = hold(&db, 7, 1, 1).await;
    let cancelled = hold(&db, 7, 2, 300).await;
    let paid = hold(&db, 7, 3, 300).await;
    inventory.cancel(cancelled).await.unwrap();
    ledger
        .pay_outcome(pay(paid, 7), None)
        .await
        .unwrap()
        .unwrap();
    db.pass(Duration::from_secs(2)).await;

    for reservation in [lapsing, cancelled, paid] {
        assert_eq!(
            ledger.pay_outcome(pay(reservation, 7), None).await.unwrap(),
            Err(PaymentRefusal::NotPayable(reservation))
        );
    }
    assert_eq!(
        wallet.balance(user(7)).await.unwrap().get(),
        1_000_000 - 150_000
    );
}

#[tokio::test]
async fn someone_elses_or_an_unknown_reservation_is_not_found() {
    let db = TestDatabase::with_demo_data().await;
    let ledger = PgPaymentLedger::new(db.pool().clone());
    let reservation = hold(&db, 7, 42, 300).await;

    assert_eq!(
        ledger.pay_outcome(pay(reservation, 8), None).await.unwrap(),
        Err(PaymentRefusal::ReservationNotFound(reservation))
    );
    let unknown = ReservationId::new(424_242).unwrap();
    assert_eq!(
        ledger.pay_outcome(pay(unknown, 7), None).await.unwrap(),
        Err(PaymentRefusal::ReservationNotFound(unknown))
    );
}

#[tokio::test]
async fn a_hundred_concurrent_payments_under_one_key_debit_once() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = PgWallet::new(db.pool().clone());
    let ledger = Arc::new(PgPaymentLedger::new(db.pool().clone()));
    wallet
        .charge(user(7), amount(1_000_000), None)
        .await
        .unwrap();
    let reservation = hold(&db, 7, 42, 300).await;

    let attempts: Vec<_> = (0..100)
        .map(|_| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                ledger
                    .pay_outcome(
                        pay(reservation, 7),
                        keyed("pay-once", &pay(reservation, 7).fingerprint()),
                    )
                    .await
            })
        })
        .collect();
    let mut paid = Vec::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(Ok(payment)) => paid.push(payment),
            Err(LedgerError::Conflict(IdempotencyConflict::InFlight)) => {}
            other => panic!("unexpected: {other:?}"),
        }
    }

    assert!(!paid.is_empty());
    assert!(
        paid.iter().all(|p| *p == paid[0]),
        "every answer is the same payment"
    );
    assert_eq!(db.query_i64("SELECT count(*) FROM payments").await, 1);
    assert_eq!(wallet.balance(user(7)).await.unwrap().get(), 850_000);
    let replay = ledger
        .recorded(IdempotentRequest {
            key: IdempotencyKey::parse("pay-once").unwrap(),
            fingerprint: pay(reservation, 7).fingerprint(),
        })
        .await
        .unwrap();
    assert_eq!(replay, Some(Ok(paid[0].clone())));
    ledger_matches_balances(&db).await;
}

#[tokio::test]
async fn a_recorded_refusal_is_answered_again_even_once_it_would_succeed() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = PgWallet::new(db.pool().clone());
    let ledger = PgPaymentLedger::new(db.pool().clone());
    let reservation = hold(&db, 7, 42, 300).await;
    let key = keyed("k", &pay(reservation, 7).fingerprint());

    let first = ledger
        .pay_outcome(pay(reservation, 7), key.clone())
        .await
        .unwrap();
    wallet
        .charge(user(7), amount(1_000_000), None)
        .await
        .unwrap();
    let again = ledger.pay_outcome(pay(reservation, 7), key).await.unwrap();

    assert!(matches!(
        first,
        Err(PaymentRefusal::InsufficientBalance { .. })
    ));
    assert_eq!(again, first);
    assert_eq!(db.query_i64("SELECT count(*) FROM payments").await, 0);
}

#[tokio::test]
async fn two_concurrent_payments_that_the_balance_covers_once_succeed_once() {
    for round in 0..5 {
        let db = TestDatabase::with_demo_data().await;
        let wallet = PgWallet::new(db.pool().clone());
        let ledger = Arc::new(PgPaymentLedger::new(db.pool().clone()));
        wallet.charge(user(7), amount(200_000), None).await.unwrap();
        let first = hold(&db, 7, 10, 300).await;
        let second = hold(&db, 7, 11, 300).await;

        let (a, b) = tokio::join!(
            {
                let ledger = ledger.clone();
                async move { ledger.pay_outcome(pay(first, 7), None).await }
            },
            {
                let ledger = ledger.clone();
                async move { ledger.pay_outcome(pay(second, 7), None).await }
            }
        );

        let outcomes = [a.unwrap(), b.unwrap()];
        let succeeded = outcomes.iter().filter(|o| o.is_ok()).count();
        let refused = outcomes
            .iter()
            .filter(|o| matches!(o, Err(PaymentRefusal::InsufficientBalance { .. })))
            .count();
        assert_eq!((succeeded, refused), (1, 1), "round {round}");
        assert_eq!(wallet.balance(user(7)).await.unwrap().get(), 50_000);
        assert_eq!(
            db.query_i64("SELECT min(balance) FROM wallets").await,
            0,
            "no balance ever below zero (CHECK constraint) and untouched wallets at zero"
        );
        ledger_matches_balances(&db).await;
    }
}

#[tokio::test]
async fn several_reservations_are_paid_with_one_debit_of_their_sum() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = PgWallet::new(db.pool().clone());
    let ledger = PgPaymentLedger::new(db.pool().clone());
    wallet.charge(user(7), amount(300_000), None).await.unwrap();
    let front = hold(&db, 7, 42, 300).await;
    let back = hold(&db, 7, 800, 300).await;

    let payment = ledger
        .pay_outcome(pay_several(&[back, front], 7), None)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(payment.amount.get(), 240_000);
    assert_eq!(payment.reservation, back, "the first asked");
    assert_eq!(payment.reservations, vec![back, front]);
    assert_eq!(wallet.balance(user(7)).await.unwrap().get(), 60_000);
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM wallet_entries WHERE user_id = 7 AND reason = 'PAYMENT'"
        )
        .await,
        1,
        "one debit"
    );
    assert_eq!(
        db.query_i64(&format!(
            "SELECT count(*) FROM reservations WHERE id IN ({front}, {back}) AND status = 'CONFIRMED'"
        ))
        .await,
        2
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE status = 'SOLD'")
            .await,
        2
    );
    assert_eq!(
        db.query_i64(&format!(
            "SELECT sum(amount)::bigint FROM payment_reservations WHERE payment_id = {}",
            payment.id
        ))
        .await,
        240_000
    );
    ledger_matches_balances(&db).await;
}

#[tokio::test]
async fn a_payment_of_several_that_cannot_be_whole_changes_nothing() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = PgWallet::new(db.pool().clone());
    let ledger = PgPaymentLedger::new(db.pool().clone());
    wallet
        .charge(user(7), amount(1_000_000), None)
        .await
        .unwrap();
    let mine = hold(&db, 7, 1, 300).await;
    let lapsing = hold(&db, 7, 2, 1).await;
    let foreign = hold(&db, 8, 3, 300).await;
    db.pass(Duration::from_secs(2)).await;

    assert_eq!(
        ledger
            .pay_outcome(pay_several(&[mine, foreign], 7), None)
            .await
            .unwrap(),
        Err(PaymentRefusal::ReservationNotFound(foreign)),
        "a mix of one's own and someone else's reservations"
    );
    assert_eq!(
        ledger
            .pay_outcome(pay_several(&[mine, lapsing], 7), None)
            .await
            .unwrap(),
        Err(PaymentRefusal::NotPayable(lapsing))
    );
    wallet.charge(user(9), amount(100_000), None).await.unwrap();
    let first = hold(&db, 9, 10, 300).await;
    let second = hold(&db, 9, 11, 300).await;
    assert!(matches!(
        ledger
            .pay_outcome(pay_several(&[first, second], 9), None)
            .await
            .unwrap(),
        Err(PaymentRefusal::InsufficientBalance { price }) if price.get() == 300_000
    ));

    assert_eq!(wallet.balance(user(7)).await.unwrap().get(), 1_000_000);
    assert_eq!(wallet.balance(user(9)).await.unwrap().get(), 100_000);
    assert_eq!(db.query_i64("SELECT count(*) FROM payments").await, 0);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE status = 'SOLD'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_keyed_payment_of_several_is_replayed_with_every_reservation() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = PgWallet::new(db.pool().clone());
    let ledger = PgPaymentLedger::new(db.pool().clone());
    wallet
        .charge(user(7), amount(1_000_000), None)
        .await
        .unwrap();
    let first = hold(&db, 7, 1, 300).await;
    let second = hold(&db, 7, 2, 300).await;
    let request = pay_several(&[first, second], 7);
    let key = keyed("several", &request.fingerprint());

    let paid = ledger.pay(request.clone(), key.clone()).await.unwrap();
    let again = ledger.pay(request, key).await.unwrap();

    assert!(!paid.replayed && again.replayed);
    assert_eq!(paid.outcome, again.outcome);
    assert_eq!(again.outcome.unwrap().reservations, vec![first, second]);
    assert_eq!(
        wallet.balance(user(7)).await.unwrap().get(),
        1_000_000 - 300_000
    );
}
