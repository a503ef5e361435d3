//! The event stream against a real Redis, under a key prefix of the test's own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ticketing_domain::events::{Event, EventPublisher, EventType};
use ticketing_domain::ids::{EventId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::money::Won;
use ticketing_domain::InfrastructureError;
use ticketing_redis::{
    stream_key, GroupStart, RedisEventPublisher, RedisEventStream, RedisPool, RedisSettings,
};
use ticketing_testkit::TestRedis;

fn held(id: i64, reservation: i64) -> Event {
    Event {
        id: EventId::new(id).unwrap(),
        kind: EventType::ReservationHeld,
        occurred_at: DateTime::<Utc>::from_timestamp(2_000_000_000, 0).unwrap(),
        reservation: Some(ReservationId::new(reservation).unwrap()),
        user: Some(UserId::new(7).unwrap()),
        performance: Some(PerformanceId::new(119).unwrap()),
        seat: Some(SeatNo::new(42).unwrap()),
        amount: Some(Won::new(150_000).unwrap()),
        balance: None,
    }
}

#[tokio::test]
async fn events_are_appended_in_order_with_their_fields_under_the_stacks_key() {
    let redis = TestRedis::new();
    let publisher = RedisEventPublisher::new(redis.pool().clone(), &redis.keys(), None);
    let stream = RedisEventStream::new(redis.pool().clone(), &redis.keys());

    publisher
        .publish(&[held(1, 9001), held(2, 9002)])
        .await
        .unwrap();

    assert_eq!(stream.key(), format!("{}:events", redis.prefix()));
    assert_eq!(stream_key(&redis.keys()), stream.key());
    let entries = stream.all().await.unwrap();
    assert_eq!(entries.len(), 2);
    let fields: Vec<(&str, &str)> = entries[0]
        .fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("id", "1"),
            ("type", "reservation.held"),
            ("occurredAt", "2033-05-18T03:33:20.000Z"),
            ("reservationId", "9001"),
            ("userId", "7"),
            ("performanceId", "119"),
            ("seatId", "42"),
            ("amount", "150000"),
        ]
    );
    assert_eq!(entries[1].field("id"), Some("2"));
}

#[tokio::test]
async fn a_group_reads_each_entry_once_and_again_only_while_unacknowledged() {
    let redis = TestRedis::new();
    let publisher = RedisEventPublisher::new(redis.pool().clone(), &redis.keys(), None);
    let stream = RedisEventStream::new(redis.pool().clone(), &redis.keys());
    publisher.publish(&[held(1, 9001)]).await.unwrap();
    stream.join("mail", GroupStart::Beginning).await.unwrap();
    stream.join("mail", GroupStart::Beginning).await.unwrap();
    stream.join("late", GroupStart::New).await.unwrap();
    publisher.publish(&[held(2, 9002)]).await.unwrap();
    let wait = Duration::from_millis(100);

    let first = stream.read("mail", "a", 10, wait, false).await.unwrap();
    let nothing_new = stream.read("mail", "b", 10, wait, false).await.unwrap();
    let pending = stream.read("mail", "a", 10, wait, true).await.unwrap();
    stream
        .ack(
            "mail",
            &first
                .iter()
                .map(|e| e.stream_id.clone())
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let after_ack = stream.read("mail", "a", 10, wait, true).await.unwrap();
    let late = stream.read("late", "a", 10, wait, false).await.unwrap();

    let ids = |entries: &[ticketing_redis::StreamEntry]| -> Vec<String> {
        entries
            .iter()
            .map(|e| e.field("id").unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&first), ["1", "2"]);
    assert!(nothing_new.is_empty(), "each entry goes to one consumer");
    assert_eq!(ids(&pending), ["1", "2"], "delivered, not acknowledged");
    assert!(after_ack.is_empty());
    assert_eq!(
        ids(&late),
        ["2"],
        "a group started New sees what came after"
    );
}

#[tokio::test]
async fn the_stream_is_trimmed_to_about_its_maximum() {
    let redis = TestRedis::new();
    let publisher =
        RedisEventPublisher::new(redis.pool().clone(), &redis.keys(), NonZeroU64::new(10));
    let stream = RedisEventStream::new(redis.pool().clone(), &redis.keys());

    for batch in 0..30 {
        let events: Vec<Event> = (0..10).map(|i| held(batch * 10 + i + 1, 1)).collect();
        publisher.publish(&events).await.unwrap();
    }

    let kept = stream.all().await.unwrap().len();
    assert!((10..300).contains(&kept), "kept {kept}");
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable() {
    let mut settings = RedisSettings::new("redis://127.0.0.1:1");
    settings.connect_timeout = Duration::from_millis(200);
    let pool = RedisPool::new(&settings).unwrap();
    let publisher = RedisEventPublisher::new(pool, &ticketing_redis::KeySpace::new("x"), None);

    let result = publisher.publish(&[held(1, 1)]).await;

    assert!(matches!(result, Err(InfrastructureError::Unavailable(_))));
}
