//! [`Wallet`] on PostgreSQL: a charge is one atomic increment, recorded with its ledger entry.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ticketing_domain::idempotency::{IdempotencyConflict, IdempotentRequest};
use ticketing_domain::ids::UserId;
use ticketing_domain::money::{ChargeAmount, Won};
use ticketing_domain::wallet::{Wallet, WalletError};
use ticketing_domain::InfrastructureError;

use crate::error::{corrupt, from_diesel};
use crate::idempotency::{claim, record, Claim, ClaimError, StoredOutcome};
use crate::pool::{checkout, PgPool};
use crate::schema::wallets;

const SCOPE: &str = "charge";
const CHARGED: &str = "CHARGED";

/// `$1` user, `$2` amount: adds to the balance and writes the ledger entry and the
/// `balance.charged` event; no row for an unknown user.
///
/// `sql_query`: the query builder has no data-modifying CTE. As one statement a charge without a
/// key needs no transaction: one round trip instead of five (counted, not timed;
/// docs/holds-benchmark.md times the same trade for a hold).
const CHARGE: &str = "
WITH charged AS (
    UPDATE wallets SET balance = balance + $2, updated_at = now()
     WHERE user_id = $1
 RETURNING user_id, balance
), entry AS (
    INSERT INTO wallet_entries (user_id, amount, reason, balance_after)
    SELECT user_id, $2, 'CHARGE', balance FROM charged
), charged_event AS (
    INSERT INTO outbox_events (type, user_id, amount, balance)
    SELECT 'balance.charged', user_id, $2, balance FROM charged
)
SELECT balance FROM charged";

/// The balances stored in PostgreSQL.
#[derive(Clone)]
pub struct PgWallet {
    pool: PgPool,
}

impl std::fmt::Debug for PgWallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWallet").finish_non_exhaustive()
    }
}

impl PgWallet {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(QueryableByName)]
struct BalanceRow {
    #[diesel(sql_type = BigInt)]
    balance: i64,
}

#[derive(Debug)]
enum ChargeFailure {
    UserNotFound,
    Conflict(IdempotencyConflict),
    Corrupt(InfrastructureError),
    Database(DieselError),
}

impl From<DieselError> for ChargeFailure {
    fn from(error: DieselError) -> Self {
        ChargeFailure::Database(error)
    }
}

impl From<ClaimError> for ChargeFailure {
    fn from(error: ClaimError) -> Self {
        match error {
            ClaimError::Conflict(conflict) => ChargeFailure::Conflict(conflict),
            ClaimError::Database(error) => ChargeFailure::Database(error),
        }
    }
}

fn won(balance: i64) -> Result<Won, ChargeFailure> {
    Won::new(balance).map_err(|e| ChargeFailure::Corrupt(corrupt("balance", e)))
}

async fn apply_charge(
    connection: &mut AsyncPgConnection,
    user: UserId,
    amount: ChargeAmount,
) -> Result<Won, ChargeFailure> {
    let row = diesel::sql_query(CHARGE)
        .bind::<BigInt, _>(user.get())
        .bind::<BigInt, _>(amount.won().get())
        .get_result::<BalanceRow>(connection)
        .await;
    match row {
        Ok(row) => won(row.balance),
        Err(DieselError::NotFound) => Err(ChargeFailure::UserNotFound),
        Err(error) => Err(error.into()),
    }
}

#[async_trait]
impl Wallet for PgWallet {
    async fn balance(&self, user: UserId) -> Result<Won, WalletError> {
        let mut connection = checkout(&self.pool).await?;
        let balance = wallets::table
            .find(user.get())
            .select(wallets::balance)
            .get_result::<i64>(&mut connection)
            .await
            .optional()
            .map_err(from_diesel)?
            .ok_or(WalletError::UserNotFound(user))?;
        Won::new(balance).map_err(|e| InfrastructureError::unexpected(e).into())
    }

    async fn charge(
        &self,
        user: UserId,
        amount: ChargeAmount,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<Won, WalletError> {
        let mut connection = checkout(&self.pool).await?;
        let outcome = match idempotency {
            // A single statement: its own transaction, one round trip.
            None => apply_charge(&mut connection, user, amount).await,
            Some(request) => {
                connection
                    .transaction::<_, ChargeFailure, _>(async |tx| {
                        if let Claim::Recorded(stored) = claim(tx, SCOPE, &request).await? {
                            let balance = stored.data.parse::<i64>().map_err(|e| {
                                ChargeFailure::Corrupt(corrupt("charge outcome", e))
                            })?;
                            return won(balance);
                        }
                        let balance = apply_charge(tx, user, amount).await?;
                        let stored = StoredOutcome {
                            outcome: CHARGED.to_string(),
                            data: balance.get().to_string(),
                        };
                        record(tx, SCOPE, &request, &stored).await?;
                        Ok(balance)
                    })
                    .await
            }
        };
        outcome.map_err(|failure| match failure {
            ChargeFailure::UserNotFound => WalletError::UserNotFound(user),
            ChargeFailure::Conflict(conflict) => WalletError::Conflict(conflict),
            ChargeFailure::Corrupt(error) => error.into(),
            ChargeFailure::Database(error) => from_diesel(error).into(),
        })
    }
}
