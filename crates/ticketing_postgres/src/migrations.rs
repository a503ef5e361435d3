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
#[non_exhaustive]
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
    // sql_query here and below: advisory locks are PostgreSQL functions, not tables, and the
    // harness runs the migrations themselves.
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
    match applied {
        Ok(0) => tracing::info!("database schema is up to date; no migration to apply"),
        Ok(count) => tracing::info!(applied = count, "applied database migrations"),
        Err(_) => {}
    }
    applied
}

/// Creates the database `url` names when it does not exist yet, so a fresh server needs no
/// manual `createdb`. Returns whether it was created. Connects to the `postgres` maintenance
/// database of the same server; two callers racing is fine.
///
/// # Errors
/// [`MigrationError`] when the server cannot be reached or refuses to create the database.
pub async fn create_database_if_missing(url: &str) -> Result<bool, MigrationError> {
    use diesel::sql_types::Text;

    let name = database_name(url);
    let mut connection = AsyncPgConnection::establish(&with_database(url, "postgres")).await?;
    // sql_query: pg_database is the server's catalog, not a table of the schema; CREATE DATABASE
    // below is DDL, which the query builder does not write.
    let existing = diesel::sql_query("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(&name)
        .execute(&mut connection)
        .await?;
    if existing > 0 {
        return Ok(false);
    }
    let quoted = name.replace('"', "\"\"");
    match diesel::sql_query(format!("CREATE DATABASE \"{quoted}\""))
        .execute(&mut connection)
        .await
    {
        Ok(_) => {
            tracing::info!(database = %name, "created the database");
            Ok(true)
        }
        // Another process created it between our check and our CREATE.
        Err(diesel::result::Error::DatabaseError(kind, info))
            if matches!(kind, diesel::result::DatabaseErrorKind::UniqueViolation)
                || info.message().contains("already exists") =>
        {
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

/// The database name in a `postgres://` URL.
fn database_name(url: &str) -> String {
    let address = url.split('?').next().unwrap_or(url);
    match address.rsplit_once('/') {
        Some((host, name)) if !host.ends_with('/') && !name.is_empty() => name.to_string(),
        _ => "postgres".to_string(),
    }
}

/// `url` with its database replaced and its parameters kept (minus any `search_path` option,
/// which names a schema of the other database).
fn with_database(url: &str, database: &str) -> String {
    let (address, query) = url.split_once('?').unwrap_or((url, ""));
    let host_part = match address.rsplit_once('/') {
        Some((host, _)) if !host.ends_with('/') => host,
        _ => address,
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("options="))
        .collect();
    if kept.is_empty() {
        format!("{host_part}/{database}")
    } else {
        format!("{host_part}/{database}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_read_from_the_url() {
        assert_eq!(database_name("postgres://u@h:5432/app?x=1"), "app");
        assert_eq!(database_name("postgres://u@h:5432"), "postgres");
    }

    #[test]
    fn the_maintenance_url_keeps_host_and_connection_parameters() {
        assert_eq!(
            with_database(
                "postgres://u@h:5432/app_test?connect_timeout=3&options=-c%20search_path%3Dx",
                "postgres"
            ),
            "postgres://u@h:5432/postgres?connect_timeout=3"
        );
        assert_eq!(
            with_database("postgres://u@h/app", "postgres"),
            "postgres://u@h/postgres"
        );
    }
}
