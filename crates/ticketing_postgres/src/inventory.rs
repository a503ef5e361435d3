//! [`SeatInventory`] on PostgreSQL: a hold is one transaction that locks the asked seats in
//! seat order, lets the domain judge them (all or nothing) and then takes every one of them,
//! retiring lapsed holds and recording the reservations in one statement, judged by the
//! database's clock.
//!
//! Every statement that touches both locks the seat row before the reservation row, and several
//! seats are locked in (performance, seat) order, so holds, cancellations, payments and the
//! clean-up job cannot deadlock one another.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::{exists, now};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Array, BigInt, Double, Integer, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ticketing_domain::ids::{ConcertId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::money::Won;
use ticketing_domain::reservation::{
    CancelOutcome, HoldError, HoldRequest, HoldTtl, Reservation, ReservationStatus, SeatInventory,
};
use ticketing_domain::InfrastructureError;

use crate::error::from_diesel;
use crate::pool::{checkout, PgPool};
use crate::schema::{performances, seats};

/// The seats and reservations stored in PostgreSQL.
#[derive(Clone)]
pub struct PgSeatInventory {
    pool: PgPool,
}

impl std::fmt::Debug for PgSeatInventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSeatInventory").finish_non_exhaustive()
    }
}

impl PgSeatInventory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// The single-statement hold of v1, before several seats and per-user limits: takes the seat if
/// it is free or its hold lapsed (`$1` concert, `$2` performance, `$3` seat, `$4` user, `$5`
/// hold seconds). The adapter no longer runs it (a limit cannot be enforced in one statement
/// under races, see [`HOLD_SEATS`]); `examples/hold_bench.rs` keeps it as the database's ceiling.
pub const HOLD_SEAT: &str = "
WITH taken AS (
    UPDATE seats s
       SET status = 'HELD',
           hold_expires_at = now() + make_interval(secs => $5),
           reservation_id = nextval(pg_get_serial_sequence('reservations', 'id'))
      FROM performances p
     WHERE s.performance_id = $2 AND s.seat_no = $3
       AND p.id = s.performance_id AND p.concert_id = $1
       AND (s.status = 'AVAILABLE' OR (s.status = 'HELD' AND s.hold_expires_at < now()))
 RETURNING s.reservation_id AS id, s.performance_id, s.seat_no, s.price, s.hold_expires_at
), lapsed AS (
    UPDATE reservations r
       SET status = 'EXPIRED', updated_at = now()
      FROM taken
     WHERE r.performance_id = taken.performance_id AND r.seat_no = taken.seat_no
       AND r.status = 'HELD'
 RETURNING r.id
), held AS (
    INSERT INTO reservations (id, user_id, performance_id, seat_no, price, status, expires_at)
    SELECT taken.id, $4, taken.performance_id, taken.seat_no, taken.price, 'HELD', taken.hold_expires_at
      FROM taken
     WHERE (SELECT count(*) FROM lapsed) >= 0
 RETURNING id, price, expires_at
)
SELECT held.id, held.price, held.expires_at,
       EXISTS (SELECT 1 FROM seats s JOIN performances p ON p.id = s.performance_id
                WHERE s.performance_id = $2 AND s.seat_no = $3 AND p.concert_id = $1) AS seat_exists
  FROM (SELECT 1) AS one LEFT JOIN held ON true";

/// Takes seats that this transaction has locked and found free (`$1` performance, `$2` the
/// seats, `$3` hold seconds, `$4` user), retires the lapsed holds on them and records one HELD
/// reservation per seat. The insert waits for `lapsed` so the partial unique index never sees
/// two HELD reservations for a seat. The freedom test is repeated as a guard: the caller checks
/// that every seat was taken.
///
/// `sql_query`: one statement chaining three writes through CTEs (the seats' new reservation
/// ids drawn while taking them) has no query-builder form; measured in docs/holds-benchmark.md.
const HOLD_SEATS: &str = "
WITH taken AS (
    UPDATE seats s
       SET status = 'HELD',
           hold_expires_at = now() + make_interval(secs => $3),
           reservation_id = nextval(pg_get_serial_sequence('reservations', 'id'))
     WHERE s.performance_id = $1 AND s.seat_no = ANY($2)
       AND (s.status = 'AVAILABLE' OR (s.status = 'HELD' AND s.hold_expires_at < now()))
 RETURNING s.reservation_id AS id, s.performance_id, s.seat_no, s.price, s.hold_expires_at
), lapsed AS (
    UPDATE reservations r
       SET status = 'EXPIRED', updated_at = now()
      FROM taken
     WHERE r.performance_id = taken.performance_id AND r.seat_no = taken.seat_no
       AND r.status = 'HELD'
 RETURNING r.id
)
INSERT INTO reservations (id, user_id, performance_id, seat_no, price, status, expires_at)
SELECT taken.id, $4, taken.performance_id, taken.seat_no, taken.price, 'HELD', taken.hold_expires_at
  FROM taken
 WHERE (SELECT count(*) FROM lapsed) >= 0
RETURNING id, seat_no, price, expires_at";

const FIND_RESERVATION: &str = "
SELECT r.id, r.user_id, p.concert_id, r.performance_id, r.seat_no, r.price,
       CASE WHEN r.status = 'HELD' AND r.expires_at < now() THEN 'EXPIRED' ELSE r.status END AS status,
       r.expires_at
  FROM reservations r
  JOIN performances p ON p.id = r.performance_id
 WHERE r.id = $1";

/// Frees the seat of a live hold, then cancels the reservation (`$1` reservation).
const CANCEL_HOLD: &str = "
WITH released AS (
    UPDATE seats s
       SET status = 'AVAILABLE', hold_expires_at = NULL, reservation_id = NULL
      FROM reservations r
     WHERE r.id = $1 AND s.performance_id = r.performance_id AND s.seat_no = r.seat_no
       AND s.reservation_id = r.id AND s.status = 'HELD' AND s.hold_expires_at >= now()
 RETURNING r.id
), cancelled AS (
    UPDATE reservations r
       SET status = 'CANCELLED', updated_at = now()
      FROM released
     WHERE r.id = released.id AND r.status = 'HELD'
 RETURNING r.id
)
SELECT count(*) AS cancelled FROM cancelled";

const RESERVATION_STATUS: &str = "SELECT status FROM reservations WHERE id = $1";

/// Frees up to `$1` lapsed holds, oldest first, skipping seats another transaction is working
/// on, and marks their reservations EXPIRED.
const RELEASE_EXPIRED: &str = "
WITH stale AS (
    SELECT performance_id, seat_no, reservation_id
      FROM seats
     WHERE status = 'HELD' AND hold_expires_at < now()
     ORDER BY hold_expires_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), released AS (
    UPDATE seats s
       SET status = 'AVAILABLE', hold_expires_at = NULL, reservation_id = NULL
      FROM stale
     WHERE s.performance_id = stale.performance_id AND s.seat_no = stale.seat_no
 RETURNING stale.reservation_id
), expired AS (
    UPDATE reservations r
       SET status = 'EXPIRED', updated_at = now()
      FROM released
     WHERE r.id = released.reservation_id AND r.status = 'HELD'
 RETURNING r.id
)
SELECT count(*) AS released FROM released";

#[derive(QueryableByName)]
struct HeldRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Integer)]
    seat_no: i32,
    #[diesel(sql_type = BigInt)]
    price: i64,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
}

/// Why a hold transaction stopped: a refusal to answer (everything rolled back), or a failure.
#[derive(Debug)]
enum HoldFailure {
    Refused(HoldError),
    Database(DieselError),
}

impl From<DieselError> for HoldFailure {
    fn from(error: DieselError) -> Self {
        HoldFailure::Database(error)
    }
}

impl From<InfrastructureError> for HoldFailure {
    fn from(error: InfrastructureError) -> Self {
        HoldFailure::Refused(HoldError::Infrastructure(error))
    }
}

/// Locks the asked seats of the performance, if it is the concert's, in seat order (so that
/// holds of overlapping seats queue instead of deadlocking), and tells which are free now by
/// the database's clock. Seats that do not exist are simply absent.
async fn lock_seats(
    connection: &mut AsyncPgConnection,
    request: &HoldRequest,
) -> Result<Vec<(SeatNo, bool)>, HoldFailure> {
    let asked: Vec<i32> = request.seats.seats().iter().map(|s| s.get()).collect();
    let free = seats::status.eq("AVAILABLE").nullable().or(seats::status
        .eq("HELD")
        .nullable()
        .and(seats::hold_expires_at.lt(now)));
    let rows: Vec<(i32, Option<bool>)> = seats::table
        .filter(seats::performance_id.eq(request.performance.get()))
        .filter(seats::seat_no.eq_any(&asked))
        .filter(exists(
            performances::table
                .filter(performances::id.eq(request.performance.get()))
                .filter(performances::concert_id.eq(request.concert.get())),
        ))
        .order(seats::seat_no)
        .select((seats::seat_no, free))
        .for_update()
        .load(connection)
        .await?;
    rows.into_iter()
        .map(|(seat, free)| {
            SeatNo::new(seat.into())
                .map(|seat| (seat, free == Some(true)))
                .map_err(|e| corrupt(e).into())
        })
        .collect()
}

/// Takes the locked, free seats and records their reservations, in the order asked.
async fn take_seats(
    connection: &mut AsyncPgConnection,
    request: &HoldRequest,
    ttl: HoldTtl,
) -> Result<Vec<Reservation>, HoldFailure> {
    let asked: Vec<i32> = request.seats.seats().iter().map(|s| s.get()).collect();
    let rows = diesel::sql_query(HOLD_SEATS)
        .bind::<BigInt, _>(request.performance.get())
        .bind::<Array<Integer>, _>(&asked)
        .bind::<Double, _>(ttl.get().as_secs_f64())
        .bind::<BigInt, _>(request.user.get())
        .load::<HeldRow>(connection)
        .await
        .map_err(|error| match error {
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                HoldFailure::Refused(HoldError::UserNotFound(request.user))
            }
            other => HoldFailure::Database(other),
        })?;
    if rows.len() != asked.len() {
        // The seats are locked and were free: only a bug can get here.
        return Err(InfrastructureError::Unexpected(format!(
            "took {} of {} locked free seats",
            rows.len(),
            asked.len()
        ))
        .into());
    }
    let held = rows
        .into_iter()
        .map(|row| {
            Ok(Reservation {
                id: ReservationId::new(row.id).map_err(corrupt)?,
                user: request.user,
                concert: request.concert,
                performance: request.performance,
                seat: SeatNo::new(row.seat_no.into()).map_err(corrupt)?,
                price: Won::new(row.price).map_err(corrupt)?,
                status: ReservationStatus::Held,
                expires_at: row.expires_at,
            })
        })
        .collect::<Result<Vec<_>, InfrastructureError>>()?;
    Ok(request.seats.in_asked_order(held))
}

#[derive(QueryableByName)]
struct ReservationRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    user_id: i64,
    #[diesel(sql_type = BigInt)]
    concert_id: i64,
    #[diesel(sql_type = BigInt)]
    performance_id: i64,
    #[diesel(sql_type = Integer)]
    seat_no: i32,
    #[diesel(sql_type = BigInt)]
    price: i64,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    #[diesel(column_name = cancelled)]
    count: i64,
}

#[derive(QueryableByName)]
struct ReleasedRow {
    #[diesel(sql_type = BigInt)]
    released: i64,
}

#[derive(QueryableByName)]
struct StatusRow {
    #[diesel(sql_type = Text)]
    status: String,
}

fn corrupt(what: impl std::fmt::Display) -> InfrastructureError {
    InfrastructureError::Unexpected(format!("stored reservation data is invalid: {what}"))
}

impl TryFrom<ReservationRow> for Reservation {
    type Error = InfrastructureError;
    fn try_from(row: ReservationRow) -> Result<Self, Self::Error> {
        Ok(Reservation {
            id: ReservationId::new(row.id).map_err(corrupt)?,
            user: UserId::new(row.user_id).map_err(corrupt)?,
            concert: ConcertId::new(row.concert_id).map_err(corrupt)?,
            performance: PerformanceId::new(row.performance_id).map_err(corrupt)?,
            seat: SeatNo::new(row.seat_no.into()).map_err(corrupt)?,
            price: Won::new(row.price).map_err(corrupt)?,
            status: ReservationStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("status {}", row.status)))?,
            expires_at: row.expires_at,
        })
    }
}

#[async_trait]
impl SeatInventory for PgSeatInventory {
    async fn hold(
        &self,
        request: HoldRequest,
        ttl: HoldTtl,
    ) -> Result<Vec<Reservation>, HoldError> {
        let mut connection = checkout(&self.pool).await?;
        let held = connection
            .transaction::<_, HoldFailure, _>(async |tx| {
                let found = lock_seats(tx, &request).await?;
                request
                    .seats
                    .judge(&found)
                    .map_err(|refusal| HoldFailure::Refused(request.refused(refusal)))?;
                take_seats(tx, &request, ttl).await
            })
            .await;
        held.map_err(|failure| match failure {
            HoldFailure::Refused(error) => error,
            HoldFailure::Database(error) => HoldError::Infrastructure(from_diesel(error)),
        })
    }

    async fn find(&self, id: ReservationId) -> Result<Option<Reservation>, InfrastructureError> {
        let mut connection = checkout(&self.pool).await?;
        let row = diesel::sql_query(FIND_RESERVATION)
            .bind::<BigInt, _>(id.get())
            .get_result::<ReservationRow>(&mut connection)
            .await;
        match row {
            Ok(row) => Reservation::try_from(row).map(Some),
            Err(DieselError::NotFound) => Ok(None),
            Err(error) => Err(from_diesel(error)),
        }
    }

    async fn cancel(&self, id: ReservationId) -> Result<CancelOutcome, InfrastructureError> {
        let mut connection = checkout(&self.pool).await?;
        let cancelled = diesel::sql_query(CANCEL_HOLD)
            .bind::<BigInt, _>(id.get())
            .get_result::<CountRow>(&mut connection)
            .await
            .map_err(from_diesel)?;
        if cancelled.count > 0 {
            return Ok(CancelOutcome::Cancelled);
        }
        // Read again, after any concurrent payment committed: its outcome decides the answer.
        let status = diesel::sql_query(RESERVATION_STATUS)
            .bind::<BigInt, _>(id.get())
            .get_result::<StatusRow>(&mut connection)
            .await;
        match status {
            Ok(row) if row.status == "CONFIRMED" => Ok(CancelOutcome::Confirmed),
            Ok(_) => Ok(CancelOutcome::AlreadyReleased),
            Err(DieselError::NotFound) => Ok(CancelOutcome::NotFound),
            Err(error) => Err(from_diesel(error)),
        }
    }

    async fn release_expired(&self, batch: u32) -> Result<u64, InfrastructureError> {
        let mut connection = checkout(&self.pool).await?;
        let row = diesel::sql_query(RELEASE_EXPIRED)
            .bind::<BigInt, _>(i64::from(batch))
            .get_result::<ReleasedRow>(&mut connection)
            .await
            .map_err(from_diesel)?;
        Ok(u64::try_from(row.released).unwrap_or(0))
    }
}
