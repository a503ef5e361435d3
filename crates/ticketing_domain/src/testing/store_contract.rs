//! The contract of the store's ports: what every adapter of [`ConcertCatalog`],
//! [`SeatInventory`], [`Wallet`], [`PaymentLedger`], [`RefundLedger`], [`OutcomeRetention`],
//! [`EventOutbox`], [`EventPublisher`], [`SeatMemory`] and [`Clock`] must do, as their docs say,
//! checked through the ports alone.
//!
//! An adapter crate implements [`StoreFixture`] (its adapters on a store of their own, a way to
//! seed a catalog and users, and a way to move the store's time) and runs one function per port,
//! each on a fresh fixture, so that a broken rule names itself:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use ticketing_domain::testing::store::{InMemoryStore, ManualClock};
//! use ticketing_domain::testing::store_contract;
//!
//! store_contract::seat_inventory_contract(&InMemoryStore::new(ManualClock::starting_now())).await;
//! // or every port, each on a store of its own:
//! store_contract::run_all(|| async { InMemoryStore::new(ManualClock::starting_now()) }).await;
//! # });
//! ```
//!
//! Every function panics, with the rule that was broken, on the first failure.

// Test support: a broken rule is a failed test, so panicking with the rule's name is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::catalog::{CatalogError, Concert, ConcertCatalog, SeatStatus};
use crate::clock::Clock;
use crate::events::{Event, EventOutbox, EventPublisher, EventType, RelayReport};
use crate::idempotency::{
    IdempotencyConflict, IdempotencyKey, IdempotentRequest, OutcomeRetention,
};
use crate::ids::{ConcertId, EventId, PerformanceId, ReservationId, SeatNo, UserId};
use crate::money::{ChargeAmount, Won};
use crate::payment::{
    LedgerAnswer, LedgerError, PaymentForm, PaymentLedger, PaymentOutcome, PaymentRefusal,
    PaymentRequest, ReservationSelection,
};
use crate::refund::{RefundAnswer, RefundLedger, RefundOutcome, RefundRefusal, RefundRequest};
use crate::reservation::{
    CancelOutcome, HoldError, HoldRequest, HoldTtl, PageSize, Reservation, ReservationQuery,
    ReservationStatus, SeatInventory, SeatLimit, SeatSelection, SeatsPerHold,
};
use crate::taken_seats::SeatMemory;
use crate::testing::store::{InMemoryEventStream, InMemoryStore};
use crate::wallet::{ChargeRequest, Wallet, WalletError};

/// A seat to seed: its number, grade and price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatSpec {
    /// The seat's number in its performance.
    pub no: SeatNo,
    /// Its price class.
    pub grade: String,
    /// Its price.
    pub price: Won,
}

/// A store of its own with the adapters under test, as the contract needs it: the ports, a way
/// to seed what the ports only read (concerts, performances, seats, users), and a way to move
/// the store's clock.
#[async_trait]
pub trait StoreFixture: Send + Sync {
    /// The catalog adapter.
    fn catalog(&self) -> Arc<dyn ConcertCatalog>;
    /// The seat inventory adapter.
    fn inventory(&self) -> Arc<dyn SeatInventory>;
    /// The wallet adapter.
    fn wallet(&self) -> Arc<dyn Wallet>;
    /// The payment ledger adapter.
    fn payment_ledger(&self) -> Arc<dyn PaymentLedger>;
    /// The refund ledger adapter.
    fn refund_ledger(&self) -> Arc<dyn RefundLedger>;
    /// The retention of recorded outcomes.
    fn retention(&self) -> Arc<dyn OutcomeRetention>;
    /// The event outbox adapter.
    fn outbox(&self) -> Arc<dyn EventOutbox>;

    /// Stores a concert.
    async fn seed_concert(&self, concert: &Concert);
    /// Stores a performance of `concert` starting `starts_in` after the store's now, with
    /// `seats`, all free.
    async fn seed_performance(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
        starts_in: Duration,
        seats: &[SeatSpec],
    );
    /// Stores a user with an empty balance.
    async fn seed_user(&self, user: UserId);
    /// Moves the store's clock `by` forward: holds lapse, performances start, recorded outcomes
    /// and sent events age, as they would had that time passed. (A database adapter may move
    /// every stored instant back instead.)
    async fn advance(&self, by: Duration);
}

#[async_trait]
impl StoreFixture for InMemoryStore {
    fn catalog(&self) -> Arc<dyn ConcertCatalog> {
        InMemoryStore::catalog(self)
    }
    fn inventory(&self) -> Arc<dyn SeatInventory> {
        InMemoryStore::inventory(self)
    }
    fn wallet(&self) -> Arc<dyn Wallet> {
        InMemoryStore::wallet(self)
    }
    fn payment_ledger(&self) -> Arc<dyn PaymentLedger> {
        InMemoryStore::payment_ledger(self)
    }
    fn refund_ledger(&self) -> Arc<dyn RefundLedger> {
        InMemoryStore::refund_ledger(self)
    }
    fn retention(&self) -> Arc<dyn OutcomeRetention> {
        InMemoryStore::retention(self)
    }
    fn outbox(&self) -> Arc<dyn EventOutbox> {
        InMemoryStore::outbox(self)
    }
    async fn seed_concert(&self, concert: &Concert) {
        self.add_concert(concert.clone());
    }
    async fn seed_performance(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
        starts_in: Duration,
        seats: &[SeatSpec],
    ) {
        self.add_performance(
            concert,
            performance,
            starts_in,
            seats
                .iter()
                .map(|seat| (seat.no, seat.grade.clone(), seat.price)),
        );
    }
    async fn seed_user(&self, user: UserId) {
        self.add_user(user);
    }
    async fn advance(&self, by: Duration) {
        self.clock().advance(by);
    }
}

/// Where an [`EventPublisher`] under test appended: its entries, oldest first, each as the
/// fields of [`Event::fields`].
#[async_trait]
pub trait PublishedStream: Send + Sync {
    /// Every entry appended so far, oldest first, as (name, value) pairs.
    async fn entries(&self) -> Vec<Vec<(String, String)>>;
}

#[async_trait]
impl PublishedStream for InMemoryEventStream {
    async fn entries(&self) -> Vec<Vec<(String, String)>> {
        self.published().iter().map(owned_fields).collect()
    }
}

/// Runs every port's contract, each on a fresh fixture made by `fresh`.
pub async fn run_all<F, Fut>(fresh: impl Fn() -> Fut)
where
    F: StoreFixture,
    Fut: Future<Output = F>,
{
    concert_catalog_contract(&fresh().await).await;
    seat_inventory_contract(&fresh().await).await;
    wallet_contract(&fresh().await).await;
    payment_ledger_contract(&fresh().await).await;
    refund_ledger_contract(&fresh().await).await;
    outcome_retention_contract(&fresh().await).await;
    event_outbox_contract(&fresh().await).await;
}

// --- vocabulary ------------------------------------------------------------------------------

const HOLD: Duration = Duration::from_secs(60);
/// Past every hold taken for [`HOLD`].
const LAPSE: Duration = Duration::from_secs(61);
const DAY: Duration = Duration::from_secs(86_400);
/// Leeway between two readings of the store's clock in one check (a database round trip).
const LEEWAY: chrono::Duration = chrono::Duration::seconds(30);

fn concert_id(n: i64) -> ConcertId {
    ConcertId::new(n).unwrap()
}
fn performance_id(n: i64) -> PerformanceId {
    PerformanceId::new(n).unwrap()
}
fn seat_no(n: i64) -> SeatNo {
    SeatNo::new(n).unwrap()
}
fn user_id(n: i64) -> UserId {
    UserId::new(n).unwrap()
}
fn reservation_id(n: i64) -> ReservationId {
    ReservationId::new(n).unwrap()
}
fn won(n: i64) -> Won {
    Won::new(n).unwrap()
}
fn ttl(duration: Duration) -> HoldTtl {
    HoldTtl::new(duration).unwrap()
}
fn key(value: &str) -> IdempotencyKey {
    IdempotencyKey::parse(value).unwrap()
}

fn concert(n: i64) -> Concert {
    Concert {
        id: concert_id(n),
        title: format!("Concert {n}"),
        artist: format!("Artist {n}"),
        venue: format!("Venue {n}"),
    }
}

fn seat_specs(seats: std::ops::RangeInclusive<i64>, grade: &str, price: i64) -> Vec<SeatSpec> {
    seats
        .map(|n| SeatSpec {
            no: seat_no(n),
            grade: grade.to_string(),
            price: won(price),
        })
        .collect()
}

async fn seed_users(fixture: &impl StoreFixture, users: std::ops::RangeInclusive<i64>) {
    for n in users {
        fixture.seed_user(user_id(n)).await;
    }
}

fn hold_request(user: i64, concert: i64, performance: i64, seats: &[i64]) -> HoldRequest {
    HoldRequest {
        user: user_id(user),
        concert: concert_id(concert),
        performance: performance_id(performance),
        seats: SeatSelection::new(
            seats.iter().map(|n| seat_no(*n)).collect(),
            SeatsPerHold::new(NonZeroU32::new(20).unwrap()),
        )
        .unwrap(),
    }
}

/// Holds, expecting success.
async fn hold(
    fixture: &impl StoreFixture,
    user: i64,
    concert: i64,
    performance: i64,
    seats: &[i64],
) -> Vec<Reservation> {
    fixture
        .inventory()
        .hold(
            hold_request(user, concert, performance, seats),
            ttl(HOLD),
            SeatLimit::unlimited(),
        )
        .await
        .unwrap_or_else(|e| panic!("holding seats {seats:?} for user {user}: {e:?}"))
}

async fn hold_one(
    fixture: &impl StoreFixture,
    user: i64,
    concert: i64,
    performance: i64,
    seat: i64,
) -> Reservation {
    hold(fixture, user, concert, performance, &[seat])
        .await
        .remove(0)
}

/// A hold as asked (the request is built now, so the future borrows nothing).
fn try_hold(
    fixture: &impl StoreFixture,
    user: i64,
    concert: i64,
    performance: i64,
    seats: &[i64],
    limit: SeatLimit,
) -> impl Future<Output = Result<Vec<Reservation>, HoldError>> {
    let inventory = fixture.inventory();
    let request = hold_request(user, concert, performance, seats);
    async move { inventory.hold(request, ttl(HOLD), limit).await }
}

async fn charge(fixture: &impl StoreFixture, user: i64, amount: i64) -> Won {
    fixture
        .wallet()
        .charge(user_id(user), ChargeAmount::new(amount).unwrap(), None)
        .await
        .unwrap_or_else(|e| panic!("charging {amount} to user {user}: {e:?}"))
}

async fn balance(fixture: &impl StoreFixture, user: i64) -> i64 {
    fixture
        .wallet()
        .balance(user_id(user))
        .await
        .unwrap_or_else(|e| panic!("the balance of user {user}: {e:?}"))
        .get()
}

fn payment_of(user: i64, reservations: &[ReservationId]) -> PaymentRequest {
    PaymentRequest {
        reservations: ReservationSelection::new(reservations.to_vec()).unwrap(),
        user: user_id(user),
        form: if reservations.len() == 1 {
            PaymentForm::One
        } else {
            PaymentForm::Several
        },
    }
}

fn keyed(request_fingerprint: String, value: &str) -> IdempotentRequest {
    IdempotentRequest {
        key: key(value),
        fingerprint: request_fingerprint,
    }
}

async fn pay(
    fixture: &impl StoreFixture,
    user: i64,
    reservations: &[ReservationId],
) -> PaymentOutcome {
    fixture
        .payment_ledger()
        .pay(payment_of(user, reservations), None)
        .await
        .unwrap_or_else(|e| panic!("paying {reservations:?} for user {user}: {e:?}"))
        .outcome
}

async fn refund(
    fixture: &impl StoreFixture,
    user: i64,
    reservation: ReservationId,
) -> RefundOutcome {
    fixture
        .refund_ledger()
        .refund(
            RefundRequest {
                reservation,
                user: user_id(user),
            },
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("refunding {reservation} for user {user}: {e:?}"))
        .outcome
}

async fn find(fixture: &impl StoreFixture, id: ReservationId) -> Reservation {
    fixture
        .inventory()
        .find(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("reservation {id} is found"))
}

async fn status_of(fixture: &impl StoreFixture, id: ReservationId) -> ReservationStatus {
    find(fixture, id).await.status
}

async fn seat_statuses(
    fixture: &impl StoreFixture,
    concert: i64,
    performance: i64,
) -> Vec<(i32, SeatStatus)> {
    fixture
        .catalog()
        .seats(concert_id(concert), performance_id(performance))
        .await
        .unwrap()
        .into_iter()
        .map(|seat| (seat.no.get(), seat.status))
        .collect()
}

async fn seat_status(
    fixture: &impl StoreFixture,
    concert: i64,
    performance: i64,
    seat: i64,
) -> SeatStatus {
    seat_statuses(fixture, concert, performance)
        .await
        .into_iter()
        .find(|(no, _)| i64::from(*no) == seat)
        .map(|(_, status)| status)
        .unwrap_or_else(|| panic!("seat {seat} of performance {performance} is listed"))
}

/// The store's clock, as the catalog reads it.
async fn store_now(fixture: &impl StoreFixture, concert: i64, performance: i64) -> DateTime<Utc> {
    fixture
        .catalog()
        .taken_seats(concert_id(concert), performance_id(performance))
        .await
        .unwrap()
        .read_at()
}

fn ids(reservations: &[Reservation]) -> Vec<ReservationId> {
    reservations.iter().map(|r| r.id).collect()
}

fn owned_fields(event: &Event) -> Vec<(String, String)> {
    event
        .fields()
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}

/// One of several requests raced against each other.
type Racer<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Runs every future at once, on this task, and answers their outputs in order: enough to race
/// requests against a store (each waits on its own connection or lock).
async fn all_at_once<T>(mut futures: Vec<Racer<'_, T>>) -> Vec<T> {
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

// --- ConcertCatalog --------------------------------------------------------------------------

/// [`ConcertCatalog`]: concerts by id; performances earliest first with their free seats;
/// seats by number with their status judged by the store's clock; taken seats with the clock at
/// the read; an unknown concert, or a performance of another concert, is not found.
pub async fn concert_catalog_contract(fixture: &impl StoreFixture) {
    let catalog = fixture.catalog();
    for n in [2, 1, 3] {
        fixture.seed_concert(&concert(n)).await;
    }
    let mut seats = seat_specs(1..=2, "R", 150_000);
    seats.extend(seat_specs(3..=4, "A", 90_000));
    fixture
        .seed_performance(concert_id(1), performance_id(11), 20 * DAY, &seats)
        .await;
    fixture
        .seed_performance(
            concert_id(1),
            performance_id(12),
            10 * DAY,
            &seat_specs(1..=2, "S", 120_000),
        )
        .await;
    fixture
        .seed_performance(
            concert_id(2),
            performance_id(21),
            5 * DAY,
            &seat_specs(1..=2, "S", 120_000),
        )
        .await;
    seed_users(fixture, 1..=1).await;

    assert_eq!(
        catalog.concerts().await.unwrap(),
        vec![concert(1), concert(2), concert(3)],
        "every concert, by id, as stored"
    );

    let performances = catalog.performances(concert_id(1)).await.unwrap();
    let listed: Vec<(i64, i64, u32, u32)> = performances
        .iter()
        .map(|p| {
            (
                p.id.get(),
                p.concert_id.get(),
                p.total_seats,
                p.available_seats,
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![(12, 1, 2, 2), (11, 1, 4, 4)],
        "a concert's performances, earliest first, with their seat counts"
    );
    let now = store_now(fixture, 1, 11).await;
    let starts_in = performances[1].starts_at - now;
    assert!(
        starts_in > chrono::Duration::days(20) - LEEWAY
            && starts_in <= chrono::Duration::days(20) + LEEWAY,
        "a performance starts when it was stored to: {starts_in}"
    );
    assert_eq!(
        catalog.performances(concert_id(3)).await,
        Ok(vec![]),
        "a concert without performances has none"
    );
    assert_eq!(
        catalog.performances(concert_id(99)).await,
        Err(CatalogError::ConcertNotFound(concert_id(99))),
        "an unknown concert is not found"
    );

    let listed = catalog
        .seats(concert_id(1), performance_id(11))
        .await
        .unwrap();
    let listed: Vec<(i32, &str, i64, SeatStatus)> = listed
        .iter()
        .map(|s| (s.no.get(), s.grade.as_str(), s.price.get(), s.status))
        .collect();
    assert_eq!(
        listed,
        vec![
            (1, "R", 150_000, SeatStatus::Available),
            (2, "R", 150_000, SeatStatus::Available),
            (3, "A", 90_000, SeatStatus::Available),
            (4, "A", 90_000, SeatStatus::Available),
        ],
        "a performance's seats, by number, with grade, price and status"
    );
    for (concert, performance) in [(2, 11), (1, 99), (99, 11)] {
        let expected = CatalogError::PerformanceNotFound {
            concert: concert_id(concert),
            performance: performance_id(performance),
        };
        assert_eq!(
            catalog
                .seats(concert_id(concert), performance_id(performance))
                .await,
            Err(expected.clone()),
            "seats of performance {performance} of concert {concert}: not found"
        );
        assert_eq!(
            catalog
                .taken_seats(concert_id(concert), performance_id(performance))
                .await
                .map(|taken| taken.len()),
            Err(expected),
            "taken seats of performance {performance} of concert {concert}: not found"
        );
    }
    assert!(
        catalog
            .taken_seats(concert_id(1), performance_id(11))
            .await
            .unwrap()
            .is_empty(),
        "no seat is taken before any hold"
    );

    let held = hold_one(fixture, 1, 1, 11, 1).await;
    charge(fixture, 1, 90_000).await;
    let sold = hold_one(fixture, 1, 1, 11, 3).await;
    assert!(
        pay(fixture, 1, &[sold.id]).await.is_ok(),
        "the seat is paid"
    );

    assert_eq!(
        seat_statuses(fixture, 1, 11).await,
        vec![
            (1, SeatStatus::Held),
            (2, SeatStatus::Available),
            (3, SeatStatus::Sold),
            (4, SeatStatus::Available),
        ],
        "a held seat is HELD, a paid one SOLD"
    );
    let available: Vec<u32> = catalog
        .performances(concert_id(1))
        .await
        .unwrap()
        .iter()
        .map(|p| p.available_seats)
        .collect();
    assert_eq!(
        available,
        vec![2, 2],
        "held and sold seats are not available"
    );
    let before = store_now(fixture, 1, 12).await;
    let taken = catalog
        .taken_seats(concert_id(1), performance_id(11))
        .await
        .unwrap();
    assert!(
        taken.read_at() >= before && taken.read_at() - before < LEEWAY,
        "taken seats carry the store's clock at the read"
    );
    assert_eq!(
        taken.still_taken(
            &[seat_no(1), seat_no(2), seat_no(3), seat_no(4)],
            Duration::ZERO
        ),
        vec![seat_no(1), seat_no(3)],
        "the held and the sold seat are taken"
    );
    let past_the_hold = (held.expires_at - taken.read_at())
        .to_std()
        .unwrap_or(Duration::ZERO)
        + Duration::from_secs(1);
    assert_eq!(
        taken.still_taken(&[seat_no(1), seat_no(3)], past_the_hold),
        vec![seat_no(3)],
        "a held seat is taken until its hold's expiry, a sold one for good"
    );

    fixture.advance(LAPSE).await;
    assert_eq!(
        seat_status(fixture, 1, 11, 1).await,
        SeatStatus::Available,
        "a seat whose hold lapsed by the store's clock is AVAILABLE, before any clean-up"
    );
    assert_eq!(
        catalog.performances(concert_id(1)).await.unwrap()[1].available_seats,
        3,
        "a lapsed hold's seat counts as available"
    );
    let taken = catalog
        .taken_seats(concert_id(1), performance_id(11))
        .await
        .unwrap();
    assert_eq!(
        taken.still_taken(&[seat_no(1), seat_no(3)], Duration::ZERO),
        vec![seat_no(3)],
        "a lapsed hold is not taken"
    );
}

// --- SeatInventory ---------------------------------------------------------------------------

/// [`SeatInventory`]: holds of several seats at once, all or nothing, for the TTL by the
/// store's clock; refusals (unknown seat, taken seats, unknown user, per-user limit) take
/// nothing; cancellation; listing; expiry judged by the store's clock before any clean-up;
/// the clean-up; races of holds.
pub async fn seat_inventory_contract(fixture: &impl StoreFixture) {
    let inventory = fixture.inventory();
    fixture.seed_concert(&concert(1)).await;
    fixture.seed_concert(&concert(2)).await;
    fixture
        .seed_performance(
            concert_id(1),
            performance_id(11),
            30 * DAY,
            &seat_specs(1..=10, "R", 100_000),
        )
        .await;
    fixture
        .seed_performance(
            concert_id(1),
            performance_id(12),
            31 * DAY,
            &seat_specs(1..=4, "S", 80_000),
        )
        .await;
    fixture
        .seed_performance(
            concert_id(1),
            performance_id(13),
            32 * DAY,
            &seat_specs(1..=6, "A", 50_000),
        )
        .await;
    fixture
        .seed_performance(
            concert_id(2),
            performance_id(21),
            30 * DAY,
            &seat_specs(1..=2, "R", 100_000),
        )
        .await;
    seed_users(fixture, 1..=9).await;

    // Several seats at once, in the order asked, at their price, for the TTL.
    let before = store_now(fixture, 1, 11).await;
    let held = hold(fixture, 1, 1, 11, &[3, 1]).await;
    let seats: Vec<i32> = held.iter().map(|r| r.seat.get()).collect();
    assert_eq!(
        seats,
        vec![3, 1],
        "reservations come back in the order the seats were asked"
    );
    for reservation in &held {
        assert_eq!(
            (
                reservation.user,
                reservation.concert,
                reservation.performance,
                reservation.price,
                reservation.status
            ),
            (
                user_id(1),
                concert_id(1),
                performance_id(11),
                won(100_000),
                ReservationStatus::Held
            ),
            "a hold is a HELD reservation of the user for the seat at its price"
        );
        let lasts = reservation.expires_at - before;
        assert!(
            lasts >= chrono::Duration::seconds(60)
                && lasts <= chrono::Duration::seconds(60) + LEEWAY,
            "a hold lasts its TTL by the store's clock: {lasts}"
        );
        assert_eq!(
            inventory.find(reservation.id).await.unwrap().as_ref(),
            Some(reservation),
            "a held reservation is found as it was answered"
        );
    }
    assert_ne!(
        held[0].id, held[1].id,
        "each seat has a reservation of its own"
    );
    assert_eq!(
        seat_status(fixture, 1, 11, 3).await,
        SeatStatus::Held,
        "a held seat is HELD"
    );

    // All or nothing; every taken seat is named.
    assert_eq!(
        try_hold(fixture, 2, 1, 11, &[2, 3, 4, 1], SeatLimit::unlimited()).await,
        Err(HoldError::SeatUnavailable {
            performance: performance_id(11),
            seats: vec![seat_no(3), seat_no(1)],
        }),
        "a hold of taken seats names every taken seat, in the order asked"
    );
    assert_eq!(
        (
            seat_status(fixture, 1, 11, 2).await,
            seat_status(fixture, 1, 11, 4).await
        ),
        (SeatStatus::Available, SeatStatus::Available),
        "a refused hold takes none of its free seats"
    );
    assert_eq!(
        try_hold(fixture, 1, 1, 11, &[1], SeatLimit::unlimited()).await,
        Err(HoldError::SeatUnavailable {
            performance: performance_id(11),
            seats: vec![seat_no(1)],
        }),
        "a seat under a live hold cannot be held again, even by its holder"
    );

    // What does not exist.
    for (concert, performance, seats, missing) in [
        (1, 11, vec![99], 99),
        (1, 11, vec![2, 99], 99),
        (1, 99, vec![1], 1),
        (2, 11, vec![2], 2),
    ] {
        assert_eq!(
            try_hold(
                fixture,
                2,
                concert,
                performance,
                &seats,
                SeatLimit::unlimited()
            )
            .await,
            Err(HoldError::SeatNotFound {
                concert: concert_id(concert),
                performance: performance_id(performance),
                seat: seat_no(missing),
            }),
            "seats {seats:?} of performance {performance} of concert {concert}: not found"
        );
    }
    assert_eq!(
        try_hold(fixture, 999, 1, 11, &[2], SeatLimit::unlimited()).await,
        Err(HoldError::UserNotFound(user_id(999))),
        "an unknown user cannot hold"
    );
    assert_eq!(
        seat_status(fixture, 1, 11, 2).await,
        SeatStatus::Available,
        "a hold refused as not found takes nothing"
    );

    // The per-user limit, per performance, counting live holds and paid seats.
    let limit = SeatLimit::new(2);
    let first = try_hold(fixture, 3, 1, 11, &[2], limit)
        .await
        .unwrap()
        .remove(0);
    let over = HoldError::SeatLimitReached {
        user: user_id(3),
        performance: performance_id(11),
        limit: 2,
    };
    assert_eq!(
        try_hold(fixture, 3, 1, 11, &[4, 5], limit).await,
        Err(over.clone()),
        "a hold that would pass the user's limit is refused whole"
    );
    assert_eq!(
        (
            seat_status(fixture, 1, 11, 4).await,
            seat_status(fixture, 1, 11, 5).await
        ),
        (SeatStatus::Available, SeatStatus::Available),
        "a hold refused by the limit takes nothing"
    );
    let second = try_hold(fixture, 3, 1, 11, &[4], limit)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        try_hold(fixture, 3, 1, 11, &[5], limit).await,
        Err(over.clone()),
        "the limit counts the user's live holds"
    );
    let elsewhere = try_hold(fixture, 3, 1, 12, &[1], limit).await;
    assert!(
        elsewhere.is_ok(),
        "the limit is per performance: {elsewhere:?}"
    );
    assert_eq!(
        inventory.cancel(first.id).await.unwrap(),
        CancelOutcome::Cancelled,
        "a live hold is cancelled"
    );
    let third = try_hold(fixture, 3, 1, 11, &[5], limit).await;
    assert!(
        third.is_ok(),
        "a cancelled hold no longer counts: {third:?}"
    );
    let third = third.unwrap().remove(0);
    charge(fixture, 3, 100_000).await;
    assert!(
        pay(fixture, 3, &[second.id]).await.is_ok(),
        "seat 4 is paid"
    );
    assert_eq!(
        try_hold(fixture, 3, 1, 11, &[6], limit).await,
        Err(over),
        "the limit counts the user's paid seats"
    );

    // Cancellation.
    assert_eq!(
        status_of(fixture, first.id).await,
        ReservationStatus::Cancelled,
        "a cancelled hold is CANCELLED"
    );
    assert_eq!(
        seat_status(fixture, 1, 11, 2).await,
        SeatStatus::Available,
        "cancelling frees the seat at once"
    );
    assert_eq!(
        inventory.cancel(first.id).await.unwrap(),
        CancelOutcome::AlreadyReleased,
        "cancelling twice changes nothing"
    );
    assert_eq!(
        inventory.cancel(second.id).await.unwrap(),
        CancelOutcome::Confirmed,
        "a paid reservation is not cancelled"
    );
    assert_eq!(
        (
            status_of(fixture, second.id).await,
            seat_status(fixture, 1, 11, 4).await
        ),
        (ReservationStatus::Confirmed, SeatStatus::Sold),
        "a paid reservation stays paid"
    );
    assert_eq!(
        inventory.cancel(reservation_id(999_999)).await.unwrap(),
        CancelOutcome::NotFound,
        "an unknown reservation is not found"
    );
    assert_eq!(
        inventory.find(reservation_id(999_999)).await.unwrap(),
        None,
        "an unknown reservation is not found"
    );

    // Listing: newest first, in pages, by status as reported.
    let query = |status, before, size| ReservationQuery {
        user: user_id(3),
        status,
        before,
        size: PageSize::new(size).unwrap(),
    };
    let all = inventory
        .list(query(None, None, 50), 10)
        .await
        .unwrap()
        .unwrap();
    let listed: Vec<(i32, i64, ReservationStatus)> = all
        .iter()
        .map(|r| (r.seat.get(), r.performance.get(), r.status))
        .collect();
    assert_eq!(
        listed,
        vec![
            (5, 11, ReservationStatus::Held),
            (1, 12, ReservationStatus::Held),
            (4, 11, ReservationStatus::Confirmed),
            (2, 11, ReservationStatus::Cancelled),
        ],
        "a user's reservations, newest first"
    );
    assert!(
        all.windows(2).all(|pair| pair[0].id > pair[1].id),
        "newest first is highest id first"
    );
    assert_eq!(
        inventory
            .list(query(None, None, 50), 2)
            .await
            .unwrap()
            .unwrap(),
        all[..2].to_vec(),
        "at most `count` reservations"
    );
    assert_eq!(
        inventory
            .list(query(None, Some(all[1].id), 50), 10)
            .await
            .unwrap()
            .unwrap(),
        all[2..].to_vec(),
        "`before` lists only older reservations"
    );
    for (status, expected) in [
        (
            ReservationStatus::Held,
            vec![all[0].clone(), all[1].clone()],
        ),
        (ReservationStatus::Confirmed, vec![all[2].clone()]),
        (ReservationStatus::Cancelled, vec![all[3].clone()]),
        (ReservationStatus::Expired, vec![]),
    ] {
        assert_eq!(
            inventory
                .list(query(Some(status), None, 50), 10)
                .await
                .unwrap()
                .unwrap(),
            expected,
            "listing only {status:?} reservations"
        );
    }
    assert_eq!(
        inventory
            .list(
                ReservationQuery {
                    user: user_id(999),
                    ..query(None, None, 50)
                },
                10
            )
            .await
            .unwrap(),
        None,
        "an unknown user has no list"
    );
    assert_eq!(
        inventory
            .list(
                ReservationQuery {
                    user: user_id(9),
                    ..query(None, None, 50)
                },
                10
            )
            .await
            .unwrap(),
        Some(vec![]),
        "a user without reservations has an empty list"
    );

    // Expiry, by the store's clock, before any clean-up.
    fixture.advance(LAPSE).await;
    assert_eq!(
        status_of(fixture, held[0].id).await,
        ReservationStatus::Expired,
        "a lapsed hold is reported EXPIRED before any clean-up ran"
    );
    assert_eq!(
        seat_status(fixture, 1, 11, 3).await,
        SeatStatus::Available,
        "a lapsed hold's seat is free before any clean-up ran"
    );
    let lapsed_list = inventory
        .list(query(Some(ReservationStatus::Expired), None, 50), 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ids(&lapsed_list),
        vec![third.id, all[1].id],
        "a lapsed hold is listed as EXPIRED"
    );
    assert_eq!(
        inventory
            .list(query(Some(ReservationStatus::Held), None, 50), 10)
            .await
            .unwrap()
            .unwrap(),
        vec![],
        "a lapsed hold is not listed as HELD"
    );
    assert_eq!(
        inventory.cancel(held[1].id).await.unwrap(),
        CancelOutcome::AlreadyReleased,
        "cancelling a lapsed hold changes nothing"
    );
    assert_eq!(
        status_of(fixture, held[1].id).await,
        ReservationStatus::Expired
    );
    let retaken = hold_one(fixture, 2, 1, 11, 3).await;
    assert_eq!(
        status_of(fixture, held[0].id).await,
        ReservationStatus::Expired,
        "the lapsed reservation of a seat held again stays EXPIRED"
    );

    // The clean-up: lapsed holds are seat 1 of performance 11 (user 1), seat 1 of
    // performance 12 and seat 5 of performance 11 (user 3).
    assert_eq!(
        inventory.release_expired(1).await.unwrap(),
        1,
        "the clean-up releases at most its batch"
    );
    assert_eq!(
        inventory.release_expired(100).await.unwrap(),
        2,
        "the clean-up releases every lapsed hold, and only those"
    );
    assert_eq!(
        inventory.release_expired(100).await.unwrap(),
        0,
        "nothing is left to release"
    );
    assert_eq!(
        (
            status_of(fixture, held[1].id).await,
            status_of(fixture, third.id).await,
            status_of(fixture, retaken.id).await,
            status_of(fixture, second.id).await,
        ),
        (
            ReservationStatus::Expired,
            ReservationStatus::Expired,
            ReservationStatus::Held,
            ReservationStatus::Confirmed,
        ),
        "the clean-up expires lapsed holds and touches nothing else"
    );
    assert_eq!(seat_status(fixture, 1, 11, 1).await, SeatStatus::Available);

    // Races: one seat, many users; one user, past the limit.
    let attempts: Vec<Racer<'_, Result<Vec<Reservation>, HoldError>>> = (4..=8)
        .map(|user| {
            Box::pin(try_hold(fixture, user, 1, 13, &[1], SeatLimit::unlimited())) as Racer<'_, _>
        })
        .collect();
    let results = all_at_once(attempts).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "concurrent holds of one seat: exactly one wins: {results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(HoldError::SeatUnavailable { .. }))),
        "the others find the seat taken: {results:?}"
    );
    let attempts: Vec<Racer<'_, Result<Vec<Reservation>, HoldError>>> = (2..=5)
        .map(|seat| {
            Box::pin(try_hold(fixture, 9, 1, 13, &[seat], SeatLimit::new(2))) as Racer<'_, _>
        })
        .collect();
    let results = all_at_once(attempts).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        2,
        "concurrent holds of one user never pass the limit together: {results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(HoldError::SeatLimitReached { .. }))),
        "the others are refused by the limit: {results:?}"
    );
    let taken = seat_statuses(fixture, 1, 13)
        .await
        .into_iter()
        .filter(|(_, status)| *status != SeatStatus::Available)
        .count();
    assert_eq!(taken, 3, "only the winners hold seats");
}

// --- Wallet ----------------------------------------------------------------------------------

/// [`Wallet`]: balances start empty; charges add atomically (concurrent ones all count); a keyed
/// charge is applied once and answers its first balance again; a key reused with another
/// request is a conflict; an unknown user is not found and records nothing.
pub async fn wallet_contract(fixture: &impl StoreFixture) {
    let wallet = fixture.wallet();
    seed_users(fixture, 1..=2).await;
    let amount = |n| ChargeAmount::new(n).unwrap();
    let fingerprint = |user: i64, n: i64| {
        ChargeRequest {
            user: user_id(user),
            amount: amount(n),
        }
        .fingerprint()
    };

    assert_eq!(
        balance(fixture, 1).await,
        0,
        "a new user's balance is empty"
    );
    assert_eq!(
        wallet.balance(user_id(999)).await,
        Err(WalletError::UserNotFound(user_id(999))),
        "an unknown user has no balance"
    );
    assert_eq!(
        wallet.charge(user_id(999), amount(1_000), None).await,
        Err(WalletError::UserNotFound(user_id(999))),
        "an unknown user cannot be charged"
    );

    assert_eq!(
        charge(fixture, 1, 10_000).await.get(),
        10_000,
        "a charge answers the new balance"
    );
    assert_eq!(
        charge(fixture, 1, 5_000).await.get(),
        15_000,
        "charges add up"
    );
    assert_eq!(balance(fixture, 1).await, 15_000);

    let first = wallet
        .charge(
            user_id(1),
            amount(7_000),
            Some(keyed(fingerprint(1, 7_000), "charge-1")),
        )
        .await;
    assert_eq!(first, Ok(won(22_000)), "a keyed charge is applied");
    charge(fixture, 1, 1_000).await;
    let again = wallet
        .charge(
            user_id(1),
            amount(7_000),
            Some(keyed(fingerprint(1, 7_000), "charge-1")),
        )
        .await;
    assert_eq!(
        again,
        Ok(won(22_000)),
        "a keyed charge replayed answers its first balance"
    );
    assert_eq!(
        balance(fixture, 1).await,
        23_000,
        "a replayed charge is not applied again"
    );
    assert_eq!(
        wallet
            .charge(
                user_id(1),
                amount(9_000),
                Some(keyed(fingerprint(1, 9_000), "charge-1"))
            )
            .await,
        Err(WalletError::Conflict(IdempotencyConflict::DifferentRequest)),
        "a key reused for another charge is a conflict"
    );
    assert_eq!(
        balance(fixture, 1).await,
        23_000,
        "a conflicting charge is not applied"
    );

    assert_eq!(
        wallet
            .charge(
                user_id(999),
                amount(1_000),
                Some(keyed(fingerprint(999, 1_000), "charge-2"))
            )
            .await,
        Err(WalletError::UserNotFound(user_id(999))),
        "a keyed charge of an unknown user is not found"
    );
    assert_eq!(
        wallet
            .charge(
                user_id(2),
                amount(2_000),
                Some(keyed(fingerprint(2, 2_000), "charge-2"))
            )
            .await,
        Ok(won(2_000)),
        "a charge refused as not found records nothing under its key"
    );

    let charges: Vec<Racer<'_, Result<Won, WalletError>>> = (0..10)
        .map(|_| Box::pin(wallet.charge(user_id(2), amount(1_000), None)) as Racer<'_, _>)
        .collect();
    let results = all_at_once(charges).await;
    assert!(
        results.iter().all(Result::is_ok),
        "concurrent charges succeed: {results:?}"
    );
    assert_eq!(
        balance(fixture, 2).await,
        12_000,
        "concurrent charges all count"
    );
}

// --- PaymentLedger ---------------------------------------------------------------------------

/// [`PaymentLedger`]: a payment debits the sum once, confirms every reservation and sells every
/// seat, all or nothing; only the user's own live holds are paid; the balance never goes
/// negative; a keyed payment records its outcome (payment or refusal) and replays it, a key
/// reused with another request is a conflict; money is conserved; races pay a hold once.
pub async fn payment_ledger_contract(fixture: &impl StoreFixture) {
    let ledger = fixture.payment_ledger();
    fixture.seed_concert(&concert(1)).await;
    let mut seats = seat_specs(1..=4, "R", 100_000);
    seats.extend(seat_specs(5..=10, "A", 50_000));
    fixture
        .seed_performance(concert_id(1), performance_id(11), 30 * DAY, &seats)
        .await;
    seed_users(fixture, 1..=3).await;
    let mut charged = 0;
    charge(fixture, 1, 250_000).await;
    charge(fixture, 2, 100_000).await;
    charged += 350_000;

    // Several reservations, one debit of their sum.
    let pair = hold(fixture, 1, 1, 11, &[1, 2]).await;
    let answer = ledger.pay(payment_of(1, &ids(&pair)), None).await.unwrap();
    assert!(!answer.replayed, "a payment made now is not a replay");
    let payment = answer
        .outcome
        .expect("a payment of the user's live holds succeeds");
    assert_eq!(
        (
            payment.reservation,
            payment.reservations.clone(),
            payment.user,
            payment.amount
        ),
        (pair[0].id, ids(&pair), user_id(1), won(200_000)),
        "a payment names its reservations, in the order asked, its user and the sum"
    );
    let mut paid = payment.amount.get();
    assert_eq!(balance(fixture, 1).await, 50_000, "the sum is debited once");
    for reservation in &pair {
        assert_eq!(
            status_of(fixture, reservation.id).await,
            ReservationStatus::Confirmed,
            "paid is CONFIRMED"
        );
        assert_eq!(
            seat_status(fixture, 1, 11, i64::from(reservation.seat.get())).await,
            SeatStatus::Sold,
            "paid is SOLD"
        );
    }
    assert_eq!(
        pay(fixture, 1, &[pair[0].id]).await,
        Err(PaymentRefusal::NotPayable(pair[0].id)),
        "a paid reservation is not paid again"
    );
    assert_eq!(balance(fixture, 1).await, 50_000);

    // Only the user's own reservations.
    let foreign = hold_one(fixture, 2, 1, 11, 3).await;
    assert_eq!(
        pay(fixture, 1, &[foreign.id]).await,
        Err(PaymentRefusal::ReservationNotFound(foreign.id)),
        "another user's reservation is not found"
    );
    assert_eq!(
        pay(fixture, 1, &[reservation_id(999_999)]).await,
        Err(PaymentRefusal::ReservationNotFound(reservation_id(999_999))),
        "an unknown reservation is not found"
    );
    assert_eq!(
        status_of(fixture, foreign.id).await,
        ReservationStatus::Held
    );
    assert_eq!(
        (balance(fixture, 1).await, balance(fixture, 2).await),
        (50_000, 100_000)
    );

    // The balance never goes negative.
    let dear = hold_one(fixture, 1, 1, 11, 4).await;
    assert_eq!(
        pay(fixture, 1, &[dear.id]).await,
        Err(PaymentRefusal::InsufficientBalance {
            price: won(100_000)
        }),
        "a balance that does not cover the price refuses the payment"
    );
    assert_eq!(
        (
            status_of(fixture, dear.id).await,
            seat_status(fixture, 1, 11, 4).await,
            balance(fixture, 1).await
        ),
        (ReservationStatus::Held, SeatStatus::Held, 50_000),
        "a refused payment changes nothing"
    );

    // All or nothing.
    let cheap = hold_one(fixture, 1, 1, 11, 5).await;
    assert_eq!(
        pay(fixture, 1, &[cheap.id, pair[0].id]).await,
        Err(PaymentRefusal::NotPayable(pair[0].id)),
        "one unpayable reservation refuses the whole payment"
    );
    assert_eq!(
        (
            status_of(fixture, cheap.id).await,
            balance(fixture, 1).await
        ),
        (ReservationStatus::Held, 50_000),
        "a refused payment of several pays none"
    );
    fixture.inventory().cancel(cheap.id).await.unwrap();
    assert_eq!(
        pay(fixture, 1, &[cheap.id]).await,
        Err(PaymentRefusal::NotPayable(cheap.id)),
        "a cancelled hold is not payable"
    );

    // One payment per key, its outcome replayed; another request under it is a conflict.
    let sixth = hold_one(fixture, 1, 1, 11, 6).await;
    let request = payment_of(1, &[sixth.id]);
    let under_key = keyed(request.fingerprint(), "pay-6");
    let first = ledger
        .pay(request.clone(), Some(under_key.clone()))
        .await
        .unwrap();
    let outcome = first.outcome.clone();
    assert!(
        outcome.is_ok() && !first.replayed,
        "a keyed payment is made: {first:?}"
    );
    paid += 50_000;
    assert_eq!(
        ledger.pay(request.clone(), Some(under_key.clone())).await,
        Ok(LedgerAnswer {
            outcome: outcome.clone(),
            replayed: true
        }),
        "a keyed payment replayed answers the same outcome, as a replay"
    );
    assert_eq!(
        balance(fixture, 1).await,
        0,
        "a replayed payment debits nothing"
    );
    assert_eq!(
        ledger.recorded(under_key.clone()).await,
        Ok(Some(outcome.clone())),
        "the outcome is recorded under the key"
    );
    let other = payment_of(1, &[dear.id]);
    let reused = keyed(other.fingerprint(), "pay-6");
    assert_eq!(
        ledger.pay(other.clone(), Some(reused.clone())).await,
        Err(LedgerError::Conflict(IdempotencyConflict::DifferentRequest)),
        "a key reused for another payment is a conflict"
    );
    assert_eq!(
        ledger.recorded(reused).await,
        Err(LedgerError::Conflict(IdempotencyConflict::DifferentRequest)),
        "reading a key recorded for another request is a conflict"
    );
    assert_eq!(status_of(fixture, dear.id).await, ReservationStatus::Held);
    assert_eq!(
        ledger
            .recorded(keyed(other.fingerprint(), "never-used"))
            .await,
        Ok(None),
        "nothing is recorded under an unused key"
    );

    // A refusal is recorded and replayed too.
    let refused_key = keyed(other.fingerprint(), "pay-4");
    let refused = ledger
        .pay(other.clone(), Some(refused_key.clone()))
        .await
        .unwrap();
    assert_eq!(
        refused.outcome,
        Err(PaymentRefusal::InsufficientBalance {
            price: won(100_000)
        })
    );
    charge(fixture, 1, 100_000).await;
    charged += 100_000;
    assert_eq!(
        ledger.pay(other.clone(), Some(refused_key)).await,
        Ok(LedgerAnswer {
            outcome: refused.outcome,
            replayed: true
        }),
        "a recorded refusal is answered again, even once the payment could succeed"
    );
    assert_eq!(
        (status_of(fixture, dear.id).await, balance(fixture, 1).await),
        (ReservationStatus::Held, 100_000),
        "a replayed refusal pays nothing"
    );
    assert!(
        pay(fixture, 1, &[dear.id]).await.is_ok(),
        "without the key it is paid"
    );
    paid += 100_000;

    // A lapsed hold is not payable.
    let late = hold_one(fixture, 2, 1, 11, 7).await;
    fixture.advance(LAPSE).await;
    assert_eq!(
        pay(fixture, 2, &[late.id]).await,
        Err(PaymentRefusal::NotPayable(late.id)),
        "a hold lapsed by the store's clock is not payable"
    );
    assert_eq!(balance(fixture, 2).await, 100_000);

    // Money is conserved: what was charged is in the balances or paid.
    let balances =
        balance(fixture, 1).await + balance(fixture, 2).await + balance(fixture, 3).await;
    assert_eq!(balances + paid, charged, "money is conserved");

    // Races: one hold paid at once by several requests; two holds and money for one.
    charge(fixture, 3, 50_000).await;
    let raced = hold_one(fixture, 3, 1, 11, 8).await;
    let attempts: Vec<Racer<'_, Result<LedgerAnswer, LedgerError>>> = (0..4)
        .map(|_| Box::pin(ledger.pay(payment_of(3, &[raced.id]), None)) as Racer<'_, _>)
        .collect();
    let results = all_at_once(attempts).await;
    let made = results
        .iter()
        .filter(|r| matches!(r, Ok(LedgerAnswer { outcome: Ok(_), .. })))
        .count();
    assert_eq!(
        made, 1,
        "concurrent payments of one hold pay it once: {results:?}"
    );
    assert_eq!(balance(fixture, 3).await, 0, "and debit once");
    charge(fixture, 3, 50_000).await;
    let both = hold(fixture, 3, 1, 11, &[9, 10]).await;
    let attempts: Vec<Racer<'_, Result<LedgerAnswer, LedgerError>>> = both
        .iter()
        .map(|r| Box::pin(ledger.pay(payment_of(3, &[r.id]), None)) as Racer<'_, _>)
        .collect();
    let results = all_at_once(attempts).await;
    let made = results
        .iter()
        .filter(|r| matches!(r, Ok(LedgerAnswer { outcome: Ok(_), .. })))
        .count();
    assert_eq!(
        made, 1,
        "concurrent payments never spend more than the balance: {results:?}"
    );
    assert_eq!(
        balance(fixture, 3).await,
        0,
        "the balance never goes negative"
    );
}

// --- RefundLedger ----------------------------------------------------------------------------

/// [`RefundLedger`]: only the user's own CONFIRMED reservation, only before its performance
/// starts; the price goes back to the balance and the seat is free, at once; a refusal changes
/// nothing; a keyed refund records its outcome and replays it; concurrent refunds refund once.
pub async fn refund_ledger_contract(fixture: &impl StoreFixture) {
    let ledger = fixture.refund_ledger();
    fixture.seed_concert(&concert(1)).await;
    fixture
        .seed_performance(
            concert_id(1),
            performance_id(11),
            30 * DAY,
            &seat_specs(1..=4, "R", 100_000),
        )
        .await;
    fixture
        .seed_performance(
            concert_id(1),
            performance_id(12),
            Duration::from_secs(2 * 3_600),
            &seat_specs(1..=2, "S", 80_000),
        )
        .await;
    seed_users(fixture, 1..=2).await;
    charge(fixture, 1, 500_000).await;
    let bought = hold(fixture, 1, 1, 11, &[1, 2, 3]).await;
    assert!(
        pay(fixture, 1, &ids(&bought)).await.is_ok(),
        "three seats are paid"
    );
    assert_eq!(balance(fixture, 1).await, 200_000);

    let refunded = refund(fixture, 1, bought[0].id).await;
    assert_eq!(
        refunded,
        Ok(Reservation {
            status: ReservationStatus::Refunded,
            ..bought[0].clone()
        }),
        "a refund answers the reservation, REFUNDED"
    );
    assert_eq!(
        balance(fixture, 1).await,
        300_000,
        "the price goes back to the balance"
    );
    assert_eq!(
        status_of(fixture, bought[0].id).await,
        ReservationStatus::Refunded,
        "the reservation is REFUNDED"
    );
    assert_eq!(
        seat_status(fixture, 1, 11, 1).await,
        SeatStatus::Available,
        "the seat is free again"
    );
    let resold = try_hold(fixture, 2, 1, 11, &[1], SeatLimit::unlimited()).await;
    assert!(
        resold.is_ok(),
        "a refunded seat can be held again: {resold:?}"
    );

    assert_eq!(
        refund(fixture, 1, bought[0].id).await,
        Err(RefundRefusal::NotRefundable(bought[0].id)),
        "a refunded reservation is not refunded again"
    );
    assert_eq!(balance(fixture, 1).await, 300_000);
    assert_eq!(
        refund(fixture, 2, bought[1].id).await,
        Err(RefundRefusal::ReservationNotFound(bought[1].id)),
        "another user's reservation is not found"
    );
    assert_eq!(
        refund(fixture, 1, reservation_id(999_999)).await,
        Err(RefundRefusal::ReservationNotFound(reservation_id(999_999))),
        "an unknown reservation is not found"
    );
    let unpaid = hold_one(fixture, 1, 1, 11, 4).await;
    assert_eq!(
        refund(fixture, 1, unpaid.id).await,
        Err(RefundRefusal::NotRefundable(unpaid.id)),
        "an unpaid reservation is not refundable"
    );
    assert_eq!(
        (
            status_of(fixture, bought[1].id).await,
            status_of(fixture, unpaid.id).await,
            balance(fixture, 1).await
        ),
        (
            ReservationStatus::Confirmed,
            ReservationStatus::Held,
            300_000
        ),
        "a refused refund changes nothing"
    );

    // One refund per key, its outcome replayed; another request under it is a conflict.
    let request = RefundRequest {
        reservation: bought[1].id,
        user: user_id(1),
    };
    let under_key = keyed(request.fingerprint(), "refund-2");
    let first = ledger
        .refund(request, Some(under_key.clone()))
        .await
        .unwrap();
    assert!(
        first.outcome.is_ok() && !first.replayed,
        "a keyed refund is made: {first:?}"
    );
    let again = ledger.refund(request, Some(under_key)).await.unwrap();
    assert_eq!(
        (again.outcome, again.replayed),
        (first.outcome, true),
        "a keyed refund replayed answers the same outcome, as a replay"
    );
    assert_eq!(
        balance(fixture, 1).await,
        400_000,
        "a replayed refund credits nothing"
    );
    let other = RefundRequest {
        reservation: bought[2].id,
        user: user_id(1),
    };
    assert_eq!(
        ledger
            .refund(other, Some(keyed(other.fingerprint(), "refund-2")))
            .await,
        Err(LedgerError::Conflict(IdempotencyConflict::DifferentRequest)),
        "a key reused for another refund is a conflict"
    );
    assert_eq!(
        status_of(fixture, bought[2].id).await,
        ReservationStatus::Confirmed
    );

    // Concurrent refunds of one reservation refund it once.
    let attempts: Vec<Racer<'_, Result<RefundAnswer, LedgerError>>> = (0..3)
        .map(|_| Box::pin(ledger.refund(other, None)) as Racer<'_, _>)
        .collect();
    let results = all_at_once(attempts).await;
    let made = results
        .iter()
        .filter(|r| matches!(r, Ok(answer) if answer.outcome.is_ok()))
        .count();
    assert_eq!(
        made, 1,
        "concurrent refunds of one reservation refund it once: {results:?}"
    );
    assert_eq!(balance(fixture, 1).await, 500_000, "and credit once");

    // Not once the performance has started.
    let soon = hold_one(fixture, 1, 1, 12, 1).await;
    assert!(
        pay(fixture, 1, &[soon.id]).await.is_ok(),
        "a seat of the early performance is paid"
    );
    fixture.advance(Duration::from_secs(3 * 3_600)).await;
    assert_eq!(
        refund(fixture, 1, soon.id).await,
        Err(RefundRefusal::NotRefundable(soon.id)),
        "a performance that has started is not refunded"
    );
    assert_eq!(
        (status_of(fixture, soon.id).await, balance(fixture, 1).await),
        (ReservationStatus::Confirmed, 420_000),
        "a refused refund changes nothing"
    );
}

// --- OutcomeRetention ------------------------------------------------------------------------

/// [`OutcomeRetention`]: outcomes recorded more than `age` ago are forgotten (their key may be
/// used afresh), younger ones are kept.
pub async fn outcome_retention_contract(fixture: &impl StoreFixture) {
    let wallet = fixture.wallet();
    let retention = fixture.retention();
    seed_users(fixture, 1..=1).await;
    let amount = |n| ChargeAmount::new(n).unwrap();
    let charge_under = |n: i64, value: &str| {
        let wallet = wallet.clone();
        let request = keyed(format!("charge;user=1;amount={n}"), value);
        async move { wallet.charge(user_id(1), amount(n), Some(request)).await }
    };
    assert_eq!(charge_under(1_000, "old").await, Ok(won(1_000)));
    fixture.advance(Duration::from_secs(2 * 3_600)).await;
    assert_eq!(charge_under(2_000, "young").await, Ok(won(3_000)));

    assert_eq!(
        retention
            .forget_older_than(Duration::from_secs(3_600))
            .await,
        Ok(1),
        "outcomes older than the age are forgotten, younger ones kept"
    );
    assert_eq!(
        charge_under(4_000, "old").await,
        Ok(won(7_000)),
        "a forgotten key may be used for another request"
    );
    assert_eq!(
        charge_under(5_000, "young").await,
        Err(WalletError::Conflict(IdempotencyConflict::DifferentRequest)),
        "a kept key still refuses another request"
    );
    assert_eq!(
        charge_under(2_000, "young").await,
        Ok(won(3_000)),
        "a kept key still replays"
    );
    assert_eq!(
        retention
            .forget_older_than(Duration::from_secs(3_600))
            .await,
        Ok(0),
        "nothing older is left"
    );
}

// --- EventOutbox -----------------------------------------------------------------------------

/// An event without its id and time: what the contract compares.
type Shape = (
    EventType,
    Option<ReservationId>,
    Option<UserId>,
    Option<PerformanceId>,
    Option<SeatNo>,
    Option<Won>,
    Option<Won>,
);

fn shape(event: &Event) -> Shape {
    (
        event.kind,
        event.reservation,
        event.user,
        event.performance,
        event.seat,
        event.amount,
        event.balance,
    )
}

fn reservation_shape(kind: EventType, reservation: &Reservation, amount: Option<Won>) -> Shape {
    (
        kind,
        Some(reservation.id),
        Some(reservation.user),
        Some(reservation.performance),
        Some(reservation.seat),
        amount,
        None,
    )
}

fn balance_shape(
    kind: EventType,
    reservation: Option<ReservationId>,
    user: i64,
    amount: i64,
    balance: i64,
) -> Shape {
    (
        kind,
        reservation,
        Some(user_id(user)),
        None,
        None,
        Some(won(amount)),
        Some(won(balance)),
    )
}

/// Relays everything pending (batches of 100) and answers what this relay published.
async fn relay_all(fixture: &impl StoreFixture, stream: &InMemoryEventStream) -> Vec<Event> {
    let before = stream.published().len();
    let report = fixture
        .outbox()
        .relay(100, Arc::new(stream.clone()))
        .await
        .unwrap_or_else(|e| panic!("relaying: {e:?}"));
    let published = stream.published()[before..].to_vec();
    assert_eq!(
        (report.claimed, report.published),
        (published.len(), published.len()),
        "a relay step reports what it claimed and published"
    );
    published
}

fn sorted(mut shapes: Vec<Shape>) -> Vec<Shape> {
    shapes.sort_by_key(|s| format!("{s:?}"));
    shapes
}

/// [`EventOutbox`]: every change writes its event with the change and a refused change writes
/// none; a relay publishes each event once, in id order, a batch at a time; a failed publish
/// leaves the events unsent for a later step, with the same ids; sent events are forgotten
/// after an age, unsent ones never.
pub async fn event_outbox_contract(fixture: &impl StoreFixture) {
    let outbox = fixture.outbox();
    let stream = InMemoryEventStream::new();
    let publisher: Arc<dyn EventPublisher> = Arc::new(stream.clone());
    assert_eq!(
        outbox.relay(100, publisher.clone()).await,
        Ok(RelayReport::default()),
        "nothing recorded, nothing published"
    );
    fixture.seed_concert(&concert(1)).await;
    fixture
        .seed_performance(
            concert_id(1),
            performance_id(11),
            30 * DAY,
            &seat_specs(1..=4, "R", 100_000),
        )
        .await;
    seed_users(fixture, 1..=2).await;
    let mut everything: Vec<Event> = Vec::new();

    charge(fixture, 1, 300_000).await;
    let published = relay_all(fixture, &stream).await;
    assert_eq!(
        published.iter().map(shape).collect::<Vec<_>>(),
        vec![balance_shape(
            EventType::BalanceCharged,
            None,
            1,
            300_000,
            300_000
        )],
        "a charge writes balance.charged with the amount and the new balance"
    );
    everything.extend(published);

    let pair = hold(fixture, 1, 1, 11, &[1, 2]).await;
    let published = relay_all(fixture, &stream).await;
    assert_eq!(
        sorted(published.iter().map(shape).collect()),
        sorted(
            pair.iter()
                .map(|r| reservation_shape(EventType::ReservationHeld, r, Some(r.price)))
                .collect()
        ),
        "a hold writes reservation.held per seat, with its price"
    );
    everything.extend(published);

    // Refused changes write nothing.
    let _ = try_hold(fixture, 2, 1, 11, &[1, 3], SeatLimit::unlimited()).await;
    let _ = pay(fixture, 2, &[pair[0].id]).await;
    let _ = refund(fixture, 1, pair[0].id).await;
    let _ = fixture
        .wallet()
        .charge(user_id(999), ChargeAmount::new(1).unwrap(), None)
        .await;
    let _ = fixture.inventory().cancel(reservation_id(999_999)).await;
    assert_eq!(
        relay_all(fixture, &stream).await,
        vec![],
        "a refused hold, payment, refund, charge or cancellation writes no event"
    );

    assert!(
        pay(fixture, 1, &ids(&pair)).await.is_ok(),
        "the pair is paid"
    );
    let published = relay_all(fixture, &stream).await;
    let mut expected = vec![balance_shape(
        EventType::BalanceDebited,
        None,
        1,
        200_000,
        100_000,
    )];
    expected.extend(
        pair.iter()
            .map(|r| reservation_shape(EventType::ReservationConfirmed, r, Some(r.price))),
    );
    assert_eq!(
        sorted(published.iter().map(shape).collect()),
        sorted(expected),
        "a payment writes balance.debited and reservation.confirmed per reservation"
    );
    everything.extend(published);

    let third = hold_one(fixture, 1, 1, 11, 3).await;
    fixture.inventory().cancel(third.id).await.unwrap();
    assert!(
        refund(fixture, 1, pair[0].id).await.is_ok(),
        "the first seat is refunded"
    );
    let published = relay_all(fixture, &stream).await;
    assert_eq!(
        sorted(published.iter().map(shape).collect()),
        sorted(vec![
            reservation_shape(EventType::ReservationHeld, &third, Some(third.price)),
            reservation_shape(EventType::ReservationCancelled, &third, None),
            reservation_shape(
                EventType::ReservationRefunded,
                &pair[0],
                Some(pair[0].price)
            ),
            balance_shape(
                EventType::BalanceRefunded,
                Some(pair[0].id),
                1,
                100_000,
                200_000
            ),
        ]),
        "a cancellation writes reservation.cancelled; a refund reservation.refunded and \
         balance.refunded"
    );
    everything.extend(published);

    let lapsing = hold_one(fixture, 2, 1, 11, 4).await;
    fixture.advance(LAPSE).await;
    assert_eq!(fixture.inventory().release_expired(100).await, Ok(1));
    let published = relay_all(fixture, &stream).await;
    assert_eq!(
        sorted(published.iter().map(shape).collect()),
        sorted(vec![
            reservation_shape(EventType::ReservationHeld, &lapsing, Some(lapsing.price)),
            reservation_shape(EventType::ReservationExpired, &lapsing, None),
        ]),
        "the clean-up writes reservation.expired"
    );
    everything.extend(published);

    let event_ids: Vec<EventId> = everything.iter().map(|e| e.id).collect();
    assert!(
        event_ids.windows(2).all(|pair| pair[0] < pair[1]),
        "events are published once each, in id order: {event_ids:?}"
    );
    let order_of = |reservation: ReservationId| -> Vec<EventType> {
        everything
            .iter()
            .filter(|e| e.reservation == Some(reservation) && !e.kind.is_balance())
            .map(|e| e.kind)
            .collect()
    };
    assert_eq!(
        order_of(pair[0].id),
        vec![
            EventType::ReservationHeld,
            EventType::ReservationConfirmed,
            EventType::ReservationRefunded
        ],
        "a reservation's events are in the order they happened"
    );
    assert_eq!(
        order_of(third.id),
        vec![EventType::ReservationHeld, EventType::ReservationCancelled]
    );

    // A batch at a time.
    for _ in 0..5 {
        charge(fixture, 2, 1_000).await;
    }
    let mut reports = Vec::new();
    for _ in 0..4 {
        reports.push(outbox.relay(2, publisher.clone()).await.unwrap());
    }
    let counts: Vec<(usize, usize)> = reports.iter().map(|r| (r.claimed, r.published)).collect();
    assert_eq!(
        counts,
        vec![(2, 2), (2, 2), (1, 1), (0, 0)],
        "a relay step claims and publishes at most its batch"
    );
    let balances: Vec<Option<Won>> = stream.published()[stream.published().len() - 5..]
        .iter()
        .map(|e| e.balance)
        .collect();
    assert_eq!(
        balances,
        (1..=5).map(|n| Some(won(n * 1_000))).collect::<Vec<_>>(),
        "a user's balance events are published in the order they happened"
    );

    // A failed publish leaves the events unsent, for a later step, with the same ids.
    charge(fixture, 2, 1_000).await;
    let published_before = stream.published().len();
    stream.set_unavailable(true);
    assert!(
        outbox.relay(100, publisher.clone()).await.is_err(),
        "a relay step fails when the publisher does"
    );
    stream.set_unavailable(false);
    let retried = relay_all(fixture, &stream).await;
    assert_eq!(
        retried.iter().map(shape).collect::<Vec<_>>(),
        vec![balance_shape(
            EventType::BalanceCharged,
            None,
            2,
            1_000,
            6_000
        )],
        "an event not published is published by a later step"
    );
    assert_eq!(stream.published().len(), published_before + 1);

    // Sent events are forgotten after an age; unsent ones are kept.
    let sent = stream.published().len() as u64;
    fixture.advance(Duration::from_secs(2 * 3_600)).await;
    charge(fixture, 2, 1_000).await;
    assert_eq!(
        outbox
            .forget_sent_older_than(Duration::from_secs(3_600))
            .await,
        Ok(sent),
        "events sent longer ago than the age are forgotten"
    );
    let kept = relay_all(fixture, &stream).await;
    assert_eq!(
        kept.iter().map(shape).collect::<Vec<_>>(),
        vec![balance_shape(
            EventType::BalanceCharged,
            None,
            2,
            1_000,
            7_000
        )],
        "an unsent event is never forgotten"
    );
    assert_eq!(
        outbox
            .forget_sent_older_than(Duration::from_secs(3_600))
            .await,
        Ok(0),
        "a freshly sent event is kept"
    );
}

// --- EventPublisher --------------------------------------------------------------------------

fn sample_event(id: i64, kind: EventType) -> Event {
    Event {
        id: EventId::new(id).unwrap(),
        kind,
        occurred_at: DateTime::<Utc>::from_timestamp(2_000_000_000, 123_000_000).unwrap(),
        reservation: Some(reservation_id(9_000 + id)),
        user: Some(user_id(7)),
        performance: Some(performance_id(119)),
        seat: Some(seat_no(42)),
        amount: Some(won(150_000)),
        balance: None,
    }
}

/// [`EventPublisher`]: events are appended in the order given, each with the fields of
/// [`Event::fields`]; nothing is appended for no events; an event published again is appended
/// again with the same id (consumers deduplicate on it). `stream` reads what `publisher`
/// appended; it must start empty.
pub async fn event_publisher_contract(
    publisher: &dyn EventPublisher,
    stream: &dyn PublishedStream,
) {
    assert_eq!(
        stream.entries().await,
        Vec::<Vec<(String, String)>>::new(),
        "the stream starts empty"
    );
    publisher
        .publish(&[])
        .await
        .expect("publishing nothing succeeds");
    assert!(
        stream.entries().await.is_empty(),
        "publishing nothing appends nothing"
    );

    let first = sample_event(1, EventType::ReservationHeld);
    let second = Event {
        reservation: None,
        performance: None,
        seat: None,
        balance: Some(won(50_000)),
        ..sample_event(2, EventType::BalanceCharged)
    };
    publisher
        .publish(&[first.clone(), second.clone()])
        .await
        .expect("publishing succeeds");
    assert_eq!(
        stream.entries().await,
        vec![owned_fields(&first), owned_fields(&second)],
        "events are appended in the order given, with their fields"
    );
    publisher
        .publish(std::slice::from_ref(&first))
        .await
        .expect("publishing again succeeds");
    let entries = stream.entries().await;
    assert_eq!(
        entries.len(),
        3,
        "an event published again is appended again (at least once)"
    );
    assert_eq!(
        entries[2],
        owned_fields(&first),
        "with the same id and fields"
    );
}

// --- SeatMemory and Clock --------------------------------------------------------------------

/// [`SeatMemory`] over the fixture's store: a seat never taken is never refused; a hold is
/// refused from memory only until its expiry; an unknown performance is not remembered as
/// taken. `memory` must read the fixture's catalog.
pub async fn seat_memory_contract(fixture: &impl StoreFixture, memory: &dyn SeatMemory) {
    fixture.seed_concert(&concert(1)).await;
    fixture
        .seed_performance(
            concert_id(1),
            performance_id(11),
            30 * DAY,
            &seat_specs(1..=3, "R", 100_000),
        )
        .await;
    seed_users(fixture, 1..=1).await;
    let held = hold_one(fixture, 1, 1, 11, 1).await;
    let asked = [seat_no(1), seat_no(2), seat_no(3)];
    if let Some(recollection) = memory.recall(concert_id(1), performance_id(11)).await {
        let taken = recollection.still_taken(&asked);
        assert!(
            !taken.contains(&seat_no(2)) && !taken.contains(&seat_no(3)),
            "a seat never taken is never refused from memory: {taken:?}"
        );
        let after_expiry = (held.expires_at - recollection.seats.read_at())
            .to_std()
            .unwrap_or(Duration::ZERO)
            + Duration::from_secs(1);
        assert_eq!(
            recollection.seats.still_taken(&asked, after_expiry),
            vec![],
            "a hold is refused from memory only until its expiry"
        );
    }
    if let Some(recollection) = memory.recall(concert_id(1), performance_id(99)).await {
        assert!(
            recollection.still_taken(&asked).is_empty(),
            "an unknown performance has no taken seats"
        );
    }
}

/// [`Clock`]: time never runs backwards between two readings.
pub fn clock_contract(clock: &dyn Clock) {
    let first = clock.now();
    let second = clock.now();
    assert!(
        second >= first,
        "time never runs backwards: {first} then {second}"
    );
}
