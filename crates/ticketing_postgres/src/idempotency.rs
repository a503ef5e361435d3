//! Recorded outcomes of keyed requests, read and written inside the caller's transaction.

use diesel::dsl::now;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Bool, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::time::Duration;

use async_trait::async_trait;
use ticketing_domain::idempotency::{IdempotencyConflict, IdempotentRequest, OutcomeRetention};
use ticketing_domain::InfrastructureError;

use crate::error::from_diesel;
use crate::pool::{checkout, PgPool};
use crate::schema::idempotency_keys;
use crate::time::interval;

/// An outcome as stored: a kind and its data, both owned by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredOutcome {
    pub outcome: String,
    pub data: String,
}

/// What a keyed request finds when it starts.
#[derive(Debug)]
pub(crate) enum Claim {
    /// Nothing recorded: run the request, then [`record`] its outcome.
    Fresh,
    /// This request already ran: answer its outcome again.
    Recorded(StoredOutcome),
}

/// A transaction's failure: a conflict to answer, or the database's error.
#[derive(Debug)]
pub(crate) enum ClaimError {
    Conflict(IdempotencyConflict),
    Database(DieselError),
}

impl From<DieselError> for ClaimError {
    fn from(error: DieselError) -> Self {
        ClaimError::Database(error)
    }
}

/// Why a keyed write (a payment, a refund) did not commit, before each ledger turns it into its
/// own error: a key conflict, stored data the schema should have made impossible, or the
/// database.
#[derive(Debug)]
pub(crate) enum Failure {
    Conflict(IdempotencyConflict),
    Corrupt(InfrastructureError),
    Database(DieselError),
}

impl From<DieselError> for Failure {
    fn from(error: DieselError) -> Self {
        Failure::Database(error)
    }
}

impl From<ClaimError> for Failure {
    fn from(error: ClaimError) -> Self {
        match error {
            ClaimError::Conflict(conflict) => Failure::Conflict(conflict),
            ClaimError::Database(error) => Failure::Database(error),
        }
    }
}

impl From<Failure> for ticketing_domain::payment::LedgerError {
    fn from(failure: Failure) -> Self {
        use ticketing_domain::payment::LedgerError;
        match failure {
            Failure::Conflict(conflict) => LedgerError::Conflict(conflict),
            Failure::Corrupt(error) => LedgerError::Infrastructure(error),
            Failure::Database(error) => LedgerError::Infrastructure(from_diesel(error)),
        }
    }
}

/// A stored value that the schema's constraints should have made impossible.
pub(crate) fn corrupt(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Failure {
    Failure::Corrupt(crate::error::corrupt("payment or refund data", cause))
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = idempotency_keys)]
#[diesel(check_for_backend(diesel::pg::Pg))]
struct Row {
    request_fingerprint: String,
    outcome: String,
    outcome_data: String,
}

/// Takes the key for this transaction (a request still running under it makes this one a
/// conflict, not a wait), then reads what is recorded. The read is a statement of its own, so
/// it sees a first request that committed just before the lock was taken.
pub(crate) async fn claim(
    connection: &mut AsyncPgConnection,
    scope: &str,
    request: &IdempotentRequest,
) -> Result<Claim, ClaimError> {
    // sql_query: an advisory lock is a PostgreSQL function on a key hashed from text, not a
    // table; the query builder would need four function declarations to say this one line.
    let locked = diesel::sql_query(
        // Advisory locks are per database: the schema in the name keeps stacks (and parallel
        // tests) that share a database from blocking each other's keys.
        "SELECT pg_try_advisory_xact_lock(
                    hashtextextended(current_schema() || chr(31) || $1 || chr(31) || $2, 0)) AS locked",
    )
    .bind::<Text, _>(scope)
    .bind::<Text, _>(request.key.as_str())
    .get_result::<Locked>(connection)
    .await?;
    if !locked.locked {
        return Err(ClaimError::Conflict(IdempotencyConflict::InFlight));
    }
    Ok(match read(connection, scope, request).await? {
        Some(stored) => Claim::Recorded(stored),
        None => Claim::Fresh,
    })
}

/// Reads what is recorded for this very request; the same key with another request is a
/// conflict. Without [`claim`], it takes no lock (a replay after the session ended).
pub(crate) async fn read(
    connection: &mut AsyncPgConnection,
    scope: &str,
    request: &IdempotentRequest,
) -> Result<Option<StoredOutcome>, ClaimError> {
    let row = idempotency_keys::table
        .find((scope, request.key.as_str()))
        .select(Row::as_select())
        .get_result(connection)
        .await
        .optional()?;
    match row {
        Some(row) if row.request_fingerprint == request.fingerprint => Ok(Some(StoredOutcome {
            outcome: row.outcome,
            data: row.outcome_data,
        })),
        Some(_) => Err(ClaimError::Conflict(IdempotencyConflict::DifferentRequest)),
        None => Ok(None),
    }
}

/// Records the outcome, in the transaction that produced it.
pub(crate) async fn record(
    connection: &mut AsyncPgConnection,
    scope: &str,
    request: &IdempotentRequest,
    outcome: &StoredOutcome,
) -> Result<(), ClaimError> {
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::scope.eq(scope),
            idempotency_keys::key.eq(request.key.as_str()),
            idempotency_keys::request_fingerprint.eq(&request.fingerprint),
            idempotency_keys::outcome.eq(&outcome.outcome),
            idempotency_keys::outcome_data.eq(&outcome.data),
        ))
        .execute(connection)
        .await
        .map(drop)
        .map_err(|error| match error {
            // Only possible if the key's lock was somehow not held: never record twice.
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                ClaimError::Conflict(IdempotencyConflict::InFlight)
            }
            other => ClaimError::Database(other),
        })
}

/// Forgets recorded outcomes past their retention.
#[derive(Clone)]
pub struct PgOutcomeRetention {
    pool: PgPool,
}

impl std::fmt::Debug for PgOutcomeRetention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOutcomeRetention").finish_non_exhaustive()
    }
}

impl PgOutcomeRetention {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl OutcomeRetention for PgOutcomeRetention {
    async fn forget_older_than(&self, age: Duration) -> Result<u64, InfrastructureError> {
        let mut connection = checkout(&self.pool).await?;
        let deleted = diesel::delete(idempotency_keys::table.filter(
            idempotency_keys::created_at.lt(now.into_sql::<Timestamptz>() - interval(age)),
        ))
        .execute(&mut connection)
        .await
        .map_err(from_diesel)?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }
}
