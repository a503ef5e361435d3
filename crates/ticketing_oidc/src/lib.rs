#![doc = include_str!("../README.md")]

mod keys;
mod url_rules;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use ticketing_domain::clock::Clock;
use ticketing_domain::identity::{IdentityError, Subject, TokenVerifier};

pub use keys::KeySet;
pub use url_rules::IssuerUrlError;

/// Leeway for `exp` and `nbf`: clocks of issuer and service may differ this much.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// Fewest time between two fetches of the JWKS caused by unknown keys: tokens naming made-up
/// `kid`s must not turn the service into a flood of requests to the issuer.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Fewest time between two fetches after one that failed: the issuer was not reached, so the
/// cache has nothing new and asking again soon costs it little; waiting the whole
/// [`REFETCH_INTERVAL`] would refuse every new sign-in for that long after it is back.
pub const RETRY_AFTER_FAILED_FETCH: Duration = Duration::from_secs(5);

/// Tokens this instance has verified, remembered (by their SHA-256) so that a caller's next
/// requests cost no signature check: one RSA check costs more CPU than a whole balance read
/// (docs/performance.md). An entry holds while its token is unexpired (with [`LEEWAY`]) and its
/// key is still in the cached JWKS, so a withdrawn key's tokens stop working as soon as a refetch
/// replaced the keys, exactly as without the memory.
const VERIFIED_CAPACITY: u64 = 200_000;

/// How long one fetch from the issuer may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the verifier needs to know of its issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// `APP__AUTH__ISSUER`: the `iss` every token must carry.
    pub issuer: String,
    /// `APP__AUTH__AUDIENCE`: an `aud` every token must carry.
    pub audience: String,
    /// `APP__AUTH__JWKS_URL`; `None` finds it through the issuer's discovery document.
    pub jwks_url: Option<String>,
    /// `APP__AUTH__USER_CLAIM`: the claim naming the account (`sub` by default).
    pub user_claim: String,
}

/// Why a configuration cannot be used (refused at start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer or JWKS URL is not usable.
    #[error(transparent)]
    Url(#[from] IssuerUrlError),
    /// No audience: any token of the issuer, for any client, would do.
    #[error("APP__AUTH__AUDIENCE must be set with APP__AUTH__ISSUER")]
    NoAudience,
    /// No claim named.
    #[error("APP__AUTH__USER_CLAIM must not be empty")]
    NoUserClaim,
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(String),
}

/// What a verified token said: its account, until when, under which key.
#[derive(Debug, Clone)]
struct Verified {
    subject: Subject,
    /// `exp`, in seconds since the Unix epoch.
    expires: u64,
    kid: String,
}

/// When the keys were last asked for, and what came of it.
#[derive(Debug, Clone, Copy)]
struct LastFetch {
    at: DateTime<Utc>,
    succeeded: bool,
}

/// Verifies bearer JWTs of one issuer against its JWKS, cached.
pub struct JwksVerifier {
    config: OidcConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    keys: RwLock<Arc<KeySet>>,
    /// Tokens verified here: see [`VERIFIED_CAPACITY`].
    verified: moka::future::Cache<[u8; 32], Verified>,
    /// Held while fetching, so that concurrent unknown `kid`s cause one fetch.
    fetching: tokio::sync::Mutex<Option<LastFetch>>,
    /// The JWKS URL, once configured or discovered.
    jwks_url: tokio::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksVerifier")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl JwksVerifier {
    /// A verifier for `config`, telling time (for the refetch interval) by `clock`. Asks the
    /// issuer nothing yet: the keys are fetched on first need (or by [`JwksVerifier::prefetch`]),
    /// so the service starts while the issuer is down.
    ///
    /// # Errors
    /// [`ConfigError`] for an `http://` URL off loopback, a malformed URL, no audience or no
    /// claim.
    pub fn new(config: OidcConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        url_rules::check(&config.issuer)?;
        if let Some(url) = &config.jwks_url {
            url_rules::check(url)?;
        }
        if config.audience.trim().is_empty() {
            return Err(ConfigError::NoAudience);
        }
        if config.user_claim.trim().is_empty() {
            return Err(ConfigError::NoUserClaim);
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|error| ConfigError::Client(error.to_string()))?;
        Ok(Self {
            jwks_url: tokio::sync::Mutex::new(config.jwks_url.clone()),
            config,
            http,
            clock,
            keys: RwLock::new(Arc::new(KeySet::default())),
            verified: moka::future::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                // Past any token's life here (and its leeway): memory, not correctness.
                .time_to_live(Duration::from_secs(24 * 60 * 60))
                .build(),
            fetching: tokio::sync::Mutex::new(None),
        })
    }

    /// Fetches the keys now (at start, in the background); a failure is only logged; the next
    /// token with an unknown key asks again.
    pub async fn prefetch(&self) {
        if let Err(error) = self.refetch_if_due().await {
            tracing::warn!(%error, issuer = %self.config.issuer, "fetching the issuer's keys failed; asking again when a token needs them");
        }
    }

    fn cached(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(keys) => Arc::clone(&keys),
            // A writer panicked mid-swap; the Arc it left is whole either way.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn replace(&self, keys: KeySet) {
        let keys = Arc::new(keys);
        match self.keys.write() {
            Ok(mut slot) => *slot = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
    }

    /// Fetches the JWKS unless the last fetch was less than [`REFETCH_INTERVAL`] ago
    /// ([`RETRY_AFTER_FAILED_FETCH`] when it failed); on success the fetched keys replace the
    /// cached ones.
    ///
    /// # Errors
    /// [`IdentityError::KeysUnavailable`] when the fetch failed, or when the last one failed
    /// less than the interval ago.
    async fn refetch_if_due(&self) -> Result<(), IdentityError> {
        let mut last = self.fetching.lock().await;
        let now = self.clock.now();
        if let Some(previous) = *last {
            let since = (now - previous.at).to_std().unwrap_or(Duration::ZERO);
            let interval = if previous.succeeded {
                REFETCH_INTERVAL
            } else {
                RETRY_AFTER_FAILED_FETCH
            };
            if since < interval {
                return if previous.succeeded {
                    Ok(())
                } else {
                    Err(IdentityError::KeysUnavailable {
                        retry_after: (interval - since).max(Duration::from_secs(1)),
                    })
                };
            }
        }
        let fetched = self.fetch().await;
        *last = Some(LastFetch {
            at: now,
            succeeded: fetched.is_ok(),
        });
        match fetched {
            Ok(keys) => {
                self.replace(keys);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, issuer = %self.config.issuer, "fetching the issuer's keys failed");
                Err(IdentityError::KeysUnavailable {
                    retry_after: RETRY_AFTER_FAILED_FETCH,
                })
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let url = self.jwks_url().await?;
        let body: serde_json::Value = self.get_json(&url).await?;
        Ok(KeySet::from_jwks(&body))
    }

    async fn jwks_url(&self) -> Result<String, String> {
        let mut known = self.jwks_url.lock().await;
        if let Some(url) = known.as_ref() {
            return Ok(url.clone());
        }
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(&discovery_url).await?;
        url_rules::check(&discovery.jwks_uri).map_err(|error| error.to_string())?;
        *known = Some(discovery.jwks_uri.clone());
        Ok(discovery.jwks_uri)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|error| format!("GET {url}: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: {}", response.status()));
        }
        response
            .json()
            .await
            .map_err(|error| format!("GET {url}: {error}"))
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[self.config.audience.as_str()]);
        validation.required_spec_claims = ["exp", "iss", "aud"]
            .into_iter()
            .map(String::from)
            .collect::<HashSet<_>>();
        validation
    }

    fn subject_of(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Subject, IdentityError> {
        let claim = self.config.user_claim.as_str();
        let text = match claims.get(claim) {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(serde_json::Value::Number(number)) => number.to_string(),
            _ => {
                return Err(IdentityError::Invalid(format!(
                    "the token has no claim {claim:?}"
                )))
            }
        };
        Subject::parse(&text)
            .map_err(|invalid| IdentityError::Invalid(format!("claim {claim:?}: {invalid}")))
    }
}

/// The algorithms accepted: asymmetric only, so no key the issuer publishes can sign.
fn accepted(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
    )
}

#[async_trait]
impl TokenVerifier for JwksVerifier {
    async fn verify(&self, token: &str) -> Result<Subject, IdentityError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(known) = self.verified.get(&digest).await {
            let unexpired =
                jsonwebtoken::get_current_timestamp() <= known.expires + LEEWAY.as_secs();
            if unexpired && self.cached().get(&known.kid).is_some() {
                return Ok(known.subject);
            }
            self.verified.invalidate(&digest).await;
        }
        let (subject, expires, kid) = self.verify_signed(token).await?;
        self.verified
            .insert(
                digest,
                Verified {
                    subject: subject.clone(),
                    expires,
                    kid,
                },
            )
            .await;
        Ok(subject)
    }
}

impl JwksVerifier {
    /// Checks `token` in full: header, key, signature and claims; its account, `exp` and `kid`.
    async fn verify_signed(&self, token: &str) -> Result<(Subject, u64, String), IdentityError> {
        // `alg: none` is no `Algorithm`: such a header does not even decode.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| IdentityError::Invalid(format!("not a JWT: {error}")))?;
        if !accepted(header.alg) {
            return Err(IdentityError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| IdentityError::Invalid("the token names no key (kid)".into()))?;
        let mut keys = self.cached();
        if keys.get(&kid).is_none() {
            self.refetch_if_due().await?;
            keys = self.cached();
        }
        let key = keys
            .get(&kid)
            .ok_or_else(|| IdentityError::Invalid(format!("the issuer has no key {kid:?}")))?;
        // The key decides the algorithm; a header claiming another one is a forgery attempt
        // (e.g. HS256 "signed" with the RSA public key).
        if header.alg != key.algorithm {
            return Err(IdentityError::Invalid(format!(
                "key {kid:?} is for {:?}, the token says {:?}",
                key.algorithm, header.alg
            )));
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key.decoding,
            &self.validation(key.algorithm),
        )
        .map_err(|error| IdentityError::Invalid(error.to_string()))?;
        // Validation required `exp`; a token without a whole-second one is not remembered.
        let expires = data
            .claims
            .get("exp")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        Ok((self.subject_of(&data.claims)?, expires, kid))
    }
}
