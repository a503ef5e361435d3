//! Who may touch a reservation: with `security.require_bound_tokens`, only a queue token bound to
//! the reservation's user (to the body's `userId` for a hold); without it, also an unbound token.
//! Endpoints outside the queue (refunds, a user's list) then ask for such a token too.
//!
//! The rule for who checks a token, the same in every use case:
//! - only [`QueueService::authorize`] tells that a token is ACTIVE, and the [`ActiveToken`] it
//!   returns is the only proof of it;
//! - the use case itself asks [`TokenBinding`] whether that proof may act for the user it acts
//!   for (holds, a hold's release and a payment all call [`TokenBinding::check`]);
//!   [`OwnerCheck::vouch`] applies the same rule to endpoints outside the queue.
//!
//! Where the proof comes from differs for one reason. A hold takes the `ActiveToken` that the
//! caller got from `authorize` (the HTTP layer's middleware, once per request). A payment takes
//! the raw [`QueueToken`] and authorizes it itself, because a retry under an `Idempotency-Key`
//! must still learn the recorded outcome after that payment ended the token's session.

use std::sync::Arc;

use crate::ids::UserId;
use crate::queue::{AccessError, ActiveToken, QueueError, QueueService, QueueToken, TokenKeys};

/// Whether tokens must be bound to the user they act for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenBinding {
    required: bool,
    identified: bool,
}

impl TokenBinding {
    /// `required`: only a token bound to the user acts for them.
    pub fn new(required: bool) -> Self {
        Self {
            required,
            identified: false,
        }
    }

    /// With identity on: every token is bound to its caller (the HTTP layer refuses a token
    /// bound to anyone else before a use case runs), so binding is required; a reservation of
    /// another user is answered as unknown rather than as someone else's; and the endpoints
    /// outside the queue need no token, the caller having proven who they are
    /// ([`crate::identity::act_for`]).
    pub fn for_identified_callers() -> Self {
        Self {
            required: true,
            identified: true,
        }
    }

    /// Whether callers are identified ([`TokenBinding::for_identified_callers`]).
    pub fn is_identified(self) -> bool {
        self.identified
    }

    /// Whether only a token bound to a user may act for them.
    pub fn is_required(self) -> bool {
        self.required
    }

    /// Whether an ACTIVE token may act for `user`: a token bound to another user never; an
    /// unbound token only when binding is not required.
    ///
    /// # Errors
    /// [`AccessError::TokenUserMismatch`] otherwise.
    pub fn check(self, token: &ActiveToken, user: UserId) -> Result<(), AccessError> {
        self.allows(token.user(), user)
    }

    /// The rule, for a token bound to `bound` (or to nobody).
    fn allows(self, bound: Option<UserId>, user: UserId) -> Result<(), AccessError> {
        match bound {
            Some(bound) if bound == user => Ok(()),
            None if !self.required => Ok(()),
            _ => Err(AccessError::TokenUserMismatch),
        }
    }
}

/// Why a request outside the queue may not act for a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerError {
    /// Binding is required and the request carries no queue token.
    #[error("a Queue-Token bound to the user is needed")]
    TokenMissing,
    /// The token is invalid or may not act for the user, or the line cannot tell (see
    /// [`AccessError`]).
    #[error(transparent)]
    Access(#[from] AccessError),
}

/// Vouches, on endpoints that are not queue-protected, that a request acts for a user: when
/// binding is required, with a live queue token (WAITING or ACTIVE: such endpoints do not wait
/// for a turn) bound to that user; otherwise without any token.
#[derive(Clone)]
pub struct OwnerCheck {
    binding: TokenBinding,
    queue: QueueService,
    keys: Arc<TokenKeys>,
}

impl std::fmt::Debug for OwnerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerCheck")
            .field("binding", &self.binding)
            .finish_non_exhaustive()
    }
}

impl OwnerCheck {
    /// `keys` are the queue's: they tell which user a token is bound to.
    pub fn new(binding: TokenBinding, queue: QueueService, keys: TokenKeys) -> Self {
        Self {
            binding,
            queue,
            keys: Arc::new(keys),
        }
    }

    /// The rule for ACTIVE tokens.
    pub fn binding(&self) -> TokenBinding {
        self.binding
    }

    /// Whether a request acting for `user` carrying `token` (if any) may go on.
    ///
    /// # Errors
    /// When binding is required: [`OwnerError::TokenMissing`] without a token;
    /// [`AccessError::TokenInvalid`] for a forged, expired or ended one;
    /// [`AccessError::TokenUserMismatch`] for one bound to another user or to nobody;
    /// [`AccessError::Infrastructure`] when the line cannot tell.
    pub async fn vouch(&self, token: Option<QueueToken>, user: UserId) -> Result<(), OwnerError> {
        // An identified caller proved who they are, and `identity::act_for` let them act for
        // `user`: a queue token would prove nothing more.
        if !self.binding.is_required() || self.binding.is_identified() {
            return Ok(());
        }
        let token = token.ok_or(OwnerError::TokenMissing)?;
        let ticket = self
            .keys
            .open(&token)
            .map_err(|_| AccessError::TokenInvalid)?;
        self.queue.poll(token).await.map_err(|error| match error {
            QueueError::Infrastructure(cause) => AccessError::Infrastructure(cause),
            QueueError::TokenInvalid | QueueError::RateLimited { .. } | QueueError::RoomUnknown => {
                AccessError::TokenInvalid
            }
        })?;
        Ok(self.binding.allows(ticket.user, user)?)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::queue::{MockWaitingQueue, QueuePolicy, SigningKey, Ticket, TicketState};

    fn user(id: i64) -> UserId {
        UserId::new(id).expect("valid")
    }

    fn keys() -> TokenKeys {
        TokenKeys::new(SigningKey::new(vec![9; 32]).expect("long enough"), None)
    }

    fn token_of(bound: Option<i64>) -> QueueToken {
        keys().seal(&Ticket {
            epoch: 1,
            seq: 1,
            user: bound.map(user),
        })
    }

    /// An owner check over a line that answers every token with `state` (`None`: dead).
    pub(crate) fn owner_check(required: bool, state: Option<TicketState>) -> OwnerCheck {
        let mut line = MockWaitingQueue::new();
        line.expect_lookup().returning(move |_, _| Ok(state));
        line.expect_revoke().returning(|_| Ok(true));
        let mut clock = crate::clock::MockClock::new();
        clock
            .expect_now()
            .return_const(DateTime::<Utc>::from_timestamp(1_900_000_000, 0).expect("valid"));
        let policy = QueuePolicy {
            max_active: NonZeroU32::new(10).expect("non-zero"),
            admit_per_second: NonZeroU32::new(10).expect("non-zero"),
            active_ttl: Duration::from_secs(600),
            waiting_idle_timeout: Duration::from_secs(60),
            entry_rate_per_client: None,
        };
        OwnerCheck::new(
            TokenBinding::new(required),
            QueueService::new(
                Arc::new(line),
                keys(),
                policy,
                Arc::new(clock),
                Arc::new(crate::queue::FixedSeed(crate::queue::DrawSeed::from_bytes(
                    [1; 32],
                ))),
            ),
            keys(),
        )
    }

    /// An owner check for identified callers ([`TokenBinding::for_identified_callers`]).
    pub(crate) fn identified_owner_check() -> OwnerCheck {
        let mut check = owner_check(true, None);
        check.binding = TokenBinding::for_identified_callers();
        check
    }

    fn waiting() -> Option<TicketState> {
        Some(TicketState::Waiting { position: 3 })
    }

    #[test]
    fn a_token_bound_to_another_user_never_acts_for_this_one() {
        let other = ActiveToken::for_tests(Some(user(8)));
        for required in [false, true] {
            assert_eq!(
                TokenBinding::new(required).check(&other, user(7)),
                Err(AccessError::TokenUserMismatch)
            );
        }
    }

    #[test]
    fn an_unbound_token_acts_for_anyone_only_while_binding_is_not_required() {
        let unbound = ActiveToken::for_tests(None);

        assert_eq!(TokenBinding::new(false).check(&unbound, user(7)), Ok(()));
        assert_eq!(
            TokenBinding::new(true).check(&unbound, user(7)),
            Err(AccessError::TokenUserMismatch)
        );
        assert_eq!(
            TokenBinding::new(true).check(&ActiveToken::for_tests(Some(user(7))), user(7)),
            Ok(())
        );
    }

    #[tokio::test]
    async fn identified_callers_need_no_token_outside_the_queue() {
        let check = identified_owner_check();

        assert_eq!(check.vouch(None, user(7)).await, Ok(()));
        assert_eq!(
            check
                .binding()
                .check(&ActiveToken::for_tests(None), user(7)),
            Err(AccessError::TokenUserMismatch)
        );
    }

    #[tokio::test]
    async fn without_required_binding_no_token_is_asked_for() {
        let check = owner_check(false, None);

        assert_eq!(check.vouch(None, user(7)).await, Ok(()));
        assert_eq!(check.vouch(Some(token_of(Some(8))), user(7)).await, Ok(()));
    }

    #[tokio::test]
    async fn with_required_binding_a_live_token_of_the_user_is_needed() {
        let check = owner_check(true, waiting());

        assert_eq!(
            check.vouch(None, user(7)).await,
            Err(OwnerError::TokenMissing)
        );
        assert_eq!(check.vouch(Some(token_of(Some(7))), user(7)).await, Ok(()));
        assert_eq!(
            check.vouch(Some(token_of(Some(8))), user(7)).await,
            Err(OwnerError::Access(AccessError::TokenUserMismatch))
        );
        assert_eq!(
            check.vouch(Some(token_of(None)), user(7)).await,
            Err(OwnerError::Access(AccessError::TokenUserMismatch))
        );
    }

    #[tokio::test]
    async fn a_dead_or_forged_token_is_invalid() {
        let dead = owner_check(true, None);
        let forged = QueueToken::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .expect("well-formed");

        assert_eq!(
            dead.vouch(Some(token_of(Some(7))), user(7)).await,
            Err(OwnerError::Access(AccessError::TokenInvalid))
        );
        assert_eq!(
            owner_check(true, waiting())
                .vouch(Some(forged), user(7))
                .await,
            Err(OwnerError::Access(AccessError::TokenInvalid))
        );
    }
}
