//! Catalog answers, serialized once per fill and shared by every request of this instance for
//! at most the configured staleness. Concurrent misses of one key wait for a single load.
//! This instance's own writes invalidate what they change; another instance's writes show
//! here within the staleness bound. Beside the listings it keeps each performance's taken
//! seats, from which holds are refused without a round trip (see `seat_memory`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use moka::future::Cache;
use serde::Serialize;
use ticketing_domain::ids::{ConcertId, PerformanceId};
use ticketing_domain::taken_seats::{Recollection, TakenSeats};

use crate::problem::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CatalogKey {
    Concerts,
    Performances(ConcertId),
    Seats(ConcertId, PerformanceId),
}

/// A read of a performance's taken seats and the moment, by this process's clock, just before
/// it was asked for: its age never understates how old the data is.
#[derive(Debug)]
struct Sighting {
    seats: Arc<TakenSeats>,
    asked_at: Instant,
}

/// Serialized catalog listings and taken seats; a zero staleness turns caching off.
#[derive(Clone)]
pub struct CatalogCache {
    entries: Option<Cache<CatalogKey, Bytes>>,
    taken: Option<Cache<(ConcertId, PerformanceId), Arc<Sighting>>>,
    max_staleness: Duration,
}

impl std::fmt::Debug for CatalogCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogCache")
            .field("enabled", &self.entries.is_some())
            .finish()
    }
}

fn serialize<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("serializing a catalog answer: {e}")))
}

impl CatalogCache {
    pub fn new(max_staleness: Duration) -> Self {
        let enabled = !max_staleness.is_zero();
        let entries = enabled.then(|| {
            Cache::builder()
                .time_to_live(max_staleness)
                .max_capacity(10_000)
                .build()
        });
        let taken = enabled.then(|| {
            Cache::builder()
                .time_to_live(max_staleness)
                .max_capacity(10_000)
                .build()
        });
        Self {
            entries,
            taken,
            max_staleness,
        }
    }

    /// The taken seats of a performance as read at most the staleness bound ago (read now, by
    /// one load however many ask at once, when there is no such read); `None` when caching is
    /// off or the read failed, and the store then decides.
    pub async fn taken_seats<E>(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
        load: impl Future<Output = Result<TakenSeats, E>>,
    ) -> Option<Recollection>
    where
        E: Send + Sync + 'static,
    {
        let taken = self.taken.as_ref()?;
        let sighting = taken
            .try_get_with((concert, performance), async {
                let asked_at = Instant::now();
                let seats = load.await?;
                Ok::<_, E>(Arc::new(Sighting {
                    seats: Arc::new(seats),
                    asked_at,
                }))
            })
            .await
            .ok()?;
        let age = sighting.asked_at.elapsed();
        // The entry lives the bound from when the load ended; the read is older than that.
        (age <= self.max_staleness).then(|| Recollection {
            seats: Arc::clone(&sighting.seats),
            age,
        })
    }

    async fn get_or_load<T, F>(&self, key: CatalogKey, load: F) -> Result<Bytes, ApiError>
    where
        T: Serialize,
        F: Future<Output = Result<T, ApiError>>,
    {
        match &self.entries {
            None => serialize(&load.await?),
            Some(entries) => entries
                .try_get_with(key, async { serialize(&load.await?) })
                .await
                .map_err(Arc::unwrap_or_clone),
        }
    }

    pub async fn concerts<T: Serialize>(
        &self,
        load: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<Bytes, ApiError> {
        self.get_or_load(CatalogKey::Concerts, load).await
    }

    pub async fn performances<T: Serialize>(
        &self,
        concert: ConcertId,
        load: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<Bytes, ApiError> {
        self.get_or_load(CatalogKey::Performances(concert), load)
            .await
    }

    pub async fn seats<T: Serialize>(
        &self,
        concert: ConcertId,
        performance: PerformanceId,
        load: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<Bytes, ApiError> {
        self.get_or_load(CatalogKey::Seats(concert, performance), load)
            .await
    }

    /// After a hold: the seat map and the seat counts of that performance. The taken seats
    /// stay: what they hold is still taken, and a seat taken since is refused by the store.
    pub async fn seats_taken(&self, concert: ConcertId, performance: PerformanceId) {
        if let Some(entries) = &self.entries {
            entries
                .invalidate(&CatalogKey::Seats(concert, performance))
                .await;
            entries.invalidate(&CatalogKey::Performances(concert)).await;
        }
    }

    /// After a cancellation or a refund: as [`CatalogCache::seats_taken`], and the taken seats
    /// of that performance, so that this instance never refuses a seat it freed itself.
    pub async fn seats_freed(&self, concert: ConcertId, performance: PerformanceId) {
        self.seats_taken(concert, performance).await;
        if let Some(taken) = &self.taken {
            taken.invalidate(&(concert, performance)).await;
        }
    }

    /// After a change whose performance is not at hand (a payment): everything.
    pub fn everything_changed(&self) {
        if let Some(entries) = &self.entries {
            entries.invalidate_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn concert() -> ConcertId {
        ConcertId::new(1).expect("valid")
    }

    fn performance() -> PerformanceId {
        PerformanceId::new(119).expect("valid")
    }

    #[tokio::test]
    async fn a_listing_is_loaded_once_while_fresh() {
        let cache = CatalogCache::new(Duration::from_secs(60));
        let loads = AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ApiError>(vec![1, 2, 3])
        };

        let first = cache.seats(concert(), performance(), load()).await;
        let second = cache.seats(concert(), performance(), load()).await;

        assert_eq!(first.ok(), Some(Bytes::from_static(b"[1,2,3]")));
        assert_eq!(second.ok(), Some(Bytes::from_static(b"[1,2,3]")));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_seat_change_reloads_that_seat_map() {
        let cache = CatalogCache::new(Duration::from_secs(60));
        let loads = AtomicUsize::new(0);
        let load = || async { Ok::<_, ApiError>(loads.fetch_add(1, Ordering::SeqCst)) };

        cache.seats(concert(), performance(), load()).await.ok();
        cache.seats_taken(concert(), performance()).await;
        let after = cache.seats(concert(), performance(), load()).await;

        assert_eq!(after.ok(), Some(Bytes::from_static(b"1")));
    }

    fn taken(no: i64) -> TakenSeats {
        let read_at = chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("valid");
        let seat = ticketing_domain::ids::SeatNo::new(no).expect("valid");
        TakenSeats::new(
            read_at,
            [(seat, ticketing_domain::taken_seats::Taken::Sold)],
        )
    }

    #[tokio::test]
    async fn taken_seats_are_read_once_while_fresh_and_again_once_freed_here() {
        let cache = CatalogCache::new(Duration::from_secs(60));
        let load = |no: i64| async move { Ok::<_, ApiError>(taken(no)) };

        let first = cache.taken_seats(concert(), performance(), load(1)).await;
        let cached = cache.taken_seats(concert(), performance(), load(2)).await;
        cache.seats_taken(concert(), performance()).await;
        let after_a_hold = cache.taken_seats(concert(), performance(), load(3)).await;
        cache.seats_freed(concert(), performance()).await;
        let after_a_cancel = cache.taken_seats(concert(), performance(), load(4)).await;

        let seats = |recollection: Option<Recollection>| {
            recollection.map(|r| {
                r.seats.still_taken(
                    &[1, 2, 3, 4].map(|n| ticketing_domain::ids::SeatNo::new(n).expect("valid")),
                    Duration::ZERO,
                )
            })
        };
        let seat = |n: i64| vec![ticketing_domain::ids::SeatNo::new(n).expect("valid")];
        assert_eq!(seats(first), Some(seat(1)));
        assert_eq!(seats(cached), Some(seat(1)));
        assert_eq!(
            seats(after_a_hold),
            Some(seat(1)),
            "a hold keeps what was taken"
        );
        assert_eq!(
            seats(after_a_cancel),
            Some(seat(4)),
            "a cancellation reads again"
        );
    }

    #[tokio::test]
    async fn a_failed_read_of_taken_seats_remembers_nothing() {
        let cache = CatalogCache::new(Duration::from_secs(60));

        let failed = cache
            .taken_seats(concert(), performance(), async {
                Err::<TakenSeats, _>(ApiError::Unavailable("down".into()))
            })
            .await;
        let off = CatalogCache::new(Duration::ZERO)
            .taken_seats(concert(), performance(), async {
                Ok::<_, ApiError>(taken(1))
            })
            .await;

        assert!(failed.is_none());
        assert!(
            off.is_none(),
            "no staleness allowed: the store decides every hold"
        );
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let cache = CatalogCache::new(Duration::from_secs(60));

        let failed = cache
            .concerts(async { Err::<u8, _>(ApiError::Unavailable("down".into())) })
            .await;
        let recovered = cache.concerts(async { Ok::<_, ApiError>(7u8) }).await;

        assert!(failed.is_err());
        assert_eq!(recovered.ok(), Some(Bytes::from_static(b"7")));
    }

    #[tokio::test]
    async fn zero_staleness_loads_every_time() {
        let cache = CatalogCache::new(Duration::ZERO);
        let loads = AtomicUsize::new(0);
        for _ in 0..3 {
            cache
                .concerts(async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ApiError>(0u8)
                })
                .await
                .ok();
        }
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }
}
