//! The waiting-room use cases: enter, poll, leave, and the token check of protected requests,
//! answered from this instance's [`LineView`] wherever it can tell, from the store otherwise.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::errors::{AccessError, QueueError};
use super::line::{Judgement, LineView};
use super::policy::QueuePolicy;
use super::port::{AdmissionReport, ClientKey, TicketState, WaitingQueue};
use super::token::{QueueToken, Seq, Ticket, TokenKeys};
use crate::clock::Clock;
use crate::ids::UserId;

/// The oldest a view may be for its "yes" to be trusted while the store answers: past it the
/// store is asked, so a revocation is never missed for longer than this (the contract's 1 s).
pub const MAX_VIEW_AGE: Duration = Duration::from_secs(1);

/// Where a client is: admitted, or still in line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStatus {
    Active,
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
    pub token: QueueToken,
    pub status: QueueStatus,
    /// 1-based among WAITING tokens; 0 when ACTIVE.
    pub position: u64,
    pub estimated_wait_seconds: u64,
    pub active_until: Option<DateTime<Utc>>,
    /// When a WAITING client should poll next.
    pub poll_after_seconds: Option<u64>,
}

/// Proof that a request carries an ACTIVE token: only [`QueueService::authorize`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveToken {
    ticket: Ticket,
}

impl ActiveToken {
    /// The user the token is bound to, if any.
    pub fn user(&self) -> Option<UserId> {
        self.ticket.user
    }

    /// Checks that this token may act for `user`: a token bound to a user acts only for them;
    /// an unbound token acts for anyone.
    ///
    /// # Errors
    /// [`AccessError::TokenUserMismatch`] when the token is bound to another user.
    pub fn act_for(&self, user: UserId) -> Result<(), AccessError> {
        match self.ticket.user {
            Some(bound) if bound != user => Err(AccessError::TokenUserMismatch),
            _ => Ok(()),
        }
    }

    /// A proof for tests of code that takes one, without a queue.
    #[cfg(any(test, feature = "mock"))]
    pub fn for_tests(user: Option<UserId>) -> Self {
        Self {
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

/// The waiting-room use cases.
#[derive(Clone)]
pub struct QueueService {
    queue: Arc<dyn WaitingQueue>,
    keys: Arc<TokenKeys>,
    policy: QueuePolicy,
    clock: Arc<dyn Clock>,
    line: Arc<RwLock<LineView>>,
    keep_alive: Arc<Mutex<KeepAlive>>,
}

impl std::fmt::Debug for QueueService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl QueueService {
    pub fn new(
        queue: Arc<dyn WaitingQueue>,
        keys: TokenKeys,
        policy: QueuePolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            queue,
            keys: Arc::new(keys),
            policy,
            clock,
            line: Arc::default(),
            keep_alive: Arc::default(),
        }
    }

    pub fn policy(&self) -> &QueuePolicy {
        &self.policy
    }

    /// Enters the queue; see [`WaitingQueue::enter`].
    ///
    /// # Errors
    /// See [`WaitingQueue::enter`].
    pub async fn enter_queue(
        &self,
        user: Option<UserId>,
        client: &ClientKey,
    ) -> Result<QueueView, QueueError> {
        let entered = self.queue.enter(user, client).await?;
        let now = self.clock.now();
        match entered.state {
            TicketState::Active { until } => self.line_mut().note_active(&entered.ticket, until),
            TicketState::Waiting { .. } => self.polled(entered.ticket.seq, now, false),
        }
        Ok(self.view(self.keys.seal(&entered.ticket), entered.state, now))
    }

    /// Where `token` stands; polling keeps a WAITING token in line. Answered from memory when
    /// this instance's view is fresh and, for a WAITING token, when it was polled here within
    /// the idle timeout; otherwise the store is asked. While the store is unreachable, what the
    /// view knows is answered ("fail static"): admitted people stay admitted, waiting people keep
    /// their place.
    ///
    /// # Errors
    /// [`QueueError::TokenInvalid`] when the token is forged, unknown, expired or was dropped.
    pub async fn poll(&self, token: QueueToken) -> Result<QueueView, QueueError> {
        let ticket = self
            .keys
            .open(&token)
            .map_err(|_| QueueError::TokenInvalid)?;
        let now = self.clock.now();
        let (judgement, fresh) = self.judge(&ticket, now);
        match judgement {
            Judgement::Active { until } if fresh => {
                return Ok(self.view(token.clone(), TicketState::Active { until }, now))
            }
            Judgement::Dead if fresh => return Err(QueueError::TokenInvalid),
            Judgement::Waiting { position }
                if fresh && self.polled_within_idle(ticket.seq, now) =>
            {
                self.polled(ticket.seq, now, true);
                return Ok(self.view(token.clone(), TicketState::Waiting { position }, now));
            }
            _ => {}
        }
        match self.queue.lookup(&ticket, true).await {
            Ok(Some(state)) => {
                self.learned(&ticket, state, now);
                Ok(self.view(token.clone(), state, now))
            }
            Ok(None) => {
                self.line_mut().note_dead(&ticket, now);
                Err(QueueError::TokenInvalid)
            }
            Err(unavailable) => match judgement {
                Judgement::Active { until } => {
                    Ok(self.view(token.clone(), TicketState::Active { until }, now))
                }
                Judgement::Waiting { position } => {
                    self.polled(ticket.seq, now, true);
                    Ok(self.view(token.clone(), TicketState::Waiting { position }, now))
                }
                Judgement::Dead => Err(QueueError::TokenInvalid),
                Judgement::Unknown => Err(unavailable),
            },
        }
    }

    /// Leaves the line or gives up the active slot.
    ///
    /// # Errors
    /// [`QueueError::TokenInvalid`] when the token is forged or was not live.
    pub async fn leave(&self, token: &QueueToken) -> Result<(), QueueError> {
        let ticket = self
            .keys
            .open(token)
            .map_err(|_| QueueError::TokenInvalid)?;
        let was_live = self.queue.revoke(&ticket).await?;
        self.line_mut().note_dead(&ticket, self.clock.now());
        if was_live {
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
        let ended = self.queue.revoke(&active.ticket).await.map(drop);
        self.line_mut().note_dead(&active.ticket, self.clock.now());
        ended
    }

    /// Lets a request through only with an ACTIVE token. Answered from memory while this
    /// instance's view is fresh; a WAITING token near the front, a token of a line the view does
    /// not know, or any token while the view is stale is checked with the store. While the store
    /// is unreachable, a token the view knows to be ACTIVE still passes ("fail static").
    ///
    /// # Errors
    /// [`AccessError::TokenInvalid`] for a forged, unknown, expired or ended token,
    /// [`AccessError::TokenNotActive`] for a WAITING one, [`AccessError::Infrastructure`] when
    /// only the store could tell and it cannot answer.
    pub async fn authorize(&self, token: QueueToken) -> Result<ActiveToken, AccessError> {
        let ticket = self
            .keys
            .open(&token)
            .map_err(|_| AccessError::TokenInvalid)?;
        let now = self.clock.now();
        let (judgement, fresh) = self.judge(&ticket, now);
        match judgement {
            Judgement::Active { .. } if fresh => return Ok(ActiveToken { ticket }),
            Judgement::Dead if fresh => return Err(AccessError::TokenInvalid),
            Judgement::Waiting { position } if fresh && position > self.near_the_front() => {
                return Err(AccessError::TokenNotActive)
            }
            _ => {}
        }
        match self.queue.lookup(&ticket, false).await {
            Ok(Some(state)) => {
                self.learned(&ticket, state, now);
                match state {
                    TicketState::Active { .. } => Ok(ActiveToken { ticket }),
                    TicketState::Waiting { .. } => Err(AccessError::TokenNotActive),
                }
            }
            Ok(None) => {
                self.line_mut().note_dead(&ticket, now);
                Err(AccessError::TokenInvalid)
            }
            Err(unavailable) => match judgement {
                Judgement::Active { .. } => Ok(ActiveToken { ticket }),
                Judgement::Waiting { .. } => Err(AccessError::TokenNotActive),
                Judgement::Dead => Err(AccessError::TokenInvalid),
                Judgement::Unknown => Err(match unavailable {
                    QueueError::Infrastructure(cause) => AccessError::Infrastructure(cause),
                    QueueError::TokenInvalid | QueueError::RateLimited { .. } => {
                        AccessError::TokenInvalid
                    }
                }),
            },
        }
    }

    /// One step of the line, run every admission interval: reports this instance's polls,
    /// admits within the shared budget and brings the view up to date.
    ///
    /// # Errors
    /// See [`WaitingQueue::advance`]; the polls are reported again at the next step.
    pub async fn advance(&self) -> Result<AdmissionReport, QueueError> {
        let seen: Vec<Seq> = self.keep_alive().unreported.drain().collect();
        let cursor = self.line().cursor();
        match self.queue.advance(&seen, &cursor).await {
            Ok(step) => {
                let now = self.clock.now();
                self.line_mut().apply(step.sync, now);
                let idle = chrono::Duration::from_std(self.policy.waiting_idle_timeout)
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

    /// How many places are undecided and how many are ACTIVE, as this instance last saw.
    pub fn line_sizes(&self) -> (u64, usize) {
        let line = self.line();
        (line.undecided(), line.active_count())
    }

    fn judge(&self, ticket: &Ticket, now: DateTime<Utc>) -> (Judgement, bool) {
        let line = self.line();
        (line.judge(ticket, now), line.is_fresh(now, MAX_VIEW_AGE))
    }

    /// Positions so close to the front that the store may have admitted them since the view's
    /// last sync: a protected request from one of them is checked with the store.
    fn near_the_front(&self) -> u64 {
        u64::from(self.policy.admit_per_second.get()) + 1
    }

    fn learned(&self, ticket: &Ticket, state: TicketState, now: DateTime<Utc>) {
        match state {
            TicketState::Active { until } => self.line_mut().note_active(ticket, until),
            TicketState::Waiting { .. } => self.polled(ticket.seq, now, false),
        }
    }

    fn polled_within_idle(&self, seq: Seq, now: DateTime<Utc>) -> bool {
        let idle = chrono::Duration::from_std(self.policy.waiting_idle_timeout).unwrap_or_default();
        self.keep_alive()
            .last_poll
            .get(&seq)
            .is_some_and(|at| now.signed_duration_since(*at) < idle)
    }

    /// Notes a poll of `seq`; `unreported` when the store has not recorded it yet.
    fn polled(&self, seq: Seq, now: DateTime<Utc>, unreported: bool) {
        let mut keep_alive = self.keep_alive();
        keep_alive.last_poll.insert(seq, now);
        if unreported {
            keep_alive.unreported.insert(seq);
        }
    }

    fn view(&self, token: QueueToken, state: TicketState, now: DateTime<Utc>) -> QueueView {
        match state {
            TicketState::Active { until } => QueueView {
                token,
                status: QueueStatus::Active,
                position: 0,
                estimated_wait_seconds: 0,
                active_until: Some(until),
                poll_after_seconds: None,
            },
            TicketState::Waiting { position } => {
                let position = position.max(1);
                let wait = self.line().estimated_wait(position, &self.policy, now);
                QueueView {
                    token,
                    status: QueueStatus::Waiting,
                    position,
                    estimated_wait_seconds: wait,
                    active_until: None,
                    poll_after_seconds: Some(self.policy.poll_after(wait)),
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
