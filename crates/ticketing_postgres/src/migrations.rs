//! The schema migrations of `migrations/`, embedded in the binary and run before serving.

use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// One lock per database and schema: instances migrating the same schema wait for each other,
/// tests migrating schemas of their own do not.
const MIGRATION_LOCK_KEY: &str =
    "hashtext('ticketing.migrations.' || current_database() || '.' || current_schema())";

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("cannot connect to PostgreSQL to migrate: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("cannot take the migration lock: {0}")]
    Lock(#[from] diesel::result::Error),
    #[error("a migration failed: {0}")]
    Migration(String),
}

/// Runs every pending migration against the schema `url` leads to (its `search_path`) and
/// returns how many ran.
///
/// Several instances starting at once migrate once: each waits for a session advisory lock
/// named after the database and schema. Needs a multi-threaded tokio runtime (the harness
/// uses `block_in_place`).
///
/// # Errors
/// [`MigrationError`] when PostgreSQL cannot be reached or a migration fails.
pub async fn run_pending(url: &str) -> Result<usize, MigrationError> {
    let mut connection = AsyncPgConnection::establish(url).await?;
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(&mut connection)
        .await?;
    let mut harness = AsyncMigrationHarness::new(connection);
    let applied = harness
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.len())
        .map_err(|e| MigrationError::Migration(e.to_string()));
    let mut connection = harness.into_inner();
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(&mut connection)
        .await?;
    if let Ok(count) = applied {
        tracing::info!(applied = count, "database migrations are up to date");
    }
    applied
}
