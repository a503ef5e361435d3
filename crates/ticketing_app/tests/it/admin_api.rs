//! The operators' API over HTTP: live settings followed by every instance, pause, a scheduled
//! opening, revocation, and what it refuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{admin_cli, assert_problem, TestApp, TOKEN_HEADER};

const ADMIN_TOKEN: &str = "an-operator-token-of-at-least-32-characters";

async fn admin_app(overrides: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("APP__ADMIN__TOKEN", ADMIN_TOKEN)];
    all.extend_from_slice(overrides);
    TestApp::spawn_with(&all).await
}

async fn admin_get(app: &TestApp, base: &str) -> reqwest::Response {
    app.client
        .get(format!("{base}/api/admin/queue"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

async fn admin_patch(app: &TestApp, base: &str, body: &str) -> reqwest::Response {
    app.client
        .patch(format!("{base}/api/admin/queue"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn state(app: &TestApp, base: &str) -> Value {
    let response = admin_get(app, base).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn without_an_admin_token_configured_every_admin_path_is_404() {
    let app = TestApp::spawn().await;

    assert_problem(app.get("/api/admin/queue").await, 404, "NOT_FOUND").await;
    let patch = app
        .client
        .patch(app.url("/api/admin/queue"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "paused": true }))
        .send()
        .await
        .unwrap();
    assert_problem(patch, 404, "NOT_FOUND").await;
    let revoke = app
        .client
        .delete(app.url("/api/admin/queue/tokens/abc"))
        .send()
        .await
        .unwrap();
    assert_problem(revoke, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn a_wrong_or_missing_admin_token_is_401_and_changes_nothing() {
    let app = admin_app(&[]).await;

    assert_problem(app.get("/api/admin/queue").await, 401, "ADMIN_UNAUTHORIZED").await;
    let wrong = app
        .client
        .patch(app.url("/api/admin/queue"))
        .bearer_auth("not-the-operator-token-but-as-long-as-one")
        .json(&json!({ "paused": true }))
        .send()
        .await
        .unwrap();
    assert_problem(wrong, 401, "ADMIN_UNAUTHORIZED").await;
    let basic = app
        .client
        .get(app.url("/api/admin/queue"))
        .header("Authorization", format!("Basic {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_problem(basic, 401, "ADMIN_UNAUTHORIZED").await;

    assert_eq!(state(&app, &app.address).await["paused"], false);
}

#[tokio::test]
async fn the_state_starts_from_the_configuration() {
    let app = admin_app(&[
        ("APP__QUEUE__ADMIT_PER_SECOND", "7"),
        ("APP__QUEUE__MAX_ACTIVE", "3"),
    ])
    .await;
    app.active_token(None).await;

    let body = state(&app, &app.address).await;

    assert_eq!(
        body,
        json!({
            "paused": false, "admitPerSecond": 7, "maxActive": 3, "activeTtlSeconds": 600,
            "opensAt": null, "challengeDifficulty": 0, "waiting": 0, "active": 1, "entry": "open",
            "mode": "fifo", "closesAt": null
        })
    );
}

#[tokio::test]
async fn the_queue_takes_every_setting_of_the_room_default() {
    let app = admin_app(&[]).await;

    let changed = admin_patch(
        &app,
        &app.address,
        r#"{"name": "Everything else", "mode": "reject", "closesAt": "2099-01-01T00:00:00Z"}"#,
    )
    .await;
    assert_eq!(changed.status(), 200);
    let body: Value = changed.json().await.unwrap();
    assert_eq!(body["mode"], "reject");
    assert_eq!(body["closesAt"], "2099-01-01T00:00:00Z");
    let room: Value = app.get("/api/rooms/default").await.json().await.unwrap();
    assert_eq!(room["name"], "Everything else");
    assert_problem(app.enter_queue(Some(7)).await, 409, "ROOM_CLOSED").await;

    let reopened = admin_patch(&app, &app.address, r#"{"mode": "fifo", "closesAt": null}"#).await;
    assert_eq!(reopened.status(), 200);
    assert_eq!(app.enter_queue(Some(7)).await.status(), 200);

    let refused = admin_patch(&app, &app.address, r#"{"mode": "lottery"}"#).await;
    assert_problem(refused, 400, "INVALID_REQUEST").await;
    assert_eq!(
        state(&app, &app.address).await["mode"],
        "fifo",
        "nothing changed"
    );
}

#[tokio::test]
async fn a_change_on_one_instance_is_followed_by_another_within_a_second_and_outlives_restarts() {
    let app = admin_app(&[]).await;
    let peer = app.spawn_peer().await;

    let changed = admin_patch(
        &app,
        &app.address,
        r#"{"admitPerSecond": 50, "maxActive": 500, "activeTtlSeconds": 300}"#,
    )
    .await;
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["admitPerSecond"], 50);
    assert_eq!(changed["maxActive"], 500);
    assert_eq!(changed["activeTtlSeconds"], 300);

    assert_eq!(state(&app, &peer).await["admitPerSecond"], 50);
    let restarted = app.spawn_peer().await;
    assert_eq!(state(&app, &restarted).await["maxActive"], 500);

    // A session admitted now lasts the new length, on whichever instance.
    let entered: Value = app
        .client
        .post(format!("{peer}/api/queue"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let until =
        chrono::DateTime::parse_from_rfc3339(entered["activeUntil"].as_str().unwrap()).unwrap();
    let seconds = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    assert!((295..=300).contains(&seconds), "{seconds}");
}

#[tokio::test]
async fn paused_entries_wait_active_tokens_keep_working_and_resuming_admits() {
    let app = admin_app(&[]).await;
    let peer = app.spawn_peer().await;
    let admitted = app.active_token(None).await;

    assert_eq!(
        admin_patch(&app, &peer, r#"{"paused": true}"#)
            .await
            .status(),
        200
    );

    let waiting = app.enter(None).await;
    assert_eq!(waiting["status"], "WAITING", "room, but paused");
    assert_eq!(waiting["position"], 1);
    assert_eq!(app.concerts(&admitted).await.status(), 200);
    // Nothing happens while paused, so there is no event to wait for: a few admission steps
    // (every 100 ms) get the chance to admit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let token = waiting["token"].as_str().unwrap();
    let polled: Value = app.poll_queue(token).await.json().await.unwrap();
    assert_eq!(
        polled["status"], "WAITING",
        "nobody is admitted while paused"
    );

    let resumed: Value = admin_patch(&app, &app.address, r#"{"paused": false}"#)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["paused"], false);
    let started = Instant::now();
    loop {
        let polled: Value = app.poll_queue(token).await.json().await.unwrap();
        if polled["status"] == "ACTIVE" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "admitted after resuming"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bad_changes_are_400_with_the_reason_and_change_nothing() {
    let app = admin_app(&[]).await;
    let before = state(&app, &app.address).await;

    for body in [
        r#"{"paused": true, "surprise": 1}"#,
        r#"{"admitPerSecond": 0}"#,
        r#"{"admitPerSecond": -5}"#,
        r#"{"maxActive": 0}"#,
        r#"{"activeTtlSeconds": 0}"#,
        r#"{"opensAt": "tomorrow at ten"}"#,
        r#"{"opensAt": "2001-01-01T10:00:00Z"}"#,
        r#"{"paused": "yes"}"#,
        r#"{"paused": true"#,
    ] {
        let response = admin_patch(&app, &app.address, body).await;
        let problem = assert_problem(response, 400, "INVALID_REQUEST").await;
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{body}");
    }
    let huge = format!(r#"{{"paused": true, "pad": "{}"}}"#, "x".repeat(100_000));
    assert_problem(
        admin_patch(&app, &app.address, &huge).await,
        413,
        "INVALID_REQUEST",
    )
    .await;

    assert_eq!(state(&app, &app.address).await, before);
}

#[tokio::test]
async fn a_revoked_token_is_refused_everywhere_within_a_second_and_revoking_is_idempotent() {
    let app = admin_app(&[]).await;
    let peer = app.spawn_peer().await;
    let token = app.active_token(None).await;
    let revoke = |token: String| {
        app.client
            .delete(app.url(&format!("/api/admin/queue/tokens/{token}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };

    assert_eq!(revoke(token.clone()).await.unwrap().status(), 204);

    assert_problem(app.concerts(&token).await, 401, "TOKEN_INVALID").await;
    let started = Instant::now();
    loop {
        let status = app
            .client
            .get(format!("{peer}/api/concerts"))
            .header(TOKEN_HEADER, &token)
            .send()
            .await
            .unwrap()
            .status();
        if status == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "peer refuses within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(revoke(token).await.unwrap().status(), 204, "again");
    assert_eq!(
        revoke("0123456789abcdef".into()).await.unwrap().status(),
        204,
        "unknown"
    );
    let malformed = revoke("not%20a%20token".into()).await.unwrap();
    assert_problem(malformed, 400, "INVALID_REQUEST").await;
}

#[tokio::test]
async fn before_a_scheduled_opening_entries_wait_at_position_0_and_at_it_they_are_admitted() {
    let app = admin_app(&[("APP__QUEUE__MAX_ACTIVE", "100")]).await;
    let peer = app.spawn_peer().await;
    let opens_at = chrono::Utc::now() + chrono::Duration::seconds(60);
    let at = opens_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let scheduled = admin_patch(&app, &app.address, &format!(r#"{{"opensAt": "{at}"}}"#)).await;
    assert_eq!(scheduled.status(), 200);

    let mut tokens = Vec::new();
    for user in 1..=5 {
        let body = app.enter(Some(user)).await;
        assert_eq!(body["status"], "WAITING", "{body}");
        assert_eq!(body["position"], 0);
        let told = chrono::DateTime::parse_from_rfc3339(body["opensAt"].as_str().unwrap()).unwrap();
        assert!((told.timestamp_millis() - opens_at.timestamp_millis()).abs() < 1000);
        tokens.push(body["token"].as_str().unwrap().to_string());
    }
    let again = app.enter(Some(3)).await;
    assert_eq!(
        again["token"], tokens[2],
        "one place per user in the pre-queue"
    );
    // Nobody is admitted before the opening, so there is no event to wait for: a few admission
    // steps (every 100 ms) get the chance to admit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for token in &tokens {
        let polled = poll_at(&app, &peer, token).await;
        assert_eq!(polled["status"], "WAITING", "nobody before the opening");
        assert_eq!(polled["position"], 0);
    }

    app.pass(Duration::from_secs(61)).await;

    let started = Instant::now();
    loop {
        let mut admitted = 0;
        for token in &tokens {
            if poll_at(&app, &peer, token).await["status"] == "ACTIVE" {
                admitted += 1;
            }
        }
        if admitted == tokens.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "admitted after the opening"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state(&app, &app.address).await["opensAt"], Value::Null);
}

/// `GET /api/queue` at `base` (this app or a peer) with `token`: the body.
async fn poll_at(app: &TestApp, base: &str, token: &str) -> Value {
    app.get_at(base, token, "/api/queue")
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_subcommands_drive_the_server_and_say_why_when_refused() {
    let app = admin_app(&[]).await;
    let base = app.address.clone();
    let run = move |token: &'static str, arguments: &'static [&'static str]| {
        let base = base.clone();
        tokio::task::spawn_blocking(move || admin_cli(&base, token, arguments))
    };

    let (ok, out, _) = run(ADMIN_TOKEN, &["status"]).await.unwrap();
    assert!(ok);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["paused"], false);

    assert!(run(ADMIN_TOKEN, &["pause"]).await.unwrap().0);
    assert_eq!(state(&app, &app.address).await["paused"], true);
    assert!(run(ADMIN_TOKEN, &["resume"]).await.unwrap().0);
    let (ok, out, _) = run(
        ADMIN_TOKEN,
        &[
            "set",
            "--admit-per-second",
            "42",
            "--active-ttl-seconds",
            "120",
        ],
    )
    .await
    .unwrap();
    assert!(ok);
    let set: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (set["paused"].clone(), set["admitPerSecond"].clone()),
        (json!(false), json!(42))
    );
    assert!(
        run(ADMIN_TOKEN, &["open-at", "2099-01-01T00:00:00Z"])
            .await
            .unwrap()
            .0
    );
    assert_eq!(
        state(&app, &app.address).await["opensAt"],
        "2099-01-01T00:00:00Z"
    );
    assert!(run(ADMIN_TOKEN, &["open-at", "none"]).await.unwrap().0);
    let token = app.active_token(None).await;
    let (ok, out, _) = tokio::task::spawn_blocking({
        let base = app.address.clone();
        move || admin_cli(&base, ADMIN_TOKEN, &["revoke", &token])
    })
    .await
    .unwrap();
    assert!(ok, "{out}");

    let (ok, _, err) = run("a-wrong-token-that-is-long-enough-to-try", &["pause"])
        .await
        .unwrap();
    assert!(!ok);
    assert!(err.contains("401 ADMIN_UNAUTHORIZED"), "{err}");
    let (ok, _, err) = run(ADMIN_TOKEN, &["set", "--max-active", "0"])
        .await
        .unwrap();
    assert!(!ok);
    assert!(
        err.contains("400 INVALID_REQUEST") && err.contains("maxActive"),
        "{err}"
    );
    let (ok, _, err) =
        tokio::task::spawn_blocking(|| admin_cli("http://127.0.0.1:1", ADMIN_TOKEN, &["status"]))
            .await
            .unwrap();
    assert!(!ok);
    assert!(err.contains("cannot reach"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(state(&app, &app.address).await["paused"], false);
}

#[tokio::test]
async fn an_admin_token_shorter_than_32_characters_leaves_the_admin_api_off() {
    let app = TestApp::spawn_with(&[("APP__ADMIN__TOKEN", "short-token")]).await;

    let response = app
        .client
        .get(app.url("/api/admin/queue"))
        .bearer_auth("short-token")
        .send()
        .await
        .unwrap();

    assert_problem(response, 404, "NOT_FOUND").await;
}
