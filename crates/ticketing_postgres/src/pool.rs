//! The connection pool: bounded in size and in every wait, so a slow or absent database turns
//! into a fast error instead of a pile of hanging requests.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool::managed::{Hook, HookError, Manager, Metrics, Object, Pool, RecycleResult};
use diesel::ConnectionError;
use diesel_async::pooled_connection::deadpool::BuildError;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError as ConnectionPoolError, RecyclingMethod,
};
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use ticketing_domain::InfrastructureError;

use crate::error;

/// A pool of PostgreSQL connections.
pub type PgPool = Pool<BackingOffManager>;
/// A connection borrowed from a [`PgPool`] (named apart from diesel's own `PgConnection`).
pub type PooledConnection = Object<BackingOffManager>;

/// How long new connections are not tried after one was refused.
const CONNECT_BACKOFF: Duration = Duration::from_millis(250);

/// diesel-async's connection manager, which stops trying new connections for a moment after
/// one failed. A server that is starting up refuses every connection ("the database system is
/// starting up") and forks a process for each attempt: under load, one attempt per request
/// kept it busy refusing and made those requests' 503s slow (docs/resilience.md). Within the
/// back-off a request that needs a new connection is answered unavailable at once; connections
/// already open are used as before.
pub struct BackingOffManager {
    connections: AsyncDieselConnectionManager<AsyncPgConnection>,
    refused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for BackingOffManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackingOffManager").finish_non_exhaustive()
    }
}

impl BackingOffManager {
    fn new(connections: AsyncDieselConnectionManager<AsyncPgConnection>) -> Self {
        Self {
            connections,
            refused_until: Mutex::new(None),
        }
    }

    fn refused_until(&self) -> Option<Instant> {
        self.refused_until.lock().map_or(None, |until| *until)
    }

    fn set_refused_until(&self, until: Option<Instant>) {
        if let Ok(mut refused_until) = self.refused_until.lock() {
            *refused_until = until;
        }
    }
}

impl Manager for BackingOffManager {
    type Type = AsyncPgConnection;
    type Error = ConnectionPoolError;

    async fn create(&self) -> Result<AsyncPgConnection, ConnectionPoolError> {
        if self
            .refused_until()
            .is_some_and(|until| Instant::now() < until)
        {
            return Err(ConnectionPoolError::ConnectionError(
                ConnectionError::BadConnection(
                    "not trying: a connection was refused a moment ago".to_string(),
                ),
            ));
        }
        match self.connections.create().await {
            Ok(connection) => {
                self.set_refused_until(None);
                Ok(connection)
            }
            Err(refused) => {
                self.set_refused_until(Some(Instant::now() + CONNECT_BACKOFF));
                Err(refused)
            }
        }
    }

    async fn recycle(
        &self,
        connection: &mut AsyncPgConnection,
        metrics: &Metrics,
    ) -> RecycleResult<ConnectionPoolError> {
        self.connections.recycle(connection, metrics).await
    }
}

/// How to reach PostgreSQL and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgPoolSettings {
    pub url: String,
    pub max_size: usize,
    /// Longest wait for a free connection before answering "unavailable".
    pub checkout_timeout: Duration,
    /// Longest wait for a new connection to be established.
    pub connect_timeout: Duration,
    /// Server-side limit on any one statement.
    pub statement_timeout: Duration,
}

impl PgPoolSettings {
    /// Settings for `url` with conservative defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_size: 16,
            checkout_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
        }
    }

    /// The URL with the client-side socket limits added when the operator did not set them:
    /// `connect_timeout` and `tcp_user_timeout` make a dead server fail fast instead of hanging.
    pub fn connection_url(&self) -> String {
        let mut url = self.url.clone();
        let mut add = |name: &str, value: String| {
            if !url.contains(&format!("{name}=")) {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&format!("{name}={value}"));
            }
        };
        add(
            "connect_timeout",
            self.connect_timeout.as_secs().max(1).to_string(),
        );
        add(
            "tcp_user_timeout",
            (self.connect_timeout.as_millis() as u64).to_string(),
        );
        url
    }
}

/// Builds the pool; no connection is opened until one is needed.
///
/// # Errors
/// When the pool settings are inconsistent (never for the settings built by this crate).
pub fn build_pool(settings: &PgPoolSettings) -> Result<PgPool, BuildError> {
    let mut manager_config = ManagerConfig::default();
    // A closed connection is detected without a round trip (`is_broken`), so checking out
    // costs nothing extra on the hot path.
    manager_config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        settings.connection_url(),
        manager_config,
    );
    // A transaction whose client went away mid-way (a request future dropped when its client
    // disconnected) returns its connection to the pool still open, holding its row locks until
    // the connection is checked out again; the server ends such a session once it has sat idle
    // in its transaction for the statement timeout, so those locks (seats, outbox rows) are let
    // go of within it even when nobody checks the connection out.
    let set_statement_timeout = format!(
        "SET statement_timeout = {ms}; SET idle_in_transaction_session_timeout = {ms}",
        ms = settings.statement_timeout.as_millis()
    );
    Pool::builder(BackingOffManager::new(manager))
        .max_size(settings.max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(settings.checkout_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .post_create(Hook::async_fn(
            move |connection: &mut AsyncPgConnection, _| {
                let statement = set_statement_timeout.clone();
                Box::pin(async move {
                    connection
                        .batch_execute(&statement)
                        .await
                        .map_err(|e| HookError::Backend(ConnectionPoolError::QueryError(e)))
                })
            },
        ))
        .build()
}

/// Borrows a connection, translating pool failures.
pub(crate) async fn checkout(pool: &PgPool) -> Result<PooledConnection, InfrastructureError> {
    pool.get().await.map_err(error::from_pool)
}

/// Answers whether PostgreSQL runs a trivial statement through the pool.
///
/// # Errors
/// [`InfrastructureError::Unavailable`] when it does not.
pub async fn ping(pool: &PgPool) -> Result<(), InfrastructureError> {
    let mut connection = checkout(pool).await?;
    connection
        .batch_execute("SELECT 1")
        .await
        .map_err(error::from_diesel)
}

/// The server's `max_connections`, for the start-up check that the pools fit in it.
///
/// # Errors
/// [`InfrastructureError`] when PostgreSQL cannot be reached.
pub async fn max_connections(pool: &PgPool) -> Result<i64, InfrastructureError> {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        setting: String,
    }
    let mut connection = checkout(pool).await?;
    // A server setting, not a table: sql_query is the only way to read it.
    let row: Setting = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query("SELECT setting FROM pg_settings WHERE name = 'max_connections'"),
        &mut connection,
    )
    .await
    .map_err(error::from_diesel)?;
    row.setting
        .parse()
        .map_err(|cause| error::corrupt("max_connections setting", cause))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// A port that accepts connections and closes them at once, counting them: a server that
    /// refuses everyone.
    async fn refusing_server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        let attempts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&attempts);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        (
            format!("postgres://postgres@127.0.0.1:{port}/nowhere"),
            attempts,
        )
    }

    #[tokio::test]
    async fn after_a_refused_connection_new_ones_are_not_tried_for_a_moment() {
        let (url, attempts) = refusing_server().await;
        let pool = build_pool(&PgPoolSettings::new(url)).expect("a pool");

        let first = checkout(&pool).await;
        let tried_once = attempts.load(Ordering::SeqCst);
        for _ in 0..20 {
            assert!(matches!(
                checkout(&pool).await,
                Err(InfrastructureError::Unavailable(_))
            ));
        }
        let during_the_back_off = attempts.load(Ordering::SeqCst);
        tokio::time::sleep(CONNECT_BACKOFF + Duration::from_millis(50)).await;
        let _ = checkout(&pool).await;

        assert!(matches!(first, Err(InfrastructureError::Unavailable(_))));
        assert_eq!(tried_once, 1);
        assert_eq!(during_the_back_off, 1, "20 requests, no new attempt");
        assert_eq!(attempts.load(Ordering::SeqCst), 2, "tried again after it");
    }
}
