//! The integration tests of ticketing_domain, in one binary; the contracts run against the
//! in-memory adapters behind the `testing` feature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "testing")]
mod line_contract;
