#![doc = include_str!("../README.md")]

pub mod catalog;
pub mod clock;
pub mod error;
pub mod ids;
pub mod money;
pub mod queue;
pub mod reservation;

pub use error::InfrastructureError;
