//! The PostgreSQL adapters against the contract of their ports
//! (`ticketing_domain::testing::store_contract`), each port on a schema of its own. The store's
//! clock is PostgreSQL's `now()`, which a test cannot move: moving time forward moves every
//! stored instant back by as much instead. The fixture, `ticketing_testkit::PgStore`, is shared
//! with the app's tests of its own adapters.

use ticketing_domain::testing::store_contract as contract;
use ticketing_testkit::{PgStore, TestDatabase};

#[tokio::test]
async fn the_catalog_keeps_the_contract() {
    contract::concert_catalog_contract(&PgStore::new().await).await;
}

#[tokio::test]
async fn the_seat_inventory_keeps_the_contract() {
    contract::seat_inventory_contract(&PgStore::new().await).await;
}

#[tokio::test]
async fn the_wallet_keeps_the_contract() {
    contract::wallet_contract(&PgStore::new().await).await;
}

#[tokio::test]
async fn the_payment_ledger_keeps_the_contract() {
    contract::payment_ledger_contract(&PgStore::new().await).await;
}

#[tokio::test]
async fn the_refund_ledger_keeps_the_contract() {
    contract::refund_ledger_contract(&PgStore::new().await).await;
}

#[tokio::test]
async fn the_outcome_retention_keeps_the_contract() {
    contract::outcome_retention_contract(&PgStore::new().await).await;
}

#[tokio::test]
async fn the_event_outbox_keeps_the_contract() {
    contract::event_outbox_contract(&PgStore::new().await).await;
}

#[tokio::test]
async fn passing_time_moves_every_stored_instant() {
    let db = TestDatabase::new().await;
    let listed: usize = ticketing_testkit::STORED_INSTANTS
        .iter()
        .map(|(_, columns)| columns.len())
        .sum();
    let in_schema = db
        .query_i64(&format!(
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_schema = '{}' AND data_type = 'timestamp with time zone'",
            db.schema()
        ))
        .await;
    assert_eq!(
        usize::try_from(in_schema).unwrap(),
        listed,
        "a timestamp column is missing from STORED_INSTANTS"
    );
}
