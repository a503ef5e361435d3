//! [`RedisEventPublisher`] against the contract of [`EventPublisher`]
//! (`ticketing_domain::testing::store_contract`), on a stream under the test's own key prefix.
//!
//! [`EventPublisher`]: ticketing_domain::events::EventPublisher

use async_trait::async_trait;
use ticketing_domain::testing::store_contract::{self as contract, PublishedStream};
use ticketing_redis::{RedisEventPublisher, RedisEventStream};
use ticketing_testkit::TestRedis;

/// The stream as a consumer reads it: every entry's fields.
struct StreamRead(RedisEventStream);

#[async_trait]
impl PublishedStream for StreamRead {
    async fn entries(&self) -> Vec<Vec<(String, String)>> {
        self.0
            .all()
            .await
            .expect("the stream can be read")
            .into_iter()
            .map(|entry| entry.fields)
            .collect()
    }
}

#[tokio::test]
async fn the_redis_stream_keeps_the_publishers_contract() {
    let redis = TestRedis::new();
    let publisher = RedisEventPublisher::new(redis.pool().clone(), &redis.keys(), None);
    let stream = StreamRead(RedisEventStream::new(redis.pool().clone(), &redis.keys()));

    contract::event_publisher_contract(&publisher, &stream).await;
}
