//! Translation of diesel and pool failures into the domain's [`InfrastructureError`].

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;
use ticketing_domain::InfrastructureError;

/// Messages of server errors that mean "too slow or going away, try again", which diesel files
/// under `DatabaseErrorKind::Unknown` (statement/lock timeouts, shutdown, recovery).
const TRANSIENT_SERVER_MESSAGES: &[&str] = &[
    "canceling statement due to",
    "terminating connection",
    "the database system is",
    "too many connections",
    "could not serialize access",
    "deadlock detected",
];

pub(crate) fn from_diesel(error: DieselError) -> InfrastructureError {
    match &error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::SerializationFailure,
            _,
        ) => InfrastructureError::Unavailable(error.to_string()),
        DieselError::DatabaseError(_, info)
            if TRANSIENT_SERVER_MESSAGES
                .iter()
                .any(|m| info.message().contains(m)) =>
        {
            InfrastructureError::Unavailable(error.to_string())
        }
        DieselError::BrokenTransactionManager => {
            InfrastructureError::Unavailable(error.to_string())
        }
        _ => InfrastructureError::Unexpected(error.to_string()),
    }
}

pub(crate) fn from_pool(error: PoolError) -> InfrastructureError {
    match error {
        PoolError::Timeout(_) | PoolError::Backend(_) | PoolError::PostCreateHook(_) => {
            InfrastructureError::Unavailable(format!("postgres: {error}"))
        }
        PoolError::Closed | PoolError::NoRuntimeSpecified => {
            InfrastructureError::Unexpected(format!("postgres pool: {error}"))
        }
    }
}
