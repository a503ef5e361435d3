//! What the in-memory adapters share, and every change to it: each method runs whole under the
//! store's one lock, so a hold, a payment or a refund is atomic across seats, reservations,
//! balances, recorded outcomes and events, as one PostgreSQL transaction is.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::catalog::{CatalogError, Concert, Performance, Seat, SeatStatus};
use crate::events::{Event, EventType};
use crate::idempotency::{IdempotencyConflict, IdempotentRequest};
use crate::ids::UserId;
use crate::ids::{ConcertId, EventId, InvalidId, PaymentId, PerformanceId, ReservationId, SeatNo};
use crate::money::{ChargeAmount, Won};
use crate::payment::PaymentRequest;
use crate::payment::{HoldToPay, LedgerAnswer, Payment, PaymentOutcome, PaymentRefusal};
use crate::refund::{RefundAnswer, RefundCandidate, RefundOutcome, RefundRequest};
use crate::reservation::{
    CancelOutcome, HoldError, HoldRequest, HoldTtl, Reservation, ReservationQuery,
    ReservationStatus, SeatLimit,
};
use crate::taken_seats::{Taken, TakenSeats};
use crate::wallet::WalletError;
use crate::InfrastructureError;

/// How long a relay's claim keeps other relays off its events (as PostgreSQL's outbox).
pub(super) const LEASE: Duration = Duration::from_secs(30);

/// A seat's stored state; a `Held` seat whose `until` has passed is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeatState {
    Available,
    Held {
        until: DateTime<Utc>,
        reservation: ReservationId,
    },
    Sold {
        reservation: ReservationId,
    },
}

#[derive(Debug, Clone)]
struct StoredSeat {
    grade: String,
    price: Won,
    state: SeatState,
}

#[derive(Debug, Clone)]
struct StoredPerformance {
    concert: ConcertId,
    starts_at: DateTime<Utc>,
    total_seats: u32,
}

/// A reservation as stored: its status is not yet judged by the clock.
#[derive(Debug, Clone)]
struct StoredReservation {
    user: UserId,
    performance: PerformanceId,
    seat: SeatNo,
    price: Won,
    status: ReservationStatus,
    expires_at: DateTime<Utc>,
}

/// Which port recorded an outcome: keys of a charge, a payment and a refund never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    Charge,
    Payment,
    Refund,
}

#[derive(Debug, Clone)]
enum Outcome {
    Charge(Won),
    Payment(PaymentOutcome),
    Refund(RefundOutcome),
}

#[derive(Debug, Clone)]
struct RecordedOutcome {
    fingerprint: String,
    outcome: Outcome,
    recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct OutboxEntry {
    event: Event,
    claim: Option<(u64, DateTime<Utc>)>,
    sent_at: Option<DateTime<Utc>>,
}

/// The events one relay step claimed, and the unsent ones it must not overtake.
pub(super) struct Claimed {
    pub claim: u64,
    pub events: Vec<Event>,
    pub unsent_elsewhere: Vec<Event>,
}

/// Everything the in-memory adapters store.
#[derive(Debug, Default)]
pub(super) struct State {
    concerts: BTreeMap<ConcertId, Concert>,
    performances: BTreeMap<PerformanceId, StoredPerformance>,
    seats: BTreeMap<PerformanceId, BTreeMap<SeatNo, StoredSeat>>,
    balances: BTreeMap<UserId, Won>,
    reservations: BTreeMap<ReservationId, StoredReservation>,
    payments: BTreeMap<PaymentId, Payment>,
    outcomes: HashMap<(Scope, String), RecordedOutcome>,
    events: BTreeMap<EventId, OutboxEntry>,
    last_reservation: i64,
    last_payment: i64,
    last_event: i64,
    last_claim: u64,
}

fn next<T>(
    last: &mut i64,
    make: fn(i64) -> Result<T, InvalidId>,
) -> Result<T, InfrastructureError> {
    *last = last
        .checked_add(1)
        .ok_or_else(|| InfrastructureError::unexpected("the in-memory store ran out of ids"))?;
    make(*last).map_err(InfrastructureError::unexpected)
}

fn after(instant: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|step| instant.checked_add_signed(step))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn before(instant: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|step| instant.checked_sub_signed(step))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl StoredReservation {
    /// Whether its hold has lapsed at `now` (the hold is live up to and including its expiry).
    fn lapsed(&self, now: DateTime<Utc>) -> bool {
        self.expires_at < now
    }

    fn judged(&self, id: ReservationId, concert: ConcertId, now: DateTime<Utc>) -> Reservation {
        Reservation {
            id,
            user: self.user,
            concert,
            performance: self.performance,
            seat: self.seat,
            price: self.price,
            status: self.status.judged(self.lapsed(now)),
            expires_at: self.expires_at,
        }
    }
}

impl SeatState {
    fn free(self, now: DateTime<Utc>) -> bool {
        match self {
            SeatState::Available => true,
            SeatState::Held { until, .. } => until < now,
            SeatState::Sold { .. } => false,
        }
    }
}

impl State {
    // --- seeding -------------------------------------------------------------------------

    pub(super) fn add_concert(&mut self, concert: Concert) {
        self.concerts.insert(concert.id, concert);
    }

    pub(super) fn add_performance(
        &mut self,
        concert: ConcertId,
        performance: PerformanceId,
        starts_at: DateTime<Utc>,
        seats: Vec<(SeatNo, String, Won)>,
    ) {
        let stored_seats = self.seats.entry(performance).or_default();
        for (no, grade, price) in seats {
            stored_seats.insert(
                no,
                StoredSeat {
                    grade,
                    price,
                    state: SeatState::Available,
                },
            );
        }
        let total_seats = stored_seats.len();
        self.performances.insert(
            performance,
            StoredPerformance {
                concert,
                starts_at,
                total_seats: u32::try_from(total_seats).unwrap_or(u32::MAX),
            },
        );
    }

    pub(super) fn add_user(&mut self, user: UserId) {
        self.balances.entry(user).or_insert(Won::ZERO);
    }

    pub(super) fn start_performance(&mut self, performance: PerformanceId, at: DateTime<Utc>) {
        if let Some(stored) = self.performances.get_mut(&performance) {
            stored.starts_at = at;
        }
    }

    fn record_event(
        &mut self,
        kind: EventType,
        now: DateTime<Utc>,
        fill: impl FnOnce(&mut Event),
    ) -> Result<(), InfrastructureError> {
        let id = next(&mut self.last_event, EventId::new)?;
        let mut event = Event {
            id,
            kind,
            occurred_at: now,
            reservation: None,
            user: None,
            performance: None,
            seat: None,
            amount: None,
            balance: None,
        };
        fill(&mut event);
        self.events.insert(
            id,
            OutboxEntry {
                event,
                claim: None,
                sent_at: None,
            },
        );
        Ok(())
    }

    fn reservation_event(
        &mut self,
        kind: EventType,
        id: ReservationId,
        now: DateTime<Utc>,
        amount: Option<Won>,
    ) -> Result<(), InfrastructureError> {
        let Some(stored) = self.reservations.get(&id).cloned() else {
            return Ok(());
        };
        self.record_event(kind, now, |event| {
            event.reservation = Some(id);
            event.user = Some(stored.user);
            event.performance = Some(stored.performance);
            event.seat = Some(stored.seat);
            event.amount = amount;
        })
    }

    fn seat(&self, performance: PerformanceId, no: SeatNo) -> Option<&StoredSeat> {
        self.seats.get(&performance)?.get(&no)
    }

    fn seat_mut(&mut self, performance: PerformanceId, no: SeatNo) -> Option<&mut StoredSeat> {
        self.seats.get_mut(&performance)?.get_mut(&no)
    }

    // --- catalog -------------------------------------------------------------------------

    fn performance_of(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
    ) -> Option<&StoredPerformance> {
        self.performances
            .get(&performance)
            .filter(|stored| stored.concert == concert)
    }

    fn seats_of(
        &self,
        performance: PerformanceId,
    ) -> impl Iterator<Item = (SeatNo, &StoredSeat)> + '_ {
        self.seats
            .get(&performance)
            .into_iter()
            .flat_map(|seats| seats.iter().map(|(no, seat)| (*no, seat)))
    }

    pub(super) fn concerts(&self) -> Vec<Concert> {
        self.concerts.values().cloned().collect()
    }

    pub(super) fn performances(
        &self,
        concert: ConcertId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Performance>, CatalogError> {
        if !self.concerts.contains_key(&concert) {
            return Err(CatalogError::ConcertNotFound(concert));
        }
        let mut listed: Vec<Performance> = self
            .performances
            .iter()
            .filter(|(_, stored)| stored.concert == concert)
            .map(|(id, stored)| Performance {
                id: *id,
                concert_id: concert,
                starts_at: stored.starts_at,
                total_seats: stored.total_seats,
                available_seats: u32::try_from(
                    self.seats_of(*id)
                        .filter(|(_, seat)| seat.state.free(now))
                        .count(),
                )
                .unwrap_or(u32::MAX),
            })
            .collect();
        listed.sort_by_key(|performance| (performance.starts_at, performance.id));
        Ok(listed)
    }

    pub(super) fn seats(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Seat>, CatalogError> {
        if self.performance_of(concert, performance).is_none() {
            return Err(CatalogError::PerformanceNotFound {
                concert,
                performance,
            });
        }
        Ok(self
            .seats_of(performance)
            .map(|(no, seat)| Seat {
                no,
                grade: seat.grade.clone(),
                price: seat.price,
                status: match seat.state {
                    state if state.free(now) => SeatStatus::Available,
                    SeatState::Sold { .. } => SeatStatus::Sold,
                    _ => SeatStatus::Held,
                },
            })
            .collect())
    }

    pub(super) fn taken_seats(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
        now: DateTime<Utc>,
    ) -> Result<TakenSeats, CatalogError> {
        if self.performance_of(concert, performance).is_none() {
            return Err(CatalogError::PerformanceNotFound {
                concert,
                performance,
            });
        }
        let taken = self
            .seats_of(performance)
            .filter_map(|(no, seat)| match seat.state {
                SeatState::Sold { .. } => Some((no, Taken::Sold)),
                SeatState::Held { until, .. } if until >= now => {
                    Some((no, Taken::HeldUntil(until)))
                }
                _ => None,
            });
        Ok(TakenSeats::new(now, taken))
    }

    // --- seat inventory ------------------------------------------------------------------

    pub(super) fn hold(
        &mut self,
        request: &HoldRequest,
        ttl: HoldTtl,
        limit: SeatLimit,
        now: DateTime<Utc>,
    ) -> Result<Vec<Reservation>, HoldError> {
        let found: Vec<(SeatNo, bool)> =
            match self.performance_of(request.concert, request.performance) {
                None => Vec::new(),
                Some(_) => request
                    .seats
                    .seats()
                    .iter()
                    .filter_map(|no| {
                        self.seat(request.performance, *no)
                            .map(|seat| (*no, seat.state.free(now)))
                    })
                    .collect(),
            };
        request
            .seats
            .judge(&found)
            .map_err(|refusal| request.refused(refusal))?;
        if !self.balances.contains_key(&request.user) {
            return Err(HoldError::UserNotFound(request.user));
        }
        let owned = self
            .reservations
            .values()
            .filter(|r| r.user == request.user && r.performance == request.performance)
            .filter(|r| {
                r.status == ReservationStatus::Confirmed
                    || (r.status == ReservationStatus::Held && !r.lapsed(now))
            })
            .count() as u64;
        if let Some(max) = limit.get() {
            if !limit.admits(owned, request.seats.len()) {
                return Err(HoldError::SeatLimitReached {
                    user: request.user,
                    performance: request.performance,
                    limit: max.get(),
                });
            }
        }
        let expires_at = after(now, ttl.get());
        let mut held = Vec::with_capacity(request.seats.len());
        for no in request.seats.seats() {
            let key = (request.performance, *no);
            let (price, previous) = match self.seat(key.0, key.1) {
                Some(seat) => (seat.price, seat.state),
                None => continue,
            };
            if let SeatState::Held { reservation, .. } = previous {
                self.expire(reservation, now)?;
            }
            let id = next(&mut self.last_reservation, ReservationId::new)?;
            self.reservations.insert(
                id,
                StoredReservation {
                    user: request.user,
                    performance: request.performance,
                    seat: *no,
                    price,
                    status: ReservationStatus::Held,
                    expires_at,
                },
            );
            if let Some(seat) = self.seat_mut(key.0, key.1) {
                seat.state = SeatState::Held {
                    until: expires_at,
                    reservation: id,
                };
            }
            self.reservation_event(EventType::ReservationHeld, id, now, Some(price))?;
            held.push(Reservation {
                id,
                user: request.user,
                concert: request.concert,
                performance: request.performance,
                seat: *no,
                price,
                status: ReservationStatus::Held,
                expires_at,
            });
        }
        Ok(held)
    }

    /// Marks a lapsed hold's reservation EXPIRED, with its event, once.
    fn expire(&mut self, id: ReservationId, now: DateTime<Utc>) -> Result<(), InfrastructureError> {
        let Some(stored) = self.reservations.get_mut(&id) else {
            return Ok(());
        };
        if stored.status != ReservationStatus::Held {
            return Ok(());
        }
        stored.status = ReservationStatus::Expired;
        self.reservation_event(EventType::ReservationExpired, id, now, None)
    }

    pub(super) fn find(&self, id: ReservationId, now: DateTime<Utc>) -> Option<Reservation> {
        let stored = self.reservations.get(&id)?;
        let concert = self.performances.get(&stored.performance)?.concert;
        Some(stored.judged(id, concert, now))
    }

    pub(super) fn cancel(
        &mut self,
        id: ReservationId,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, InfrastructureError> {
        let Some(stored) = self.reservations.get(&id).cloned() else {
            return Ok(CancelOutcome::NotFound);
        };
        let key = (stored.performance, stored.seat);
        let holds_seat = matches!(
            self.seat(key.0, key.1).map(|seat| seat.state),
            Some(SeatState::Held { until, reservation }) if reservation == id && until >= now
        );
        if stored.status == ReservationStatus::Held && holds_seat {
            if let Some(seat) = self.seat_mut(key.0, key.1) {
                seat.state = SeatState::Available;
            }
            if let Some(stored) = self.reservations.get_mut(&id) {
                stored.status = ReservationStatus::Cancelled;
            }
            self.reservation_event(EventType::ReservationCancelled, id, now, None)?;
            return Ok(CancelOutcome::Cancelled);
        }
        Ok(match stored.status {
            ReservationStatus::Confirmed => CancelOutcome::Confirmed,
            _ => CancelOutcome::AlreadyReleased,
        })
    }

    pub(super) fn list(
        &self,
        query: &ReservationQuery,
        count: u32,
        now: DateTime<Utc>,
    ) -> Option<Vec<Reservation>> {
        if !self.balances.contains_key(&query.user) {
            return None;
        }
        Some(
            self.reservations
                .iter()
                .rev()
                .filter(|(id, stored)| {
                    stored.user == query.user && query.before.is_none_or(|before| **id < before)
                })
                .filter_map(|(id, _)| self.find(*id, now))
                .filter(|reservation| {
                    query
                        .status
                        .is_none_or(|status| reservation.status == status)
                })
                .take(count as usize)
                .collect(),
        )
    }

    pub(super) fn release_expired(
        &mut self,
        batch: u32,
        now: DateTime<Utc>,
    ) -> Result<u64, InfrastructureError> {
        let mut lapsed: Vec<(DateTime<Utc>, (PerformanceId, SeatNo), ReservationId)> = self
            .seats
            .iter()
            .flat_map(|(performance, seats)| {
                seats.iter().filter_map(move |(no, seat)| match seat.state {
                    SeatState::Held { until, reservation } if until < now => {
                        Some((until, (*performance, *no), reservation))
                    }
                    _ => None,
                })
            })
            .collect();
        lapsed.sort();
        lapsed.truncate(batch as usize);
        for (_, key, reservation) in &lapsed {
            if let Some(seat) = self.seat_mut(key.0, key.1) {
                seat.state = SeatState::Available;
            }
            self.expire(*reservation, now)?;
        }
        Ok(lapsed.len() as u64)
    }

    // --- recorded outcomes ---------------------------------------------------------------

    /// The outcome recorded under the key for this very request, if any; another request under
    /// the key is a conflict.
    fn recorded(
        &self,
        scope: Scope,
        request: &IdempotentRequest,
    ) -> Result<Option<Outcome>, IdempotencyConflict> {
        match self
            .outcomes
            .get(&(scope, request.key.as_str().to_string()))
        {
            None => Ok(None),
            Some(recorded) if recorded.fingerprint == request.fingerprint => {
                Ok(Some(recorded.outcome.clone()))
            }
            Some(_) => Err(IdempotencyConflict::DifferentRequest),
        }
    }

    fn record(
        &mut self,
        scope: Scope,
        request: Option<&IdempotentRequest>,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) {
        if let Some(request) = request {
            self.outcomes.insert(
                (scope, request.key.as_str().to_string()),
                RecordedOutcome {
                    fingerprint: request.fingerprint.clone(),
                    outcome,
                    recorded_at: now,
                },
            );
        }
    }

    pub(super) fn forget_outcomes_older_than(&mut self, age: Duration, now: DateTime<Utc>) -> u64 {
        let cutoff = before(now, age);
        let before_count = self.outcomes.len();
        self.outcomes
            .retain(|_, recorded| recorded.recorded_at >= cutoff);
        (before_count - self.outcomes.len()) as u64
    }

    // --- wallet --------------------------------------------------------------------------

    pub(super) fn balance(&self, user: UserId) -> Result<Won, WalletError> {
        self.balances
            .get(&user)
            .copied()
            .ok_or(WalletError::UserNotFound(user))
    }

    pub(super) fn charge(
        &mut self,
        user: UserId,
        amount: ChargeAmount,
        idempotency: Option<&IdempotentRequest>,
        now: DateTime<Utc>,
    ) -> Result<Won, WalletError> {
        if let Some(request) = idempotency {
            match self.recorded(Scope::Charge, request)? {
                Some(Outcome::Charge(balance)) => return Ok(balance),
                Some(_) => {
                    return Err(InfrastructureError::unexpected(
                        "a charge's key holds another port's outcome",
                    )
                    .into())
                }
                None => {}
            }
        }
        let balance = self.credit(user, amount.won())?;
        self.record_event(EventType::BalanceCharged, now, |event| {
            event.user = Some(user);
            event.amount = Some(amount.won());
            event.balance = Some(balance);
        })?;
        self.record(Scope::Charge, idempotency, Outcome::Charge(balance), now);
        Ok(balance)
    }

    fn credit(&mut self, user: UserId, amount: Won) -> Result<Won, WalletError> {
        let stored = self
            .balances
            .get_mut(&user)
            .ok_or(WalletError::UserNotFound(user))?;
        let sum = stored
            .get()
            .checked_add(amount.get())
            .and_then(|sum| Won::new(sum).ok())
            .ok_or_else(|| InfrastructureError::unexpected("a balance overflowed"))?;
        *stored = sum;
        Ok(sum)
    }

    // --- payments ------------------------------------------------------------------------

    pub(super) fn pay(
        &mut self,
        request: &PaymentRequest,
        idempotency: Option<&IdempotentRequest>,
        now: DateTime<Utc>,
    ) -> Result<LedgerAnswer, crate::payment::LedgerError> {
        if let Some(keyed) = idempotency {
            match self.recorded(Scope::Payment, keyed)? {
                Some(Outcome::Payment(outcome)) => {
                    return Ok(LedgerAnswer {
                        outcome,
                        replayed: true,
                    })
                }
                Some(_) => {
                    return Err(InfrastructureError::unexpected(
                        "a payment's key holds another port's outcome",
                    )
                    .into())
                }
                None => {}
            }
        }
        let outcome = self.attempt_payment(request, now)?;
        self.record(
            Scope::Payment,
            idempotency,
            Outcome::Payment(outcome.clone()),
            now,
        );
        Ok(LedgerAnswer {
            outcome,
            replayed: false,
        })
    }

    fn attempt_payment(
        &mut self,
        request: &PaymentRequest,
        now: DateTime<Utc>,
    ) -> Result<PaymentOutcome, InfrastructureError> {
        let found: Vec<HoldToPay> = request
            .reservations
            .ids()
            .iter()
            .filter_map(|id| {
                let stored = self.reservations.get(id)?;
                let seat_held = matches!(
                    self.seat(stored.performance, stored.seat).map(|seat| seat.state),
                    Some(SeatState::Held { until, reservation }) if reservation == *id && until >= now
                );
                Some(HoldToPay {
                    reservation: *id,
                    user: stored.user,
                    price: stored.price,
                    payable: stored.status == ReservationStatus::Held
                        && !stored.lapsed(now)
                        && seat_held,
                })
            })
            .collect();
        let total = match request.judge(&found) {
            Ok(total) => total,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let covered = self
            .balances
            .get(&request.user)
            .is_some_and(|balance| *balance >= total);
        if !covered {
            return Ok(Err(PaymentRefusal::InsufficientBalance { price: total }));
        }
        let mut balance = Won::ZERO;
        if let Some(stored) = self.balances.get_mut(&request.user) {
            *stored = Won::new(stored.get() - total.get())
                .map_err(|_| InfrastructureError::unexpected("a balance went negative"))?;
            balance = *stored;
        }
        let only = match request.reservations.ids() {
            [one] => Some(*one),
            _ => None,
        };
        self.record_event(EventType::BalanceDebited, now, |event| {
            event.user = Some(request.user);
            event.amount = Some(total);
            event.balance = Some(balance);
            event.reservation = only;
        })?;
        let mut paid: Vec<ReservationId> = request.reservations.ids().to_vec();
        paid.sort();
        for id in &paid {
            let Some(stored) = self.reservations.get_mut(id) else {
                continue;
            };
            stored.status = ReservationStatus::Confirmed;
            let (key, price) = ((stored.performance, stored.seat), stored.price);
            if let Some(seat) = self.seat_mut(key.0, key.1) {
                seat.state = SeatState::Sold { reservation: *id };
            }
            self.reservation_event(EventType::ReservationConfirmed, *id, now, Some(price))?;
        }
        let payment = Payment {
            id: next(&mut self.last_payment, PaymentId::new)?,
            reservation: request.reservations.first_id(),
            reservations: request.reservations.ids().to_vec(),
            user: request.user,
            amount: total,
            paid_at: now,
        };
        self.payments.insert(payment.id, payment.clone());
        Ok(Ok(payment))
    }

    pub(super) fn recorded_payment(
        &self,
        idempotency: &IdempotentRequest,
    ) -> Result<Option<PaymentOutcome>, crate::payment::LedgerError> {
        match self.recorded(Scope::Payment, idempotency)? {
            None => Ok(None),
            Some(Outcome::Payment(outcome)) => Ok(Some(outcome)),
            Some(_) => Err(InfrastructureError::unexpected(
                "a payment's key holds another port's outcome",
            )
            .into()),
        }
    }

    // --- refunds -------------------------------------------------------------------------

    pub(super) fn refund(
        &mut self,
        request: &RefundRequest,
        idempotency: Option<&IdempotentRequest>,
        now: DateTime<Utc>,
    ) -> Result<RefundAnswer, crate::payment::LedgerError> {
        if let Some(keyed) = idempotency {
            match self.recorded(Scope::Refund, keyed)? {
                Some(Outcome::Refund(outcome)) => {
                    return Ok(RefundAnswer {
                        outcome,
                        replayed: true,
                    })
                }
                Some(_) => {
                    return Err(InfrastructureError::unexpected(
                        "a refund's key holds another port's outcome",
                    )
                    .into())
                }
                None => {}
            }
        }
        let outcome = self.attempt_refund(request, now)?;
        self.record(
            Scope::Refund,
            idempotency,
            Outcome::Refund(outcome.clone()),
            now,
        );
        Ok(RefundAnswer {
            outcome,
            replayed: false,
        })
    }

    fn attempt_refund(
        &mut self,
        request: &RefundRequest,
        now: DateTime<Utc>,
    ) -> Result<RefundOutcome, InfrastructureError> {
        let id = request.reservation;
        let candidate = self.reservations.get(&id).and_then(|stored| {
            let performance = self.performances.get(&stored.performance)?;
            Some(RefundCandidate {
                reservation: Reservation {
                    id,
                    user: stored.user,
                    concert: performance.concert,
                    performance: stored.performance,
                    seat: stored.seat,
                    price: stored.price,
                    status: stored.status,
                    expires_at: stored.expires_at,
                },
                performance_starts_at: performance.starts_at,
                now,
            })
        });
        let price = match request.judge(candidate.as_ref()) {
            Ok(price) => price,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let Some(candidate) = candidate else {
            return Err(InfrastructureError::unexpected(
                "a refund was judged without its reservation",
            ));
        };
        let reservation = candidate.reservation;
        let key = (reservation.performance, reservation.seat);
        if let Some(seat) = self.seat_mut(key.0, key.1) {
            if seat.state == (SeatState::Sold { reservation: id }) {
                seat.state = SeatState::Available;
            }
        }
        if let Some(stored) = self.reservations.get_mut(&id) {
            stored.status = ReservationStatus::Refunded;
        }
        self.reservation_event(EventType::ReservationRefunded, id, now, Some(price))?;
        let balance = self
            .credit(reservation.user, price)
            .map_err(|error| match error {
                WalletError::Infrastructure(cause) => cause,
                other => InfrastructureError::unexpected(other.to_string()),
            })?;
        self.record_event(EventType::BalanceRefunded, now, |event| {
            event.reservation = Some(id);
            event.user = Some(reservation.user);
            event.amount = Some(price);
            event.balance = Some(balance);
        })?;
        Ok(Ok(Reservation {
            status: ReservationStatus::Refunded,
            ..reservation
        }))
    }

    // --- outbox --------------------------------------------------------------------------

    /// Claims up to `batch` unsent events nobody holds, oldest first, for [`LEASE`].
    pub(super) fn claim(&mut self, batch: u32, now: DateTime<Utc>) -> Claimed {
        self.last_claim += 1;
        let claim = self.last_claim;
        let until = after(now, LEASE);
        let mut events = Vec::new();
        for entry in self.events.values_mut() {
            if events.len() >= batch as usize {
                break;
            }
            let free = entry.sent_at.is_none()
                && entry
                    .claim
                    .is_none_or(|(_, claimed_until)| claimed_until < now);
            if free {
                entry.claim = Some((claim, until));
                events.push(entry.event.clone());
            }
        }
        let newest = events.iter().map(|event| event.id).max();
        let unsent_elsewhere = match newest {
            None => Vec::new(),
            Some(newest) => self
                .events
                .values()
                .filter(|entry| entry.sent_at.is_none() && entry.event.id < newest)
                .filter(|entry| entry.claim.is_none_or(|(other, _)| other != claim))
                .filter(|entry| {
                    events.iter().any(|claimed| {
                        (claimed.reservation.is_some()
                            && claimed.reservation == entry.event.reservation)
                            || (claimed.user.is_some() && claimed.user == entry.event.user)
                    })
                })
                .map(|entry| entry.event.clone())
                .collect(),
        };
        Claimed {
            claim,
            events,
            unsent_elsewhere,
        }
    }

    /// Marks `sent` sent and gives the rest of the claim back, unsent.
    pub(super) fn settle(&mut self, claim: u64, sent: &[EventId], now: DateTime<Utc>) {
        for entry in self.events.values_mut() {
            let ours = entry.claim.is_some_and(|(holder, _)| holder == claim);
            if sent.contains(&entry.event.id) {
                entry.sent_at = Some(now);
                entry.claim = None;
            } else if ours && entry.sent_at.is_none() {
                entry.claim = None;
            }
        }
    }

    pub(super) fn forget_sent_older_than(&mut self, age: Duration, now: DateTime<Utc>) -> u64 {
        let cutoff = before(now, age);
        let before_count = self.events.len();
        self.events
            .retain(|_, entry| entry.sent_at.is_none_or(|sent_at| sent_at >= cutoff));
        (before_count - self.events.len()) as u64
    }

    // --- observation (for embedders' assertions) -----------------------------------------

    pub(super) fn payments(&self) -> Vec<Payment> {
        self.payments.values().cloned().collect()
    }

    pub(super) fn unsent_events(&self) -> Vec<Event> {
        self.events
            .values()
            .filter(|entry| entry.sent_at.is_none())
            .map(|entry| entry.event.clone())
            .collect()
    }
}
