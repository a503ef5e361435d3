//! Payment: the hold is checked, the balance debited, the reservation confirmed and the seat
//! sold, all at once or not at all; then the buyer's queue session ends.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::access::TokenBinding;
use crate::idempotency::{IdempotencyConflict, IdempotencyKey, IdempotentRequest};
use crate::ids::{PaymentId, ReservationId, UserId};
use crate::money::Won;
use crate::queue::{AccessError, QueueService, QueueToken};
use crate::InfrastructureError;

/// The most reservations one payment may pay.
pub const MAX_RESERVATIONS_PER_PAYMENT: usize = 20;

/// Why a list of reservations cannot be paid at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidReservationSelection {
    /// The list names no reservation.
    #[error("reservationIds must name at least one reservation")]
    Empty,
    #[error(
        "reservationIds may name at most {MAX_RESERVATIONS_PER_PAYMENT} reservations, got {0}"
    )]
    /// The list names more than [`MAX_RESERVATIONS_PER_PAYMENT`] reservations (this many).
    TooMany(usize),
    /// The list names this reservation more than once.
    #[error("reservationIds names reservation {0} more than once")]
    Duplicate(ReservationId),
}

/// The reservations one payment pays: 1 to [`MAX_RESERVATIONS_PER_PAYMENT`] distinct ones, in
/// the order asked (the first is the payment's `reservationId`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationSelection {
    first: ReservationId,
    ids: Vec<ReservationId>,
}

impl ReservationSelection {
    /// Validates a list of reservations to pay at once.
    ///
    /// # Errors
    /// [`InvalidReservationSelection`] for an empty list, too many, or one named twice.
    pub fn new(reservations: Vec<ReservationId>) -> Result<Self, InvalidReservationSelection> {
        let Some(first) = reservations.first().copied() else {
            return Err(InvalidReservationSelection::Empty);
        };
        if reservations.len() > MAX_RESERVATIONS_PER_PAYMENT {
            return Err(InvalidReservationSelection::TooMany(reservations.len()));
        }
        let mut seen = HashSet::with_capacity(reservations.len());
        if let Some(twice) = reservations.iter().find(|id| !seen.insert(**id)) {
            return Err(InvalidReservationSelection::Duplicate(*twice));
        }
        Ok(Self {
            first,
            ids: reservations,
        })
    }

    /// One reservation.
    pub fn one(reservation: ReservationId) -> Self {
        Self {
            first: reservation,
            ids: vec![reservation],
        }
    }

    /// The reservations, in the order asked.
    pub fn ids(&self) -> &[ReservationId] {
        &self.ids
    }

    /// The first reservation asked.
    pub fn first_id(&self) -> ReservationId {
        self.first
    }
}

/// Which form of payment a client sent: `reservationId` or `reservationIds`. The answers differ,
/// so the same key with the other form is another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Not `#[non_exhaustive]`: the caller chooses the form and shapes its answer by it.
pub enum PaymentForm {
    /// One reservation, as `reservationId`.
    One,
    /// A list of reservations, as `reservationIds`.
    Several,
}

/// A request to pay for held reservations of one user, with one debit of their sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    /// The reservations to pay.
    pub reservations: ReservationSelection,
    /// The user paying; only their own reservations are paid.
    pub user: UserId,
    /// Which form the client sent (part of the request's fingerprint).
    pub form: PaymentForm,
}

impl PaymentRequest {
    /// A payment of one reservation (`reservationId`).
    pub fn one(reservation: ReservationId, user: UserId) -> Self {
        Self {
            reservations: ReservationSelection::one(reservation),
            user,
            form: PaymentForm::One,
        }
    }

    /// What identifies this request under an `Idempotency-Key` (the one-reservation form keeps
    /// the fingerprint of v1, so keys recorded before still replay).
    pub fn fingerprint(&self) -> String {
        match self.form {
            PaymentForm::One => format!(
                "payment;reservation={};user={}",
                self.reservations.first_id(),
                self.user
            ),
            PaymentForm::Several => {
                let ids: Vec<String> = self
                    .reservations
                    .ids()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                format!("payment;reservations={};user={}", ids.join(","), self.user)
            }
        }
    }

    /// All or nothing: given the asked reservations found under lock, decides what to debit.
    /// Every one must exist and be the user's (a foreign one is not found, as an unknown one
    /// is), then every one must be payable (HELD, its hold live); the debit is the sum of the
    /// prices.
    ///
    /// # Errors
    /// [`PaymentRefusal::ReservationNotFound`] or [`PaymentRefusal::NotPayable`] with the first
    /// such reservation in the order asked.
    pub fn judge(&self, found: &[HoldToPay]) -> Result<Won, PaymentRefusal> {
        let by_id: HashMap<ReservationId, &HoldToPay> =
            found.iter().map(|hold| (hold.reservation, hold)).collect();
        let mut holds = Vec::with_capacity(self.reservations.ids().len());
        for id in self.reservations.ids() {
            match by_id.get(id) {
                Some(hold) if hold.user == self.user => holds.push(*hold),
                _ => return Err(PaymentRefusal::ReservationNotFound(*id)),
            }
        }
        if let Some(unpayable) = holds.iter().find(|hold| !hold.payable) {
            return Err(PaymentRefusal::NotPayable(unpayable.reservation));
        }
        Ok(holds
            .iter()
            .fold(Won::ZERO, |sum, hold| sum.saturating_add(hold.price)))
    }
}

/// A reservation to pay, as found under lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldToPay {
    /// The reservation.
    pub reservation: ReservationId,
    /// The user it belongs to.
    pub user: UserId,
    /// Its price, part of the sum the payment debits.
    pub price: Won,
    /// HELD and its hold live, by the store's clock.
    pub payable: bool,
}

/// A recorded payment: one debit for one or several reservations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The payment's identifier.
    pub id: PaymentId,
    /// The first reservation paid.
    pub reservation: ReservationId,
    /// Every reservation paid, in the order asked.
    pub reservations: Vec<ReservationId>,
    /// The user who paid.
    pub user: UserId,
    /// The sum of their prices.
    pub amount: Won,
    /// When the payment was recorded.
    pub paid_at: DateTime<Utc>,
}

/// A final "no": recorded under the request's key and answered again on every retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
// Not `#[non_exhaustive]`: every ledger adapter records each refusal under its Idempotency-Key
// and must fail to compile, not fall through a wildcard, when a new one appears.
pub enum PaymentRefusal {
    /// No reservation of this user has this id (another user's reservation counts as unknown).
    #[error("reservation {0} of this user does not exist")]
    ReservationNotFound(ReservationId),
    /// The reservation is not HELD with a live hold: its hold expired or was cancelled, or it is
    /// already paid.
    #[error("reservation {0} cannot be paid: its hold expired, was cancelled or is already paid")]
    NotPayable(ReservationId),
    /// The user's balance is less than the sum to debit.
    #[error("the balance does not cover the price of {price}")]
    InsufficientBalance {
        /// The sum the payment would have debited.
        price: Won,
    },
}

/// The outcome of a payment attempt: what is recorded and replayed.
pub type PaymentOutcome = Result<Payment, PaymentRefusal>;

/// What the ledger answers a payment: the outcome, and whether it is one recorded earlier under
/// the same `Idempotency-Key` (a replay: nothing was paid this time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerAnswer {
    /// The payment, or the refusal.
    pub outcome: PaymentOutcome,
    /// Whether the outcome was recorded earlier under the same key (nothing was paid this time).
    pub replayed: bool,
}

/// A payment as its client learns it: paid now, or the replay of one paid earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The payment.
    pub payment: Payment,
    /// Whether it was paid earlier under the same key and is only answered again.
    pub replayed: bool,
}

/// Why a payment could not be attempted or recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
// Not `#[non_exhaustive]`: port vocabulary, which every adapter and its tests handle in full;
// a new variant changes the port and must break them.
pub enum LedgerError {
    /// The idempotency key was used for another request, or its first request is still running.
    #[error(transparent)]
    Conflict(#[from] IdempotencyConflict),
    /// The store cannot answer.
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// Why a payment did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// The queue token does not open payment for the user, or the line cannot tell (see
    /// [`AccessError`]).
    #[error(transparent)]
    Access(#[from] AccessError),
    /// A final refusal, answered again on every retry under the same key.
    #[error(transparent)]
    Refused(#[from] PaymentRefusal),
    /// The idempotency key was used for another request, or its first request is still running.
    #[error(transparent)]
    Conflict(#[from] IdempotencyConflict),
    /// The store cannot answer.
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

impl From<LedgerError> for PaymentError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::Conflict(conflict) => PaymentError::Conflict(conflict),
            LedgerError::Infrastructure(cause) => PaymentError::Infrastructure(cause),
        }
    }
}

/// Payments, where they are stored.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait PaymentLedger: Send + Sync {
    /// In one transaction: locks the reservations' seats, lets [`PaymentRequest::judge`] decide
    /// on what it found (each the user's and its hold live by the store's clock), debits the
    /// sum only if the balance covers it, confirms every reservation, sells every seat and
    /// records one payment. A refusal changes nothing.
    /// With `idempotency`, the outcome (payment or refusal) is recorded under the key in the
    /// same transaction, and an outcome already recorded is returned instead of paying again.
    ///
    /// # Errors
    /// [`LedgerError::Conflict`] when the key was used for another request or its first
    /// request is still running; [`LedgerError::Infrastructure`] when the store cannot answer.
    async fn pay(
        &self,
        request: PaymentRequest,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<LedgerAnswer, LedgerError>;

    /// The outcome recorded under the key for this very request, if any.
    ///
    /// # Errors
    /// [`LedgerError::Conflict`] when the key was used for another request;
    /// [`LedgerError::Infrastructure`] when the store cannot answer.
    async fn recorded(
        &self,
        idempotency: IdempotentRequest,
    ) -> Result<Option<PaymentOutcome>, LedgerError>;
}

/// The payment use case.
#[derive(Clone)]
pub struct PaymentService {
    ledger: Arc<dyn PaymentLedger>,
    queue: QueueService,
    binding: TokenBinding,
}

impl std::fmt::Debug for PaymentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentService").finish_non_exhaustive()
    }
}

impl PaymentService {
    /// Payments recorded in `ledger`, for ACTIVE tokens of `queue` that `binding` lets act for the
    /// user.
    pub fn new(ledger: Arc<dyn PaymentLedger>, queue: QueueService, binding: TokenBinding) -> Self {
        Self {
            ledger,
            queue,
            binding,
        }
    }

    /// Pays for a held reservation with an ACTIVE token, whose session ends once the payment
    /// is recorded. A retry under the same key gets the first outcome again, even after that
    /// payment ended the token's session: a client whose answer was lost must learn it.
    ///
    /// # Errors
    /// [`PaymentError::Access`] for a missing, waiting or expired token (unless the outcome is
    /// recorded under the key), or one that may not act for the user ([`TokenBinding::check`]); [`PaymentError::Refused`] for a final refusal;
    /// [`PaymentError::Conflict`] for a reused or in-flight key.
    pub async fn pay(
        &self,
        token: QueueToken,
        request: PaymentRequest,
        key: Option<IdempotencyKey>,
    ) -> Result<Receipt, PaymentError> {
        let idempotency = key.map(|key| IdempotentRequest {
            key,
            fingerprint: request.fingerprint(),
        });
        let active = match self.queue.authorize(token).await {
            Ok(active) => active,
            Err(AccessError::TokenInvalid) => {
                let recorded = match idempotency {
                    Some(idempotency) => self.ledger.recorded(idempotency).await?,
                    None => None,
                };
                return match recorded {
                    Some(outcome) => Ok(Receipt {
                        payment: outcome?,
                        replayed: true,
                    }),
                    None => Err(AccessError::TokenInvalid.into()),
                };
            }
            Err(other) => return Err(other.into()),
        };
        self.binding.check(&active, request.user)?;
        let answer = self.ledger.pay(request, idempotency).await?;
        let payment = answer.outcome?;
        // The payment is recorded and stands even if the session cannot be ended right now;
        // it then ends by itself at its expiry.
        let _ = self.queue.expire(&active).await;
        Ok(Receipt {
            payment,
            replayed: answer.replayed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use super::*;
    use crate::queue::{MockWaitingQueue, QueuePolicy, SigningKey, Ticket, TicketState, TokenKeys};

    fn policy() -> QueuePolicy {
        QueuePolicy {
            max_active: NonZeroU32::new(10).expect("non-zero"),
            admit_per_second: NonZeroU32::new(10).expect("non-zero"),
            active_ttl: Duration::from_secs(600),
            waiting_idle_timeout: Duration::from_secs(60),
            entry_rate_per_client: None,
        }
    }

    fn request() -> PaymentRequest {
        PaymentRequest::one(
            ReservationId::new(9001).expect("valid"),
            UserId::new(7).expect("valid"),
        )
    }

    fn id(n: i64) -> ReservationId {
        ReservationId::new(n).expect("valid")
    }

    fn several(ids: &[i64]) -> PaymentRequest {
        PaymentRequest {
            reservations: ReservationSelection::new(ids.iter().map(|n| id(*n)).collect())
                .expect("valid"),
            user: UserId::new(7).expect("valid"),
            form: PaymentForm::Several,
        }
    }

    fn hold(n: i64, user: i64, price: i64, payable: bool) -> HoldToPay {
        HoldToPay {
            reservation: id(n),
            user: UserId::new(user).expect("valid"),
            price: Won::new(price).expect("valid"),
            payable,
        }
    }

    fn payment() -> Payment {
        Payment {
            id: PaymentId::new(555).expect("valid"),
            reservation: ReservationId::new(9001).expect("valid"),
            reservations: vec![ReservationId::new(9001).expect("valid")],
            user: UserId::new(7).expect("valid"),
            amount: Won::new(150_000).expect("valid"),
            paid_at: DateTime::<Utc>::from_timestamp(2_000_000_000, 0).expect("valid"),
        }
    }

    fn keys() -> TokenKeys {
        TokenKeys::new(SigningKey::new(vec![7; 32]).expect("long enough"), None)
    }

    fn token() -> QueueToken {
        keys().seal(&Ticket {
            epoch: 1,
            seq: 1,
            user: None,
        })
    }

    fn key() -> Option<IdempotencyKey> {
        Some(IdempotencyKey::parse("k").expect("valid"))
    }

    fn active_queue() -> MockWaitingQueue {
        let mut queue = MockWaitingQueue::new();
        queue.expect_lookup().returning(|_, _| {
            Ok(Some(TicketState::Active {
                until: DateTime::<Utc>::from_timestamp(2_000_000_000, 0).expect("valid"),
            }))
        });
        queue
    }

    fn fixed_clock() -> crate::clock::MockClock {
        let mut clock = crate::clock::MockClock::new();
        clock
            .expect_now()
            .return_const(DateTime::<Utc>::from_timestamp(1_900_000_000, 0).expect("valid"));
        clock
    }

    fn service(ledger: MockPaymentLedger, queue: MockWaitingQueue) -> PaymentService {
        service_binding(ledger, queue, TokenBinding::new(false))
    }

    fn service_binding(
        ledger: MockPaymentLedger,
        queue: MockWaitingQueue,
        binding: TokenBinding,
    ) -> PaymentService {
        PaymentService::new(
            Arc::new(ledger),
            QueueService::new(
                Arc::new(queue),
                keys(),
                policy(),
                Arc::new(fixed_clock()),
                Arc::new(crate::queue::FixedSeed(crate::queue::DrawSeed::from_bytes(
                    [1; 32],
                ))),
            ),
            binding,
        )
    }

    /// A token bound to `user`, as the queue would have signed it.
    fn token_of(user: Option<i64>) -> QueueToken {
        keys().seal(&Ticket {
            epoch: 1,
            seq: 1,
            user: user.map(|u| UserId::new(u).expect("valid")),
        })
    }

    #[tokio::test]
    async fn a_recorded_payment_ends_the_token_session() {
        let mut queue = active_queue();
        queue.expect_revoke().times(1).returning(|_| Ok(true));
        let mut ledger = MockPaymentLedger::new();
        ledger.expect_pay().times(1).returning(|_, _| {
            Ok(LedgerAnswer {
                outcome: Ok(payment()),
                replayed: false,
            })
        });

        let paid = service(ledger, queue).pay(token(), request(), None).await;

        assert_eq!(paid.map(|receipt| receipt.payment), Ok(payment()));
    }

    #[tokio::test]
    async fn a_refusal_keeps_the_token_session() {
        let mut queue = active_queue();
        queue.expect_revoke().never();
        let mut ledger = MockPaymentLedger::new();
        ledger.expect_pay().returning(|request, _| {
            Ok(LedgerAnswer {
                outcome: Err(PaymentRefusal::NotPayable(request.reservations.first_id())),
                replayed: false,
            })
        });

        let result = service(ledger, queue).pay(token(), request(), None).await;

        assert!(matches!(
            result,
            Err(PaymentError::Refused(PaymentRefusal::NotPayable(_)))
        ));
    }

    #[tokio::test]
    async fn a_token_of_another_user_cannot_pay() {
        let mut ledger = MockPaymentLedger::new();
        ledger.expect_pay().never();

        let result = service(ledger, active_queue())
            .pay(token_of(Some(8)), request(), None)
            .await;

        assert_eq!(
            result,
            Err(PaymentError::Access(AccessError::TokenUserMismatch))
        );
    }

    #[tokio::test]
    async fn a_retry_after_the_session_ended_learns_the_recorded_outcome() {
        let mut queue = MockWaitingQueue::new();
        queue.expect_lookup().returning(|_, _| Ok(None));
        let mut ledger = MockPaymentLedger::new();
        ledger.expect_pay().never();
        ledger
            .expect_recorded()
            .withf(|idempotency| idempotency.fingerprint == "payment;reservation=9001;user=7")
            .returning(|_| Ok(Some(Ok(payment()))));

        let replayed = service(ledger, queue).pay(token(), request(), key()).await;

        assert_eq!(
            replayed,
            Ok(Receipt {
                payment: payment(),
                replayed: true
            })
        );
    }

    #[tokio::test]
    async fn an_expired_token_without_a_recorded_outcome_is_invalid() {
        let mut queue = MockWaitingQueue::new();
        queue.expect_lookup().returning(|_, _| Ok(None));
        let mut ledger = MockPaymentLedger::new();
        ledger.expect_recorded().returning(|_| Ok(None));

        let result = service(ledger, queue).pay(token(), request(), key()).await;

        assert_eq!(result, Err(PaymentError::Access(AccessError::TokenInvalid)));
    }

    #[tokio::test]
    async fn an_expired_token_without_a_key_is_invalid() {
        let mut queue = MockWaitingQueue::new();
        queue.expect_lookup().returning(|_, _| Ok(None));
        let mut ledger = MockPaymentLedger::new();
        ledger.expect_recorded().never();

        let result = service(ledger, queue).pay(token(), request(), None).await;

        assert_eq!(result, Err(PaymentError::Access(AccessError::TokenInvalid)));
    }

    #[test]
    fn a_list_of_reservations_is_one_to_twenty_distinct_ones() {
        assert!(ReservationSelection::new(vec![id(1)]).is_ok());
        assert!(ReservationSelection::new((1..=20).map(id).collect()).is_ok());
        assert_eq!(
            ReservationSelection::new(vec![]),
            Err(InvalidReservationSelection::Empty)
        );
        assert_eq!(
            ReservationSelection::new((1..=21).map(id).collect()),
            Err(InvalidReservationSelection::TooMany(21))
        );
        assert_eq!(
            ReservationSelection::new(vec![id(1), id(2), id(1)]),
            Err(InvalidReservationSelection::Duplicate(id(1)))
        );
    }

    #[test]
    fn the_one_reservation_form_keeps_its_v1_fingerprint_and_the_list_has_its_own() {
        assert_eq!(request().fingerprint(), "payment;reservation=9001;user=7");
        assert_eq!(
            several(&[9001, 9002]).fingerprint(),
            "payment;reservations=9001,9002;user=7"
        );
        assert_ne!(several(&[9001]).fingerprint(), request().fingerprint());
    }

    #[test]
    fn several_payable_holds_of_the_user_are_paid_with_the_sum_of_their_prices() {
        let total = several(&[1, 2]).judge(&[hold(2, 7, 90_000, true), hold(1, 7, 150_000, true)]);

        assert_eq!(total, Ok(Won::new(240_000).expect("valid")));
    }

    #[test]
    fn a_foreign_or_missing_reservation_makes_the_whole_payment_not_found() {
        let request = several(&[1, 2, 3]);

        assert_eq!(
            request.judge(&[
                hold(1, 7, 1, true),
                hold(2, 8, 1, true),
                hold(3, 7, 1, true)
            ]),
            Err(PaymentRefusal::ReservationNotFound(id(2))),
            "someone else's reservation is not found, as an unknown one"
        );
        assert_eq!(
            request.judge(&[hold(1, 7, 1, true), hold(2, 7, 1, true)]),
            Err(PaymentRefusal::ReservationNotFound(id(3)))
        );
    }

    #[test]
    fn one_unpayable_reservation_makes_the_whole_payment_not_payable() {
        let request = several(&[1, 2, 3]);

        assert_eq!(
            request.judge(&[
                hold(1, 7, 1, true),
                hold(2, 7, 1, false),
                hold(3, 7, 1, false)
            ]),
            Err(PaymentRefusal::NotPayable(id(2)))
        );
    }

    #[test]
    fn not_found_is_answered_before_not_payable() {
        assert_eq!(
            several(&[1, 2]).judge(&[hold(1, 7, 1, false)]),
            Err(PaymentRefusal::ReservationNotFound(id(2)))
        );
    }

    #[tokio::test]
    async fn with_bound_tokens_required_an_unbound_token_cannot_pay() {
        let mut ledger = MockPaymentLedger::new();
        ledger.expect_pay().never();

        let result = service_binding(ledger, active_queue(), TokenBinding::new(true))
            .pay(token_of(None), request(), None)
            .await;

        assert_eq!(
            result,
            Err(PaymentError::Access(AccessError::TokenUserMismatch))
        );
    }
}
