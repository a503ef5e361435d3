//! The ledger of used invite codes on a real Redis: the contract, one winner among racing
//! claims, and a claim that lapses with its code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{Duration, Utc};
use ticketing_domain::rooms::{InviteLedger, InviteNonce, RoomId};
use ticketing_domain::testing::invites::invite_ledger_contract;
use ticketing_redis::{RedisInviteLedger, RedisPool};
use ticketing_testkit::TestRedis;

fn ledger(redis: &TestRedis) -> RedisInviteLedger {
    RedisInviteLedger::new(redis.pool().clone(), redis.prefix())
}

#[tokio::test]
async fn the_redis_ledger_keeps_the_contract() {
    let redis = TestRedis::new();
    invite_ledger_contract(&ledger(&redis)).await;
}

#[tokio::test]
async fn of_many_instances_claiming_one_code_at_once_exactly_one_wins() {
    let redis = TestRedis::new();
    let room = RoomId::parse("presale").unwrap();
    let nonce = InviteNonce::from_random([7; 16]);
    let until = Utc::now() + Duration::hours(1);
    let mut tasks = Vec::new();
    for instance in 0..4 {
        // Each instance has a pool of its own, as separate processes would.
        let ledger = Arc::new(RedisInviteLedger::new(
            RedisPool::new(&redis.settings()).unwrap(),
            redis.prefix(),
        ));
        for _ in 0..16 {
            let (ledger, nonce) = (ledger.clone(), nonce.clone());
            tasks.push(tokio::spawn(async move {
                (instance, ledger.claim(&room, &nonce, until).await.unwrap())
            }));
        }
    }
    let mut won = 0;
    for task in tasks {
        if task.await.unwrap().1 {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one of 64 racing claims counts");
}

#[tokio::test]
async fn a_claim_lapses_at_the_codes_expiry() {
    let redis = TestRedis::new();
    let room = RoomId::parse("presale").unwrap();
    let nonce = InviteNonce::from_random([8; 16]);
    let until = Utc::now() + Duration::minutes(10);
    assert!(ledger(&redis).claim(&room, &nonce, until).await.unwrap());
    let key = RedisInviteLedger::key_of(redis.prefix(), &room, &nonce);
    assert!(
        key.starts_with(&format!("{{{}:room:presale}}:", redis.prefix())),
        "under the room's hash tag: {key}"
    );
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query(&mut connection).unwrap();
    assert!(
        (9 * 60_000..=10 * 60_000).contains(&ttl_ms),
        "lapses with the code: {ttl_ms} ms"
    );
}
