//! What every handler shares: the use cases, wired to their adapters, and the stores' probes.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use ticketing_domain::access::{OwnerCheck, TokenBinding};
use ticketing_domain::catalog::CatalogService;
use ticketing_domain::clock::Clock;
use ticketing_domain::events::EventRelay;
use ticketing_domain::idempotency::OutcomeRetention;
use ticketing_domain::identity::{IdentityMode, IdentityService};
use ticketing_domain::payment::PaymentService;
use ticketing_domain::queue::{DrawSeed, LineOperator, QueuePolicy, QueueService, SeedSource};
use ticketing_domain::refund::RefundService;
use ticketing_domain::reservation::ReservationService;
use ticketing_domain::rooms::{ChallengeGate, Invites, RoomService};
use ticketing_domain::wallet::WalletService;
use ticketing_postgres::{
    PgAccounts, PgConcertCatalog, PgEventOutbox, PgOutcomeRetention, PgPaymentLedger, PgPool,
    PgRefundLedger, PgRoomRepository, PgSeatInventory, PgWallet,
};
use ticketing_redis::{
    KeySpace, RedisEventPublisher, RedisInviteLedger, RedisPool, RedisRoomLines, RedisSpentProofs,
    RedisWaitingQueue,
};

use crate::catalog_cache::CatalogCache;
use crate::routes::identity::Identity;
use crate::seat_memory::CachedSeatMemory;
use crate::settings::{IdentitySettings, Settings};

/// The process's wall clock: the one [`crate::Application::build`] gives the app.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

/// Draw seeds from `rand`'s thread generator: ChaCha12, a cryptographic RNG seeded and
/// reseeded from the operating system, so that nobody can predict a draw's order before its
/// seed is published.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OsSeeds;

impl SeedSource for OsSeeds {
    fn seed(&self) -> DrawSeed {
        DrawSeed::from_bytes(rand::random())
    }
}

/// The use cases the handlers call, wired to adapters of any kind: the PostgreSQL and Redis
/// ones in production ([`AppState::new`]), the domain's mocks in handler tests.
#[derive(Clone)]
pub struct Services {
    pub catalog: CatalogService,
    pub queue: QueueService,
    pub operator: LineOperator,
    /// The waiting rooms; the room `default` is `queue`'s v1/v2 line.
    pub rooms: RoomService,
    pub reservations: ReservationService,
    pub wallet: WalletService,
    pub payments: PaymentService,
    pub refunds: RefundService,
    pub outcome_retention: Arc<dyn OutcomeRetention>,
    /// Publishes the outbox's events to the stream.
    pub events: EventRelay,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

/// Whether one store answered a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DependencyHealth {
    /// As in `/readyz` and the `dependency` label of `dependency_up`: `postgres`, `redis`.
    pub name: &'static str,
    pub up: bool,
}

/// The figures of one connection pool, for the gauges of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFigures {
    /// The `pool` label: `postgres`, `redis`.
    pub name: &'static str,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
    pub max_size: usize,
}

/// The stores behind the use cases, as readiness, the dependency probe job and the pool gauges
/// see them. Kept apart from the use cases so that a state built on mocks needs no pools.
#[async_trait]
pub trait Dependencies: Send + Sync {
    /// Pings every store at once, waiting at most `timeout` for each.
    async fn probe(&self, timeout: Duration) -> Vec<DependencyHealth>;

    /// The connection pools' figures now.
    fn pools(&self) -> Vec<PoolFigures>;
}

/// The PostgreSQL and Redis pools of the real wiring.
#[derive(Clone)]
pub struct StorePools {
    pub postgres: PgPool,
    pub redis: RedisPool,
}

impl std::fmt::Debug for StorePools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePools").finish_non_exhaustive()
    }
}

#[async_trait]
impl Dependencies for StorePools {
    async fn probe(&self, timeout: Duration) -> Vec<DependencyHealth> {
        let postgres =
            tokio::time::timeout(timeout, ticketing_postgres::pool::ping(&self.postgres));
        let redis = tokio::time::timeout(timeout, self.redis.ping());
        let (postgres, redis) = tokio::join!(postgres, redis);
        vec![
            DependencyHealth {
                name: "postgres",
                up: matches!(postgres, Ok(Ok(()))),
            },
            DependencyHealth {
                name: "redis",
                up: matches!(redis, Ok(Ok(()))),
            },
        ]
    }

    fn pools(&self) -> Vec<PoolFigures> {
        let postgres = self.postgres.status();
        let redis = self.redis.status();
        vec![
            PoolFigures {
                name: "postgres",
                size: postgres.size,
                available: postgres.available,
                waiting: postgres.waiting,
                max_size: postgres.max_size,
            },
            PoolFigures {
                name: "redis",
                size: redis.size,
                available: redis.available,
                waiting: redis.waiting,
                max_size: redis.max_size,
            },
        ]
    }
}

/// What every handler shares: the use cases, the HTTP layer's own settings and caches, and the
/// stores' probes.
#[derive(Clone)]
pub struct AppState {
    /// The use cases; the seat holds among them learn from `catalog_cache` which seats were
    /// just taken.
    pub services: Services,
    /// The operators' bearer token; `None` turns the admin API off.
    pub admin_token: Option<Arc<str>>,
    /// Load balancers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
    pub catalog_cache: CatalogCache,
    /// Who the caller is (`APP__AUTH__*`); off unless configured.
    pub identity: Identity,
    /// The stores, for readiness, the probe job and the pool gauges.
    pub dependencies: Arc<dyn Dependencies>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// Wires every use case to the PostgreSQL and Redis adapters, as `settings` say, the queue
    /// telling time by `clock` (see [`crate::Application::build_with_clock`]).
    ///
    /// # Errors
    /// When a setting holds a value no use case accepts.
    pub fn new(
        postgres: PgPool,
        redis: RedisPool,
        settings: &Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, config::ConfigError> {
        let keys = KeySpace::new(&settings.redis.key_prefix);
        let identity = identity(settings, &postgres, &clock)?;
        let policy: QueuePolicy = settings.queue_policy()?;
        let step_interval = Duration::from_millis(settings.queue.admission_interval_ms);
        let line = Arc::new(
            RedisWaitingQueue::new(redis.clone(), &keys, policy).stepped_every(step_interval),
        );
        let queue = QueueService::new(
            line.clone(),
            settings.token_keys()?,
            policy,
            clock.clone(),
            Arc::new(OsSeeds),
        );
        let operator = LineOperator::new(line.clone(), queue.clone());
        let rooms = RoomService::new(
            Arc::new(PgRoomRepository::new(postgres.clone())),
            Arc::new(RedisRoomLines::new(
                redis.clone(),
                &settings.redis.key_prefix,
                step_interval,
            )),
            queue.clone(),
            line,
        )
        .with_invites(Invites::new(
            settings.invite_key()?,
            Arc::new(RedisInviteLedger::new(
                redis.clone(),
                &settings.redis.key_prefix,
            )),
        ))
        .with_gate(ChallengeGate::new(
            &settings.token_keys()?,
            Arc::clone(&clock),
            Arc::new(OsSeeds),
            Arc::new(RedisSpentProofs::new(
                redis.clone(),
                &settings.redis.key_prefix,
            )),
        ));
        // With identity on, every token is bound to its caller (see `TokenBinding`).
        let binding = if identity.service.is_on() {
            TokenBinding::for_identified_callers()
        } else {
            TokenBinding::new(settings.security.require_bound_tokens)
        };
        let owner = OwnerCheck::new(binding, queue.clone(), settings.token_keys()?);
        // DATABASE_READ_URL: catalog reads on a pool of their own (a replica); else the primary's.
        let catalog_pool = match settings.postgres_reads() {
            Some(reads) => ticketing_postgres::pool::build_pool(&reads)
                .map_err(|e| config::ConfigError::Message(format!("DATABASE_READ_URL: {e}")))?,
            None => postgres.clone(),
        };
        let services = Services {
            catalog: CatalogService::new(Arc::new(PgConcertCatalog::new(catalog_pool))),
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
            rooms,
            reservations: ReservationService::new(
                Arc::new(PgSeatInventory::new(postgres.clone())),
                settings.hold_rules()?,
                owner,
            ),
        };
        let state =
            Self::from_services(services, Arc::new(StorePools { postgres, redis }), settings)?;
        Ok(Self { identity, ..state })
    }

    /// The state over use cases wired to any adapters, with the HTTP layer's settings (admin
    /// token, trusted proxies, catalog cache) from `settings`. The seat holds learn from the
    /// catalog cache which seats were just taken.
    ///
    /// # Errors
    /// When a setting holds a value the HTTP layer does not accept.
    pub fn from_services(
        services: Services,
        dependencies: Arc<dyn Dependencies>,
        settings: &Settings,
    ) -> Result<Self, config::ConfigError> {
        let catalog_cache =
            CatalogCache::new(Duration::from_millis(settings.catalog.max_staleness_ms));
        let seat_memory = CachedSeatMemory::new(catalog_cache.clone(), services.catalog.clone());
        let reservations = services.reservations.with_memory(Arc::new(seat_memory));
        Ok(Self {
            services: Services {
                reservations,
                ..services
            },
            admin_token: settings.admin_token()?.map(Arc::from),
            trusted_proxies: settings.trusted_proxies()?.into(),
            catalog_cache,
            identity: Identity::off(),
            dependencies,
        })
    }
}

/// How callers are identified, as `settings` say: the JWT verifier (which fetches the issuer's
/// keys in the background from now on, so a first request need not wait; startup does not
/// wait for the issuer) or the trusted header, the accounts in PostgreSQL.
fn identity(
    settings: &Settings,
    postgres: &PgPool,
    clock: &Arc<dyn Clock>,
) -> Result<Identity, config::ConfigError> {
    let accounts = Arc::new(crate::account_memory::RememberedAccounts::new(Arc::new(
        PgAccounts::new(postgres.clone()),
    )));
    Ok(match settings.identity()? {
        IdentitySettings::Off => Identity::off(),
        IdentitySettings::Jwt(config) => {
            let verifier = Arc::new(
                ticketing_oidc::JwksVerifier::new(config, Arc::clone(clock)).map_err(|error| {
                    config::ConfigError::Message(format!("APP__AUTH__*: {error}"))
                })?,
            );
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let prefetching = Arc::clone(&verifier);
                runtime.spawn(async move { prefetching.prefetch().await });
            }
            Identity {
                service: IdentityService::new(IdentityMode::Jwt(verifier), accounts),
                header: None,
            }
        }
        IdentitySettings::TrustedHeader(name) => Identity {
            service: IdentityService::new(IdentityMode::TrustedHeader, accounts),
            header: Some(name),
        },
    })
}

#[cfg(test)]
mod tests {
    use ticketing_domain::testing::store_contract as contract;

    use super::*;

    #[test]
    fn the_system_clock_keeps_the_contract() {
        contract::clock_contract(&SystemClock);
    }

    #[test]
    fn seeds_from_the_operating_system_differ() {
        assert_ne!(OsSeeds.seed(), OsSeeds.seed());
    }
}
