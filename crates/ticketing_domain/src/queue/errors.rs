//! Why a queue operation or a token check failed.

use std::time::Duration;

use crate::InfrastructureError;

/// Why a queue operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The token is forged, or its ticket is no longer live (expired, left, revoked, dropped for
    /// idling).
    #[error("the queue token is unknown, forged or expired")]
    TokenInvalid,
    /// The client entered more often than the per-client limit allows.
    #[error("too many queue entries from this client; retry in {retry_after:?}")]
    RateLimited {
        /// How long to wait before entering again.
        retry_after: Duration,
    },
    /// This instance follows no line of the room asked for.
    #[error("no such room")]
    RoomUnknown,
    /// The store cannot answer.
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// Why a token does not open a protected endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The token is forged, or its ticket is no longer live (expired, or its session ended: left,
    /// paid, revoked, dropped for idling).
    #[error("the queue token is unknown, forged, expired or already used")]
    TokenInvalid,
    /// The token is still WAITING: its turn has not come.
    #[error("the queue token is still waiting")]
    TokenNotActive,
    /// The token may not act for this user: it is bound to another user, or to nobody while
    /// binding is required.
    #[error("the queue token was issued for another user")]
    TokenUserMismatch,
    /// The token is ACTIVE in a room that does not cover this performance.
    #[error(
        "the queue token was admitted in room {token_room}, which does not cover this performance"
    )]
    TokenWrongRoom {
        /// The room the token was admitted in.
        token_room: crate::rooms::RoomId,
    },
    /// The store cannot answer.
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}
