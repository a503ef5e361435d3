//! A migrated PostgreSQL schema per test.

use ticketing_postgres::pool::build_pool;
use ticketing_postgres::{PgPool, PgPoolSettings};
use tokio::sync::OnceCell;

use crate::{run_detached, unique_suffix};

const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/ticketing_test";

static DATABASE_READY: OnceCell<()> = OnceCell::const_new();

/// Every stored instant, by table: what [`TestDatabase::pass`] moves back. A migration that
/// adds a timestamp column adds it here (a test in ticketing_postgres checks the two agree).
pub const STORED_INSTANTS: &[(&str, &[&str])] = &[
    ("concerts", &["created_at"]),
    ("performances", &["starts_at", "created_at"]),
    ("seats", &["hold_expires_at"]),
    ("users", &["created_at"]),
    ("wallets", &["updated_at"]),
    ("wallet_entries", &["created_at"]),
    ("reservations", &["expires_at", "created_at", "updated_at"]),
    ("payments", &["paid_at"]),
    ("idempotency_keys", &["created_at"]),
    (
        "outbox_events",
        &["occurred_at", "claimed_until", "sent_at"],
    ),
    ("rooms", &["closes_at", "opens_at", "created_at"]),
    ("accounts", &["created_at"]),
];

/// A schema of its own, migrated, dropped with this value.
pub struct TestDatabase {
    schema: String,
    base_url: String,
    url: String,
    pool: PgPool,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn base_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_string())
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {url}: {e} (run `make test`)"));
    tokio::spawn(connection);
    client
}

impl TestDatabase {
    /// A new schema with every migration applied.
    pub async fn new() -> Self {
        let base_url = base_url();
        let url_for_setup = base_url.clone();
        DATABASE_READY
            .get_or_init(|| async move {
                run_detached(move || {
                    Box::pin(async move {
                        ticketing_postgres::migrations::create_database_if_missing(&url_for_setup)
                            .await
                            .unwrap_or_else(|e| {
                                panic!("cannot prepare the test database: {e} (run `make test`)")
                            })
                    })
                });
            })
            .await;

        let schema = format!("test_{}", unique_suffix());
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options=-c%20search_path%3D{schema}");

        let (setup_base, setup_schema, setup_url) = (base_url.clone(), schema.clone(), url.clone());
        run_detached(move || {
            Box::pin(async move {
                connect(&setup_base)
                    .await
                    .batch_execute(&format!("CREATE SCHEMA {setup_schema}"))
                    .await
                    .expect("create the test schema");
                ticketing_postgres::migrations::run_pending(&setup_url)
                    .await
                    .expect("migrate the test schema");
            })
        });

        let mut settings = PgPoolSettings::new(url.clone());
        settings.max_size = 8;
        let pool = build_pool(&settings).expect("build the test pool");
        Self {
            schema,
            base_url,
            url,
            pool,
        }
    }

    /// A new schema holding the demo data set.
    pub async fn with_demo_data() -> Self {
        let database = Self::new().await;
        ticketing_postgres::demo_data::load(&database.pool)
            .await
            .expect("load the demo data");
        database
    }

    /// The URL that reaches this schema (with `search_path` set).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A pool on this schema.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Runs plain SQL in this schema (fixtures and assertions).
    pub async fn execute(&self, sql: &str) {
        let client = connect(&self.url).await;
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("fixture SQL failed: {e}\n{sql}"));
    }

    /// Opens a transaction in this schema, runs `sql` in it and keeps it open (with its locks)
    /// until the returned client is dropped: for making the service wait on a lock.
    pub async fn open_transaction(&self, sql: &str) -> tokio_postgres::Client {
        let client = connect(&self.url).await;
        client
            .batch_execute(&format!("BEGIN; {sql}"))
            .await
            .unwrap_or_else(|e| panic!("transaction SQL failed: {e}\n{sql}"));
        client
    }

    /// Lets `elapsed` pass for what is stored: PostgreSQL's `now()` is the store's clock and a
    /// test cannot move it, so every stored instant moves back by `elapsed` instead. A hold
    /// that lapses in 1 s has lapsed after `pass(Duration::from_secs(2))`, with no wait.
    pub async fn pass(&self, elapsed: std::time::Duration) {
        let step = format!("make_interval(secs => {})", elapsed.as_secs_f64());
        let statements: Vec<String> = STORED_INSTANTS
            .iter()
            .map(|(table, columns)| {
                let sets: Vec<String> = columns
                    .iter()
                    .map(|column| format!("{column} = {column} - {step}"))
                    .collect();
                format!("UPDATE {table} SET {};", sets.join(", "))
            })
            .collect();
        self.execute(&statements.join("\n")).await;
    }

    /// Runs a query returning one `i64` (counts, sums) in this schema.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        let client = connect(&self.url).await;
        let row = client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("query failed: {e}\n{sql}"));
        row.get(0)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (url, schema) = (self.base_url.clone(), self.schema.clone());
        run_detached(move || {
            Box::pin(async move {
                let _ = connect(&url)
                    .await
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await;
            })
        });
    }
}
