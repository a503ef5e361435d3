//! [`RefundLedger`] on PostgreSQL: one transaction locks the reservation's seat, lets the domain
//! judge the reservation as it stands (with the database's clock), then marks it REFUNDED,
//! credits the balance, frees the seat and, with a key, records the outcome.
//!
//! The seat row is locked first, as by every statement that changes a reservation, so a refund
//! waits for a concurrent payment, cancellation or refund of the same reservation and then reads
//! what it left: one refund at most, never a refund of an unpaid reservation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use ticketing_domain::idempotency::IdempotentRequest;
use ticketing_domain::ids::{ConcertId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::money::Won;
use ticketing_domain::payment::LedgerError;
use ticketing_domain::refund::{
    RefundAnswer, RefundCandidate, RefundLedger, RefundOutcome, RefundRefusal, RefundRequest,
};
use ticketing_domain::reservation::{Reservation, ReservationStatus};

use crate::idempotency::{claim, corrupt, record, Claim, Failure, StoredOutcome};
use crate::pool::{checkout, PgPool};
use crate::reservation_read::{
    reservation_columns, reservation_from, reservations_with_performance, ReservationRow,
};
use crate::schema::{performances, reservations, seats};
use crate::seat_state::seat_released_sql;

const SCOPE: &str = "refund";

/// `$1` reservation, `$2` performance, `$3` seat, `$4` price: frees the seat, marks the
/// reservation REFUNDED, credits the price and writes the ledger entry and both events
/// (`reservation.refunded`, `balance.refunded`); the new balance, or no
/// row when the reservation was not CONFIRMED (never after the domain's judgement under lock).
///
/// `sql_query`: the query builder has no data-modifying CTE. The six writes are one statement
/// inside the refund's transaction: one round trip instead of six (counted, not timed;
/// docs/holds-benchmark.md times the same trade for a hold).
const REFUND: &str = concat!(
    "
WITH freed AS (
    UPDATE seats SET ",
    seat_released_sql!(),
    "
     WHERE performance_id = $2 AND seat_no = $3 AND reservation_id = $1 AND status = 'SOLD'
), refunded AS (
    UPDATE reservations SET status = 'REFUNDED', updated_at = now()
     WHERE id = $1 AND status = 'CONFIRMED'
 RETURNING id, user_id, performance_id, seat_no
), refunded_event AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no, amount)
    SELECT 'reservation.refunded', id, user_id, performance_id, seat_no, $4 FROM refunded
), credited AS (
    UPDATE wallets w SET balance = balance + $4, updated_at = now()
      FROM refunded
     WHERE w.user_id = refunded.user_id
 RETURNING w.user_id, w.balance
), entry AS (
    INSERT INTO wallet_entries (user_id, amount, reason, balance_after)
    SELECT user_id, $4, 'REFUND', balance FROM credited WHERE $4 > 0
), credited_event AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, amount, balance)
    SELECT 'balance.refunded', $1, user_id, $4, balance FROM credited
)
SELECT balance FROM credited"
);

/// The refunds stored in PostgreSQL.
#[derive(Clone)]
pub struct PgRefundLedger {
    pool: PgPool,
}

impl std::fmt::Debug for PgRefundLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRefundLedger").finish_non_exhaustive()
    }
}

impl PgRefundLedger {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(QueryableByName)]
struct BalanceRow {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    balance: i64,
}

/// How an outcome is kept in `idempotency_keys`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "SCREAMING_SNAKE_CASE")]
enum RecordedOutcome {
    Refunded {
        reservation_id: i64,
        user_id: i64,
        concert_id: i64,
        performance_id: i64,
        seat_no: i32,
        price: i64,
        expires_at: DateTime<Utc>,
    },
    ReservationNotFound {
        reservation_id: i64,
    },
    NotRefundable {
        reservation_id: i64,
    },
}

fn encode(outcome: &RefundOutcome) -> Result<StoredOutcome, Failure> {
    let (kind, recorded) = match outcome {
        Ok(reservation) => (
            "REFUNDED",
            RecordedOutcome::Refunded {
                reservation_id: reservation.id.get(),
                user_id: reservation.user.get(),
                concert_id: reservation.concert.get(),
                performance_id: reservation.performance.get(),
                seat_no: reservation.seat.get(),
                price: reservation.price.get(),
                expires_at: reservation.expires_at,
            },
        ),
        Err(RefundRefusal::ReservationNotFound(id)) => (
            "RESERVATION_NOT_FOUND",
            RecordedOutcome::ReservationNotFound {
                reservation_id: id.get(),
            },
        ),
        Err(RefundRefusal::NotRefundable(id)) => (
            "NOT_REFUNDABLE",
            RecordedOutcome::NotRefundable {
                reservation_id: id.get(),
            },
        ),
    };
    Ok(StoredOutcome {
        outcome: kind.to_string(),
        data: serde_json::to_string(&recorded).map_err(corrupt)?,
    })
}

fn decode(stored: &StoredOutcome) -> Result<RefundOutcome, Failure> {
    let recorded: RecordedOutcome = serde_json::from_str(&stored.data).map_err(corrupt)?;
    Ok(match recorded {
        RecordedOutcome::Refunded {
            reservation_id,
            user_id,
            concert_id,
            performance_id,
            seat_no,
            price,
            expires_at,
        } => Ok(Reservation {
            id: ReservationId::new(reservation_id).map_err(corrupt)?,
            user: UserId::new(user_id).map_err(corrupt)?,
            concert: ConcertId::new(concert_id).map_err(corrupt)?,
            performance: PerformanceId::new(performance_id).map_err(corrupt)?,
            seat: SeatNo::new(seat_no.into()).map_err(corrupt)?,
            price: Won::new(price).map_err(corrupt)?,
            status: ReservationStatus::Refunded,
            expires_at,
        }),
        RecordedOutcome::ReservationNotFound { reservation_id } => {
            Err(RefundRefusal::ReservationNotFound(
                ReservationId::new(reservation_id).map_err(corrupt)?,
            ))
        }
        RecordedOutcome::NotRefundable { reservation_id } => Err(RefundRefusal::NotRefundable(
            ReservationId::new(reservation_id).map_err(corrupt)?,
        )),
    })
}

/// Locks the seat of the reservation (none for an unknown reservation).
async fn lock_seat(connection: &mut AsyncPgConnection, id: ReservationId) -> Result<(), Failure> {
    let of_reservation = reservations::table.filter(reservations::id.eq(id.get()));
    seats::table
        .filter(
            seats::performance_id.nullable().eq(of_reservation
                .select(reservations::performance_id)
                .single_value()),
        )
        .filter(
            seats::seat_no
                .nullable()
                .eq(of_reservation.select(reservations::seat_no).single_value()),
        )
        .select(seats::seat_no)
        .for_update()
        .load::<i32>(connection)
        .await?;
    Ok(())
}

/// The reservation as it stands, read after its seat was locked (so after any change to it
/// committed), with its performance's start and the database's time.
async fn candidate(
    connection: &mut AsyncPgConnection,
    id: ReservationId,
) -> Result<Option<RefundCandidate>, Failure> {
    let row = reservations_with_performance()
        .filter(reservations::id.eq(id.get()))
        .select((
            reservation_columns(),
            performances::starts_at,
            now.into_sql::<Timestamptz>(),
        ))
        .get_result::<(ReservationRow, DateTime<Utc>, DateTime<Utc>)>(connection)
        .await
        .optional()?;
    let Some((reservation, starts_at, read_at)) = row else {
        return Ok(None);
    };
    Ok(Some(RefundCandidate {
        reservation: reservation_from(reservation).map_err(corrupt)?,
        performance_starts_at: starts_at,
        now: read_at,
    }))
}

/// Every check before any write: a refusal leaves everything as it was.
async fn attempt(
    connection: &mut AsyncPgConnection,
    request: RefundRequest,
) -> Result<RefundOutcome, Failure> {
    lock_seat(connection, request.reservation).await?;
    let found = candidate(connection, request.reservation).await?;
    let price = match request.judge(found.as_ref()) {
        Ok(price) => price,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let Some(found) = found else {
        return Ok(Err(RefundRefusal::ReservationNotFound(request.reservation)));
    };
    let reservation = found.reservation;
    diesel::sql_query(REFUND)
        .bind::<BigInt, _>(reservation.id.get())
        .bind::<BigInt, _>(reservation.performance.get())
        .bind::<Integer, _>(reservation.seat.get())
        .bind::<BigInt, _>(price.get())
        .get_result::<BalanceRow>(connection)
        .await
        .optional()?
        // Judged CONFIRMED under the seat's lock: only a bug can get here.
        .ok_or_else(|| corrupt(format!("reservation {} was not refunded", reservation.id)))?;
    Ok(Ok(Reservation {
        status: ReservationStatus::Refunded,
        ..reservation
    }))
}

#[async_trait]
impl RefundLedger for PgRefundLedger {
    async fn refund(
        &self,
        request: RefundRequest,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<RefundAnswer, LedgerError> {
        let mut connection = checkout(&self.pool).await?;
        let answer = connection
            .transaction::<_, Failure, _>(async |tx| {
                if let Some(keyed) = &idempotency {
                    if let Claim::Recorded(stored) = claim(tx, SCOPE, keyed).await? {
                        return Ok(RefundAnswer {
                            outcome: decode(&stored)?,
                            replayed: true,
                        });
                    }
                }
                let outcome = attempt(tx, request).await?;
                if let Some(keyed) = &idempotency {
                    record(tx, SCOPE, keyed, &encode(&outcome)?).await?;
                }
                Ok(RefundAnswer {
                    outcome,
                    replayed: false,
                })
            })
            .await?;
        Ok(answer)
    }
}
