//! [`Accounts`] on PostgreSQL: an identity provider's subject is one user, made on first sight.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ticketing_domain::identity::{Accounts, Subject};
use ticketing_domain::ids::UserId;
use ticketing_domain::InfrastructureError;

use crate::error::{corrupt, from_diesel};
use crate::pool::{checkout, PgPool};
use crate::schema::{accounts, wallets};

/// A new user with the sequence's next id; no row when that id is taken.
///
/// `sql_query`: the query builder has no `nextval`.
const NEW_USER: &str = "
INSERT INTO users (id) VALUES (nextval('account_user_ids'))
ON CONFLICT (id) DO NOTHING
RETURNING id";

/// Moves the sequence past every user id in use (see the migration: other users come with ids
/// of their own).
///
/// `sql_query`: `setval` is a function call the query builder cannot express.
const SKIP_TAKEN_IDS: &str = "
SELECT setval('account_user_ids', GREATEST((SELECT COALESCE(max(id), 1) FROM users), 1)) AS id";

/// How often a new id is asked for before giving up: once past the largest id in use, the next
/// id is free unless someone inserts explicit ids at that very moment.
const ID_ATTEMPTS: usize = 5;

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The accounts stored in PostgreSQL.
#[derive(Clone)]
pub struct PgAccounts {
    pool: PgPool,
}

impl std::fmt::Debug for PgAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAccounts").finish_non_exhaustive()
    }
}

impl PgAccounts {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Why a first sight did not make the account.
enum MakeFailure {
    /// Another request made it first: its user is the one.
    Lost,
    Database(DieselError),
    NoFreeId,
}

impl From<DieselError> for MakeFailure {
    fn from(error: DieselError) -> Self {
        Self::Database(error)
    }
}

async fn existing(
    connection: &mut AsyncPgConnection,
    subject: &Subject,
) -> Result<Option<i64>, DieselError> {
    accounts::table
        .find(subject.as_str())
        .select(accounts::user_id)
        .get_result::<i64>(connection)
        .await
        .optional()
}

/// Makes the user (balance 0) and the account in one transaction. A concurrent first request
/// for the same subject blocks on the account's primary key until this one ends, and then
/// inserts nothing: it rolls back its own user and reads this one's.
async fn make(connection: &mut AsyncPgConnection, subject: &Subject) -> Result<i64, MakeFailure> {
    connection
        .transaction::<_, MakeFailure, _>(async |tx| {
            let mut user = None;
            for _ in 0..ID_ATTEMPTS {
                let made = diesel::sql_query(NEW_USER)
                    .get_result::<IdRow>(tx)
                    .await
                    .optional()?;
                if let Some(row) = made {
                    user = Some(row.id);
                    break;
                }
                diesel::sql_query(SKIP_TAKEN_IDS)
                    .get_result::<IdRow>(tx)
                    .await?;
            }
            let user = user.ok_or(MakeFailure::NoFreeId)?;
            diesel::insert_into(wallets::table)
                .values((wallets::user_id.eq(user), wallets::balance.eq(0_i64)))
                .execute(tx)
                .await?;
            let claimed = diesel::insert_into(accounts::table)
                .values((
                    accounts::subject.eq(subject.as_str()),
                    accounts::user_id.eq(user),
                ))
                .on_conflict(accounts::subject)
                .do_nothing()
                .returning(accounts::user_id)
                .get_result::<i64>(tx)
                .await
                .optional()?;
            claimed.ok_or(MakeFailure::Lost)
        })
        .await
}

#[async_trait]
impl Accounts for PgAccounts {
    async fn user_of(&self, subject: &Subject) -> Result<UserId, InfrastructureError> {
        let mut connection = checkout(&self.pool).await?;
        let id = match existing(&mut connection, subject)
            .await
            .map_err(from_diesel)?
        {
            Some(id) => id,
            None => match make(&mut connection, subject).await {
                Ok(id) => id,
                Err(MakeFailure::Lost) => existing(&mut connection, subject)
                    .await
                    .map_err(from_diesel)?
                    .ok_or_else(|| {
                        InfrastructureError::unexpected("an account vanished after its creation")
                    })?,
                Err(MakeFailure::Database(error)) => return Err(from_diesel(error)),
                Err(MakeFailure::NoFreeId) => {
                    return Err(InfrastructureError::unavailable(
                        "no free user id for a new account; try again",
                    ))
                }
            },
        };
        UserId::new(id).map_err(|error| corrupt("account user id", error))
    }
}
