//! [`SeatInventory`] on PostgreSQL. A hold is judged first on a plain read (a taken seat is
//! refused there, in one statement); then one transaction takes the user's lock on the
//! performance and, in one statement, locks the asked seats in seat order, takes the free ones,
//! retires lapsed holds on them, records the reservations and counts what the user had (both
//! pipelined: one round trip). The domain judges the outcome (all or nothing, the limit) and a
//! refusal rolls it all back. Every freedom and expiry is judged by the database's clock.
//!
//! Every statement that touches both locks the seat row before the reservation row, and several
//! seats are locked in (performance, seat) order, so holds, cancellations, payments and the
//! clean-up job cannot deadlock one another.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::{exists, now};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ticketing_domain::ids::{ReservationId, SeatNo};
use ticketing_domain::money::Won;
use ticketing_domain::reservation::{
    CancelOutcome, HoldError, HoldRequest, HoldTtl, Reservation, ReservationQuery,
    ReservationStatus, SeatInventory, SeatLimit,
};
use ticketing_domain::InfrastructureError;

use crate::error::from_diesel;
use crate::pool::{checkout, PgPool};
use crate::reservation_read::{corrupt, reservation_from, reservations_as_read, ReservationRow};
use crate::schema::{performances, reservations, seats, users};
use crate::seat_state::{seat_is_free, seat_is_free_sql, seat_released_sql};

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

/// Takes the asked seats that are free (`$1` performance, `$2` the seats, `$3` hold seconds, `$4`
/// user), retires the lapsed holds on them and records one HELD reservation per seat taken.
/// The seat rows are locked first, in seat order (`locked`), so holds of overlapping seats queue
/// instead of deadlocking; a seat another transaction took meanwhile is re-checked on its new
/// version and not taken. `owned` is what the user held (live) or owned of the performance before
/// this statement, seen after the user's lock was taken by the previous statement. The insert
/// waits for `lapsed` so the partial unique index never sees two HELD reservations for a seat.
/// Each reservation held and each lapsed hold retired writes its event to the outbox.
/// One row per reservation, or one row without a reservation when nothing was taken: the caller
/// lets the domain judge what was taken and `owned`, and rolls everything back on a refusal.
///
/// Every row is reached through a key, whatever the statistics say (docs/holds-benchmark.md has
/// the plans with statistics empty, stale and fresh): the seats through their primary key, the
/// user's count through `reservations_live_by_user_and_performance`, and a lapsed hold through
/// the reservation id its seat stores. No filter on `reservations.status` sits beside that id:
/// with it, a planner without statistics ANDed in a scan of a whole partial index whose
/// predicate the filter implies (every live hold of the table, measured). The seat's own status
/// says the reservation is a hold: a seat is HELD exactly while its reservation is, as every
/// statement changes both together.
///
/// `sql_query`: one statement chaining an ordered lock, three writes (the seats' reservation ids
/// drawn while taking them) and the count through CTEs has no query-builder form; it is the one
/// statement of a hold, whose round trips are counted in docs/holds-benchmark.md.
const HOLD_SEATS: &str = concat!(
    "
WITH locked AS (
    SELECT s.seat_no, s.status, s.reservation_id
      FROM seats s
     WHERE s.performance_id = $1 AND s.seat_no = ANY($2)
     ORDER BY s.seat_no
       FOR UPDATE
), owned AS (
    SELECT count(*) AS owned
      FROM reservations r
     WHERE r.user_id = $4 AND r.performance_id = $1
       AND (r.status = 'CONFIRMED' OR (r.status = 'HELD' AND r.expires_at >= now()))
), taken AS (
    UPDATE seats s
       SET status = 'HELD',
           hold_expires_at = now() + make_interval(secs => $3),
           reservation_id = nextval(pg_get_serial_sequence('reservations', 'id'))
     WHERE s.performance_id = $1 AND s.seat_no = ANY(ARRAY(SELECT seat_no FROM locked))
       AND ",
    seat_is_free_sql!(),
    "
 RETURNING s.reservation_id AS id, s.performance_id, s.seat_no, s.price, s.hold_expires_at
), lapsed AS (
    UPDATE reservations r
       SET status = 'EXPIRED', updated_at = now()
     WHERE r.id = ANY(ARRAY(SELECT locked.reservation_id
                              FROM locked JOIN taken USING (seat_no)
                             WHERE locked.status = 'HELD'))
 RETURNING r.id, r.user_id, r.performance_id, r.seat_no
), expired_events AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no)
    SELECT 'reservation.expired', id, user_id, performance_id, seat_no FROM lapsed
), held AS (
    INSERT INTO reservations (id, user_id, performance_id, seat_no, price, status, expires_at)
    SELECT taken.id, $4, taken.performance_id, taken.seat_no, taken.price, 'HELD', taken.hold_expires_at
      FROM taken
     WHERE (SELECT count(*) FROM lapsed) >= 0
 RETURNING id, user_id, performance_id, seat_no, price, expires_at
), held_events AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no, amount)
    SELECT 'reservation.held', id, user_id, performance_id, seat_no, price FROM held
)
SELECT held.id, held.seat_no, held.price, held.expires_at, owned.owned
  FROM owned LEFT JOIN held ON true"
);

/// Frees the seat of a live hold, then cancels the reservation (`$1` reservation) and writes
/// its event. The reservation is reached by its id, the seat by the key the reservation names.
/// The seat's hold is live when its `hold_expires_at` is not past (the schema ties a non-null
/// `hold_expires_at` to HELD); a filter on the seat's or the reservation's status would let a
/// planner without statistics AND in a partial index on that status, every live hold of the
/// table (docs/holds-benchmark.md), so neither is repeated.
///
/// `sql_query`: the query builder has no data-modifying CTE. As three statements it would need a
/// transaction: five round trips instead of one (counted, not timed; docs/holds-benchmark.md
/// times the same trade for a hold).
const CANCEL_HOLD: &str = concat!(
    "
WITH released AS (
    UPDATE seats s
       SET ",
    seat_released_sql!(),
    "
      FROM reservations r
     WHERE r.id = $1 AND s.performance_id = r.performance_id AND s.seat_no = r.seat_no
       AND s.reservation_id = r.id AND s.hold_expires_at >= now()
 RETURNING r.id
), cancelled AS (
    UPDATE reservations r
       SET status = 'CANCELLED', updated_at = now()
     WHERE r.id = (SELECT id FROM released)
 RETURNING r.id, r.user_id, r.performance_id, r.seat_no
), cancelled_events AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no)
    SELECT 'reservation.cancelled', id, user_id, performance_id, seat_no FROM cancelled
)
SELECT count(*) AS cancelled FROM cancelled"
);

/// Frees up to `$1` lapsed holds, oldest first, skipping seats another transaction is working
/// on, and marks their reservations EXPIRED, each with its `reservation.expired` event: a hold
/// expires once (from HELD), here or when its seat is taken again, so the event is written once.
/// The lapsed seats are found by `seats_held_by_expiry`, their reservations by the ids the seats
/// store (a seat is HELD exactly while its reservation is; no status filter beside the ids, see
/// [`HOLD_SEATS`]), whatever the statistics say (docs/holds-benchmark.md).
///
/// `sql_query`: the query builder has neither a locking, limited sub-select (`FOR UPDATE SKIP
/// LOCKED`) nor a data-modifying CTE. As one statement the sweep holds no transaction open
/// between its writes (a design choice for lock time, not a measured speed-up).
const RELEASE_EXPIRED: &str = concat!(
    "
WITH stale AS (
    SELECT performance_id, seat_no, reservation_id
      FROM seats
     WHERE status = 'HELD' AND hold_expires_at < now()
     ORDER BY hold_expires_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
), released AS (
    UPDATE seats s
       SET ",
    seat_released_sql!(),
    "
      FROM stale
     WHERE s.performance_id = stale.performance_id AND s.seat_no = stale.seat_no
 RETURNING stale.reservation_id
), expired AS (
    UPDATE reservations r
       SET status = 'EXPIRED', updated_at = now()
     WHERE r.id = ANY(ARRAY(SELECT reservation_id FROM released))
 RETURNING r.id, r.user_id, r.performance_id, r.seat_no
), expired_events AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no)
    SELECT 'reservation.expired', id, user_id, performance_id, seat_no FROM expired
)
SELECT count(*) AS released FROM released"
);

#[derive(QueryableByName)]
struct HeldRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
    #[diesel(sql_type = Nullable<Integer>)]
    seat_no: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    price: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = BigInt)]
    owned: i64,
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

/// The asked seats of the performance, if it is the concert's, and whether each is free now by
/// the database's clock; seats that do not exist are simply absent. A plain read, no lock.
async fn seat_states(
    connection: &mut AsyncPgConnection,
    request: &HoldRequest,
) -> Result<Vec<(SeatNo, bool)>, HoldFailure> {
    let asked: Vec<i32> = request.seats.seats().iter().map(|s| s.get()).collect();
    let rows: Vec<(i32, Option<bool>)> = seats::table
        .filter(seats::performance_id.eq(request.performance.get()))
        .filter(seats::seat_no.eq_any(&asked))
        .filter(exists(
            performances::table
                .filter(performances::id.eq(request.performance.get()))
                .filter(performances::concert_id.eq(request.concert.get())),
        ))
        .select((seats::seat_no, seat_is_free()))
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

/// Serialises the holds of one user on one performance until this transaction ends, so that
/// the count of [`HOLD_SEATS`], the next statement, cannot change under it: two concurrent holds
/// of one user take turns, and the second counts the first's seats. Holds take it before any
/// seat lock and nothing else takes it, so it cannot deadlock with seat locks. The schema is
/// part of the key: advisory locks are per database, and stacks (and parallel tests) may share
/// one.
///
/// `sql_query`: an advisory lock is a PostgreSQL function on a key hashed from text, not a
/// table; it is pipelined with [`HOLD_SEATS`] (docs/holds-benchmark.md counts the round trips).
const LOCK_USER_ON_PERFORMANCE: &str = "
SELECT pg_advisory_xact_lock(hashtextextended(
           current_schema() || chr(31) || 'seats-of-user' || chr(31) || $1 || chr(31) || $2, 0))";

/// What [`HOLD_SEATS`] did: the reservations it recorded and what the user had before.
struct Taken {
    held: Vec<Reservation>,
    owned: u64,
}

/// Runs [`HOLD_SEATS`], after the user's lock when there is a limit: both statements are
/// pipelined (one round trip); the server runs them in order, and in READ COMMITTED the second
/// sees every hold of the user committed before the lock was granted.
async fn take_seats(
    connection: &AsyncPgConnection,
    request: &HoldRequest,
    ttl: HoldTtl,
    limit: SeatLimit,
) -> Result<Taken, HoldFailure> {
    let asked: Vec<i32> = request.seats.seats().iter().map(|s| s.get()).collect();
    let mut take_on = connection;
    let take = async {
        diesel::sql_query(HOLD_SEATS)
            .bind::<BigInt, _>(request.performance.get())
            .bind::<Array<Integer>, _>(&asked)
            .bind::<Double, _>(ttl.get().as_secs_f64())
            .bind::<BigInt, _>(request.user.get())
            .load::<HeldRow>(&mut take_on)
            .await
            .map_err(|error| match error {
                DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                    HoldFailure::Refused(HoldError::UserNotFound(request.user))
                }
                other => HoldFailure::Database(other),
            })
    };
    let rows = if limit.get().is_some() {
        let mut lock_on = connection;
        let lock = async {
            diesel::sql_query(LOCK_USER_ON_PERFORMANCE)
                .bind::<Text, _>(request.user.get().to_string())
                .bind::<Text, _>(request.performance.get().to_string())
                .execute(&mut lock_on)
                .await
                .map_err(HoldFailure::from)
        };
        tokio::try_join!(lock, take)?.1
    } else {
        take.await?
    };
    let owned = rows.as_slice().first().map_or(0, |row| row.owned);
    let held = rows
        .into_iter()
        .filter_map(
            |row| match (row.id, row.seat_no, row.price, row.expires_at) {
                (Some(id), Some(seat), Some(price), Some(expires_at)) => {
                    Some((id, seat, price, expires_at))
                }
                _ => None,
            },
        )
        .map(|(id, seat, price, expires_at)| {
            Ok(Reservation {
                id: ReservationId::new(id).map_err(corrupt)?,
                user: request.user,
                concert: request.concert,
                performance: request.performance,
                seat: SeatNo::new(seat.into()).map_err(corrupt)?,
                price: Won::new(price).map_err(corrupt)?,
                status: ReservationStatus::Held,
                expires_at,
            })
        })
        .collect::<Result<Vec<_>, InfrastructureError>>()?;
    Ok(Taken {
        held,
        owned: u64::try_from(owned).unwrap_or(u64::MAX),
    })
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

#[async_trait]
impl SeatInventory for PgSeatInventory {
    async fn hold(
        &self,
        request: HoldRequest,
        ttl: HoldTtl,
        limit: SeatLimit,
    ) -> Result<Vec<Reservation>, HoldError> {
        let mut connection = checkout(&self.pool).await?;
        let refused = |failure: HoldFailure| match failure {
            HoldFailure::Refused(error) => error,
            HoldFailure::Database(error) => HoldError::Infrastructure(from_diesel(error)),
        };
        // Most attempts in a rush ask for a taken seat: they are refused here, by one plain
        // read, without a transaction or a lock. A seat taken in that statement's snapshot was
        // taken when it ran, so the "no" is as true as one given under lock; only a "yes" needs
        // the transaction. A missing seat stays missing (seats are never deleted).
        let seen = seat_states(&mut connection, &request)
            .await
            .map_err(refused)?;
        request
            .seats
            .judge(&seen)
            .map_err(|refusal| request.refused(refusal))?;
        connection
            .transaction::<_, HoldFailure, _>(async |tx| {
                let taken = take_seats(tx, &request, ttl, limit).await?;
                // All or nothing, then the limit: a refusal rolls back what was taken.
                let found: Vec<(SeatNo, bool)> = request
                    .seats
                    .seats()
                    .iter()
                    .map(|seat| (*seat, taken.held.iter().any(|r| r.seat == *seat)))
                    .collect();
                request
                    .seats
                    .judge(&found)
                    .map_err(|refusal| HoldFailure::Refused(request.refused(refusal)))?;
                if let Some(max) = limit.get() {
                    if !limit.admits(taken.owned, request.seats.len()) {
                        return Err(HoldFailure::Refused(HoldError::SeatLimitReached {
                            user: request.user,
                            performance: request.performance,
                            limit: max.get(),
                        }));
                    }
                }
                Ok(request.seats.in_asked_order(taken.held))
            })
            .await
            .map_err(refused)
    }

    async fn find(&self, id: ReservationId) -> Result<Option<Reservation>, InfrastructureError> {
        let mut connection = checkout(&self.pool).await?;
        reservations_as_read()
            .filter(reservations::id.eq(id.get()))
            .get_result::<ReservationRow>(&mut connection)
            .await
            .optional()
            .map_err(from_diesel)?
            .map(reservation_from)
            .transpose()
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
        let status = reservations::table
            .find(id.get())
            .select(reservations::status)
            .get_result::<String>(&mut connection)
            .await
            .optional()
            .map_err(from_diesel)?;
        Ok(match status.as_deref() {
            Some("CONFIRMED") => CancelOutcome::Confirmed,
            Some(_) => CancelOutcome::AlreadyReleased,
            None => CancelOutcome::NotFound,
        })
    }

    async fn list(
        &self,
        query: ReservationQuery,
        count: u32,
    ) -> Result<Option<Vec<Reservation>>, InfrastructureError> {
        let mut connection = checkout(&self.pool).await?;
        let lapsed = reservations::expires_at.lt(now);
        let live_hold = reservations::status
            .eq("HELD")
            .and(reservations::expires_at.ge(now));
        let mut listed = reservations_as_read()
            .filter(reservations::user_id.eq(query.user.get()))
            .order(reservations::id.desc())
            .limit(i64::from(count))
            .into_boxed();
        if let Some(before) = query.before {
            listed = listed.filter(reservations::id.lt(before.get()));
        }
        // The filter sees statuses as they are reported: a lapsed hold is EXPIRED.
        listed = match query.status {
            None => listed,
            Some(ReservationStatus::Held) => listed.filter(live_hold),
            Some(ReservationStatus::Expired) => listed.filter(
                reservations::status
                    .eq("EXPIRED")
                    .or(reservations::status.eq("HELD").and(lapsed)),
            ),
            Some(other) => listed.filter(reservations::status.eq(other.as_str())),
        };
        let rows: Vec<ReservationRow> = listed.load(&mut connection).await.map_err(from_diesel)?;
        if rows.is_empty() {
            let known = diesel::select(exists(users::table.filter(users::id.eq(query.user.get()))))
                .get_result::<bool>(&mut connection)
                .await
                .map_err(from_diesel)?;
            if !known {
                return Ok(None);
            }
        }
        rows.into_iter()
            .map(reservation_from)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
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
