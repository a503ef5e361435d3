//! Settings: `config/default.toml` (also compiled in), then `config/$APP_ENV.toml`, then the
//! environment (`APP__SECTION__KEY`, `DATABASE_URL`, `REDIS_URL`).

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use ticketing_domain::queue::{QueuePolicy, SigningKey, TokenKeys};
use ticketing_domain::reservation::{HoldRules, HoldTtl, SeatLimit, SeatsPerHold};
use ticketing_domain::rooms::InviteKey;
use ticketing_postgres::PgPoolSettings;
use ticketing_redis::RedisSettings;

const DEFAULTS: &str = include_str!("../../../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisConfig,
    pub queue: QueueSettings,
    pub catalog: CatalogSettings,
    pub reservation: ReservationSettings,
    pub idempotency: IdempotencySettings,
    pub events: EventsSettings,
    pub log: LogSettings,
    #[serde(default)]
    pub admin: AdminSettings,
    #[serde(default)]
    pub security: SecuritySettings,
    /// Who the caller is (`APP__AUTH__*`): off unless an issuer or a trusted header is set.
    #[serde(default)]
    pub auth: AuthSettings,
    /// `APP_ENV`: `production` refuses settings only fit for development.
    #[serde(default)]
    pub environment: String,
}

/// The signing key of `config/default.toml`: public, so only for development and tests.
pub const DEVELOPMENT_SIGNING_KEY: &str = "development-only-signing-key-not-a-secret";

/// The operators' API: off unless a token is set (`APP__ADMIN__TOKEN`).
#[derive(Clone, Default, Deserialize)]
pub struct AdminSettings {
    #[serde(default)]
    pub token: String,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("enabled", &!self.token.is_empty())
            .finish()
    }
}

/// The shortest admin token accepted.
pub const ADMIN_TOKEN_MIN_LEN: usize = 32;

/// Who may touch a reservation.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SecuritySettings {
    /// `APP__SECURITY__REQUIRE_BOUND_TOKENS`: only tokens bound to the user act for them.
    #[serde(default)]
    pub require_bound_tokens: bool,
}

/// Who the caller is (`APP__AUTH__*`). Identity is on with an issuer (JWT bearer tokens) or a
/// trusted gateway's header; off, the default, with neither. Also the invite codes' key.
#[derive(Clone, Deserialize)]
pub struct AuthSettings {
    /// `APP__AUTH__INVITE_KEY`: the secret invite codes are signed with (at least 32 bytes);
    /// without it no room can be made invite-only.
    #[serde(default)]
    pub invite_key: Option<String>,
    /// `APP__AUTH__ISSUER`: the OpenID Connect issuer whose JWTs are accepted.
    #[serde(default)]
    pub issuer: String,
    /// `APP__AUTH__AUDIENCE`: the `aud` its tokens must name.
    #[serde(default)]
    pub audience: String,
    /// `APP__AUTH__JWKS_URL`; empty finds it through the issuer's discovery document.
    #[serde(default)]
    pub jwks_url: String,
    /// `APP__AUTH__USER_CLAIM`: the claim naming the account.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// `APP__AUTH__TRUSTED_HEADER`: the header in which a gateway names the account, believed
    /// only from `APP__SERVER__TRUSTED_PROXIES`.
    #[serde(default)]
    pub trusted_header: String,
    /// `APP__AUTH__PAGE_CLIENT_ID`: the public client (no secret) the page signs in as at the
    /// issuer, with PKCE; empty: the page cannot sign in by itself.
    #[serde(default)]
    pub page_client_id: String,
    /// `APP__AUTH__PAGE_SCOPE`: the scopes the page asks for (space-separated).
    #[serde(default = "default_page_scope")]
    pub page_scope: String,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("invite_key", &self.invite_key.as_ref().map(|_| ".."))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_url", &self.jwks_url)
            .field("user_claim", &self.user_claim)
            .field("trusted_header", &self.trusted_header)
            .field("page_client_id", &self.page_client_id)
            .field("page_scope", &self.page_scope)
            .finish_non_exhaustive()
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            invite_key: None,
            issuer: String::new(),
            audience: String::new(),
            jwks_url: String::new(),
            user_claim: default_user_claim(),
            trusted_header: String::new(),
            page_client_id: String::new(),
            page_scope: default_page_scope(),
        }
    }
}

fn default_page_scope() -> String {
    "openid".to_string()
}

fn default_user_claim() -> String {
    "sub".to_string()
}

/// How callers are identified, as the settings say.
#[derive(Debug, Clone)]
pub enum IdentitySettings {
    /// Nobody is: requests name their `userId` (v1/v2).
    Off,
    /// Bearer JWTs of one issuer.
    Jwt(ticketing_oidc::OidcConfig),
    /// A trusted gateway's header.
    TrustedHeader(actix_web::http::header::HeaderName),
}

/// The outbox relay and the event stream.
#[derive(Debug, Clone, Deserialize)]
pub struct EventsSettings {
    pub relay_interval_ms: u64,
    /// Events claimed per relay step; at least 1.
    pub relay_batch: u32,
    /// About how many entries the stream keeps; 0 keeps everything.
    pub stream_max_len: u64,
    pub retention_hours: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdempotencySettings {
    pub retention_hours: u64,
    pub cleanup_interval_seconds: u64,
}

fn default_request_deadline_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub max_in_flight: usize,
    /// Longest time any one request may take before it is answered 503 with `Retry-After`
    /// (`APP__SERVER__REQUEST_DEADLINE_MS`; 0: none). See `deadline.rs`.
    #[serde(default = "default_request_deadline_ms")]
    pub request_deadline_ms: u64,
    /// How long an idle client connection is kept open for its next request
    /// (`APP__SERVER__KEEP_ALIVE_SECONDS`); 0 closes every connection after its answer.
    pub keep_alive_seconds: u64,
    /// Comma-separated addresses whose `X-Forwarded-For` is believed (`APP__SERVER__TRUSTED_PROXIES`).
    #[serde(default)]
    pub trusted_proxies: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    /// `DATABASE_READ_URL`: where catalog reads (concerts, performances, seat maps) go, such as
    /// a replica within the catalog's 1 s staleness; empty: the primary's pool.
    #[serde(default)]
    pub read_url: String,
    pub pool_max_size: usize,
    pub checkout_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub statement_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisConfig {
    pub url: String,
    /// `REDIS_CLUSTER_URLS`: comma-separated seed nodes; when set, Redis Cluster is used.
    #[serde(default)]
    pub cluster_urls: String,
    pub key_prefix: String,
    pub pool_max_size: usize,
    pub checkout_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub command_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QueueSettings {
    pub max_active: u32,
    pub admit_per_second: u32,
    pub active_ttl_seconds: u64,
    pub waiting_idle_timeout_seconds: u64,
    pub entry_rate_per_client: u32,
    pub admission_interval_ms: u64,
    /// Signs queue tokens; shared by every instance (`APP__QUEUE__SIGNING_KEY`).
    pub signing_key: String,
    /// The key before the last rotation, still accepted while set.
    #[serde(default)]
    pub previous_signing_key: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogSettings {
    pub max_staleness_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReservationSettings {
    pub hold_ttl_seconds: u64,
    pub expiry_sweep_interval_ms: u64,
    /// Most seats one `POST /api/reservations` may hold (`seatIds`); at least 1.
    pub max_seats_per_hold: u32,
    /// Most HELD or CONFIRMED seats per user and performance; 0 is no limit.
    pub max_seats_per_user: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    /// Reads the layers from the process environment and `./config` (or `$APP_CONFIG_DIR`).
    ///
    /// # Errors
    /// When a layer is malformed or a value has the wrong type.
    pub fn load() -> Result<Self, config::ConfigError> {
        Self::load_from(std::env::vars())
    }

    /// As [`Settings::load`], with the environment given explicitly.
    ///
    /// # Errors
    /// When a layer is malformed or a value has the wrong type.
    pub fn load_from(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, config::ConfigError> {
        let vars: std::collections::HashMap<String, String> = vars.into_iter().collect();
        let directory = vars
            .get("APP_CONFIG_DIR")
            .map_or_else(|| PathBuf::from("config"), PathBuf::from);
        let mut builder = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .add_source(File::from(directory.join("default.toml")).required(false));
        if let Some(environment) = vars.get("APP_ENV").filter(|e| !e.is_empty()) {
            builder = builder.add_source(
                File::from(directory.join(format!("{environment}.toml"))).required(false),
            );
        }
        builder
            .add_source(
                Environment::with_prefix("APP")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(vars.clone().into_iter().collect())),
            )
            .set_override_option("database.url", vars.get("DATABASE_URL").cloned())?
            .set_override_option("database.read_url", vars.get("DATABASE_READ_URL").cloned())?
            .set_override_option("redis.url", vars.get("REDIS_URL").cloned())?
            .set_override_option(
                "redis.cluster_urls",
                vars.get("REDIS_CLUSTER_URLS").cloned(),
            )?
            .set_override_option("environment", vars.get("APP_ENV").cloned())?
            .build()?
            .try_deserialize()
    }

    /// How long an idle client connection stays open; `None` when keep-alive is off (0).
    ///
    /// It must outlast the idle timeout of whatever sits in front (a load balancer, a client's
    /// connection pool): a client that sends on a connection at the moment the server closes it
    /// gets no answer, and clients do not resend a `POST` that got none (Go's `net/http`, which
    /// k6 uses, does not).
    pub fn keep_alive(&self) -> Option<Duration> {
        match self.server.keep_alive_seconds {
            0 => None,
            seconds => Some(Duration::from_secs(seconds)),
        }
    }

    pub fn postgres(&self) -> PgPoolSettings {
        let database = &self.database;
        PgPoolSettings {
            url: database.url.clone(),
            max_size: database.pool_max_size,
            checkout_timeout: Duration::from_millis(database.checkout_timeout_ms),
            connect_timeout: Duration::from_millis(database.connect_timeout_ms),
            statement_timeout: Duration::from_millis(database.statement_timeout_ms),
        }
    }

    /// The pool for catalog reads when `DATABASE_READ_URL` is set: the primary's settings on
    /// that URL.
    pub fn postgres_reads(&self) -> Option<PgPoolSettings> {
        let url = self.database.read_url.trim();
        (!url.is_empty()).then(|| PgPoolSettings {
            url: url.to_string(),
            ..self.postgres()
        })
    }

    /// The queue's admission rules.
    ///
    /// # Errors
    /// When `max_active` or `admit_per_second` is zero: such a queue would admit nobody.
    pub fn queue_policy(&self) -> Result<QueuePolicy, config::ConfigError> {
        let queue = &self.queue;
        let positive = |name: &str, value: u32| {
            NonZeroU32::new(value).ok_or_else(|| {
                config::ConfigError::Message(format!("queue.{name} must be at least 1"))
            })
        };
        Ok(QueuePolicy {
            max_active: positive("max_active", queue.max_active)?,
            admit_per_second: positive("admit_per_second", queue.admit_per_second)?,
            active_ttl: Duration::from_secs(queue.active_ttl_seconds),
            waiting_idle_timeout: Duration::from_secs(queue.waiting_idle_timeout_seconds),
            entry_rate_per_client: NonZeroU32::new(queue.entry_rate_per_client),
        })
    }

    /// The keys queue tokens are signed and verified with.
    ///
    /// # Errors
    /// When a key is shorter than 32 bytes, or, with `APP_ENV=production`, when no key of its
    /// own was set (the development key is public).
    pub fn token_keys(&self) -> Result<TokenKeys, config::ConfigError> {
        let queue = &self.queue;
        if self.environment == "production"
            && (queue.signing_key.is_empty() || queue.signing_key == DEVELOPMENT_SIGNING_KEY)
        {
            return Err(config::ConfigError::Message(
                "APP__QUEUE__SIGNING_KEY must be set to a secret of at least 32 bytes in production"
                    .into(),
            ));
        }
        let key = |name: &str, value: &str| {
            SigningKey::new(value.as_bytes())
                .map_err(|weak| config::ConfigError::Message(format!("queue.{name}: {weak}")))
        };
        let previous = match queue.previous_signing_key.as_str() {
            "" => None,
            text => Some(key("previous_signing_key", text)?),
        };
        Ok(TokenKeys::new(
            key("signing_key", &queue.signing_key)?,
            previous,
        ))
    }

    /// The key invite codes are verified with, when one is set.
    ///
    /// # Errors
    /// When it is shorter than 32 bytes: refused at start, as a short queue signing key is.
    pub fn invite_key(&self) -> Result<Option<InviteKey>, config::ConfigError> {
        match self.auth.invite_key.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => InviteKey::new(text.as_bytes()).map(Some).map_err(|weak| {
                config::ConfigError::Message(format!("APP__AUTH__INVITE_KEY: {weak}"))
            }),
        }
    }

    /// The admin token, when the admin API is on: only with a token of at least
    /// [`ADMIN_TOKEN_MIN_LEN`] characters (a shorter one leaves it off, with a warning, as the
    /// contract says: every admin path is then 404).
    ///
    /// # Errors
    /// None today; a `Result` so a stricter rule can refuse to start.
    pub fn admin_token(&self) -> Result<Option<String>, config::ConfigError> {
        match self.admin.token.as_str() {
            "" => Ok(None),
            short if short.chars().count() < ADMIN_TOKEN_MIN_LEN => {
                tracing::warn!(
                    "APP__ADMIN__TOKEN has fewer than {ADMIN_TOKEN_MIN_LEN} characters: the admin \
                     API stays off"
                );
                Ok(None)
            }
            token => Ok(Some(token.to_string())),
        }
    }

    /// How callers are identified.
    ///
    /// # Errors
    /// When both an issuer and a trusted header are set; an issuer without an audience; a
    /// header name that is none; a trusted header without trusted proxies (it would identify
    /// nobody); and with `APP_ENV=production`, identity off.
    /// How the page learns who is buying: as identity is configured (checked by
    /// [`Settings::identity`]).
    pub fn page_sign_in(&self) -> crate::routes::PageSignIn {
        use crate::routes::PageSignIn;
        let auth = &self.auth;
        if !auth.issuer.trim().is_empty() {
            PageSignIn::Bearer {
                issuer: auth.issuer.trim().to_string(),
                client_id: Some(auth.page_client_id.trim())
                    .filter(|id| !id.is_empty())
                    .map(str::to_string),
                scope: auth.page_scope.trim().to_string(),
            }
        } else if !auth.trusted_header.trim().is_empty() {
            PageSignIn::Gateway
        } else {
            PageSignIn::Off
        }
    }

    pub fn identity(&self) -> Result<IdentitySettings, config::ConfigError> {
        let auth = &self.auth;
        let refuse = |message: &str| Err(config::ConfigError::Message(message.to_string()));
        let identity = match (auth.issuer.trim(), auth.trusted_header.trim()) {
            ("", "") => IdentitySettings::Off,
            (_, "") if auth.audience.trim().is_empty() => {
                return refuse("APP__AUTH__AUDIENCE must be set with APP__AUTH__ISSUER")
            }
            (issuer, "") => IdentitySettings::Jwt(ticketing_oidc::OidcConfig {
                issuer: issuer.to_string(),
                audience: auth.audience.trim().to_string(),
                jwks_url: Some(auth.jwks_url.trim())
                    .filter(|url| !url.is_empty())
                    .map(str::to_string),
                user_claim: auth.user_claim.trim().to_string(),
            }),
            ("", header) => {
                if self.trusted_proxies()?.is_empty() {
                    return refuse(
                        "APP__AUTH__TRUSTED_HEADER needs APP__SERVER__TRUSTED_PROXIES: the \
                 header is believed from those addresses only",
                    );
                }
                IdentitySettings::TrustedHeader(
                    actix_web::http::header::HeaderName::try_from(header).map_err(|_| {
                        config::ConfigError::Message(format!(
                            "APP__AUTH__TRUSTED_HEADER: {header:?} is not a header name"
                        ))
                    })?,
                )
            }
            (_, _) => {
                return refuse(
                    "set either APP__AUTH__ISSUER or APP__AUTH__TRUSTED_HEADER, not both",
                )
            }
        };
        if self.environment == "production" && matches!(identity, IdentitySettings::Off) {
            return refuse(
                "APP_ENV=production refuses to start with identity off: set APP__AUTH__ISSUER and \
                 APP__AUTH__AUDIENCE, or APP__AUTH__TRUSTED_HEADER (see config/production.toml)",
            );
        }
        Ok(identity)
    }

    /// The load balancers whose `X-Forwarded-For` names the client.
    ///
    /// # Errors
    /// When an entry is not an IP address.
    pub fn trusted_proxies(&self) -> Result<Vec<std::net::IpAddr>, config::ConfigError> {
        self.server
            .trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry.parse().map_err(|_| {
                    config::ConfigError::Message(format!(
                        "APP__SERVER__TRUSTED_PROXIES: {entry:?} is not an IP address"
                    ))
                })
            })
            .collect()
    }

    /// How long a seat hold lasts.
    ///
    /// # Errors
    /// When it is zero: such a hold would hold nothing.
    pub fn hold_ttl(&self) -> Result<HoldTtl, config::ConfigError> {
        HoldTtl::new(Duration::from_secs(self.reservation.hold_ttl_seconds)).ok_or_else(|| {
            config::ConfigError::Message("reservation.hold_ttl_seconds must be at least 1".into())
        })
    }

    /// Most seats one hold may take.
    ///
    /// # Errors
    /// When `reservation.max_seats_per_hold` is 0.
    pub fn seats_per_hold(&self) -> Result<SeatsPerHold, config::ConfigError> {
        NonZeroU32::new(self.reservation.max_seats_per_hold)
            .map(SeatsPerHold::new)
            .ok_or_else(|| {
                config::ConfigError::Message(
                    "reservation.max_seats_per_hold must be at least 1".into(),
                )
            })
    }

    /// How holds are taken: their life, seats per hold and seats per user and performance.
    ///
    /// # Errors
    /// When the hold's life or the seats per hold is 0.
    pub fn hold_rules(&self) -> Result<HoldRules, config::ConfigError> {
        Ok(HoldRules {
            ttl: self.hold_ttl()?,
            max_per_hold: self.seats_per_hold()?,
            per_user: SeatLimit::new(self.reservation.max_seats_per_user),
        })
    }

    /// Events claimed per relay step.
    ///
    /// # Errors
    /// When `events.relay_batch` is 0.
    pub fn relay_batch(&self) -> Result<NonZeroU32, config::ConfigError> {
        NonZeroU32::new(self.events.relay_batch).ok_or_else(|| {
            config::ConfigError::Message("events.relay_batch must be at least 1".into())
        })
    }

    /// How long sent events are kept.
    pub fn event_retention(&self) -> Duration {
        Duration::from_secs(self.events.retention_hours.saturating_mul(3600))
    }

    /// How long outcomes of keyed requests are kept: never less than the contract's 24 hours.
    pub fn idempotency_retention(&self) -> Duration {
        Duration::from_secs(self.idempotency.retention_hours.max(24) * 3600)
    }

    pub fn redis(&self) -> RedisSettings {
        let redis = &self.redis;
        RedisSettings {
            url: redis.url.clone(),
            cluster_urls: redis
                .cluster_urls
                .split(',')
                .map(str::trim)
                .filter(|seed| !seed.is_empty())
                .map(str::to_string)
                .collect(),
            max_size: redis.pool_max_size,
            checkout_timeout: Duration::from_millis(redis.checkout_timeout_ms),
            connect_timeout: Duration::from_millis(redis.connect_timeout_ms),
            command_timeout: Duration::from_millis(redis.command_timeout_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_contract() {
        let settings = Settings::load_from(vars(&[("APP_CONFIG_DIR", "/nonexistent")]))
            .expect("defaults load");
        assert_eq!(settings.server.host, "127.0.0.1");
        assert_eq!(settings.server.port, 8080);
        assert_eq!(
            settings.database.url,
            "postgres://postgres@127.0.0.1:5432/ticketing"
        );
        assert_eq!(settings.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(settings.redis.key_prefix, "ticketing");
        assert_eq!(settings.queue.max_active, 1000);
        assert_eq!(settings.queue.admit_per_second, 100);
        assert_eq!(settings.queue.active_ttl_seconds, 600);
        assert_eq!(settings.queue.waiting_idle_timeout_seconds, 60);
        assert_eq!(settings.queue.entry_rate_per_client, 20);
        assert_eq!(settings.reservation.hold_ttl_seconds, 300);
        assert_eq!(settings.reservation.max_seats_per_hold, 4);
        assert_eq!(settings.reservation.max_seats_per_user, 4);
        assert_eq!(settings.events.relay_batch, 500);
        assert_eq!(settings.event_retention(), Duration::from_secs(168 * 3600));
        assert_eq!(
            settings.hold_rules().expect("valid").per_user,
            SeatLimit::new(4)
        );
    }

    #[test]
    fn bound_tokens_are_required_in_production_only() {
        let config_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
        let default = Settings::load_from(vars(&[("APP_CONFIG_DIR", config_dir)])).expect("loads");
        let production = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", config_dir),
            ("APP_ENV", "production"),
        ]))
        .expect("loads");
        let overridden = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", config_dir),
            ("APP__SECURITY__REQUIRE_BOUND_TOKENS", "true"),
        ]))
        .expect("loads");

        assert!(!default.security.require_bound_tokens);
        assert!(production.security.require_bound_tokens);
        assert!(overridden.security.require_bound_tokens);
    }

    #[test]
    fn a_hold_of_no_seat_at_most_is_refused() {
        let settings = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", "/nonexistent"),
            ("APP__RESERVATION__MAX_SEATS_PER_HOLD", "0"),
        ]))
        .expect("loads");
        assert!(settings.seats_per_hold().is_err());
    }

    #[test]
    fn the_environment_overrides_the_files() {
        let settings = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", "/nonexistent"),
            ("DATABASE_URL", "postgres://elsewhere/db"),
            ("REDIS_URL", "redis://elsewhere:6380"),
            ("APP__SERVER__PORT", "9090"),
            ("APP__REDIS__KEY_PREFIX", "stack-b"),
            ("APP__QUEUE__ADMIT_PER_SECOND", "7"),
            ("APP__RESERVATION__HOLD_TTL_SECONDS", "2"),
        ]))
        .expect("overrides load");
        assert_eq!(settings.database.url, "postgres://elsewhere/db");
        assert_eq!(settings.redis.url, "redis://elsewhere:6380");
        assert_eq!(settings.server.port, 9090);
        assert_eq!(settings.redis.key_prefix, "stack-b");
        assert_eq!(settings.queue.admit_per_second, 7);
        assert_eq!(settings.reservation.hold_ttl_seconds, 2);
    }

    #[test]
    fn the_app_env_file_sits_between_defaults_and_environment() {
        let directory =
            std::env::temp_dir().join(format!("ticketing-config-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("temp dir");
        std::fs::write(
            directory.join("staging.toml"),
            "[server]\nport = 7000\nworkers = 3\n",
        )
        .expect("write layer");
        let settings = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", directory.to_str().expect("utf-8 path")),
            ("APP_ENV", "staging"),
            ("APP__SERVER__WORKERS", "5"),
        ]))
        .expect("layers load");
        assert_eq!(settings.server.port, 7000);
        assert_eq!(settings.server.workers, 5);
        let _ = std::fs::remove_dir_all(directory);
    }

    #[test]
    fn keep_alive_outlasts_load_balancers_and_zero_turns_it_off() {
        let defaults = Settings::load_from(vars(&[("APP_CONFIG_DIR", "/nonexistent")]))
            .expect("defaults load");
        // Longer than nginx's 75 s and HAProxy's or an AWS ALB's 60 s idle timeouts.
        assert_eq!(defaults.keep_alive(), Some(Duration::from_secs(90)));
        let off = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", "/nonexistent"),
            ("APP__SERVER__KEEP_ALIVE_SECONDS", "0"),
        ]))
        .expect("loads");
        assert_eq!(off.keep_alive(), None);
    }

    #[test]
    fn a_queue_that_admits_nobody_is_refused() {
        let settings = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", "/nonexistent"),
            ("APP__QUEUE__ADMIT_PER_SECOND", "0"),
        ]))
        .expect("loads");
        assert!(settings.queue_policy().is_err());
    }

    #[test]
    fn a_zero_entry_rate_turns_the_client_limit_off() {
        let settings = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", "/nonexistent"),
            ("APP__QUEUE__ENTRY_RATE_PER_CLIENT", "0"),
        ]))
        .expect("loads");
        assert_eq!(
            settings
                .queue_policy()
                .expect("valid")
                .entry_rate_per_client,
            None
        );
    }

    #[test]
    fn production_refuses_the_development_signing_key() {
        let settings = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", "/nonexistent"),
            ("APP_ENV", "production"),
        ]))
        .expect("loads");
        assert!(settings.token_keys().is_err());

        let with_key = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", "/nonexistent"),
            ("APP_ENV", "production"),
            ("APP__QUEUE__SIGNING_KEY", &"s".repeat(32)),
        ]))
        .expect("loads");
        assert!(with_key.token_keys().is_ok());
    }

    #[test]
    fn a_short_signing_key_is_refused() {
        let settings = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", "/nonexistent"),
            ("APP__QUEUE__SIGNING_KEY", "short"),
        ]))
        .expect("loads");
        assert!(settings.token_keys().is_err());
    }

    #[test]
    fn an_invite_key_is_optional_and_a_short_one_is_refused() {
        let none = Settings::load_from(vars(&[("APP_CONFIG_DIR", "/nonexistent")])).expect("loads");
        assert_eq!(none.invite_key().expect("valid"), None);
        let short = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", "/nonexistent"),
            ("APP__AUTH__INVITE_KEY", "short"),
        ]))
        .expect("loads");
        assert!(short.invite_key().is_err());
        let long = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", "/nonexistent"),
            ("APP__AUTH__INVITE_KEY", &"k".repeat(32)),
        ]))
        .expect("loads");
        assert!(long.invite_key().expect("valid").is_some());
        assert!(!format!("{:?}", long.auth).contains("kkkk"), "never logged");
    }

    #[test]
    fn the_development_defaults_sign_tokens() {
        let settings =
            Settings::load_from(vars(&[("APP_CONFIG_DIR", "/nonexistent")])).expect("loads");
        assert_eq!(settings.queue.signing_key, DEVELOPMENT_SIGNING_KEY);
        assert!(settings.token_keys().is_ok());
    }

    #[test]
    fn the_admin_api_is_off_by_default_and_with_a_short_token() {
        let default =
            Settings::load_from(vars(&[("APP_CONFIG_DIR", "/nonexistent")])).expect("loads");
        assert_eq!(default.admin_token().expect("valid"), None);

        let short = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", "/nonexistent"),
            ("APP__ADMIN__TOKEN", "too-short"),
        ]))
        .expect("loads");
        assert_eq!(short.admin_token().expect("valid"), None);
    }

    #[test]
    fn identity_is_off_by_default_and_on_with_an_issuer_or_a_trusted_header() {
        let load = |pairs: &[(&str, &str)]| {
            let mut all = vec![("APP_CONFIG_DIR", "/nonexistent")];
            all.extend_from_slice(pairs);
            Settings::load_from(vars(&all)).expect("loads")
        };
        assert!(matches!(load(&[]).identity(), Ok(IdentitySettings::Off)));
        let jwt = load(&[
            ("APP__AUTH__ISSUER", "https://id.example.com"),
            ("APP__AUTH__AUDIENCE", "ticketing"),
        ])
        .identity();
        assert!(
            matches!(&jwt, Ok(IdentitySettings::Jwt(config)) if config.user_claim == "sub" && config.jwks_url.is_none()),
            "{jwt:?}"
        );
        let header = load(&[
            ("APP__AUTH__TRUSTED_HEADER", "X-User-Subject"),
            ("APP__SERVER__TRUSTED_PROXIES", "10.0.0.1"),
        ])
        .identity();
        assert!(matches!(header, Ok(IdentitySettings::TrustedHeader(_))));

        for refused in [
            load(&[("APP__AUTH__ISSUER", "https://id.example.com")]),
            load(&[("APP__AUTH__TRUSTED_HEADER", "X-User-Subject")]),
            load(&[
                ("APP__AUTH__ISSUER", "https://id.example.com"),
                ("APP__AUTH__AUDIENCE", "ticketing"),
                ("APP__AUTH__TRUSTED_HEADER", "X-User-Subject"),
                ("APP__SERVER__TRUSTED_PROXIES", "10.0.0.1"),
            ]),
        ] {
            assert!(refused.identity().is_err(), "{:?}", refused.auth);
        }
    }

    #[test]
    fn production_refuses_to_start_with_identity_off() {
        let config_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
        let off = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", config_dir),
            ("APP_ENV", "production"),
        ]))
        .expect("loads");
        let refusal = off.identity().expect_err("refused");
        assert!(refusal.to_string().contains("identity off"), "{refusal}");
        assert!(!refusal.to_string().contains('\n'), "one line: {refusal}");

        let on = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", config_dir),
            ("APP_ENV", "production"),
            ("APP__AUTH__TRUSTED_HEADER", "X-User-Subject"),
            ("APP__SERVER__TRUSTED_PROXIES", "10.0.0.1"),
        ]))
        .expect("loads");
        assert!(on.identity().is_ok());
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused() {
        let result = Settings::load_from(vars(&[
            ("APP_CONFIG_DIR", "/nonexistent"),
            ("APP__SERVER__PORT", "not-a-port"),
        ]));
        assert!(result.is_err());
    }
}
