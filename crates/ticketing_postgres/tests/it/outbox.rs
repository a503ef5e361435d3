//! The outbox against a real PostgreSQL: every change writes its event in its own transaction,
//! a refused change writes none, and the relay publishes each event once, in order per
//! reservation, with several relays at once and through a failing publisher.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ticketing_domain::events::{Event, EventOutbox, EventPublisher, EventType, RelayReport};
use ticketing_domain::idempotency::{IdempotencyKey, IdempotentRequest};
use ticketing_domain::ids::{ConcertId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::money::ChargeAmount;
use ticketing_domain::payment::{PaymentForm, PaymentLedger, PaymentRequest, ReservationSelection};
use ticketing_domain::refund::{RefundLedger, RefundRequest};
use ticketing_domain::reservation::{
    HoldRequest, HoldTtl, SeatInventory, SeatLimit, SeatSelection, SeatsPerHold,
};
use ticketing_domain::wallet::Wallet;
use ticketing_domain::InfrastructureError;
use ticketing_postgres::{
    PgEventOutbox, PgPaymentLedger, PgRefundLedger, PgSeatInventory, PgWallet,
};
use ticketing_testkit::TestDatabase;

/// A stream in memory: what was appended, in order; it can be made to fail, to be slow, or to
/// stay in the middle of a publication until the test lets it finish.
#[derive(Default)]
struct Recorder {
    appended: Mutex<Vec<Event>>,
    down: std::sync::atomic::AtomicBool,
    delay: Option<Duration>,
    held_open: Option<HeldOpen>,
}

/// A publication that has started and finishes only when the test says so.
#[derive(Default)]
struct HeldOpen {
    started: tokio::sync::Notify,
    finish: tokio::sync::Notify,
}

#[async_trait]
impl EventPublisher for Recorder {
    async fn publish(&self, events: &[Event]) -> Result<(), InfrastructureError> {
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(held_open) = &self.held_open {
            held_open.started.notify_one();
            held_open.finish.notified().await;
        }
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(InfrastructureError::unavailable("the stream is down"));
        }
        self.appended.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

impl Recorder {
    fn kinds(&self) -> Vec<EventType> {
        self.appended
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.kind)
            .collect()
    }
}

fn user(id: i64) -> UserId {
    UserId::new(id).unwrap()
}

fn hold_request(user_id: i64, seats: &[i64]) -> HoldRequest {
    HoldRequest {
        user: user(user_id),
        concert: ConcertId::new(1).unwrap(),
        performance: PerformanceId::new(119).unwrap(),
        seats: SeatSelection::new(
            seats.iter().map(|s| SeatNo::new(*s).unwrap()).collect(),
            SeatsPerHold::new(std::num::NonZeroU32::new(10).unwrap()),
        )
        .unwrap(),
    }
}

async fn hold(db: &TestDatabase, user_id: i64, seats: &[i64], ttl: u64) -> Vec<ReservationId> {
    PgSeatInventory::new(db.pool().clone())
        .hold(
            hold_request(user_id, seats),
            HoldTtl::new(Duration::from_secs(ttl)).unwrap(),
            SeatLimit::new(4),
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect()
}

async fn charge(db: &TestDatabase, user_id: i64, won: i64) {
    PgWallet::new(db.pool().clone())
        .charge(user(user_id), ChargeAmount::new(won).unwrap(), None)
        .await
        .unwrap();
}

/// The unsent events, in id order: (type, reservation, user, amount, balance).
async fn recorded(
    db: &TestDatabase,
) -> Vec<(
    EventType,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
)> {
    let recorder = Arc::new(Recorder::default());
    let outbox = PgEventOutbox::new(db.pool().clone());
    while outbox
        .relay(1000, recorder.clone())
        .await
        .unwrap()
        .published
        > 0
    {}
    let appended = recorder.appended.lock().unwrap().clone();
    appended
        .into_iter()
        .map(|e| {
            (
                e.kind,
                e.reservation.map(ReservationId::get),
                e.user.map(UserId::get),
                e.amount.map(|w| w.get()),
                e.balance.map(|w| w.get()),
            )
        })
        .collect()
}

#[tokio::test]
async fn each_change_writes_its_event_with_the_fields_that_apply() {
    let db = TestDatabase::with_demo_data().await;
    charge(&db, 7, 500_000).await;
    let held = hold(&db, 7, &[42, 800], 300).await;
    let cancelled = hold(&db, 7, &[43], 300).await[0];
    PgSeatInventory::new(db.pool().clone())
        .cancel(cancelled)
        .await
        .unwrap();
    PgPaymentLedger::new(db.pool().clone())
        .pay(
            PaymentRequest {
                reservations: ReservationSelection::new(held.clone()).unwrap(),
                user: user(7),
                form: PaymentForm::Several,
            },
            None,
        )
        .await
        .unwrap()
        .outcome
        .unwrap();
    PgRefundLedger::new(db.pool().clone())
        .refund(
            RefundRequest {
                reservation: held[0],
                user: user(7),
            },
            None,
        )
        .await
        .unwrap()
        .outcome
        .unwrap();

    // Within one statement the order of its writes is PostgreSQL's choice; what is ordered is
    // each reservation's (and each balance's) events across statements: compare as sets here.
    let mut events = recorded(&db).await;
    events.sort();

    let (r42, r800, r43) = (held[0].get(), held[1].get(), cancelled.get());
    use EventType::*;
    let mut expected = vec![
        (BalanceCharged, None, Some(7), Some(500_000), Some(500_000)),
        (ReservationHeld, Some(r42), Some(7), Some(150_000), None),
        (ReservationHeld, Some(r800), Some(7), Some(90_000), None),
        (ReservationHeld, Some(r43), Some(7), Some(150_000), None),
        (ReservationCancelled, Some(r43), Some(7), None, None),
        (BalanceDebited, None, Some(7), Some(240_000), Some(260_000)),
        (
            ReservationConfirmed,
            Some(r42),
            Some(7),
            Some(150_000),
            None,
        ),
        (
            ReservationConfirmed,
            Some(r800),
            Some(7),
            Some(90_000),
            None,
        ),
        (ReservationRefunded, Some(r42), Some(7), Some(150_000), None),
        (
            BalanceRefunded,
            Some(r42),
            Some(7),
            Some(150_000),
            Some(410_000),
        ),
    ];
    expected.sort();
    assert_eq!(events, expected);
}

#[tokio::test]
async fn the_events_of_a_reservation_carry_its_performance_and_seat() {
    let db = TestDatabase::with_demo_data().await;
    hold(&db, 7, &[42], 300).await;
    let recorder = Arc::new(Recorder::default());

    PgEventOutbox::new(db.pool().clone())
        .relay(10, recorder.clone())
        .await
        .unwrap();

    let appended = recorder.appended.lock().unwrap().clone();
    assert_eq!(appended[0].performance.map(PerformanceId::get), Some(119));
    assert_eq!(appended[0].seat.map(SeatNo::get), Some(42));
}

#[tokio::test]
async fn a_refused_change_writes_no_event() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    hold(&db, 8, &[12], 300).await;
    hold(&db, 7, &[1, 2, 3], 300).await;
    db.execute("DELETE FROM outbox_events").await;

    let taken = inventory
        .hold(
            hold_request(7, &[12, 13]),
            HoldTtl::new(Duration::from_secs(300)).unwrap(),
            SeatLimit::unlimited(),
        )
        .await;
    let past_limit = inventory
        .hold(
            hold_request(7, &[20, 21]),
            HoldTtl::new(Duration::from_secs(300)).unwrap(),
            SeatLimit::new(4),
        )
        .await;
    let unpaid = PgPaymentLedger::new(db.pool().clone())
        .pay(
            PaymentRequest::one(ReservationId::new(987_654).unwrap(), user(7)),
            None,
        )
        .await
        .unwrap();
    let not_refundable = PgRefundLedger::new(db.pool().clone())
        .refund(
            RefundRequest {
                reservation: ReservationId::new(987_654).unwrap(),
                user: user(7),
            },
            None,
        )
        .await
        .unwrap();

    assert!(taken.is_err() && past_limit.is_err());
    assert!(unpaid.outcome.is_err() && not_refundable.outcome.is_err());
    assert_eq!(db.query_i64("SELECT count(*) FROM outbox_events").await, 0);
}

#[tokio::test]
async fn a_keyed_charge_replayed_writes_no_second_event() {
    let db = TestDatabase::with_demo_data().await;
    let wallet = PgWallet::new(db.pool().clone());
    let key = Some(IdempotentRequest {
        key: IdempotencyKey::parse("c1").unwrap(),
        fingerprint: "charge;user=7;amount=1000".to_string(),
    });

    for _ in 0..3 {
        wallet
            .charge(user(7), ChargeAmount::new(1000).unwrap(), key.clone())
            .await
            .unwrap();
    }

    assert_eq!(db.query_i64("SELECT count(*) FROM outbox_events").await, 1);
}

#[tokio::test]
async fn a_lapsed_hold_expires_once_whether_swept_or_taken_again() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    let swept = hold(&db, 7, &[1], 1).await[0];
    let retaken = hold(&db, 7, &[2], 1).await[0];
    db.pass(Duration::from_secs(2)).await;

    hold(&db, 8, &[2], 300).await;
    inventory.release_expired(100).await.unwrap();
    inventory.release_expired(100).await.unwrap();

    let expired: Vec<Option<i64>> = recorded(&db)
        .await
        .into_iter()
        .filter(|(kind, ..)| *kind == EventType::ReservationExpired)
        .map(|(_, reservation, ..)| reservation)
        .collect();
    let mut expected = vec![Some(swept.get()), Some(retaken.get())];
    expected.sort();
    let mut expired = expired;
    expired.sort();
    assert_eq!(expired, expected);
}

#[tokio::test]
async fn a_failed_publication_leaves_every_event_for_the_next_step() {
    let db = TestDatabase::with_demo_data().await;
    let outbox = PgEventOutbox::new(db.pool().clone());
    charge(&db, 7, 1000).await;
    charge(&db, 8, 2000).await;
    let recorder = Arc::new(Recorder::default());
    recorder
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);

    let failed = outbox.relay(10, recorder.clone()).await;

    assert!(matches!(failed, Err(InfrastructureError::Unavailable(_))));
    assert_eq!(
        db.query_i64("SELECT count(*) FROM outbox_events WHERE sent_at IS NULL")
            .await,
        2
    );
    recorder
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        outbox.relay(10, recorder.clone()).await.unwrap(),
        RelayReport {
            claimed: 2,
            published: 2
        }
    );
    assert_eq!(recorder.kinds(), vec![EventType::BalanceCharged; 2]);
    assert_eq!(
        outbox.relay(10, recorder.clone()).await.unwrap(),
        RelayReport::default(),
        "nothing twice"
    );
}

#[tokio::test]
async fn sent_events_are_forgotten_after_their_retention() {
    let db = TestDatabase::with_demo_data().await;
    let outbox = PgEventOutbox::new(db.pool().clone());
    charge(&db, 7, 1000).await;
    outbox
        .relay(10, Arc::new(Recorder::default()))
        .await
        .unwrap();
    charge(&db, 7, 1000).await;

    assert_eq!(
        outbox
            .forget_sent_older_than(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    db.pass(Duration::from_secs(2 * 3600)).await;
    assert_eq!(
        outbox
            .forget_sent_older_than(Duration::from_secs(3600))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM outbox_events WHERE sent_at IS NULL")
            .await,
        1,
        "unsent events are kept"
    );
}

/// Four relays at once, each slow to publish, over a stream of holds, payments and cancellations
/// of many reservations: every event is published exactly once, and each reservation's events in
/// the order they were recorded.
#[tokio::test]
async fn several_relays_publish_each_event_once_and_each_reservation_in_order() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    let mut reservations = Vec::new();
    for user_id in 1..=30 {
        charge(&db, user_id, 1_000_000).await;
        reservations.extend(hold(&db, user_id, &[user_id * 2, user_id * 2 + 1], 300).await);
    }
    let payments = PgPaymentLedger::new(db.pool().clone());
    for (i, reservation) in reservations.iter().enumerate() {
        let owner = db
            .query_i64(&format!(
                "SELECT user_id FROM reservations WHERE id = {reservation}"
            ))
            .await;
        if i % 2 == 0 {
            payments
                .pay(PaymentRequest::one(*reservation, user(owner)), None)
                .await
                .unwrap();
        } else {
            inventory.cancel(*reservation).await.unwrap();
        }
    }
    let total = db.query_i64("SELECT count(*) FROM outbox_events").await as usize;
    // Slow enough that the four relays' claims overlap.
    let recorder = Arc::new(Recorder {
        delay: Some(Duration::from_millis(20)),
        ..Recorder::default()
    });

    let relays: Vec<_> = (0..4)
        .map(|_| {
            let outbox = PgEventOutbox::new(db.pool().clone());
            let recorder = recorder.clone();
            tokio::spawn(async move {
                loop {
                    let report = outbox.relay(7, recorder.clone()).await.unwrap();
                    if report.claimed == 0 {
                        break;
                    }
                    // Not a wait for time to pass: without a pause a relay whose claim was all
                    // held back would spin on the database while the others publish.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    for relay in relays {
        relay.await.unwrap();
    }
    let outbox = PgEventOutbox::new(db.pool().clone());
    while outbox.relay(100, recorder.clone()).await.unwrap().claimed > 0 {}

    let appended = recorder.appended.lock().unwrap().clone();
    assert_eq!(appended.len(), total, "every event");
    let ids: HashSet<i64> = appended.iter().map(|e| e.id.get()).collect();
    assert_eq!(ids.len(), total, "once");
    let mut last_per_reservation: HashMap<i64, i64> = HashMap::new();
    for event in appended.iter().filter(|e| !e.kind.is_balance()) {
        let reservation = event.reservation.unwrap().get();
        if let Some(previous) = last_per_reservation.insert(reservation, event.id.get()) {
            assert!(
                previous < event.id.get(),
                "reservation {reservation} out of order"
            );
        }
    }
}

/// A relay publishing slowly holds no lock: its rows can be locked by anyone meanwhile (as the
/// clean-up of a test schema, or a migration, would), and another relay claims other rows.
#[tokio::test]
async fn a_relay_holds_no_lock_while_it_publishes() {
    let db = TestDatabase::with_demo_data().await;
    for user_id in 1..=4 {
        charge(&db, user_id, 1000).await;
    }
    let slow = Arc::new(Recorder {
        held_open: Some(HeldOpen::default()),
        ..Recorder::default()
    });
    let publishing = {
        let outbox = PgEventOutbox::new(db.pool().clone());
        let slow = slow.clone();
        tokio::spawn(async move { outbox.relay(2, slow).await })
    };
    let held_open = slow.held_open.as_ref().unwrap();
    tokio::time::timeout(Duration::from_secs(10), held_open.started.notified())
        .await
        .expect("the slow relay claims its rows and starts publishing");

    db.execute("BEGIN; SELECT id FROM outbox_events FOR UPDATE NOWAIT; COMMIT;")
        .await;
    let other = Arc::new(Recorder::default());
    let report = PgEventOutbox::new(db.pool().clone())
        .relay(10, other.clone())
        .await
        .unwrap();

    assert_eq!(report.published, 2, "the two rows nobody holds");
    held_open.finish.notify_one();
    assert_eq!(publishing.await.unwrap().unwrap().published, 2);
    let first: HashSet<i64> = slow
        .appended
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.id.get())
        .collect();
    let second: HashSet<i64> = other
        .appended
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.id.get())
        .collect();
    assert!(first.is_disjoint(&second));
}

/// A relay that claimed rows and died: its lease lapses and another relay publishes them.
#[tokio::test]
async fn the_rows_of_a_dead_relay_are_published_once_its_lease_lapses() {
    let db = TestDatabase::with_demo_data().await;
    charge(&db, 7, 1000).await;
    db.execute("UPDATE outbox_events SET claim = 1, claimed_until = now() + interval '1 second'")
        .await;
    let recorder = Arc::new(Recorder::default());
    let outbox = PgEventOutbox::new(db.pool().clone());

    assert_eq!(outbox.relay(10, recorder.clone()).await.unwrap().claimed, 0);
    db.pass(Duration::from_secs(2)).await;

    assert_eq!(
        outbox.relay(10, recorder.clone()).await.unwrap().published,
        1
    );
}
