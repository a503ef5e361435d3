//! Bearer tokens for a load run with identity on, so that no real issuer is needed:
//! `cargo run --release -p ticketing_oidc --example mint_tokens -- COUNT DIR ISSUER AUDIENCE`.
//!
//! Signs COUNT RS256 JWTs with the test key `tests/keys/rsa-1.pem` (iss = ISSUER, aud =
//! AUDIENCE, sub = `load-<i>`, exp in one hour) and writes `DIR/jwks.json` (the key's public
//! half, for `APP__AUTH__JWKS_URL`) and `DIR/tokens.json` (a JSON array of the tokens, in the
//! order of `i`). The test key is public on purpose: whatever these tokens open is a benchmark's.
//! Signing is jsonwebtoken's, as in the server's own tests: no signature code here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
const USAGE: &str = "usage: mint_tokens COUNT DIR ISSUER AUDIENCE";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [count, dir, issuer, audience] = args.as_slice() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let count: u32 = count.parse().expect(USAGE);
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).expect("creating DIR");

    let key = EncodingKey::from_rsa_pem(&std::fs::read(format!("{KEYS}/rsa-1.pem")).unwrap())
        .expect("the RSA test key");
    let mut header = Header::new(Algorithm::RS256);
    // The verifier picks the key by kid; rsa-1.jwk.json carries the same one.
    header.kid = Some("rsa-1".into());
    let exp = chrono::Utc::now().timestamp() + 3600;
    let tokens: Vec<String> = (0..count)
        .map(|i| {
            let claims =
                json!({ "iss": issuer, "aud": audience, "sub": format!("load-{i}"), "exp": exp });
            jsonwebtoken::encode(&header, &claims, &key).expect("signing")
        })
        .collect();

    let jwk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{KEYS}/rsa-1.jwk.json")).unwrap())
            .expect("the RSA test key's JWK");
    std::fs::write(dir.join("jwks.json"), json!({ "keys": [jwk] }).to_string())
        .expect("writing jwks.json");
    std::fs::write(
        dir.join("tokens.json"),
        serde_json::to_string(&tokens).unwrap(),
    )
    .expect("writing tokens.json");
    println!(
        "{count} RS256 tokens for {issuer} (aud {audience}) in {}",
        dir.display()
    );
}
