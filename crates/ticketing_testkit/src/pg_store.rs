//! The PostgreSQL adapters as a fixture of the domain's store contract
//! (`ticketing_domain::testing::store_contract`), on an empty migrated schema of their own: for
//! the adapters' contract tests and for the app's adapters built on them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ticketing_domain::catalog::{Concert, ConcertCatalog};
use ticketing_domain::events::EventOutbox;
use ticketing_domain::idempotency::OutcomeRetention;
use ticketing_domain::ids::{ConcertId, PerformanceId, UserId};
use ticketing_domain::payment::PaymentLedger;
use ticketing_domain::refund::RefundLedger;
use ticketing_domain::reservation::SeatInventory;
use ticketing_domain::testing::store_contract::{SeatSpec, StoreFixture};
use ticketing_domain::wallet::Wallet;
use ticketing_postgres::{
    PgConcertCatalog, PgEventOutbox, PgOutcomeRetention, PgPaymentLedger, PgRefundLedger,
    PgSeatInventory, PgWallet,
};

use crate::TestDatabase;

/// The adapters on an empty migrated schema of their own.
#[derive(Debug)]
pub struct PgStore {
    db: TestDatabase,
}

impl PgStore {
    /// A fixture on a new schema.
    pub async fn new() -> Self {
        Self {
            db: TestDatabase::new().await,
        }
    }

    /// The schema the adapters use.
    pub fn db(&self) -> &TestDatabase {
        &self.db
    }
}

/// A text literal of SQL.
fn text(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[async_trait]
impl StoreFixture for PgStore {
    fn catalog(&self) -> Arc<dyn ConcertCatalog> {
        Arc::new(PgConcertCatalog::new(self.db.pool().clone()))
    }
    fn inventory(&self) -> Arc<dyn SeatInventory> {
        Arc::new(PgSeatInventory::new(self.db.pool().clone()))
    }
    fn wallet(&self) -> Arc<dyn Wallet> {
        Arc::new(PgWallet::new(self.db.pool().clone()))
    }
    fn payment_ledger(&self) -> Arc<dyn PaymentLedger> {
        Arc::new(PgPaymentLedger::new(self.db.pool().clone()))
    }
    fn refund_ledger(&self) -> Arc<dyn RefundLedger> {
        Arc::new(PgRefundLedger::new(self.db.pool().clone()))
    }
    fn retention(&self) -> Arc<dyn OutcomeRetention> {
        Arc::new(PgOutcomeRetention::new(self.db.pool().clone()))
    }
    fn outbox(&self) -> Arc<dyn EventOutbox> {
        Arc::new(PgEventOutbox::new(self.db.pool().clone()))
    }

    async fn seed_concert(&self, concert: &Concert) {
        self.db
            .execute(&format!(
                "INSERT INTO concerts (id, title, artist, venue) VALUES ({}, {}, {}, {})",
                concert.id,
                text(&concert.title),
                text(&concert.artist),
                text(&concert.venue)
            ))
            .await;
    }

    async fn seed_performance(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
        starts_in: Duration,
        seats: &[SeatSpec],
    ) {
        let rows: Vec<String> = seats
            .iter()
            .map(|seat| {
                format!(
                    "({performance}, {}, {}, {})",
                    seat.no,
                    text(&seat.grade),
                    seat.price.get()
                )
            })
            .collect();
        self.db
            .execute(&format!(
                "INSERT INTO performances (id, concert_id, starts_at, total_seats)
                 VALUES ({performance}, {concert}, now() + make_interval(secs => {}), {});
                 INSERT INTO seats (performance_id, seat_no, grade, price) VALUES {};",
                starts_in.as_secs_f64(),
                seats.len(),
                rows.join(", ")
            ))
            .await;
    }

    async fn seed_user(&self, user: UserId) {
        self.db
            .execute(&format!(
                "INSERT INTO users (id) VALUES ({user}); INSERT INTO wallets (user_id) VALUES ({user});"
            ))
            .await;
    }

    async fn advance(&self, by: Duration) {
        self.db.pass(by).await;
    }
}
