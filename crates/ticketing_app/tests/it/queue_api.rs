//! The waiting queue over HTTP, and the token check of the protected endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use serde_json::Value;
use support::{assert_problem, TestApp, TOKEN_HEADER};

#[tokio::test]
async fn entering_with_room_is_active_at_once_in_the_contract_shape() {
    let app = TestApp::spawn().await;

    let body = app.enter(None).await;

    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["position"], 0);
    assert_eq!(body["estimatedWaitSeconds"], 0);
    let token = body["token"].as_str().unwrap();
    assert!(!token.is_empty() && token.len() <= 128);
    let until = body["activeUntil"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(until).is_ok());
}

#[tokio::test]
async fn entering_when_full_waits_with_a_place_and_an_estimate() {
    let app = TestApp::spawn_with(&[
        ("APP__QUEUE__MAX_ACTIVE", "1"),
        ("APP__QUEUE__ADMIT_PER_SECOND", "2"),
    ])
    .await;
    app.enter(None).await;

    let bodies = [
        app.enter(None).await,
        app.enter(None).await,
        app.enter(None).await,
    ];

    for (index, body) in bodies.iter().enumerate() {
        assert_eq!(body["status"], "WAITING");
        assert_eq!(body["position"], index as u64 + 1);
        assert_eq!(body["activeUntil"], Value::Null);
    }
    // The room is full until the one ACTIVE session ends (600 s): the rate (2/s) is not what
    // keeps them waiting. Each next place waits for one more whole session.
    let wait = |body: &Value| body["estimatedWaitSeconds"].as_u64().unwrap();
    assert!((598..=600).contains(&wait(&bodies[0])), "{}", bodies[0]);
    assert!((1798..=1800).contains(&wait(&bodies[2])), "{}", bodies[2]);
    for body in &bodies {
        let poll_after = body["pollAfterSeconds"].as_u64().unwrap();
        assert!((1..=20).contains(&poll_after), "{body}");
    }
}

#[tokio::test]
async fn polling_reports_the_place_and_then_the_admission() {
    let app = TestApp::spawn_with(&[("APP__QUEUE__MAX_ACTIVE", "1")]).await;
    let first = app.active_token(None).await;
    let waiting = app.enter(None).await;
    let token = waiting["token"].as_str().unwrap();

    let polled: Value = app.poll_queue(token).await.json().await.unwrap();
    assert_eq!(polled["status"], "WAITING");
    assert_eq!(polled["position"], 1);
    assert_eq!(polled["token"], token);

    assert_eq!(app.leave_queue(&first).await.status().as_u16(), 204);
    let mut status = Value::Null;
    for _ in 0..50 {
        let polled: Value = app.poll_queue(token).await.json().await.unwrap();
        status = polled["status"].clone();
        if status == "ACTIVE" {
            assert_eq!(polled["position"], 0);
            assert!(polled["activeUntil"].is_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "ACTIVE", "the admission job let the next one in");
}

#[tokio::test]
async fn the_same_user_entering_again_keeps_token_and_place() {
    let app = TestApp::spawn_with(&[("APP__QUEUE__MAX_ACTIVE", "1")]).await;
    app.enter(None).await;
    let first = app.enter(Some(42)).await;

    let again = app.enter(Some(42)).await;

    assert_eq!(again["token"], first["token"]);
    assert_eq!(again["position"], 1);
    assert_eq!(app.enter(None).await["position"], 2);
}

#[tokio::test]
async fn leaving_invalidates_the_token() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    assert_eq!(app.leave_queue(&token).await.status().as_u16(), 204);

    assert_problem(app.poll_queue(&token).await, 401, "TOKEN_INVALID").await;
    assert_problem(app.concerts(&token).await, 401, "TOKEN_INVALID").await;
    assert_problem(app.leave_queue(&token).await, 401, "TOKEN_INVALID").await;
}

#[tokio::test]
async fn a_bad_entry_body_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let post = |body: &'static str| app.post_raw("/api/queue", None, body);

    assert_problem(post("{").await, 400, "INVALID_REQUEST").await;
    assert_problem(post(r#"{"userId": "x"}"#).await, 400, "INVALID_REQUEST").await;
    assert_problem(post(r#"{"userId": 0}"#).await, 400, "INVALID_REQUEST").await;
    assert_problem(post(r#"{"userId": -3}"#).await, 400, "INVALID_REQUEST").await;
    assert_eq!(post(r#"{"userId": null}"#).await.status(), 200);
    assert_eq!(post("{}").await.status(), 200);
}

#[tokio::test]
async fn an_oversized_entry_body_is_refused_as_a_problem() {
    let app = TestApp::spawn().await;

    let response = app
        .client
        .post(app.url("/api/queue"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"userId": 1, "pad": "{}"}}"#,
            "x".repeat(100_000)
        ))
        .send()
        .await
        .unwrap();

    assert_problem(response, 413, "INVALID_REQUEST").await;
}

#[tokio::test]
async fn entries_past_the_per_client_rate_get_429_with_retry_after() {
    let app = TestApp::spawn_with(&[("APP__QUEUE__ENTRY_RATE_PER_CLIENT", "3")]).await;

    let mut last = None;
    for _ in 0..4 {
        last = Some(app.enter_queue(None).await);
    }

    let response = last.unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1).contains(&retry_after));
    assert_problem(response, 429, "RATE_LIMITED").await;
}

#[tokio::test]
async fn a_protected_endpoint_without_a_token_is_401_token_missing() {
    let app = TestApp::spawn().await;

    assert_problem(app.get("/api/concerts").await, 401, "TOKEN_MISSING").await;
    assert_problem(
        app.get("/api/concerts/1/performances/119/seats").await,
        401,
        "TOKEN_MISSING",
    )
    .await;
    assert_problem(app.get("/api/queue").await, 401, "TOKEN_MISSING").await;
}

#[tokio::test]
async fn unknown_and_malformed_tokens_are_401_token_invalid() {
    let app = TestApp::spawn().await;

    for token in [
        "0123456789abcdef0123456789abcdef",
        "not a token!",
        "",
        &"a".repeat(129),
        "../../etc/passwd",
    ] {
        assert_problem(app.concerts(token).await, 401, "TOKEN_INVALID").await;
        assert_problem(app.poll_queue(token).await, 401, "TOKEN_INVALID").await;
    }
}

#[tokio::test]
async fn a_waiting_token_is_403_token_not_active() {
    let app = TestApp::spawn_with(&[("APP__QUEUE__MAX_ACTIVE", "1")]).await;
    app.enter(None).await;
    let waiting = app.enter(None).await;
    let token = waiting["token"].as_str().unwrap();

    assert_problem(app.concerts(token).await, 403, "TOKEN_NOT_ACTIVE").await;
}

#[tokio::test]
async fn an_expired_active_token_is_401() {
    let app = TestApp::spawn_with(&[("APP__QUEUE__ACTIVE_TTL_SECONDS", "60")]).await;
    let token = app.active_token(None).await;
    assert_eq!(app.concerts(&token).await.status(), 200);

    app.pass(Duration::from_secs(61)).await;

    assert_problem(app.concerts(&token).await, 401, "TOKEN_INVALID").await;
    assert_problem(app.poll_queue(&token).await, 401, "TOKEN_INVALID").await;
}

#[tokio::test]
async fn a_waiting_token_that_stops_polling_is_dropped() {
    let app = TestApp::spawn_with(&[
        ("APP__QUEUE__MAX_ACTIVE", "1"),
        ("APP__QUEUE__WAITING_IDLE_TIMEOUT_SECONDS", "1"),
    ])
    .await;
    app.enter(None).await;
    let idle = app.enter(None).await;
    let polling = app.enter(None).await;
    let (idle, polling) = (
        idle["token"].as_str().unwrap(),
        polling["token"].as_str().unwrap(),
    );

    for _ in 0..3 {
        app.pass(Duration::from_millis(500)).await;
        assert_eq!(app.poll_queue(polling).await.status(), 200);
    }

    // An admission step drops the idle token; polling it before then would keep it in line.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let body: Value = app.poll_queue(polling).await.json().await.unwrap();
        if body["position"] == 1 {
            break;
        }
        assert_eq!(body["position"], 2, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "the idle token is still ahead: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_problem(app.poll_queue(idle).await, 401, "TOKEN_INVALID").await;
}

#[tokio::test]
async fn many_active_tokens_all_pass_the_check() {
    // A check that read only part of the active set refused valid tokens past a handful.
    let app = TestApp::spawn().await;
    let mut tokens = Vec::new();
    for _ in 0..60 {
        tokens.push(app.active_token(None).await);
    }

    for token in &tokens {
        assert_eq!(app.concerts(token).await.status(), 200);
    }
}

#[tokio::test]
async fn a_token_header_with_surrounding_spaces_is_accepted() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    let response = app
        .client
        .get(app.url("/api/concerts"))
        .header(TOKEN_HEADER, format!(" {token} "))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn entering_fails_closed_with_503_when_redis_is_unreachable() {
    let app = TestApp::spawn_with(&[("REDIS_URL", "redis://127.0.0.1:1")]).await;

    let response = app.enter_queue(None).await;

    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503, "UNAVAILABLE").await;
}

async fn status_at(app: &TestApp, base: &str, token: &str, path: &str) -> u16 {
    app.get_at(base, token, path).await.status().as_u16()
}

#[tokio::test]
async fn leaving_on_one_instance_is_refused_by_another_within_a_second() {
    let app = TestApp::spawn().await;
    let peer = app.spawn_peer().await;
    let token = app.active_token(None).await;
    assert_eq!(status_at(&app, &peer, &token, "/api/concerts").await, 200);

    assert_eq!(app.leave_queue(&token).await.status().as_u16(), 204);

    assert_problem(app.concerts(&token).await, 401, "TOKEN_INVALID").await;
    let left_at = std::time::Instant::now();
    while status_at(&app, &peer, &token, "/api/concerts").await == 200 {
        assert!(
            left_at.elapsed() < Duration::from_secs(1),
            "the other instance still lets the token through after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status_at(&app, &peer, &token, "/api/concerts").await, 401);
    assert_eq!(status_at(&app, &peer, &token, "/api/queue").await, 401);
}

#[tokio::test]
async fn altered_truncated_and_foreign_tokens_are_401_token_invalid() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(5)).await;
    let mut altered = token.clone().into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let foreign = ticketing_domain::queue::TokenKeys::new(
        ticketing_domain::queue::SigningKey::new(vec![9u8; 32]).unwrap(),
        None,
    )
    .seal(&ticketing_domain::queue::Ticket {
        epoch: 1,
        seq: 1,
        user: None,
    })
    .as_str()
    .to_string();

    for bad in [&altered, &token[..token.len() - 1], &foreign] {
        assert_problem(app.concerts(bad).await, 401, "TOKEN_INVALID").await;
        assert_problem(app.poll_queue(bad).await, 401, "TOKEN_INVALID").await;
        assert_problem(app.leave_queue(bad).await, 401, "TOKEN_INVALID").await;
    }
    assert_eq!(
        app.concerts(&token).await.status(),
        200,
        "the real one works"
    );
}

#[tokio::test]
async fn one_place_per_user_whichever_instance_is_reached() {
    let app = TestApp::spawn_with(&[("APP__QUEUE__MAX_ACTIVE", "1")]).await;
    let peer = app.spawn_peer().await;
    app.enter(None).await;
    let here = app.enter(Some(77)).await;

    let there: Value = app
        .client
        .post(format!("{peer}/api/queue"))
        .json(&serde_json::json!({ "userId": 77 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(there["token"], here["token"]);
    assert_eq!(there["position"], 1);
}

#[tokio::test]
async fn the_token_string_stays_the_same_from_entry_to_admission_on_every_instance() {
    let app = TestApp::spawn_with(&[("APP__QUEUE__MAX_ACTIVE", "1")]).await;
    let peer = app.spawn_peer().await;
    let first = app.active_token(None).await;
    let waiting = app.enter(None).await;
    let token = waiting["token"].as_str().unwrap();
    assert_eq!(status_at(&app, &peer, token, "/api/concerts").await, 403);

    assert_eq!(app.leave_queue(&first).await.status().as_u16(), 204);

    let started = std::time::Instant::now();
    loop {
        let polled: Value = app
            .client
            .get(format!("{peer}/api/queue"))
            .header(TOKEN_HEADER, token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(polled["token"], token);
        if polled["status"] == "ACTIVE" {
            assert!(polled.get("pollAfterSeconds").is_none());
            break;
        }
        assert!(polled["pollAfterSeconds"].as_u64().unwrap() >= 1);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "admitted in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_at(&app, &peer, token, "/api/concerts").await, 200);
    assert_eq!(app.concerts(token).await.status(), 200);
}

async fn enter_from(app: &TestApp, forwarded_for: &str) -> u16 {
    app.client
        .post(app.url("/api/queue"))
        .header("X-Forwarded-For", forwarded_for)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_entries_are_limited_per_forwarded_client() {
    let app = TestApp::spawn_with(&[
        ("APP__QUEUE__ENTRY_RATE_PER_CLIENT", "2"),
        ("APP__SERVER__TRUSTED_PROXIES", "10.9.9.9, 127.0.0.1"),
    ])
    .await;

    let first_client = [
        enter_from(&app, "203.0.113.7").await,
        enter_from(&app, "198.51.100.1, 203.0.113.7").await,
        enter_from(&app, "203.0.113.7").await,
    ];
    let second_client = enter_from(&app, "203.0.113.8").await;

    assert_eq!(
        first_client,
        [200, 200, 429],
        "the forged first hop is not the client"
    );
    assert_eq!(second_client, 200);
}

#[tokio::test]
async fn a_forwarded_for_header_from_an_untrusted_peer_is_ignored() {
    let app = TestApp::spawn_with(&[("APP__QUEUE__ENTRY_RATE_PER_CLIENT", "2")]).await;

    let statuses = [
        enter_from(&app, "203.0.113.1").await,
        enter_from(&app, "203.0.113.2").await,
        enter_from(&app, "203.0.113.3").await,
    ];

    assert_eq!(statuses, [200, 200, 429], "one client, whatever it claims");
}
