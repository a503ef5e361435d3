//! Catalog answers, serialized once per fill and shared by every request of this instance for
//! at most the configured staleness. Concurrent misses of one key wait for a single load.
//! This instance's own writes invalidate what they change; another instance's writes show
//! here within the staleness bound.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use moka::future::Cache;
use serde::Serialize;
use ticketing_domain::ids::{ConcertId, PerformanceId};

use crate::problem::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum CatalogKey {
    Concerts,
    Performances(ConcertId),
    Seats(ConcertId, PerformanceId),
}

/// Serialized catalog listings; a zero staleness turns caching off.
#[derive(Clone)]
pub struct CatalogCache {
    entries: Option<Cache<CatalogKey, Bytes>>,
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
        let entries = (!max_staleness.is_zero()).then(|| {
            Cache::builder()
                .time_to_live(max_staleness)
                .max_capacity(10_000)
                .build()
        });
        Self { entries }
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

    /// After a hold or cancellation: the seat map and the seat counts of that performance.
    pub async fn seat_changed(&self, concert: ConcertId, performance: PerformanceId) {
        if let Some(entries) = &self.entries {
            entries
                .invalidate(&CatalogKey::Seats(concert, performance))
                .await;
            entries.invalidate(&CatalogKey::Performances(concert)).await;
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
        cache.seat_changed(concert(), performance()).await;
        let after = cache.seats(concert(), performance(), load()).await;

        assert_eq!(after.ok(), Some(Bytes::from_static(b"1")));
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
