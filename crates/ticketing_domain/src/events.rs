//! Events: every change of a reservation or a balance is recorded with the change (a
//! transactional outbox) and then published, at least once, for other services to learn of it.
//!
//! A relay claims recorded events, publishes them and marks them sent. Several relays may run
//! at once (one per instance): each claims events no other relay holds, and an event is held
//! back while an earlier unsent event of the same reservation (or, for balance events, of the
//! same user) is in another relay's hands, so the events of one reservation appear in the order
//! they happened.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::ids::{EventId, PerformanceId, ReservationId, SeatNo, UserId};
use crate::money::Won;
use crate::InfrastructureError;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum EventType {
    /// A seat was put under a hold for a new reservation (`reservation.held`).
    ReservationHeld,
    /// A held reservation was paid for: its seat is sold (`reservation.confirmed`).
    ReservationConfirmed,
    /// A live hold was cancelled and its seat freed (`reservation.cancelled`).
    ReservationCancelled,
    /// A lapsed hold was retired: its reservation is expired (`reservation.expired`).
    ReservationExpired,
    /// A paid reservation was refunded and its seat freed (`reservation.refunded`).
    ReservationRefunded,
    /// The user charged their balance (`balance.charged`).
    BalanceCharged,
    /// A payment took its amount from the balance (`balance.debited`).
    BalanceDebited,
    /// A refund gave the price back to the balance (`balance.refunded`).
    BalanceRefunded,
}

impl EventType {
    /// Every type.
    pub const ALL: [EventType; 8] = [
        EventType::ReservationHeld,
        EventType::ReservationConfirmed,
        EventType::ReservationCancelled,
        EventType::ReservationExpired,
        EventType::ReservationRefunded,
        EventType::BalanceCharged,
        EventType::BalanceDebited,
        EventType::BalanceRefunded,
    ];

    /// The contract's spelling (`reservation.held`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ReservationHeld => "reservation.held",
            EventType::ReservationConfirmed => "reservation.confirmed",
            EventType::ReservationCancelled => "reservation.cancelled",
            EventType::ReservationExpired => "reservation.expired",
            EventType::ReservationRefunded => "reservation.refunded",
            EventType::BalanceCharged => "balance.charged",
            EventType::BalanceDebited => "balance.debited",
            EventType::BalanceRefunded => "balance.refunded",
        }
    }

    /// Parses the contract's spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }

    /// Whether it is the change of a balance (ordered with the user's other balance changes)
    /// rather than of a reservation (ordered with the reservation's other changes).
    pub fn is_balance(self) -> bool {
        matches!(
            self,
            EventType::BalanceCharged | EventType::BalanceDebited | EventType::BalanceRefunded
        )
    }
}

/// One recorded event, with the fields that apply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's identifier, the same on every publication of it (consumers deduplicate on it).
    pub id: EventId,
    /// What happened.
    pub kind: EventType,
    /// When the change was recorded.
    pub occurred_at: DateTime<Utc>,
    /// The reservation concerned, if any.
    pub reservation: Option<ReservationId>,
    /// The user concerned, if any.
    pub user: Option<UserId>,
    /// The performance of the seat concerned, if any.
    pub performance: Option<PerformanceId>,
    /// The seat concerned, if any.
    pub seat: Option<SeatNo>,
    /// A price, a sum paid, an amount charged or refunded.
    pub amount: Option<Won>,
    /// The balance after a balance change.
    pub balance: Option<Won>,
}

/// What orders events: those of one key are published in the order they were recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OrderingKey {
    /// The events of one reservation.
    Reservation(ReservationId),
    /// The balance events of one user.
    Balance(UserId),
    /// An event that names neither: ordered with nothing.
    Alone(EventId),
}

impl Event {
    /// A reservation's events are ordered by reservation, a balance's by user.
    pub fn ordering_key(&self) -> OrderingKey {
        match (self.kind.is_balance(), self.reservation, self.user) {
            (true, _, Some(user)) => OrderingKey::Balance(user),
            (false, Some(reservation), _) => OrderingKey::Reservation(reservation),
            _ => OrderingKey::Alone(self.id),
        }
    }

    /// The entry of the stream: `id`, `type`, `occurredAt` and, as they apply,
    /// `reservationId`, `userId`, `performanceId`, `seatId`, `amount`, `balance`.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("id", self.id.to_string()),
            ("type", self.kind.as_str().to_string()),
            (
                "occurredAt",
                self.occurred_at
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            ),
        ];
        let optional = [
            ("reservationId", self.reservation.map(|id| id.to_string())),
            ("userId", self.user.map(|id| id.to_string())),
            ("performanceId", self.performance.map(|id| id.to_string())),
            ("seatId", self.seat.map(|seat| seat.to_string())),
            ("amount", self.amount.map(|won| won.get().to_string())),
            ("balance", self.balance.map(|won| won.get().to_string())),
        ];
        fields.extend(
            optional
                .into_iter()
                .filter_map(|(name, value)| value.map(|value| (name, value))),
        );
        fields
    }
}

/// Of the events a relay claimed (oldest first), those it may publish now: an event waits while
/// an unsent event of the same key with a smaller id is not among them (another relay holds
/// it, or it was recorded but not yet claimed), so a key's events never overtake each other.
/// `unsent_elsewhere` are the unsent events, not claimed by this relay, that share a key with a
/// claimed one.
pub fn publishable(claimed: Vec<Event>, unsent_elsewhere: &[Event]) -> Vec<Event> {
    let mut first_elsewhere: HashMap<OrderingKey, EventId> = HashMap::new();
    for event in unsent_elsewhere {
        first_elsewhere
            .entry(event.ordering_key())
            .and_modify(|first| *first = (*first).min(event.id))
            .or_insert(event.id);
    }
    claimed
        .into_iter()
        .filter(|event| {
            first_elsewhere
                .get(&event.ordering_key())
                .is_none_or(|first| *first > event.id)
        })
        .collect()
}

/// What one relay step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayReport {
    /// Events claimed (locked for this relay).
    pub claimed: usize,
    /// Events published and marked sent.
    pub published: usize,
}

/// Where events are published (a stream other services read).
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Appends the events to the stream in the order given. An event appended again (after a
    /// failure, by a retry) carries the same id; consumers deduplicate on it.
    ///
    /// # Errors
    /// [`InfrastructureError::Unavailable`] when the stream cannot be reached; then none of
    /// the events may count as published (some may have been appended: they will be again).
    async fn publish(&self, events: &[Event]) -> Result<(), InfrastructureError>;
}

/// The recorded events, where they are stored with the changes.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait EventOutbox: Send + Sync {
    /// One relay step: claims up to `batch` unsent events, oldest first, that no other relay
    /// holds (for a lease, so that a relay that dies does not hold them for ever); keeps those
    /// [`publishable`] allows; hands them to `publisher` in id order; marks them sent only if it
    /// succeeded, and gives back what it did not publish. A failure leaves every event unsent
    /// for a later step. No lock of the store is held while `publisher` runs.
    ///
    /// # Errors
    /// [`InfrastructureError`] when the store or the publisher fails.
    async fn relay(
        &self,
        batch: u32,
        publisher: Arc<dyn EventPublisher>,
    ) -> Result<RelayReport, InfrastructureError>;

    /// Forgets events sent more than `age` ago; returns how many.
    ///
    /// # Errors
    /// [`InfrastructureError`] when the store cannot answer.
    async fn forget_sent_older_than(&self, age: Duration) -> Result<u64, InfrastructureError>;
}

/// Most relay steps in one go: a backlog drains over several ticks rather than in one loop.
const MAX_STEPS: u32 = 20;

/// The relay use case.
#[derive(Clone)]
pub struct EventRelay {
    outbox: Arc<dyn EventOutbox>,
    publisher: Arc<dyn EventPublisher>,
    batch: NonZeroU32,
}

impl std::fmt::Debug for EventRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRelay")
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl EventRelay {
    /// A relay that moves the events recorded in `outbox` to `publisher`, up to `batch` per step.
    pub fn new(
        outbox: Arc<dyn EventOutbox>,
        publisher: Arc<dyn EventPublisher>,
        batch: NonZeroU32,
    ) -> Self {
        Self {
            outbox,
            publisher,
            batch,
        }
    }

    /// Publishes what is pending, a batch at a time, while batches come back full and some of
    /// each could be published; returns how many were published.
    ///
    /// # Errors
    /// The first step's failure (what earlier steps published stays published).
    pub async fn relay_pending(&self) -> Result<usize, InfrastructureError> {
        let mut published = 0;
        for _ in 0..MAX_STEPS {
            let report = self
                .outbox
                .relay(self.batch.get(), self.publisher.clone())
                .await?;
            published += report.published;
            let full = report.claimed >= self.batch.get() as usize;
            if !full || report.published == 0 {
                break;
            }
        }
        Ok(published)
    }

    /// Forgets events sent more than `age` ago.
    ///
    /// # Errors
    /// [`InfrastructureError`] when the store cannot answer.
    pub async fn forget_sent_older_than(&self, age: Duration) -> Result<u64, InfrastructureError> {
        self.outbox.forget_sent_older_than(age).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(2_000_000_000, 123_000_000).expect("valid")
    }

    fn event(id: i64, kind: EventType, reservation: Option<i64>, user: i64) -> Event {
        Event {
            id: EventId::new(id).expect("valid"),
            kind,
            occurred_at: at(),
            reservation: reservation.map(|r| ReservationId::new(r).expect("valid")),
            user: Some(UserId::new(user).expect("valid")),
            performance: None,
            seat: None,
            amount: None,
            balance: None,
        }
    }

    fn held(id: i64, reservation: i64) -> Event {
        event(id, EventType::ReservationHeld, Some(reservation), 7)
    }

    fn ids(events: &[Event]) -> Vec<i64> {
        events.iter().map(|e| e.id.get()).collect()
    }

    #[test]
    fn types_round_trip_through_the_contract_spelling() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventType::parse("reservation.sold"), None);
    }

    #[test]
    fn a_reservations_events_are_ordered_by_reservation_and_a_balances_by_user() {
        let confirmed = event(2, EventType::ReservationConfirmed, Some(9001), 7);
        let debited = event(3, EventType::BalanceDebited, Some(9001), 7);

        assert_eq!(
            confirmed.ordering_key(),
            OrderingKey::Reservation(ReservationId::new(9001).expect("valid"))
        );
        assert_eq!(
            debited.ordering_key(),
            OrderingKey::Balance(UserId::new(7).expect("valid"))
        );
    }

    #[test]
    fn an_entry_has_the_contract_fields_that_apply() {
        let mut charged = event(5, EventType::BalanceCharged, None, 7);
        charged.amount = Some(Won::new(50_000).expect("valid"));
        charged.balance = Some(Won::new(80_000).expect("valid"));

        assert_eq!(
            charged.fields(),
            vec![
                ("id", "5".to_string()),
                ("type", "balance.charged".to_string()),
                ("occurredAt", "2033-05-18T03:33:20.123Z".to_string()),
                ("userId", "7".to_string()),
                ("amount", "50000".to_string()),
                ("balance", "80000".to_string()),
            ]
        );
    }

    #[test]
    fn with_nothing_elsewhere_every_claimed_event_is_published() {
        let claimed = vec![held(1, 10), held(2, 11), held(3, 10)];

        assert_eq!(ids(&publishable(claimed, &[])), [1, 2, 3]);
    }

    #[test]
    fn an_event_waits_behind_an_earlier_one_of_its_reservation_held_elsewhere() {
        let claimed = vec![held(5, 10), held(6, 11), held(7, 10)];
        let elsewhere = vec![held(3, 10)];

        assert_eq!(ids(&publishable(claimed, &elsewhere)), [6]);
    }

    #[test]
    fn a_later_event_elsewhere_holds_nothing_back() {
        let claimed = vec![held(5, 10)];
        let elsewhere = vec![held(9, 10)];

        assert_eq!(ids(&publishable(claimed, &elsewhere)), [5]);
    }

    #[test]
    fn balance_events_wait_behind_the_users_earlier_balance_events() {
        let claimed = vec![
            event(5, EventType::BalanceDebited, Some(10), 7),
            event(6, EventType::BalanceCharged, None, 8),
        ];
        let elsewhere = vec![event(2, EventType::BalanceCharged, None, 7)];

        assert_eq!(ids(&publishable(claimed, &elsewhere)), [6]);
    }

    fn relay(outbox: MockEventOutbox, batch: u32) -> EventRelay {
        EventRelay::new(
            Arc::new(outbox),
            Arc::new(MockEventPublisher::new()),
            NonZeroU32::new(batch).expect("non-zero"),
        )
    }

    #[tokio::test]
    async fn full_batches_are_relayed_until_one_is_not() {
        let mut outbox = MockEventOutbox::new();
        let mut steps = vec![(3, 1), (10, 10), (10, 10)];
        outbox
            .expect_relay()
            .withf(|batch, _| *batch == 10)
            .times(3)
            .returning(move |_, _| {
                let (claimed, published) = steps.pop().unwrap_or((0, 0));
                Ok(RelayReport { claimed, published })
            });

        assert_eq!(relay(outbox, 10).relay_pending().await, Ok(21));
    }

    #[tokio::test]
    async fn a_full_batch_that_publishes_nothing_stops_the_round() {
        let mut outbox = MockEventOutbox::new();
        outbox.expect_relay().times(1).returning(|_, _| {
            Ok(RelayReport {
                claimed: 10,
                published: 0,
            })
        });

        assert_eq!(relay(outbox, 10).relay_pending().await, Ok(0));
    }

    #[tokio::test]
    async fn a_backlog_is_drained_a_bounded_number_of_steps_at_a_time() {
        let mut outbox = MockEventOutbox::new();
        outbox
            .expect_relay()
            .times(MAX_STEPS as usize)
            .returning(|batch, _| {
                Ok(RelayReport {
                    claimed: batch as usize,
                    published: batch as usize,
                })
            });

        assert_eq!(
            relay(outbox, 2).relay_pending().await,
            Ok(2 * MAX_STEPS as usize)
        );
    }

    #[tokio::test]
    async fn a_failed_step_is_reported() {
        let mut outbox = MockEventOutbox::new();
        outbox
            .expect_relay()
            .returning(|_, _| Err(InfrastructureError::unavailable("redis is down")));

        assert!(relay(outbox, 10).relay_pending().await.is_err());
    }
}
