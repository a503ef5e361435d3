//! Refusals from memory: what an instance last read of a performance's taken seats lets it
//! refuse a hold of a seat it knows to be sold, or held with an expiry still ahead, without
//! asking the store. Only refusals are told from it: a hold is granted by the store alone, so a
//! memory that is stale can only refuse a seat freed since the read (within its staleness
//! bound), never grant a taken one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::{ConcertId, PerformanceId, SeatNo};

/// How a seat was taken when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Not `#[non_exhaustive]`: port vocabulary, which every adapter and its tests handle in full;
// a new variant changes the port and must break them.
pub enum Taken {
    /// Paid for: taken until a refund, which this memory does not foresee.
    Sold,
    /// Under a hold that lapses at this instant of the store's clock.
    HeldUntil(DateTime<Utc>),
}

/// The taken seats of one performance as the store had them at one instant of its own clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenSeats {
    read_at: DateTime<Utc>,
    seats: HashMap<SeatNo, Taken>,
}

impl TakenSeats {
    /// What the store answered at `read_at` (its own clock, so that a hold's expiry is compared
    /// with the clock that set it).
    pub fn new(read_at: DateTime<Utc>, seats: impl IntoIterator<Item = (SeatNo, Taken)>) -> Self {
        Self {
            read_at,
            seats: seats.into_iter().collect(),
        }
    }

    /// The instant of the store's clock at which these seats were read.
    pub fn read_at(&self) -> DateTime<Utc> {
        self.read_at
    }

    /// How many seats were taken at the read.
    pub fn len(&self) -> usize {
        self.seats.len()
    }

    /// Whether no seat was taken at the read.
    pub fn is_empty(&self) -> bool {
        self.seats.is_empty()
    }

    /// The seats among `asked`, in the order asked, that are still taken `age` after the read by
    /// what was read: sold ones, and held ones whose hold lapses later than that. The age is
    /// measured by the reader's own clock from before it asked, so clock skew between the
    /// reader and the store does not matter and a late answer only makes the age larger.
    pub fn still_taken(&self, asked: &[SeatNo], age: Duration) -> Vec<SeatNo> {
        let now = chrono::Duration::from_std(age)
            .ok()
            .and_then(|age| self.read_at.checked_add_signed(age));
        asked
            .iter()
            .copied()
            .filter(|seat| match (self.seats.get(seat), now) {
                (Some(Taken::Sold), _) => true,
                (Some(Taken::HeldUntil(until)), Some(now)) => *until > now,
                _ => false,
            })
            .collect()
    }
}

/// A read of taken seats and how long ago it was made, as the instance remembers it.
#[derive(Debug, Clone)]
pub struct Recollection {
    /// The read, as the store answered it.
    pub seats: Arc<TakenSeats>,
    /// Time since the read was asked for, by the instance's own clock.
    pub age: Duration,
}

impl Recollection {
    /// See [`TakenSeats::still_taken`].
    pub fn still_taken(&self, asked: &[SeatNo]) -> Vec<SeatNo> {
        self.seats.still_taken(asked, self.age)
    }
}

/// What this instance remembers of the taken seats of a performance, if it read them within its
/// staleness bound. An implementation may read them (and remember them) when it has nothing
/// recent; it answers `None` when it cannot tell, and the store then decides.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SeatMemory: Send + Sync {
    /// The taken seats of `performance` of `concert` as read within the staleness bound, or `None`
    /// when this instance cannot tell (the store then decides).
    async fn recall(&self, concert: ConcertId, performance: PerformanceId) -> Option<Recollection>;
}

/// A memory that never remembers: every hold is decided by the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSeatMemory;

#[async_trait]
impl SeatMemory for NoSeatMemory {
    async fn recall(&self, _: ConcertId, _: PerformanceId) -> Option<Recollection> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(no: i64) -> SeatNo {
        SeatNo::new(no).expect("valid")
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("valid")
    }

    fn board() -> TakenSeats {
        TakenSeats::new(
            at(0),
            [
                (seat(1), Taken::Sold),
                (seat(2), Taken::HeldUntil(at(10))),
                (seat(3), Taken::HeldUntil(at(1))),
            ],
        )
    }

    #[test]
    fn sold_and_live_holds_are_taken_and_free_or_unknown_seats_are_not() {
        let taken = board().still_taken(&[seat(4), seat(2), seat(1), seat(3)], Duration::ZERO);

        assert_eq!(taken, vec![seat(2), seat(1), seat(3)]);
    }

    #[test]
    fn a_hold_that_lapses_within_the_age_of_the_read_is_not_refused() {
        let board = board();

        assert_eq!(
            board.still_taken(&[seat(3)], Duration::from_millis(999)),
            vec![seat(3)]
        );
        assert!(board
            .still_taken(&[seat(3)], Duration::from_secs(1))
            .is_empty());
        assert_eq!(
            board.still_taken(&[seat(1), seat(2), seat(3)], Duration::from_secs(60)),
            vec![seat(1)],
            "only the sold seat outlives every hold"
        );
    }

    #[test]
    fn an_age_past_any_clock_refuses_only_sold_seats() {
        let taken = board().still_taken(&[seat(1), seat(2)], Duration::MAX);

        assert_eq!(taken, vec![seat(1)]);
    }

    #[tokio::test]
    async fn no_memory_remembers_nothing() {
        let concert = ConcertId::new(1).expect("valid");
        let performance = PerformanceId::new(119).expect("valid");

        assert!(NoSeatMemory.recall(concert, performance).await.is_none());
    }
}
