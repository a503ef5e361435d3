//! Liveness and readiness.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{assert_problem, TestApp};

#[tokio::test]
async fn the_process_is_healthy() {
    let app = TestApp::spawn().await;

    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
}

#[tokio::test]
async fn ready_when_postgres_and_redis_answer() {
    let app = TestApp::spawn().await;

    let response = app.get("/readyz").await;

    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["postgres"], "up");
    assert_eq!(body["redis"], "up");
}

#[tokio::test]
async fn not_ready_with_retry_after_when_redis_is_unreachable() {
    // Nothing listens on port 1: the connection is refused at once.
    let app = TestApp::spawn_with(&[("REDIS_URL", "redis://127.0.0.1:1")]).await;

    let response = app.get("/readyz").await;

    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503, "UNAVAILABLE").await;
}

#[tokio::test]
async fn not_ready_when_postgres_is_unreachable() {
    let app =
        TestApp::spawn_with(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")]).await;

    assert_problem(app.get("/readyz").await, 503, "UNAVAILABLE").await;
}

#[tokio::test]
async fn a_catalog_read_answers_503_not_500_when_postgres_is_unreachable() {
    let app =
        TestApp::spawn_with(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")]).await;

    let token = app.active_token(None).await;

    let response = app.concerts(&token).await;

    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503, "UNAVAILABLE").await;
}
