//! The contract's one time format.

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339, UTC, `Z`, with as many fractional digits as the instant needs.
pub(crate) fn rfc3339(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
