//! The in-memory adapters keep the contract of their ports, and a few things only they offer.

use std::time::Duration;

use chrono::DateTime;

use super::*;
use crate::testing::store_contract as contract;

fn store() -> InMemoryStore {
    InMemoryStore::new(ManualClock::starting_now())
}

#[tokio::test]
async fn the_catalog_keeps_the_contract() {
    contract::concert_catalog_contract(&store()).await;
}

#[tokio::test]
async fn the_seat_inventory_keeps_the_contract() {
    contract::seat_inventory_contract(&store()).await;
}

#[tokio::test]
async fn the_wallet_keeps_the_contract() {
    contract::wallet_contract(&store()).await;
}

#[tokio::test]
async fn the_payment_ledger_keeps_the_contract() {
    contract::payment_ledger_contract(&store()).await;
}

#[tokio::test]
async fn the_refund_ledger_keeps_the_contract() {
    contract::refund_ledger_contract(&store()).await;
}

#[tokio::test]
async fn the_outcome_retention_keeps_the_contract() {
    contract::outcome_retention_contract(&store()).await;
}

#[tokio::test]
async fn the_event_outbox_keeps_the_contract() {
    contract::event_outbox_contract(&store()).await;
}

#[tokio::test]
async fn the_event_stream_keeps_the_publishers_contract() {
    let stream = InMemoryEventStream::new();
    contract::event_publisher_contract(&stream, &stream).await;
}

#[tokio::test]
async fn the_seat_memory_keeps_the_contract() {
    let store = store();
    let memory = store.seat_memory();
    contract::seat_memory_contract(&store, memory.as_ref()).await;
}

#[tokio::test]
async fn every_contract_runs_on_stores_of_their_own() {
    contract::run_all(|| async { store() }).await;
}

#[test]
fn the_manual_clock_keeps_the_contract_and_moves_only_when_told() {
    let start = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("valid");
    let clock = ManualClock::new(start);
    contract::clock_contract(&clock);
    assert_eq!(clock.now(), start, "a manual clock stands still");
    let shared = clock.clone();
    clock.advance(Duration::from_secs(90));
    assert_eq!(
        shared.now(),
        start + chrono::Duration::seconds(90),
        "clones share one time"
    );
    clock.set(start);
    assert_eq!(shared.now(), start);
}

#[tokio::test]
async fn a_store_reports_its_payments_and_unsent_events() {
    let store = store();
    let concert = ConcertId::new(1).expect("valid");
    let performance = PerformanceId::new(11).expect("valid");
    let user = UserId::new(7).expect("valid");
    store.add_concert(Concert {
        id: concert,
        title: "t".into(),
        artist: "a".into(),
        venue: "v".into(),
    });
    store.add_performance(
        concert,
        performance,
        Duration::from_secs(3_600),
        [(
            SeatNo::new(1).expect("valid"),
            "R".to_string(),
            Won::new(10).expect("valid"),
        )],
    );
    store.add_user(user);
    store
        .wallet()
        .charge(user, ChargeAmount::new(10).expect("valid"), None)
        .await
        .expect("charged");
    let held = store
        .inventory()
        .hold(
            HoldRequest {
                user,
                concert,
                performance,
                seats: crate::reservation::SeatSelection::one(SeatNo::new(1).expect("valid")),
            },
            HoldTtl::new(Duration::from_secs(60)).expect("valid"),
            SeatLimit::unlimited(),
        )
        .await
        .expect("held");
    let answer = store
        .payment_ledger()
        .pay(PaymentRequest::one(held[0].id, user), None)
        .await
        .expect("paid");

    assert_eq!(store.payments(), vec![answer.outcome.expect("a payment")]);
    assert_eq!(
        store.unsent_events().len(),
        4,
        "charged, held, debited, confirmed"
    );
}
