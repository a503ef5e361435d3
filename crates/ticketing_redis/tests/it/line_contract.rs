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
use ticketing_domain::queue::{QueueControls, QueuePolicy, WaitingQueue};
use ticketing_domain::testing::line_contract::{self, LineFixture, LineUnderTest};
use ticketing_redis::RedisWaitingQueue;
use ticketing_testkit::TestRedis;

use crate::support::queue;

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

#[async_trait]
impl LineUnderTest for RedisLine {
    fn queue(&self) -> &dyn WaitingQueue {
        &self.queue
    }

    fn controls(&self) -> &dyn QueueControls {
        &self.queue
    }

    async fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.redis.now_ms().await).unwrap()
    }

    async fn pass(&self, elapsed: Duration) {
        self.redis
            .pass(elapsed, self.policy.waiting_idle_timeout)
            .await;
    }

    async fn next_second(&self) {
        self.redis.wait_for_next_second().await;
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

#[tokio::test]
async fn clearing() {
    line_contract::clearing(&OnRedis).await;
}
