#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod access;
pub mod catalog;
pub mod clock;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod money;
pub mod payment;
pub mod queue;
pub mod refund;
pub mod reservation;
pub mod rooms;
pub mod taken_seats;
// The crate's own unit tests use the in-memory adapters and the manual clock too.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod wallet;

pub use error::InfrastructureError;
