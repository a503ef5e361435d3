//! Refunds: a paid reservation is given back before its performance starts; its price returns to
//! the balance and its seat is free again, all at once or not at all.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::access::{OwnerCheck, OwnerError};
use crate::idempotency::{IdempotencyKey, IdempotentRequest};
use crate::ids::{ReservationId, UserId};
use crate::money::Won;
use crate::payment::LedgerError;
use crate::queue::QueueToken;
use crate::reservation::{Reservation, ReservationStatus};
use crate::InfrastructureError;

/// A request to refund a reservation of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundRequest {
    /// The reservation to refund.
    pub reservation: ReservationId,
    /// The user asking; only their own reservation is refunded.
    pub user: UserId,
}

/// A reservation as a refund finds it, under lock: as stored, with its performance's start and
/// the store's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundCandidate {
    /// The reservation as stored.
    pub reservation: Reservation,
    /// When its performance starts: no refund from then on.
    pub performance_starts_at: DateTime<Utc>,
    /// The store's time when it was read.
    pub now: DateTime<Utc>,
}

impl RefundRequest {
    /// What identifies this request under an `Idempotency-Key`.
    pub fn fingerprint(&self) -> String {
        format!("refund;reservation={};user={}", self.reservation, self.user)
    }

    /// The refund rules: only the user's own reservation (another user's is not found, as an
    /// unknown one), only a CONFIRMED one, and only before its performance starts. Answers the
    /// amount to give back.
    ///
    /// # Errors
    /// [`RefundRefusal::ReservationNotFound`] or [`RefundRefusal::NotRefundable`].
    pub fn judge(&self, found: Option<&RefundCandidate>) -> Result<Won, RefundRefusal> {
        let candidate = match found {
            Some(candidate) if candidate.reservation.user == self.user => candidate,
            _ => return Err(RefundRefusal::ReservationNotFound(self.reservation)),
        };
        let confirmed = candidate.reservation.status == ReservationStatus::Confirmed;
        let before_the_show = candidate.now < candidate.performance_starts_at;
        if confirmed && before_the_show {
            Ok(candidate.reservation.price)
        } else {
            Err(RefundRefusal::NotRefundable(self.reservation))
        }
    }
}

/// A final "no": recorded under the request's key and answered again on every retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
// Not `#[non_exhaustive]`: every ledger adapter records each refusal under its Idempotency-Key
// and must fail to compile, not fall through a wildcard, when a new one appears.
pub enum RefundRefusal {
    /// No reservation of this user has this id (another user's reservation counts as unknown).
    #[error("reservation {0} of this user does not exist")]
    ReservationNotFound(ReservationId),
    #[error(
        "reservation {0} cannot be refunded: it is not paid, already refunded, or its performance has started"
    )]
    /// The reservation is not CONFIRMED (not paid, or already refunded), or its performance has
    /// started.
    NotRefundable(ReservationId),
}

/// The outcome of a refund attempt: the reservation as refunded, or why not.
pub type RefundOutcome = Result<Reservation, RefundRefusal>;

/// What the ledger answers a refund: the outcome, and whether it was recorded earlier under the
/// same `Idempotency-Key` (a replay: nothing was refunded this time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundAnswer {
    /// The refund, or the refusal.
    pub outcome: RefundOutcome,
    /// Whether the outcome was recorded earlier under the same key (nothing was refunded this
    /// time).
    pub replayed: bool,
}

/// Why a refund did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefundError {
    /// The request may not act for the user (see [`OwnerCheck::vouch`]).
    #[error(transparent)]
    Owner(#[from] OwnerError),
    /// A final refusal, answered again on every retry under the same key.
    #[error(transparent)]
    Refused(#[from] RefundRefusal),
    /// The idempotency key was used for another request, or its first request is still running.
    #[error(transparent)]
    Conflict(#[from] crate::idempotency::IdempotencyConflict),
    /// The store cannot answer.
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

impl From<LedgerError> for RefundError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::Conflict(conflict) => RefundError::Conflict(conflict),
            LedgerError::Infrastructure(cause) => RefundError::Infrastructure(cause),
        }
    }
}

/// Refunds, where they are stored.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait RefundLedger: Send + Sync {
    /// In one transaction: locks the reservation's seat, reads the reservation, its
    /// performance's start and the store's time, and lets [`RefundRequest::judge`] decide; if
    /// it may, marks the reservation REFUNDED, credits its price to the user's balance and frees
    /// its seat. A refusal changes nothing. Concurrent refunds of one reservation refund it
    /// once. With `idempotency`, the outcome (refund or refusal) is recorded under the key in the
    /// same transaction, and an outcome already recorded is returned instead of refunding again.
    ///
    /// # Errors
    /// [`LedgerError::Conflict`] when the key was used for another request or its first
    /// request is still running; [`LedgerError::Infrastructure`] when the store cannot answer.
    async fn refund(
        &self,
        request: RefundRequest,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<RefundAnswer, LedgerError>;
}

/// The refund use case.
#[derive(Clone)]
pub struct RefundService {
    ledger: Arc<dyn RefundLedger>,
    owner: OwnerCheck,
}

impl std::fmt::Debug for RefundService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefundService").finish_non_exhaustive()
    }
}

impl RefundService {
    /// Refunds recorded in `ledger`, for requests that `owner` vouches for.
    pub fn new(ledger: Arc<dyn RefundLedger>, owner: OwnerCheck) -> Self {
        Self { ledger, owner }
    }

    /// Refunds a paid reservation of the user, once per `key`, for a request carrying `token`
    /// (if any): see [`OwnerCheck::vouch`].
    ///
    /// # Errors
    /// [`RefundError::Owner`] when the request may not act for the user (nothing is asked of
    /// the store); [`RefundError::Refused`] for a final refusal; [`RefundError::Conflict`] for a
    /// reused or in-flight key; [`RefundError::Infrastructure`] when the store cannot answer.
    pub async fn refund(
        &self,
        token: Option<QueueToken>,
        request: RefundRequest,
        key: Option<IdempotencyKey>,
    ) -> Result<Reservation, RefundError> {
        self.owner.vouch(token, request.user).await?;
        let idempotency = key.map(|key| IdempotentRequest {
            key,
            fingerprint: request.fingerprint(),
        });
        let answer = self.ledger.refund(request, idempotency).await?;
        Ok(answer.outcome?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConcertId, PerformanceId, SeatNo};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(2_000_000_000 + seconds, 0).expect("valid")
    }

    fn request(user: i64) -> RefundRequest {
        RefundRequest {
            reservation: ReservationId::new(9001).expect("valid"),
            user: UserId::new(user).expect("valid"),
        }
    }

    fn candidate(user: i64, status: ReservationStatus, now: i64) -> RefundCandidate {
        RefundCandidate {
            reservation: Reservation {
                id: ReservationId::new(9001).expect("valid"),
                user: UserId::new(user).expect("valid"),
                concert: ConcertId::new(1).expect("valid"),
                performance: PerformanceId::new(119).expect("valid"),
                seat: SeatNo::new(42).expect("valid"),
                price: Won::new(150_000).expect("valid"),
                status,
                expires_at: at(-3600),
            },
            performance_starts_at: at(0),
            now: at(now),
        }
    }

    #[test]
    fn a_paid_reservation_is_refunded_its_price_before_the_show() {
        let found = candidate(7, ReservationStatus::Confirmed, -1);

        assert_eq!(
            request(7).judge(Some(&found)),
            Ok(Won::new(150_000).expect("valid"))
        );
    }

    #[test]
    fn nothing_is_refunded_once_the_performance_has_started() {
        for now in [0, 1, 86_400] {
            let found = candidate(7, ReservationStatus::Confirmed, now);
            assert_eq!(
                request(7).judge(Some(&found)),
                Err(RefundRefusal::NotRefundable(request(7).reservation)),
                "{now} s after the start"
            );
        }
    }

    #[test]
    fn only_a_paid_reservation_is_refundable() {
        for status in [
            ReservationStatus::Held,
            ReservationStatus::Expired,
            ReservationStatus::Cancelled,
            ReservationStatus::Refunded,
        ] {
            let found = candidate(7, status, -1);
            assert_eq!(
                request(7).judge(Some(&found)),
                Err(RefundRefusal::NotRefundable(request(7).reservation)),
                "{status:?}"
            );
        }
    }

    #[test]
    fn another_users_or_an_unknown_reservation_is_not_found() {
        let foreign = candidate(8, ReservationStatus::Confirmed, -1);

        assert_eq!(
            request(7).judge(Some(&foreign)),
            Err(RefundRefusal::ReservationNotFound(request(7).reservation))
        );
        assert_eq!(
            request(7).judge(None),
            Err(RefundRefusal::ReservationNotFound(request(7).reservation))
        );
    }

    #[tokio::test]
    async fn a_keyed_refund_is_fingerprinted_by_reservation_and_user() {
        let mut ledger = MockRefundLedger::new();
        ledger
            .expect_refund()
            .withf(|_, idempotency| {
                idempotency.as_ref().map(|i| i.fingerprint.as_str())
                    == Some("refund;reservation=9001;user=7")
            })
            .times(1)
            .returning(|request, _| {
                Ok(RefundAnswer {
                    outcome: Err(RefundRefusal::NotRefundable(request.reservation)),
                    replayed: true,
                })
            });

        let result = RefundService::new(
            Arc::new(ledger),
            crate::access::tests::owner_check(false, None),
        )
        .refund(
            None,
            request(7),
            Some(IdempotencyKey::parse("k").expect("valid")),
        )
        .await;

        assert_eq!(
            result,
            Err(RefundError::Refused(RefundRefusal::NotRefundable(
                request(7).reservation
            )))
        );
    }

    #[tokio::test]
    async fn with_bound_tokens_required_a_refund_without_the_users_token_is_not_tried() {
        let mut ledger = MockRefundLedger::new();
        ledger.expect_refund().never();

        let result = RefundService::new(
            Arc::new(ledger),
            crate::access::tests::owner_check(true, None),
        )
        .refund(None, request(7), None)
        .await;

        assert_eq!(result, Err(RefundError::Owner(OwnerError::TokenMissing)));
    }
}
