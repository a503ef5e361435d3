//! Translation of diesel and pool failures into the domain's [`InfrastructureError`].

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;
use ticketing_domain::InfrastructureError;

/// The driver's failure, named after the store, as the cause an [`InfrastructureError`] keeps:
/// the log reads `a dependency is unavailable: postgres: <diesel's error>: <its causes>`.
#[derive(Debug, thiserror::Error)]
enum PostgresFailure {
    #[error("postgres")]
    Statement(#[source] DieselError),
    #[error("postgres pool")]
    Pool(#[source] PoolError),
}

/// Messages of server errors that mean "too slow, busy or going away, try again", which diesel
/// files under `DatabaseErrorKind::Unknown` (it keeps the message, not the SQLSTATE).
const TRANSIENT_SERVER_MESSAGES: &[&str] = &[
    // 57014 query_canceled: statement or lock timeout, cancel request, conflict with recovery.
    "canceling statement due to",
    // 57P01 admin_shutdown, 57P02 crash_shutdown, idle-session and idle-in-transaction timeouts.
    "terminating connection",
    // 57P03 cannot_connect_now: starting up, shutting down, in recovery mode, not accepting.
    "the database system is",
    // 53300 too_many_connections, in its three wordings.
    "too many connections",
    "too many clients already",
    "connection slots are reserved",
    // 40001 serialization_failure and 40P01 deadlock_detected: the transaction may be retried.
    "could not serialize access",
    "deadlock detected",
    // 55000 on a standby: functions that need a primary.
    "recovery is in progress",
];

/// What PostgreSQL returned that its schema should have made impossible (a bug, or a row edited
/// by hand), never the client's fault: the cause of an unexpected [`InfrastructureError`], with
/// what made it invalid as its own cause.
#[derive(Debug, thiserror::Error)]
#[error("invalid {kind} read from postgres")]
struct InvalidStoredData {
    kind: &'static str,
    #[source]
    cause: Box<dyn std::error::Error + Send + Sync>,
}

/// `cause` (an error, or a description of what is wrong) found in stored data of `kind`.
pub(crate) fn corrupt(
    kind: &'static str,
    cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> InfrastructureError {
    InfrastructureError::unexpected(InvalidStoredData {
        kind,
        cause: cause.into(),
    })
}

pub(crate) fn from_diesel(error: DieselError) -> InfrastructureError {
    let transient = match &error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::SerializationFailure
            // 25006: a read-only server, such as a standby just after a failover.
            | DatabaseErrorKind::ReadOnlyTransaction,
            _,
        )
        | DieselError::BrokenTransactionManager => true,
        DieselError::DatabaseError(_, info) => TRANSIENT_SERVER_MESSAGES
            .iter()
            .any(|m| info.message().contains(m)),
        _ => false,
    };
    let cause = PostgresFailure::Statement(error);
    if transient {
        InfrastructureError::unavailable(cause)
    } else {
        InfrastructureError::unexpected(cause)
    }
}

pub(crate) fn from_pool(error: PoolError) -> InfrastructureError {
    match error {
        PoolError::Timeout(_) | PoolError::Backend(_) | PoolError::PostCreateHook(_) => {
            InfrastructureError::unavailable(PostgresFailure::Pool(error))
        }
        PoolError::Closed | PoolError::NoRuntimeSpecified => {
            InfrastructureError::unexpected(PostgresFailure::Pool(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_string()))
    }

    #[test]
    fn every_transient_server_answer_is_unavailable() {
        let transient = [
            (
                DatabaseErrorKind::Unknown,
                "canceling statement due to statement timeout",
            ),
            (
                DatabaseErrorKind::Unknown,
                "canceling statement due to lock timeout",
            ),
            (
                DatabaseErrorKind::Unknown,
                "canceling statement due to conflict with recovery",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to idle-in-transaction timeout",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is starting up",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is in recovery mode",
            ),
            (
                DatabaseErrorKind::Unknown,
                "sorry, too many clients already",
            ),
            (
                DatabaseErrorKind::Unknown,
                "remaining connection slots are reserved for roles with the SUPERUSER attribute",
            ),
            (
                DatabaseErrorKind::Unknown,
                "too many connections for role \"ticketing\"",
            ),
            (DatabaseErrorKind::Unknown, "deadlock detected"),
            (DatabaseErrorKind::Unknown, "recovery is in progress"),
            (
                DatabaseErrorKind::SerializationFailure,
                "could not serialize access due to concurrent update",
            ),
            (
                DatabaseErrorKind::ReadOnlyTransaction,
                "cannot execute UPDATE in a read-only transaction",
            ),
            (
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection",
            ),
            (DatabaseErrorKind::UnableToSendCommand, "broken pipe"),
        ];
        for (kind, message) in transient {
            assert!(
                matches!(
                    from_diesel(server_error(kind, message)),
                    InfrastructureError::Unavailable(_)
                ),
                "{message}"
            );
        }
    }

    #[test]
    fn the_driver_error_stays_the_cause_named_after_the_store() {
        let error = from_diesel(server_error(
            DatabaseErrorKind::Unknown,
            "canceling statement due to statement timeout",
        ));
        assert_eq!(
            error.chain().to_string(),
            "a dependency is unavailable: postgres: canceling statement due to statement timeout"
        );
        let driver = std::error::Error::source(&error)
            .and_then(std::error::Error::source)
            .and_then(|cause| cause.downcast_ref::<DieselError>());
        assert!(matches!(driver, Some(DieselError::DatabaseError(..))));
    }

    #[test]
    fn a_broken_statement_or_schema_is_a_bug_not_an_outage() {
        for message in [
            "relation \"reservations\" does not exist",
            "syntax error at or near \"SELEC\"",
        ] {
            assert!(
                matches!(
                    from_diesel(server_error(DatabaseErrorKind::Unknown, message)),
                    InfrastructureError::Unexpected(_)
                ),
                "{message}"
            );
        }
        assert!(matches!(
            from_diesel(DieselError::NotFound),
            InfrastructureError::Unexpected(_)
        ));
    }
}
