//! Seat holds: a reservation takes a seat for a few minutes, until it is paid, cancelled or
//! lapses.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::access::{OwnerCheck, OwnerError};
use crate::ids::{ConcertId, PerformanceId, ReservationId, SeatNo, UserId};
use crate::money::Won;
use crate::queue::{AccessError, ActiveToken, QueueToken};
use crate::taken_seats::{NoSeatMemory, SeatMemory};
use crate::InfrastructureError;

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReservationStatus {
    /// The seat is held until `expires_at`.
    Held,
    /// Paid: the seat is sold.
    Confirmed,
    /// The hold lapsed before payment; the seat was released.
    Expired,
    /// Given up by its owner; the seat was released.
    Cancelled,
    /// Paid, then refunded before the performance: the price went back to the balance and the
    /// seat is free again.
    Refunded,
}

impl ReservationStatus {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "HELD",
            ReservationStatus::Confirmed => "CONFIRMED",
            ReservationStatus::Expired => "EXPIRED",
            ReservationStatus::Cancelled => "CANCELLED",
            ReservationStatus::Refunded => "REFUNDED",
        }
    }

    /// The status to report for a stored status: a HELD reservation whose hold has lapsed (by
    /// the store's clock) is EXPIRED, whether or not the clean-up has marked it yet.
    pub fn judged(self, hold_lapsed: bool) -> Self {
        match self {
            ReservationStatus::Held if hold_lapsed => ReservationStatus::Expired,
            other => other,
        }
    }

    /// Parses the contract's spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "HELD" => Some(ReservationStatus::Held),
            "CONFIRMED" => Some(ReservationStatus::Confirmed),
            "EXPIRED" => Some(ReservationStatus::Expired),
            "CANCELLED" => Some(ReservationStatus::Cancelled),
            "REFUNDED" => Some(ReservationStatus::Refunded),
            _ => None,
        }
    }
}

/// A reservation as stored, with its status judged by the store's clock (a HELD reservation
/// whose hold has lapsed is [`ReservationStatus::Expired`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The reservation's identifier.
    pub id: ReservationId,
    /// The user the reservation is for.
    pub user: UserId,
    /// The concert of the seat.
    pub concert: ConcertId,
    /// The performance of the seat.
    pub performance: PerformanceId,
    /// The seat held or bought.
    pub seat: SeatNo,
    /// The seat's price: what a payment debits and a refund gives back.
    pub price: Won,
    /// Where the reservation stands, judged by the store's clock.
    pub status: ReservationStatus,
    /// When the hold lapses (or lapsed).
    pub expires_at: DateTime<Utc>,
}

/// The most seats one hold may take (`reservation.max_seats_per_hold`): at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatsPerHold(NonZeroU32);

impl SeatsPerHold {
    /// At most `max` seats per hold.
    pub fn new(max: NonZeroU32) -> Self {
        Self(max)
    }

    /// The most seats one hold may take.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

/// The most HELD or CONFIRMED seats one user may have of one performance
/// (`reservation.max_seats_per_user`), against scalpers; `0` in the settings is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatLimit(Option<NonZeroU32>);

impl SeatLimit {
    /// At most `max` seats; `0` is no limit.
    pub fn new(max: u32) -> Self {
        Self(NonZeroU32::new(max))
    }

    /// No limit.
    pub fn unlimited() -> Self {
        Self(None)
    }

    /// The limit, if there is one.
    pub fn get(self) -> Option<NonZeroU32> {
        self.0
    }

    /// Whether a user who already holds or owns `owned` seats of a performance may hold
    /// `asked` more of it.
    pub fn admits(self, owned: u64, asked: usize) -> bool {
        match self.0 {
            None => true,
            Some(max) => owned.saturating_add(asked as u64) <= u64::from(max.get()),
        }
    }
}

/// How holds are taken: for how long, how many seats at once, how many per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldRules {
    /// How long a hold lasts.
    pub ttl: HoldTtl,
    /// The most seats one hold may take.
    pub max_per_hold: SeatsPerHold,
    /// The most HELD or CONFIRMED seats one user may have of one performance.
    pub per_user: SeatLimit,
}

/// Why a list of seats cannot be held at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSeatSelection {
    /// The list names no seat.
    #[error("seatIds must name at least one seat")]
    Empty,
    /// The list names more seats than one hold may take.
    #[error("seatIds may name at most {max} seats, got {asked}")]
    TooMany {
        /// The most seats one hold may take.
        max: u32,
        /// How many seats the list names.
        asked: usize,
    },
    /// The list names this seat more than once.
    #[error("seatIds names seat {0} more than once")]
    Duplicate(SeatNo),
}

/// The seats of one hold: 1 to [`SeatsPerHold`] distinct seats, in the order asked (the order
/// of the answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatSelection(Vec<SeatNo>);

impl SeatSelection {
    /// Validates a list of seats asked for at once.
    ///
    /// # Errors
    /// [`InvalidSeatSelection`] for an empty list, more seats than `max` or a seat named twice.
    pub fn new(seats: Vec<SeatNo>, max: SeatsPerHold) -> Result<Self, InvalidSeatSelection> {
        if seats.is_empty() {
            return Err(InvalidSeatSelection::Empty);
        }
        if seats.len() > max.get() as usize {
            return Err(InvalidSeatSelection::TooMany {
                max: max.get(),
                asked: seats.len(),
            });
        }
        let mut seen = HashSet::with_capacity(seats.len());
        if let Some(twice) = seats.iter().find(|seat| !seen.insert(**seat)) {
            return Err(InvalidSeatSelection::Duplicate(*twice));
        }
        Ok(Self(seats))
    }

    /// One seat: always a valid selection.
    pub fn one(seat: SeatNo) -> Self {
        Self(vec![seat])
    }

    /// The seats, in the order asked.
    pub fn seats(&self) -> &[SeatNo] {
        &self.0
    }

    /// How many seats are asked.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no seat is asked (never, for a selection built by [`SeatSelection::new`] or
    /// [`SeatSelection::one`]).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// All or nothing: given the seats that exist (of the asked performance of the asked
    /// concert) and whether each is free now, decides whether the whole selection can be held.
    /// Every seat must exist; then every seat must be free.
    ///
    /// # Errors
    /// [`SeatRefusal::NotFound`] with the first asked seat that does not exist;
    /// [`SeatRefusal::Unavailable`] with every asked seat that is taken, in the order asked.
    pub fn judge(&self, found: &[(SeatNo, bool)]) -> Result<(), SeatRefusal> {
        let free: HashMap<SeatNo, bool> = found.iter().copied().collect();
        if let Some(missing) = self.0.iter().find(|seat| !free.contains_key(seat)) {
            return Err(SeatRefusal::NotFound(*missing));
        }
        let taken: Vec<SeatNo> = self
            .0
            .iter()
            .copied()
            .filter(|seat| free.get(seat) != Some(&true))
            .collect();
        if taken.is_empty() {
            Ok(())
        } else {
            Err(SeatRefusal::Unavailable(taken))
        }
    }

    /// `reservations` (one per seat, in any order) in the order the seats were asked.
    pub fn in_asked_order(&self, mut reservations: Vec<Reservation>) -> Vec<Reservation> {
        let rank: HashMap<SeatNo, usize> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, seat)| (*seat, i))
            .collect();
        reservations.sort_by_key(|r| rank.get(&r.seat).copied().unwrap_or(usize::MAX));
        reservations
    }
}

/// Why a selection cannot be held, as [`SeatSelection::judge`] decides.
#[derive(Debug, Clone, PartialEq, Eq)]
// Not `#[non_exhaustive]`: port vocabulary, which every adapter and its tests handle in full;
// a new variant changes the port and must break them.
pub enum SeatRefusal {
    /// The first asked seat that does not exist.
    NotFound(SeatNo),
    /// Every asked seat that is taken, in the order asked.
    Unavailable(Vec<SeatNo>),
}

/// How many reservations one page of a user's list holds: 1 to [`PageSize::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

/// A page size out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("limit must be between 1 and {max}, got {0}", max = PageSize::MAX)]
pub struct InvalidPageSize(pub i64);

impl PageSize {
    /// The largest page.
    pub const MAX: u32 = 100;
    /// The page size when none is asked.
    pub const DEFAULT: PageSize = PageSize(50);

    /// Validates `size`.
    ///
    /// # Errors
    /// [`InvalidPageSize`] outside `1..=MAX`.
    pub fn new(size: i64) -> Result<Self, InvalidPageSize> {
        u32::try_from(size)
            .ok()
            .filter(|size| (1..=Self::MAX).contains(size))
            .map(Self)
            .ok_or(InvalidPageSize(size))
    }

    /// How many reservations a page holds.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Which of a user's reservations to list: newest first (by id, which grows with time), only
/// those older than `before` when given (the next page), only those of `status` when given
/// (judged as reported: a lapsed hold is EXPIRED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationQuery {
    /// Whose reservations to list.
    pub user: UserId,
    /// Only reservations of this status (as reported: a lapsed hold is EXPIRED), when given.
    pub status: Option<ReservationStatus>,
    /// Only reservations older than this one, when given: the next page.
    pub before: Option<ReservationId>,
    /// How many reservations a page holds.
    pub size: PageSize,
}

/// One page of a user's reservations, newest first; `next_before` is the `before` of the next
/// page, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationPage {
    /// The page's reservations, newest first.
    pub reservations: Vec<Reservation>,
    /// The `before` of the next page, when there is one.
    pub next_before: Option<ReservationId>,
}

impl ReservationPage {
    /// The page of `size` out of up to `size + 1` reservations fetched newest first: one more
    /// than the page means there is a next page, starting below the page's last.
    pub fn cut(mut fetched: Vec<Reservation>, size: PageSize) -> Self {
        let size = size.get() as usize;
        let more = fetched.len() > size;
        fetched.truncate(size);
        let next_before = if more {
            fetched.last().map(|r| r.id)
        } else {
            None
        };
        Self {
            reservations: fetched,
            next_before,
        }
    }
}

/// Why a user's reservations could not be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The request may not act for the user (see [`OwnerCheck::vouch`]).
    #[error(transparent)]
    Owner(#[from] OwnerError),
    /// No user has this id.
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    /// The store cannot answer.
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// A request to hold one or several seats of one performance for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    /// The user to hold the seats for.
    pub user: UserId,
    /// The concert of the seats.
    pub concert: ConcertId,
    /// The performance of the seats.
    pub performance: PerformanceId,
    /// The seats to hold.
    pub seats: SeatSelection,
}

impl HoldRequest {
    /// The error for `refusal` of this request's seats.
    pub fn refused(&self, refusal: SeatRefusal) -> HoldError {
        match refusal {
            SeatRefusal::NotFound(seat) => HoldError::SeatNotFound {
                concert: self.concert,
                performance: self.performance,
                seat,
            },
            SeatRefusal::Unavailable(seats) => HoldError::SeatUnavailable {
                performance: self.performance,
                seats,
            },
        }
    }
}

/// What a client asks to hold, before validation: the seats as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldOrder {
    /// The user to hold the seats for.
    pub user: UserId,
    /// The concert of the seats.
    pub concert: ConcertId,
    /// The performance of the seats.
    pub performance: PerformanceId,
    /// The seats as sent, not yet validated.
    pub seats: Vec<SeatNo>,
}

/// How long a hold lasts: at least one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldTtl(Duration);

impl HoldTtl {
    /// `None` for less than a second: the hold would lapse before anyone could pay it.
    pub fn new(duration: Duration) -> Option<Self> {
        (duration >= Duration::from_secs(1)).then_some(Self(duration))
    }

    /// How long a hold lasts.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// Why a seat could not be held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HoldError {
    /// The token may not act for the order's user.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// A seat, the performance or the concert does not exist, or the performance belongs to another
    /// concert.
    #[error("seat {seat} of performance {performance} of concert {concert} does not exist")]
    SeatNotFound {
        /// The concert asked for.
        concert: ConcertId,
        /// The performance asked for.
        performance: PerformanceId,
        /// The asked seat that was not found.
        seat: SeatNo,
    },
    /// No user has this id.
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    /// Some asked seats are under a live hold or sold.
    #[error("{}", unavailable_message(*performance, seats))]
    SeatUnavailable {
        /// The performance asked for.
        performance: PerformanceId,
        /// Every asked seat that is taken, in the order asked.
        seats: Vec<SeatNo>,
    },
    /// The seats asked are none, too many, or name a seat twice.
    #[error(transparent)]
    InvalidSelection(#[from] InvalidSeatSelection),
    /// The user's live holds and paid seats of the performance, plus the seats asked, would pass
    /// the per-user limit.
    #[error("user {user} may hold or own at most {limit} seats of performance {performance}")]
    SeatLimitReached {
        /// The user asking.
        user: UserId,
        /// The performance asked for.
        performance: PerformanceId,
        /// The most seats one user may hold or own of one performance.
        limit: u32,
    },
    /// The store cannot answer.
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

fn unavailable_message(performance: PerformanceId, seats: &[SeatNo]) -> String {
    match seats {
        [seat] => {
            format!("seat {seat} of performance {performance} is held by someone else or sold")
        }
        several => {
            let list: Vec<String> = several.iter().map(ToString::to_string).collect();
            format!(
                "seats {} of performance {performance} are held by someone else or sold",
                list.join(", ")
            )
        }
    }
}

/// Why a reservation could not be shown or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReservationError {
    /// The token may not act for the reservation's user.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// No reservation has this id.
    #[error("reservation {0} does not exist")]
    NotFound(ReservationId),
    /// The reservation is paid, so it cannot be cancelled.
    #[error("reservation {0} is paid; a paid reservation cannot be cancelled")]
    AlreadyConfirmed(ReservationId),
    /// The store cannot answer.
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// What cancelling did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Not `#[non_exhaustive]`: port vocabulary, which every adapter and its tests handle in full;
// a new variant changes the port and must break them.
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
    /// Takes every seat of the request for `ttl`, if each is free or its hold has lapsed, and
    /// records a HELD reservation per seat for the user: all of them in one atomic step, or
    /// none (whatever runs concurrently, no partial hold is ever visible or kept). The seats are
    /// judged by [`SeatSelection::judge`] on their state under lock. The reservations come back
    /// in the order the seats were asked.
    ///
    /// # Errors
    /// [`HoldError::SeatNotFound`] when a seat, the performance or the concert does not exist
    /// or the performance belongs to another concert; [`HoldError::SeatUnavailable`] with every
    /// asked seat held by a live hold or sold; then [`HoldError::SeatLimitReached`] when the
    /// user's live holds and confirmed reservations of the performance plus the asked seats
    /// would pass `limit` ([`SeatLimit::admits`]), counted and taken so that concurrent holds of
    /// one user never pass it together; [`HoldError::UserNotFound`] for an unknown user;
    /// [`HoldError::Infrastructure`] when the store cannot answer. Nothing is held on any error.
    async fn hold(
        &self,
        request: HoldRequest,
        ttl: HoldTtl,
        limit: SeatLimit,
    ) -> Result<Vec<Reservation>, HoldError>;

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

    /// Up to `count` reservations of the query's user that match it, newest first, their
    /// status judged by the store's clock as [`SeatInventory::find`] reports it; `None` when
    /// the user does not exist.
    ///
    /// # Errors
    /// [`InfrastructureError`] when the store cannot answer.
    async fn list(
        &self,
        query: ReservationQuery,
        count: u32,
    ) -> Result<Option<Vec<Reservation>>, InfrastructureError>;

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
    rules: HoldRules,
    owner: OwnerCheck,
    memory: Arc<dyn SeatMemory>,
}

impl std::fmt::Debug for ReservationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReservationService")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// Most lapsed holds released in one housekeeping step.
const RELEASE_BATCH: u32 = 500;

impl ReservationService {
    /// The reservation use cases over the seats stored in `inventory`, taking holds by `rules`,
    /// with `owner` telling who may act for a user; without a seat memory (see
    /// [`ReservationService::with_memory`]).
    pub fn new(inventory: Arc<dyn SeatInventory>, rules: HoldRules, owner: OwnerCheck) -> Self {
        Self {
            inventory,
            rules,
            owner,
            memory: Arc::new(NoSeatMemory),
        }
    }

    /// The rules holds are taken by.
    pub fn rules(&self) -> HoldRules {
        self.rules
    }

    /// Refuses holds of seats that `memory` knows to be taken without asking the store (see
    /// [`crate::taken_seats`]); without it every hold is decided by the store.
    #[must_use]
    pub fn with_memory(mut self, memory: Arc<dyn SeatMemory>) -> Self {
        self.memory = memory;
        self
    }

    /// Who may touch a reservation.
    pub fn owner(&self) -> &OwnerCheck {
        &self.owner
    }

    /// Holds every seat of the order for the token's user, all or none, within the user's
    /// limit per performance; the reservations come back in the order the seats were asked.
    ///
    /// # Errors
    /// [`HoldError::InvalidSelection`] for no seat, a seat named twice or more seats than
    /// `max_per_hold` (nothing is asked of the store); [`HoldError::Access`] when the token may
    /// not act for the order's user ([`crate::access::TokenBinding::check`]);
    /// [`HoldError::SeatUnavailable`] with the seats this instance remembers as taken
    /// ([`SeatMemory`]), without asking the store; otherwise see [`SeatInventory::hold`].
    pub async fn hold_seats(
        &self,
        token: &ActiveToken,
        order: HoldOrder,
    ) -> Result<Vec<Reservation>, HoldError> {
        let seats = SeatSelection::new(order.seats, self.rules.max_per_hold)?;
        self.owner.binding().check(token, order.user)?;
        if let Some(recollection) = self.memory.recall(order.concert, order.performance).await {
            let taken = recollection.still_taken(seats.seats());
            if !taken.is_empty() {
                return Err(HoldError::SeatUnavailable {
                    performance: order.performance,
                    seats: taken,
                });
            }
        }
        let request = HoldRequest {
            user: order.user,
            concert: order.concert,
            performance: order.performance,
            seats,
        };
        self.inventory
            .hold(request, self.rules.ttl, self.rules.per_user)
            .await
    }

    /// A reservation of the token's user.
    ///
    /// # Errors
    /// [`ReservationError::NotFound`] for an unknown id; [`ReservationError::Access`] when the
    /// token may not act for the reservation's user ([`crate::access::TokenBinding::check`]).
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
        let binding = self.owner.binding();
        match binding.check(token, reservation.user) {
            // An identified caller's token is theirs: another user's reservation is not
            // theirs to know of.
            Err(_) if binding.is_identified() => Err(ReservationError::NotFound(id)),
            checked => {
                checked?;
                Ok(reservation)
            }
        }
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

    /// One page of a user's reservations, newest first, for a request carrying `token` (if
    /// any): see [`OwnerCheck::vouch`].
    ///
    /// # Errors
    /// [`ListError::Owner`] when the request may not act for the user;
    /// [`ListError::UserNotFound`] for an unknown user; [`ListError::Infrastructure`] when the
    /// store cannot answer.
    pub async fn reservations_of(
        &self,
        token: Option<QueueToken>,
        query: ReservationQuery,
    ) -> Result<ReservationPage, ListError> {
        self.owner.vouch(token, query.user).await?;
        let fetched = self
            .inventory
            .list(query, query.size.get() + 1)
            .await?
            .ok_or(ListError::UserNotFound(query.user))?;
        Ok(ReservationPage::cut(fetched, query.size))
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

    fn seat(n: i64) -> SeatNo {
        SeatNo::new(n).expect("valid")
    }

    fn order_of(user: i64, seats: &[i64]) -> HoldOrder {
        HoldOrder {
            user: UserId::new(user).expect("valid"),
            concert: ConcertId::new(1).expect("valid"),
            performance: PerformanceId::new(119).expect("valid"),
            seats: seats.iter().map(|n| seat(*n)).collect(),
        }
    }

    fn request(user: i64) -> HoldOrder {
        order_of(user, &[42])
    }

    fn reservation_of(user: i64, seat_no: i64, status: ReservationStatus) -> Reservation {
        Reservation {
            id: ReservationId::new(9000 + seat_no).expect("valid"),
            user: UserId::new(user).expect("valid"),
            concert: ConcertId::new(1).expect("valid"),
            performance: PerformanceId::new(119).expect("valid"),
            seat: seat(seat_no),
            price: Won::new(150_000).expect("valid"),
            status,
            expires_at: DateTime::<Utc>::from_timestamp(2_000_000_000, 0).expect("valid"),
        }
    }

    fn reservation(user: i64, status: ReservationStatus) -> Reservation {
        Reservation {
            id: ReservationId::new(9001).expect("valid"),
            ..reservation_of(user, 42, status)
        }
    }

    fn ttl() -> HoldTtl {
        HoldTtl::new(Duration::from_secs(300)).expect("valid")
    }

    fn four() -> SeatsPerHold {
        SeatsPerHold::new(NonZeroU32::new(4).expect("non-zero"))
    }

    fn rules() -> HoldRules {
        HoldRules {
            ttl: ttl(),
            max_per_hold: four(),
            per_user: SeatLimit::new(4),
        }
    }

    fn service(inventory: MockSeatInventory) -> ReservationService {
        ReservationService::new(
            Arc::new(inventory),
            rules(),
            crate::access::tests::owner_check(false, None),
        )
    }

    fn requiring_bound_tokens(inventory: MockSeatInventory) -> ReservationService {
        ReservationService::new(
            Arc::new(inventory),
            rules(),
            crate::access::tests::owner_check(true, None),
        )
    }

    fn selection(seats: &[i64]) -> SeatSelection {
        SeatSelection::new(seats.iter().map(|n| seat(*n)).collect(), four()).expect("valid")
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
            .withf(|_, ttl, limit| {
                ttl.get() == Duration::from_secs(300) && *limit == SeatLimit::new(4)
            })
            .times(1)
            .returning(|_, _, _| Ok(vec![reservation(7, ReservationStatus::Held)]));
        let service = service(inventory);

        let held = service.hold_seats(&token_for(Some(7)), request(7)).await;

        assert_eq!(
            held.map(|r| r.into_iter().map(|r| r.status).collect::<Vec<_>>()),
            Ok(vec![ReservationStatus::Held])
        );
    }

    fn remembering(
        taken: Vec<(i64, crate::taken_seats::Taken)>,
        age: Duration,
    ) -> Arc<dyn SeatMemory> {
        let read_at = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("valid");
        let seats = Arc::new(crate::taken_seats::TakenSeats::new(
            read_at,
            taken.into_iter().map(|(no, how)| (seat(no), how)),
        ));
        let mut memory = crate::taken_seats::MockSeatMemory::new();
        memory.expect_recall().returning(move |_, _| {
            Some(crate::taken_seats::Recollection {
                seats: Arc::clone(&seats),
                age,
            })
        });
        Arc::new(memory)
    }

    #[tokio::test]
    async fn a_seat_remembered_as_taken_is_refused_without_asking_the_store() {
        let mut inventory = MockSeatInventory::new();
        inventory.expect_hold().never();
        let service = service(inventory).with_memory(remembering(
            vec![(13, crate::taken_seats::Taken::Sold)],
            Duration::from_millis(200),
        ));

        let result = service
            .hold_seats(&token_for(Some(7)), order_of(7, &[12, 13]))
            .await;

        assert_eq!(
            result,
            Err(HoldError::SeatUnavailable {
                performance: PerformanceId::new(119).expect("valid"),
                seats: vec![seat(13)],
            })
        );
    }

    #[tokio::test]
    async fn seats_not_remembered_as_taken_are_decided_by_the_store() {
        let lapsed_at = DateTime::<Utc>::from_timestamp(1_800_000_001, 0).expect("valid");
        let mut inventory = MockSeatInventory::new();
        inventory
            .expect_hold()
            .times(1)
            .returning(|_, _, _| Ok(vec![reservation(7, ReservationStatus::Held)]));
        let service = service(inventory).with_memory(remembering(
            vec![(42, crate::taken_seats::Taken::HeldUntil(lapsed_at))],
            Duration::from_secs(2),
        ));

        let held = service.hold_seats(&token_for(Some(7)), request(7)).await;

        assert!(
            held.is_ok(),
            "a hold that lapsed since the read is asked of the store"
        );
    }

    #[tokio::test]
    async fn memory_never_answers_before_the_token_and_the_selection_are_checked() {
        let service = service(MockSeatInventory::new()).with_memory(remembering(
            vec![(42, crate::taken_seats::Taken::Sold)],
            Duration::ZERO,
        ));

        let foreign = service.hold_seats(&token_for(Some(8)), request(7)).await;
        let twice = service
            .hold_seats(&token_for(Some(7)), order_of(7, &[42, 42]))
            .await;

        assert_eq!(
            foreign,
            Err(HoldError::Access(AccessError::TokenUserMismatch))
        );
        assert_eq!(
            twice,
            Err(HoldError::InvalidSelection(
                InvalidSeatSelection::Duplicate(seat(42))
            ))
        );
    }

    #[tokio::test]
    async fn a_token_of_another_user_cannot_hold_and_the_seat_is_not_touched() {
        let mut inventory = MockSeatInventory::new();
        inventory.expect_hold().never();
        let service = service(inventory);

        let result = service.hold_seats(&token_for(Some(8)), request(7)).await;

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
        let service = service(inventory);

        let result = service.reservation(&token_for(Some(8)), id()).await;

        assert_eq!(
            result,
            Err(ReservationError::Access(AccessError::TokenUserMismatch))
        );
    }

    #[tokio::test]
    async fn an_identified_caller_learns_nothing_of_someone_elses_reservation() {
        let mut inventory = MockSeatInventory::new();
        inventory
            .expect_find()
            .returning(|_| Ok(Some(reservation(7, ReservationStatus::Held))));
        inventory.expect_cancel().never();
        let service = ReservationService::new(
            Arc::new(inventory),
            rules(),
            crate::access::tests::identified_owner_check(),
        );

        assert_eq!(
            service.reservation(&token_for(Some(8)), id()).await,
            Err(ReservationError::NotFound(id()))
        );
        assert_eq!(
            service.cancel(&token_for(Some(8)), id()).await,
            Err(ReservationError::NotFound(id()))
        );
        assert!(service.reservation(&token_for(Some(7)), id()).await.is_ok());
    }

    #[tokio::test]
    async fn an_unknown_reservation_is_not_found() {
        let mut inventory = MockSeatInventory::new();
        inventory.expect_find().returning(|_| Ok(None));
        let service = service(inventory);

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
        let service = service(inventory);

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
        let service = service(inventory);

        assert!(service.cancel(&token_for(None), id()).await.is_ok());
    }

    #[test]
    fn a_selection_is_one_to_the_maximum_of_distinct_seats() {
        assert!(SeatSelection::new(vec![seat(1)], four()).is_ok());
        assert!(SeatSelection::new((1..=4).map(seat).collect(), four()).is_ok());
        assert_eq!(
            SeatSelection::new(vec![], four()),
            Err(InvalidSeatSelection::Empty)
        );
        assert_eq!(
            SeatSelection::new((1..=5).map(seat).collect(), four()),
            Err(InvalidSeatSelection::TooMany { max: 4, asked: 5 })
        );
        assert_eq!(
            SeatSelection::new(vec![seat(3), seat(4), seat(3)], four()),
            Err(InvalidSeatSelection::Duplicate(seat(3)))
        );
    }

    #[test]
    fn a_selection_is_held_only_when_every_seat_exists_and_is_free() {
        let asked = selection(&[13, 12, 14]);

        assert_eq!(
            asked.judge(&[(seat(12), true), (seat(13), true), (seat(14), true)]),
            Ok(())
        );
        assert_eq!(
            asked.judge(&[(seat(12), false), (seat(13), true), (seat(14), false)]),
            Err(SeatRefusal::Unavailable(vec![seat(12), seat(14)])),
            "every taken seat is named, in the order asked"
        );
        assert_eq!(
            asked.judge(&[(seat(12), false), (seat(13), true)]),
            Err(SeatRefusal::NotFound(seat(14))),
            "a seat that does not exist is a 404 before any 409"
        );
    }

    #[test]
    fn reservations_come_back_in_the_order_the_seats_were_asked() {
        let asked = selection(&[13, 12]);
        let stored = vec![
            reservation_of(7, 12, ReservationStatus::Held),
            reservation_of(7, 13, ReservationStatus::Held),
        ];

        let seats: Vec<SeatNo> = asked
            .in_asked_order(stored)
            .into_iter()
            .map(|r| r.seat)
            .collect();

        assert_eq!(seats, vec![seat(13), seat(12)]);
    }

    #[tokio::test]
    async fn an_invalid_selection_never_reaches_the_store() {
        let mut inventory = MockSeatInventory::new();
        inventory.expect_hold().never();
        let service = service(inventory);

        for seats in [vec![], vec![1, 2, 3, 4, 5], vec![8, 8]] {
            let result = service
                .hold_seats(&token_for(None), order_of(7, &seats))
                .await;
            assert!(
                matches!(result, Err(HoldError::InvalidSelection(_))),
                "{seats:?}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn several_seats_are_asked_of_the_store_in_one_hold() {
        let mut inventory = MockSeatInventory::new();
        inventory
            .expect_hold()
            .withf(|request, _, _| request.seats == selection(&[13, 12]))
            .times(1)
            .returning(|_, _, _| {
                Ok(vec![
                    reservation_of(7, 13, ReservationStatus::Held),
                    reservation_of(7, 12, ReservationStatus::Held),
                ])
            });

        let held = service(inventory)
            .hold_seats(&token_for(Some(7)), order_of(7, &[13, 12]))
            .await
            .expect("held");

        assert_eq!(held.len(), 2);
    }

    #[test]
    fn a_user_may_hold_up_to_the_limit_per_performance_and_no_more() {
        let four = SeatLimit::new(4);

        assert!(four.admits(0, 4));
        assert!(four.admits(3, 1));
        assert!(
            !four.admits(3, 2),
            "a hold that would pass the limit is refused whole"
        );
        assert!(!four.admits(4, 1));
        assert!(!four.admits(u64::MAX, 1), "no overflow");
    }

    #[test]
    fn a_zero_limit_is_no_limit() {
        assert_eq!(SeatLimit::new(0), SeatLimit::unlimited());
        assert!(SeatLimit::new(0).admits(1_000_000, 4));
    }

    #[tokio::test]
    async fn the_store_refusing_past_the_limit_is_answered_as_is() {
        let mut inventory = MockSeatInventory::new();
        inventory.expect_hold().returning(|request, _, limit| {
            Err(HoldError::SeatLimitReached {
                user: request.user,
                performance: request.performance,
                limit: limit.get().map_or(0, NonZeroU32::get),
            })
        });

        let result = service(inventory)
            .hold_seats(&token_for(None), order_of(7, &[1, 2]))
            .await;

        assert_eq!(
            result.map_err(|e| e.to_string()),
            Err("user 7 may hold or own at most 4 seats of performance 119".to_string())
        );
    }

    #[test]
    fn a_refusal_names_one_seat_or_several() {
        let one = HoldError::SeatUnavailable {
            performance: PerformanceId::new(119).expect("valid"),
            seats: vec![seat(42)],
        };
        let several = HoldError::SeatUnavailable {
            performance: PerformanceId::new(119).expect("valid"),
            seats: vec![seat(12), seat(13)],
        };

        assert_eq!(
            one.to_string(),
            "seat 42 of performance 119 is held by someone else or sold"
        );
        assert_eq!(
            several.to_string(),
            "seats 12, 13 of performance 119 are held by someone else or sold"
        );
    }

    #[test]
    fn a_lapsed_hold_is_reported_expired_and_nothing_else_changes() {
        assert_eq!(
            ReservationStatus::Held.judged(true),
            ReservationStatus::Expired
        );
        assert_eq!(
            ReservationStatus::Held.judged(false),
            ReservationStatus::Held
        );
        assert_eq!(
            ReservationStatus::Confirmed.judged(true),
            ReservationStatus::Confirmed
        );
    }

    #[test]
    fn page_sizes_are_one_to_a_hundred() {
        assert!(PageSize::new(0).is_err());
        assert_eq!(PageSize::new(1).map(PageSize::get), Ok(1));
        assert_eq!(PageSize::new(100).map(PageSize::get), Ok(100));
        assert!(PageSize::new(101).is_err());
        assert!(PageSize::new(-1).is_err());
    }

    fn query(size: i64) -> ReservationQuery {
        ReservationQuery {
            user: UserId::new(7).expect("valid"),
            status: None,
            before: None,
            size: PageSize::new(size).expect("valid"),
        }
    }

    #[tokio::test]
    async fn a_page_asks_for_one_more_to_tell_whether_another_follows() {
        let mut inventory = MockSeatInventory::new();
        inventory
            .expect_list()
            .withf(|_, count| *count == 3)
            .returning(|_, _| {
                Ok(Some(
                    [30, 20, 10]
                        .iter()
                        .map(|seat| reservation_of(7, *seat, ReservationStatus::Confirmed))
                        .collect(),
                ))
            });

        let page = service(inventory)
            .reservations_of(None, query(2))
            .await
            .expect("listed");

        assert_eq!(page.reservations.len(), 2);
        assert_eq!(page.next_before, Some(page.reservations[1].id));
    }

    #[tokio::test]
    async fn the_last_page_has_no_next() {
        let mut inventory = MockSeatInventory::new();
        inventory
            .expect_list()
            .returning(|_, _| Ok(Some(vec![reservation_of(7, 1, ReservationStatus::Held)])));

        let page = service(inventory)
            .reservations_of(None, query(2))
            .await
            .expect("listed");

        assert_eq!((page.reservations.len(), page.next_before), (1, None));
    }

    #[tokio::test]
    async fn an_unknown_user_has_no_list() {
        let mut inventory = MockSeatInventory::new();
        inventory.expect_list().returning(|_, _| Ok(None));

        let result = service(inventory).reservations_of(None, query(50)).await;

        assert_eq!(
            result,
            Err(ListError::UserNotFound(UserId::new(7).expect("valid")))
        );
    }

    #[tokio::test]
    async fn with_bound_tokens_required_an_unbound_token_cannot_hold_read_or_cancel() {
        let mut inventory = MockSeatInventory::new();
        inventory.expect_hold().never();
        inventory.expect_cancel().never();
        inventory
            .expect_find()
            .returning(|_| Ok(Some(reservation(7, ReservationStatus::Held))));
        let service = requiring_bound_tokens(inventory);
        let unbound = token_for(None);

        assert_eq!(
            service.hold_seats(&unbound, request(7)).await,
            Err(HoldError::Access(AccessError::TokenUserMismatch))
        );
        assert_eq!(
            service.reservation(&unbound, id()).await,
            Err(ReservationError::Access(AccessError::TokenUserMismatch))
        );
        assert_eq!(
            service.cancel(&unbound, id()).await,
            Err(ReservationError::Access(AccessError::TokenUserMismatch))
        );
        assert!(service.reservation(&token_for(Some(7)), id()).await.is_ok());
    }

    #[tokio::test]
    async fn with_bound_tokens_required_a_list_needs_the_users_token() {
        let mut inventory = MockSeatInventory::new();
        inventory.expect_list().never();

        let result = requiring_bound_tokens(inventory)
            .reservations_of(None, query(50))
            .await;

        assert_eq!(result, Err(ListError::Owner(OwnerError::TokenMissing)));
    }

    #[test]
    fn statuses_round_trip_through_the_contract_spelling() {
        for status in [
            ReservationStatus::Held,
            ReservationStatus::Confirmed,
            ReservationStatus::Expired,
            ReservationStatus::Cancelled,
            ReservationStatus::Refunded,
        ] {
            assert_eq!(ReservationStatus::parse(status.as_str()), Some(status));
        }
    }
}
