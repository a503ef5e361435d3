//! [`RoomRepository`] on PostgreSQL: a row per room, a row per performance it covers.

use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, RunQueryDsl};
use ticketing_domain::ids::PerformanceId;
use ticketing_domain::queue::LineSettings;
use ticketing_domain::rooms::{
    ChallengeDifficulty, Room, RoomEntry, RoomError, RoomId, RoomMode, RoomName, RoomRepository,
};
use ticketing_domain::InfrastructureError;

use crate::error::{corrupt, from_diesel};
use crate::pool::{checkout, PgPool};
use crate::schema::{performances, room_performances, rooms};

/// The rooms stored in PostgreSQL.
#[derive(Clone)]
pub struct PgRoomRepository {
    pool: PgPool,
}

impl std::fmt::Debug for PgRoomRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRoomRepository").finish_non_exhaustive()
    }
}

impl PgRoomRepository {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = rooms)]
struct RoomRow {
    id: String,
    name: String,
    mode: String,
    entry: String,
    closes_at: Option<DateTime<Utc>>,
    challenge_difficulty: i32,
    paused: Option<bool>,
    admit_per_second: Option<i32>,
    max_active: Option<i32>,
    active_ttl_seconds: Option<i32>,
    opens_at: Option<DateTime<Utc>>,
    version: i64,
}

#[derive(Insertable, AsChangeset)]
#[diesel(table_name = rooms, treat_none_as_null = true)]
struct RoomValues<'a> {
    name: &'a str,
    mode: &'a str,
    entry: &'a str,
    closes_at: Option<DateTime<Utc>>,
    challenge_difficulty: i32,
    paused: Option<bool>,
    admit_per_second: Option<i32>,
    max_active: Option<i32>,
    active_ttl_seconds: Option<i32>,
    opens_at: Option<DateTime<Utc>>,
    version: i64,
}

fn values(room: &Room) -> RoomValues<'_> {
    let line = room.line.as_ref();
    let int = |value: u64| i32::try_from(value).unwrap_or(i32::MAX);
    RoomValues {
        name: room.name.as_str(),
        mode: room.mode.as_str(),
        entry: room.entry.as_str(),
        closes_at: room.closes_at,
        challenge_difficulty: int(u64::from(room.challenge_difficulty.get())),
        paused: line.map(|l| l.paused),
        admit_per_second: line.map(|l| int(u64::from(l.admit_per_second.get()))),
        max_active: line.map(|l| int(u64::from(l.max_active.get()))),
        active_ttl_seconds: line.map(|l| int(l.active_ttl.as_secs())),
        opens_at: line.and_then(|l| l.opens_at),
        version: room.version,
    }
}

fn room_of(row: RoomRow, performances: Vec<PerformanceId>) -> Result<Room, InfrastructureError> {
    let invalid = |what: String| corrupt("room", what);
    let positive = |value: Option<i32>, what: &str| {
        value
            .and_then(|v| u32::try_from(v).ok())
            .and_then(NonZeroU32::new)
            .ok_or_else(|| invalid(format!("{what} {value:?} of room {}", row.id)))
    };
    let line = match row.paused {
        None => None,
        Some(paused) => Some(LineSettings {
            paused,
            admit_per_second: positive(row.admit_per_second, "admit_per_second")?,
            max_active: positive(row.max_active, "max_active")?,
            active_ttl: Duration::from_secs(u64::from(
                positive(row.active_ttl_seconds, "active_ttl_seconds")?.get(),
            )),
            opens_at: row.opens_at,
        }),
    };
    Ok(Room {
        id: RoomId::parse(&row.id).map_err(|e| invalid(e.to_string()))?,
        name: RoomName::new(&row.name).map_err(|e| invalid(e.0))?,
        performances,
        mode: RoomMode::parse(&row.mode).map_err(|e| invalid(e.0))?,
        entry: RoomEntry::parse(&row.entry).map_err(|e| invalid(e.0))?,
        closes_at: row.closes_at,
        challenge_difficulty: ChallengeDifficulty::new(i64::from(row.challenge_difficulty))
            .map_err(|e| invalid(e.0))?,
        line,
        version: row.version,
    })
}

/// Why a write was refused, as the domain says it; a driver error otherwise.
#[derive(Debug)]
enum WriteFailure {
    Refused(RoomError),
    Database(DieselError),
}

impl From<DieselError> for WriteFailure {
    fn from(error: DieselError) -> Self {
        WriteFailure::Database(error)
    }
}

impl From<WriteFailure> for RoomError {
    fn from(failure: WriteFailure) -> Self {
        match failure {
            WriteFailure::Refused(refusal) => refusal,
            WriteFailure::Database(error) => RoomError::Infrastructure(from_diesel(error)),
        }
    }
}

/// Checks every performance exists and no other room covers it, then makes `room` cover
/// exactly them. Runs inside the caller's transaction.
async fn cover(
    connection: &mut diesel_async::AsyncPgConnection,
    room: &Room,
) -> Result<(), WriteFailure> {
    let wanted: Vec<i64> = room.performances.iter().map(|p| p.get()).collect();
    let existing: Vec<i64> = performances::table
        .filter(performances::id.eq_any(&wanted))
        .select(performances::id)
        .load(connection)
        .await?;
    if let Some(missing) = room
        .performances
        .iter()
        .find(|p| !existing.contains(&p.get()))
    {
        return Err(WriteFailure::Refused(RoomError::UnknownPerformance(
            *missing,
        )));
    }
    let taken: Vec<(i64, String)> = room_performances::table
        .filter(room_performances::performance_id.eq_any(&wanted))
        .filter(room_performances::room_id.ne(room.id.as_str()))
        .select((
            room_performances::performance_id,
            room_performances::room_id,
        ))
        .load(connection)
        .await?;
    if let Some((performance, other)) = taken.into_iter().next() {
        return Err(WriteFailure::Refused(RoomError::PerformanceTaken {
            performance: PerformanceId::new(performance).map_err(|e| {
                WriteFailure::Refused(RoomError::Infrastructure(corrupt("room", e)))
            })?,
            room: RoomId::parse(&other).map_err(|e| {
                WriteFailure::Refused(RoomError::Infrastructure(corrupt("room", e)))
            })?,
        }));
    }
    diesel::delete(
        room_performances::table.filter(room_performances::room_id.eq(room.id.as_str())),
    )
    .execute(connection)
    .await?;
    let rows: Vec<_> = wanted
        .iter()
        .map(|performance| {
            (
                room_performances::performance_id.eq(*performance),
                room_performances::room_id.eq(room.id.as_str()),
            )
        })
        .collect();
    if !rows.is_empty() {
        diesel::insert_into(room_performances::table)
            .values(&rows)
            .execute(connection)
            .await
            .map_err(|error| match error {
                // Another room took one of them since the check above.
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    WriteFailure::Refused(RoomError::Invalid(
                        ticketing_domain::queue::InvalidSetting(
                            "a performance was given to another room meanwhile; try again".into(),
                        ),
                    ))
                }
                other => WriteFailure::Database(other),
            })?;
    }
    Ok(())
}

#[async_trait]
impl RoomRepository for PgRoomRepository {
    async fn list(&self) -> Result<Vec<Room>, RoomError> {
        let mut connection = checkout(&self.pool).await?;
        let rows: Vec<RoomRow> = rooms::table
            .select(RoomRow::as_select())
            .order(rooms::id)
            .load(&mut connection)
            .await
            .map_err(from_diesel)?;
        let covered: Vec<(String, i64)> = room_performances::table
            .select((
                room_performances::room_id,
                room_performances::performance_id,
            ))
            .order((
                room_performances::room_id,
                room_performances::performance_id,
            ))
            .load(&mut connection)
            .await
            .map_err(from_diesel)?;
        let mut by_room: std::collections::HashMap<String, Vec<PerformanceId>> =
            std::collections::HashMap::new();
        for (room, performance) in covered {
            let performance =
                PerformanceId::new(performance).map_err(|e| corrupt("room performance", e))?;
            by_room.entry(room).or_default().push(performance);
        }
        rows.into_iter()
            .map(|row| {
                let performances = by_room.remove(&row.id).unwrap_or_default();
                room_of(row, performances).map_err(RoomError::from)
            })
            .collect()
    }

    async fn create(&self, room: &Room) -> Result<(), RoomError> {
        let mut connection = checkout(&self.pool).await?;
        connection
            .transaction::<_, WriteFailure, _>(async |tx| {
                let inserted = diesel::insert_into(rooms::table)
                    .values((rooms::id.eq(room.id.as_str()), values(room)))
                    .on_conflict_do_nothing()
                    .execute(tx)
                    .await?;
                if inserted == 0 {
                    return Err(WriteFailure::Refused(RoomError::Exists(room.id)));
                }
                cover(tx, room).await
            })
            .await
            .map_err(RoomError::from)
    }

    async fn update(&self, room: &Room) -> Result<(), RoomError> {
        let mut connection = checkout(&self.pool).await?;
        connection
            .transaction::<_, WriteFailure, _>(async |tx| {
                let updated = diesel::update(
                    rooms::table
                        .filter(rooms::id.eq(room.id.as_str()))
                        .filter(rooms::version.eq(room.version - 1)),
                )
                .set(values(room))
                .execute(tx)
                .await?;
                if updated == 0 {
                    let exists: i64 = rooms::table
                        .filter(rooms::id.eq(room.id.as_str()))
                        .count()
                        .get_result(tx)
                        .await?;
                    return Err(WriteFailure::Refused(if exists == 0 {
                        RoomError::NotFound(room.id)
                    } else {
                        RoomError::Invalid(ticketing_domain::queue::InvalidSetting(
                            "the room was changed by someone else meanwhile; try again".into(),
                        ))
                    }));
                }
                if room.id.is_default() {
                    return Ok(());
                }
                cover(tx, room).await
            })
            .await
            .map_err(RoomError::from)
    }

    async fn delete(&self, id: &RoomId) -> Result<bool, RoomError> {
        let mut connection = checkout(&self.pool).await?;
        let deleted = diesel::delete(rooms::table.filter(rooms::id.eq(id.as_str())))
            .execute(&mut connection)
            .await
            .map_err(from_diesel)?;
        Ok(deleted > 0)
    }
}
