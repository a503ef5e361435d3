//! `Idempotency-Key`: a client's name for one attempt, so a retry learns the first outcome
//! instead of repeating the effect.

/// A client-chosen key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

/// A key that cannot be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an Idempotency-Key is 1 to 255 visible ASCII characters")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    /// The longest key accepted, in characters.
    pub const MAX_LEN: usize = 255;

    /// Validates `value`.
    ///
    /// # Errors
    /// [`InvalidIdempotencyKey`] when empty, too long or not visible ASCII.
    pub fn parse(value: &str) -> Result<Self, InvalidIdempotencyKey> {
        let valid = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.bytes().all(|b| b.is_ascii_graphic());
        if valid {
            Ok(Self(value.to_string()))
        } else {
            Err(InvalidIdempotencyKey)
        }
    }

    /// The key as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key together with what was asked under it: the same key with another request is a
/// conflict, never a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    /// The client's key.
    pub key: IdempotencyKey,
    /// A canonical description of the request, compared on reuse.
    pub fingerprint: String,
}

/// Why a keyed request cannot run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdempotencyConflict {
    /// The key was already used with a request of another fingerprint.
    #[error("this Idempotency-Key was used with a different request")]
    DifferentRequest,
    /// The first request under this key has not finished yet.
    #[error("a request with this Idempotency-Key is still in flight")]
    InFlight,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_255_characters() {
        assert!(IdempotencyKey::parse("order-42/retry#1").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("with space").is_err());
        assert!(IdempotencyKey::parse("naïve").is_err());
    }
}

/// Housekeeping of recorded outcomes: keys are kept for a while (at least 24 hours), then
/// forgotten.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait::async_trait]
pub trait OutcomeRetention: Send + Sync {
    /// Forgets outcomes recorded more than `age` ago; returns how many.
    ///
    /// # Errors
    /// [`crate::InfrastructureError`] when the store cannot answer.
    async fn forget_older_than(
        &self,
        age: std::time::Duration,
    ) -> Result<u64, crate::InfrastructureError>;
}
