//! Translation of Redis and pool failures into the domain's [`InfrastructureError`].

use deadpool::managed::PoolError;
use redis::RedisError;
use ticketing_domain::InfrastructureError;

/// The driver's failure, named after the store, as the cause an [`InfrastructureError`] keeps:
/// the log reads `a dependency is unavailable: redis: <the driver's error>`.
#[derive(Debug, thiserror::Error)]
enum RedisFailure {
    #[error("redis")]
    Command(#[source] RedisError),
    #[error("redis pool")]
    Pool(#[source] PoolError<RedisError>),
}

pub(crate) fn from_redis(error: RedisError) -> InfrastructureError {
    if error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
        || is_transient_server_state(&error)
    {
        InfrastructureError::unavailable(RedisFailure::Command(error))
    } else {
        InfrastructureError::unexpected(RedisFailure::Command(error))
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
            InfrastructureError::unavailable(RedisFailure::Pool(error))
        }
        PoolError::Closed | PoolError::NoRuntimeSpecified => {
            InfrastructureError::unexpected(RedisFailure::Pool(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_error_stays_the_cause_named_after_the_store() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let error = from_redis(refused);
        assert!(error.is_unavailable());
        assert!(
            error
                .chain()
                .to_string()
                .starts_with("a dependency is unavailable: redis: "),
            "{}",
            error.chain()
        );
        let driver = std::error::Error::source(&error)
            .and_then(std::error::Error::source)
            .and_then(|cause| cause.downcast_ref::<RedisError>());
        assert!(driver.is_some_and(RedisError::is_io_error));
    }
}
