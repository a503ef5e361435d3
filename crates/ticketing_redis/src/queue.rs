//! [`WaitingQueue`] on Redis: every operation is one Lua script, so it is atomic and any number
//! of app instances share one line and one admission budget.
//!
//! Per person, Redis keeps only what cannot be signed into the token: a bit per liveness bucket
//! (did they poll lately), a member of `left` if they left while waiting, and, for a token bound
//! to a user, a field in each of two hashes (user -> place for the user's one place, place ->
//! user so that a place that expires or idles out lets go of its user). Admissions and
//! revocations go to a stream every instance follows, so token checks and polls are answered
//! from each instance's memory.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::{FromRedisValue, Script, Value};
use ticketing_domain::ids::UserId;
use ticketing_domain::queue::{
    AdmissionReport, ClientKey, ControlError, DrawRange, DrawSeed, Entered, InvalidSetting,
    LineChanges, LineDraw, LineEvent, LineSettings, LineStatus, LineStep, LineSync, QueueControls,
    QueueError, QueuePolicy, Seq, SettingsChange, SyncCursor, Ticket, TicketState, WaitingQueue,
};
use ticketing_domain::rooms::{RoomId, RoomMode};
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
    rejoin: Script,
    clear: Script,
    lookup: Script,
    revoke: Script,
    advance: Script,
    draw: Script,
    status: Script,
    change: Script,
}

impl Scripts {
    fn load() -> Self {
        let with_common = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Self {
            enter: with_common(include_str!("queue_scripts/enter.lua")),
            rejoin: with_common(include_str!("queue_scripts/rejoin.lua")),
            clear: with_common(include_str!("queue_scripts/clear.lua")),
            lookup: with_common(include_str!("queue_scripts/lookup.lua")),
            revoke: with_common(include_str!("queue_scripts/revoke.lua")),
            advance: with_common(include_str!("queue_scripts/advance.lua")),
            draw: with_common(include_str!("queue_scripts/draw.lua")),
            status: with_common(include_str!("queue_scripts/status.lua")),
            change: with_common(include_str!("queue_scripts/change.lua")),
        }
    }
}

/// The names of the line's keys, in the order the scripts expect them.
#[derive(Debug, Clone)]
struct QueueKeys {
    shared: [String; 14],
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
                keys.key("line:settings"),
                keys.key("line:draw"),
                keys.key("line:order"),
                keys.key("line:order_inverse"),
                keys.key("line:seq_users"),
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
    /// How the line admits: fifo, passthrough (nobody waits: the rate and capacity are not
    /// applied) or random (the waiting are admitted in random order, batch by batch).
    mode: RoomMode,
    /// How often the caller steps the line: a step may admit what falls due until the next.
    step_interval: Duration,
    /// What the line starts with, when it does not exist, besides the configured values: a
    /// pause and a scheduled opening (a room's stored settings).
    starts_with: Option<(bool, Option<DateTime<Utc>>)>,
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
    QueueError::Infrastructure(InfrastructureError::unexpected(format!(
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

/// A time the script wrote as whole milliseconds.
fn parse_instant(text: &str) -> Result<DateTime<Utc>, QueueError> {
    let millis: i64 = text
        .parse()
        .map_err(|_| unexpected(format!("the time {text:?}")))?;
    instant(millis)
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
                    "a" => active.push((parse_seq(&triple[1])?, parse_instant(&triple[2])?)),
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
                    "a" => events.push(LineEvent::Admitted {
                        seqs: triple[1]
                            .split(',')
                            .map(parse_seq)
                            .collect::<Result<Vec<_>, _>>()?,
                        until: parse_instant(&triple[2])?,
                    }),
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

/// Reads the fields of a script's array answer in order.
struct Fields(std::vec::IntoIter<Value>);

impl Fields {
    fn of(value: Value) -> Result<Self, QueueError> {
        match value {
            Value::Array(values) => Ok(Self(values.into_iter())),
            other => Err(unexpected(format!("{other:?} where an array was due"))),
        }
    }

    fn next<T: FromRedisValue>(&mut self) -> Result<T, QueueError> {
        let value = self
            .0
            .next()
            .ok_or_else(|| unexpected("fewer fields than due"))?;
        T::from_redis_value(value).map_err(unexpected)
    }
}

/// Settings as the scripts answer them: paused, rate, max_active, ttl_ms, opens_at (ms, 0 when
/// none).
fn settings(fields: &mut Fields) -> Result<LineSettings, QueueError> {
    let paused: i64 = fields.next()?;
    let rate: i64 = fields.next()?;
    let max_active: i64 = fields.next()?;
    let ttl_ms: i64 = fields.next()?;
    let opens_at: i64 = fields.next()?;
    let positive = |value: i64| {
        u32::try_from(value)
            .ok()
            .and_then(std::num::NonZeroU32::new)
            .ok_or_else(|| unexpected(format!("the setting {value}")))
    };
    Ok(LineSettings {
        paused: paused == 1,
        admit_per_second: positive(rate)?,
        max_active: positive(max_active)?,
        active_ttl: Duration::from_millis(count(ttl_ms)?),
        opens_at: match opens_at {
            0 => None,
            at => Some(instant(at)?),
        },
    })
}

/// A seed as the scripts keep it: hex, empty for none.
fn optional_seed(text: &str) -> Result<Option<DrawSeed>, QueueError> {
    if text.is_empty() {
        return Ok(None);
    }
    DrawSeed::from_hex(text)
        .map(Some)
        .map_err(|_| unexpected("a draw seed that is not 64 hex digits"))
}

/// A draw's order as stored: 4-byte big-endian offsets from `after + 1`.
fn encode_offsets(offsets: impl Iterator<Item = u64>) -> Vec<u8> {
    offsets
        .flat_map(|offset| u32::try_from(offset).unwrap_or(u32::MAX).to_be_bytes())
        .collect()
}

impl RedisWaitingQueue {
    /// A line under `keys`, enforcing `policy`.
    pub fn new(pool: RedisPool, keys: &KeySpace, policy: QueuePolicy) -> Self {
        Self {
            pool,
            keys: Arc::new(QueueKeys::new(keys)),
            policy,
            scripts: Arc::new(Scripts::load()),
            mode: RoomMode::Fifo,
            step_interval: Duration::ZERO,
            starts_with: None,
        }
    }

    /// This line, when it does not exist yet (never did, or Redis lost it), starting with the
    /// pause and the scheduled opening (if still ahead) of `settings`, besides their configured
    /// rate, capacity and session length (the policy): a room's stored settings, so that the
    /// room comes back as its operator left it.
    pub fn starting_with(self, settings: &LineSettings) -> Self {
        Self {
            starts_with: Some((settings.paused, settings.opens_at)),
            ..self
        }
    }

    /// This line as stepped every `interval` (`APP__QUEUE__ADMISSION_INTERVAL_MS`): each step
    /// may admit what the rate makes due until the next one, so that the budget due after a
    /// second's last step is not lost and the line admits at its rate, not a few percent below.
    /// Without it a step admits only what is due by its own millisecond.
    pub fn stepped_every(self, interval: Duration) -> Self {
        Self {
            step_interval: interval,
            ..self
        }
    }

    /// The line of `room` under the stack's `prefix`: its keys carry a hash tag of their own
    /// (`{<prefix>:room:<id>}`), so each room's scripts run on one slot and different rooms
    /// spread over the masters of a cluster. The room `default` keeps the v1/v2 keys
    /// (`{<prefix>}`).
    pub fn keys_of_room(prefix: &str, room: &RoomId) -> KeySpace {
        if room.is_default() {
            KeySpace::new(prefix)
        } else {
            KeySpace::new(&format!("{prefix}:room:{room}"))
        }
    }

    /// This line in `mode`: a passthrough room admits every entry at once, its rate and
    /// capacity not applied (admissions are still counted); a random room draws the order of
    /// everyone waiting whenever the front has passed the last batch, and admits through it.
    pub fn in_mode(self, mode: RoomMode) -> Self {
        Self { mode, ..self }
    }

    /// The mode as the scripts take it.
    fn mode_flag(&self) -> &'static str {
        match self.mode {
            RoomMode::Passthrough => "passthrough",
            RoomMode::Random => "random",
            RoomMode::Fifo | RoomMode::Reject => "",
        }
    }

    /// How far from the front polls count for liveness: in a random room anyone may be drawn
    /// to the front at the next batch, so every poll does.
    fn keep_alive_window(&self) -> u64 {
        if self.mode == RoomMode::Random {
            u64::MAX / 2
        } else {
            self.policy.keep_alive_window()
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
            .arg(self.policy.entry_rate_per_client.map_or(0, |r| r.get()))
            .arg(self.keep_alive_window())
            .arg(self.mode_flag())
            .arg(match self.starts_with {
                Some((true, _)) => "1",
                Some((false, _)) => "0",
                None => "",
            })
            .arg(
                self.starts_with
                    .and_then(|(_, opens_at)| opens_at)
                    .map(|at| at.timestamp_millis().to_string())
                    .unwrap_or_default(),
            );
        let (status, epoch, seq, number, opens_at): (String, String, i64, i64, i64) = self
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
        let admitted_now = status == "ADMITTED";
        let status = if admitted_now { "ACTIVE" } else { &status };
        match state(status, number)? {
            Some(state) => Ok(Entered {
                ticket,
                state,
                admitted_now,
                opens_at: match opens_at {
                    0 => None,
                    at => Some(instant(at)?),
                },
            }),
            None => Err(unexpected("UNKNOWN for a new entry")),
        }
    }

    async fn rejoin(&self, user: UserId) -> Result<Option<Entered>, QueueError> {
        let mut invocation = self.scripts.rejoin.prepare_invoke();
        invocation
            .key(&self.keys.shared[..])
            .arg(user.get().to_string())
            .arg(self.idle_ms())
            .arg(self.bucket_ms())
            .arg(self.keep_alive_window());
        let reply: Value = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        let mut fields = Fields::of(reply)?;
        let status: String = fields.next()?;
        if status == "NONE" {
            return Ok(None);
        }
        let epoch: String = fields.next()?;
        let seq: i64 = fields.next()?;
        let number: i64 = fields.next()?;
        let opens_at: i64 = fields.next()?;
        let state =
            state(&status, number)?.ok_or_else(|| unexpected("UNKNOWN for a live place"))?;
        Ok(Some(Entered {
            ticket: Ticket {
                epoch: parse_epoch(&epoch)?,
                seq: count(seq)?,
                user: Some(user),
            },
            state,
            admitted_now: false,
            opens_at: match opens_at {
                0 => None,
                at => Some(instant(at)?),
            },
        }))
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
            .arg(if keep_alive { "1" } else { "0" })
            .arg(self.keep_alive_window());
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
            .arg(self.bucket_ms())
            .arg(self.keep_alive_window());
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
            .arg(self.mode_flag())
            .arg(millis(self.step_interval))
            .arg(seen);
        let reply: Value = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        let mut fields = Fields::of(reply)?;
        let report = AdmissionReport {
            admitted: count(fields.next()?)?,
            expired: count(fields.next()?)?,
            dropped_idle: count(fields.next()?)?,
            waiting: count(fields.next()?)?,
            active: count(fields.next()?)?,
        };
        let epoch: String = fields.next()?;
        let head: i64 = fields.next()?;
        let last: i64 = fields.next()?;
        let mode: String = fields.next()?;
        let cursor: String = fields.next()?;
        let events: Vec<String> = fields.next()?;
        let settings = settings(&mut Fields::of(fields.next()?)?)?;
        let (draw_after, draw_through, draw_state): (i64, i64, String) = fields.next()?;
        let (pending_seed, last_after, last_through, last_seed): (String, i64, i64, String) =
            fields.next()?;
        let epoch = if epoch.is_empty() {
            None
        } else {
            Some(parse_epoch(&epoch)?)
        };
        let cursor = match epoch {
            Some(epoch) => SyncCursor::new(format!("{epoch}:{cursor}")),
            None => SyncCursor::default(),
        };
        let draw_range = DrawRange {
            after: count(draw_after)?,
            through: count(draw_through)?,
        };
        Ok(LineStep {
            report,
            sync: LineSync {
                epoch,
                head: count(head)?,
                last_seq: count(last)?,
                cursor,
                changes: changes(&mode, &events)?,
                draw: (draw_state == "drawn").then_some(draw_range),
            },
            settings,
            draw_due: (draw_state == "due").then_some(draw_range),
            draw: LineDraw {
                pending: optional_seed(&pending_seed)?,
                last: match optional_seed(&last_seed)? {
                    Some(seed) => Some((
                        DrawRange {
                            after: count(last_after)?,
                            through: count(last_through)?,
                        },
                        seed,
                    )),
                    None => None,
                },
            },
        })
    }

    async fn draw(
        &self,
        range: DrawRange,
        seed: &DrawSeed,
        order: &[Seq],
    ) -> Result<bool, QueueError> {
        let len = usize::try_from(range.len())
            .ok()
            .filter(|len| u32::try_from(*len).is_ok() && *len == order.len())
            .ok_or_else(|| {
                unexpected(format!(
                    "a draw of {} places ordered as {}",
                    range.len(),
                    order.len()
                ))
            })?;
        let first = range.after + 1;
        let mut offsets = Vec::with_capacity(len);
        let mut inverse = vec![0u64; len];
        for (place_offset, seq) in order.iter().enumerate() {
            let seq_offset = seq
                .checked_sub(first)
                .filter(|offset| *offset < len as u64)
                .ok_or_else(|| unexpected(format!("the place {seq} outside the draw")))?;
            offsets.push(seq_offset);
            if let Some(slot) = usize::try_from(seq_offset)
                .ok()
                .and_then(|offset| inverse.get_mut(offset))
            {
                *slot = place_offset as u64;
            }
        }
        let mut invocation = self.scripts.draw.prepare_invoke();
        invocation
            .key(&self.keys.shared[..])
            .arg(range.after)
            .arg(range.through)
            .arg(encode_offsets(offsets.into_iter()))
            .arg(encode_offsets(inverse.into_iter()))
            .arg(seed.to_hex());
        let recorded: i64 = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        Ok(recorded == 1)
    }

    async fn draw_order(&self) -> Result<Option<(DrawRange, Vec<Seq>)>, QueueError> {
        let draw_key = &self.keys.shared[10];
        let order_key = &self.keys.shared[11];
        let (after, through, drawn, order): (Option<u64>, Option<u64>, Option<String>, Vec<u8>) =
            self.pool
                .run(async |connection| {
                    redis::pipe()
                        .cmd("HGET")
                        .arg(draw_key)
                        .arg("after")
                        .cmd("HGET")
                        .arg(draw_key)
                        .arg("through")
                        .cmd("HGET")
                        .arg(draw_key)
                        .arg("drawn")
                        .cmd("GET")
                        .arg(order_key)
                        .query_async(connection)
                        .await
                })
                .await?;
        let (Some(after), Some(through), Some("1")) = (after, through, drawn.as_deref()) else {
            return Ok(None);
        };
        let range = DrawRange { after, through };
        let order: Vec<Seq> = order
            .chunks_exact(4)
            .map(|bytes| {
                let offset = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                after + 1 + u64::from(offset)
            })
            .collect();
        if order.len() as u64 != range.len() {
            return Err(unexpected("a draw order of the wrong length"));
        }
        Ok(Some((range, order)))
    }
}

#[async_trait]
impl QueueControls for RedisWaitingQueue {
    async fn clear(&self) -> Result<(), QueueError> {
        let mut invocation = self.scripts.clear.prepare_invoke();
        invocation.key(&self.keys.shared[..]);
        let _: i64 = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        Ok(())
    }

    async fn status(&self) -> Result<LineStatus, QueueError> {
        let mut invocation = self.scripts.status.prepare_invoke();
        invocation
            .key(&self.keys.shared[..])
            .arg(self.policy.max_active.get())
            .arg(self.policy.admit_per_second.get())
            .arg(millis(self.policy.active_ttl));
        let reply: Value = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await?;
        let mut fields = Fields::of(reply)?;
        let settings = settings(&mut fields)?;
        Ok(LineStatus {
            settings,
            waiting: count(fields.next()?)?,
            active: count(fields.next()?)?,
        })
    }

    async fn change(
        &self,
        change: &SettingsChange,
    ) -> Result<(LineSettings, LineSettings), ControlError> {
        let text = |value: Option<String>| value.unwrap_or_default();
        let opens_at = match change.opens_at() {
            None => String::new(),
            Some(None) => "none".to_string(),
            Some(Some(at)) => at.timestamp_millis().to_string(),
        };
        let mut invocation = self.scripts.change.prepare_invoke();
        invocation
            .key(&self.keys.shared[..])
            .arg(self.policy.max_active.get())
            .arg(self.policy.admit_per_second.get())
            .arg(millis(self.policy.active_ttl))
            .arg(text(
                change
                    .paused()
                    .map(|p| if p { "1" } else { "0" }.to_string()),
            ))
            .arg(text(change.admit_per_second().map(|r| r.get().to_string())))
            .arg(text(change.max_active().map(|m| m.get().to_string())))
            .arg(text(change.active_ttl().map(|t| millis(t).to_string())))
            .arg(opens_at)
            .arg(text(change.draw_seed().map(|seed| seed.to_hex())));
        let reply: Value = self
            .pool
            .run(async |connection| invocation.invoke_async(connection).await)
            .await
            .map_err(QueueError::from)?;
        let mut fields = Fields::of(reply)?;
        let outcome: String = fields.next()?;
        if outcome == "DRAW_PENDING" {
            return Err(InvalidSetting(
                "the last opening's draw is still being admitted; schedule the next opening once \
                 its places are decided"
                    .into(),
            )
            .into());
        }
        let before = settings(&mut fields)?;
        let after = settings(&mut fields)?;
        Ok((before, after))
    }
}
