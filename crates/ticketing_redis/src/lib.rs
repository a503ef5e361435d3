#![doc = include_str!("../README.md")]

mod error;
mod events;
mod gate;
mod invites;
mod keys;
mod once;
pub mod pool;
mod queue;
mod rooms;

pub use events::{stream_key, GroupStart, RedisEventPublisher, RedisEventStream, StreamEntry};
pub use gate::RedisSpentProofs;
pub use invites::RedisInviteLedger;
pub use keys::KeySpace;
pub use pool::{RedisPool, RedisSettings};
pub use queue::RedisWaitingQueue;
pub use rooms::RedisRoomLines;
