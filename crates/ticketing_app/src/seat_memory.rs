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
