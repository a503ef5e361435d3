//! [`EventOutbox`] on PostgreSQL: the `outbox_events` table that every change writes its event
//! to, in its own statement, and the relay step that publishes them.
//!
//! A step takes a lease on the oldest unsent rows that nobody holds, in one statement (`FOR UPDATE
//! SKIP LOCKED` in it, so relays of several instances never claim the same row and never wait
//! for each other), reads the unsent rows of the same reservations and users that it did not
//! claim, lets the domain keep what may be published without overtaking them, publishes that,
//! marks it sent and gives the rest back. No transaction stays open while the stream is called:
//! a relay that hangs or dies holds no lock, and its lease lapses after [`LEASE`]. If publishing
//! fails, the rows are given back unsent, so nothing is lost while the stream is away; if marking
//! them sent fails, they are published again later with the same ids (at least once).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use ticketing_domain::events::{
    publishable, Event, EventOutbox, EventPublisher, EventType, RelayReport,
};
use ticketing_domain::ids::{EventId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::money::Won;
use ticketing_domain::InfrastructureError;

use crate::error::from_diesel;
use crate::pool::{checkout, PgPool};
use crate::schema::outbox_events;
use crate::time::interval;

/// How long a claim keeps other relays off its rows: far longer than publishing one batch
/// may take (the Redis command timeout), so only a dead or stuck relay's rows are claimed again.
pub const LEASE: Duration = Duration::from_secs(30);

/// Takes a lease on up to `$1` unsent rows nobody holds, oldest first, for `$2` seconds, under a
/// claim number of its own (this statement's transaction id), and answers them. Rows another
/// relay is claiming in this very instant are skipped, not waited for.
///
/// The rows are read from the oldest unsent one on, found first by walking
/// `outbox_events_unsent` from its start (one row, an ordered index scan whatever the
/// statistics say; it marks the entries of sent events dead as it passes them): with stale
/// statistics the planner otherwise read the whole index as a bitmap, every entry of every
/// event sent since the last vacuum, each claim (docs/holds-benchmark.md).
///
/// `sql_query`: the query builder cannot put a locking clause in a sub-select. As one statement
/// no transaction is held open while the stream is called (a design choice for lock time, not a
/// measured speed-up).
const CLAIM: &str = "
UPDATE outbox_events o
   SET claim = pg_current_xact_id()::text::bigint,
       claimed_until = now() + make_interval(secs => $2)
 WHERE o.id IN (
       SELECT id FROM outbox_events
        WHERE sent_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
          AND id >= (SELECT oldest.id FROM outbox_events oldest
                      WHERE oldest.sent_at IS NULL ORDER BY oldest.id LIMIT 1)
        ORDER BY id
        LIMIT $1
          FOR UPDATE SKIP LOCKED)
RETURNING o.id, o.type AS kind, o.occurred_at, o.reservation_id, o.user_id, o.performance_id,
          o.seat_no, o.amount, o.balance, o.claim";

/// The events recorded in PostgreSQL.
#[derive(Clone)]
pub struct PgEventOutbox {
    pool: PgPool,
}

impl std::fmt::Debug for PgEventOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEventOutbox").finish_non_exhaustive()
    }
}

impl PgEventOutbox {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = outbox_events)]
#[diesel(check_for_backend(diesel::pg::Pg))]
struct EventRow {
    id: i64,
    #[diesel(column_name = type_)]
    kind: String,
    occurred_at: DateTime<Utc>,
    reservation_id: Option<i64>,
    user_id: Option<i64>,
    performance_id: Option<i64>,
    seat_no: Option<i32>,
    amount: Option<i64>,
    balance: Option<i64>,
}

/// A row [`CLAIM`] answers: the event and the claim it is now under.
#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Timestamptz)]
    occurred_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<BigInt>)]
    reservation_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    user_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    performance_id: Option<i64>,
    #[diesel(sql_type = Nullable<Integer>)]
    seat_no: Option<i32>,
    #[diesel(sql_type = Nullable<BigInt>)]
    amount: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    balance: Option<i64>,
    #[diesel(sql_type = BigInt)]
    claim: i64,
}

impl From<ClaimedRow> for EventRow {
    fn from(row: ClaimedRow) -> Self {
        EventRow {
            id: row.id,
            kind: row.kind,
            occurred_at: row.occurred_at,
            reservation_id: row.reservation_id,
            user_id: row.user_id,
            performance_id: row.performance_id,
            seat_no: row.seat_no,
            amount: row.amount,
            balance: row.balance,
        }
    }
}

fn corrupt(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> InfrastructureError {
    crate::error::corrupt("event", cause)
}

impl TryFrom<EventRow> for Event {
    type Error = InfrastructureError;
    fn try_from(row: EventRow) -> Result<Self, Self::Error> {
        Ok(Event {
            id: EventId::new(row.id).map_err(corrupt)?,
            kind: EventType::parse(&row.kind)
                .ok_or_else(|| corrupt(format!("event type {:?}", row.kind)))?,
            occurred_at: row.occurred_at,
            reservation: row
                .reservation_id
                .map(ReservationId::new)
                .transpose()
                .map_err(corrupt)?,
            user: row.user_id.map(UserId::new).transpose().map_err(corrupt)?,
            performance: row
                .performance_id
                .map(PerformanceId::new)
                .transpose()
                .map_err(corrupt)?,
            seat: row
                .seat_no
                .map(|seat| SeatNo::new(seat.into()))
                .transpose()
                .map_err(corrupt)?,
            amount: row.amount.map(Won::new).transpose().map_err(corrupt)?,
            balance: row.balance.map(Won::new).transpose().map_err(corrupt)?,
        })
    }
}

fn events(rows: Vec<EventRow>) -> Result<Vec<Event>, InfrastructureError> {
    rows.into_iter().map(Event::try_from).collect()
}

/// The unsent events of the claimed events' reservations and users, older than the newest
/// claimed one, that this step did not claim: another relay holds them, or they are not yet
/// claimed. A claimed event must not overtake one of them.
///
/// None is older than the oldest unsent event, so the read starts there: it reads the events in
/// flight, not the history of every user named (the entries of events already sent stay in the
/// index until a vacuum, and a bitmap scan never marks them dead). The oldest unsent event is
/// found as the claim finds it.
async fn unsent_elsewhere(
    connection: &mut AsyncPgConnection,
    claimed: &[Event],
) -> Result<Vec<Event>, InfrastructureError> {
    let Some(newest) = claimed.iter().map(|event| event.id.get()).max() else {
        return Ok(Vec::new());
    };
    let ids: Vec<i64> = claimed.iter().map(|event| event.id.get()).collect();
    let reservations: Vec<i64> = claimed
        .iter()
        .filter_map(|event| event.reservation.map(ReservationId::get))
        .collect();
    let users: Vec<i64> = claimed
        .iter()
        .filter_map(|event| event.user.map(UserId::get))
        .collect();
    let unsent = diesel::alias!(outbox_events as unsent);
    let oldest_unsent = unsent
        .filter(unsent.field(outbox_events::sent_at).is_null())
        .order(unsent.field(outbox_events::id))
        .select(unsent.field(outbox_events::id))
        .limit(1)
        .single_value();
    let rows = outbox_events::table
        .filter(outbox_events::sent_at.is_null())
        .filter(outbox_events::id.nullable().ge(oldest_unsent))
        .filter(outbox_events::id.lt(newest))
        .filter(outbox_events::id.ne_all(&ids))
        .filter(
            outbox_events::reservation_id
                .assume_not_null()
                .eq_any(&reservations)
                .or(outbox_events::user_id.assume_not_null().eq_any(&users)),
        )
        .select(EventRow::as_select())
        .load(connection)
        .await
        .map_err(from_diesel)?;
    events(rows)
}

/// Gives claimed rows back (still unsent) if the claim is still this step's.
async fn give_back(
    connection: &mut AsyncPgConnection,
    ids: &[i64],
    claim: i64,
) -> Result<(), InfrastructureError> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::update(
        outbox_events::table
            .filter(outbox_events::id.eq_any(ids))
            .filter(outbox_events::claim.eq(claim))
            .filter(outbox_events::sent_at.is_null()),
    )
    .set((
        outbox_events::claim.eq(None::<i64>),
        outbox_events::claimed_until.eq(None::<DateTime<Utc>>),
    ))
    .execute(connection)
    .await
    .map(drop)
    .map_err(from_diesel)
}

#[async_trait]
impl EventOutbox for PgEventOutbox {
    async fn relay(
        &self,
        batch: u32,
        publisher: Arc<dyn EventPublisher>,
    ) -> Result<RelayReport, InfrastructureError> {
        let mut connection = checkout(&self.pool).await?;
        let rows = diesel::sql_query(CLAIM)
            .bind::<BigInt, _>(i64::from(batch))
            .bind::<Double, _>(LEASE.as_secs_f64())
            .load::<ClaimedRow>(&mut connection)
            .await
            .map_err(from_diesel)?;
        let Some(claim) = rows.as_slice().first().map(|row| row.claim) else {
            return Ok(RelayReport::default());
        };
        let mut claimed = events(rows.into_iter().map(EventRow::from).collect())?;
        claimed.sort_by_key(|event| event.id);
        let claimed_ids: Vec<i64> = claimed.iter().map(|event| event.id.get()).collect();
        let held_back = match unsent_elsewhere(&mut connection, &claimed).await {
            Ok(held_back) => held_back,
            Err(error) => {
                let _ = give_back(&mut connection, &claimed_ids, claim).await;
                return Err(error);
            }
        };
        let claimed_count = claimed.len();
        let ready = publishable(claimed, &held_back);
        let ready_ids: Vec<i64> = ready.iter().map(|event| event.id.get()).collect();
        let waiting: Vec<i64> = claimed_ids
            .iter()
            .copied()
            .filter(|id| !ready_ids.contains(id))
            .collect();
        if !ready.is_empty() {
            if let Err(error) = publisher.publish(&ready).await {
                // Unsent, for the next step (or whoever claims them first).
                let _ = give_back(&mut connection, &claimed_ids, claim).await;
                return Err(error);
            }
            diesel::update(outbox_events::table.filter(outbox_events::id.eq_any(&ready_ids)))
                .set((
                    outbox_events::sent_at.eq(now),
                    outbox_events::claim.eq(None::<i64>),
                    outbox_events::claimed_until.eq(None::<DateTime<Utc>>),
                ))
                .execute(&mut connection)
                .await
                .map_err(from_diesel)?;
        }
        give_back(&mut connection, &waiting, claim).await?;
        Ok(RelayReport {
            claimed: claimed_count,
            published: ready.len(),
        })
    }

    async fn forget_sent_older_than(&self, age: Duration) -> Result<u64, InfrastructureError> {
        let mut connection = checkout(&self.pool).await?;
        let forgotten = diesel::delete(
            outbox_events::table
                .filter(outbox_events::sent_at.is_not_null())
                .filter(
                    outbox_events::sent_at
                        .assume_not_null()
                        .lt(now.into_sql::<Timestamptz>() - interval(age)),
                ),
        )
        .execute(&mut connection)
        .await
        .map_err(from_diesel)?;
        Ok(u64::try_from(forgotten).unwrap_or(0))
    }
}
