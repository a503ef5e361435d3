//! The spent proofs of the gate against bots on a real Redis: a proof opens the gate once, also
//! when many entries race with it through several instances.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use ticketing_domain::rooms::{RoomId, SpentProofs};
use ticketing_redis::{RedisPool, RedisSpentProofs};
use ticketing_testkit::TestRedis;

const KEEP: Duration = Duration::from_secs(60);

fn room(id: &str) -> RoomId {
    RoomId::parse(id).unwrap()
}

/// The spent proofs as another instance sees them: its own pool, the same Redis and prefix.
fn instance(redis: &TestRedis) -> Arc<RedisSpentProofs> {
    Arc::new(RedisSpentProofs::new(
        RedisPool::new(&redis.settings()).unwrap(),
        redis.prefix(),
    ))
}

#[tokio::test]
async fn of_many_racing_entries_with_one_proof_exactly_one_passes() {
    let redis = TestRedis::new();
    let instances = [instance(&redis), instance(&redis), instance(&redis)];
    let challenge = "ab".repeat(32);
    let mut racers = tokio::task::JoinSet::new();
    for n in 0..60 {
        let spent = instances[n % instances.len()].clone();
        let challenge = challenge.clone();
        racers.spawn(async move {
            spent
                .spend(&RoomId::default_room(), &challenge, KEEP)
                .await
                .unwrap()
        });
    }
    let passed = racers
        .join_all()
        .await
        .into_iter()
        .filter(|passed| *passed)
        .count();
    assert_eq!(passed, 1);
}

#[tokio::test]
async fn proofs_and_rooms_are_apart() {
    let redis = TestRedis::new();
    let spent = instance(&redis);
    let default = RoomId::default_room();
    assert!(spent.spend(&default, "01", KEEP).await.unwrap());
    assert!(spent.spend(&default, "02", KEEP).await.unwrap());
    assert!(!spent.spend(&default, "01", KEEP).await.unwrap());
    // A room's proofs live under its own hash tag; its keys expire on their own.
    let other = room(&format!(
        "gate-{}",
        redis.prefix().replace(':', "-").to_lowercase()
    ));
    assert!(spent
        .spend(&other, "01", Duration::from_secs(5))
        .await
        .unwrap());
    assert!(!spent
        .spend(&other, "01", Duration::from_secs(5))
        .await
        .unwrap());
}

#[tokio::test]
async fn a_spent_proof_is_forgotten_once_it_expires() {
    let redis = TestRedis::new();
    let spent = instance(&redis);
    let default = RoomId::default_room();
    assert!(spent
        .spend(&default, "03", Duration::from_millis(100))
        .await
        .unwrap());
    let key = spent.key(&default, "03");
    let ttl: i64 = redis
        .pool()
        .run(async |connection| redis::cmd("PTTL").arg(&key).query_async(connection).await)
        .await
        .unwrap();
    assert!((1..=100).contains(&ttl), "{ttl}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(spent
        .spend(&default, "03", Duration::from_millis(100))
        .await
        .unwrap());
}

#[tokio::test]
async fn when_redis_cannot_be_reached_spending_fails() {
    let spent = RedisSpentProofs::new(
        RedisPool::new(&ticketing_redis::RedisSettings::new("redis://127.0.0.1:1")).unwrap(),
        "nowhere",
    );
    let failed = spent.spend(&RoomId::default_room(), "04", KEEP).await;
    assert!(failed.is_err_and(|error| error.is_unavailable()));
}
