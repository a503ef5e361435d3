//! The Redis connection pool, bounded in size and in every wait.
//!
//! deadpool-redis pings a connection every time it is checked out; on the token check that
//! would double the round trips of every protected request. [`IdleVerifyingManager`] pings only
//! connections that sat idle, and a connection that fails with an I/O error is dropped from the
//! pool by [`RedisPool::run`], so a restarted Redis is reconnected to without a restart.

use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, RecycleResult};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError};
use ticketing_domain::InfrastructureError;

use crate::error::{from_pool, from_redis};

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub url: String,
    pub max_size: usize,
    /// Longest wait for a free connection.
    pub checkout_timeout: Duration,
    /// Longest wait to establish a connection.
    pub connect_timeout: Duration,
    /// Longest wait for the answer to one command or script.
    pub command_timeout: Duration,
}

impl RedisSettings {
    /// Settings for `url` with conservative defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_size: 16,
            checkout_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
        }
    }
}

/// Creates multiplexed connections; verifies with a PING only those idle for a while.
#[derive(Debug)]
pub struct IdleVerifyingManager {
    inner: deadpool_redis::Manager,
    verify_after_idle: Duration,
}

impl managed::Manager for IdleVerifyingManager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        managed::Manager::create(&self.inner).await
    }

    async fn recycle(
        &self,
        connection: &mut MultiplexedConnection,
        metrics: &Metrics,
    ) -> RecycleResult<RedisError> {
        if metrics.last_used() < self.verify_after_idle {
            return Ok(());
        }
        managed::Manager::recycle(&self.inner, connection, metrics).await
    }
}

/// Why the pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RedisPoolError {
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(#[from] RedisError),
    #[error("invalid Redis pool settings: {0}")]
    Build(#[from] managed::BuildError),
}

/// A bounded pool of Redis connections.
#[derive(Clone, Debug)]
pub struct RedisPool {
    pool: managed::Pool<IdleVerifyingManager>,
}

impl RedisPool {
    /// Builds the pool; no connection is opened until one is needed.
    ///
    /// # Errors
    /// [`RedisPoolError`] when the URL cannot be parsed.
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisPoolError> {
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout));
        let manager = IdleVerifyingManager {
            inner: deadpool_redis::Manager::new_with_config(
                settings.url.as_str(),
                connection_config,
            )?,
            verify_after_idle: Duration::from_secs(5),
        };
        let pool = managed::Pool::builder(manager)
            .max_size(settings.max_size)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(settings.checkout_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(settings.connect_timeout))
            .build()?;
        Ok(Self { pool })
    }

    /// Runs `command` on a pooled connection; a connection that failed at the I/O level is
    /// discarded instead of going back to the pool.
    ///
    /// # Errors
    /// [`InfrastructureError::Unavailable`] when Redis cannot be reached or is too slow.
    pub async fn run<T, F>(&self, command: F) -> Result<T, InfrastructureError>
    where
        F: AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, RedisError>,
    {
        let mut connection = self.pool.get().await.map_err(from_pool)?;
        match command(&mut connection).await {
            Ok(value) => Ok(value),
            Err(error) => {
                if error.is_io_error() || error.is_timeout() || error.is_unrecoverable_error() {
                    drop(Object::take(connection));
                }
                Err(from_redis(error))
            }
        }
    }

    /// Deletes every key matching `pattern` (SCAN, so Redis is never blocked for long);
    /// returns how many. An operator's tool, for resetting a load-test stack.
    ///
    /// # Errors
    /// [`InfrastructureError`] when Redis cannot be reached.
    pub async fn delete_matching(&self, pattern: &str) -> Result<u64, InfrastructureError> {
        let mut deleted = 0;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .run(async |connection| {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(connection)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                let removed: u64 = self
                    .run(async |connection| {
                        redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async(connection)
                            .await
                    })
                    .await?;
                deleted += removed;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// Size, idle connections and waiters of the pool, for the operator's metrics.
    pub fn status(&self) -> deadpool::Status {
        self.pool.status()
    }

    /// Answers whether Redis replies to a PING.
    ///
    /// # Errors
    /// [`InfrastructureError::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<(), InfrastructureError> {
        self.run(async |connection| {
            redis::cmd("PING")
                .query_async::<String>(connection)
                .await
                .map(drop)
        })
        .await
    }

    /// The value of a server setting (`CONFIG GET`), or `None` when the server does not say
    /// (managed services often disable `CONFIG`).
    ///
    /// # Errors
    /// [`InfrastructureError::Unavailable`] when Redis cannot be reached.
    pub async fn config_get(&self, name: &str) -> Result<Option<String>, InfrastructureError> {
        let reply: Result<Vec<String>, InfrastructureError> = self
            .run(async |connection| {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(name)
                    .query_async(connection)
                    .await
            })
            .await;
        match reply {
            Ok(pair) => Ok(pair.into_iter().nth(1)),
            Err(InfrastructureError::Unexpected(_)) => Ok(None),
            Err(unavailable) => Err(unavailable),
        }
    }
}
