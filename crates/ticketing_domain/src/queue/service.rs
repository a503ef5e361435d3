//! The waiting-room use cases: enter, poll, leave, and the token check of protected requests,
//! answered from this instance's [`LineView`] of the token's room wherever it can tell, from the
//! store otherwise. Each room has a line of its own; the room `default` is the v1/v2 line.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::controls::{ControlError, LineSettings, LineStatus, QueueControls, SettingsChange};
use super::draw::{drawn_order, LineDraw, PublishedDraw, SeedSource};
use super::errors::{AccessError, QueueError};
use super::line::{Judgement, LineView};
use super::policy::QueuePolicy;
use super::port::{AdmissionReport, ClientKey, Entered, TicketState, WaitingQueue};
use super::token::{QueueToken, Seq, Ticket, TokenKeys};
use crate::clock::Clock;
use crate::ids::UserId;
use crate::rooms::{RoomId, RoomMode};

/// The oldest a view may be for its "yes" to be trusted while the store answers: past it the
/// store is asked, so a revocation is never missed for longer than this (the contract's 1 s).
pub const MAX_VIEW_AGE: Duration = Duration::from_secs(1);

/// Where a client is: admitted, or still in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueStatus {
    /// Admitted: the token opens the protected endpoints.
    Active,
    /// Still in line.
    Waiting,
}

impl QueueStatus {
    /// The contract's spelling: `ACTIVE`, `WAITING`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStatus::Active => "ACTIVE",
            QueueStatus::Waiting => "WAITING",
        }
    }
}

/// A queue entry as the client is told: status, place, expected wait and when to poll again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueView {
    /// The client's queue token, to send with every later request.
    pub token: QueueToken,
    /// The room whose line the token is in.
    pub room: RoomId,
    /// The place's number in the room's order (after a draw, the drawn one): every place up to
    /// the room's serving number has been decided.
    pub ticket_number: u64,
    /// Whether the client is admitted or still in line.
    pub status: QueueStatus,
    /// 1-based among WAITING tokens; 0 when ACTIVE.
    pub position: u64,
    /// Expected wait until admission (in a pre-queue: until the opening), in seconds; 0 when
    /// ACTIVE.
    pub estimated_wait_seconds: u64,
    /// When the admission ends, for an ACTIVE token.
    pub active_until: Option<DateTime<Utc>>,
    /// When a WAITING client should poll next.
    pub poll_after_seconds: Option<u64>,
    /// While the line is a pre-queue: when it opens (the draw orders everyone in it then).
    pub opens_at: Option<DateTime<Utc>>,
    /// This very request was admitted straight in at entry (one admission).
    pub admitted_now: bool,
}

/// Proof that a request carries an ACTIVE token: only [`QueueService::authorize`] makes one.
/// Whether it may act for a given user is [`crate::access::TokenBinding::check`]'s to say; which
/// performances it opens is its room's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveToken {
    room: RoomId,
    ticket: Ticket,
}

impl ActiveToken {
    /// The user the token is bound to, if any.
    pub fn user(&self) -> Option<UserId> {
        self.ticket.user
    }

    /// The room the token was admitted in: it opens that room's performances only.
    pub fn room(&self) -> RoomId {
        self.room
    }

    /// A proof for tests of code that takes one, without a queue.
    #[cfg(any(test, feature = "mock"))]
    pub fn for_tests(user: Option<UserId>) -> Self {
        Self::for_tests_in(RoomId::default_room(), user)
    }

    /// A proof of a token of `room`, for tests of code that takes one, without a queue.
    #[cfg(any(test, feature = "mock"))]
    pub fn for_tests_in(room: RoomId, user: Option<UserId>) -> Self {
        Self {
            room,
            ticket: Ticket {
                epoch: 0,
                seq: 1,
                user,
            },
        }
    }
}

/// Polls this instance answered from memory, so that the store learns of them in one batch per
/// step instead of one round trip per poll.
#[derive(Debug, Default)]
struct KeepAlive {
    last_poll: HashMap<Seq, DateTime<Utc>>,
    unreported: HashSet<Seq>,
}

/// The waiting-room use cases, over one line per room.
#[derive(Clone)]
pub struct QueueService {
    keys: Arc<TokenKeys>,
    clock: Arc<dyn Clock>,
    seeds: Arc<dyn SeedSource>,
    default: Arc<Line>,
    /// The lines of the rooms other than `default`, as this instance opened them.
    rooms: Arc<RwLock<HashMap<RoomId, Arc<Line>>>>,
}

impl std::fmt::Debug for QueueService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueService")
            .field("policy", &self.default.policy())
            .finish_non_exhaustive()
    }
}

/// One room's line as this instance follows it.
struct Line {
    room: RoomId,
    /// Swapped when the room's mode or configured settings change (see [`Line::reopen`]).
    queue: RwLock<Arc<dyn WaitingQueue>>,
    keys: Arc<TokenKeys>,
    policy: RwLock<QueuePolicy>,
    clock: Arc<dyn Clock>,
    line: RwLock<LineView>,
    keep_alive: Mutex<KeepAlive>,
    /// The settings in force, as the last step reported them.
    settings: RwLock<LineSettings>,
    /// The draw seeds, as the last step reported them.
    draw: RwLock<LineDraw>,
    seeds: Arc<dyn SeedSource>,
    /// Times a step found the line this instance followed gone or replaced (its store lost it).
    lines_lost: AtomicU64,
    /// Bumped by every settings change made here, so a step read before it does not undo it.
    settings_changes: AtomicU64,
    /// A random room: anyone may be drawn to the front at the next batch, so every poll counts
    /// for liveness, however far back.
    random: std::sync::atomic::AtomicBool,
}

/// The operator's use cases: the line's status, live settings, revocation.
#[derive(Clone)]
pub struct LineOperator {
    controls: Arc<dyn QueueControls>,
    queue: QueueService,
}

impl std::fmt::Debug for LineOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineOperator").finish_non_exhaustive()
    }
}

impl LineOperator {
    /// The operator's use cases over `controls` (of the room `default`); a change made here
    /// applies to `queue` at once.
    pub fn new(controls: Arc<dyn QueueControls>, queue: QueueService) -> Self {
        Self { controls, queue }
    }

    /// The settings in force and the line's size.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    pub async fn status(&self) -> Result<LineStatus, QueueError> {
        self.controls.status().await
    }

    /// Makes `change`; answers the settings before and after it.
    ///
    /// # Errors
    /// See [`QueueControls::change`].
    pub async fn change(
        &self,
        change: &SettingsChange,
    ) -> Result<(LineSettings, LineSettings), ControlError> {
        let change = self.queue.seeded(*change);
        let (before, after) = self.controls.change(&change).await?;
        self.queue.default.changed_here(after);
        Ok((before, after))
    }

    /// Revokes `token` (401 afterwards, on every instance within [`MAX_VIEW_AGE`]); returns
    /// whether it was live.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    pub async fn revoke(&self, token: &QueueToken) -> Result<bool, QueueError> {
        self.queue.revoke(token).await
    }
}

impl QueueService {
    /// The waiting room over the line of the room `default` stored in `queue`, signing tokens
    /// with `keys`, admitting by `policy` (until an operator changes the settings) and telling
    /// time by `clock`; the seeds of its openings' draws come from `seeds`. Other rooms' lines
    /// are opened with [`QueueService::open_room`].
    pub fn new(
        queue: Arc<dyn WaitingQueue>,
        keys: TokenKeys,
        policy: QueuePolicy,
        clock: Arc<dyn Clock>,
        seeds: Arc<dyn SeedSource>,
    ) -> Self {
        let keys = Arc::new(keys);
        let default = Line::new(
            RoomId::default_room(),
            queue,
            keys.clone(),
            policy,
            clock.clone(),
            seeds.clone(),
        );
        Self {
            keys,
            clock,
            seeds,
            default: Arc::new(default),
            rooms: Arc::default(),
        }
    }

    /// Follows the line of `room` in `queue`, admitting by `policy` until an operator changes
    /// its settings. For a room whose line this instance follows already, only the store and the
    /// policy change: what it knows of the line stays.
    pub fn open_room(
        &self,
        room: RoomId,
        queue: Arc<dyn WaitingQueue>,
        policy: QueuePolicy,
        mode: RoomMode,
    ) {
        if room.is_default() {
            return;
        }
        let mut rooms = self.rooms_mut();
        if let Some(line) = rooms.get(&room) {
            line.reopen(queue, policy, mode);
            return;
        }
        let line = Line::new(
            room,
            queue,
            self.keys.clone(),
            policy,
            self.clock.clone(),
            self.seeds.clone(),
        );
        line.reopen(line.store(), policy, mode);
        rooms.insert(room, Arc::new(line));
    }

    /// Stops following the line of `room`: its tokens are refused here from now on.
    pub fn close_room(&self, room: &RoomId) {
        self.rooms_mut().remove(room);
    }

    /// The rooms whose lines this instance follows, `default` first.
    pub fn rooms(&self) -> Vec<RoomId> {
        let mut rooms: Vec<RoomId> = self
            .rooms
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        rooms.sort();
        rooms.insert(0, RoomId::default_room());
        rooms
    }

    fn rooms_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<RoomId, Arc<Line>>> {
        self.rooms.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn line_of(&self, room: &RoomId) -> Option<Arc<Line>> {
        if room.is_default() {
            return Some(self.default.clone());
        }
        self.rooms
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(room)
            .cloned()
    }

    fn line_for(&self, room: &RoomId) -> Result<Arc<Line>, QueueError> {
        self.line_of(room).ok_or(QueueError::RoomUnknown)
    }

    /// The room and ticket `token` proves, and the line that judges it.
    fn open(&self, token: &QueueToken) -> Option<(Arc<Line>, Ticket)> {
        let (room, ticket) = self.keys.open_in_room(token).ok()?;
        Some((self.line_of(&room)?, ticket))
    }

    /// Whether `token` is signed by us for a room this instance follows no line of: one created
    /// on another instance since this one last read the rooms, or one deleted since.
    pub fn names_unknown_room(&self, token: &QueueToken) -> bool {
        self.keys
            .open_in_room(token)
            .is_ok_and(|(room, _)| self.line_of(&room).is_none())
    }

    /// The time by the clock this service judges the line with: what a caller compares the
    /// line's settings (a scheduled opening) against, so that it agrees with the service.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The settings in force of the room `default`, as this instance last learned them.
    pub fn settings(&self) -> LineSettings {
        self.default.settings()
    }

    /// The settings in force of `room`'s line, as this instance last learned them; `None` for
    /// a room whose line it does not follow.
    pub fn room_settings(&self, room: &RoomId) -> Option<LineSettings> {
        self.line_of(room).map(|line| line.settings())
    }

    /// `change` with a new seed for the draw of the opening it schedules, if it schedules one:
    /// every change an operator makes goes through here, so every scheduled opening commits to
    /// a seed.
    pub fn seeded(&self, change: SettingsChange) -> SettingsChange {
        if change.schedules_opening() {
            change.with_draw_seed(self.seeds.seed())
        } else {
            change
        }
    }

    /// The draw of `room` as anyone may check it, as this instance last learned it: the
    /// commitment while an opening is scheduled, the seed and range once drawn; `None` for a
    /// room without either, or whose line this instance does not follow.
    pub fn room_draw(&self, room: &RoomId) -> Option<PublishedDraw> {
        self.line_of(room).and_then(|line| line.draw().published())
    }

    /// Notes a settings change made by an operator here, so this instance follows at once.
    pub fn settings_changed(&self, room: &RoomId, after: LineSettings) {
        if let Some(line) = self.line_of(room) {
            line.changed_here(after);
        }
    }

    /// The admission rules of the room `default` as configured, before any operator change
    /// (see [`QueueService::settings`]).
    pub fn policy(&self) -> QueuePolicy {
        self.default.policy()
    }

    /// Enters the line of the room `default`; see [`WaitingQueue::enter`].
    ///
    /// # Errors
    /// See [`WaitingQueue::enter`].
    pub async fn enter_queue(
        &self,
        user: Option<UserId>,
        client: &ClientKey,
    ) -> Result<QueueView, QueueError> {
        self.default.enter(user, client).await
    }

    /// Enters the line of `room`; see [`WaitingQueue::enter`].
    ///
    /// # Errors
    /// [`QueueError::RoomUnknown`] when this instance follows no line of `room`; otherwise see
    /// [`WaitingQueue::enter`].
    pub async fn enter_room(
        &self,
        room: &RoomId,
        user: Option<UserId>,
        client: &ClientKey,
    ) -> Result<QueueView, QueueError> {
        self.line_for(room)?.enter(user, client).await
    }

    /// Hands `user` back their live place in `room`'s line, entering nobody (see
    /// [`WaitingQueue::rejoin`]); `None` when they have none.
    ///
    /// # Errors
    /// [`QueueError::RoomUnknown`] when this instance follows no line of `room`;
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    pub async fn rejoin_room(
        &self,
        room: &RoomId,
        user: UserId,
    ) -> Result<Option<QueueView>, QueueError> {
        let line = self.line_for(room)?;
        match line.store().rejoin(user).await? {
            Some(entered) => Ok(Some(line.entered(entered))),
            None => Ok(None),
        }
    }

    /// Where `token` stands; polling keeps a WAITING token in line. Answered from memory when
    /// this instance's view of its room is fresh and, for a WAITING token, when it was polled
    /// here within the idle timeout; otherwise the store is asked. While the store is
    /// unreachable, what the view knows is answered ("fail static"): admitted people stay
    /// admitted, waiting people keep their place.
    ///
    /// # Errors
    /// [`QueueError::TokenInvalid`] when the token is forged, of a room that no longer exists,
    /// unknown, expired or was dropped.
    pub async fn poll(&self, token: QueueToken) -> Result<QueueView, QueueError> {
        let (line, ticket) = self.open(&token).ok_or(QueueError::TokenInvalid)?;
        line.poll(token, ticket).await
    }

    /// Leaves the line or gives up the active slot.
    ///
    /// # Errors
    /// [`QueueError::TokenInvalid`] when the token is forged or was not live.
    pub async fn leave(&self, token: &QueueToken) -> Result<(), QueueError> {
        let (line, ticket) = self.open(token).ok_or(QueueError::TokenInvalid)?;
        if line.end(&ticket).await? {
            Ok(())
        } else {
            Err(QueueError::TokenInvalid)
        }
    }

    /// Ends an ACTIVE token's session (after its payment): it answers as invalid afterwards,
    /// here at once and on every instance within [`MAX_VIEW_AGE`].
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    pub async fn expire(&self, active: &ActiveToken) -> Result<(), QueueError> {
        match self.line_of(&active.room) {
            Some(line) => line.end_session(&active.ticket).await,
            // The room was deleted meanwhile: its tokens are refused everywhere anyway.
            None => Ok(()),
        }
    }

    /// Lets a request through only with an ACTIVE token. Answered from memory while this
    /// instance's view of the token's room is fresh; a WAITING token near the front, a token of
    /// a line the view does not know, or any token while the view is stale is checked with the
    /// store. While the store is unreachable, a token the view knows to be ACTIVE still passes
    /// ("fail static").
    ///
    /// # Errors
    /// [`AccessError::TokenInvalid`] for a forged, unknown, expired or ended token, or one of a
    /// room that no longer exists; [`AccessError::TokenNotActive`] for a WAITING one,
    /// [`AccessError::Infrastructure`] when only the store could tell and it cannot answer.
    pub async fn authorize(&self, token: QueueToken) -> Result<ActiveToken, AccessError> {
        let (line, ticket) = self.open(&token).ok_or(AccessError::TokenInvalid)?;
        line.authorize(ticket).await?;
        Ok(ActiveToken {
            room: line.room,
            ticket,
        })
    }

    /// One step of the line of the room `default`; see [`QueueService::advance_room`].
    ///
    /// # Errors
    /// See [`WaitingQueue::advance`]; the polls are reported again at the next step.
    pub async fn advance(&self) -> Result<AdmissionReport, QueueError> {
        self.default.advance().await
    }

    /// One step of `room`'s line, run every admission interval: reports this instance's polls,
    /// admits within the shared budget and brings the view up to date.
    ///
    /// # Errors
    /// [`QueueError::RoomUnknown`] when this instance follows no line of `room`; otherwise see
    /// [`WaitingQueue::advance`]; the polls are reported again at the next step.
    pub async fn advance_room(&self, room: &RoomId) -> Result<AdmissionReport, QueueError> {
        self.line_for(room)?.advance().await
    }

    /// How many times this instance found the line of the room `default` gone from the store.
    pub fn lines_lost(&self) -> u64 {
        self.default.lines_lost.load(Ordering::Relaxed)
    }

    /// How many waiting places, of every room, this instance keeps a poll time for (only those
    /// within reach of a front; see `docs/scaling.md`).
    pub fn polls_kept(&self) -> usize {
        let rooms = self.rooms.read().unwrap_or_else(PoisonError::into_inner);
        self.default.polls_kept() + rooms.values().map(|line| line.polls_kept()).sum::<usize>()
    }

    /// How many times this instance found the line of `room` gone from the store.
    pub fn room_lines_lost(&self, room: &RoomId) -> u64 {
        self.line_of(room)
            .map_or(0, |line| line.lines_lost.load(Ordering::Relaxed))
    }

    /// How many places of the room `default` are undecided and how many are ACTIVE, as this
    /// instance last saw.
    pub fn line_sizes(&self) -> (u64, usize) {
        self.default.sizes()
    }

    /// [`QueueService::line_sizes`] of `room`; `None` for a room whose line it does not follow.
    pub fn room_sizes(&self, room: &RoomId) -> Option<(u64, usize)> {
        self.line_of(room).map(|line| line.sizes())
    }

    /// How many places behind `room`'s front this instance knows to have been left by their
    /// holders (they still count as undecided in the store until the front passes them); 0 for
    /// a room whose line it does not follow.
    pub fn room_left_behind(&self, room: &RoomId) -> u64 {
        self.line_of(room)
            .map_or(0, |line| line.line().left_behind() as u64)
    }

    /// The number up to which every place of `room` has been decided (admitted or skipped), as
    /// this instance last saw; `None` for a room whose line it does not follow.
    pub fn serving_number(&self, room: &RoomId) -> Option<u64> {
        self.line_of(room).map(|line| line.line().head())
    }

    /// Ends `token` whatever its state, for an operator: true when it was live. A token that is
    /// not one of ours, or of a room that no longer exists, was never live.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    pub async fn revoke(&self, token: &QueueToken) -> Result<bool, QueueError> {
        let Some((line, ticket)) = self.open(token) else {
            return Ok(false);
        };
        line.end(&ticket).await
    }

    /// [`QueueService::revoke`] for a token of `room` only: a token of another room was never
    /// live there.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    pub async fn revoke_in(&self, room: &RoomId, token: &QueueToken) -> Result<bool, QueueError> {
        match self.open(token) {
            Some((line, ticket)) if line.room == *room => line.end(&ticket).await,
            _ => Ok(false),
        }
    }
}

impl Line {
    fn new(
        room: RoomId,
        queue: Arc<dyn WaitingQueue>,
        keys: Arc<TokenKeys>,
        policy: QueuePolicy,
        clock: Arc<dyn Clock>,
        seeds: Arc<dyn SeedSource>,
    ) -> Self {
        Self {
            room,
            queue: RwLock::new(queue),
            keys,
            policy: RwLock::new(policy),
            clock,
            seeds,
            draw: RwLock::default(),
            line: RwLock::default(),
            keep_alive: Mutex::default(),
            settings: RwLock::new(LineSettings::from_policy(&policy)),
            lines_lost: AtomicU64::default(),
            settings_changes: AtomicU64::default(),
            random: std::sync::atomic::AtomicBool::default(),
        }
    }

    /// The line's store, as last opened.
    fn store(&self) -> Arc<dyn WaitingQueue> {
        self.queue
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The admission rules as configured for this line, before any operator change.
    fn policy(&self) -> QueuePolicy {
        *self.policy.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows the line in `queue` by `policy` from now on, keeping what this instance knows of
    /// it (its view, the polls not yet reported, the settings and the draw): a room's settings
    /// changed, its line did not.
    fn reopen(&self, queue: Arc<dyn WaitingQueue>, policy: QueuePolicy, mode: RoomMode) {
        *self.queue.write().unwrap_or_else(PoisonError::into_inner) = queue;
        *self.policy.write().unwrap_or_else(PoisonError::into_inner) = policy;
        self.random
            .store(mode == RoomMode::Random, Ordering::Release);
    }

    fn settings(&self) -> LineSettings {
        *self.settings.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn draw(&self) -> LineDraw {
        *self.draw.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed_here(&self, after: LineSettings) {
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = after;
        self.settings_changes.fetch_add(1, Ordering::AcqRel);
    }

    fn sizes(&self) -> (u64, usize) {
        let line = self.line();
        (line.undecided(), line.active_count())
    }

    async fn enter(
        &self,
        user: Option<UserId>,
        client: &ClientKey,
    ) -> Result<QueueView, QueueError> {
        let entered = self.store().enter(user, client).await?;
        Ok(self.entered(entered))
    }

    /// What this instance learns from a place the store handed out (or back), and the view of
    /// it the client is told.
    fn entered(&self, entered: Entered) -> QueueView {
        let now = self.clock.now();
        if entered.opens_at.is_some() && self.settings().opens_at != entered.opens_at {
            // An opening scheduled on another instance since this one's last step: followed at
            // once, so that this answer already says when the line opens.
            self.settings
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .opens_at = entered.opens_at;
        }
        match entered.state {
            TicketState::Active { until } => {
                self.line_mut().note_active(&entered.ticket, until, now)
            }
            TicketState::Waiting { position } => {
                self.noted_alive(entered.ticket.seq, position, now)
            }
        }
        let token = self.keys.seal_in_room(&self.room, &entered.ticket);
        let mut view = self.view(token, &entered.ticket, entered.state, now);
        view.admitted_now = entered.admitted_now;
        view
    }

    async fn poll(&self, token: QueueToken, ticket: Ticket) -> Result<QueueView, QueueError> {
        let now = self.clock.now();
        let (judgement, fresh) = self.judge(&ticket, now);
        match judgement {
            Judgement::Active { until } if fresh => {
                return Ok(self.view(token, &ticket, TicketState::Active { until }, now))
            }
            Judgement::Dead if fresh => return Err(QueueError::TokenInvalid),
            // Far from the front a place's liveness does not matter yet, so a poll there is
            // answered from memory on any instance, whether or not it polled here before.
            Judgement::Waiting { position }
                if fresh
                    && (!self.tracked(position) || self.polled_within_idle(ticket.seq, now)) =>
            {
                self.polled(ticket.seq, position, now);
                return Ok(self.view(token, &ticket, TicketState::Waiting { position }, now));
            }
            _ => {}
        }
        match self.store().lookup(&ticket, true).await {
            Ok(Some(state)) => {
                self.learned(&ticket, state, now);
                Ok(self.view(token, &ticket, state, now))
            }
            Ok(None) => {
                self.line_mut().note_dead(&ticket, now);
                Err(QueueError::TokenInvalid)
            }
            Err(unavailable) => match judgement {
                Judgement::Active { until } => {
                    Ok(self.view(token, &ticket, TicketState::Active { until }, now))
                }
                Judgement::Waiting { position } => {
                    self.polled(ticket.seq, position, now);
                    Ok(self.view(token, &ticket, TicketState::Waiting { position }, now))
                }
                Judgement::Dead => Err(QueueError::TokenInvalid),
                Judgement::Unknown => Err(unavailable),
            },
        }
    }

    /// Ends `ticket` in the store, then here; answers whether it was live.
    async fn end(&self, ticket: &Ticket) -> Result<bool, QueueError> {
        let was_live = self.store().revoke(ticket).await?;
        self.line_mut().note_dead(ticket, self.clock.now());
        Ok(was_live)
    }

    /// Ends a session whatever the store answers: here at once, in the store if it can.
    async fn end_session(&self, ticket: &Ticket) -> Result<(), QueueError> {
        let ended = self.store().revoke(ticket).await.map(drop);
        self.line_mut().note_dead(ticket, self.clock.now());
        ended
    }

    async fn authorize(&self, ticket: Ticket) -> Result<(), AccessError> {
        let now = self.clock.now();
        let (judgement, fresh) = self.judge(&ticket, now);
        match judgement {
            Judgement::Active { .. } if fresh => return Ok(()),
            Judgement::Dead if fresh => return Err(AccessError::TokenInvalid),
            Judgement::Waiting { position } if fresh && position > self.near_the_front() => {
                return Err(AccessError::TokenNotActive)
            }
            _ => {}
        }
        match self.store().lookup(&ticket, false).await {
            Ok(Some(state)) => {
                self.learned(&ticket, state, now);
                match state {
                    TicketState::Active { .. } => Ok(()),
                    TicketState::Waiting { .. } => Err(AccessError::TokenNotActive),
                }
            }
            Ok(None) => {
                self.line_mut().note_dead(&ticket, now);
                Err(AccessError::TokenInvalid)
            }
            Err(unavailable) => match judgement {
                Judgement::Active { .. } => Ok(()),
                Judgement::Waiting { .. } => Err(AccessError::TokenNotActive),
                Judgement::Dead => Err(AccessError::TokenInvalid),
                Judgement::Unknown => Err(match unavailable {
                    QueueError::Infrastructure(cause) => AccessError::Infrastructure(cause),
                    QueueError::TokenInvalid
                    | QueueError::RateLimited { .. }
                    | QueueError::RoomUnknown => AccessError::TokenInvalid,
                }),
            },
        }
    }

    async fn advance(&self) -> Result<AdmissionReport, QueueError> {
        let seen: Vec<Seq> = self.keep_alive().unreported.drain().collect();
        let cursor = self.line().cursor();
        let changes_before = self.settings_changes.load(Ordering::Acquire);
        // The view is as old as the moment the store was read, not as the moment the answer
        // arrived: a slow step must not make stale data look fresh.
        let read_at = self.clock.now();
        match self.store().advance(&seen, &cursor).await {
            Ok(step) => {
                let now = self.clock.now();
                let changed_meanwhile =
                    self.settings_changes.load(Ordering::Acquire) != changes_before;
                if !changed_meanwhile {
                    *self
                        .settings
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = step.settings;
                }
                let followed = self.line().epoch();
                if followed.is_some() && step.sync.epoch != followed {
                    // Every token of the old line is dead: the store was emptied or replaced.
                    self.lines_lost.fetch_add(1, Ordering::Relaxed);
                }
                self.line_mut().apply(step.sync, read_at);
                *self.draw.write().unwrap_or_else(PoisonError::into_inner) = step.draw;
                if let Some(range) = step.draw_due {
                    // Every instance computes the same order from the committed seed and may
                    // record it; the store keeps the first. An opening scheduled without a seed
                    // (by a store change not made through this service) takes one now: then
                    // the orders differ, but the store keeps the seed with the order it keeps.
                    let seed = step.draw.pending.unwrap_or_else(|| self.seeds.seed());
                    let order = drawn_order(&seed, range);
                    let drawn = self.store().draw(range, &seed, &order).await?;
                    let _ = drawn;
                }
                let to_load = self.line().draw_to_load();
                if let Some(range) = to_load {
                    if let Some((recorded, order)) = self.store().draw_order().await? {
                        if recorded == range {
                            self.line_mut().load_draw(range, &order);
                        }
                    }
                }
                let idle = chrono::Duration::from_std(self.policy().waiting_idle_timeout)
                    .unwrap_or(chrono::Duration::MAX);
                let head = self.line().head();
                self.keep_alive()
                    .last_poll
                    .retain(|seq, at| *seq > head && now.signed_duration_since(*at) <= idle);
                Ok(step.report)
            }
            Err(error) => {
                self.keep_alive().unreported.extend(seen);
                Err(error)
            }
        }
    }

    fn judge(&self, ticket: &Ticket, now: DateTime<Utc>) -> (Judgement, bool) {
        let line = self.line();
        (line.judge(ticket, now), line.is_fresh(now, MAX_VIEW_AGE))
    }

    /// Positions so close to the front that the store may have admitted them since the view's
    /// last sync: a protected request from one of them is checked with the store.
    fn near_the_front(&self) -> u64 {
        u64::from(self.settings().admit_per_second.get()) + 1
    }

    fn learned(&self, ticket: &Ticket, state: TicketState, now: DateTime<Utc>) {
        match state {
            TicketState::Active { until } => self.line_mut().note_active(ticket, until, now),
            TicketState::Waiting { position } => self.noted_alive(ticket.seq, position, now),
        }
    }

    /// Whether a poll at `position` must reach the store: only near enough the front for its
    /// liveness to matter (see [`QueuePolicy::keep_alive_window`]).
    fn tracked(&self, position: u64) -> bool {
        self.random.load(Ordering::Acquire)
            || position
                <= self
                    .settings()
                    .applied_to(&self.policy())
                    .keep_alive_window()
    }

    fn polled_within_idle(&self, seq: Seq, now: DateTime<Utc>) -> bool {
        let idle =
            chrono::Duration::from_std(self.policy().waiting_idle_timeout).unwrap_or_default();
        self.keep_alive()
            .last_poll
            .get(&seq)
            .is_some_and(|at| now.signed_duration_since(*at) < idle)
    }

    /// Notes a poll of `seq` at `position` answered here, for the store to record at the next
    /// step. Only places within reach of the front are kept: further back nothing is, so an
    /// instance keeps nothing for the people far back, however their polls are spread.
    fn polled(&self, seq: Seq, position: u64, now: DateTime<Utc>) {
        if self.tracked(position) {
            let mut keep_alive = self.keep_alive();
            keep_alive.last_poll.insert(seq, now);
            keep_alive.unreported.insert(seq);
        }
    }

    /// Notes that the store has just recorded `seq` at `position` as alive (an entry, or a
    /// poll it answered), if it is within reach of the front.
    fn noted_alive(&self, seq: Seq, position: u64, now: DateTime<Utc>) {
        if self.tracked(position) {
            self.keep_alive().last_poll.insert(seq, now);
        }
    }

    /// How many waiting places this instance keeps a poll time for.
    fn polls_kept(&self) -> usize {
        self.keep_alive().last_poll.len()
    }

    fn view(
        &self,
        token: QueueToken,
        ticket: &Ticket,
        state: TicketState,
        now: DateTime<Utc>,
    ) -> QueueView {
        let ticket_number = self.line().ticket_number(ticket.seq).unwrap_or(ticket.seq);
        match state {
            TicketState::Active { until } => QueueView {
                token,
                room: self.room,
                ticket_number,
                status: QueueStatus::Active,
                position: 0,
                estimated_wait_seconds: 0,
                active_until: Some(until),
                poll_after_seconds: None,
                opens_at: None,
                admitted_now: false,
            },
            TicketState::Waiting { position } => {
                let settings = self.settings();
                let policy = settings.applied_to(&self.policy());
                // The store answers position 0 in a pre-queue even before this instance's
                // settings say so.
                if settings.opens_at.is_some() || position == 0 {
                    let opens_at = settings.opens_at.unwrap_or(now);
                    // A pre-queue: no place until the draw at the opening.
                    let until_opening = opens_at.signed_duration_since(now).num_seconds();
                    return QueueView {
                        token,
                        room: self.room,
                        ticket_number,
                        status: QueueStatus::Waiting,
                        position: 0,
                        estimated_wait_seconds: u64::try_from(until_opening).unwrap_or(0),
                        active_until: None,
                        // Never past the opening: the draw needs nobody's poll, but the
                        // person wants to learn their place as soon as it exists.
                        poll_after_seconds: Some(
                            policy
                                .longest_poll_interval()
                                .min(u64::try_from(until_opening).unwrap_or(0).max(1)),
                        ),
                        opens_at: settings.opens_at,
                        admitted_now: false,
                    };
                }
                let wait = self.line().estimated_wait(position, &policy, now);
                QueueView {
                    token,
                    room: self.room,
                    ticket_number,
                    status: QueueStatus::Waiting,
                    position,
                    estimated_wait_seconds: wait,
                    active_until: None,
                    poll_after_seconds: Some(policy.poll_after(wait)),
                    opens_at: None,
                    admitted_now: false,
                }
            }
        }
    }

    fn line(&self) -> std::sync::RwLockReadGuard<'_, LineView> {
        self.line.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn line_mut(&self) -> std::sync::RwLockWriteGuard<'_, LineView> {
        self.line.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn keep_alive(&self) -> std::sync::MutexGuard<'_, KeepAlive> {
        self.keep_alive
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::queue::controls::DrawRange;
    use crate::queue::draw::{DrawSeed, FixedSeed};
    use crate::queue::line::{LineChanges, LineEvent, LineSync, SyncCursor};
    use crate::queue::port::{Entered, LineStep, MockWaitingQueue};
    use crate::queue::token::SigningKey;
    use crate::testing::store::ManualClock;
    use crate::InfrastructureError;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_900_000_000 + seconds, 0).expect("valid")
    }

    fn keys() -> TokenKeys {
        TokenKeys::new(SigningKey::new(vec![3; 32]).expect("long enough"), None)
    }

    fn policy() -> QueuePolicy {
        QueuePolicy {
            max_active: NonZeroU32::new(10).expect("non-zero"),
            admit_per_second: NonZeroU32::new(5).expect("non-zero"),
            active_ttl: Duration::from_secs(600),
            waiting_idle_timeout: Duration::from_secs(60),
            entry_rate_per_client: None,
        }
    }

    fn ticket(seq: Seq) -> Ticket {
        Ticket {
            epoch: 1,
            seq,
            user: None,
        }
    }

    fn token(seq: Seq) -> QueueToken {
        keys().seal(&ticket(seq))
    }

    /// Places 1..=3 admitted until 600 s, the line handed out up to 100.
    fn step(events: Vec<LineEvent>) -> LineStep {
        LineStep {
            report: AdmissionReport::default(),
            sync: LineSync {
                epoch: Some(1),
                head: 3,
                last_seq: 100,
                cursor: SyncCursor::new("1:1-0"),
                changes: LineChanges::Since(events),
                draw: None,
            },
            settings: LineSettings::from_policy(&policy()),
            draw_due: None,
            draw: LineDraw::default(),
        }
    }

    fn admitted_one_to_three() -> Vec<LineEvent> {
        vec![LineEvent::Admitted {
            seqs: vec![1, 2, 3],
            until: at(600),
        }]
    }

    fn service(queue: MockWaitingQueue, clock: &ManualClock) -> QueueService {
        QueueService::new(
            Arc::new(queue),
            keys(),
            policy(),
            Arc::new(clock.clone()),
            Arc::new(FixedSeed(committed_seed())),
        )
    }

    fn committed_seed() -> DrawSeed {
        DrawSeed::from_bytes([9; 32])
    }

    /// A store whose first step reports places 1..=3 admitted, and which must not be asked
    /// anything else.
    fn synced_store() -> MockWaitingQueue {
        let mut queue = MockWaitingQueue::new();
        queue
            .expect_advance()
            .times(1)
            .returning(|_, _| Ok(step(admitted_one_to_three())));
        queue
    }

    fn down() -> QueueError {
        InfrastructureError::unavailable("redis down").into()
    }

    #[tokio::test]
    async fn a_forged_token_is_refused_without_asking_the_store() {
        let clock = ManualClock::new(at(0));
        let service = service(MockWaitingQueue::new(), &clock);
        let forged =
            TokenKeys::new(SigningKey::new(vec![4; 32]).expect("long"), None).seal(&ticket(1));

        assert_eq!(
            service.authorize(forged.clone()).await,
            Err(AccessError::TokenInvalid)
        );
        assert_eq!(
            service.poll(forged.clone()).await,
            Err(QueueError::TokenInvalid)
        );
        assert_eq!(service.leave(&forged).await, Err(QueueError::TokenInvalid));
    }

    #[tokio::test]
    async fn with_a_fresh_view_an_active_token_passes_from_memory() {
        let clock = ManualClock::new(at(0));
        let service = service(synced_store(), &clock);
        service.advance().await.expect("step");

        let active = service.authorize(token(2)).await.expect("active");

        assert_eq!(active.user(), None);
    }

    #[tokio::test]
    async fn with_a_stale_view_the_store_is_asked() {
        let clock = ManualClock::new(at(0));
        let mut queue = synced_store();
        queue.expect_lookup().times(1).returning(|_, _| Ok(None));
        let service = service(queue, &clock);
        service.advance().await.expect("step");
        clock.advance(Duration::from_millis(1_500));

        assert_eq!(
            service.authorize(token(2)).await,
            Err(AccessError::TokenInvalid),
            "revoked in the store while this view was not refreshed: never a stale yes"
        );
    }

    #[tokio::test]
    async fn a_step_whose_answer_came_late_is_as_old_as_its_read() {
        let clock = ManualClock::new(at(0));
        let mut queue = MockWaitingQueue::new();
        let slow = clock.clone();
        queue.expect_advance().times(1).returning(move |_, _| {
            // Read at 0 s, answered 1.5 s later (a starved process).
            slow.advance(Duration::from_millis(1_500));
            Ok(step(admitted_one_to_three()))
        });
        queue.expect_lookup().times(1).returning(|_, _| Ok(None));
        let service = service(queue, &clock);
        service.advance().await.expect("step");

        assert_eq!(
            service.authorize(token(2)).await,
            Err(AccessError::TokenInvalid),
            "data read 1.5 s ago is not fresh: the store is asked"
        );
    }

    #[tokio::test]
    async fn a_revocation_from_the_feed_is_refused_from_memory() {
        let clock = ManualClock::new(at(0));
        let mut queue = MockWaitingQueue::new();
        let mut sequence = mockall::Sequence::new();
        queue
            .expect_advance()
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _| Ok(step(admitted_one_to_three())));
        queue
            .expect_advance()
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _| Ok(step(vec![LineEvent::Revoked { seq: 2 }])));
        let service = service(queue, &clock);
        service.advance().await.expect("step");
        assert!(service.authorize(token(2)).await.is_ok());

        service.advance().await.expect("step");

        assert_eq!(
            service.authorize(token(2)).await,
            Err(AccessError::TokenInvalid)
        );
        assert!(service.authorize(token(3)).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_ended_here_is_refused_at_once() {
        let clock = ManualClock::new(at(0));
        let mut queue = synced_store();
        queue.expect_revoke().times(1).returning(|_| Ok(true));
        let service = service(queue, &clock);
        service.advance().await.expect("step");

        service.leave(&token(1)).await.expect("left");

        assert_eq!(
            service.authorize(token(1)).await,
            Err(AccessError::TokenInvalid)
        );
    }

    #[tokio::test]
    async fn far_back_in_line_is_not_active_from_memory_near_the_front_the_store_decides() {
        let clock = ManualClock::new(at(0));
        let mut queue = synced_store();
        queue
            .expect_lookup()
            .withf(|ticket, keep_alive| ticket.seq == 5 && !*keep_alive)
            .times(1)
            .returning(|_, _| Ok(Some(TicketState::Active { until: at(600) })));
        let service = service(queue, &clock);
        service.advance().await.expect("step");

        assert_eq!(
            service.authorize(token(90)).await,
            Err(AccessError::TokenNotActive)
        );
        assert!(
            service.authorize(token(5)).await.is_ok(),
            "admitted by another instance since the last sync"
        );
        assert!(
            service.authorize(token(5)).await.is_ok(),
            "and remembered: the store is not asked again"
        );
    }

    #[tokio::test]
    async fn while_the_store_is_down_what_the_view_knows_is_answered() {
        let clock = ManualClock::new(at(0));
        let mut queue = synced_store();
        queue.expect_lookup().returning(|_, _| Err(down()));
        let service = service(queue, &clock);
        service.advance().await.expect("step");
        clock.advance(Duration::from_millis(5_000));

        assert!(
            service.authorize(token(1)).await.is_ok(),
            "fail static: the admitted buyer goes on"
        );
        assert_eq!(
            service.authorize(token(50)).await,
            Err(AccessError::TokenNotActive)
        );
        let waiting = service.poll(token(50)).await.expect("keeps its place");
        assert_eq!(waiting.position, 47);
        let other_line =
            TokenKeys::new(SigningKey::new(vec![3; 32]).expect("long"), None).seal(&Ticket {
                epoch: 2,
                ..ticket(1)
            });
        assert!(matches!(
            service.authorize(other_line).await,
            Err(AccessError::Infrastructure(_))
        ));
    }

    #[tokio::test]
    async fn a_session_past_its_end_is_refused_even_while_the_store_is_down() {
        let clock = ManualClock::new(at(0));
        let mut queue = synced_store();
        queue.expect_lookup().returning(|_, _| Err(down()));
        let service = service(queue, &clock);
        service.advance().await.expect("step");
        clock.advance(Duration::from_millis(601_000));

        assert_eq!(
            service.authorize(token(1)).await,
            Err(AccessError::TokenInvalid)
        );
    }

    #[tokio::test]
    async fn a_poll_answered_from_memory_is_reported_with_the_next_step() {
        let clock = ManualClock::new(at(0));
        let mut queue = MockWaitingQueue::new();
        queue.expect_enter().times(1).returning(|_, _| {
            Ok(Entered {
                ticket: ticket(40),
                state: TicketState::Waiting { position: 37 },
                admitted_now: false,
                opens_at: None,
            })
        });
        let mut sequence = mockall::Sequence::new();
        queue
            .expect_advance()
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _| Ok(step(vec![])));
        queue
            .expect_advance()
            .withf(|seen, _| seen == [40])
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _| Err(down()));
        queue
            .expect_advance()
            .withf(|seen, _| seen == [40])
            .times(1)
            .in_sequence(&mut sequence)
            .returning(|_, _| Ok(step(vec![])));
        let service = service(queue, &clock);
        let entered = service
            .enter_queue(None, &ClientKey::new("10.0.0.1"))
            .await
            .expect("entered");
        service.advance().await.expect("step");

        let polled = service.poll(entered.token.clone()).await.expect("polled");
        assert_eq!(polled.position, 37, "from memory, no lookup");
        assert!(service.advance().await.is_err());
        service.advance().await.expect("the poll is reported again");
    }

    #[tokio::test]
    async fn a_waiting_token_not_polled_here_lately_is_checked_with_the_store() {
        let clock = ManualClock::new(at(0));
        let mut queue = synced_store();
        queue
            .expect_lookup()
            .withf(|_, keep_alive| *keep_alive)
            .times(1)
            .returning(|_, _| Ok(None));
        let service = service(queue, &clock);
        service.advance().await.expect("step");

        assert_eq!(
            service.poll(token(60)).await,
            Err(QueueError::TokenInvalid),
            "dropped for idling"
        );
    }

    #[tokio::test]
    async fn far_back_a_poll_on_any_instance_is_answered_from_memory_and_nothing_is_kept() {
        let clock = ManualClock::new(at(0));
        let mut queue = MockWaitingQueue::new();
        queue.expect_advance().times(1).returning(|_, _| {
            let mut step = step(admitted_one_to_three());
            step.sync.last_seq = 100_000;
            Ok(step)
        });
        // No lookup: the store must not be asked.
        let service = service(queue, &clock);
        service.advance().await.expect("step");

        let far_back = service.poll(token(50_000)).await.expect("answered");
        assert_eq!(far_back.status, QueueStatus::Waiting);
        assert_eq!(far_back.position, 50_000 - 3);
        assert_eq!(far_back.ticket_number, 50_000);
        assert_eq!(service.polls_kept(), 0, "nothing kept for a place far back");
    }

    #[tokio::test]
    async fn a_pre_queue_never_sends_anyone_past_the_opening() {
        let clock = ManualClock::new(at(0));
        let mut queue = MockWaitingQueue::new();
        queue.expect_advance().times(1).returning(|_, _| {
            let mut step = step(admitted_one_to_three());
            step.settings.opens_at = Some(at(5));
            step.sync.last_seq = 100_000;
            Ok(step)
        });
        let service = service(queue, &clock);
        service.advance().await.expect("step");
        let view = service.poll(token(50_000)).await.expect("answered");
        assert_eq!(view.opens_at, Some(at(5)));
        assert_eq!(view.position, 0);
        assert!(
            view.poll_after_seconds.is_some_and(|after| after <= 5),
            "{view:?}"
        );
    }

    #[tokio::test]
    async fn a_waiting_view_carries_the_wait_and_when_to_poll_again() {
        let clock = ManualClock::new(at(0));
        let mut queue = MockWaitingQueue::new();
        queue.expect_enter().returning(|_, _| {
            Ok(Entered {
                ticket: ticket(8),
                state: TicketState::Waiting { position: 8 },
                admitted_now: false,
                opens_at: None,
            })
        });
        let view = service(queue, &clock)
            .enter_queue(None, &ClientKey::new("10.0.0.1"))
            .await
            .expect("entered");

        assert_eq!(view.status, QueueStatus::Waiting);
        assert_eq!(
            view.estimated_wait_seconds, 2,
            "8 at 5 per second, with room"
        );
        assert_eq!(view.poll_after_seconds, Some(1));
        assert_eq!(view.token, token(8));
    }

    #[tokio::test]
    async fn the_proof_of_an_active_token_carries_the_user_it_is_bound_to() {
        let clock = ManualClock::new(at(0));
        let bound = Ticket {
            user: Some(UserId::new(7).expect("valid")),
            ..ticket(2)
        };
        let service = service(synced_store(), &clock);
        service.advance().await.expect("step");

        let active = service
            .authorize(keys().seal(&bound))
            .await
            .expect("active");

        assert_eq!(active.user(), Some(UserId::new(7).expect("valid")));
        assert_eq!(
            crate::access::TokenBinding::new(false).check(&active, UserId::new(8).expect("valid")),
            Err(AccessError::TokenUserMismatch)
        );
    }

    #[tokio::test]
    async fn a_due_draw_records_the_order_computed_from_the_committed_seed() {
        let clock = ManualClock::new(at(0));
        let range = DrawRange {
            after: 3,
            through: 100,
        };
        let committed = DrawSeed::from_bytes([4; 32]);
        let mut queue = MockWaitingQueue::new();
        queue.expect_advance().times(1).returning(move |_, _| {
            Ok(LineStep {
                draw_due: Some(range),
                draw: LineDraw {
                    pending: Some(committed),
                    last: None,
                },
                ..step(admitted_one_to_three())
            })
        });
        queue
            .expect_draw()
            .withf(move |drawn, seed, order| {
                *drawn == range && *seed == committed && order == drawn_order(&committed, range)
            })
            .times(1)
            .returning(|_, _, _| Ok(true));
        queue.expect_draw_order().returning(|| Ok(None));
        let service = service(queue, &clock);
        service.advance().await.expect("a step");
        assert_eq!(
            service.room_draw(&RoomId::default_room()),
            Some(PublishedDraw::Committed {
                commitment: committed.commitment()
            }),
            "the seed stays secret until the store reports the draw made"
        );
    }

    #[test]
    fn only_a_change_that_schedules_an_opening_takes_a_seed() {
        let clock = ManualClock::new(at(0));
        let service = service(MockWaitingQueue::new(), &clock);
        let schedule =
            SettingsChange::new(None, None, None, None, Some(Some(at(60))), at(0)).expect("valid");
        assert_eq!(service.seeded(schedule).draw_seed(), Some(committed_seed()));
        let cancel = SettingsChange::new(None, None, None, None, Some(None), at(0)).expect("valid");
        assert_eq!(service.seeded(cancel).draw_seed(), None);
        assert_eq!(
            service.seeded(SettingsChange::pause(true)).draw_seed(),
            None
        );
    }
}
