//! What a seat's row says about it, written once for every statement that reads or changes it:
//! when a seat is free or taken (by the database's clock), as query-builder expressions for the
//! reads and as SQL text for the statements kept as `sql_query`, and the columns of a seat given
//! back (a hold cancelled or lapsed, a sale refunded, the demo data reset).

use diesel::dsl::{auto_type, now};
use diesel::prelude::*;

use crate::schema::seats;

/// The SQL text of [`seat_is_free`] on a seat row aliased `s`, for the statements kept as
/// `sql_query` (the holds).
macro_rules! seat_is_free_sql {
    () => {
        "(s.status = 'AVAILABLE' OR (s.status = 'HELD' AND s.hold_expires_at < now()))"
    };
}
pub(crate) use seat_is_free_sql;

/// The `SET` list of an `UPDATE seats` that gives a seat back: free, with no hold and no
/// reservation (the schema's checks tie the three together).
macro_rules! seat_released_sql {
    () => {
        "status = 'AVAILABLE', hold_expires_at = NULL, reservation_id = NULL"
    };
}
pub(crate) use seat_released_sql;

/// [`seat_released_sql`] for code outside this crate that gives seats back by hand: tests and
/// benchmarks that replay sales on one database.
pub const SEAT_RELEASED_SET: &str = seat_released_sql!();

/// A seat is free when it is AVAILABLE or its hold has lapsed by the database's clock.
#[auto_type]
pub(crate) fn seat_is_free() -> _ {
    let available: &'static str = "AVAILABLE";
    let held: &'static str = "HELD";
    seats::status.eq(available).nullable().or(seats::status
        .eq(held)
        .nullable()
        .and(seats::hold_expires_at.lt(now)))
}

/// A seat is taken when it is SOLD or under a live hold by the database's clock: the complement
/// of [`seat_is_free`].
#[auto_type]
pub(crate) fn seat_is_taken() -> _ {
    let sold: &'static str = "SOLD";
    let held: &'static str = "HELD";
    seats::status.eq(sold).nullable().or(seats::status
        .eq(held)
        .nullable()
        .and(seats::hold_expires_at.ge(now)))
}
