//! [`SpentProofs`] on Redis: one key per spent proof, under its room's hash tag, set only when
//! absent and expiring with the proof's challenge.

use std::time::Duration;

use async_trait::async_trait;
use ticketing_domain::rooms::{RoomId, SpentProofs};
use ticketing_domain::InfrastructureError;

use crate::once::{set_once, Lapse};
use crate::pool::RedisPool;
use crate::RedisWaitingQueue;

/// Remembers spent proofs in one Redis (or Redis Cluster) under one stack's key prefix, shared by
/// every instance: a proof spent on one is spent on all.
#[derive(Clone)]
pub struct RedisSpentProofs {
    pool: RedisPool,
    prefix: String,
}

impl std::fmt::Debug for RedisSpentProofs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSpentProofs")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisSpentProofs {
    /// Spent proofs under `prefix` (`APP__REDIS__KEY_PREFIX`).
    pub fn new(pool: RedisPool, prefix: &str) -> Self {
        Self {
            pool,
            prefix: prefix.to_string(),
        }
    }

    /// The key of a spent proof: under the room's hash tag, so that a room's keys stay in one
    /// cluster slot and are cleared with its line.
    pub fn key(&self, room: &RoomId, challenge: &str) -> String {
        RedisWaitingQueue::keys_of_room(&self.prefix, room).key(&format!("gate:spent:{challenge}"))
    }
}

#[async_trait]
impl SpentProofs for RedisSpentProofs {
    async fn spend(
        &self,
        room: &RoomId,
        challenge: &str,
        keep_for: Duration,
    ) -> Result<bool, InfrastructureError> {
        let millis = u64::try_from(keep_for.as_millis()).unwrap_or(u64::MAX);
        set_once(&self.pool, &self.key(room, challenge), Lapse::After(millis)).await
    }
}
