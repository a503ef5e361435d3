//! [`WaitingQueue`] on Redis: every operation is one Lua script, so it is atomic and any number
//! of app instances share one queue and one admission budget.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;
use ticketing_domain::ids::UserId;
use ticketing_domain::queue::{
    AdmissionReport, ClientKey, QueueEntry, QueueError, QueuePolicy, QueueToken, TokenState,
    WaitingQueue,
};
use ticketing_domain::InfrastructureError;

use crate::pool::RedisPool;
use crate::KeySpace;

const COMMON: &str = include_str!("queue_scripts/common.lua");

/// Most tokens one admission or clean-up step handles, so no script blocks Redis for long.
const STEP_BATCH: u32 = 1000;

struct Scripts {
    enter: Script,
    inspect: Script,
    remove: Script,
    admit: Script,
}

impl Scripts {
    fn load() -> Self {
        let with_common = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Self {
            enter: with_common(include_str!("queue_scripts/enter.lua")),
            inspect: with_common(include_str!("queue_scripts/inspect.lua")),
            remove: with_common(include_str!("queue_scripts/remove.lua")),
            admit: with_common(include_str!("queue_scripts/admit.lua")),
        }
    }
}

/// The names of the queue's keys, in the order the scripts expect them.
#[derive(Debug, Clone)]
struct QueueKeys {
    shared: [String; 6],
    sequence: String,
    keys: KeySpace,
}

impl QueueKeys {
    fn new(keys: &KeySpace) -> Self {
        Self {
            shared: [
                keys.key("queue:waiting"),
                keys.key("queue:active"),
                keys.key("queue:last_seen"),
                keys.key("queue:user_token"),
                keys.key("queue:token_user"),
                keys.key("queue:admission"),
            ],
            sequence: keys.key("queue:sequence"),
            keys: keys.clone(),
        }
    }

    fn client_entries(&self, client: &ClientKey) -> String {
        self.keys.key(&format!("queue:entries:{}", client.as_str()))
    }
}

/// The waiting queue kept in Redis.
#[derive(Clone)]
pub struct RedisWaitingQueue {
    pool: RedisPool,
    keys: Arc<QueueKeys>,
    policy: QueuePolicy,
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for RedisWaitingQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisWaitingQueue")
            .field("keys", &self.keys)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn unexpected(what: impl std::fmt::Display) -> QueueError {
    QueueError::Infrastructure(InfrastructureError::Unexpected(format!(
        "waiting queue script answered {what}"
    )))
}

fn parse_user(user: &str) -> Result<Option<UserId>, QueueError> {
    if user.is_empty() {
        return Ok(None);
    }
    let id = user.parse::<i64>().map_err(unexpected)?;
    UserId::new(id).map(Some).map_err(unexpected)
}

fn instant(epoch_millis: i64) -> Result<DateTime<Utc>, QueueError> {
    DateTime::from_timestamp_millis(epoch_millis)
        .ok_or_else(|| unexpected(format!("an impossible time {epoch_millis}")))
}

fn state(status: &str, user: &str, number: i64) -> Result<Option<TokenState>, QueueError> {
    let user = parse_user(user)?;
    match status {
        "ACTIVE" => Ok(Some(TokenState::Active {
            user,
            until: instant(number)?,
        })),
        "WAITING" => Ok(Some(TokenState::Waiting {
            user,
            position: u64::try_from(number).map_err(unexpected)?,
        })),
        "UNKNOWN" => Ok(None),
        other => Err(unexpected(format!("the status {other}"))),
    }
}

/// 128 random bits, hex: unguessable, short, and of the shape [`QueueToken`] accepts.
fn mint_token() -> Result<QueueToken, QueueError> {
    let bits: u128 = rand::random();
    QueueToken::parse(&format!("{bits:032x}")).map_err(unexpected)
}

impl RedisWaitingQueue {
    /// A queue under `keys`, enforcing `policy`.
    pub fn new(pool: RedisPool, keys: &KeySpace, policy: QueuePolicy) -> Self {
        Self {
            pool,
            keys: Arc::new(QueueKeys::new(keys)),
            policy,
            scripts: Arc::new(Scripts::load()),
        }
    }

    fn idle_ms(&self) -> u64 {
        millis(self.policy.waiting_idle_timeout)
    }
}

#[async_trait]
impl WaitingQueue for RedisWaitingQueue {
    async fn enter(
        &self,
        user: Option<UserId>,
        client: &ClientKey,
    ) -> Result<QueueEntry, QueueError> {
        let new_token = mint_token()?;
        let mut invocation = self.scripts.enter.prepare_invoke();
        invocation
            .key(&self.keys.shared[..])
            .key(&self.keys.sequence)
            .key(self.keys.client_entries(client))
            .arg(new_token.as_str())
            .arg(user.map(|u| u.get().to_string()).unwrap_or_default())
            .arg(self.policy.max_active.get())
            .arg(self.policy.admit_per_second.get())
            .arg(millis(self.policy.active_ttl))
            .arg(self.idle_ms())
            .arg(self.policy.entry_rate_per_client.map_or(0, |r| r.get()));
        let (status, token, user, number): (String, String, String, i64) = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        if status == "RATE_LIMITED" {
            return Err(QueueError::RateLimited {
                retry_after: Duration::from_millis(u64::try_from(number).unwrap_or(1000)),
            });
        }
        let token = QueueToken::parse(&token).map_err(unexpected)?;
        match state(&status, &user, number)? {
            Some(state) => Ok(QueueEntry { token, state }),
            None => Err(unexpected("UNKNOWN for a new entry")),
        }
    }

    async fn inspect(
        &self,
        token: &QueueToken,
        keep_alive: bool,
    ) -> Result<Option<TokenState>, QueueError> {
        let mut invocation = self.scripts.inspect.prepare_invoke();
        invocation
            .key(&self.keys.shared[..])
            .arg(token.as_str())
            .arg(self.idle_ms())
            .arg(if keep_alive { "1" } else { "0" });
        let (status, user, number): (String, String, i64) = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        state(&status, &user, number)
    }

    async fn remove(&self, token: &QueueToken) -> Result<bool, QueueError> {
        let mut invocation = self.scripts.remove.prepare_invoke();
        invocation
            .key(&self.keys.shared[..])
            .arg(token.as_str())
            .arg(self.idle_ms());
        let was_live: i64 = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        Ok(was_live == 1)
    }

    async fn admit(&self) -> Result<AdmissionReport, QueueError> {
        let mut invocation = self.scripts.admit.prepare_invoke();
        invocation
            .key(&self.keys.shared[..])
            .arg(self.policy.max_active.get())
            .arg(self.policy.admit_per_second.get())
            .arg(millis(self.policy.active_ttl))
            .arg(self.idle_ms())
            .arg(STEP_BATCH);
        let (admitted, expired, dropped_idle, waiting, active): (u32, u32, u32, u64, u64) = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        Ok(AdmissionReport {
            admitted,
            expired,
            dropped_idle,
            waiting,
            active,
        })
    }
}
