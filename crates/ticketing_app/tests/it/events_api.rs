//! Events end to end: what the HTTP API changes reaches the Redis stream
//! `<APP__REDIS__KEY_PREFIX>:events`, in order per reservation, also across a Redis outage;
//! and `ticketing events tail` reads it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::TestApp;
use ticketing_redis::{KeySpace, RedisEventStream, RedisPool, RedisSettings, StreamEntry};
use ticketing_testkit::LocalRedis;

/// The relay runs often in these tests.
const FAST_RELAY: (&str, &str) = ("APP__EVENTS__RELAY_INTERVAL_MS", "50");

fn stream_of(app: &TestApp, redis_url: &str) -> RedisEventStream {
    let pool = RedisPool::new(&RedisSettings::new(redis_url)).unwrap();
    RedisEventStream::new(pool, &KeySpace::new(app.redis.prefix()))
}

/// The stream's entries once it holds at least `count` distinct events (by `id`).
async fn wait_for(stream: &RedisEventStream, count: usize) -> Vec<StreamEntry> {
    let started = Instant::now();
    loop {
        let entries = stream.all().await.unwrap_or_default();
        let distinct: HashSet<String> = entries
            .iter()
            .map(|e| e.field("id").unwrap().to_string())
            .collect();
        if distinct.len() >= count {
            return entries;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} of {count} events published",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each reservation's event types, in stream order, first appearance of each `id` only.
fn per_reservation(entries: &[StreamEntry]) -> HashMap<String, Vec<String>> {
    let mut seen = HashSet::new();
    let mut by_reservation: HashMap<String, Vec<String>> = HashMap::new();
    for entry in entries {
        let kind = entry.field("type").unwrap();
        if !seen.insert(entry.field("id").unwrap().to_string()) || kind.starts_with("balance.") {
            continue;
        }
        by_reservation
            .entry(entry.field("reservationId").unwrap().to_string())
            .or_default()
            .push(kind.to_string());
    }
    by_reservation
}

#[tokio::test]
async fn a_sale_and_a_refund_reach_the_stream_in_order_with_their_fields() {
    let app = TestApp::spawn_with(&[FAST_RELAY]).await;
    let stream = stream_of(&app, app.redis.url());
    let token = app.active_token(Some(7)).await;
    let held: Value = app
        .hold_seats(&token, 7, &[42, 800])
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<i64> = held["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reservationId"].as_i64().unwrap())
        .collect();
    let cancelled = app.held(&token, 7, 43).await;
    app.cancel_reservation(&token, cancelled).await;
    app.charge(7, 300_000, None).await;
    assert_eq!(app.pay_several(&token, &ids, 7, None).await.status(), 200);
    assert_eq!(app.refund(ids[0], 7, None, None).await.status(), 200);

    // held ×3, cancelled, charged, debited, confirmed ×2, refunded, balance.refunded
    let entries = wait_for(&stream, 10).await;

    let orders = per_reservation(&entries);
    let (first, second) = (ids[0].to_string(), ids[1].to_string());
    assert_eq!(
        orders[&first],
        [
            "reservation.held",
            "reservation.confirmed",
            "reservation.refunded"
        ]
    );
    assert_eq!(
        orders[&second],
        ["reservation.held", "reservation.confirmed"]
    );
    assert_eq!(
        orders[&cancelled.to_string()],
        ["reservation.held", "reservation.cancelled"]
    );
    let charged = entries
        .iter()
        .find(|e| e.field("type") == Some("balance.charged"))
        .unwrap();
    assert_eq!(charged.field("userId"), Some("7"));
    assert_eq!(charged.field("amount"), Some("300000"));
    assert_eq!(charged.field("balance"), Some("300000"));
    assert!(chrono::DateTime::parse_from_rfc3339(charged.field("occurredAt").unwrap()).is_ok());
    let confirmed = entries
        .iter()
        .find(|e| e.field("type") == Some("reservation.confirmed"))
        .unwrap();
    for field in [
        "reservationId",
        "userId",
        "performanceId",
        "seatId",
        "amount",
    ] {
        assert!(confirmed.field(field).is_some(), "{field} in {confirmed:?}");
    }
    assert_eq!(confirmed.field("performanceId"), Some("119"));
}

#[tokio::test]
async fn a_lapsed_hold_produces_reservation_expired_once() {
    let app = TestApp::spawn_with(&[
        FAST_RELAY,
        ("APP__RESERVATION__HOLD_TTL_SECONDS", "1"),
        ("APP__RESERVATION__EXPIRY_SWEEP_INTERVAL_MS", "100"),
    ])
    .await;
    let stream = stream_of(&app, app.redis.url());
    let token = app.active_token(None).await;
    let lapsing = app.held(&token, 7, 1).await;
    app.pass(Duration::from_secs(2)).await;
    app.held(&token, 8, 1).await;

    let entries = wait_for(&stream, 3).await;
    // A second `reservation.expired` (the sweep after the takeover, or a relay resending) has
    // no event of its own to wait for: a few sweeps and relays get the chance to publish it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let entries = stream.all().await.unwrap_or(entries);

    assert_eq!(
        per_reservation(&entries)[&lapsing.to_string()],
        ["reservation.held", "reservation.expired"]
    );
}

/// Redis goes away while people keep charging, holding and paying: every change is kept in
/// PostgreSQL and published once Redis is back; none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_redis_is_down() {
    let mut redis = LocalRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&[("REDIS_URL", url.as_str()), FAST_RELAY]).await;
    let stream = stream_of(&app, &url);
    let token = app.active_token(Some(7)).await;
    app.charge(7, 150_000, None).await;
    wait_for(&stream, 1).await;

    redis.stop();

    for amount in [1_000, 2_000, 3_000] {
        assert_eq!(app.charge(8, amount, None).await.status(), 200);
    }
    let held = app.held(&token, 7, 42).await;
    assert_eq!(
        app.pay(&token, held, 7, None).await.status(),
        200,
        "the sale lives in PostgreSQL; the admitted buyer's token is trusted from memory"
    );
    // The relay's failing attempts leave no trace to wait for: a few of them get the chance
    // to lose or wrongly mark the events.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        app.db
            .query_i64("SELECT count(*) FROM outbox_events WHERE sent_at IS NULL")
            .await
            >= 6,
        "the events wait in the outbox"
    );

    redis.restart();

    let recorded = app.db.query_i64("SELECT count(*) FROM outbox_events").await as usize;
    let entries = wait_for(&stream, recorded).await;
    let started = Instant::now();
    while app
        .db
        .query_i64("SELECT count(*) FROM outbox_events WHERE sent_at IS NULL")
        .await
        > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "all marked sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let published: HashSet<String> = entries
        .iter()
        .map(|e| e.field("id").unwrap().to_string())
        .collect();
    assert_eq!(published.len(), recorded, "every recorded event, by id");
    assert_eq!(
        per_reservation(&entries)[&held.to_string()],
        ["reservation.held", "reservation.confirmed"]
    );
    let charges_of_8: Vec<&str> = entries
        .iter()
        .filter(|e| e.field("userId") == Some("8"))
        .map(|e| e.field("amount").unwrap())
        .collect();
    assert_eq!(charges_of_8, ["1000", "2000", "3000"], "in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_prints_each_event_as_a_json_line() {
    let app = TestApp::spawn_with(&[FAST_RELAY]).await;
    let stream = stream_of(&app, app.redis.url());
    app.charge(7, 1_000, None).await;
    app.charge(7, 2_000, None).await;
    wait_for(&stream, 2).await;

    let prefix = app.redis.prefix().to_string();
    let redis_url = app.redis.url().to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ticketing"))
            .args(["events", "tail", "--from-start", "--count", "2"])
            .env(
                "APP_CONFIG_DIR",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"),
            )
            .env("REDIS_URL", redis_url)
            .env("APP__REDIS__KEY_PREFIX", prefix)
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "balance.charged");
    assert_eq!(lines[0]["amount"], "1000");
    assert_eq!(lines[1]["balance"], "3000");
}
