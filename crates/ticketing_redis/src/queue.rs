//! [`WaitingQueue`] on Redis: every operation is one Lua script, so it is atomic and any number
//! of app instances share one line and one admission budget.
//!
//! Per person, Redis keeps only what cannot be signed into the token: a bit per liveness bucket
//! (did they poll lately), a member of `left` if they left while waiting, and, for a token bound
//! to a user, one hash field for the user's one place. Admissions and revocations go to a stream
//! every instance follows, so token checks and polls are answered from each instance's memory.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;
use ticketing_domain::ids::UserId;
use ticketing_domain::queue::{
    AdmissionReport, ClientKey, Entered, LineChanges, LineEvent, LineStep, LineSync, QueueError,
    QueuePolicy, Seq, SyncCursor, Ticket, TicketState, WaitingQueue,
};
use ticketing_domain::InfrastructureError;

use crate::pool::RedisPool;
use crate::KeySpace;

const COMMON: &str = include_str!("queue_scripts/common.lua");

/// Most tokens one step admits or expires, so no script blocks Redis for long.
const STEP_BATCH: u32 = 1000;
/// Most places at the front one step walks past (skipping abandoned ones).
const WALK_LIMIT: u32 = 5000;

struct Scripts {
    enter: Script,
    lookup: Script,
    revoke: Script,
    advance: Script,
}

impl Scripts {
    fn load() -> Self {
        let with_common = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Self {
            enter: with_common(include_str!("queue_scripts/enter.lua")),
            lookup: with_common(include_str!("queue_scripts/lookup.lua")),
            revoke: with_common(include_str!("queue_scripts/revoke.lua")),
            advance: with_common(include_str!("queue_scripts/advance.lua")),
        }
    }
}

/// The names of the line's keys, in the order the scripts expect them.
#[derive(Debug, Clone)]
struct QueueKeys {
    shared: [String; 9],
    keys: KeySpace,
}

impl QueueKeys {
    fn new(keys: &KeySpace) -> Self {
        Self {
            shared: [
                keys.key("line:epoch"),
                keys.key("line:seq"),
                keys.key("line:head"),
                keys.key("line:active"),
                keys.key("line:left"),
                keys.key("line:log"),
                keys.key("line:admission"),
                keys.key("line:users"),
                keys.key("line:seen:"),
            ],
            keys: keys.clone(),
        }
    }

    fn client_entries(&self, client: &ClientKey) -> String {
        self.keys.key(&format!("line:entries:{}", client.as_str()))
    }
}

/// The waiting line kept in Redis.
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
        "waiting line script answered {what}"
    )))
}

fn instant(epoch_millis: i64) -> Result<DateTime<Utc>, QueueError> {
    DateTime::from_timestamp_millis(epoch_millis)
        .ok_or_else(|| unexpected(format!("an impossible time {epoch_millis}")))
}

fn count<T: TryFrom<i64>>(value: i64) -> Result<T, QueueError> {
    T::try_from(value).map_err(|_| unexpected(format!("a count of {value}")))
}

fn state(status: &str, number: i64) -> Result<Option<TicketState>, QueueError> {
    match status {
        "ACTIVE" => Ok(Some(TicketState::Active {
            until: instant(number)?,
        })),
        "WAITING" => Ok(Some(TicketState::Waiting {
            position: count(number)?,
        })),
        "UNKNOWN" => Ok(None),
        other => Err(unexpected(format!("the status {other}"))),
    }
}

fn parse_epoch(text: &str) -> Result<u32, QueueError> {
    text.parse()
        .map_err(|_| unexpected(format!("the epoch {text:?}")))
}

fn parse_seq(text: &str) -> Result<Seq, QueueError> {
    text.parse()
        .map_err(|_| unexpected(format!("the place {text:?}")))
}

/// A cursor is `epoch:log id`, so a cursor of a line that was recreated is never continued.
fn cursor_parts(cursor: &SyncCursor) -> (&str, &str) {
    cursor.as_str().split_once(':').unwrap_or(("", ""))
}

/// The events of one step's answer: triples of kind, places, expiry.
fn changes(mode: &str, flat: &[String]) -> Result<LineChanges, QueueError> {
    let triples = flat.chunks_exact(3);
    match mode {
        "snapshot" => {
            let mut active = Vec::new();
            let mut left = Vec::new();
            for triple in triples {
                match triple[0].as_str() {
                    "a" => {
                        let expiry: i64 = triple[2]
                            .parse()
                            .map_err(|_| unexpected(format!("the expiry {:?}", triple[2])))?;
                        active.push((parse_seq(&triple[1])?, instant(expiry)?));
                    }
                    "l" => left.push(parse_seq(&triple[1])?),
                    other => return Err(unexpected(format!("the snapshot entry {other}"))),
                }
            }
            Ok(LineChanges::Snapshot { active, left })
        }
        "since" => {
            let mut events = Vec::new();
            for triple in triples {
                match triple[0].as_str() {
                    "a" => {
                        let expiry: i64 = triple[2]
                            .parse()
                            .map_err(|_| unexpected(format!("the expiry {:?}", triple[2])))?;
                        let seqs = triple[1]
                            .split(',')
                            .map(parse_seq)
                            .collect::<Result<Vec<_>, _>>()?;
                        events.push(LineEvent::Admitted {
                            seqs,
                            until: instant(expiry)?,
                        });
                    }
                    "r" => events.push(LineEvent::Revoked {
                        seq: parse_seq(&triple[1])?,
                    }),
                    other => return Err(unexpected(format!("the event {other}"))),
                }
            }
            Ok(LineChanges::Since(events))
        }
        other => Err(unexpected(format!("the mode {other}"))),
    }
}

/// What one step answers, as the script lays it out.
type StepReply = (
    i64,
    i64,
    i64,
    i64,
    i64,
    String,
    i64,
    i64,
    String,
    String,
    Vec<String>,
);

impl RedisWaitingQueue {
    /// A line under `keys`, enforcing `policy`.
    pub fn new(pool: RedisPool, keys: &KeySpace, policy: QueuePolicy) -> Self {
        Self {
            pool,
            keys: Arc::new(QueueKeys::new(keys)),
            policy,
            scripts: Arc::new(Scripts::load()),
        }
    }

    fn idle_ms(&self) -> u64 {
        millis(self.policy.waiting_idle_timeout).max(1)
    }

    /// Width of a liveness bucket: a quarter of the idle timeout, so a waiting person is
    /// dropped between the idle timeout and 1.25 times it after their last poll.
    fn bucket_ms(&self) -> u64 {
        (self.idle_ms() / 4).max(50)
    }
}

#[async_trait]
impl WaitingQueue for RedisWaitingQueue {
    async fn enter(&self, user: Option<UserId>, client: &ClientKey) -> Result<Entered, QueueError> {
        let candidate_epoch = rand::random::<u32>().max(1);
        let mut invocation = self.scripts.enter.prepare_invoke();
        invocation
            .key(&self.keys.shared[..])
            .key(self.keys.client_entries(client))
            .arg(candidate_epoch)
            .arg(user.map(|u| u.get().to_string()).unwrap_or_default())
            .arg(self.policy.max_active.get())
            .arg(self.policy.admit_per_second.get())
            .arg(millis(self.policy.active_ttl))
            .arg(self.idle_ms())
            .arg(self.bucket_ms())
            .arg(self.policy.entry_rate_per_client.map_or(0, |r| r.get()));
        let (status, epoch, seq, number): (String, String, i64, i64) = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        if status == "RATE_LIMITED" {
            return Err(QueueError::RateLimited {
                retry_after: Duration::from_millis(u64::try_from(number).unwrap_or(1000)),
            });
        }
        let ticket = Ticket {
            epoch: parse_epoch(&epoch)?,
            seq: count(seq)?,
            user,
        };
        match state(&status, number)? {
            Some(state) => Ok(Entered { ticket, state }),
            None => Err(unexpected("UNKNOWN for a new entry")),
        }
    }

    async fn lookup(
        &self,
        ticket: &Ticket,
        keep_alive: bool,
    ) -> Result<Option<TicketState>, QueueError> {
        let mut invocation = self.scripts.lookup.prepare_invoke();
        invocation
            .key(&self.keys.shared[..])
            .arg(ticket.epoch)
            .arg(ticket.seq)
            .arg(self.idle_ms())
            .arg(self.bucket_ms())
            .arg(if keep_alive { "1" } else { "0" });
        let (status, number): (String, i64) = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        state(&status, number)
    }

    async fn revoke(&self, ticket: &Ticket) -> Result<bool, QueueError> {
        let mut invocation = self.scripts.revoke.prepare_invoke();
        invocation
            .key(&self.keys.shared[..])
            .arg(ticket.epoch)
            .arg(ticket.seq)
            .arg(ticket.user.map(|u| u.get().to_string()).unwrap_or_default())
            .arg(self.idle_ms())
            .arg(self.bucket_ms());
        let was_live: i64 = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        Ok(was_live == 1)
    }

    async fn advance(&self, seen: &[Seq], since: &SyncCursor) -> Result<LineStep, QueueError> {
        let (cursor_epoch, cursor_id) = cursor_parts(since);
        let mut invocation = self.scripts.advance.prepare_invoke();
        invocation
            .key(&self.keys.shared[..])
            .arg(self.policy.max_active.get())
            .arg(self.policy.admit_per_second.get())
            .arg(millis(self.policy.active_ttl))
            .arg(self.idle_ms())
            .arg(self.bucket_ms())
            .arg(STEP_BATCH)
            .arg(WALK_LIMIT)
            .arg(cursor_epoch)
            .arg(cursor_id)
            .arg(seen);
        let reply: StepReply = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        let (
            admitted,
            expired,
            skipped,
            undecided,
            active,
            epoch,
            head,
            last,
            mode,
            cursor,
            events,
        ) = reply;
        let epoch = if epoch.is_empty() {
            None
        } else {
            Some(parse_epoch(&epoch)?)
        };
        let cursor = match epoch {
            Some(epoch) => SyncCursor::new(format!("{epoch}:{cursor}")),
            None => SyncCursor::default(),
        };
        Ok(LineStep {
            report: AdmissionReport {
                admitted: count(admitted)?,
                expired: count(expired)?,
                dropped_idle: count(skipped)?,
                waiting: count(undecided)?,
                active: count(active)?,
            },
            sync: LineSync {
                epoch,
                head: count(head)?,
                last_seq: count(last)?,
                cursor,
                changes: changes(&mode, &events)?,
            },
        })
    }
}
