//! In-memory adapters of the store's ports: the catalog, the seats and their holds, the
//! balances, payments, refunds, recorded outcomes and the outbox of events, all in one
//! [`InMemoryStore`]; an [`InMemoryEventStream`] to publish events to; an
//! [`InMemorySeatMemory`]; and a [`ManualClock`] that is the store's clock.
//!
//! The store keeps every rule the port documents, as the PostgreSQL adapters do: expiry is judged
//! by the store's clock (move it with [`ManualClock::advance`] instead of sleeping), a hold of
//! several seats is all or nothing, a payment or a refund changes seats, reservations, the
//! balance, the recorded outcome and the outbox at once under one lock, and every change writes
//! its event in that same step. They pass [`crate::testing::store_contract`].
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use ticketing_domain::catalog::Concert;
//! use ticketing_domain::ids::{ConcertId, PerformanceId, SeatNo, UserId};
//! use ticketing_domain::money::Won;
//! use ticketing_domain::testing::store::{InMemoryStore, ManualClock};
//!
//! let clock = ManualClock::starting_now();
//! let store = InMemoryStore::new(clock.clone());
//! let concert = ConcertId::new(1).unwrap();
//! store.add_concert(Concert {
//!     id: concert,
//!     title: "Golden Hour".into(),
//!     artist: "IU".into(),
//!     venue: "KSPO Dome".into(),
//! });
//! store.add_performance(
//!     concert,
//!     PerformanceId::new(119).unwrap(),
//!     std::time::Duration::from_secs(86_400),
//!     (1..=10).map(|n| (SeatNo::new(n).unwrap(), "R".to_string(), Won::new(150_000).unwrap())),
//! );
//! store.add_user(UserId::new(7).unwrap());
//! let catalog = store.catalog();
//! assert_eq!(catalog.concerts().await.unwrap().len(), 1);
//! # });
//! ```

mod clock;
mod state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::catalog::{CatalogError, Concert, ConcertCatalog, Performance, Seat};
use crate::clock::Clock;
use crate::events::{publishable, Event, EventOutbox, EventPublisher, RelayReport};
use crate::idempotency::{IdempotentRequest, OutcomeRetention};
use crate::ids::{ConcertId, EventId, PerformanceId, ReservationId, SeatNo, UserId};
use crate::money::{ChargeAmount, Won};
use crate::payment::PaymentRequest;
use crate::payment::{LedgerAnswer, LedgerError, Payment, PaymentLedger, PaymentOutcome};
use crate::refund::{RefundAnswer, RefundLedger, RefundRequest};
use crate::reservation::{
    CancelOutcome, HoldError, HoldRequest, HoldTtl, Reservation, ReservationQuery, SeatInventory,
    SeatLimit,
};
use crate::taken_seats::{Recollection, SeatMemory, TakenSeats};
use crate::wallet::{Wallet, WalletError};
use crate::InfrastructureError;

pub use clock::ManualClock;
use state::State;

/// The store's ports in memory, over one shared state: clones share it. Implements
/// [`ConcertCatalog`], [`SeatInventory`], [`Wallet`], [`PaymentLedger`], [`RefundLedger`],
/// [`OutcomeRetention`] and [`EventOutbox`]; the accessors hand each out as its port.
#[derive(Clone)]
pub struct InMemoryStore {
    state: Arc<Mutex<State>>,
    clock: ManualClock,
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("now", &self.clock.now())
            .finish_non_exhaustive()
    }
}

impl InMemoryStore {
    /// An empty store whose clock is `clock`: every expiry and every recorded time is read from
    /// it.
    pub fn new(clock: ManualClock) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::default())),
            clock,
        }
    }

    /// The store's clock.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// Runs `change` under the store's lock, with the store's time: one atomic step. A panic in
    /// another step does not lose the data (test support: the next step sees what it left).
    fn with_state<T>(&self, change: impl FnOnce(&mut State, DateTime<Utc>) -> T) -> T {
        let now = self.clock.now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut state, now)
    }

    /// Adds (or replaces) a concert.
    pub fn add_concert(&self, concert: Concert) {
        self.with_state(|state, _| state.add_concert(concert));
    }

    /// Adds a performance of `concert` starting `starts_in` from the store's now, with its seats
    /// (number, grade, price), all free.
    pub fn add_performance(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
        starts_in: Duration,
        seats: impl IntoIterator<Item = (SeatNo, String, Won)>,
    ) {
        let seats: Vec<(SeatNo, String, Won)> = seats.into_iter().collect();
        self.with_state(|state, now| {
            let starts_at = chrono::Duration::from_std(starts_in)
                .ok()
                .and_then(|step| now.checked_add_signed(step))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            state.add_performance(concert, performance, starts_at, seats);
        });
    }

    /// Moves the start of `performance` to the store's now: from now on its seats cannot be
    /// refunded.
    pub fn start_performance(&self, performance: PerformanceId) {
        self.with_state(|state, now| state.start_performance(performance, now));
    }

    /// Adds a user with an empty balance (an existing one is left as it is).
    pub fn add_user(&self, user: UserId) {
        self.with_state(|state, _| state.add_user(user));
    }

    /// Every payment recorded, by id.
    pub fn payments(&self) -> Vec<Payment> {
        self.with_state(|state, _| state.payments())
    }

    /// The events recorded and not yet published, oldest first.
    pub fn unsent_events(&self) -> Vec<Event> {
        self.with_state(|state, _| state.unsent_events())
    }

    /// This store as a [`ConcertCatalog`].
    pub fn catalog(&self) -> Arc<dyn ConcertCatalog> {
        Arc::new(self.clone())
    }

    /// This store as a [`SeatInventory`].
    pub fn inventory(&self) -> Arc<dyn SeatInventory> {
        Arc::new(self.clone())
    }

    /// This store as a [`Wallet`].
    pub fn wallet(&self) -> Arc<dyn Wallet> {
        Arc::new(self.clone())
    }

    /// This store as a [`PaymentLedger`].
    pub fn payment_ledger(&self) -> Arc<dyn PaymentLedger> {
        Arc::new(self.clone())
    }

    /// This store as a [`RefundLedger`].
    pub fn refund_ledger(&self) -> Arc<dyn RefundLedger> {
        Arc::new(self.clone())
    }

    /// This store as an [`OutcomeRetention`].
    pub fn retention(&self) -> Arc<dyn OutcomeRetention> {
        Arc::new(self.clone())
    }

    /// This store as an [`EventOutbox`].
    pub fn outbox(&self) -> Arc<dyn EventOutbox> {
        Arc::new(self.clone())
    }

    /// A [`SeatMemory`] that reads this store's taken seats afresh on every recall.
    pub fn seat_memory(&self) -> Arc<dyn SeatMemory> {
        Arc::new(InMemorySeatMemory {
            store: self.clone(),
        })
    }
}

#[async_trait]
impl ConcertCatalog for InMemoryStore {
    async fn concerts(&self) -> Result<Vec<Concert>, CatalogError> {
        Ok(self.with_state(|state, _| state.concerts()))
    }

    async fn performances(&self, concert: ConcertId) -> Result<Vec<Performance>, CatalogError> {
        self.with_state(|state, now| state.performances(concert, now))
    }

    async fn seats(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
    ) -> Result<Vec<Seat>, CatalogError> {
        self.with_state(|state, now| state.seats(concert, performance, now))
    }

    async fn taken_seats(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
    ) -> Result<TakenSeats, CatalogError> {
        self.with_state(|state, now| state.taken_seats(concert, performance, now))
    }
}

#[async_trait]
impl SeatInventory for InMemoryStore {
    async fn hold(
        &self,
        request: HoldRequest,
        ttl: HoldTtl,
        limit: SeatLimit,
    ) -> Result<Vec<Reservation>, HoldError> {
        self.with_state(|state, now| state.hold(&request, ttl, limit, now))
    }

    async fn find(&self, id: ReservationId) -> Result<Option<Reservation>, InfrastructureError> {
        Ok(self.with_state(|state, now| state.find(id, now)))
    }

    async fn cancel(&self, id: ReservationId) -> Result<CancelOutcome, InfrastructureError> {
        self.with_state(|state, now| state.cancel(id, now))
    }

    async fn list(
        &self,
        query: ReservationQuery,
        count: u32,
    ) -> Result<Option<Vec<Reservation>>, InfrastructureError> {
        Ok(self.with_state(|state, now| state.list(&query, count, now)))
    }

    async fn release_expired(&self, batch: u32) -> Result<u64, InfrastructureError> {
        self.with_state(|state, now| state.release_expired(batch, now))
    }
}

#[async_trait]
impl Wallet for InMemoryStore {
    async fn balance(&self, user: UserId) -> Result<Won, WalletError> {
        self.with_state(|state, _| state.balance(user))
    }

    async fn charge(
        &self,
        user: UserId,
        amount: ChargeAmount,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<Won, WalletError> {
        self.with_state(|state, now| state.charge(user, amount, idempotency.as_ref(), now))
    }
}

#[async_trait]
impl PaymentLedger for InMemoryStore {
    async fn pay(
        &self,
        request: PaymentRequest,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<LedgerAnswer, LedgerError> {
        self.with_state(|state, now| state.pay(&request, idempotency.as_ref(), now))
    }

    async fn recorded(
        &self,
        idempotency: IdempotentRequest,
    ) -> Result<Option<PaymentOutcome>, LedgerError> {
        self.with_state(|state, _| state.recorded_payment(&idempotency))
    }
}

#[async_trait]
impl RefundLedger for InMemoryStore {
    async fn refund(
        &self,
        request: RefundRequest,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<RefundAnswer, LedgerError> {
        self.with_state(|state, now| state.refund(&request, idempotency.as_ref(), now))
    }
}

#[async_trait]
impl OutcomeRetention for InMemoryStore {
    async fn forget_older_than(&self, age: Duration) -> Result<u64, InfrastructureError> {
        Ok(self.with_state(|state, now| state.forget_outcomes_older_than(age, now)))
    }
}

#[async_trait]
impl EventOutbox for InMemoryStore {
    async fn relay(
        &self,
        batch: u32,
        publisher: Arc<dyn EventPublisher>,
    ) -> Result<RelayReport, InfrastructureError> {
        let claimed = self.with_state(|state, now| state.claim(batch, now));
        let claimed_count = claimed.events.len();
        let ready = publishable(claimed.events, &claimed.unsent_elsewhere);
        // The lock is not held while the publisher runs, as no transaction is in PostgreSQL.
        if !ready.is_empty() {
            if let Err(error) = publisher.publish(&ready).await {
                self.with_state(|state, now| state.settle(claimed.claim, &[], now));
                return Err(error);
            }
        }
        let sent: Vec<EventId> = ready.iter().map(|event| event.id).collect();
        self.with_state(|state, now| state.settle(claimed.claim, &sent, now));
        Ok(RelayReport {
            claimed: claimed_count,
            published: ready.len(),
        })
    }

    async fn forget_sent_older_than(&self, age: Duration) -> Result<u64, InfrastructureError> {
        Ok(self.with_state(|state, now| state.forget_sent_older_than(age, now)))
    }
}

/// An [`EventPublisher`] that keeps what it is given, in order; it can be made unavailable, to
/// see what a relay does when the stream is away. Clones share the stream.
#[derive(Debug, Clone, Default)]
pub struct InMemoryEventStream {
    published: Arc<Mutex<Vec<Event>>>,
    unavailable: Arc<AtomicBool>,
}

impl InMemoryEventStream {
    /// An empty, available stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event appended so far, in order (an event published twice appears twice).
    pub fn published(&self) -> Vec<Event> {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// From now on, whether [`EventPublisher::publish`] fails with
    /// [`InfrastructureError::Unavailable`] (appending nothing).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }
}

#[async_trait]
impl EventPublisher for InMemoryEventStream {
    async fn publish(&self, events: &[Event]) -> Result<(), InfrastructureError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(InfrastructureError::unavailable(
                "the in-memory event stream is set unavailable",
            ));
        }
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(events);
        Ok(())
    }
}

/// A [`SeatMemory`] that reads the store's taken seats on every recall: never stale, so a hold
/// it refuses is always taken at that instant.
#[derive(Debug, Clone)]
pub struct InMemorySeatMemory {
    store: InMemoryStore,
}

#[async_trait]
impl SeatMemory for InMemorySeatMemory {
    async fn recall(&self, concert: ConcertId, performance: PerformanceId) -> Option<Recollection> {
        let seats = self
            .store
            .with_state(|state, now| state.taken_seats(concert, performance, now))
            .ok()?;
        Some(Recollection {
            seats: Arc::new(seats),
            age: Duration::ZERO,
        })
    }
}

#[cfg(test)]
mod tests;
