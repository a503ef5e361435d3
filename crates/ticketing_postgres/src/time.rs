//! Durations as PostgreSQL sees them.

use std::time::Duration;

use diesel::pg::data_types::PgInterval;

/// `age` as an interval, to the microsecond (PostgreSQL's resolution); an age too long to count
/// in microseconds is the longest interval, which no row is older than.
pub(crate) fn interval(age: Duration) -> PgInterval {
    PgInterval::from_microseconds(i64::try_from(age.as_micros()).unwrap_or(i64::MAX))
}
