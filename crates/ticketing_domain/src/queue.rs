//! The waiting room: who may use the protected endpoints, admitted first come, first served, at
//! a controlled rate.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Clock;
use crate::ids::UserId;
use crate::InfrastructureError;

/// The opaque credential handed to a client entering the queue.
///
/// Only its shape is checked here (1..=128 characters of `[A-Za-z0-9_-]`), so that garbage never
/// reaches the store; whether it is live is the queue's business.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueToken(String);

/// A `Queue-Token` value that cannot be a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a queue token is 1 to 128 characters of letters, digits, '-' and '_'")]
pub struct MalformedToken;

impl QueueToken {
    /// The longest token accepted.
    pub const MAX_LEN: usize = 128;

    /// Checks the shape of `value`.
    ///
    /// # Errors
    /// [`MalformedToken`] when it is empty, too long or has other characters.
    pub fn parse(value: &str) -> Result<Self, MalformedToken> {
        let well_formed = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if well_formed {
            Ok(Self(value.to_string()))
        } else {
            Err(MalformedToken)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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

/// What the store knows of a live token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    /// Admitted until `until`; bound to `user` when one was given on entry.
    Active {
        user: Option<UserId>,
        until: DateTime<Utc>,
    },
    /// In line at `position` (1-based among waiting tokens).
    Waiting { user: Option<UserId>, position: u64 },
}

/// A token and its state, as the store answers an entry or a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub token: QueueToken,
    pub state: TokenState,
}

/// A queue entry as the client is told: status, place and expected wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueView {
    pub token: QueueToken,
    pub status: QueueStatus,
    /// 1-based among WAITING tokens; 0 when ACTIVE.
    pub position: u64,
    pub estimated_wait_seconds: u64,
    pub active_until: Option<DateTime<Utc>>,
}

/// Who is asking to enter: the key their entries are counted under for the per-client limit
/// (their network address).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey(String);

impl ClientKey {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The admission rules, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Most ACTIVE tokens at once.
    pub max_active: NonZeroU32,
    /// Most admissions per second, all instances together.
    pub admit_per_second: NonZeroU32,
    /// Life of an ACTIVE token.
    pub active_ttl: Duration,
    /// A WAITING token not polled for this long is dropped.
    pub waiting_idle_timeout: Duration,
    /// Entries per second per client; `None` turns the limit off.
    pub entry_rate_per_client: Option<NonZeroU32>,
}

impl QueuePolicy {
    /// Whole seconds until a token at `position` is likely admitted: position / rate, rounded up.
    pub fn estimated_wait_seconds(&self, position: u64) -> u64 {
        position.div_ceil(u64::from(self.admit_per_second.get()))
    }
}

/// What one admission step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdmissionReport {
    /// Tokens moved from WAITING to ACTIVE.
    pub admitted: u32,
    /// Expired ACTIVE tokens removed.
    pub expired: u32,
    /// WAITING tokens dropped for not polling.
    pub dropped_idle: u32,
    /// Tokens still waiting after the step.
    pub waiting: u64,
    /// ACTIVE tokens after the step.
    pub active: u64,
}

/// Why a queue operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue token is unknown or expired")]
    TokenInvalid,
    #[error("too many queue entries from this client; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// Why a token does not open a protected endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("the queue token is unknown, malformed, expired or already used")]
    TokenInvalid,
    #[error("the queue token is still waiting")]
    TokenNotActive,
    #[error("the queue token was issued for another user")]
    TokenUserMismatch,
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// Proof that a request carries an ACTIVE token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveToken {
    pub token: QueueToken,
    pub user: Option<UserId>,
}

impl ActiveToken {
    /// Checks that this token may act for `user`: a token bound to a user acts only for them;
    /// an unbound token acts for anyone.
    ///
    /// # Errors
    /// [`AccessError::TokenUserMismatch`] when the token is bound to another user.
    pub fn act_for(&self, user: UserId) -> Result<(), AccessError> {
        match self.user {
            Some(bound) if bound != user => Err(AccessError::TokenUserMismatch),
            _ => Ok(()),
        }
    }
}

/// The store of the waiting room. Every operation is atomic in the store, so any number of app
/// instances share one queue and together respect the policy given at construction.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait WaitingQueue: Send + Sync {
    /// Enters `user` (or an anonymous client) into the queue. The new token is ACTIVE at once
    /// when nobody waits, the active set has room and this second's admission budget is not
    /// spent; otherwise it waits at the back. A `user` with a live token gets that token back,
    /// in its place.
    ///
    /// # Errors
    /// [`QueueError::RateLimited`] when `client` entered more often than the per-client limit
    /// this second; [`QueueError::Infrastructure`] when the store cannot answer.
    async fn enter(
        &self,
        user: Option<UserId>,
        client: &ClientKey,
    ) -> Result<QueueEntry, QueueError>;

    /// The state of `token`, or `None` when it is unknown, expired or was dropped for idling.
    /// With `keep_alive`, a WAITING token counts as polled now.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    async fn inspect(
        &self,
        token: &QueueToken,
        keep_alive: bool,
    ) -> Result<Option<TokenState>, QueueError>;

    /// Removes `token`, waiting or active; returns whether it was live.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    async fn remove(&self, token: &QueueToken) -> Result<bool, QueueError>;

    /// One admission step: drops expired ACTIVE and idle WAITING tokens, then admits from the
    /// head of the line within the room left and this second's budget.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    async fn admit(&self) -> Result<AdmissionReport, QueueError>;
}

/// ACTIVE tokens this instance has seen, kept for "fail static": while the queue's store is
/// unreachable, a token known to be ACTIVE until a time still in the future keeps working, so
/// admitted buyers can go on browsing, holding and paying (all of which live in the database).
/// Nobody new gets in: entering fails closed.
#[derive(Default)]
struct RecentlyActive {
    tokens: Mutex<HashMap<QueueToken, SeenActive>>,
}

/// The user a token is bound to, and the end of its session.
type SeenActive = (Option<UserId>, DateTime<Utc>);

impl RecentlyActive {
    fn remember(
        &self,
        token: &QueueToken,
        user: Option<UserId>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        capacity: usize,
    ) {
        let Ok(mut tokens) = self.tokens.lock() else {
            return;
        };
        if tokens.len() >= capacity {
            tokens.retain(|_, (_, until)| *until > now);
            if tokens.len() >= capacity {
                return;
            }
        }
        tokens.insert(token.clone(), (user, until));
    }

    fn recall(&self, token: &QueueToken, now: DateTime<Utc>) -> Option<Option<UserId>> {
        let tokens = self.tokens.lock().ok()?;
        tokens
            .get(token)
            .filter(|(_, until)| *until > now)
            .map(|(user, _)| *user)
    }

    fn forget(&self, token: &QueueToken) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(token);
        }
    }
}

/// The waiting-room use cases.
#[derive(Clone)]
pub struct QueueService {
    queue: Arc<dyn WaitingQueue>,
    policy: QueuePolicy,
    clock: Arc<dyn Clock>,
    recently_active: Arc<RecentlyActive>,
}

impl std::fmt::Debug for QueueService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl QueueService {
    pub fn new(queue: Arc<dyn WaitingQueue>, policy: QueuePolicy, clock: Arc<dyn Clock>) -> Self {
        Self {
            queue,
            policy,
            clock,
            recently_active: Arc::default(),
        }
    }

    /// How many ACTIVE tokens are remembered for fail-static at most.
    fn remembered_capacity(&self) -> usize {
        usize::try_from(self.policy.max_active.get())
            .unwrap_or(usize::MAX)
            .saturating_mul(2)
            .clamp(1024, 1_000_000)
    }

    pub fn policy(&self) -> &QueuePolicy {
        &self.policy
    }

    fn view(&self, token: QueueToken, state: TokenState) -> QueueView {
        // A token seen ACTIVE here, by entering or polling, is remembered for fail static.
        if let TokenState::Active { user, until } = &state {
            self.recently_active.remember(
                &token,
                *user,
                *until,
                self.clock.now(),
                self.remembered_capacity(),
            );
        }
        match state {
            TokenState::Active { until, .. } => QueueView {
                token,
                status: QueueStatus::Active,
                position: 0,
                estimated_wait_seconds: 0,
                active_until: Some(until),
            },
            TokenState::Waiting { position, .. } => QueueView {
                token,
                status: QueueStatus::Waiting,
                position,
                estimated_wait_seconds: self.policy.estimated_wait_seconds(position),
                active_until: None,
            },
        }
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
        let entry = self.queue.enter(user, client).await?;
        Ok(self.view(entry.token, entry.state))
    }

    /// Where `token` stands; polling keeps a WAITING token in line.
    ///
    /// # Errors
    /// [`QueueError::TokenInvalid`] when the token is unknown, expired or was dropped.
    pub async fn poll(&self, token: QueueToken) -> Result<QueueView, QueueError> {
        match self.queue.inspect(&token, true).await? {
            Some(state) => Ok(self.view(token, state)),
            None => Err(QueueError::TokenInvalid),
        }
    }

    /// Leaves the line or gives up the active slot.
    ///
    /// # Errors
    /// [`QueueError::TokenInvalid`] when the token was not live.
    pub async fn leave(&self, token: &QueueToken) -> Result<(), QueueError> {
        self.recently_active.forget(token);
        if self.queue.remove(token).await? {
            Ok(())
        } else {
            Err(QueueError::TokenInvalid)
        }
    }

    /// Ends an ACTIVE token's session (after its payment): it answers as invalid afterwards.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    pub async fn expire(&self, token: &QueueToken) -> Result<(), QueueError> {
        self.recently_active.forget(token);
        self.queue.remove(token).await.map(drop)
    }

    /// Lets a request through only with an ACTIVE token. While the store is unreachable, a
    /// token this instance saw ACTIVE, whose session has not ended by its clock, still passes
    /// ("fail static").
    ///
    /// # Errors
    /// [`AccessError::TokenInvalid`] for an unknown or expired token,
    /// [`AccessError::TokenNotActive`] for a WAITING one, [`AccessError::Infrastructure`] when
    /// the store cannot answer and the token is not known to be ACTIVE.
    pub async fn authorize(&self, token: QueueToken) -> Result<ActiveToken, AccessError> {
        match self.queue.inspect(&token, false).await {
            Ok(Some(TokenState::Active { user, until })) => {
                self.recently_active.remember(
                    &token,
                    user,
                    until,
                    self.clock.now(),
                    self.remembered_capacity(),
                );
                Ok(ActiveToken { token, user })
            }
            Err(QueueError::Infrastructure(cause)) => {
                match self.recently_active.recall(&token, self.clock.now()) {
                    Some(user) => Ok(ActiveToken { token, user }),
                    None => Err(AccessError::Infrastructure(cause)),
                }
            }
            Ok(Some(TokenState::Waiting { .. })) => Err(AccessError::TokenNotActive),
            Ok(None) => {
                self.recently_active.forget(&token);
                Err(AccessError::TokenInvalid)
            }
            Err(QueueError::TokenInvalid | QueueError::RateLimited { .. }) => {
                Err(AccessError::TokenInvalid)
            }
        }
    }

    /// One admission step; see [`WaitingQueue::admit`].
    ///
    /// # Errors
    /// See [`WaitingQueue::admit`].
    pub async fn admit(&self) -> Result<AdmissionReport, QueueError> {
        self.queue.admit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rate: u32) -> QueuePolicy {
        QueuePolicy {
            max_active: NonZeroU32::new(10).expect("non-zero"),
            admit_per_second: NonZeroU32::new(rate).expect("non-zero"),
            active_ttl: Duration::from_secs(600),
            waiting_idle_timeout: Duration::from_secs(60),
            entry_rate_per_client: None,
        }
    }

    fn token(value: &str) -> QueueToken {
        QueueToken::parse(value).expect("well-formed")
    }

    fn user(id: i64) -> UserId {
        UserId::new(id).expect("valid")
    }

    fn fixed_clock(now: DateTime<Utc>) -> Arc<dyn Clock> {
        let mut clock = crate::clock::MockClock::new();
        clock.expect_now().return_const(now);
        Arc::new(clock)
    }

    fn service(queue: MockWaitingQueue) -> QueueService {
        let now = DateTime::<Utc>::from_timestamp(1_900_000_000, 0).expect("valid");
        QueueService::new(Arc::new(queue), policy(100), fixed_clock(now))
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_900_000_000 + seconds, 0).expect("valid")
    }

    /// A store that answers ACTIVE (until `until`) once, then is unreachable.
    fn store_that_goes_down(until: DateTime<Utc>) -> MockWaitingQueue {
        let mut queue = MockWaitingQueue::new();
        let mut seq = mockall::Sequence::new();
        queue
            .expect_inspect()
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _| {
                Ok(Some(TokenState::Active {
                    user: Some(user(7)),
                    until,
                }))
            });
        queue
            .expect_inspect()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _| Err(InfrastructureError::Unavailable("redis down".into()).into()));
        queue
    }

    #[tokio::test]
    async fn while_the_store_is_down_a_token_seen_active_keeps_working() {
        let service = service(store_that_goes_down(at(600)));
        service.authorize(token("t")).await.expect("active");

        let during_outage = service.authorize(token("t")).await;

        assert_eq!(
            during_outage.map(|a| a.user),
            Ok(Some(user(7))),
            "fail static: the admitted buyer goes on"
        );
    }

    #[tokio::test]
    async fn a_token_seen_admitted_by_polling_keeps_working_during_an_outage() {
        let service = service(store_that_goes_down(at(600)));
        let polled = service.poll(token("t")).await.expect("polled");
        assert_eq!(polled.status, QueueStatus::Active);

        let during_outage = service.authorize(token("t")).await;

        assert!(during_outage.is_ok());
    }

    #[tokio::test]
    async fn during_an_outage_a_token_never_seen_is_unavailable_not_invalid() {
        let mut queue = MockWaitingQueue::new();
        queue
            .expect_inspect()
            .returning(|_, _| Err(InfrastructureError::Unavailable("redis down".into()).into()));

        let result = service(queue).authorize(token("stranger")).await;

        assert!(matches!(result, Err(AccessError::Infrastructure(_))));
    }

    #[tokio::test]
    async fn a_remembered_token_past_its_session_is_not_let_through() {
        let service = service(store_that_goes_down(at(-1)));
        service.authorize(token("t")).await.expect("active");

        let result = service.authorize(token("t")).await;

        assert!(matches!(result, Err(AccessError::Infrastructure(_))));
    }

    #[tokio::test]
    async fn a_token_whose_session_ended_here_is_forgotten() {
        let mut queue = store_that_goes_down(at(600));
        queue.expect_remove().returning(|_| Ok(true));
        let service = service(queue);
        service.authorize(token("t")).await.expect("active");

        service.expire(&token("t")).await.expect("expired");
        let result = service.authorize(token("t")).await;

        assert!(matches!(result, Err(AccessError::Infrastructure(_))));
    }

    #[test]
    fn tokens_of_the_wrong_shape_are_malformed() {
        assert!(QueueToken::parse("").is_err());
        assert!(QueueToken::parse(&"a".repeat(129)).is_err());
        assert!(QueueToken::parse("has space").is_err());
        assert!(QueueToken::parse("../../etc").is_err());
        assert!(QueueToken::parse(&"a".repeat(128)).is_ok());
        assert!(QueueToken::parse("Ab-9_x").is_ok());
    }

    #[test]
    fn the_wait_is_the_position_over_the_rate_rounded_up() {
        assert_eq!(policy(100).estimated_wait_seconds(0), 0);
        assert_eq!(policy(100).estimated_wait_seconds(1), 1);
        assert_eq!(policy(100).estimated_wait_seconds(100), 1);
        assert_eq!(policy(100).estimated_wait_seconds(101), 2);
        assert_eq!(policy(3).estimated_wait_seconds(7), 3);
    }

    #[tokio::test]
    async fn a_waiting_entry_is_told_its_place_and_wait() {
        let mut queue = MockWaitingQueue::new();
        queue.expect_enter().returning(|user, _| {
            Ok(QueueEntry {
                token: token("t1"),
                state: TokenState::Waiting {
                    user,
                    position: 250,
                },
            })
        });

        let view = service(queue)
            .enter_queue(Some(user(7)), &ClientKey::new("10.0.0.1"))
            .await
            .expect("entered");

        assert_eq!(view.status, QueueStatus::Waiting);
        assert_eq!(view.position, 250);
        assert_eq!(view.estimated_wait_seconds, 3);
        assert_eq!(view.active_until, None);
    }

    #[tokio::test]
    async fn an_active_entry_has_no_place_and_no_wait() {
        let until = DateTime::<Utc>::from_timestamp(2_000_000_000, 0).expect("valid");
        let mut queue = MockWaitingQueue::new();
        queue.expect_enter().returning(move |user, _| {
            Ok(QueueEntry {
                token: token("t1"),
                state: TokenState::Active { user, until },
            })
        });

        let view = service(queue)
            .enter_queue(None, &ClientKey::new("10.0.0.1"))
            .await
            .expect("entered");

        assert_eq!(view.status, QueueStatus::Active);
        assert_eq!(view.position, 0);
        assert_eq!(view.estimated_wait_seconds, 0);
        assert_eq!(view.active_until, Some(until));
    }

    #[tokio::test]
    async fn polling_an_unknown_token_is_invalid() {
        let mut queue = MockWaitingQueue::new();
        queue
            .expect_inspect()
            .withf(|_, keep_alive| *keep_alive)
            .returning(|_, _| Ok(None));

        let result = service(queue).poll(token("gone")).await;

        assert_eq!(result, Err(QueueError::TokenInvalid));
    }

    #[tokio::test]
    async fn a_waiting_token_does_not_open_protected_endpoints() {
        let mut queue = MockWaitingQueue::new();
        queue
            .expect_inspect()
            .withf(|_, keep_alive| !*keep_alive)
            .returning(|_, _| {
                Ok(Some(TokenState::Waiting {
                    user: None,
                    position: 3,
                }))
            });

        let result = service(queue).authorize(token("t")).await;

        assert_eq!(result, Err(AccessError::TokenNotActive));
    }

    #[tokio::test]
    async fn an_unknown_token_does_not_open_protected_endpoints() {
        let mut queue = MockWaitingQueue::new();
        queue.expect_inspect().returning(|_, _| Ok(None));

        let result = service(queue).authorize(token("t")).await;

        assert_eq!(result, Err(AccessError::TokenInvalid));
    }

    #[tokio::test]
    async fn an_active_token_opens_them_and_carries_its_user() {
        let until = DateTime::<Utc>::from_timestamp(2_000_000_000, 0).expect("valid");
        let mut queue = MockWaitingQueue::new();
        queue.expect_inspect().returning(move |_, _| {
            Ok(Some(TokenState::Active {
                user: Some(user(7)),
                until,
            }))
        });

        let active = service(queue).authorize(token("t")).await.expect("active");

        assert_eq!(active.user, Some(user(7)));
        assert_eq!(active.act_for(user(7)), Ok(()));
        assert_eq!(active.act_for(user(8)), Err(AccessError::TokenUserMismatch));
    }

    #[test]
    fn an_unbound_token_acts_for_anyone() {
        let active = ActiveToken {
            token: token("t"),
            user: None,
        };
        assert_eq!(active.act_for(user(1)), Ok(()));
    }

    #[tokio::test]
    async fn leaving_with_a_dead_token_is_invalid() {
        let mut queue = MockWaitingQueue::new();
        queue.expect_remove().returning(|_| Ok(false));

        assert_eq!(
            service(queue).leave(&token("t")).await,
            Err(QueueError::TokenInvalid)
        );
    }

    #[tokio::test]
    async fn a_store_outage_is_not_mistaken_for_a_bad_token() {
        let mut queue = MockWaitingQueue::new();
        queue
            .expect_inspect()
            .returning(|_, _| Err(InfrastructureError::Unavailable("redis down".into()).into()));

        let result = service(queue).authorize(token("t")).await;

        assert!(matches!(result, Err(AccessError::Infrastructure(_))));
    }
}
