//! The catalog: concerts, their performances and the seats of each performance.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::{ConcertId, PerformanceId, SeatNo};
use crate::money::Won;
use crate::taken_seats::TakenSeats;
use crate::InfrastructureError;

/// A show by an artist at a venue; it has one or more performances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concert {
    /// The concert's identifier.
    pub id: ConcertId,
    /// The concert's title, as shown to buyers.
    pub title: String,
    /// Who performs.
    pub artist: String,
    /// Where the concert takes place.
    pub venue: String,
}

/// One date of a concert, with its seat counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Performance {
    /// The performance's identifier.
    pub id: PerformanceId,
    /// The concert this is a performance of.
    pub concert_id: ConcertId,
    /// When the performance begins.
    pub starts_at: DateTime<Utc>,
    /// How many seats the performance has; seats are numbered `1..=total_seats`.
    pub total_seats: u32,
    /// Seats neither sold nor under a live hold.
    pub available_seats: u32,
}

/// What a buyer can do with a seat right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SeatStatus {
    /// Free to hold (including a seat whose hold has expired).
    Available,
    /// Under a live hold by some reservation.
    Held,
    /// Paid for.
    Sold,
}

impl SeatStatus {
    /// The contract's spelling: `AVAILABLE`, `HELD`, `SOLD`.
    pub fn as_str(self) -> &'static str {
        match self {
            SeatStatus::Available => "AVAILABLE",
            SeatStatus::Held => "HELD",
            SeatStatus::Sold => "SOLD",
        }
    }

    /// Parses the contract's spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "AVAILABLE" => Some(SeatStatus::Available),
            "HELD" => Some(SeatStatus::Held),
            "SOLD" => Some(SeatStatus::Sold),
            _ => None,
        }
    }
}

/// A seat of a performance as a buyer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// The seat's number in its performance.
    pub no: SeatNo,
    /// The price class, such as `VIP`, `R`, `S` or `A`.
    pub grade: String,
    /// What the seat costs.
    pub price: Won,
    /// What a buyer can do with the seat now.
    pub status: SeatStatus,
}

/// Why a catalog listing could not be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// No concert has this id.
    #[error("concert {0} does not exist")]
    ConcertNotFound(ConcertId),
    /// The performance does not exist or belongs to another concert.
    #[error("performance {performance} of concert {concert} does not exist")]
    PerformanceNotFound {
        /// The concert asked for.
        concert: ConcertId,
        /// The performance asked for.
        performance: PerformanceId,
    },
    /// The store cannot answer.
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// Reads the catalog from where it is stored.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ConcertCatalog: Send + Sync {
    /// Every concert, by id.
    ///
    /// # Errors
    /// [`CatalogError::Infrastructure`] when the store cannot answer.
    async fn concerts(&self) -> Result<Vec<Concert>, CatalogError>;

    /// The performances of `concert`, earliest first, with their current seat counts.
    ///
    /// # Errors
    /// [`CatalogError::ConcertNotFound`] when no concert has this id;
    /// [`CatalogError::Infrastructure`] when the store cannot answer.
    async fn performances(&self, concert: ConcertId) -> Result<Vec<Performance>, CatalogError>;

    /// The seats of `performance`, by number, each with its status judged by the store's clock
    /// (a seat whose hold has expired is [`SeatStatus::Available`]).
    ///
    /// # Errors
    /// [`CatalogError::PerformanceNotFound`] when the performance does not exist or belongs to
    /// another concert; [`CatalogError::Infrastructure`] when the store cannot answer.
    async fn seats(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
    ) -> Result<Vec<Seat>, CatalogError>;

    /// The seats of `performance` that are sold or under a live hold, with the store's clock at
    /// the read: what an instance may refuse from memory ([`crate::taken_seats`]).
    ///
    /// # Errors
    /// As [`ConcertCatalog::seats`].
    async fn taken_seats(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
    ) -> Result<TakenSeats, CatalogError>;
}

/// The catalog use cases: what a buyer may browse.
#[derive(Clone)]
pub struct CatalogService {
    catalog: Arc<dyn ConcertCatalog>,
}

impl std::fmt::Debug for CatalogService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogService").finish_non_exhaustive()
    }
}

impl CatalogService {
    /// The use cases over the catalog stored in `catalog`.
    pub fn new(catalog: Arc<dyn ConcertCatalog>) -> Self {
        Self { catalog }
    }

    /// Every concert on sale.
    ///
    /// # Errors
    /// See [`ConcertCatalog::concerts`].
    pub async fn list_concerts(&self) -> Result<Vec<Concert>, CatalogError> {
        self.catalog.concerts().await
    }

    /// The performances of one concert.
    ///
    /// # Errors
    /// See [`ConcertCatalog::performances`].
    pub async fn list_performances(
        &self,
        concert: ConcertId,
    ) -> Result<Vec<Performance>, CatalogError> {
        self.catalog.performances(concert).await
    }

    /// The seat map of one performance of one concert.
    ///
    /// # Errors
    /// See [`ConcertCatalog::seats`].
    pub async fn list_seats(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
    ) -> Result<Vec<Seat>, CatalogError> {
        self.catalog.seats(concert, performance).await
    }

    /// The taken seats of one performance of one concert, for refusals from memory.
    ///
    /// # Errors
    /// See [`ConcertCatalog::taken_seats`].
    pub async fn taken_seats(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
    ) -> Result<TakenSeats, CatalogError> {
        self.catalog.taken_seats(concert, performance).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mockall::predicate::eq;

    fn concert(id: i64) -> ConcertId {
        ConcertId::new(id).expect("valid id")
    }

    fn performance(id: i64) -> PerformanceId {
        PerformanceId::new(id).expect("valid id")
    }

    #[test]
    fn seat_statuses_round_trip_through_the_contract_spelling() {
        for status in [SeatStatus::Available, SeatStatus::Held, SeatStatus::Sold] {
            assert_eq!(SeatStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(SeatStatus::parse("EXPIRED"), None);
    }

    #[tokio::test]
    async fn seats_are_asked_for_the_concert_and_performance_requested() {
        let mut store = MockConcertCatalog::new();
        store
            .expect_seats()
            .with(eq(concert(1)), eq(performance(119)))
            .times(1)
            .returning(|_, _| {
                Ok(vec![Seat {
                    no: SeatNo::new(1).expect("valid"),
                    grade: "R".into(),
                    price: Won::new(150_000).expect("valid"),
                    status: SeatStatus::Available,
                }])
            });
        let service = CatalogService::new(Arc::new(store));

        let seats = service.list_seats(concert(1), performance(119)).await;

        assert_eq!(seats.map(|s| s.len()), Ok(1));
    }

    #[tokio::test]
    async fn a_performance_of_another_concert_is_not_found() {
        let mut store = MockConcertCatalog::new();
        store.expect_seats().returning(|c, p| {
            Err(CatalogError::PerformanceNotFound {
                concert: c,
                performance: p,
            })
        });
        let service = CatalogService::new(Arc::new(store));

        let result = service.list_seats(concert(2), performance(119)).await;

        assert!(matches!(
            result,
            Err(CatalogError::PerformanceNotFound { .. })
        ));
    }

    #[tokio::test]
    async fn an_unavailable_store_is_reported_as_such() {
        let mut store = MockConcertCatalog::new();
        store
            .expect_concerts()
            .returning(|| Err(InfrastructureError::unavailable("pool timeout").into()));
        let service = CatalogService::new(Arc::new(store));

        let result = service.list_concerts().await;

        assert!(matches!(
            result,
            Err(CatalogError::Infrastructure(
                InfrastructureError::Unavailable(_)
            ))
        ));
    }
}
