//! The `ticketing` subcommands.

use anyhow::Context;
use ticketing_postgres::pool::build_pool;

use crate::admin_cli::AdminCommand;
use crate::events_cli::TailCommand;
use crate::verify_draw_cli::VerifyDrawCommand;
use crate::{admin_cli, logging, Application, Settings};

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    Serve,
    Migrate,
    Seed,
    /// Back to the bare demo data set: for load tests, destroys sales data.
    ResetDemo,
    /// The admin API of a running server.
    Admin(AdminCommand),
    /// An example consumer of the event stream.
    Events(TailCommand),
    /// Checks a room's published draw from public data.
    VerifyDraw(VerifyDrawCommand),
}

const USAGE: &str = "usage: ticketing [serve|migrate|seed|reset-demo --yes|admin ...|events tail ...|verify-draw ...]
  serve    migrate, then serve HTTP (the default)
  migrate  run pending database migrations and exit
  seed     load the demo data set (idempotent) and exit
  reset-demo --yes
           for load tests: delete every reservation, payment and queue entry, free every
           seat, zero every balance, then load the demo data set
  admin    steer a running server's queue (ticketing admin --help)
  events tail
           follow the event stream in a consumer group, one JSON line per event
           (ticketing events --help)
  verify-draw --room ID [--url URL] [--arrival N]
           recompute a room's published draw and check its seed against its commitment
           (ticketing verify-draw --help)
Settings: config/default.toml, config/$APP_ENV.toml, then APP__SECTION__KEY, DATABASE_URL, REDIS_URL.";

/// The server `ticketing admin` and `ticketing verify-draw` talk to without `--url`.
fn default_admin_url() -> String {
    std::env::var("TICKETING_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_string())
}

impl Command {
    /// Parses the arguments after the program name.
    ///
    /// # Errors
    /// The usage text, for unknown or extra arguments and for `--help`.
    pub fn parse(arguments: &[String]) -> Result<Self, String> {
        if let [first, rest @ ..] = arguments {
            if first == "admin" {
                return AdminCommand::parse(rest, &default_admin_url()).map(Command::Admin);
            }
            if first == "events" {
                return TailCommand::parse(rest).map(Command::Events);
            }
            if first == "verify-draw" {
                return VerifyDrawCommand::parse(rest, &default_admin_url())
                    .map(Command::VerifyDraw);
            }
        }
        match arguments {
            [] => Ok(Command::Serve),
            [one] => match one.as_str() {
                "serve" => Ok(Command::Serve),
                "migrate" => Ok(Command::Migrate),
                "seed" => Ok(Command::Seed),
                _ => Err(USAGE.to_string()),
            },
            [command, confirmation] if command == "reset-demo" && confirmation == "--yes" => {
                Ok(Command::ResetDemo)
            }
            _ => Err(USAGE.to_string()),
        }
    }
}

/// Runs `command` to completion on a multi-threaded runtime (the migration harness needs one).
///
/// # Errors
/// Whatever stopped the command: settings, an unreachable database, a failed migration.
pub fn run(command: Command) -> anyhow::Result<()> {
    if let Command::Admin(admin) = &command {
        return run_admin(admin);
    }
    if let Command::Events(tail) = &command {
        return run_events(tail);
    }
    if let Command::VerifyDraw(verify) = &command {
        // Public data only: no settings, no admin token.
        return tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(crate::verify_draw_cli::run(verify));
    }
    let settings = Settings::load().context("loading settings")?;
    logging::init(settings.log.format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(async move {
            match command {
                Command::Serve => serve(settings).await,
                Command::Migrate => migrate(&settings).await,
                Command::Seed => seed(&settings).await,
                Command::ResetDemo => reset_demo(&settings).await,
                Command::Admin(admin) => run_admin_async(&admin).await,
                Command::Events(tail) => crate::events_cli::tail(&settings, &tail).await,
                Command::VerifyDraw(verify) => crate::verify_draw_cli::run(&verify).await,
            }
        })
}

/// `ticketing events tail`: stdout carries the events alone, so no log subscriber is installed
/// (its complaints go to stderr).
fn run_events(tail: &TailCommand) -> anyhow::Result<()> {
    let settings = Settings::load().context("loading settings")?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(crate::events_cli::tail(&settings, tail))
}

fn run_admin(admin: &AdminCommand) -> anyhow::Result<()> {
    if matches!(admin.action, admin_cli::AdminAction::Invite { .. }) {
        // Signed here with this command's own key: no server, no admin token.
        let key = std::env::var("APP__AUTH__INVITE_KEY").ok();
        let code = admin_cli::invite_code(admin, key.as_deref(), chrono::Utc::now())?;
        println!("{code}");
        return Ok(());
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run_admin_async(admin))
}

async fn run_admin_async(admin: &AdminCommand) -> anyhow::Result<()> {
    let token = std::env::var("APP__ADMIN__TOKEN").unwrap_or_default();
    if token.is_empty() {
        anyhow::bail!("set APP__ADMIN__TOKEN to the server's admin token");
    }
    admin_cli::run(admin, &token).await
}

/// Migrates, then serves until stopped.
///
/// # Errors
/// When migrating fails or the server cannot start.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Settings that cannot run are refused before anything is touched.
    settings.token_keys()?;
    settings.invite_key()?;
    settings.admin_token()?;
    settings.trusted_proxies()?;
    settings.identity()?;
    ticketing_redis::RedisPool::new(&settings.redis())
        .context("REDIS_URL or REDIS_CLUSTER_URLS")?;
    migrate(&settings).await?;
    check_stores(&settings).await?;
    let application = Application::build(&settings).await?;
    tracing::info!(
        host = %settings.server.host,
        port = application.port(),
        "serving HTTP"
    );
    application.run_until_stopped().await?;
    Ok(())
}

/// The start-up checks of [`crate::startup_checks`]: warnings, or a refusal in production.
async fn check_stores(settings: &Settings) -> anyhow::Result<()> {
    let postgres = build_pool(&settings.postgres()).context("building the PostgreSQL pool")?;
    let redis =
        ticketing_redis::RedisPool::new(&settings.redis()).context("building the Redis pool")?;
    let facts = crate::startup_checks::gather(&postgres, &redis).await;
    crate::startup_checks::judge(&crate::startup_checks::findings(&facts, settings), settings)
}

/// Runs pending migrations.
///
/// # Errors
/// When PostgreSQL cannot be reached or a migration fails.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let url = settings.postgres().connection_url();
    ticketing_postgres::migrations::create_database_if_missing(&url)
        .await
        .context("creating the database")?;
    ticketing_postgres::migrations::run_pending(&url)
        .await
        .context("migrating the database")?;
    Ok(())
}

/// Migrates, then loads the demo data set.
///
/// # Errors
/// When PostgreSQL cannot be reached.
pub async fn seed(settings: &Settings) -> anyhow::Result<()> {
    migrate(settings).await?;
    let pool = build_pool(&settings.postgres()).context("building the PostgreSQL pool")?;
    ticketing_postgres::demo_data::load(&pool)
        .await
        .context("loading the demo data")?;
    tracing::info!("demo data loaded");
    Ok(())
}

/// Migrates, empties every sale and the waiting queue, then loads the demo data set.
///
/// # Errors
/// When PostgreSQL or Redis cannot be reached.
pub async fn reset_demo(settings: &Settings) -> anyhow::Result<()> {
    migrate(settings).await?;
    let pool = build_pool(&settings.postgres()).context("building the PostgreSQL pool")?;
    ticketing_postgres::demo_data::reset(&pool)
        .await
        .context("resetting the demo data")?;
    let redis =
        ticketing_redis::RedisPool::new(&settings.redis()).context("building the Redis pool")?;
    let keys = ticketing_redis::KeySpace::new(&settings.redis.key_prefix);
    let deleted = redis
        .delete_matching(&keys.pattern())
        .await
        .context("emptying the waiting queue")?;
    tracing::info!(redis_keys_deleted = deleted, "demo data reset");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn serve_is_the_default() {
        assert_eq!(Command::parse(&args(&[])), Ok(Command::Serve));
    }

    #[test]
    fn each_subcommand_is_recognised() {
        assert_eq!(Command::parse(&args(&["serve"])), Ok(Command::Serve));
        assert_eq!(Command::parse(&args(&["migrate"])), Ok(Command::Migrate));
        assert_eq!(Command::parse(&args(&["seed"])), Ok(Command::Seed));
        assert!(matches!(
            Command::parse(&args(&["events", "tail"])),
            Ok(Command::Events(_))
        ));
        assert_eq!(
            Command::parse(&args(&["reset-demo", "--yes"])),
            Ok(Command::ResetDemo)
        );
    }

    #[test]
    fn unknown_arguments_get_the_usage() {
        assert!(Command::parse(&args(&["drop-everything"])).is_err());
        assert!(Command::parse(&args(&["serve", "now"])).is_err());
        assert!(
            Command::parse(&args(&["reset-demo"])).is_err(),
            "destroying data needs --yes"
        );
    }
}
