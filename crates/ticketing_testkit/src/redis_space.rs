//! A Redis key prefix per test.

use ticketing_redis::{KeySpace, RedisPool, RedisSettings};

use crate::unique_suffix;

const DEFAULT_TEST_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A key prefix of its own; its keys are deleted when this value is dropped.
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    prefix: String,
    pool: RedisPool,
}

impl TestRedis {
    pub fn new() -> Self {
        let url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_TEST_REDIS_URL.to_string());
        let prefix = format!("test-{}", unique_suffix());
        let pool = RedisPool::new(&RedisSettings::new(url.clone())).expect("a valid Redis URL");
        Self { url, prefix, pool }
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
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection() else {
            return;
        };
        let pattern = self.keys().pattern();
        let keys: Vec<String> = match redis::cmd("KEYS").arg(&pattern).query(&mut connection) {
            Ok(keys) => keys,
            Err(_) => return,
        };
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}
