//! Why a queue operation or a token check failed.

use std::time::Duration;

use crate::InfrastructureError;

/// Why a queue operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue token is unknown, forged or expired")]
    TokenInvalid,
    #[error("too many queue entries from this client; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// Why a token does not open a protected endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("the queue token is unknown, forged, expired or already used")]
    TokenInvalid,
    #[error("the queue token is still waiting")]
    TokenNotActive,
    #[error("the queue token was issued for another user")]
    TokenUserMismatch,
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}
