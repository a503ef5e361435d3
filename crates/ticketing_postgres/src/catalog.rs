//! [`ConcertCatalog`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use ticketing_domain::catalog::{
    CatalogError, Concert, ConcertCatalog, Performance, Seat, SeatStatus,
};
use ticketing_domain::ids::{ConcertId, PerformanceId, SeatNo};
use ticketing_domain::money::Won;
use ticketing_domain::taken_seats::{Taken, TakenSeats};
use ticketing_domain::InfrastructureError;

use crate::error::from_diesel;
use crate::pool::{checkout, PgPool};
use crate::schema::{concerts, performances};

/// The catalog as stored in PostgreSQL.
#[derive(Clone)]
pub struct PgConcertCatalog {
    pool: PgPool,
}

impl std::fmt::Debug for PgConcertCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConcertCatalog").finish_non_exhaustive()
    }
}

impl PgConcertCatalog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(Queryable)]
struct ConcertRow {
    id: i64,
    title: String,
    artist: String,
    venue: String,
}

#[derive(QueryableByName)]
struct PerformanceRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    concert_id: i64,
    #[diesel(sql_type = Timestamptz)]
    starts_at: DateTime<Utc>,
    #[diesel(sql_type = Integer)]
    total_seats: i32,
    #[diesel(sql_type = Integer)]
    available_seats: i32,
}

#[derive(QueryableByName)]
struct SeatRow {
    #[diesel(sql_type = Integer)]
    seat_no: i32,
    #[diesel(sql_type = Text)]
    grade: String,
    #[diesel(sql_type = BigInt)]
    price: i64,
    #[diesel(sql_type = Text)]
    status: String,
}

/// One row per taken seat, or one row with no seat when the performance has none taken; every
/// row carries the database's clock at the read.
#[derive(QueryableByName)]
struct TakenSeatRow {
    #[diesel(sql_type = Timestamptz)]
    read_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Integer>)]
    seat_no: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    status: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    hold_expires_at: Option<DateTime<Utc>>,
}

impl TakenSeatRow {
    fn taken(&self) -> Result<Option<(SeatNo, Taken)>, InfrastructureError> {
        let Some(seat_no) = self.seat_no else {
            return Ok(None);
        };
        let seat = SeatNo::new(seat_no.into()).map_err(corrupt)?;
        match (self.status.as_deref(), self.hold_expires_at) {
            (Some("SOLD"), _) => Ok(Some((seat, Taken::Sold))),
            (Some("HELD"), Some(until)) => Ok(Some((seat, Taken::HeldUntil(until)))),
            (status, until) => Err(corrupt(format!(
                "taken seat {seat} with status {status:?} and hold expiry {until:?}"
            ))),
        }
    }
}

/// A stored value that the schema's constraints should have made impossible.
fn corrupt(what: impl std::fmt::Display) -> InfrastructureError {
    InfrastructureError::Unexpected(format!("stored catalog data is invalid: {what}"))
}

impl TryFrom<ConcertRow> for Concert {
    type Error = InfrastructureError;
    fn try_from(row: ConcertRow) -> Result<Self, Self::Error> {
        Ok(Concert {
            id: ConcertId::new(row.id).map_err(corrupt)?,
            title: row.title,
            artist: row.artist,
            venue: row.venue,
        })
    }
}

impl TryFrom<PerformanceRow> for Performance {
    type Error = InfrastructureError;
    fn try_from(row: PerformanceRow) -> Result<Self, Self::Error> {
        Ok(Performance {
            id: PerformanceId::new(row.id).map_err(corrupt)?,
            concert_id: ConcertId::new(row.concert_id).map_err(corrupt)?,
            starts_at: row.starts_at,
            total_seats: u32::try_from(row.total_seats).map_err(corrupt)?,
            available_seats: u32::try_from(row.available_seats).map_err(corrupt)?,
        })
    }
}

impl TryFrom<SeatRow> for Seat {
    type Error = InfrastructureError;
    fn try_from(row: SeatRow) -> Result<Self, Self::Error> {
        Ok(Seat {
            no: SeatNo::new(row.seat_no.into()).map_err(corrupt)?,
            grade: row.grade,
            price: Won::new(row.price).map_err(corrupt)?,
            status: SeatStatus::parse(&row.status)
                .ok_or_else(|| corrupt(format!("seat status {}", row.status)))?,
        })
    }
}

fn convert_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, CatalogError>
where
    T: TryFrom<R, Error = InfrastructureError>,
{
    rows.into_iter()
        .map(|row| T::try_from(row).map_err(CatalogError::from))
        .collect()
}

fn db(error: diesel::result::Error) -> CatalogError {
    CatalogError::Infrastructure(from_diesel(error))
}

/// A seat is available when it is free or its hold has lapsed by the database's clock.
const SEAT_IS_AVAILABLE: &str =
    "(s.status = 'AVAILABLE' OR (s.status = 'HELD' AND s.hold_expires_at < now()))";

#[async_trait]
impl ConcertCatalog for PgConcertCatalog {
    async fn concerts(&self) -> Result<Vec<Concert>, CatalogError> {
        let mut connection = checkout(&self.pool).await?;
        let rows = concerts::table
            .select((
                concerts::id,
                concerts::title,
                concerts::artist,
                concerts::venue,
            ))
            .order_by(concerts::id)
            .load::<ConcertRow>(&mut connection)
            .await
            .map_err(db)?;
        convert_all(rows)
    }

    async fn performances(&self, concert: ConcertId) -> Result<Vec<Performance>, CatalogError> {
        let mut connection = checkout(&self.pool).await?;
        let rows = diesel::sql_query(format!(
            "SELECT p.id, p.concert_id, p.starts_at, p.total_seats, \
                    (SELECT count(*) FROM seats s \
                      WHERE s.performance_id = p.id AND {SEAT_IS_AVAILABLE})::int AS available_seats \
               FROM performances p \
              WHERE p.concert_id = $1 \
              ORDER BY p.starts_at, p.id"
        ))
        .bind::<BigInt, _>(concert.get())
        .load::<PerformanceRow>(&mut connection)
        .await
        .map_err(db)?;
        if rows.is_empty() {
            let exists = diesel::select(diesel::dsl::exists(
                concerts::table.filter(concerts::id.eq(concert.get())),
            ))
            .get_result::<bool>(&mut connection)
            .await
            .map_err(db)?;
            if !exists {
                return Err(CatalogError::ConcertNotFound(concert));
            }
        }
        convert_all(rows)
    }

    async fn seats(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
    ) -> Result<Vec<Seat>, CatalogError> {
        let mut connection = checkout(&self.pool).await?;
        let rows = diesel::sql_query(format!(
            "SELECT s.seat_no, s.grade, s.price, \
                    CASE WHEN {SEAT_IS_AVAILABLE} THEN 'AVAILABLE' ELSE s.status END AS status \
               FROM seats s \
               JOIN performances p ON p.id = s.performance_id \
              WHERE p.id = $1 AND p.concert_id = $2 \
              ORDER BY s.seat_no"
        ))
        .bind::<BigInt, _>(performance.get())
        .bind::<BigInt, _>(concert.get())
        .load::<SeatRow>(&mut connection)
        .await
        .map_err(db)?;
        if rows.is_empty() {
            let exists = diesel::select(diesel::dsl::exists(
                performances::table
                    .filter(performances::id.eq(performance.get()))
                    .filter(performances::concert_id.eq(concert.get())),
            ))
            .get_result::<bool>(&mut connection)
            .await
            .map_err(db)?;
            if !exists {
                return Err(CatalogError::PerformanceNotFound {
                    concert,
                    performance,
                });
            }
        }
        convert_all(rows)
    }

    async fn taken_seats(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
    ) -> Result<TakenSeats, CatalogError> {
        let mut connection = checkout(&self.pool).await?;
        // sql_query: one round trip tells whether the performance is the concert's (no row),
        // which of its seats are taken (one row each) and the database's clock at the read,
        // which the holds' expiries are later compared against; the LEFT JOIN keeps the
        // performance's row when no seat is taken.
        let rows = diesel::sql_query(
            "SELECT now() AS read_at, s.seat_no, s.status, s.hold_expires_at \
               FROM performances p \
               LEFT JOIN seats s ON s.performance_id = p.id \
                AND (s.status = 'SOLD' OR (s.status = 'HELD' AND s.hold_expires_at >= now())) \
              WHERE p.id = $1 AND p.concert_id = $2",
        )
        .bind::<BigInt, _>(performance.get())
        .bind::<BigInt, _>(concert.get())
        .load::<TakenSeatRow>(&mut connection)
        .await
        .map_err(db)?;
        let Some(read_at) = <[TakenSeatRow]>::first(&rows).map(|row| row.read_at) else {
            return Err(CatalogError::PerformanceNotFound {
                concert,
                performance,
            });
        };
        let mut taken = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(seat) = row.taken()? {
                taken.push(seat);
            }
        }
        Ok(TakenSeats::new(read_at, taken))
    }
}
