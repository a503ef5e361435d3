//! The store of the line, as a port: what any adapter (Redis, in memory, ...) must do.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::controls::{DrawRange, LineSettings};
use super::draw::{DrawSeed, LineDraw};
use super::errors::QueueError;
use super::line::{LineSync, SyncCursor};
use super::token::{Seq, Ticket};
use crate::ids::UserId;

/// Who is asking to enter: the key their entries are counted under for the per-client limit
/// (their network address).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey(String);

impl ClientKey {
    /// The key of a client (its network address).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a live ticket stands, as the store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Not `#[non_exhaustive]`: port vocabulary, which every adapter and its tests handle in full;
// a new variant changes the port and must break them.
pub enum TicketState {
    /// Admitted until `until`.
    Active {
        /// When the admission ends.
        until: DateTime<Utc>,
    },
    /// In line; `position` is 1-based, counting the places ahead not yet known to be empty.
    Waiting {
        /// The place in line, 1-based.
        position: u64,
    },
}

/// A ticket handed out by [`WaitingQueue::enter`], and where it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entered {
    /// The ticket handed out.
    pub ticket: Ticket,
    /// Where the ticket stands now.
    pub state: TicketState,
    /// This entry was admitted straight in (an admission, counted against the budget), as
    /// opposed to a user handed back a place they already had.
    pub admitted_now: bool,
    /// While the line is a pre-queue: when it opens, as the store knows it at the entry (an
    /// instance may not have learned of a just scheduled opening yet).
    pub opens_at: Option<DateTime<Utc>>,
}

/// What one admission step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdmissionReport {
    /// Tickets moved from WAITING to ACTIVE.
    pub admitted: u32,
    /// Expired ACTIVE tickets removed.
    pub expired: u32,
    /// Places at the front skipped because their holder stopped polling or left.
    pub dropped_idle: u32,
    /// Places still undecided after the step (waiting, counting places not yet known empty).
    pub waiting: u64,
    /// ACTIVE tickets after the step.
    pub active: u64,
}

/// One step of the line: what the admission did, what changed since the caller's cursor, the
/// settings in force, and a scheduled opening's draw when it is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineStep {
    /// What the admission did.
    pub report: AdmissionReport,
    /// What changed since the caller's cursor.
    pub sync: LineSync,
    /// The settings in force.
    pub settings: LineSettings,
    /// The opening time has passed and these places wait for their draw: nobody is admitted
    /// until one instance draws it ([`WaitingQueue::draw`]).
    pub draw_due: Option<DrawRange>,
    /// The seed of the scheduled opening's draw and the last draw made, as the store keeps them.
    pub draw: LineDraw,
}

/// The store of the waiting room. Every operation is atomic in the store, so any number of app
/// instances share one line and together respect the policy given at construction.
///
/// The store keeps per person only what cannot be signed into the token: whether they are still
/// there (polled recently, not left), and the user's one place. Instances learn admissions and
/// revocations from [`WaitingQueue::advance`] and answer most questions from memory.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait WaitingQueue: Send + Sync {
    /// Enters `user` (or an anonymous client) into the line. The new ticket is ACTIVE at once
    /// when nobody waits, the active set has room and this second's admission budget is not
    /// spent; otherwise it waits at the back. A `user` whose ticket is still live gets that
    /// ticket back, in its place.
    ///
    /// # Errors
    /// [`QueueError::RateLimited`] when `client` entered more often than the per-client limit
    /// this second; [`QueueError::Infrastructure`] when the store cannot answer.
    async fn enter(&self, user: Option<UserId>, client: &ClientKey) -> Result<Entered, QueueError>;

    /// Hands `user` back their live place, entering nobody: for a line that takes no new
    /// entries (a closed room), where people already in keep their places. `None` when the user
    /// has no live place.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    async fn rejoin(&self, user: UserId) -> Result<Option<Entered>, QueueError>;

    /// Where `ticket` stands by the store itself, or `None` when it is dead (expired, revoked,
    /// dropped for idling, or of a line that no longer exists). With `keep_alive`, a WAITING
    /// ticket counts as polled now.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    async fn lookup(
        &self,
        ticket: &Ticket,
        keep_alive: bool,
    ) -> Result<Option<TicketState>, QueueError>;

    /// Ends `ticket`, waiting or active, and publishes that to every instance; returns whether
    /// it was live.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    async fn revoke(&self, ticket: &Ticket) -> Result<bool, QueueError>;

    /// One step, run by every instance every admission interval: records that the tickets
    /// `seen` were polled here, drops expired ACTIVE tickets, skips the places at the front whose
    /// holder is gone, admits from the front within the room left and this second's budget,
    /// and answers what changed since `since` (or the whole state when `since` is too old).
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer; nothing in `seen` is
    /// recorded then.
    async fn advance(&self, seen: &[Seq], since: &SyncCursor) -> Result<LineStep, QueueError>;

    /// Records `order` as the draw of the due opening `range`, computed from `seed` (kept with
    /// it, to be published), unless an order was already recorded for it (by this or any other
    /// instance): only the first counts, so the draw happens once; as every instance computes
    /// the order from the same committed seed, which one counts makes no difference. Returns
    /// whether this call's order counted. The opening is then done: the line admits.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    async fn draw(
        &self,
        range: DrawRange,
        seed: &DrawSeed,
        order: &[Seq],
    ) -> Result<bool, QueueError>;

    /// The order of the draw in force (see [`WaitingQueue::draw`]): `order[i]` holds the place
    /// `after + 1 + i`, if any.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    async fn draw_order(&self) -> Result<Option<(DrawRange, Vec<Seq>)>, QueueError>;
}
