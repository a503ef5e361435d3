//! The issuer's keys, as cached: each with the one algorithm it verifies.

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// One usable key.
#[derive(Clone)]
pub struct CachedKey {
    /// The algorithm this key verifies: the JWK's `alg`, else what its type and curve imply.
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
}

/// The usable keys of a JWKS, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, CachedKey>,
}

impl std::fmt::Debug for CachedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

impl KeySet {
    /// The keys of a JWKS document that can verify RS256, ES256 or EdDSA signatures; keys of
    /// other types, for encryption, without a `kid` or malformed are left out (one bad key does
    /// not take the others with it).
    pub fn from_jwks(document: &serde_json::Value) -> Self {
        let keys = document
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value.clone()).ok())
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                Some((kid, usable(&jwk)?))
            })
            .collect();
        Self { keys }
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&CachedKey> {
        self.keys.get(kid)
    }

    /// How many keys are usable.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn usable(jwk: &Jwk) -> Option<CachedKey> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        // Symmetric keys (`oct`) and other curves: nothing this service accepts.
        _ => return None,
    };
    // A stated `alg` must agree with the key's type (an RSA key labelled HS256 is refused).
    let stated = match jwk.common.key_algorithm {
        None => implied,
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(_) => return None,
    };
    if stated != implied {
        return None;
    }
    Some(CachedKey {
        algorithm: implied,
        decoding: DecodingKey::from_jwk(jwk).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asymmetric_signing_keys_with_an_id_are_kept() {
        let document = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "x": "gCsmbWPsMWNa5fPEoF5S0oP4uR0Cxhgcqslt57K6mAI"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "gCsmbWPsMWNa5fPEoF5S0oP4uR0Cxhgcqslt57K6mAI"},
            {"kty": "OKP", "kid": "ed-hs", "alg": "HS256", "crv": "Ed25519", "x": "gCsmbWPsMWNa5fPEoF5S0oP4uR0Cxhgcqslt57K6mAI"},
            {"kty": "OKP", "kid": "ed-enc", "use": "enc", "crv": "Ed25519", "x": "gCsmbWPsMWNa5fPEoF5S0oP4uR0Cxhgcqslt57K6mAI"},
            {"kty": "weird", "kid": "odd"},
        ]});
        let keys = KeySet::from_jwks(&document);
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(
            keys.get("ed").map(|key| key.algorithm),
            Some(Algorithm::EdDSA)
        );
    }

    #[test]
    fn a_document_without_keys_has_none() {
        assert!(KeySet::from_jwks(&serde_json::json!({"nope": 1})).is_empty());
    }
}
