//! Payment: the hold is checked, the balance debited, the reservation confirmed and the seat
//! sold, all at once or not at all; then the buyer's queue session ends.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::idempotency::{IdempotencyConflict, IdempotencyKey, IdempotentRequest};
use crate::ids::{PaymentId, ReservationId, UserId};
use crate::money::Won;
use crate::queue::{AccessError, QueueService, QueueToken};
use crate::InfrastructureError;

/// A request to pay for a held reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentRequest {
    pub reservation: ReservationId,
    pub user: UserId,
}

impl PaymentRequest {
    /// What identifies this request under an `Idempotency-Key`.
    pub fn fingerprint(&self) -> String {
        format!(
            "payment;reservation={};user={}",
            self.reservation, self.user
        )
    }
}

/// A recorded payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub reservation: ReservationId,
    pub user: UserId,
    pub amount: Won,
    pub paid_at: DateTime<Utc>,
}

/// A final "no": recorded under the request's key and answered again on every retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRefusal {
    #[error("reservation {0} of this user does not exist")]
    ReservationNotFound(ReservationId),
    #[error("reservation {0} cannot be paid: its hold expired, was cancelled or is already paid")]
    NotPayable(ReservationId),
    #[error("the balance does not cover the price of {price} won")]
    InsufficientBalance { price: Won },
}

/// The outcome of a payment attempt: what is recorded and replayed.
pub type PaymentOutcome = Result<Payment, PaymentRefusal>;

/// What the ledger answers a payment: the outcome, and whether it is one recorded earlier under
/// the same `Idempotency-Key` (a replay: nothing was paid this time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerAnswer {
    pub outcome: PaymentOutcome,
    pub replayed: bool,
}

/// A payment as its client learns it: paid now, or the replay of one paid earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub payment: Payment,
    pub replayed: bool,
}

/// Why a payment could not be attempted or recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Conflict(#[from] IdempotencyConflict),
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// Why a payment did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Refused(#[from] PaymentRefusal),
    #[error(transparent)]
    Conflict(#[from] IdempotencyConflict),
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
    /// In one transaction: checks that the reservation is the user's and its hold is live (by
    /// the store's clock), debits the price only if the balance covers it, confirms the
    /// reservation, sells the seat and records the payment. A refusal changes nothing.
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
}

impl std::fmt::Debug for PaymentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentService").finish_non_exhaustive()
    }
}

impl PaymentService {
    pub fn new(ledger: Arc<dyn PaymentLedger>, queue: QueueService) -> Self {
        Self { ledger, queue }
    }

    /// Pays for a held reservation with an ACTIVE token, whose session ends once the payment
    /// is recorded. A retry under the same key gets the first outcome again, even after that
    /// payment ended the token's session: a client whose answer was lost must learn it.
    ///
    /// # Errors
    /// [`PaymentError::Access`] for a missing, waiting, expired or foreign token (unless the
    /// outcome is recorded under the key); [`PaymentError::Refused`] for a final refusal;
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
        active.act_for(request.user)?;
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
        PaymentRequest {
            reservation: ReservationId::new(9001).expect("valid"),
            user: UserId::new(7).expect("valid"),
        }
    }

    fn payment() -> Payment {
        Payment {
            id: PaymentId::new(555).expect("valid"),
            reservation: ReservationId::new(9001).expect("valid"),
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
        PaymentService::new(
            Arc::new(ledger),
            QueueService::new(Arc::new(queue), keys(), policy(), Arc::new(fixed_clock())),
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
                outcome: Err(PaymentRefusal::NotPayable(request.reservation)),
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
}
