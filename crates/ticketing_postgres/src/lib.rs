#![doc = include_str!("../README.md")]

mod catalog;
pub mod demo_data;
mod error;
mod idempotency;
pub mod inventory;
pub mod migrations;
mod outbox;
mod payments;
pub mod pool;
mod refunds;
mod schema;
mod wallet;

pub use catalog::PgConcertCatalog;
pub use idempotency::PgOutcomeRetention;
pub use inventory::PgSeatInventory;
pub use outbox::PgEventOutbox;
pub use payments::PgPaymentLedger;
pub use pool::{PgPool, PgPoolSettings};
pub use refunds::PgRefundLedger;
pub use wallet::PgWallet;
