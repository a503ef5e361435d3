//! The JWT verifier against a local issuer (a small HTTP server serving a JWKS that the tests
//! change), with keys generated for these tests (tests/keys).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use ticketing_domain::clock::Clock;
use ticketing_domain::identity::{IdentityError, TokenVerifier};
use ticketing_oidc::{ConfigError, JwksVerifier, OidcConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const AUDIENCE: &str = "ticketing";

fn key_file(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn jwk(name: &str) -> serde_json::Value {
    serde_json::from_slice(&key_file(&format!("{name}.jwk.json"))).expect("a JWK")
}

fn encoding_key(name: &str) -> EncodingKey {
    let pem = key_file(&format!("{name}.pem"));
    match name.split('-').next() {
        Some("rsa") => EncodingKey::from_rsa_pem(&pem),
        Some("ec") => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_ed_pem(&pem),
    }
    .expect("a private key")
}

fn algorithm_of(name: &str) -> Algorithm {
    match name.split('-').next() {
        Some("rsa") => Algorithm::RS256,
        Some("ec") => Algorithm::ES256,
        _ => Algorithm::EdDSA,
    }
}

fn now() -> i64 {
    Utc::now().timestamp()
}

/// A token signed by `signer` (a key file's name), naming `kid`, with `claims`.
fn token_with(signer: &str, kid: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(algorithm_of(signer));
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &encoding_key(signer)).expect("signed")
}

/// The issuer of the tests' tokens: serves a JWKS (and a discovery document) that tests change,
/// counts JWKS requests, and can be taken down.
struct Issuer {
    url: String,
    state: Arc<Mutex<IssuerState>>,
}

struct IssuerState {
    jwks: serde_json::Value,
    up: bool,
    jwks_requests: usize,
}

impl Issuer {
    async fn start(keys: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(Mutex::new(IssuerState {
            jwks: json!({ "keys": keys.iter().map(|k| jwk(k)).collect::<Vec<_>>() }),
            up: true,
            jwks_requests: 0,
        }));
        let shared = Arc::clone(&state);
        let issuer_url = url.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                let issuer_url = issuer_url.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0_u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (status, body) = {
                        let mut state = state.lock().expect("issuer state");
                        if !state.up {
                            ("503 Service Unavailable", "{}".to_string())
                        } else if path == "/jwks" {
                            state.jwks_requests += 1;
                            ("200 OK", state.jwks.to_string())
                        } else if path == "/.well-known/openid-configuration" {
                            (
                                "200 OK",
                                json!({"issuer": issuer_url, "jwks_uri": format!("{issuer_url}/jwks")})
                                    .to_string(),
                            )
                        } else {
                            ("404 Not Found", "{}".to_string())
                        }
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { url, state }
    }

    fn publish(&self, keys: &[&str]) {
        self.state.lock().expect("issuer state").jwks =
            json!({ "keys": keys.iter().map(|k| jwk(k)).collect::<Vec<_>>() });
    }

    fn set_up(&self, up: bool) {
        self.state.lock().expect("issuer state").up = up;
    }

    fn jwks_requests(&self) -> usize {
        self.state.lock().expect("issuer state").jwks_requests
    }

    fn claims(&self, subject: &str) -> serde_json::Value {
        json!({"iss": self.url, "aud": AUDIENCE, "sub": subject, "exp": now() + 600, "iat": now()})
    }

    fn config(&self) -> OidcConfig {
        OidcConfig {
            issuer: self.url.clone(),
            audience: AUDIENCE.to_string(),
            jwks_url: Some(format!("{}/jwks", self.url)),
            user_claim: "sub".to_string(),
        }
    }
}

/// A clock the tests move.
#[derive(Debug)]
struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Utc::now())))
    }

    fn advance(&self, by: Duration) {
        let mut now = self.0.lock().expect("clock");
        *now += chrono::Duration::from_std(by).expect("small");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

fn verifier(issuer: &Issuer, clock: &Arc<ManualClock>) -> JwksVerifier {
    JwksVerifier::new(issuer.config(), clock.clone()).expect("valid config")
}

fn assert_invalid(result: Result<ticketing_domain::identity::Subject, IdentityError>, why: &str) {
    assert!(
        matches!(result, Err(IdentityError::Invalid(_))),
        "{why}: {result:?}"
    );
}

#[tokio::test]
async fn tokens_of_each_accepted_algorithm_verify() {
    let issuer = Issuer::start(&["rsa-1", "ec-1", "ed-1"]).await;
    let verifier = verifier(&issuer, &ManualClock::new());
    for key in ["rsa-1", "ec-1", "ed-1"] {
        let subject = verifier
            .verify(&token_with(key, key, &issuer.claims("alice")))
            .await
            .unwrap_or_else(|error| panic!("{key}: {error}"));
        assert_eq!(subject.as_str(), "alice");
    }
}

#[tokio::test]
async fn forged_and_malformed_tokens_are_invalid() {
    let issuer = Issuer::start(&["rsa-1", "ec-1"]).await;
    let verifier = verifier(&issuer, &ManualClock::new());
    let claims = issuer.claims("alice");

    // Signed by another key than the one it names.
    assert_invalid(
        verifier
            .verify(&token_with("rsa-2", "rsa-1", &claims))
            .await,
        "wrong signature",
    );
    // A key of another type than the one named.
    assert_invalid(
        verifier.verify(&token_with("ec-1", "rsa-1", &claims)).await,
        "EC signature under an RSA kid",
    );
    // alg none.
    let b64 = |value: serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": "rsa-1", "typ": "JWT"})),
        b64(claims.clone())
    );
    assert_invalid(verifier.verify(&unsigned).await, "alg none");
    // Algorithm confusion: HMAC keyed with the RSA public key.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(&key_file("rsa-1.pub.pem")),
    )
    .expect("signed");
    assert_invalid(
        verifier.verify(&confused).await,
        "HS256 with the RSA public key",
    );
    assert_invalid(verifier.verify("garbage").await, "garbage");
    assert_invalid(verifier.verify("a.b.c").await, "three garbage parts");
    assert_invalid(verifier.verify("").await, "empty");
}

#[tokio::test]
async fn time_issuer_and_audience_are_checked_with_leeway() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let verifier = verifier(&issuer, &ManualClock::new());
    let with = |changes: serde_json::Value| {
        let mut claims = issuer.claims("alice");
        for (name, value) in changes.as_object().expect("object") {
            claims[name] = value.clone();
        }
        token_with("rsa-1", "rsa-1", &claims)
    };

    assert_invalid(
        verifier.verify(&with(json!({"exp": now() - 120}))).await,
        "expired",
    );
    assert!(
        verifier
            .verify(&with(json!({"exp": now() - 30})))
            .await
            .is_ok(),
        "expired within the leeway"
    );
    assert_invalid(
        verifier.verify(&with(json!({"nbf": now() + 120}))).await,
        "not yet valid",
    );
    assert!(
        verifier
            .verify(&with(json!({"nbf": now() + 30})))
            .await
            .is_ok(),
        "not yet valid within the leeway"
    );
    assert_invalid(
        verifier
            .verify(&with(json!({"iss": "https://elsewhere.example"})))
            .await,
        "wrong issuer",
    );
    assert_invalid(
        verifier.verify(&with(json!({"aud": "another-app"}))).await,
        "wrong audience",
    );
    assert!(
        verifier
            .verify(&with(json!({"aud": ["another-app", AUDIENCE]})))
            .await
            .is_ok(),
        "one of several audiences"
    );
    let mut no_exp = issuer.claims("alice");
    no_exp.as_object_mut().expect("object").remove("exp");
    assert_invalid(
        verifier
            .verify(&token_with("rsa-1", "rsa-1", &no_exp))
            .await,
        "no expiry",
    );
    assert_invalid(
        verifier.verify(&with(json!({"sub": ""}))).await,
        "empty subject",
    );
}

#[tokio::test]
async fn the_configured_claim_names_the_account() {
    let issuer = Issuer::start(&["ed-1"]).await;
    let config = OidcConfig {
        user_claim: "email".into(),
        ..issuer.config()
    };
    let verifier = JwksVerifier::new(config, ManualClock::new()).expect("valid");
    let mut claims = issuer.claims("opaque-id");
    claims["email"] = json!("alice@example.com");

    let subject = verifier
        .verify(&token_with("ed-1", "ed-1", &claims))
        .await
        .expect("valid");
    assert_eq!(subject.as_str(), "alice@example.com");
    assert_invalid(
        verifier
            .verify(&token_with("ed-1", "ed-1", &issuer.claims("opaque-id")))
            .await,
        "without the claim",
    );
}

#[tokio::test]
async fn an_unknown_key_is_invalid_once_the_issuer_says_it_has_none() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let verifier = verifier(&issuer, &ManualClock::new());

    assert_invalid(
        verifier
            .verify(&token_with("ec-1", "ec-1", &issuer.claims("alice")))
            .await,
        "unknown kid",
    );
    assert_eq!(issuer.jwks_requests(), 1);
}

#[tokio::test]
async fn keys_rotate_and_withdrawn_keys_stop_working() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let clock = ManualClock::new();
    let verifier = verifier(&issuer, &clock);
    let old = token_with("rsa-1", "rsa-1", &issuer.claims("alice"));
    let new = token_with("rsa-2", "rsa-2", &issuer.claims("alice"));
    assert!(verifier.verify(&old).await.is_ok());

    issuer.publish(&["rsa-2"]);
    clock.advance(Duration::from_secs(31));

    assert!(
        verifier.verify(&new).await.is_ok(),
        "a new key is fetched when a token names it"
    );
    assert_invalid(verifier.verify(&old).await, "the withdrawn key");
    assert_eq!(issuer.jwks_requests(), 2);
}

#[tokio::test]
async fn unknown_keys_refetch_at_most_once_per_30_seconds() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let clock = ManualClock::new();
    let verifier = verifier(&issuer, &clock);
    verifier.prefetch().await;
    assert_eq!(issuer.jwks_requests(), 1);

    issuer.publish(&["rsa-1", "rsa-2"]);
    let new = token_with("rsa-2", "rsa-2", &issuer.claims("alice"));
    for kid in ["made-up-1", "made-up-2", "made-up-3"] {
        assert_invalid(
            verifier
                .verify(&token_with("rsa-1", kid, &issuer.claims("mallory")))
                .await,
            "made-up kid",
        );
    }
    clock.advance(Duration::from_secs(29));
    assert_invalid(verifier.verify(&new).await, "not yet refetched");
    assert_eq!(issuer.jwks_requests(), 1, "no refetch within 30 s");

    clock.advance(Duration::from_secs(2));
    assert!(verifier.verify(&new).await.is_ok());
    assert_eq!(issuer.jwks_requests(), 2);
}

#[tokio::test]
async fn with_the_issuer_down_cached_keys_work_and_unknown_ones_are_unavailable() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    let clock = ManualClock::new();
    let verifier = verifier(&issuer, &clock);
    verifier.prefetch().await;
    issuer.set_up(false);
    clock.advance(Duration::from_secs(31));

    assert!(verifier
        .verify(&token_with("rsa-1", "rsa-1", &issuer.claims("alice")))
        .await
        .is_ok());
    let unknown = token_with("ec-1", "ec-1", &issuer.claims("alice"));
    let refused = verifier.verify(&unknown).await;
    assert!(
        matches!(refused, Err(IdentityError::KeysUnavailable { retry_after }) if retry_after > Duration::ZERO),
        "{refused:?}"
    );
    // Within the interval the issuer is not asked again, and the answer stays "unavailable".
    clock.advance(Duration::from_secs(10));
    assert!(matches!(
        verifier.verify(&unknown).await,
        Err(IdentityError::KeysUnavailable { retry_after }) if retry_after <= Duration::from_secs(20)
    ));
}

#[tokio::test]
async fn the_service_starts_with_the_issuer_down_and_finds_keys_by_discovery_later() {
    let issuer = Issuer::start(&["ed-1"]).await;
    issuer.set_up(false);
    let clock = ManualClock::new();
    let config = OidcConfig {
        jwks_url: None,
        ..issuer.config()
    };
    let verifier = JwksVerifier::new(config, clock.clone()).expect("starts without the issuer");
    verifier.prefetch().await;
    let token = token_with("ed-1", "ed-1", &issuer.claims("alice"));
    assert!(matches!(
        verifier.verify(&token).await,
        Err(IdentityError::KeysUnavailable { .. })
    ));

    issuer.set_up(true);
    clock.advance(Duration::from_secs(31));
    assert_eq!(
        verifier.verify(&token).await.expect("valid").as_str(),
        "alice"
    );
}

#[tokio::test]
async fn an_issuer_back_after_a_failed_fetch_is_asked_again_within_seconds() {
    let issuer = Issuer::start(&["rsa-1"]).await;
    issuer.set_up(false);
    let clock = ManualClock::new();
    let verifier = verifier(&issuer, &clock);
    verifier.prefetch().await;
    let token = token_with("rsa-1", "rsa-1", &issuer.claims("alice"));
    assert!(matches!(
        verifier.verify(&token).await,
        Err(IdentityError::KeysUnavailable { retry_after }) if retry_after <= Duration::from_secs(5)
    ));

    issuer.set_up(true);
    clock.advance(Duration::from_secs(6));
    assert_eq!(
        verifier.verify(&token).await.expect("valid").as_str(),
        "alice"
    );
}

#[test]
fn plain_http_issuers_are_refused_off_loopback() {
    let config = OidcConfig {
        issuer: "http://id.example.com".into(),
        audience: AUDIENCE.into(),
        jwks_url: None,
        user_claim: "sub".into(),
    };
    assert!(matches!(
        JwksVerifier::new(config.clone(), ManualClock::new()),
        Err(ConfigError::Url(_))
    ));
    let https = OidcConfig {
        issuer: "https://id.example.com".into(),
        ..config.clone()
    };
    assert!(JwksVerifier::new(https.clone(), ManualClock::new()).is_ok());
    let no_audience = OidcConfig {
        audience: String::new(),
        ..https
    };
    assert!(matches!(
        JwksVerifier::new(no_audience, ManualClock::new()),
        Err(ConfigError::NoAudience)
    ));
}
