//! The line contract of `ticketing_domain::testing::line_contract` against the Redis line, each
//! check on a key prefix of its own (and on a Redis Cluster with `TEST_REDIS_CLUSTER_URLS`).
//!
//! The scripts read Redis's own clock, which a test cannot move: moving the store's clock
//! forward is done by moving what the line stored into the past instead (session expiries,
//! the liveness bitmaps of polls, the second the budget was counted in, per-client entry
//! windows, a scheduled opening), in one script, so the checks never sleep except to reach the
//! start of Redis's next second.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;
use ticketing_domain::queue::{QueueControls, QueuePolicy, WaitingQueue};
use ticketing_domain::testing::line_contract::{self, LineFixture, LineUnderTest};
use ticketing_redis::RedisWaitingQueue;
use ticketing_testkit::TestRedis;

use crate::support::queue;

/// Moves the line's stored times `ARGV[1]` ms into the past. KEYS: active, the liveness bitmaps'
/// prefix, admission, settings. ARGV: elapsed ms, idle ms, bucket ms, the pattern of the
/// per-client entry counters.
const MOVE_INTO_THE_PAST: &str = r"
local active, seen_prefix, admission, settings = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local elapsed, idle_ms, bucket_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function int(x) return string.format('%.0f', x) end

local members = redis.call('ZRANGE', active, 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  redis.call('ZADD', active, int(tonumber(members[i + 1]) - elapsed), members[i])
end

-- Polls are recorded per bucket of time: each bitmap moves back by whole buckets, oldest first
-- so that none overwrites one not yet moved.
local shift = math.floor(elapsed / bucket_ms + 0.5)
if shift > 0 then
  local newest = math.floor(now / bucket_ms)
  local oldest = math.floor((now - idle_ms) / bucket_ms) - 2
  for b = oldest, newest do
    local key = seen_prefix .. b
    if redis.call('EXISTS', key) == 1 then
      redis.call('RENAME', key, seen_prefix .. int(b - shift))
    end
  end
end

if now % 1000 + elapsed >= 1000 then redis.call('HDEL', admission, 'second') end

local opens_at = redis.call('HGET', settings, 'opens_at')
if opens_at then redis.call('HSET', settings, 'opens_at', int(tonumber(opens_at) - elapsed)) end

local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[4], 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    local left = redis.call('PTTL', key)
    if left > elapsed then redis.call('PEXPIRE', key, left - elapsed) else redis.call('DEL', key) end
  end
until cursor == '0'
return 1
";

struct OnRedis;

struct RedisLine {
    redis: TestRedis,
    queue: RedisWaitingQueue,
    policy: QueuePolicy,
}

#[async_trait]
impl LineFixture for OnRedis {
    type Line = RedisLine;

    async fn line(&self, policy: QueuePolicy) -> RedisLine {
        let redis = TestRedis::new();
        RedisLine {
            queue: queue(&redis, policy),
            redis,
            policy,
        }
    }
}

impl RedisLine {
    async fn now_ms(&self) -> i64 {
        let (seconds, micros): (i64, i64) = self
            .redis
            .pool()
            .run(async |connection| redis::cmd("TIME").query_async(connection).await)
            .await
            .unwrap();
        seconds * 1000 + micros / 1000
    }
}

#[async_trait]
impl LineUnderTest for RedisLine {
    fn queue(&self) -> &dyn WaitingQueue {
        &self.queue
    }

    fn controls(&self) -> &dyn QueueControls {
        &self.queue
    }

    async fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_ms().await).unwrap()
    }

    async fn pass(&self, elapsed: Duration) {
        let keys = self.redis.keys();
        let idle_ms = u64::try_from(self.policy.waiting_idle_timeout.as_millis())
            .unwrap()
            .max(1);
        // As RedisWaitingQueue buckets polls: a quarter of the idle timeout, at least 50 ms.
        let bucket_ms = (idle_ms / 4).max(50);
        let script = Script::new(MOVE_INTO_THE_PAST);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(keys.key("line:active"))
            .key(keys.key("line:seen:"))
            .key(keys.key("line:admission"))
            .key(keys.key("line:settings"))
            .arg(u64::try_from(elapsed.as_millis()).unwrap())
            .arg(idle_ms)
            .arg(bucket_ms)
            .arg(keys.key("line:entries:*"));
        let _: i64 = self
            .redis
            .pool()
            .run(async |connection| invocation.invoke_async(connection).await)
            .await
            .unwrap();
    }

    async fn next_second(&self) {
        let now = self.now_ms().await;
        let left = 1000 - now.rem_euclid(1000);
        tokio::time::sleep(Duration::from_millis(u64::try_from(left).unwrap() + 20)).await;
    }
}

#[tokio::test]
async fn entering() {
    line_contract::entering(&OnRedis).await;
}

#[tokio::test]
async fn first_come_first_served() {
    line_contract::first_come_first_served(&OnRedis).await;
}

#[tokio::test]
async fn room() {
    line_contract::room(&OnRedis).await;
}

#[tokio::test]
async fn admission_rate() {
    line_contract::admission_rate(&OnRedis).await;
}

#[tokio::test]
async fn one_place_per_user() {
    line_contract::one_place_per_user(&OnRedis).await;
}

#[tokio::test]
async fn idle_places() {
    line_contract::idle_places(&OnRedis).await;
}

#[tokio::test]
async fn session_expiry() {
    line_contract::session_expiry(&OnRedis).await;
}

#[tokio::test]
async fn leaving_and_revoking() {
    line_contract::leaving_and_revoking(&OnRedis).await;
}

#[tokio::test]
async fn pause_and_resume() {
    line_contract::pause_and_resume(&OnRedis).await;
}

#[tokio::test]
async fn settings_changes() {
    line_contract::settings_changes(&OnRedis).await;
}

#[tokio::test]
async fn scheduled_opening() {
    line_contract::scheduled_opening(&OnRedis).await;
}

#[tokio::test]
async fn per_client_rate() {
    line_contract::per_client_rate(&OnRedis).await;
}

#[tokio::test]
async fn change_feed() {
    line_contract::change_feed(&OnRedis).await;
}
