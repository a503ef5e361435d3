//! Time, as a port, so that rules depending on it can be tested.

use chrono::{DateTime, Utc};

/// Tells the current time.
///
/// Where an expiry guards a seat or money, adapters let the database decide with its own clock;
/// this port serves the rules that only shape answers (estimates, cache lifetimes).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}
