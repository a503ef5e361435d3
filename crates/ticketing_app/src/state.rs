//! What every handler shares: the use cases, wired to their adapters.

use std::num::NonZeroU64;
use std::sync::Arc;

use ticketing_domain::access::{OwnerCheck, TokenBinding};
use ticketing_domain::catalog::CatalogService;
use ticketing_domain::clock::Clock;
use ticketing_domain::events::EventRelay;
use ticketing_domain::idempotency::OutcomeRetention;
use ticketing_domain::payment::PaymentService;
use ticketing_domain::queue::{LineOperator, QueuePolicy, QueueService};
use ticketing_domain::refund::RefundService;
use ticketing_domain::reservation::{HoldRules, ReservationService};
use ticketing_domain::wallet::WalletService;
use ticketing_postgres::{
    PgConcertCatalog, PgEventOutbox, PgOutcomeRetention, PgPaymentLedger, PgPool, PgRefundLedger,
    PgSeatInventory, PgWallet,
};
use ticketing_redis::{KeySpace, RedisEventPublisher, RedisPool, RedisWaitingQueue};

use crate::catalog_cache::CatalogCache;
use crate::seat_memory::CachedSeatMemory;
use crate::settings::Settings;

/// The process's wall clock.
#[derive(Debug, Clone, Copy)]
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

/// The application's use cases and the pools behind them.
#[derive(Clone)]
pub struct AppState {
    pub catalog: CatalogService,
    pub queue: QueueService,
    pub operator: LineOperator,
    /// The operators' bearer token; `None` turns the admin API off.
    pub admin_token: Option<Arc<str>>,
    /// Load balancers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
    pub reservations: ReservationService,
    pub wallet: WalletService,
    pub payments: PaymentService,
    pub refunds: RefundService,
    pub outcome_retention: Arc<dyn OutcomeRetention>,
    /// Publishes the outbox's events to the Redis stream.
    pub events: EventRelay,
    pub catalog_cache: CatalogCache,
    pub postgres: PgPool,
    pub redis: RedisPool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// Wires every use case to the PostgreSQL and Redis adapters, as `settings` say.
    ///
    /// # Errors
    /// When a setting holds a value no use case accepts.
    pub fn new(
        postgres: PgPool,
        redis: RedisPool,
        settings: &Settings,
    ) -> Result<Self, config::ConfigError> {
        let keys = KeySpace::new(&settings.redis.key_prefix);
        let policy: QueuePolicy = settings.queue_policy()?;
        let hold_rules: HoldRules = settings.hold_rules()?;
        let line = Arc::new(RedisWaitingQueue::new(redis.clone(), &keys, policy));
        let queue = QueueService::new(
            line.clone(),
            settings.token_keys()?,
            policy,
            Arc::new(SystemClock),
        );
        let operator = LineOperator::new(line, queue.clone());
        let binding = TokenBinding::new(settings.security.require_bound_tokens);
        let owner = OwnerCheck::new(binding, queue.clone(), settings.token_keys()?);
        let catalog_cache = CatalogCache::new(std::time::Duration::from_millis(
            settings.catalog.max_staleness_ms,
        ));
        let catalog = CatalogService::new(Arc::new(PgConcertCatalog::new(postgres.clone())));
        let seat_memory = CachedSeatMemory::new(catalog_cache.clone(), catalog.clone());
        Ok(Self {
            catalog_cache,
            catalog,
            wallet: WalletService::new(Arc::new(PgWallet::new(postgres.clone()))),
            payments: PaymentService::new(
                Arc::new(PgPaymentLedger::new(postgres.clone())),
                queue.clone(),
                binding,
            ),
            refunds: RefundService::new(
                Arc::new(PgRefundLedger::new(postgres.clone())),
                owner.clone(),
            ),
            outcome_retention: Arc::new(PgOutcomeRetention::new(postgres.clone())),
            events: EventRelay::new(
                Arc::new(PgEventOutbox::new(postgres.clone())),
                Arc::new(RedisEventPublisher::new(
                    redis.clone(),
                    &keys,
                    NonZeroU64::new(settings.events.stream_max_len),
                )),
                settings.relay_batch()?,
            ),
            queue,
            operator,
            admin_token: settings.admin_token()?.map(Arc::from),
            trusted_proxies: settings.trusted_proxies()?.into(),
            reservations: ReservationService::new(
                Arc::new(PgSeatInventory::new(postgres.clone())),
                hold_rules,
                owner,
            )
            .with_memory(Arc::new(seat_memory)),
            postgres,
            redis,
        })
    }
}
