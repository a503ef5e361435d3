//! The integration tests of ticketing_app, in one binary: a test binary per file linked the
//! crate and its dependencies once per file, which made `make test` slow on two cores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod admin_api;
mod api_reference;
mod bound_tokens_api;
mod browser;
mod catalog_api;
mod cluster_lb;
mod crash;
mod doc_examples;
mod draw_api;
mod events_api;
mod faults_api;
mod gate_api;
mod identity_api;
mod invites_api;
mod keep_alive;
mod operations_api;
mod page_api;
mod payments_api;
mod queue_api;
mod refunds_api;
mod reservations_api;
mod rooms_api;
mod shutdown;
mod user_reservations_api;
