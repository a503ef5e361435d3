#![doc = include_str!("../README.md")]

mod catalog;
pub mod demo_data;
mod error;
pub mod inventory;
pub mod migrations;
pub mod pool;
mod schema;

pub use catalog::PgConcertCatalog;
pub use inventory::PgSeatInventory;
pub use pool::{PgPool, PgPoolSettings};
