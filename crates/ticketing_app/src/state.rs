//! What every handler shares: the use cases, wired to their adapters.

use std::sync::Arc;

use ticketing_domain::catalog::CatalogService;
use ticketing_domain::idempotency::OutcomeRetention;
use ticketing_domain::payment::PaymentService;
use ticketing_domain::queue::{QueuePolicy, QueueService};
use ticketing_domain::reservation::{HoldTtl, ReservationService};
use ticketing_domain::wallet::WalletService;
use ticketing_postgres::{
    PgConcertCatalog, PgOutcomeRetention, PgPaymentLedger, PgPool, PgSeatInventory, PgWallet,
};
use ticketing_redis::{KeySpace, RedisPool, RedisWaitingQueue};

/// The application's use cases and the pools behind them.
#[derive(Clone)]
pub struct AppState {
    pub catalog: CatalogService,
    pub queue: QueueService,
    pub reservations: ReservationService,
    pub wallet: WalletService,
    pub payments: PaymentService,
    pub outcome_retention: Arc<dyn OutcomeRetention>,
    pub postgres: PgPool,
    pub redis: RedisPool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// Wires every use case to the PostgreSQL and Redis adapters.
    pub fn new(
        postgres: PgPool,
        redis: RedisPool,
        keys: &KeySpace,
        policy: QueuePolicy,
        hold_ttl: HoldTtl,
    ) -> Self {
        let queue = QueueService::new(
            Arc::new(RedisWaitingQueue::new(redis.clone(), keys, policy)),
            policy,
        );
        Self {
            catalog: CatalogService::new(Arc::new(PgConcertCatalog::new(postgres.clone()))),
            wallet: WalletService::new(Arc::new(PgWallet::new(postgres.clone()))),
            payments: PaymentService::new(
                Arc::new(PgPaymentLedger::new(postgres.clone())),
                queue.clone(),
            ),
            outcome_retention: Arc::new(PgOutcomeRetention::new(postgres.clone())),
            queue,
            reservations: ReservationService::new(
                Arc::new(PgSeatInventory::new(postgres.clone())),
                hold_ttl,
            ),
            postgres,
            redis,
        }
    }
}
