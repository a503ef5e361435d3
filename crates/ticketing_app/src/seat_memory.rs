//! The domain's [`SeatMemory`] on this instance's catalog cache: holds of seats it read as
//! taken within the catalog's staleness bound are refused without a round trip.

use async_trait::async_trait;
use ticketing_domain::catalog::CatalogService;
use ticketing_domain::ids::{ConcertId, PerformanceId};
use ticketing_domain::taken_seats::{Recollection, SeatMemory};

use crate::catalog_cache::CatalogCache;

/// Taken seats read through the catalog, kept by the catalog cache.
#[derive(Debug, Clone)]
pub struct CachedSeatMemory {
    cache: CatalogCache,
    catalog: CatalogService,
}

impl CachedSeatMemory {
    pub fn new(cache: CatalogCache, catalog: CatalogService) -> Self {
        Self { cache, catalog }
    }
}

#[async_trait]
impl SeatMemory for CachedSeatMemory {
    async fn recall(&self, concert: ConcertId, performance: PerformanceId) -> Option<Recollection> {
        self.cache
            .taken_seats(
                concert,
                performance,
                self.catalog.taken_seats(concert, performance),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ticketing_domain::testing::store_contract::{self as contract, StoreFixture};
    use ticketing_testkit::PgStore;

    use super::*;

    #[tokio::test]
    async fn the_cached_seat_memory_keeps_the_contract_over_postgresql() {
        let store = PgStore::new().await;
        let memory = CachedSeatMemory::new(
            CatalogCache::new(Duration::from_secs(60)),
            CatalogService::new(store.catalog()),
        );

        contract::seat_memory_contract(&store, &memory).await;
        // The contract holds trivially for a memory that forgets; this one remembers.
        assert!(
            memory
                .recall(
                    ConcertId::new(1).expect("valid"),
                    PerformanceId::new(11).expect("valid")
                )
                .await
                .is_some(),
            "the contract's performance is remembered"
        );
    }
}
