//! The integration tests of ticketing_postgres, in one binary: a test binary per file linked the
//! crate and its dependencies once per file, which made `make test` slow on two cores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod catalog;
mod contract;
mod holds;
mod migrations_and_demo_data;
mod model;
mod money;
mod outbox;
mod refunds;
mod transient;
