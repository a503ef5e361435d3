#![doc = include_str!("../README.md")]

mod error;
mod keys;
pub mod pool;
mod queue;

pub use keys::KeySpace;
pub use pool::{RedisPool, RedisSettings};
pub use queue::RedisWaitingQueue;
