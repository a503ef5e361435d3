//! The integration tests of ticketing_redis, in one binary: a test binary per file linked the
//! crate and its dependencies once per file, which made `make test` slow on two cores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod controls;
mod event_contract;
mod events;
mod gate;
mod invites;
mod line_contract;
mod queue;
