//! Translation of Redis and pool failures into the domain's [`InfrastructureError`].

use deadpool::managed::PoolError;
use redis::RedisError;
use ticketing_domain::InfrastructureError;

pub(crate) fn from_redis(error: RedisError) -> InfrastructureError {
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
        || is_transient_server_state(&error)
    {
        InfrastructureError::Unavailable(format!("redis: {error}"))
    } else {
        InfrastructureError::Unexpected(format!("redis: {error}"))
    }
}

/// Answers a Redis gives while it cannot serve for a while: replaying its file after a restart,
/// a cluster resharding or failing over, a replica not (yet) promoted, a script running too
/// long, memory full. Unavailable, not a bug.
fn is_transient_server_state(error: &RedisError) -> bool {
    matches!(
        error.code(),
        Some(
            "LOADING"
                | "TRYAGAIN"
                | "CLUSTERDOWN"
                | "MASTERDOWN"
                | "READONLY"
                | "BUSY"
                | "NOREPLICAS"
                | "OOM"
        )
    )
}

pub(crate) fn from_pool(error: PoolError<RedisError>) -> InfrastructureError {
    match error {
        PoolError::Timeout(_) | PoolError::Backend(_) | PoolError::PostCreateHook(_) => {
            InfrastructureError::Unavailable(format!("redis: {error}"))
        }
        PoolError::Closed | PoolError::NoRuntimeSpecified => {
            InfrastructureError::Unexpected(format!("redis pool: {error}"))
        }
    }
}
