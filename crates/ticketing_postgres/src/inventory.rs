//! [`SeatInventory`] on PostgreSQL. Holds go through the combiner of [`crate::hold_combiner`]:
//! the concurrent holds of an instance are judged and written in one transaction per batch, each
//! request still getting its own answer (a single hold is a batch of one). Every freedom and
//! expiry is judged by the database's clock.
//!
//! Every statement that touches both locks the seat row before the reservation row, and several
//! seats are locked in (performance, seat) order, so holds, cancellations, payments and the
//! clean-up job cannot deadlock one another.

use std::sync::Arc;

use async_trait::async_trait;
use diesel::dsl::{exists, now};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use ticketing_domain::ids::ReservationId;
use ticketing_domain::reservation::{
    CancelOutcome, HoldError, HoldRequest, HoldTtl, Reservation, ReservationQuery,
    ReservationStatus, SeatInventory, SeatLimit,
};
use ticketing_domain::InfrastructureError;

use crate::error::from_diesel;
use crate::hold_combiner::{Combiner, CombinerSettings};
use crate::pool::{checkout, PgPool};
use crate::reservation_read::{reservation_from, reservations_as_read, ReservationRow};
use crate::schema::{reservations, users};
use crate::seat_state::seat_released_sql;

/// The seats and reservations stored in PostgreSQL.
#[derive(Clone)]
pub struct PgSeatInventory {
    pool: PgPool,
    combiner: Arc<Combiner>,
}

impl std::fmt::Debug for PgSeatInventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSeatInventory").finish_non_exhaustive()
    }
}

impl PgSeatInventory {
    /// Holds combined with [`CombinerSettings::default`].
    pub fn new(pool: PgPool) -> Self {
        Self::with_combiner(pool, CombinerSettings::default())
    }

    /// Holds combined as `settings` say (see [`crate::hold_combiner`]).
    pub fn with_combiner(pool: PgPool, settings: CombinerSettings) -> Self {
        Self {
            combiner: Arc::new(Combiner::new(pool.clone(), settings)),
            pool,
        }
    }
}

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
/// [`crate::hold_combiner`]), whatever the statistics say (docs/holds-benchmark.md).
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
        self.combiner.hold(request, ttl, limit).await
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
