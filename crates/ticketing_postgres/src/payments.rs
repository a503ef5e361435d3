//! [`PaymentLedger`] on PostgreSQL: one transaction checks the holds, debits their sum once,
//! confirms the reservations, sells the seats, records the payment and, with a key, its outcome.
//!
//! Locks are taken seat first, then wallet, then reservation: the same seat-before-reservation
//! order as holds, cancellations and the clean-up job, so none of them can deadlock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use ticketing_domain::idempotency::IdempotentRequest;
use ticketing_domain::ids::{PaymentId, ReservationId, UserId};
use ticketing_domain::money::Won;
use ticketing_domain::payment::{
    HoldToPay, LedgerAnswer, LedgerError, Payment, PaymentLedger, PaymentOutcome, PaymentRefusal,
    PaymentRequest,
};

use crate::idempotency::{claim, corrupt, read, record, Claim, Failure, StoredOutcome};
use crate::pool::{checkout, PgPool};

const SCOPE: &str = "payment";

/// `$1` the reservations: each hold and its seat, the seat rows locked in (performance, seat)
/// order, the order holds lock seats in, so payments of several reservations cannot deadlock
/// with holds or with each other. `payable` is judged by the database's clock on both rows.
///
/// `sql_query`: `FOR UPDATE OF s` locks only the seats; the query builder's `for_update` has no
/// `OF` and would lock the joined reservations too.
const CHECK_HOLDS: &str = "
SELECT r.id, r.user_id, r.price,
       (r.status = 'HELD' AND r.expires_at >= now()
        AND s.status = 'HELD' AND s.reservation_id = r.id AND s.hold_expires_at >= now()) AS payable
  FROM reservations r
  JOIN seats s ON s.performance_id = r.performance_id AND s.seat_no = r.seat_no
 WHERE r.id = ANY($1)
 ORDER BY s.performance_id, s.seat_no
   FOR UPDATE OF s";

/// `$1` user, `$2` price, `$3` the reservation paid when there is one (null for several):
/// debits only if the balance covers it, with its ledger entry and its `balance.debited` event;
/// no row otherwise.
///
/// `sql_query`: three writes chained through CTEs in one round trip of the payment's
/// transaction (payments are the slowest step measured in docs/performance.md); the query
/// builder has no data-modifying CTE.
const DEBIT: &str = "
WITH debited AS (
    UPDATE wallets SET balance = balance - $2, updated_at = now()
     WHERE user_id = $1 AND balance >= $2
 RETURNING user_id, balance
), entry AS (
    INSERT INTO wallet_entries (user_id, amount, reason, balance_after)
    SELECT user_id, 0 - $2, 'PAYMENT', balance FROM debited WHERE $2 > 0
), debited_event AS (
    INSERT INTO outbox_events (type, user_id, amount, balance, reservation_id)
    SELECT 'balance.debited', user_id, $2, balance, $3 FROM debited
)
SELECT balance FROM debited";

/// `$1` the reservations (locked, judged payable), `$2` the first of them, `$3` user, `$4` the
/// sum: sells the seats, confirms the reservations (each with its `reservation.confirmed` event),
/// records one payment and what it paid.
///
/// `sql_query`: five writes chained through CTEs in one round trip of the payment's transaction
/// (see [`DEBIT`]); the query builder has no data-modifying CTE.
const CONFIRM: &str = "
WITH sold AS (
    UPDATE seats s SET status = 'SOLD', hold_expires_at = NULL
      FROM reservations r
     WHERE r.id = ANY($1) AND s.performance_id = r.performance_id AND s.seat_no = r.seat_no
       AND s.reservation_id = r.id
), confirmed AS (
    UPDATE reservations SET status = 'CONFIRMED', updated_at = now() WHERE id = ANY($1)
 RETURNING id, user_id, performance_id, seat_no, price
), confirmed_events AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no, amount)
    SELECT 'reservation.confirmed', id, user_id, performance_id, seat_no, price
      FROM confirmed ORDER BY id
), paid AS (
    INSERT INTO payments (reservation_id, user_id, amount)
    VALUES ($2, $3, $4)
    RETURNING id, paid_at
), items AS (
    INSERT INTO payment_reservations (payment_id, reservation_id, amount)
    SELECT paid.id, r.id, r.price FROM paid, reservations r WHERE r.id = ANY($1)
)
SELECT id, paid_at FROM paid";

/// The payments stored in PostgreSQL.
#[derive(Clone)]
pub struct PgPaymentLedger {
    pool: PgPool,
}

impl std::fmt::Debug for PgPaymentLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPaymentLedger").finish_non_exhaustive()
    }
}

impl PgPaymentLedger {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(QueryableByName)]
struct HoldRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    user_id: i64,
    #[diesel(sql_type = BigInt)]
    price: i64,
    #[diesel(sql_type = Bool)]
    payable: bool,
}

#[derive(QueryableByName)]
struct BalanceRow {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    balance: i64,
}

#[derive(QueryableByName)]
struct PaymentRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Timestamptz)]
    paid_at: DateTime<Utc>,
}

/// How an outcome is kept in `idempotency_keys`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "SCREAMING_SNAKE_CASE")]
enum RecordedOutcome {
    Paid {
        payment_id: i64,
        reservation_id: i64,
        /// Every reservation paid; absent in outcomes recorded before payments of several.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reservation_ids: Vec<i64>,
        user_id: i64,
        amount: i64,
        paid_at: DateTime<Utc>,
    },
    ReservationNotFound {
        reservation_id: i64,
    },
    NotPayable {
        reservation_id: i64,
    },
    InsufficientBalance {
        price: i64,
    },
}

fn encode(outcome: &PaymentOutcome) -> Result<StoredOutcome, Failure> {
    let recorded = match outcome {
        Ok(payment) => RecordedOutcome::Paid {
            payment_id: payment.id.get(),
            reservation_id: payment.reservation.get(),
            reservation_ids: payment.reservations.iter().map(|id| id.get()).collect(),
            user_id: payment.user.get(),
            amount: payment.amount.get(),
            paid_at: payment.paid_at,
        },
        Err(PaymentRefusal::ReservationNotFound(id)) => RecordedOutcome::ReservationNotFound {
            reservation_id: id.get(),
        },
        Err(PaymentRefusal::NotPayable(id)) => RecordedOutcome::NotPayable {
            reservation_id: id.get(),
        },
        Err(PaymentRefusal::InsufficientBalance { price }) => {
            RecordedOutcome::InsufficientBalance { price: price.get() }
        }
    };
    let kind = match &recorded {
        RecordedOutcome::Paid { .. } => "PAID",
        RecordedOutcome::ReservationNotFound { .. } => "RESERVATION_NOT_FOUND",
        RecordedOutcome::NotPayable { .. } => "NOT_PAYABLE",
        RecordedOutcome::InsufficientBalance { .. } => "INSUFFICIENT_BALANCE",
    };
    Ok(StoredOutcome {
        outcome: kind.to_string(),
        data: serde_json::to_string(&recorded).map_err(corrupt)?,
    })
}

fn decode(stored: &StoredOutcome) -> Result<PaymentOutcome, Failure> {
    let recorded: RecordedOutcome = serde_json::from_str(&stored.data).map_err(corrupt)?;
    Ok(match recorded {
        RecordedOutcome::Paid {
            payment_id,
            reservation_id,
            reservation_ids,
            user_id,
            amount,
            paid_at,
        } => Ok(Payment {
            id: PaymentId::new(payment_id).map_err(corrupt)?,
            reservation: ReservationId::new(reservation_id).map_err(corrupt)?,
            reservations: if reservation_ids.is_empty() {
                vec![ReservationId::new(reservation_id).map_err(corrupt)?]
            } else {
                reservation_ids
                    .into_iter()
                    .map(|id| ReservationId::new(id).map_err(corrupt))
                    .collect::<Result<_, _>>()?
            },
            user: UserId::new(user_id).map_err(corrupt)?,
            amount: Won::new(amount).map_err(corrupt)?,
            paid_at,
        }),
        RecordedOutcome::ReservationNotFound { reservation_id } => {
            Err(PaymentRefusal::ReservationNotFound(
                ReservationId::new(reservation_id).map_err(corrupt)?,
            ))
        }
        RecordedOutcome::NotPayable { reservation_id } => Err(PaymentRefusal::NotPayable(
            ReservationId::new(reservation_id).map_err(corrupt)?,
        )),
        RecordedOutcome::InsufficientBalance { price } => {
            Err(PaymentRefusal::InsufficientBalance {
                price: Won::new(price).map_err(corrupt)?,
            })
        }
    })
}

/// Every check before any write: a refusal leaves everything as it was.
async fn attempt(
    connection: &mut AsyncPgConnection,
    request: &PaymentRequest,
) -> Result<PaymentOutcome, Failure> {
    let ids: Vec<i64> = request
        .reservations
        .ids()
        .iter()
        .map(|id| id.get())
        .collect();
    let found = diesel::sql_query(CHECK_HOLDS)
        .bind::<Array<BigInt>, _>(&ids)
        .load::<HoldRow>(connection)
        .await?
        .into_iter()
        .map(|row| {
            Ok(HoldToPay {
                reservation: ReservationId::new(row.id).map_err(corrupt)?,
                user: UserId::new(row.user_id).map_err(corrupt)?,
                price: Won::new(row.price).map_err(corrupt)?,
                payable: row.payable,
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let total = match request.judge(&found) {
        Ok(total) => total,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let only = match request.reservations.ids() {
        [one] => Some(one.get()),
        _ => None,
    };
    let debited = diesel::sql_query(DEBIT)
        .bind::<BigInt, _>(request.user.get())
        .bind::<BigInt, _>(total.get())
        .bind::<Nullable<BigInt>, _>(only)
        .get_result::<BalanceRow>(connection)
        .await;
    match debited {
        Ok(_) => {}
        Err(DieselError::NotFound) => {
            return Ok(Err(PaymentRefusal::InsufficientBalance { price: total }))
        }
        Err(error) => return Err(error.into()),
    }
    let recorded = diesel::sql_query(CONFIRM)
        .bind::<Array<BigInt>, _>(&ids)
        .bind::<BigInt, _>(request.reservations.first_id().get())
        .bind::<BigInt, _>(request.user.get())
        .bind::<BigInt, _>(total.get())
        .get_result::<PaymentRow>(connection)
        .await?;
    Ok(Ok(Payment {
        id: PaymentId::new(recorded.id).map_err(corrupt)?,
        reservation: request.reservations.first_id(),
        reservations: request.reservations.ids().to_vec(),
        user: request.user,
        amount: total,
        paid_at: recorded.paid_at,
    }))
}

#[async_trait]
impl PaymentLedger for PgPaymentLedger {
    async fn pay(
        &self,
        request: PaymentRequest,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<LedgerAnswer, LedgerError> {
        let mut connection = checkout(&self.pool).await?;
        let answer = connection
            .transaction::<_, Failure, _>(async |tx| {
                if let Some(keyed) = &idempotency {
                    if let Claim::Recorded(stored) = claim(tx, SCOPE, keyed).await? {
                        return Ok(LedgerAnswer {
                            outcome: decode(&stored)?,
                            replayed: true,
                        });
                    }
                }
                let outcome = attempt(tx, &request).await?;
                if let Some(keyed) = &idempotency {
                    record(tx, SCOPE, keyed, &encode(&outcome)?).await?;
                }
                Ok(LedgerAnswer {
                    outcome,
                    replayed: false,
                })
            })
            .await?;
        Ok(answer)
    }

    async fn recorded(
        &self,
        idempotency: IdempotentRequest,
    ) -> Result<Option<PaymentOutcome>, LedgerError> {
        let mut connection = checkout(&self.pool).await?;
        let stored = read(&mut connection, SCOPE, &idempotency)
            .await
            .map_err(Failure::from)?;
        Ok(stored.as_ref().map(decode).transpose()?)
    }
}
