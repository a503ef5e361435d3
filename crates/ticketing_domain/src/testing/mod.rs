//! In-memory adapters of every port, and the contract every adapter of a port must keep.
//!
//! Behind the `testing` feature. An embedder uses the in-memory adapters to run the use cases in
//! its own tests without a database or Redis; an adapter author runs the contract functions
//! against their adapter, as `ticketing_postgres` and `ticketing_redis` do in their test suites.

pub mod invites;
pub mod line;
pub mod line_contract;
pub mod store;
pub mod store_contract;
