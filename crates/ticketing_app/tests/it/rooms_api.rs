//! Waiting rooms over HTTP: the admin API, the public rooms, a token's scope, the modes, one
//! place per user per room, and what survives a lost line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use serde_json::{json, Value};
use support::{admin_cli, assert_problem, TestApp};

const ADMIN_TOKEN: &str = "an-operator-token-of-at-least-32-characters";

async fn admin_app() -> TestApp {
    TestApp::spawn_with(&[("APP__ADMIN__TOKEN", ADMIN_TOKEN)]).await
}

async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(ADMIN_TOKEN);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

async fn create(app: &TestApp, body: Value) -> reqwest::Response {
    admin(app, reqwest::Method::POST, "/api/admin/rooms", Some(body)).await
}

/// A room covering performance 120 (concert 1), created and answered 201.
async fn golden_hour(app: &TestApp, extra: Value) -> Value {
    let mut body =
        json!({"id": "golden-hour", "name": "Golden Hour, Seoul", "performanceIds": [120]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let response = create(app, body).await;
    assert_eq!(response.status().as_u16(), 201);
    response.json().await.unwrap()
}

fn redis_of(app: &TestApp) -> redis::Connection {
    redis::Client::open(app.redis.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// The keys of the room golden-hour's line matching `pattern` (after its hash tag).
fn golden_hour_keys(app: &TestApp, pattern: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!(
            "{{{}:room:golden-hour}}:{pattern}",
            app.redis.prefix()
        ))
        .query(&mut redis_of(app))
        .unwrap()
}

/// Deletes `keys`, as a Redis that lost them would.
fn delete_keys(app: &TestApp, keys: Vec<String>) {
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query(&mut redis_of(app))
            .unwrap();
    }
}

async fn enter_room(app: &TestApp, room: &str, user: Option<i64>) -> reqwest::Response {
    let mut body = json!({ "roomId": room });
    if let Some(user) = user {
        body["userId"] = json!(user);
    }
    app.client
        .post(app.url("/api/queue"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn entered(app: &TestApp, room: &str, user: Option<i64>) -> Value {
    let response = enter_room(app, room, user).await;
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_room_is_created_with_the_default_rooms_settings_and_listed() {
    let app = admin_app().await;
    let room = golden_hour(&app, json!({"admitPerSecond": 7})).await;
    assert_eq!(room["id"], "golden-hour");
    assert_eq!(room["performanceIds"], json!([120]));
    assert_eq!(room["admitPerSecond"], 7);
    assert_eq!(room["maxActive"], app.settings.queue.max_active);
    assert_eq!(room["mode"], "fifo");
    assert_eq!(room["entry"], "open");
    assert_eq!(room["challengeDifficulty"], 0);
    assert_eq!(room["paused"], false);
    assert_eq!(room["waiting"], 0);

    let listed: Value = admin(&app, reqwest::Method::GET, "/api/admin/rooms", None)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["default", "golden-hour"]);

    let public = app.get("/api/rooms").await;
    assert_eq!(public.status().as_u16(), 200);
    let public: Value = public.json().await.unwrap();
    assert_eq!(public[1]["status"], "OPEN");
    assert_eq!(public[1]["name"], "Golden Hour, Seoul");

    let one = app.get("/api/rooms/golden-hour").await;
    assert_eq!(one.status().as_u16(), 200);
    assert_eq!(
        one.headers()["cache-control"]
            .to_str()
            .unwrap()
            .replace(' ', ""),
        "public,max-age=1"
    );
    let one: Value = one.json().await.unwrap();
    assert_eq!(one["admitPerSecond"], 7);
    assert_eq!(one["servingNumber"], 0);
    assert_eq!(one["waiting"], 0);
}

#[tokio::test]
async fn bad_rooms_are_refused_with_the_reason_and_nothing_is_created() {
    let app = admin_app().await;
    for (body, why) in [
        (
            json!({"id": "Golden Hour", "name": "x", "performanceIds": [120]}),
            "room id",
        ),
        (
            json!({"id": "x", "name": "x", "performanceIds": [99999]}),
            "99999",
        ),
        (
            json!({"id": "x", "name": "x", "performanceIds": [120], "admitPerSecond": -1}),
            "admitPerSecond",
        ),
        (
            json!({"id": "x", "name": " ", "performanceIds": [120]}),
            "name",
        ),
        (
            json!({"id": "x", "name": "x", "performanceIds": [120], "mode": "lottery"}),
            "mode",
        ),
        (
            json!({"id": "x", "name": "x", "performanceIds": [120, 120]}),
            "more than once",
        ),
        (json!({"id": "x", "name": "x"}), "performanceIds"),
        (
            json!({"id": "x", "name": "x", "performanceIds": [120], "colour": "red"}),
            "colour",
        ),
    ] {
        let problem =
            assert_problem(create(&app, body.clone()).await, 400, "INVALID_REQUEST").await;
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{body}: {problem}"
        );
    }
    golden_hour(&app, json!({})).await;
    assert_problem(
        create(
            &app,
            json!({"id": "golden-hour", "name": "again", "performanceIds": [121]}),
        )
        .await,
        409,
        "ROOM_EXISTS",
    )
    .await;
    let taken = assert_problem(
        create(
            &app,
            json!({"id": "other", "name": "x", "performanceIds": [121, 120]}),
        )
        .await,
        400,
        "INVALID_REQUEST",
    )
    .await;
    assert!(
        taken["detail"].as_str().unwrap().contains("golden-hour"),
        "{taken}"
    );
    assert_problem(
        admin(&app, reqwest::Method::GET, "/api/admin/rooms/other", None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(app.get("/api/rooms/nowhere").await, 404, "NOT_FOUND").await;
    assert_problem(enter_room(&app, "nowhere", None).await, 404, "NOT_FOUND").await;
    assert_problem(enter_room(&app, "Not A Room", None).await, 404, "NOT_FOUND").await;
    assert_problem(app.get("/api/rooms/Not%20A%20Room").await, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn a_rooms_token_opens_its_performances_only() {
    let app = admin_app().await;
    golden_hour(&app, json!({})).await;
    let body = entered(&app, "golden-hour", Some(7)).await;
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["roomId"], "golden-hour");
    assert_eq!(body["ticketNumber"], 1);
    let room_token = body["token"].as_str().unwrap().to_string();
    let default_token = app.active_token(Some(7)).await;
    assert_ne!(room_token, default_token, "one place per user per room");

    // Both list the catalog.
    assert_eq!(app.concerts(&room_token).await.status().as_u16(), 200);
    assert_eq!(
        app.performances(&room_token, "1").await.status().as_u16(),
        200
    );
    // Each opens its own room's seat maps and holds only.
    assert_eq!(
        app.seats(&room_token, "1", "120").await.status().as_u16(),
        200
    );
    assert_problem(
        app.seats(&room_token, "1", "119").await,
        403,
        "TOKEN_WRONG_ROOM",
    )
    .await;
    assert_eq!(
        app.seats(&default_token, "1", "119")
            .await
            .status()
            .as_u16(),
        200
    );
    assert_problem(
        app.seats(&default_token, "1", "120").await,
        403,
        "TOKEN_WRONG_ROOM",
    )
    .await;
    assert_problem(
        app.hold_at(&app.url(""), &room_token, 7, 1, 119, 5).await,
        403,
        "TOKEN_WRONG_ROOM",
    )
    .await;
    let held = app.hold_at(&app.url(""), &room_token, 7, 1, 120, 5).await;
    assert_eq!(held.status().as_u16(), 200);

    // Entering again hands back the same place; polling answers the room.
    let again = entered(&app, "golden-hour", Some(7)).await;
    assert_eq!(again["token"], room_token.as_str());
    let polled: Value = app.poll_queue(&room_token).await.json().await.unwrap();
    assert_eq!(polled["roomId"], "golden-hour");
    let default_body: Value = app.poll_queue(&default_token).await.json().await.unwrap();
    assert_eq!(default_body["roomId"], "default");
}

#[tokio::test]
async fn each_room_has_its_own_line() {
    let app = admin_app().await;
    golden_hour(&app, json!({"maxActive": 1})).await;
    let first = entered(&app, "golden-hour", None).await;
    assert_eq!(first["status"], "ACTIVE");
    let second = entered(&app, "golden-hour", None).await;
    assert_eq!(second["status"], "WAITING");
    assert_eq!(second["position"], 1);
    assert_eq!(second["ticketNumber"], 2);
    // The default room is not full.
    assert_eq!(app.enter(None).await["status"], "ACTIVE");
    let room: Value = app
        .get("/api/rooms/golden-hour")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(room["servingNumber"], 1, "{room}");
}

#[tokio::test]
async fn a_passthrough_room_admits_everyone_at_once() {
    let app = admin_app().await;
    golden_hour(
        &app,
        json!({"mode": "passthrough", "admitPerSecond": 1, "maxActive": 1}),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(entered(&app, "golden-hour", None).await["status"], "ACTIVE");
    }
}

#[tokio::test]
async fn a_rejecting_or_closed_room_takes_no_new_entries_but_keeps_its_people() {
    let app = admin_app().await;
    golden_hour(&app, json!({})).await;
    let inside = entered(&app, "golden-hour", None).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let changed = admin(
        &app,
        reqwest::Method::PATCH,
        "/api/admin/rooms/golden-hour",
        Some(json!({"mode": "reject"})),
    )
    .await;
    assert_eq!(changed.status().as_u16(), 200);
    assert_problem(
        enter_room(&app, "golden-hour", None).await,
        409,
        "ROOM_CLOSED",
    )
    .await;
    assert_eq!(app.seats(&inside, "1", "120").await.status().as_u16(), 200);
    let public: Value = app
        .get("/api/rooms/golden-hour")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(public["status"], "CLOSED");

    let reopened = admin(
        &app,
        reqwest::Method::PATCH,
        "/api/admin/rooms/golden-hour",
        Some(json!({"mode": "fifo", "closesAt": "2020-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(reopened.status().as_u16(), 200);
    assert_problem(
        enter_room(&app, "golden-hour", None).await,
        409,
        "ROOM_CLOSED",
    )
    .await;
}

#[tokio::test]
async fn a_room_is_deleted_only_when_empty_and_default_never() {
    let app = admin_app().await;
    golden_hour(&app, json!({})).await;
    let token = entered(&app, "golden-hour", None).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let delete = || {
        admin(
            &app,
            reqwest::Method::DELETE,
            "/api/admin/rooms/golden-hour",
            None,
        )
    };
    assert_problem(delete().await, 409, "ROOM_BUSY").await;
    assert_problem(
        admin(
            &app,
            reqwest::Method::DELETE,
            "/api/admin/rooms/default",
            None,
        )
        .await,
        409,
        "ROOM_BUSY",
    )
    .await;
    assert_eq!(app.leave_queue(&token).await.status().as_u16(), 204);
    assert_eq!(delete().await.status().as_u16(), 204);
    assert_problem(delete().await, 404, "NOT_FOUND").await;
    assert_problem(app.get("/api/rooms/golden-hour").await, 404, "NOT_FOUND").await;
    // Its line is forgotten: made again under the same id, the room starts a line of its own.
    let left = golden_hour_keys(&app, "line:seq");
    assert!(left.is_empty(), "{left:?}");
    // Its performance is the default room's again.
    let default_token = app.active_token(None).await;
    assert_eq!(
        app.seats(&default_token, "1", "120")
            .await
            .status()
            .as_u16(),
        200
    );
}

#[tokio::test]
async fn an_operator_revokes_a_rooms_token() {
    let app = admin_app().await;
    golden_hour(&app, json!({})).await;
    let token = entered(&app, "golden-hour", None).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let default_token = app.active_token(None).await;
    // A token of another room is not this room's to revoke.
    let other = admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/admin/rooms/golden-hour/tokens/{default_token}"),
        None,
    )
    .await;
    assert_eq!(other.status().as_u16(), 204);
    assert_eq!(app.poll_queue(&default_token).await.status().as_u16(), 200);
    let revoked = admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/admin/rooms/golden-hour/tokens/{token}"),
        None,
    )
    .await;
    assert_eq!(revoked.status().as_u16(), 204);
    assert_problem(app.poll_queue(&token).await, 401, "TOKEN_INVALID").await;
}

#[tokio::test]
async fn rooms_outlive_a_lost_line_and_another_instance_follows_them() {
    let app = admin_app().await;
    golden_hour(&app, json!({"admitPerSecond": 9})).await;
    let peer = app.spawn_peer().await;
    // The peer learns of the room from the database.
    let on_peer = app
        .client
        .post(format!("{peer}/api/queue"))
        .json(&json!({"roomId": "golden-hour"}))
        .send()
        .await
        .unwrap();
    assert_eq!(on_peer.status().as_u16(), 200);
    let token: Value = on_peer.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let checked = app
        .get_at(
            &app.url(""),
            &token,
            "/api/concerts/1/performances/120/seats",
        )
        .await;
    assert_eq!(checked.status().as_u16(), 200);

    // Redis loses the room's line: the room stays, a new line starts.
    let keys = golden_hour_keys(&app, "*");
    assert!(
        !keys.is_empty(),
        "the room's line has keys of its own hash tag"
    );
    delete_keys(&app, keys);
    let room: Value = app
        .get("/api/rooms/golden-hour")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(room["id"], "golden-hour");
    assert_eq!(entered(&app, "golden-hour", None).await["status"], "ACTIVE");
    let details: Value = admin(
        &app,
        reqwest::Method::GET,
        "/api/admin/rooms/golden-hour",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        details["admitPerSecond"], 9,
        "the line starts with the stored settings"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_subcommands_manage_rooms_and_steer_one_with_the_room_option() {
    let app = admin_app().await;
    let base = app.address.clone();
    let run = |arguments: &'static [&'static str]| {
        let base = base.clone();
        tokio::task::spawn_blocking(move || admin_cli(&base, ADMIN_TOKEN, arguments))
    };
    let (ok, out, err) = run(&[
        "rooms",
        "create",
        "golden-hour",
        "--name",
        "Golden Hour",
        "--performances",
        "120,121",
        "--admit-per-second",
        "5",
    ])
    .await
    .unwrap();
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["performanceIds"], json!([120, 121]));

    let (ok, _, err) = run(&["--room", "golden-hour", "pause"]).await.unwrap();
    assert!(ok, "{err}");
    let (ok, out, _) = run(&["--room", "golden-hour", "status"]).await.unwrap();
    assert!(ok);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["paused"], true);
    assert_eq!(status["admitPerSecond"], 5);
    // The room default is untouched.
    let (_, out, _) = run(&["status"]).await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["paused"],
        false
    );

    let (ok, out, _) = run(&["rooms", "list"]).await.unwrap();
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (ok, _, err) = run(&[
        "rooms",
        "create",
        "golden-hour",
        "--name",
        "X",
        "--performances",
        "401",
    ])
    .await
    .unwrap();
    assert!(!ok);
    assert!(err.contains("ROOM_EXISTS"), "{err}");
    let (ok, _, err) = run(&["rooms", "delete", "golden-hour"]).await.unwrap();
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["--room", "golden-hour", "status"]).await.unwrap();
    assert!(!ok);
    assert!(err.contains("404"), "{err}");
}

#[tokio::test]
async fn an_entry_on_an_instance_that_has_not_stepped_since_an_opening_was_scheduled_says_when() {
    // Steps a minute apart: the peer learns of the opening from its entries only.
    let app = TestApp::spawn_with(&[
        ("APP__ADMIN__TOKEN", ADMIN_TOKEN),
        ("APP__QUEUE__ADMISSION_INTERVAL_MS", "60000"),
    ])
    .await;
    let peer = app.spawn_peer().await;
    // The peer's first step runs as it starts, the next a minute later: the opening must be
    // scheduled between them. No observable tells the first step is done (the metrics are the
    // process's, shared with the app), hence a fixed wait, far longer than a step takes.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let opens_at = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let scheduled = admin(
        &app,
        reqwest::Method::PATCH,
        "/api/admin/queue",
        Some(json!({ "opensAt": opens_at })),
    )
    .await;
    assert_eq!(scheduled.status().as_u16(), 200);
    let entered: Value = app
        .client
        .post(format!("{peer}/api/queue"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(entered["status"], "WAITING");
    assert_eq!(entered["position"], 0);
    assert_eq!(entered["opensAt"], opens_at.as_str(), "{entered}");
}

#[tokio::test]
async fn each_rooms_line_has_metrics_of_its_own() {
    let app = admin_app().await;
    golden_hour(&app, json!({"admitPerSecond": 3})).await;
    let admitted = r#"queue_admitted_total{room="golden-hour"}"#;
    let before = app.metric(admitted).await;
    entered(&app, "golden-hour", None).await;
    assert!(app.metric(admitted).await - before >= 1.0);
    // Set by the room's own admission steps.
    let rate = r#"queue_admit_per_second_setting{room="golden-hour"}"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while app.metric(rate).await != 3.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no {rate} on /metrics"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        app.metric(r#"queue_admit_per_second_setting{room="default"}"#)
            .await
            >= 1.0
    );
}

#[tokio::test]
async fn a_new_rooms_token_works_at_once_on_an_instance_that_has_not_read_the_rooms_yet() {
    let app = admin_app().await;
    let peer = app.spawn_peer().await;
    golden_hour(&app, json!({})).await;
    let token = entered(&app, "golden-hour", None).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    // At once, not after the peer's next read of the rooms (every half second).
    let seats = app
        .get_at(&peer, &token, "/api/concerts/1/performances/120/seats")
        .await;
    assert_eq!(seats.status().as_u16(), 200);
    let polled = app.get_at(&peer, &token, "/api/queue").await;
    assert_eq!(polled.status().as_u16(), 200);
}

#[tokio::test]
async fn a_hold_is_paid_only_with_a_token_of_its_room() {
    let app = admin_app().await;
    golden_hour(&app, json!({})).await;
    let room_token = entered(&app, "golden-hour", Some(7)).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let held = app.hold_at(&app.url(""), &room_token, 7, 1, 120, 5).await;
    assert_eq!(held.status().as_u16(), 200);
    let reservation: Value = held.json().await.unwrap();
    let id = reservation["reservationId"].as_i64().unwrap();
    assert_eq!(app.charge(7, 1_000_000, None).await.status().as_u16(), 200);

    let default_token = app.active_token(Some(7)).await;
    assert_problem(
        app.pay(&default_token, id, 7, Some("wrong-room")).await,
        403,
        "TOKEN_WRONG_ROOM",
    )
    .await;
    // Nothing was recorded under the key: the same key pays with the room's token.
    let paid = app.pay(&room_token, id, 7, Some("wrong-room")).await;
    assert_eq!(paid.status().as_u16(), 200);
}

#[tokio::test]
async fn a_paused_room_whose_line_redis_lost_comes_back_paused_with_its_opening() {
    let app = admin_app().await;
    let opens_at = (chrono::Utc::now() + chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    golden_hour(&app, json!({"paused": true, "opensAt": opens_at})).await;
    entered(&app, "golden-hour", None).await;
    delete_keys(&app, golden_hour_keys(&app, "*"));

    let again = entered(&app, "golden-hour", None).await;
    assert_eq!(again["status"], "WAITING", "{again}");
    assert_eq!(again["opensAt"], opens_at.as_str(), "{again}");
    let details: Value = admin(
        &app,
        reqwest::Method::GET,
        "/api/admin/rooms/golden-hour",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(details["paused"], true, "{details}");
}

#[tokio::test]
async fn a_random_room_admits_its_waiting_people_in_a_drawn_order() {
    let app = admin_app().await;
    golden_hour(
        &app,
        json!({"mode": "random", "paused": true, "admitPerSecond": 10, "maxActive": 12}),
    )
    .await;
    let mut tokens = Vec::new();
    for user in 1..=30 {
        let body = entered(&app, "golden-hour", Some(user)).await;
        assert_eq!(body["status"], "WAITING");
        tokens.push(body["token"].as_str().unwrap().to_string());
    }
    let resumed = admin(
        &app,
        reqwest::Method::PATCH,
        "/api/admin/rooms/golden-hour",
        Some(json!({"paused": false})),
    )
    .await;
    assert_eq!(resumed.status().as_u16(), 200);

    // Admitted at the room's rate, in the batch's drawn order; the room's capacity keeps the
    // front inside the batch, so that its order stays in force for the checks below.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let admitted = loop {
        let mut admitted = Vec::new();
        for (arrival, token) in tokens.iter().enumerate() {
            let polled: Value = app.poll_queue(token).await.json().await.unwrap();
            if polled["status"] == "ACTIVE" {
                admitted.push(arrival + 1);
            }
        }
        if admitted.len() >= 10 || std::time::Instant::now() > deadline {
            break admitted;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(admitted.len() >= 10, "admitted {admitted:?}");
    // The first ten to arrive being the first ten admitted: a chance of one in 30 million.
    assert_ne!(
        admitted[..10],
        (1..=10).collect::<Vec<_>>()[..],
        "{admitted:?}"
    );
    // Published by the instance's step that followed the draw, which may still be in flight.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let room: Value = app
            .get("/api/rooms/golden-hour")
            .await
            .json()
            .await
            .unwrap();
        if room["drawRange"] == json!({"after": 0, "through": 30}) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no draw published: {room}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Once the instance holds the drawn order, every place has a number of its own.
    let mut numbers = std::collections::BTreeSet::new();
    for token in &tokens {
        let polled: Value = app.poll_queue(token).await.json().await.unwrap();
        numbers.insert(polled["ticketNumber"].as_u64().unwrap());
    }
    assert_eq!(
        numbers,
        (1..=30).collect(),
        "every place has a number of its own"
    );
}

#[tokio::test]
async fn a_paused_room_whose_people_all_left_can_be_deleted() {
    let app = admin_app().await;
    golden_hour(&app, json!({"paused": true})).await;
    let body = entered(&app, "golden-hour", None).await;
    assert_eq!(body["status"], "WAITING");
    let token = body["token"].as_str().unwrap().to_string();
    let delete = || {
        admin(
            &app,
            reqwest::Method::DELETE,
            "/api/admin/rooms/golden-hour",
            None,
        )
    };
    assert_problem(delete().await, 409, "ROOM_BUSY").await;
    assert_eq!(app.leave_queue(&token).await.status().as_u16(), 204);
    // The front never moved (paused), yet nobody waits any more: deleted as soon as the
    // instance's view has the leave (at once, or at its next step).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = delete().await.status().as_u16();
        if status == 204 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {status}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn in_a_closed_room_a_user_already_in_gets_their_place_back_and_nobody_new_enters() {
    let app = admin_app().await;
    golden_hour(&app, json!({"maxActive": 1})).await;
    let active = entered(&app, "golden-hour", Some(1)).await;
    let waiting = entered(&app, "golden-hour", Some(2)).await;
    assert_eq!(waiting["status"], "WAITING");
    let closed = admin(
        &app,
        reqwest::Method::PATCH,
        "/api/admin/rooms/golden-hour",
        Some(json!({"mode": "reject"})),
    )
    .await;
    assert_eq!(closed.status().as_u16(), 200);

    assert_eq!(
        entered(&app, "golden-hour", Some(1)).await["token"],
        active["token"]
    );
    let again = entered(&app, "golden-hour", Some(2)).await;
    assert_eq!(again["token"], waiting["token"]);
    assert_eq!(again["position"], 1);
    assert_problem(
        enter_room(&app, "golden-hour", Some(3)).await,
        409,
        "ROOM_CLOSED",
    )
    .await;
    assert_problem(
        enter_room(&app, "golden-hour", None).await,
        409,
        "ROOM_CLOSED",
    )
    .await;
}
