//! How a reservation is read, by every adapter that reads one: its stored values, its
//! performance's concert, and whether its hold (if HELD) has lapsed by the database's clock, in
//! which case it is reported EXPIRED.

use chrono::{DateTime, Utc};
use diesel::dsl::{auto_type, now};
use diesel::prelude::*;
use ticketing_domain::ids::{ConcertId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::money::Won;
use ticketing_domain::reservation::{Reservation, ReservationStatus};
use ticketing_domain::InfrastructureError;

use crate::schema::{performances, reservations};

/// Reservations with their performance, which names the concert.
#[auto_type]
pub(crate) fn reservations_with_performance() -> _ {
    reservations::table
        .inner_join(performances::table.on(performances::id.eq(reservations::performance_id)))
}

/// What [`reservation_from`] needs, in [`ReservationRow`]'s order.
#[auto_type]
pub(crate) fn reservation_columns() -> _ {
    (
        reservations::id,
        reservations::user_id,
        performances::concert_id,
        reservations::performance_id,
        reservations::seat_no,
        reservations::price,
        reservations::status,
        reservations::expires_at,
        reservations::expires_at.lt(now),
    )
}

/// Reservations as they are read.
#[auto_type]
pub(crate) fn reservations_as_read() -> _ {
    reservations_with_performance().select(reservation_columns())
}

/// A row of [`reservation_columns`].
pub(crate) type ReservationRow = (i64, i64, i64, i64, i32, i64, String, DateTime<Utc>, bool);

/// The reservation a row holds; an error when the row holds what no reservation can.
pub(crate) fn reservation_from(
    (id, user, concert, performance, seat, price, status, expires_at, lapsed): ReservationRow,
) -> Result<Reservation, InfrastructureError> {
    let stored =
        ReservationStatus::parse(&status).ok_or_else(|| corrupt(format!("status {status}")))?;
    Ok(Reservation {
        id: ReservationId::new(id).map_err(corrupt)?,
        user: UserId::new(user).map_err(corrupt)?,
        concert: ConcertId::new(concert).map_err(corrupt)?,
        performance: PerformanceId::new(performance).map_err(corrupt)?,
        seat: SeatNo::new(seat.into()).map_err(corrupt)?,
        price: Won::new(price).map_err(corrupt)?,
        status: stored.judged(lapsed),
        expires_at,
    })
}

/// Stored reservation data that the schema should have made impossible.
pub(crate) fn corrupt(
    cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> InfrastructureError {
    crate::error::corrupt("reservation data", cause)
}
