//! Faults: a dependency that goes away during traffic and comes back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::{assert_problem, TestApp};
use ticketing_testkit::LocalRedis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_dies_admitted_buyers_go_on_newcomers_get_503_and_it_recovers() {
    let mut redis = LocalRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&[("REDIS_URL", url.as_str())]).await;
    let token = app.active_token(Some(7)).await;
    assert_eq!(app.concerts(&token).await.status(), 200);

    redis.stop();

    let started = Instant::now();
    let entering = app.enter_queue(Some(8)).await;
    assert!(entering.headers().contains_key("retry-after"));
    assert_problem(entering, 503, "UNAVAILABLE").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered fast, not hung"
    );
    assert_eq!(
        app.concerts(&token).await.status(),
        200,
        "fail static: an admitted buyer keeps browsing"
    );
    let held = app.hold(&token, 7, 42).await;
    assert_eq!(
        held.status(),
        200,
        "and holding (the seat lives in PostgreSQL)"
    );
    assert_problem(
        app.concerts("0123456789abcdef0123456789abcdef").await,
        503,
        "UNAVAILABLE",
    )
    .await;
    assert_problem(app.get("/readyz").await, 503, "UNAVAILABLE").await;

    redis.restart();

    let started = Instant::now();
    while app.get("/readyz").await.status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no recovery without a restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let polled: serde_json::Value = app.poll_queue(&token).await.json().await.unwrap();
    assert_eq!(
        polled["status"], "ACTIVE",
        "the append-only file kept the session"
    );
    let entered = app.enter(Some(8)).await;
    assert!(entered["token"].is_string());
}
