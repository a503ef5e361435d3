//! What every handler shares: the use cases, wired to their adapters.

use std::sync::Arc;

use ticketing_domain::catalog::CatalogService;
use ticketing_domain::queue::{QueuePolicy, QueueService};
use ticketing_domain::reservation::{HoldTtl, ReservationService};
use ticketing_postgres::{PgConcertCatalog, PgPool, PgSeatInventory};
use ticketing_redis::{KeySpace, RedisPool, RedisWaitingQueue};

/// The application's use cases and the pools behind them.
#[derive(Clone)]
pub struct AppState {
    pub catalog: CatalogService,
    pub queue: QueueService,
    pub reservations: ReservationService,
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
        let queue = RedisWaitingQueue::new(redis.clone(), keys, policy);
        Self {
            catalog: CatalogService::new(Arc::new(PgConcertCatalog::new(postgres.clone()))),
            queue: QueueService::new(Arc::new(queue), policy),
            reservations: ReservationService::new(
                Arc::new(PgSeatInventory::new(postgres.clone())),
                hold_ttl,
            ),
            postgres,
            redis,
        }
    }
}
