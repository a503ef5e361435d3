//! A Redis key prefix per test, on the single Redis of `TEST_REDIS_URL` or, with
//! `TEST_REDIS_CLUSTER_URLS`, on a Redis Cluster.

use std::time::Duration;

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::Script;
use ticketing_redis::{KeySpace, RedisPool, RedisSettings};

use crate::unique_suffix;

const DEFAULT_TEST_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A key prefix of its own; its keys are deleted when this value is dropped.
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    settings: RedisSettings,
    prefix: String,
    pool: RedisPool,
}

impl TestRedis {
    pub fn new() -> Self {
        let url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_TEST_REDIS_URL.to_string());
        let prefix = format!("test-{}", unique_suffix());
        let cluster: Vec<String> = std::env::var("TEST_REDIS_CLUSTER_URLS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|seed| !seed.is_empty())
            .map(str::to_string)
            .collect();
        let settings = if cluster.is_empty() {
            RedisSettings::new(url.clone())
        } else {
            RedisSettings::cluster(cluster)
        };
        let pool = RedisPool::new(&settings).expect("valid Redis URLs");
        Self {
            url,
            settings,
            prefix,
            pool,
        }
    }

    /// How to reach this test's Redis (single or cluster), for a second pool: another instance.
    pub fn settings(&self) -> RedisSettings {
        self.settings.clone()
    }

    pub fn is_cluster(&self) -> bool {
        !self.settings.cluster_urls.is_empty()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The value for `APP__REDIS__KEY_PREFIX`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn keys(&self) -> KeySpace {
        KeySpace::new(&self.prefix)
    }

    pub fn pool(&self) -> &RedisPool {
        &self.pool
    }

    /// Redis's own clock (`TIME`), in milliseconds since the epoch: the line's clock.
    pub async fn now_ms(&self) -> i64 {
        let (seconds, micros): (i64, i64) = self
            .pool
            .run(async |connection| redis::cmd("TIME").query_async(connection).await)
            .await
            .expect("Redis TIME");
        seconds * 1000 + micros / 1000
    }

    /// Waits until Redis's clock has just entered its next second, where the admission budget
    /// of the line starts afresh: the one wait on Redis's clock a test cannot avoid when it
    /// counts admissions within one second.
    pub async fn wait_for_next_second(&self) {
        let left = 1000 - self.now_ms().await.rem_euclid(1000);
        tokio::time::sleep(Duration::from_millis(
            u64::try_from(left).unwrap_or(1000) + 20,
        ))
        .await;
    }

    /// Lets `elapsed` pass for the line stored under this prefix, with no wait: Redis's clock
    /// cannot be moved, so what the line stored moves into the past instead (session expiries,
    /// the liveness bitmaps of polls, the second the budget was counted in, per-client entry
    /// windows, a scheduled opening). `waiting_idle_timeout` is the line's policy's, which sets
    /// the width of its liveness buckets.
    pub async fn pass(&self, elapsed: Duration, waiting_idle_timeout: Duration) {
        let keys = self.keys();
        let idle_ms = u64::try_from(waiting_idle_timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        // As RedisWaitingQueue buckets polls: a quarter of the idle timeout, at least 50 ms.
        let bucket_ms = (idle_ms / 4).max(50);
        let script = Script::new(include_str!("move_line_into_the_past.lua"));
        let mut invocation = script.prepare_invoke();
        invocation
            .key(keys.key("line:active"))
            .key(keys.key("line:seen:"))
            .key(keys.key("line:admission"))
            .key(keys.key("line:settings"))
            .arg(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
            .arg(idle_ms)
            .arg(bucket_ms)
            .arg(keys.key("line:entries:*"));
        let _: i64 = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await
            .expect("moving the line into the past");
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let pattern = self.keys().pattern();
        // The event stream is the one key without the prefix's hash tag.
        let stream = self.keys().untagged_key("events");
        if self.is_cluster() {
            // Every key of the prefix shares its hash tag: one slot, one node.
            let Ok(client) = redis::cluster::ClusterClient::new(self.settings.cluster_urls.clone())
            else {
                return;
            };
            let Ok(mut connection) = client.get_connection() else {
                return;
            };
            let _: Result<(), _> = redis::cmd("DEL").arg(&stream).query(&mut connection);
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                ticketing_redis::pool::slot_of(&pattern),
                SlotAddr::Master,
            )));
            let keys: Vec<String> = match connection
                .route_command(redis::cmd("KEYS").arg(&pattern), routing)
                .and_then(|reply| {
                    redis::FromRedisValue::from_redis_value(reply).map_err(redis::RedisError::from)
                }) {
                Ok(keys) => keys,
                Err(_) => return,
            };
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
            }
            // The rooms' lines carry hash tags of their own, so they may be on any node: ask each
            // seed (the local cluster's seeds are its masters) for its own.
            let rooms = format!("{{{}:room:*", self.prefix);
            for seed in &self.settings.cluster_urls {
                let Ok(mut node) =
                    redis::Client::open(seed.as_str()).and_then(|c| c.get_connection())
                else {
                    continue;
                };
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(&rooms)
                    .query(&mut node)
                    .unwrap_or_default();
                for key in keys {
                    let _: Result<(), _> = redis::cmd("DEL").arg(key).query(&mut node);
                }
            }
            return;
        }
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection() else {
            return;
        };
        let _: Result<(), _> = redis::cmd("DEL").arg(&stream).query(&mut connection);
        // The rooms' lines carry hash tags of their own (`{<prefix>:room:<id>}`).
        let rooms = format!("{{{}:room:*", self.prefix);
        for pattern in [pattern, rooms] {
            let keys: Vec<String> = match redis::cmd("KEYS").arg(&pattern).query(&mut connection) {
                Ok(keys) => keys,
                Err(_) => return,
            };
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
            }
        }
    }
}
