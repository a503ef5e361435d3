//! The Redis connection pool, bounded in size and in every wait.
//!
//! Connections are to a single Redis or, with `REDIS_CLUSTER_URLS`, to a Redis Cluster
//! ([`RedisConnection`]); the line's keys share one hash tag, so each script runs on one node.
//! A pool that pinged every connection at checkout would double the round trips of every
//! command; [`IdleVerifyingManager`] pings only
//! connections that sat idle, and a connection that fails with an I/O error is dropped from the
//! pool by [`RedisPool::run`], so a restarted Redis is reconnected to without a restart.

use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, Value};
use ticketing_domain::InfrastructureError;

use crate::error::{from_pool, from_redis};

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    pub url: String,
    /// Seed nodes of a Redis Cluster (`REDIS_CLUSTER_URLS`); when not empty, `url` is unused.
    pub cluster_urls: Vec<String>,
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
            cluster_urls: Vec::new(),
            max_size: 16,
            checkout_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
        }
    }

    /// Settings for a Redis Cluster reached through `seeds`.
    pub fn cluster(seeds: Vec<String>) -> Self {
        Self {
            cluster_urls: seeds,
            ..Self::new("")
        }
    }
}

/// A connection to a single Redis or to a Redis Cluster; commands and scripts run on either.
#[non_exhaustive]
pub enum RedisConnection {
    Single(MultiplexedConnection),
    /// Routes each command by its keys' slot, following MOVED and ASK.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedisConnection::Single(_) => "RedisConnection::Single",
            RedisConnection::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(connection) => connection.req_packed_command(cmd),
            RedisConnection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(connection) => {
                connection.req_packed_commands(cmd, offset, count)
            }
            RedisConnection::Cluster(connection) => {
                connection.req_packed_commands(cmd, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(connection) => connection.get_db(),
            RedisConnection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Where connections come from.
enum Target {
    Single(redis::Client, AsyncConnectionConfig),
    Cluster(ClusterClient),
}

/// Creates connections; verifies with a PING only those idle for a while.
pub struct IdleVerifyingManager {
    target: Target,
    verify_after_idle: Duration,
}

impl std::fmt::Debug for IdleVerifyingManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleVerifyingManager")
            .field("verify_after_idle", &self.verify_after_idle)
            .finish_non_exhaustive()
    }
}

impl managed::Manager for IdleVerifyingManager {
    type Type = RedisConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<RedisConnection, RedisError> {
        match &self.target {
            Target::Single(client, config) => client
                .get_multiplexed_async_connection_with_config(config)
                .await
                .map(RedisConnection::Single),
            Target::Cluster(client) => client
                .get_async_connection()
                .await
                .map(RedisConnection::Cluster),
        }
    }

    async fn recycle(
        &self,
        connection: &mut RedisConnection,
        metrics: &Metrics,
    ) -> RecycleResult<RedisError> {
        if metrics.last_used() < self.verify_after_idle {
            return Ok(());
        }
        redis::cmd("PING")
            .query_async::<String>(connection)
            .await
            .map(drop)
            .map_err(RecycleError::Backend)
    }
}

/// The cluster slot of `key` (CRC16/XMODEM of its hash tag, modulo 16384), as Redis computes it.
pub fn slot_of(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            bytes[open + 1..]
                .iter()
                .position(|b| *b == b'}')
                .filter(|len| *len > 0)
                .map(|len| &bytes[open + 1..open + 1 + len])
        })
        .unwrap_or(bytes);
    crc16::State::<crc16::XMODEM>::calculate(tagged) % 16384
}

/// Why the pool could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisPoolError {
    #[error("invalid Redis URL")]
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
        let target = if settings.cluster_urls.is_empty() {
            let connection_config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(settings.connect_timeout))
                .set_response_timeout(Some(settings.command_timeout));
            Target::Single(
                redis::Client::open(settings.url.as_str())?,
                connection_config,
            )
        } else {
            Target::Cluster(
                ClusterClient::builder(settings.cluster_urls.clone())
                    .connection_timeout(settings.connect_timeout)
                    .response_timeout(settings.command_timeout)
                    // A resharding or failover answers MOVED, ASK or TRYAGAIN for a moment:
                    // retried within the command timeout, then a 503.
                    .retries(2)
                    .build()?,
            )
        };
        let manager = IdleVerifyingManager {
            target,
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
        F: AsyncFnOnce(&mut RedisConnection) -> Result<T, RedisError>,
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
        // On a cluster every key of a pattern with a hash tag lives on the node serving that
        // tag's slot: SCAN goes there.
        let slot = slot_of(pattern);
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<String>) = self
                .run(async |connection| match connection {
                    RedisConnection::Single(single) => scan.query_async(single).await,
                    RedisConnection::Cluster(cluster) => {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                            Route::new(slot, SlotAddr::Master),
                        ));
                        let reply = cluster.route_command(scan, routing).await?;
                        redis::FromRedisValue::from_redis_value(reply).map_err(RedisError::from)
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_redis_computes() {
        // CLUSTER KEYSLOT foo = 12182; a hash tag decides the slot alone.
        assert_eq!(slot_of("foo"), 12182);
        assert_eq!(slot_of("{foo}:line:head"), 12182);
        assert_eq!(
            slot_of("{ticketing}:line:seq"),
            slot_of("{ticketing}:line:head")
        );
        assert_eq!(
            slot_of("{}foo"),
            slot_of("{}foo"),
            "an empty tag hashes the whole key"
        );
    }
}
