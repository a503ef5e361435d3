//! Invite-only rooms (presales) over HTTP: `"entry": "invite"` on rooms and on the `default`
//! line, codes signed with `APP__AUTH__INVITE_KEY` (here, by the domain's signer and by
//! `ticketing admin invite`), each good for one entry of one account in one room.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use support::{assert_problem, TestApp};
use ticketing_domain::rooms::{Invite, InviteAccount, InviteKey, InviteNonce, RoomId};

const ADMIN_TOKEN: &str = "an-operator-token-of-at-least-32-characters";
const INVITE_KEY: &str = "the-invite-key-of-these-tests-32-bytes-at-least";

pub(crate) async fn invite_app() -> TestApp {
    TestApp::spawn_with(&[
        ("APP__ADMIN__TOKEN", ADMIN_TOKEN),
        ("APP__AUTH__INVITE_KEY", INVITE_KEY),
    ])
    .await
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

/// The invite-only room `presale` covering performance 120, created and answered 201.
pub(crate) async fn presale(app: &TestApp) -> Value {
    let response = admin(
        app,
        reqwest::Method::POST,
        "/api/admin/rooms",
        Some(
            json!({"id": "presale", "name": "Presale", "performanceIds": [120],
                    "entry": "invite"}),
        ),
    )
    .await;
    assert_eq!(response.status().as_u16(), 201);
    response.json().await.unwrap()
}

/// A code signed with `key` for `user` (as decimal text) into `room`, good until `expires_at`.
fn code_with(key: &str, room: &str, user: &str, expires_at: DateTime<Utc>) -> String {
    let key = InviteKey::new(key.as_bytes()).unwrap();
    let invite = Invite::new(
        RoomId::parse(room).unwrap(),
        InviteAccount::new(user).unwrap(),
        expires_at,
        InviteNonce::from_random(rand::random()),
    );
    key.sign(&invite).to_string()
}

/// A good code of `user` into `room`, for a day.
pub(crate) fn code(room: &str, user: i64) -> String {
    code_with(
        INVITE_KEY,
        room,
        &user.to_string(),
        Utc::now() + Duration::days(1),
    )
}

async fn enter(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/queue"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn entered(app: &TestApp, body: Value) -> Value {
    let response = enter(app, body).await;
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

/// Places in the room `room` (waiting and active), as the operator sees them.
async fn places(app: &TestApp, room: &str) -> u64 {
    let path = if room == "default" {
        "/api/admin/queue".to_string()
    } else {
        format!("/api/admin/rooms/{room}")
    };
    let body: Value = admin(app, reqwest::Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    body["waiting"].as_u64().unwrap() + body["active"].as_u64().unwrap()
}

/// The used-invite records in Redis under this app's prefix.
fn used_records(app: &TestApp) -> Vec<String> {
    let mut connection = redis::Client::open(app.redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("KEYS")
        .arg(format!("{{{}*:invite:*", app.redis.prefix()))
        .query(&mut connection)
        .unwrap()
}

#[tokio::test]
async fn an_invite_only_room_is_created_shown_and_needs_a_key_on_the_server() {
    let app = invite_app().await;
    let room = presale(&app).await;
    assert_eq!(room["entry"], "invite");
    let public: Value = app.get("/api/rooms/presale").await.json().await.unwrap();
    assert_eq!(public["entry"], "invite");
    let changed: Value = admin(
        &app,
        reqwest::Method::PATCH,
        "/api/admin/rooms/presale",
        Some(json!({"entry": "open"})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(changed["entry"], "open");

    let keyless = TestApp::spawn_with(&[("APP__ADMIN__TOKEN", ADMIN_TOKEN)]).await;
    let refused = admin(
        &keyless,
        reqwest::Method::POST,
        "/api/admin/rooms",
        Some(
            json!({"id": "presale", "name": "Presale", "performanceIds": [120],
                    "entry": "invite"}),
        ),
    )
    .await;
    let problem = assert_problem(refused, 400, "INVALID_REQUEST").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("APP__AUTH__INVITE_KEY"),
        "{problem}"
    );
    let rooms: Value = admin(&keyless, reqwest::Method::GET, "/api/admin/rooms", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rooms.as_array().unwrap().len(),
        1,
        "nothing created: {rooms}"
    );
    let refused = admin(
        &keyless,
        reqwest::Method::PATCH,
        "/api/admin/queue",
        Some(json!({"entry": "invite"})),
    )
    .await;
    assert_problem(refused, 400, "INVALID_REQUEST").await;
    let state: Value = admin(&keyless, reqwest::Method::GET, "/api/admin/queue", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(state["entry"], "open");
}

#[tokio::test]
async fn an_entry_without_a_code_or_an_account_is_invite_required() {
    let app = invite_app().await;
    presale(&app).await;
    let no_code = enter(&app, json!({"roomId": "presale", "userId": 7})).await;
    assert_problem(no_code, 403, "INVITE_REQUIRED").await;
    let no_account = enter(
        &app,
        json!({"roomId": "presale", "invite": code("presale", 7)}),
    )
    .await;
    assert_problem(no_account, 403, "INVITE_REQUIRED").await;
    assert_eq!(places(&app, "presale").await, 0);
    // An open room ignores an invite altogether, even a malformed one.
    let open = enter(&app, json!({"userId": 7, "invite": "not a code"})).await;
    assert_eq!(open.status().as_u16(), 200);
}

#[tokio::test]
async fn forged_expired_foreign_and_malformed_codes_are_invite_invalid_and_change_nothing() {
    let app = invite_app().await;
    presale(&app).await;
    let day = Utc::now() + Duration::days(1);
    let refused = [
        (
            "forged",
            code_with("another-key-that-is-32-bytes-long-too", "presale", "7", day),
        ),
        (
            "expired",
            code_with(
                INVITE_KEY,
                "presale",
                "7",
                Utc::now() - Duration::minutes(1),
            ),
        ),
        ("another room", code("golden-hour", 7)),
        ("another account", code("presale", 8)),
        ("malformed", "v1.garbage.garbage".to_string()),
        ("not a code at all", "<script>".to_string()),
    ];
    for (why, code) in &refused {
        let response = enter(
            &app,
            json!({"roomId": "presale", "userId": 7, "invite": code}),
        )
        .await;
        let problem = assert_problem(response, 403, "INVITE_INVALID").await;
        assert!(problem["detail"].is_string(), "{why}: {problem}");
    }
    assert_eq!(places(&app, "presale").await, 0, "nobody entered");
    assert!(used_records(&app).is_empty(), "no code was recorded");
    // A refused code is not burned: its own account still gets in with it.
    let foreign = code("presale", 8);
    let response = enter(
        &app,
        json!({"roomId": "presale", "userId": 7, "invite": foreign}),
    )
    .await;
    assert_problem(response, 403, "INVITE_INVALID").await;
    entered(
        &app,
        json!({"roomId": "presale", "userId": 8, "invite": foreign}),
    )
    .await;
}

#[tokio::test]
async fn a_good_code_enters_once_a_reload_gets_the_same_place_and_a_reuse_is_refused() {
    let app = invite_app().await;
    presale(&app).await;
    let invite = code("presale", 7);
    let body = json!({"roomId": "presale", "userId": 7, "invite": invite});
    let first = entered(&app, body.clone()).await;
    assert_eq!(first["roomId"], "presale");
    assert_eq!(places(&app, "presale").await, 1);
    assert_eq!(used_records(&app).len(), 1);

    // The fan reloads the page: the same token and place, nobody new in the room.
    let again = entered(&app, body.clone()).await;
    assert_eq!(again["token"], first["token"]);
    assert_eq!(again["ticketNumber"], first["ticketNumber"]);
    assert_eq!(places(&app, "presale").await, 1);

    // Once the place has ended, the code lets nobody in again.
    let token = first["token"].as_str().unwrap();
    assert_eq!(app.leave_queue(token).await.status().as_u16(), 204);
    let reused = enter(&app, body).await;
    let problem = assert_problem(reused, 403, "INVITE_INVALID").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("used"),
        "{problem}"
    );
    assert_eq!(places(&app, "presale").await, 0);
    // A fresh code of that account does.
    entered(
        &app,
        json!({"roomId": "presale", "userId": 7, "invite": code("presale", 7)}),
    )
    .await;
}

#[tokio::test]
async fn one_code_sent_many_times_at_once_makes_one_place() {
    let app = invite_app().await;
    presale(&app).await;
    let body = json!({"roomId": "presale", "userId": 7, "invite": code("presale", 7)});
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, url, body) = (app.client.clone(), app.url("/api/queue"), body.clone());
        tasks.push(tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body)
        }));
    }
    let mut tokens = std::collections::HashSet::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => {
                tokens.insert(body["token"].as_str().unwrap().to_string());
            }
            // A racer that found the code used before the winner's place existed.
            403 => assert_eq!(body["code"], "INVITE_INVALID", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(tokens.len(), 1, "every success is the one place");
    assert_eq!(places(&app, "presale").await, 1);
}

#[tokio::test]
async fn an_entry_that_fails_leaves_its_code_good() {
    // One entry per client address a second: the line refuses with 429 after the claim.
    let app = TestApp::spawn_with(&[
        ("APP__ADMIN__TOKEN", ADMIN_TOKEN),
        ("APP__AUTH__INVITE_KEY", INVITE_KEY),
        ("APP__QUEUE__ENTRY_RATE_PER_CLIENT", "1"),
    ])
    .await;
    presale(&app).await;
    let mut limited = None;
    for user in 1..=10 {
        let invite = code("presale", user);
        let response = enter(
            &app,
            json!({"roomId": "presale", "userId": user, "invite": invite}),
        )
        .await;
        if response.status().as_u16() == 429 {
            limited = Some((user, invite));
            break;
        }
    }
    let (user, invite) = limited.expect("the client limit refused an entry");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let body = entered(
        &app,
        json!({"roomId": "presale", "userId": user, "invite": invite}),
    )
    .await;
    assert_eq!(body["roomId"], "presale");
}

#[tokio::test]
async fn the_default_line_is_made_invite_only_and_open_again() {
    let app = invite_app().await;
    let changed = admin(
        &app,
        reqwest::Method::PATCH,
        "/api/admin/queue",
        Some(json!({"entry": "invite"})),
    )
    .await;
    assert_eq!(changed.status().as_u16(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["entry"], "invite");
    assert!(
        changed["admitPerSecond"].is_u64(),
        "the line's state: {changed}"
    );

    assert_problem(app.enter_queue(Some(7)).await, 403, "INVITE_REQUIRED").await;
    assert_problem(app.enter_queue(None).await, 403, "INVITE_REQUIRED").await;
    let foreign = enter(&app, json!({"userId": 7, "invite": code("presale", 7)})).await;
    assert_problem(foreign, 403, "INVITE_INVALID").await;
    assert_eq!(places(&app, "default").await, 0);
    let body = entered(&app, json!({"userId": 7, "invite": code("default", 7)})).await;
    assert_eq!(body["roomId"], "default");

    let opened: Value = admin(
        &app,
        reqwest::Method::PATCH,
        "/api/admin/queue",
        Some(json!({"entry": "open", "admitPerSecond": 50})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(opened["entry"], "open");
    assert_eq!(opened["admitPerSecond"], 50);
    app.enter(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_ticketing_admin_invite_prints_is_accepted_by_the_server() {
    let app = invite_app().await;
    // The server runs on this test's runtime: the command waits on a thread of its own.
    let base = app.address.clone();
    let (ok, created, stderr) = tokio::task::spawn_blocking(move || {
        support::admin_cli(
            &base,
            ADMIN_TOKEN,
            &[
                "rooms",
                "create",
                "presale",
                "--name",
                "Presale",
                "--performances",
                "120",
                "--entry",
                "invite",
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "{stderr}");
    assert!(created.contains("\"invite\""), "{created}");
    let run = |arguments: &[&str], key: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ticketing"));
        command
            .arg("admin")
            .args(arguments)
            .env_remove("APP__ADMIN__TOKEN")
            .env_remove("APP__AUTH__INVITE_KEY");
        if let Some(key) = key {
            command.env("APP__AUTH__INVITE_KEY", key);
        }
        let output = command.output().expect("the binary runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).trim().to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let expires = (Utc::now() + Duration::hours(2)).to_rfc3339();
    let (ok, code, stderr) = run(
        &[
            "invite",
            "--room",
            "presale",
            "--user",
            "7",
            "--expires",
            &expires,
        ],
        Some(INVITE_KEY),
    );
    assert!(ok, "{stderr}");
    assert!(code.starts_with("v1."), "{code}");
    let body = entered(
        &app,
        json!({"roomId": "presale", "userId": 7, "invite": code}),
    )
    .await;
    assert_eq!(body["roomId"], "presale");

    // Bad input: a clear reason and a non-zero exit.
    for (arguments, key) in [
        (vec!["invite", "--room", "presale", "--user", "7"], None),
        (
            vec!["invite", "--room", "presale", "--user", "7"],
            Some("short"),
        ),
        (vec!["invite", "--room", "presale"], Some(INVITE_KEY)),
        (
            vec!["invite", "--room", "Pre Sale", "--user", "7"],
            Some(INVITE_KEY),
        ),
        (
            vec![
                "invite",
                "--room",
                "presale",
                "--user",
                "7",
                "--expires",
                "tomorrow",
            ],
            Some(INVITE_KEY),
        ),
        (
            vec![
                "invite",
                "--room",
                "presale",
                "--user",
                "7",
                "--expires",
                "2001-01-01T00:00:00Z",
            ],
            Some(INVITE_KEY),
        ),
    ] {
        let (ok, stdout, stderr) = run(&arguments, key);
        assert!(!ok, "{arguments:?} was accepted: {stdout}");
        assert!(!stderr.trim().is_empty(), "{arguments:?} says why");
    }
}

/// The shell example of docs/api.md ("Invite codes"), as an operator's own system would mint a
/// code without this service's code: the server takes what it prints.
#[tokio::test]
async fn a_code_minted_as_docs_api_md_shows_is_accepted() {
    const API_MD: &str = include_str!("../../../../docs/api.md");
    let after = API_MD
        .split_once("For example, in a shell:")
        .expect("docs/api.md has the minting example")
        .1;
    let script = after
        .split_once("```bash\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a bash block")
        .0;
    let app = invite_app().await;
    presale(&app).await;
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .env("APP__AUTH__INVITE_KEY", INVITE_KEY)
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let code = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let body = entered(
        &app,
        json!({"roomId": "presale", "userId": 7, "invite": code}),
    )
    .await;
    assert_eq!(body["roomId"], "presale");
}
