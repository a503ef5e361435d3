//! The waiting line in memory: [`WaitingQueue`] and [`QueueControls`] kept in a
//! [`std::sync::Mutex`], telling time by a [`Clock`] the test moves.
//!
//! It keeps the rules the Redis adapter keeps (and that [`super::line_contract`] checks of both):
//! admission first come, first served within the room (`max_active`) and the second's budget
//! (`admit_per_second`); one place per user; waiting places dropped once not polled for the idle
//! timeout; ACTIVE sessions ending at their expiry; leaving and revoking; pause, live settings,
//! and a scheduled opening with a random draw. Where Redis is approximate for speed, this adapter
//! is exact: a waiting place is dropped exactly at the idle timeout (Redis: between 1 and 1.25
//! idle timeouts), and a step admits the whole budget left in the second at once (Redis spreads
//! it over the second).
//!
//! Every instance of the service shares one line by sharing one `Arc<InMemoryLine>`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::ids::UserId;
use crate::queue::{
    AdmissionReport, ClientKey, ControlError, DrawRange, DrawSeed, Entered, InvalidSetting,
    LineChanges, LineDraw, LineEvent, LineSettings, LineStatus, LineStep, LineSync, QueueControls,
    QueueError, QueuePolicy, Seq, SettingsChange, SyncCursor, Ticket, TicketState, WaitingQueue,
};

/// How long the change feed keeps an event: a cursor older than that gets a snapshot, as with
/// Redis.
const LOG_RETENTION: chrono::Duration = chrono::Duration::seconds(60);
/// More events than this after a cursor are answered with a snapshot, as with Redis.
const MOST_EVENTS: usize = 1000;
/// Most places one step admits, and most it walks past, as with Redis.
const STEP_BATCH: usize = 1000;
const WALK_LIMIT: u64 = 5000;

/// Each line takes the next epoch, so a ticket of one line is dead in every other (as a ticket
/// of a lost and recreated Redis line is).
static NEXT_EPOCH: AtomicU32 = AtomicU32::new(1);

/// The waiting line and its operator's controls, in memory.
pub struct InMemoryLine {
    policy: QueuePolicy,
    clock: Arc<dyn Clock>,
    state: Mutex<LineState>,
}

impl std::fmt::Debug for InMemoryLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryLine")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A scheduled opening's places and, once drawn, their order.
#[derive(Debug, Clone)]
struct Draw {
    range: DrawRange,
    /// The seed the order was computed from; `None` until drawn.
    seed: Option<DrawSeed>,
    /// `order[i]` is the arrival number at the place `after + 1 + i`; `None` until drawn.
    order: Option<Vec<Seq>>,
    /// `places[seq - after - 1]` is the place of arrival number `seq`.
    places: Vec<Seq>,
}

#[derive(Debug)]
struct LineState {
    /// Taken at the first entry.
    epoch: Option<u32>,
    candidate_epoch: u32,
    /// The last arrival number handed out.
    last_seq: Seq,
    /// Every place up to this one is decided (admitted or skipped).
    head: Seq,
    /// ACTIVE arrival numbers and when their admission ends (expired ones until a step drops
    /// them).
    active: HashMap<Seq, DateTime<Utc>>,
    /// Arrival numbers that left while waiting, until the front passes them.
    left: HashSet<Seq>,
    /// When each waiting arrival number was last polled.
    last_seen: HashMap<Seq, DateTime<Utc>>,
    /// Each user's one place.
    users: HashMap<UserId, Seq>,
    /// The second the budget is counted for, and how many were admitted in it.
    budget_second: i64,
    budget_spent: u32,
    /// Per client: when its one-second window began and how many entries it made in it.
    client_entries: HashMap<String, (DateTime<Utc>, u32)>,
    settings: LineSettings,
    /// The seed of the scheduled opening's draw, until it is drawn or cancelled.
    pending_seed: Option<DrawSeed>,
    draw: Option<Draw>,
    /// The change feed: (id, when, event), ids increasing from 1.
    log: VecDeque<(u64, DateTime<Utc>, LineEvent)>,
    last_log_id: u64,
    /// The highest id trimmed from the feed: a cursor before it has missed events.
    trimmed_through: u64,
}

/// A line nobody entered yet, of an epoch no other line has.
fn fresh_state(policy: &QueuePolicy) -> LineState {
    LineState {
        epoch: None,
        candidate_epoch: NEXT_EPOCH.fetch_add(1, Ordering::Relaxed).max(1),
        last_seq: 0,
        head: 0,
        active: HashMap::new(),
        left: HashSet::new(),
        last_seen: HashMap::new(),
        users: HashMap::new(),
        budget_second: i64::MIN,
        budget_spent: 0,
        client_entries: HashMap::new(),
        settings: LineSettings::from_policy(policy),
        pending_seed: None,
        draw: None,
        log: VecDeque::new(),
        last_log_id: 0,
        trimmed_through: 0,
    }
}

impl InMemoryLine {
    /// An empty line enforcing `policy` (until an operator changes the settings), telling time
    /// by `clock`.
    pub fn new(policy: QueuePolicy, clock: Arc<dyn Clock>) -> Self {
        Self {
            policy,
            clock,
            state: Mutex::new(fresh_state(&policy)),
        }
    }

    fn state(&self) -> MutexGuard<'_, LineState> {
        // A panic while the lock was held leaves the line as it was at the panic; a test that
        // goes on with it sees that state rather than a second panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

impl LineState {
    /// The place of arrival number `seq`: itself, unless a recorded draw ordered it.
    fn place_of(&self, seq: Seq) -> Seq {
        match &self.draw {
            Some(draw) if draw.order.is_some() => {
                if seq > draw.range.after && seq <= draw.range.through {
                    usize::try_from(seq - draw.range.after - 1)
                        .ok()
                        .and_then(|offset| draw.places.get(offset).copied())
                        .unwrap_or(seq)
                } else {
                    seq
                }
            }
            _ => seq,
        }
    }

    /// The arrival number at `place`.
    fn seq_at(&self, place: Seq) -> Seq {
        match &self.draw {
            Some(Draw {
                range,
                order: Some(order),
                ..
            }) if place > range.after && place <= range.through => {
                usize::try_from(place - range.after - 1)
                    .ok()
                    .and_then(|offset| order.get(offset).copied())
                    .unwrap_or(place)
            }
            _ => place,
        }
    }

    fn seen_within(&self, seq: Seq, idle: chrono::Duration, now: DateTime<Utc>) -> bool {
        self.last_seen
            .get(&seq)
            .is_some_and(|at| now.signed_duration_since(*at) < idle)
    }

    /// How far behind the front keep-alives are tracked (see
    /// [`QueuePolicy::keep_alive_window`]), at the live rate as with Redis.
    fn keep_alive_window(&self, policy: &QueuePolicy) -> u64 {
        policy.keep_alive_window().max(
            2 * u64::from(self.settings.admit_per_second.get())
                * policy.waiting_idle_timeout.as_secs(),
        )
    }

    /// Where arrival number `seq` stands, or `None` when it is dead; with `keep_alive`, a
    /// waiting place counts as polled now.
    fn state_of(
        &mut self,
        seq: Seq,
        keep_alive: bool,
        policy: &QueuePolicy,
        now: DateTime<Utc>,
    ) -> Option<TicketState> {
        let place = self.place_of(seq);
        if place <= self.head {
            return self
                .active
                .get(&seq)
                .filter(|until| **until > now)
                .map(|until| TicketState::Active { until: *until });
        }
        if seq > self.last_seq || self.left.contains(&seq) {
            return None;
        }
        let idle = chrono_duration(policy.waiting_idle_timeout);
        let tracked = place - self.head <= self.keep_alive_window(policy);
        if tracked && !self.seen_within(seq, idle, now) {
            return None;
        }
        if keep_alive {
            self.last_seen.insert(seq, now);
        }
        Some(TicketState::Waiting {
            position: place - self.head,
        })
    }

    fn in_use(&self, now: DateTime<Utc>) -> u64 {
        self.active.values().filter(|until| **until > now).count() as u64
    }

    fn budget_left(&self, now: DateTime<Utc>) -> u32 {
        let rate = self.settings.admit_per_second.get();
        if self.budget_second == now.timestamp() {
            rate.saturating_sub(self.budget_spent)
        } else {
            rate
        }
    }

    fn spend(&mut self, admitted: u32, now: DateTime<Utc>) {
        if self.budget_second == now.timestamp() {
            self.budget_spent += admitted;
        } else {
            self.budget_second = now.timestamp();
            self.budget_spent = admitted;
        }
    }

    fn publish(&mut self, event: LineEvent, now: DateTime<Utc>) {
        self.last_log_id += 1;
        self.log.push_back((self.last_log_id, now, event));
        while self
            .log
            .front()
            .is_some_and(|(_, at, _)| *at < now - LOG_RETENTION)
        {
            if let Some((id, _, _)) = self.log.pop_front() {
                self.trimmed_through = id;
            }
        }
    }

    /// The draw seeds as a step reports them.
    fn published_draw(&self) -> LineDraw {
        LineDraw {
            pending: self.pending_seed,
            last: self.draw.as_ref().and_then(|draw| {
                draw.order.as_ref()?;
                Some((draw.range, draw.seed?))
            }),
        }
    }

    /// Once a scheduled opening's time has passed, the places handed out until then become its
    /// draw's range, once; an opening nobody came to opens at once.
    fn settle_opening(&mut self, now: DateTime<Utc>) {
        let Some(opens_at) = self.settings.opens_at else {
            return;
        };
        if now < opens_at {
            return;
        }
        let pending = self.draw.as_ref().is_some_and(|draw| draw.order.is_none());
        if !pending {
            self.draw = Some(Draw {
                range: DrawRange {
                    after: self.head,
                    through: self.last_seq,
                },
                seed: None,
                order: None,
                places: Vec::new(),
            });
        }
        if let Some(draw) = &mut self.draw {
            if draw.range.is_empty() {
                draw.seed = self.pending_seed.take();
                draw.order = Some(Vec::new());
                draw.places = Vec::new();
                self.settings.opens_at = None;
            }
        }
    }

    /// The step's sync: the changes after `since`, or a snapshot.
    fn changes_since(
        &self,
        since: &SyncCursor,
        epoch: u32,
        now: DateTime<Utc>,
    ) -> (SyncCursor, LineChanges) {
        let (cursor_epoch, cursor_id) = since.as_str().split_once(':').unwrap_or(("", ""));
        let cursor_id: Option<u64> = cursor_id.parse().ok();
        let continues = cursor_epoch == epoch.to_string()
            && cursor_id.is_some_and(|id| id >= self.trimmed_through);
        if let (true, Some(id)) = (continues, cursor_id) {
            let events: Vec<&(u64, DateTime<Utc>, LineEvent)> = self
                .log
                .iter()
                .filter(|(event_id, _, _)| *event_id > id)
                .collect();
            if events.len() < MOST_EVENTS {
                let last = events.last().map_or(id, |(event_id, _, _)| *event_id);
                return (
                    SyncCursor::new(format!("{epoch}:{last}")),
                    LineChanges::Since(events.into_iter().map(|(_, _, e)| e.clone()).collect()),
                );
            }
        }
        let mut active: Vec<(Seq, DateTime<Utc>)> = self
            .active
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(seq, until)| (*seq, *until))
            .collect();
        active.sort_unstable_by_key(|(seq, until)| (*until, *seq));
        let mut left: Vec<Seq> = self
            .left
            .iter()
            .copied()
            .filter(|seq| self.place_of(*seq) > self.head)
            .collect();
        left.sort_unstable();
        (
            SyncCursor::new(format!("{epoch}:{}", self.last_log_id)),
            LineChanges::Snapshot { active, left },
        )
    }
}

#[async_trait]
impl WaitingQueue for InMemoryLine {
    async fn rejoin(&self, user: UserId) -> Result<Option<Entered>, QueueError> {
        let now = self.clock.now();
        let mut line = self.state();
        let (Some(epoch), Some(existing)) = (line.epoch, line.users.get(&user).copied()) else {
            return Ok(None);
        };
        let Some(state) = line.state_of(existing, true, &self.policy, now) else {
            return Ok(None);
        };
        let state = match state {
            TicketState::Waiting { .. } if line.settings.opens_at.is_some() => {
                TicketState::Waiting { position: 0 }
            }
            other => other,
        };
        Ok(Some(Entered {
            ticket: Ticket {
                epoch,
                seq: existing,
                user: Some(user),
            },
            state,
            admitted_now: false,
            opens_at: line.settings.opens_at,
        }))
    }

    async fn enter(&self, user: Option<UserId>, client: &ClientKey) -> Result<Entered, QueueError> {
        let now = self.clock.now();
        let mut line = self.state();
        if let Some(limit) = self.policy.entry_rate_per_client {
            let window = chrono::Duration::seconds(1);
            let entries = line
                .client_entries
                .entry(client.as_str().to_string())
                .or_insert((now, 0));
            if now >= entries.0 + window {
                *entries = (now, 0);
            }
            entries.1 += 1;
            if entries.1 > limit.get() {
                let retry_after = (entries.0 + window - now)
                    .to_std()
                    .unwrap_or_default()
                    .max(Duration::from_millis(1));
                return Err(QueueError::RateLimited { retry_after });
            }
            let started = now - window;
            line.client_entries.retain(|_, (since, _)| *since > started);
        }
        let candidate = line.candidate_epoch;
        let epoch = *line.epoch.get_or_insert(candidate);

        if let Some(existing) = user.and_then(|user| line.users.get(&user).copied()) {
            if let Some(state) = line.state_of(existing, true, &self.policy, now) {
                let state = match state {
                    TicketState::Waiting { .. } if line.settings.opens_at.is_some() => {
                        TicketState::Waiting { position: 0 }
                    }
                    other => other,
                };
                return Ok(Entered {
                    ticket: Ticket {
                        epoch,
                        seq: existing,
                        user,
                    },
                    state,
                    admitted_now: false,
                    opens_at: line.settings.opens_at,
                });
            }
        }

        line.settle_opening(now);
        line.last_seq += 1;
        let seq = line.last_seq;
        if let Some(user) = user {
            line.users.insert(user, seq);
        }
        let ticket = Ticket { epoch, seq, user };
        let settings = line.settings;
        let straight_in = line.head == seq - 1
            && !settings.paused
            && settings.opens_at.is_none()
            && line.in_use(now) < u64::from(settings.max_active.get())
            && line.budget_left(now) > 0;
        if straight_in {
            line.spend(1, now);
            let until = now + chrono_duration(settings.active_ttl);
            line.active.insert(seq, until);
            line.head = seq;
            line.publish(
                LineEvent::Admitted {
                    seqs: vec![seq],
                    until,
                },
                now,
            );
            return Ok(Entered {
                ticket,
                state: TicketState::Active { until },
                admitted_now: true,
                opens_at: None,
            });
        }
        line.last_seen.insert(seq, now);
        let position = if settings.opens_at.is_some() {
            // In a pre-queue nobody has a place until the draw.
            0
        } else {
            seq - line.head
        };
        Ok(Entered {
            ticket,
            state: TicketState::Waiting { position },
            admitted_now: false,
            opens_at: settings.opens_at,
        })
    }

    async fn lookup(
        &self,
        ticket: &Ticket,
        keep_alive: bool,
    ) -> Result<Option<TicketState>, QueueError> {
        let now = self.clock.now();
        let mut line = self.state();
        if line.epoch != Some(ticket.epoch) {
            return Ok(None);
        }
        let state = line.state_of(ticket.seq, keep_alive, &self.policy, now);
        Ok(match state {
            Some(TicketState::Waiting { .. }) if line.settings.opens_at.is_some() => {
                Some(TicketState::Waiting { position: 0 })
            }
            other => other,
        })
    }

    async fn revoke(&self, ticket: &Ticket) -> Result<bool, QueueError> {
        let now = self.clock.now();
        let mut line = self.state();
        if line.epoch != Some(ticket.epoch) {
            return Ok(false);
        }
        let seq = ticket.seq;
        let was_live = line.state_of(seq, false, &self.policy, now).is_some();
        if line.place_of(seq) <= line.head {
            line.active.remove(&seq);
        } else if seq <= line.last_seq {
            line.left.insert(seq);
            line.last_seen.remove(&seq);
        }
        if let Some(user) = ticket.user {
            if line.users.get(&user) == Some(&seq) {
                line.users.remove(&user);
            }
        }
        if was_live {
            line.publish(LineEvent::Revoked { seq }, now);
        }
        Ok(was_live)
    }

    async fn advance(&self, seen: &[Seq], since: &SyncCursor) -> Result<LineStep, QueueError> {
        let now = self.clock.now();
        let mut line = self.state();
        let Some(epoch) = line.epoch else {
            return Ok(LineStep {
                report: AdmissionReport::default(),
                sync: LineSync {
                    epoch: None,
                    head: 0,
                    last_seq: 0,
                    cursor: SyncCursor::default(),
                    changes: LineChanges::Since(Vec::new()),
                    draw: None,
                },
                settings: line.settings,
                draw_due: None,
                draw: line.published_draw(),
            });
        };
        for seq in seen {
            line.last_seen.insert(*seq, now);
        }

        let gone: Vec<Seq> = line
            .active
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(seq, _)| *seq)
            .take(STEP_BATCH)
            .collect();
        for seq in &gone {
            line.active.remove(seq);
        }
        let in_use = line.in_use(now);

        line.settle_opening(now);
        let settings = line.settings;
        let walking = settings.opens_at.is_none();
        let room = if settings.paused {
            0
        } else {
            let free = u64::from(settings.max_active.get()).saturating_sub(in_use);
            usize::try_from(free.min(u64::from(line.budget_left(now))))
                .unwrap_or(usize::MAX)
                .min(STEP_BATCH)
        };

        // Walk the front: places whose holder left or stopped polling are skipped without
        // spending the budget or the room; the others are admitted while there is room.
        let idle = chrono_duration(self.policy.waiting_idle_timeout);
        let until = now + chrono_duration(settings.active_ttl);
        let head = line.head;
        let mut admitted = Vec::new();
        let mut skipped = 0u32;
        let mut place = head;
        while walking && place < line.last_seq && place - head < WALK_LIMIT {
            let seq = line.seq_at(place + 1);
            if line.left.contains(&seq) || !line.seen_within(seq, idle, now) {
                skipped += 1;
            } else if admitted.len() < room {
                line.active.insert(seq, until);
                admitted.push(seq);
            } else {
                break;
            }
            line.last_seen.remove(&seq);
            place += 1;
        }
        if place != head {
            line.head = place;
            let decided: Vec<Seq> = line
                .left
                .iter()
                .copied()
                .filter(|seq| line.place_of(*seq) <= place)
                .collect();
            for seq in decided {
                line.left.remove(&seq);
            }
        }
        let admitted_count = u32::try_from(admitted.len()).unwrap_or(u32::MAX);
        if !admitted.is_empty() {
            line.spend(admitted_count, now);
            line.publish(
                LineEvent::Admitted {
                    seqs: admitted,
                    until,
                },
                now,
            );
        }

        let (cursor, changes) = line.changes_since(since, epoch, now);
        let (draw, draw_due) = match &line.draw {
            Some(Draw {
                range,
                order: Some(_),
                ..
            }) if range.through > line.head => (Some(*range), None),
            Some(Draw {
                range, order: None, ..
            }) => (None, Some(*range)),
            _ => (None, None),
        };
        Ok(LineStep {
            report: AdmissionReport {
                admitted: admitted_count,
                expired: u32::try_from(gone.len()).unwrap_or(u32::MAX),
                dropped_idle: skipped,
                waiting: line.last_seq - line.head,
                active: in_use + u64::from(admitted_count),
            },
            sync: LineSync {
                epoch: Some(epoch),
                head: line.head,
                last_seq: line.last_seq,
                cursor,
                changes,
                draw,
            },
            settings,
            draw_due,
            draw: line.published_draw(),
        })
    }

    async fn draw(
        &self,
        range: DrawRange,
        seed: &DrawSeed,
        order: &[Seq],
    ) -> Result<bool, QueueError> {
        let mut line = self.state();
        let due = line
            .draw
            .as_ref()
            .is_some_and(|draw| draw.order.is_none() && draw.range == range);
        if !due {
            return Ok(false);
        }
        if order.len() as u64 != range.len() {
            return Err(QueueError::Infrastructure(
                crate::InfrastructureError::unexpected("a draw order of the wrong length"),
            ));
        }
        let len = usize::try_from(range.len()).unwrap_or(0);
        let mut places = vec![0; len];
        for (offset, seq) in order.iter().enumerate() {
            if let Some(slot) = seq
                .checked_sub(range.after + 1)
                .and_then(|index| usize::try_from(index).ok())
                .and_then(|index| places.get_mut(index))
            {
                *slot = range.after + 1 + offset as u64;
            }
        }
        line.draw = Some(Draw {
            range,
            seed: Some(*seed),
            order: Some(order.to_vec()),
            places,
        });
        line.settings.opens_at = None;
        line.pending_seed = None;
        Ok(true)
    }

    async fn draw_order(&self) -> Result<Option<(DrawRange, Vec<Seq>)>, QueueError> {
        let line = self.state();
        Ok(line
            .draw
            .as_ref()
            .and_then(|draw| draw.order.as_ref().map(|order| (draw.range, order.clone()))))
    }
}

#[async_trait]
impl QueueControls for InMemoryLine {
    async fn clear(&self) -> Result<(), QueueError> {
        *self.state() = fresh_state(&self.policy);
        Ok(())
    }

    async fn status(&self) -> Result<LineStatus, QueueError> {
        let now = self.clock.now();
        let line = self.state();
        Ok(LineStatus {
            settings: line.settings,
            waiting: line.last_seq - line.head,
            active: line.in_use(now),
        })
    }

    async fn change(
        &self,
        change: &SettingsChange,
    ) -> Result<(LineSettings, LineSettings), ControlError> {
        let mut line = self.state();
        let before = line.settings;
        if let Some(Some(_)) = change.opens_at() {
            let head = line.head;
            let pending = line
                .draw
                .as_ref()
                .is_some_and(|draw| draw.order.is_none() || draw.range.through > head);
            if pending {
                return Err(InvalidSetting(
                    "the last opening's draw is still being admitted; schedule the next opening \
                     once its places are decided"
                        .into(),
                )
                .into());
            }
        }
        line.settings = change.applied_to(&before);
        if change.schedules_opening() && line.pending_seed.is_none() {
            line.pending_seed = change.draw_seed();
        }
        if change.opens_at() == Some(None) {
            line.pending_seed = None;
            // A cancelled opening draws nobody: its places stay in arrival order.
            if line.draw.as_ref().is_some_and(|draw| draw.order.is_none()) {
                line.draw = None;
            }
        }
        Ok((before, line.settings))
    }
}
