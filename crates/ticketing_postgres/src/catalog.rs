//! [`ConcertCatalog`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel::sql_types::Timestamptz;
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
use crate::schema::{concerts, performances, seats};
use crate::seat_state::{seat_is_free, seat_is_taken};

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

#[derive(Queryable)]
struct PerformanceRow {
    id: i64,
    concert_id: i64,
    starts_at: DateTime<Utc>,
    total_seats: i32,
    /// A count, so never null; typed as the sub-select it comes from.
    available_seats: Option<i64>,
}

#[derive(Queryable)]
struct SeatRow {
    seat_no: i32,
    grade: String,
    price: i64,
    status: String,
    /// Free by the database's clock (AVAILABLE, or its hold lapsed): reported AVAILABLE.
    free: Option<bool>,
}

/// One row per taken seat, or one row with no seat when the performance has none taken; every
/// row carries the database's clock at the read.
#[derive(Queryable)]
struct TakenSeatRow {
    read_at: DateTime<Utc>,
    seat_no: Option<i32>,
    status: Option<String>,
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
fn corrupt(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> InfrastructureError {
    crate::error::corrupt("catalog data", cause)
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
            available_seats: u32::try_from(row.available_seats.unwrap_or(0)).map_err(corrupt)?,
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
            status: if row.free == Some(true) {
                SeatStatus::Available
            } else {
                SeatStatus::parse(&row.status)
                    .ok_or_else(|| corrupt(format!("seat status {}", row.status)))?
            },
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
        let available_seats = seats::table
            .filter(seats::performance_id.eq(performances::id))
            .filter(seat_is_free())
            .count()
            .single_value();
        let rows = performances::table
            .filter(performances::concert_id.eq(concert.get()))
            .select((
                performances::id,
                performances::concert_id,
                performances::starts_at,
                performances::total_seats,
                available_seats,
            ))
            .order_by((performances::starts_at, performances::id))
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
        let rows = seats::table
            .inner_join(performances::table)
            .filter(performances::id.eq(performance.get()))
            .filter(performances::concert_id.eq(concert.get()))
            .select((
                seats::seat_no,
                seats::grade,
                seats::price,
                seats::status,
                seat_is_free(),
            ))
            .order_by(seats::seat_no)
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
        // One round trip tells whether the performance is the concert's (no row), which of its
        // seats are taken (one row each) and the database's clock at the read, which the holds'
        // expiries are later compared against; the LEFT JOIN keeps the performance's row when no
        // seat is taken.
        let rows = performances::table
            .left_join(
                seats::table.on(seats::performance_id
                    .eq(performances::id)
                    .and(seat_is_taken())),
            )
            .filter(performances::id.eq(performance.get()))
            .filter(performances::concert_id.eq(concert.get()))
            .select((
                now.into_sql::<Timestamptz>(),
                seats::seat_no.nullable(),
                seats::status.nullable(),
                seats::hold_expires_at.nullable(),
            ))
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
