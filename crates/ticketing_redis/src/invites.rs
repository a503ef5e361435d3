//! [`InviteLedger`] on Redis: a used invite's nonce is a key under its room's hash tag, set
//! with `SET NX` (atomic: of any number of instances claiming one code, one wins) and lapsing
//! at the code's expiry, after which the code is refused anyway.

use chrono::{DateTime, Utc};
use ticketing_domain::rooms::{InviteLedger, InviteNonce, RoomId};
use ticketing_domain::InfrastructureError;

use crate::once::{set_once, Lapse};
use crate::pool::RedisPool;
use crate::RedisWaitingQueue;

/// The used invites of every room under one stack's key prefix.
#[derive(Clone)]
pub struct RedisInviteLedger {
    pool: RedisPool,
    prefix: String,
}

impl std::fmt::Debug for RedisInviteLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisInviteLedger")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisInviteLedger {
    /// Used invites under `prefix` (`APP__REDIS__KEY_PREFIX`).
    pub fn new(pool: RedisPool, prefix: &str) -> Self {
        Self {
            pool,
            prefix: prefix.to_string(),
        }
    }

    /// The key of `nonce` in `room`: beside the room's line, under its hash tag, so that on a
    /// cluster it lives on the room's node. It outlives a deleted room until the code expires:
    /// a room made again under the same id does not take a used code twice.
    pub fn key_of(prefix: &str, room: &RoomId, nonce: &InviteNonce) -> String {
        RedisWaitingQueue::keys_of_room(prefix, room).key(&format!("invite:{}", nonce.as_str()))
    }
}

#[async_trait::async_trait]
impl InviteLedger for RedisInviteLedger {
    async fn claim(
        &self,
        room: &RoomId,
        nonce: &InviteNonce,
        until: DateTime<Utc>,
    ) -> Result<bool, InfrastructureError> {
        // The claim lapses at the code's own expiry, by Redis's clock.
        let key = Self::key_of(&self.prefix, room, nonce);
        set_once(&self.pool, &key, Lapse::At(until.timestamp_millis())).await
    }

    async fn release(&self, room: &RoomId, nonce: &InviteNonce) -> Result<(), InfrastructureError> {
        let key = Self::key_of(&self.prefix, room, nonce);
        self.pool
            .run(async |connection| {
                redis::cmd("DEL")
                    .arg(&key)
                    .query_async::<i64>(connection)
                    .await
            })
            .await
            .map(drop)
    }
}
