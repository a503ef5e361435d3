//! Checks an operator wants before a sale: a Redis that would silently lose places in line, or
//! pools that do not fit in the servers' connection limits. Warned about; refused in production.

use anyhow::bail;
use ticketing_postgres::PgPool;
use ticketing_redis::RedisPool;

use crate::Settings;

/// What the stores say of themselves; `None` where a store would not tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFacts {
    pub redis_appendonly: Option<String>,
    pub redis_save: Option<String>,
    pub redis_maxmemory_policy: Option<String>,
    pub redis_maxclients: Option<u64>,
    pub postgres_max_connections: Option<i64>,
}

/// PostgreSQL keeps this many connections for superusers by default.
const RESERVED_POSTGRES_CONNECTIONS: i64 = 3;

/// What is wrong with these stores for these settings, in words an operator acts on.
pub fn findings(facts: &StoreFacts, settings: &Settings) -> Vec<String> {
    let mut found = Vec::new();
    let appendonly = facts.redis_appendonly.as_deref();
    let save = facts.redis_save.as_deref();
    if appendonly == Some("no") && save.is_some_and(|rules| rules.trim().is_empty()) {
        found.push(
            "Redis keeps nothing on disk (appendonly no, no save rules): a restart loses every \
             place in line and every session; set appendonly yes"
                .to_string(),
        );
    }
    if let Some(policy) = facts
        .redis_maxmemory_policy
        .as_deref()
        .filter(|policy| *policy != "noeviction")
    {
        found.push(format!(
            "Redis evicts keys when full (maxmemory-policy {policy}): an evicted key is a lost \
             place in line; set maxmemory-policy noeviction"
        ));
    }
    let redis_pool = settings.redis.pool_max_size as u64;
    if let Some(maxclients) = facts.redis_maxclients.filter(|max| redis_pool > *max) {
        found.push(format!(
            "the Redis pool ({redis_pool}) is larger than Redis's maxclients ({maxclients})"
        ));
    }
    let postgres_pool = settings.database.pool_max_size as i64;
    if let Some(max) = facts
        .postgres_max_connections
        .filter(|max| postgres_pool > max - RESERVED_POSTGRES_CONNECTIONS)
    {
        found.push(format!(
            "the PostgreSQL pool ({postgres_pool}) does not fit in max_connections ({max}, \
             {RESERVED_POSTGRES_CONNECTIONS} reserved); with N instances it must be below \
             max_connections / N"
        ));
    }
    found
}

/// Reads what the stores say; a store that cannot be reached is skipped (readiness reports it).
pub async fn gather(postgres: &PgPool, redis: &RedisPool) -> StoreFacts {
    let redis_setting =
        |name: &'static str| async move { redis.config_get(name).await.ok().flatten() };
    StoreFacts {
        redis_appendonly: redis_setting("appendonly").await,
        redis_save: redis_setting("save").await,
        redis_maxmemory_policy: redis_setting("maxmemory-policy").await,
        redis_maxclients: redis_setting("maxclients")
            .await
            .and_then(|max| max.parse().ok()),
        postgres_max_connections: ticketing_postgres::pool::max_connections(postgres)
            .await
            .ok(),
    }
}

/// Warns of every finding; with `APP_ENV=production`, refuses to start on any.
///
/// # Errors
/// In production, the findings.
pub fn judge(found: &[String], settings: &Settings) -> anyhow::Result<()> {
    for finding in found {
        tracing::warn!(%finding, "start-up check");
    }
    if settings.environment == "production" && !found.is_empty() {
        bail!("refusing to start in production: {}", found.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(environment: &str) -> Settings {
        let mut vars = vec![("APP_CONFIG_DIR".to_string(), "/nonexistent".to_string())];
        if !environment.is_empty() {
            vars.push(("APP_ENV".to_string(), environment.to_string()));
        }
        Settings::load_from(vars).expect("loads")
    }

    fn healthy() -> StoreFacts {
        StoreFacts {
            redis_appendonly: Some("yes".into()),
            redis_save: Some("3600 1".into()),
            redis_maxmemory_policy: Some("noeviction".into()),
            redis_maxclients: Some(10_000),
            postgres_max_connections: Some(100),
        }
    }

    #[test]
    fn healthy_stores_raise_nothing() {
        assert!(findings(&healthy(), &settings("")).is_empty());
        assert!(
            findings(&StoreFacts::default(), &settings("")).is_empty(),
            "unknown is not wrong"
        );
    }

    #[test]
    fn a_redis_without_persistence_or_with_eviction_is_found() {
        let facts = StoreFacts {
            redis_appendonly: Some("no".into()),
            redis_save: Some(String::new()),
            redis_maxmemory_policy: Some("allkeys-lru".into()),
            ..healthy()
        };
        let found = findings(&facts, &settings(""));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("appendonly yes"));
        assert!(found[1].contains("noeviction"));
    }

    #[test]
    fn pools_larger_than_the_servers_allow_are_found() {
        let facts = StoreFacts {
            redis_maxclients: Some(4),
            postgres_max_connections: Some(10),
            ..healthy()
        };
        assert_eq!(findings(&facts, &settings("")).len(), 2);
    }

    #[test]
    fn production_refuses_what_development_only_warns_about() {
        let found = vec!["Redis keeps nothing on disk".to_string()];
        assert!(judge(&found, &settings("")).is_ok());
        assert!(judge(&found, &settings("production")).is_err());
        assert!(judge(&[], &settings("production")).is_ok());
    }
}
