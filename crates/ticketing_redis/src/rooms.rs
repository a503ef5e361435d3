//! [`RoomLines`] on Redis: each room's line is a [`RedisWaitingQueue`] under a hash tag of its
//! own.

use std::sync::Arc;

use ticketing_domain::queue::{LineSettings, QueuePolicy};
use ticketing_domain::rooms::{RoomId, RoomLineStores, RoomLines, RoomMode};

use crate::pool::RedisPool;
use crate::RedisWaitingQueue;

/// Opens rooms' lines in one Redis (or Redis Cluster) under one stack's key prefix.
#[derive(Clone)]
pub struct RedisRoomLines {
    pool: RedisPool,
    prefix: String,
    step_interval: std::time::Duration,
}

impl std::fmt::Debug for RedisRoomLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRoomLines")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisRoomLines {
    /// Lines under `prefix` (`APP__REDIS__KEY_PREFIX`), each stepped every `step_interval`
    /// (see [`RedisWaitingQueue::stepped_every`]).
    pub fn new(pool: RedisPool, prefix: &str, step_interval: std::time::Duration) -> Self {
        Self {
            pool,
            prefix: prefix.to_string(),
            step_interval,
        }
    }
}

impl RoomLines for RedisRoomLines {
    fn open(
        &self,
        room: &RoomId,
        policy: QueuePolicy,
        mode: RoomMode,
        settings: &LineSettings,
    ) -> RoomLineStores {
        let keys = RedisWaitingQueue::keys_of_room(&self.prefix, room);
        let line = Arc::new(
            RedisWaitingQueue::new(self.pool.clone(), &keys, policy)
                .in_mode(mode)
                .stepped_every(self.step_interval)
                .starting_with(settings),
        );
        RoomLineStores {
            queue: line.clone(),
            controls: line,
        }
    }
}
