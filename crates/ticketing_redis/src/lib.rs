#![doc = include_str!("../README.md")]

mod error;
mod keys;
pub mod pool;

pub use keys::KeySpace;
pub use pool::{RedisPool, RedisSettings};
