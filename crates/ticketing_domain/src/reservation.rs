//! Seat holds: a reservation takes a seat for a few minutes, until it is paid, cancelled or
//! lapses.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::{ConcertId, PerformanceId, ReservationId, SeatNo, UserId};
use crate::money::Won;
use crate::queue::{AccessError, ActiveToken};
use crate::InfrastructureError;

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationStatus {
    /// The seat is held until `expires_at`.
    Held,
    /// Paid: the seat is sold.
    Confirmed,
    /// The hold lapsed before payment; the seat was released.
    Expired,
    /// Given up by its owner; the seat was released.
    Cancelled,
}

impl ReservationStatus {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "HELD",
            ReservationStatus::Confirmed => "CONFIRMED",
            ReservationStatus::Expired => "EXPIRED",
            ReservationStatus::Cancelled => "CANCELLED",
        }
    }

    /// Parses the contract's spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "HELD" => Some(ReservationStatus::Held),
            "CONFIRMED" => Some(ReservationStatus::Confirmed),
            "EXPIRED" => Some(ReservationStatus::Expired),
            "CANCELLED" => Some(ReservationStatus::Cancelled),
            _ => None,
        }
    }
}

/// A reservation as stored, with its status judged by the store's clock (a HELD reservation
/// whose hold has lapsed is [`ReservationStatus::Expired`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: ReservationId,
    pub user: UserId,
    pub concert: ConcertId,
    pub performance: PerformanceId,
    pub seat: SeatNo,
    pub price: Won,
    pub status: ReservationStatus,
    /// When the hold lapses (or lapsed).
    pub expires_at: DateTime<Utc>,
}

/// A request to hold one seat for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldRequest {
    pub user: UserId,
    pub concert: ConcertId,
    pub performance: PerformanceId,
    pub seat: SeatNo,
}

/// How long a hold lasts: at least one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldTtl(Duration);

impl HoldTtl {
    /// `None` for a zero duration, which would hold nothing.
    pub fn new(duration: Duration) -> Option<Self> {
        (duration >= Duration::from_secs(1)).then_some(Self(duration))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

/// Why a seat could not be held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("seat {seat} of performance {performance} of concert {concert} does not exist")]
    SeatNotFound {
        concert: ConcertId,
        performance: PerformanceId,
        seat: SeatNo,
    },
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    #[error("seat {seat} of performance {performance} is held by someone else or sold")]
    SeatUnavailable {
        performance: PerformanceId,
        seat: SeatNo,
    },
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// Why a reservation could not be shown or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservationError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("reservation {0} does not exist")]
    NotFound(ReservationId),
    #[error("reservation {0} is paid; a paid reservation cannot be cancelled")]
    AlreadyConfirmed(ReservationId),
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// What cancelling did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The hold was live: the reservation is CANCELLED and the seat free.
    Cancelled,
    /// Nothing to do: the reservation had already lapsed or been cancelled.
    AlreadyReleased,
    /// The reservation is paid and stays so.
    Confirmed,
    /// No such reservation.
    NotFound,
}

/// The seats and their holds, where they are stored. The store decides expiry with its own
/// clock, so instances with drifting clocks cannot disagree.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SeatInventory: Send + Sync {
    /// Takes the seat for `ttl` in one atomic step, if it is free or its hold has lapsed, and
    /// records a HELD reservation for the user.
    ///
    /// # Errors
    /// [`HoldError::SeatUnavailable`] when the seat is held by a live hold or sold;
    /// [`HoldError::SeatNotFound`] when the seat, the performance or the concert does not exist
    /// or the performance belongs to another concert; [`HoldError::UserNotFound`] for an
    /// unknown user; [`HoldError::Infrastructure`] when the store cannot answer.
    async fn hold(&self, request: HoldRequest, ttl: HoldTtl) -> Result<Reservation, HoldError>;

    /// The reservation, or `None` when there is none with this id.
    ///
    /// # Errors
    /// [`InfrastructureError`] when the store cannot answer.
    async fn find(&self, id: ReservationId) -> Result<Option<Reservation>, InfrastructureError>;

    /// Cancels a live hold and frees its seat at once.
    ///
    /// # Errors
    /// [`InfrastructureError`] when the store cannot answer.
    async fn cancel(&self, id: ReservationId) -> Result<CancelOutcome, InfrastructureError>;

    /// Marks up to `batch` lapsed holds EXPIRED and frees their seats; returns how many.
    /// Housekeeping only: every other operation already treats a lapsed hold as free.
    ///
    /// # Errors
    /// [`InfrastructureError`] when the store cannot answer.
    async fn release_expired(&self, batch: u32) -> Result<u64, InfrastructureError>;
}

/// The reservation use cases.
#[derive(Clone)]
pub struct ReservationService {
    inventory: Arc<dyn SeatInventory>,
    hold_ttl: HoldTtl,
}

impl std::fmt::Debug for ReservationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReservationService")
            .field("hold_ttl", &self.hold_ttl)
            .finish_non_exhaustive()
    }
}

/// Most lapsed holds released in one housekeeping step.
const RELEASE_BATCH: u32 = 500;

impl ReservationService {
    pub fn new(inventory: Arc<dyn SeatInventory>, hold_ttl: HoldTtl) -> Self {
        Self {
            inventory,
            hold_ttl,
        }
    }

    /// Holds a seat for the token's user.
    ///
    /// # Errors
    /// [`HoldError::Access`] when the token is bound to another user; otherwise see
    /// [`SeatInventory::hold`].
    pub async fn hold_seat(
        &self,
        token: &ActiveToken,
        request: HoldRequest,
    ) -> Result<Reservation, HoldError> {
        token.act_for(request.user)?;
        self.inventory.hold(request, self.hold_ttl).await
    }

    /// A reservation of the token's user.
    ///
    /// # Errors
    /// [`ReservationError::NotFound`] for an unknown id; [`ReservationError::Access`] when the
    /// token is bound to another user than the reservation's.
    pub async fn reservation(
        &self,
        token: &ActiveToken,
        id: ReservationId,
    ) -> Result<Reservation, ReservationError> {
        let reservation = self
            .inventory
            .find(id)
            .await?
            .ok_or(ReservationError::NotFound(id))?;
        token.act_for(reservation.user)?;
        Ok(reservation)
    }

    /// Cancels a reservation of the token's user and returns it as it was. Cancelling one that
    /// already lapsed or was cancelled changes nothing and succeeds.
    ///
    /// # Errors
    /// As [`ReservationService::reservation`], and [`ReservationError::AlreadyConfirmed`] for
    /// a paid reservation.
    pub async fn cancel(
        &self,
        token: &ActiveToken,
        id: ReservationId,
    ) -> Result<Reservation, ReservationError> {
        let reservation = self.reservation(token, id).await?;
        match self.inventory.cancel(id).await? {
            CancelOutcome::Cancelled | CancelOutcome::AlreadyReleased => Ok(reservation),
            CancelOutcome::Confirmed => Err(ReservationError::AlreadyConfirmed(id)),
            CancelOutcome::NotFound => Err(ReservationError::NotFound(id)),
        }
    }

    /// One housekeeping step: releases lapsed holds; returns how many.
    ///
    /// # Errors
    /// [`InfrastructureError`] when the store cannot answer.
    pub async fn release_expired_holds(&self) -> Result<u64, InfrastructureError> {
        self.inventory.release_expired(RELEASE_BATCH).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_for(user: Option<i64>) -> ActiveToken {
        ActiveToken::for_tests(user.map(|u| UserId::new(u).expect("valid")))
    }

    fn request(user: i64) -> HoldRequest {
        HoldRequest {
            user: UserId::new(user).expect("valid"),
            concert: ConcertId::new(1).expect("valid"),
            performance: PerformanceId::new(119).expect("valid"),
            seat: SeatNo::new(42).expect("valid"),
        }
    }

    fn reservation(user: i64, status: ReservationStatus) -> Reservation {
        let r = request(user);
        Reservation {
            id: ReservationId::new(9001).expect("valid"),
            user: r.user,
            concert: r.concert,
            performance: r.performance,
            seat: r.seat,
            price: Won::new(150_000).expect("valid"),
            status,
            expires_at: DateTime::<Utc>::from_timestamp(2_000_000_000, 0).expect("valid"),
        }
    }

    fn ttl() -> HoldTtl {
        HoldTtl::new(Duration::from_secs(300)).expect("valid")
    }

    fn id() -> ReservationId {
        ReservationId::new(9001).expect("valid")
    }

    #[test]
    fn a_zero_hold_is_not_a_hold() {
        assert_eq!(HoldTtl::new(Duration::ZERO), None);
        assert!(HoldTtl::new(Duration::from_secs(1)).is_some());
    }

    #[tokio::test]
    async fn a_hold_is_taken_for_the_configured_time() {
        let mut inventory = MockSeatInventory::new();
        inventory
            .expect_hold()
            .withf(|_, ttl| ttl.get() == Duration::from_secs(300))
            .times(1)
            .returning(|_, _| Ok(reservation(7, ReservationStatus::Held)));
        let service = ReservationService::new(Arc::new(inventory), ttl());

        let held = service.hold_seat(&token_for(Some(7)), request(7)).await;

        assert_eq!(held.map(|r| r.status), Ok(ReservationStatus::Held));
    }

    #[tokio::test]
    async fn a_token_of_another_user_cannot_hold_and_the_seat_is_not_touched() {
        let mut inventory = MockSeatInventory::new();
        inventory.expect_hold().never();
        let service = ReservationService::new(Arc::new(inventory), ttl());

        let result = service.hold_seat(&token_for(Some(8)), request(7)).await;

        assert_eq!(
            result,
            Err(HoldError::Access(AccessError::TokenUserMismatch))
        );
    }

    #[tokio::test]
    async fn someone_elses_reservation_cannot_be_read_with_a_bound_token() {
        let mut inventory = MockSeatInventory::new();
        inventory
            .expect_find()
            .returning(|_| Ok(Some(reservation(7, ReservationStatus::Held))));
        let service = ReservationService::new(Arc::new(inventory), ttl());

        let result = service.reservation(&token_for(Some(8)), id()).await;

        assert_eq!(
            result,
            Err(ReservationError::Access(AccessError::TokenUserMismatch))
        );
    }

    #[tokio::test]
    async fn an_unknown_reservation_is_not_found() {
        let mut inventory = MockSeatInventory::new();
        inventory.expect_find().returning(|_| Ok(None));
        let service = ReservationService::new(Arc::new(inventory), ttl());

        let result = service.cancel(&token_for(None), id()).await;

        assert_eq!(result, Err(ReservationError::NotFound(id())));
    }

    #[tokio::test]
    async fn cancelling_a_paid_reservation_is_refused() {
        let mut inventory = MockSeatInventory::new();
        inventory
            .expect_find()
            .returning(|_| Ok(Some(reservation(7, ReservationStatus::Confirmed))));
        inventory
            .expect_cancel()
            .returning(|_| Ok(CancelOutcome::Confirmed));
        let service = ReservationService::new(Arc::new(inventory), ttl());

        let result = service.cancel(&token_for(Some(7)), id()).await;

        assert_eq!(result, Err(ReservationError::AlreadyConfirmed(id())));
    }

    #[tokio::test]
    async fn cancelling_twice_succeeds_twice() {
        let mut inventory = MockSeatInventory::new();
        inventory
            .expect_find()
            .returning(|_| Ok(Some(reservation(7, ReservationStatus::Cancelled))));
        inventory
            .expect_cancel()
            .returning(|_| Ok(CancelOutcome::AlreadyReleased));
        let service = ReservationService::new(Arc::new(inventory), ttl());

        assert!(service.cancel(&token_for(None), id()).await.is_ok());
    }

    #[test]
    fn statuses_round_trip_through_the_contract_spelling() {
        for status in [
            ReservationStatus::Held,
            ReservationStatus::Confirmed,
            ReservationStatus::Expired,
            ReservationStatus::Cancelled,
        ] {
            assert_eq!(ReservationStatus::parse(status.as_str()), Some(status));
        }
    }
}
