//! What verifying one bearer JWT costs, per algorithm, with the keys cached (the steady state):
//! `cargo run --release -p ticketing_oidc --example verify_cost [COUNT]`.
//!
//! A local issuer serves the JWKS of the test keys (tests/keys); each algorithm's token is then
//! verified COUNT times (default 2000) on one thread, and the mean time per verification is
//! printed. This is the whole per-request cost of identity on, short of the account lookup.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use ticketing_domain::clock::Clock;
use ticketing_domain::identity::TokenVerifier;
use ticketing_oidc::{JwksVerifier, OidcConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");

#[derive(Debug)]
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

async fn serve(body: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0_u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let count: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let keys = [
        ("rsa-1", Algorithm::RS256),
        ("ec-1", Algorithm::ES256),
        ("ed-1", Algorithm::EdDSA),
    ];
    let jwks: Vec<serde_json::Value> = keys
        .iter()
        .map(|(name, _)| {
            serde_json::from_slice(&std::fs::read(format!("{KEYS}/{name}.jwk.json")).unwrap())
                .unwrap()
        })
        .collect();
    let issuer = serve(json!({ "keys": jwks }).to_string()).await;
    let verifier = JwksVerifier::new(
        OidcConfig {
            issuer: issuer.clone(),
            audience: "ticketing".into(),
            jwks_url: Some(format!("{issuer}/jwks")),
            user_claim: "sub".into(),
        },
        Arc::new(SystemClock),
    )
    .unwrap();
    verifier.prefetch().await;
    let exp = chrono::Utc::now().timestamp() + 3600;
    for (name, algorithm) in keys {
        let pem = std::fs::read(format!("{KEYS}/{name}.pem")).unwrap();
        let key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_ed_pem(&pem),
        }
        .unwrap();
        let mut header = Header::new(algorithm);
        header.kid = Some(name.into());
        let token = jsonwebtoken::encode(
            &header,
            &json!({"iss": issuer, "aud": "ticketing", "sub": "bench", "exp": exp}),
            &key,
        )
        .unwrap();
        verifier.verify(&token).await.unwrap();
        let started = Instant::now();
        for _ in 0..count {
            verifier.verify(&token).await.unwrap();
        }
        let each = started.elapsed() / count;
        println!(
            "{algorithm:?}: {:.1} µs per verification ({count} runs, one thread)",
            each.as_secs_f64() * 1e6
        );
    }
}
