//! What the Redis line's test files share: policies, the line seen by one or two instances.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::time::Duration;

use ticketing_domain::ids::UserId;
use ticketing_domain::queue::{ClientKey, QueuePolicy};
use ticketing_redis::{RedisPool, RedisWaitingQueue};
use ticketing_testkit::TestRedis;

/// Life of an ACTIVE ticket in every test that does not say otherwise.
pub const TTL: Duration = Duration::from_secs(600);
/// An admission rate that never limits a test not about the rate: even in a second's first
/// millisecond, a thousand admissions are allowed.
pub const UNLIMITED: u32 = 1_000_000;

/// A policy with the given room, rate and idle timeout.
pub fn policy_idling_after(max_active: u32, admit_per_second: u32, idle: Duration) -> QueuePolicy {
    QueuePolicy {
        max_active: NonZeroU32::new(max_active).unwrap(),
        admit_per_second: NonZeroU32::new(admit_per_second).unwrap(),
        active_ttl: TTL,
        waiting_idle_timeout: idle,
        entry_rate_per_client: None,
    }
}

/// The line under this test's prefix, on the test's pool.
pub fn queue(redis: &TestRedis, policy: QueuePolicy) -> RedisWaitingQueue {
    RedisWaitingQueue::new(redis.pool().clone(), &redis.keys(), policy)
}

/// The same line as seen by another app instance: a pool of its own, the same keys.
pub fn another_instance(redis: &TestRedis, policy: QueuePolicy) -> RedisWaitingQueue {
    let pool = RedisPool::new(&redis.settings()).unwrap();
    RedisWaitingQueue::new(pool, &redis.keys(), policy)
}

pub fn client() -> ClientKey {
    ClientKey::new("127.0.0.1")
}

pub fn user(id: i64) -> UserId {
    UserId::new(id).unwrap()
}
