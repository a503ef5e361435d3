//! The gate against bots over HTTP: a room's proof-of-work setting, its ALTCHA challenges, entry
//! with a proof (once, across instances), every way a proof is refused, and the metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{admin_cli, assert_problem, TestApp};
use ticketing_testkit::LocalRedis;

const ADMIN_TOKEN: &str = "an-operator-token-of-at-least-32-characters";

/// Low enough that the brute-force solver below takes milliseconds.
const DIFFICULTY: u64 = 2000;

async fn admin_app() -> TestApp {
    TestApp::spawn_with(&[("APP__ADMIN__TOKEN", ADMIN_TOKEN)]).await
}

async fn admin(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(ADMIN_TOKEN);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// A room covering performance 120 asking for a proof at `difficulty`.
async fn gated_room(app: &TestApp, difficulty: u64) -> Value {
    admin(
        app,
        reqwest::Method::POST,
        "/api/admin/rooms",
        Some(
            json!({"id": "gated", "name": "Gated", "performanceIds": [120],
                    "challengeDifficulty": difficulty}),
        ),
    )
    .await
}

/// `GET /api/rooms/{room}/challenge` at `base`.
async fn challenge_at(app: &TestApp, base: &str, room: &str) -> Value {
    let response = app
        .client
        .get(format!("{base}/api/rooms/{room}/challenge"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    response.json().await.unwrap()
}

async fn challenge(app: &TestApp, room: &str) -> Value {
    challenge_at(app, &app.address, room).await
}

/// What an ALTCHA client does: tries every number until the hash matches.
fn solve(challenge: &Value) -> u64 {
    let salt = challenge["salt"].as_str().unwrap();
    let target = challenge["challenge"].as_str().unwrap();
    let max = challenge["maxnumber"].as_u64().unwrap();
    (0..=max)
        .find(|n| {
            let hash = Sha256::digest(format!("{salt}{n}"));
            hash.iter().map(|b| format!("{b:02x}")).collect::<String>() == target
        })
        .expect("the challenge has a solution")
}

/// ALTCHA's payload for `challenge` with `number`, as a client sends it (with `took`).
fn payload(challenge: &Value, number: u64) -> Value {
    json!({
        "algorithm": challenge["algorithm"],
        "challenge": challenge["challenge"],
        "number": number,
        "salt": challenge["salt"],
        "signature": challenge["signature"],
        "took": 17,
    })
}

fn encode(payload: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(payload.to_string())
}

fn proof_of(challenge: &Value) -> String {
    encode(&payload(challenge, solve(challenge)))
}

async fn enter_at(app: &TestApp, base: &str, body: Value) -> reqwest::Response {
    app.client
        .post(format!("{base}/api/queue"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn enter(app: &TestApp, body: Value) -> reqwest::Response {
    enter_at(app, &app.address, body).await
}

async fn waiting_and_active(app: &TestApp, room: &str) -> u64 {
    let room = admin(
        app,
        reqwest::Method::GET,
        &format!("/api/admin/rooms/{room}"),
        None,
    )
    .await;
    room["waiting"].as_u64().unwrap() + room["active"].as_u64().unwrap()
}

#[tokio::test]
async fn with_the_gate_off_nothing_changes_and_the_challenge_is_trivial() {
    let app = admin_app().await;
    assert_eq!(enter(&app, json!({})).await.status(), 200);
    // A proof sent where none is asked is not even read.
    assert_eq!(enter(&app, json!({"proof": "garbage"})).await.status(), 200);
    let challenge = challenge(&app, "default").await;
    assert_eq!(challenge["algorithm"], "SHA-256");
    assert_eq!(challenge["maxnumber"], 0);
    let queue = admin(&app, reqwest::Method::GET, "/api/admin/queue", None).await;
    assert_eq!(queue["challengeDifficulty"], 0);
    assert_problem(app.get("/api/rooms/nope/challenge").await, 404, "NOT_FOUND").await;
    assert_problem(
        app.get("/api/rooms/NOT%20A%20ROOM/challenge").await,
        404,
        "NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn the_default_line_asks_for_a_proof_and_takes_each_once() {
    let app = admin_app().await;
    let queue = admin(
        &app,
        reqwest::Method::PATCH,
        "/api/admin/queue",
        Some(json!({"challengeDifficulty": DIFFICULTY})),
    )
    .await;
    assert_eq!(queue["challengeDifficulty"], DIFFICULTY);
    let room = admin(&app, reqwest::Method::GET, "/api/admin/rooms/default", None).await;
    assert_eq!(room["challengeDifficulty"], DIFFICULTY);

    let required = assert_problem(enter(&app, json!({})).await, 403, "CHALLENGE_REQUIRED").await;
    assert!(
        required["detail"]
            .as_str()
            .unwrap()
            .contains("/api/rooms/default/challenge"),
        "{required}"
    );

    let challenge = challenge(&app, "default").await;
    assert_eq!(challenge["maxnumber"], DIFFICULTY);
    let proof = proof_of(&challenge);
    let entered = enter(&app, json!({"proof": proof})).await;
    assert_eq!(entered.status(), 200);
    let entered: Value = entered.json().await.unwrap();
    assert_eq!(entered["roomId"], "default");
    assert!(entered["token"].is_string());

    assert_problem(
        enter(&app, json!({"proof": proof})).await,
        403,
        "CHALLENGE_FAILED",
    )
    .await;

    // The recorder is the process's, shared with the tests running beside this one: at least
    // this test's outcomes are counted.
    for outcome in ["issued", "passed", "required", "replayed"] {
        let series = format!(r#"queue_challenges_total{{room="default",outcome="{outcome}"}}"#);
        assert!(app.metric(&series).await >= 1.0, "{series}");
    }

    // Off again: entries need nothing.
    admin(
        &app,
        reqwest::Method::PATCH,
        "/api/admin/queue",
        Some(json!({"challengeDifficulty": 0})),
    )
    .await;
    assert_eq!(enter(&app, json!({})).await.status(), 200);
}

#[tokio::test]
async fn every_bad_proof_is_403_challenge_failed_and_hands_out_no_place() {
    let app = admin_app().await;
    // A room id of its own: the metrics' recorder is shared by the tests of this binary.
    admin(
        &app,
        reqwest::Method::POST,
        "/api/admin/rooms",
        Some(
            json!({"id": "refusals", "name": "Refusals", "performanceIds": [120],
                    "challengeDifficulty": DIFFICULTY}),
        ),
    )
    .await;
    admin(
        &app,
        reqwest::Method::POST,
        "/api/admin/rooms",
        Some(
            json!({"id": "other", "name": "Other", "performanceIds": [119],
                    "challengeDifficulty": DIFFICULTY}),
        ),
    )
    .await;
    let good = challenge(&app, "refusals").await;
    let number = solve(&good);
    let with = |field: &str, value: Value| {
        let mut altered = payload(&good, number);
        altered[field] = value;
        encode(&altered)
    };
    let flip = |hex: &str| {
        let first = if hex.starts_with('0') { "1" } else { "0" };
        format!("{first}{}", &hex[1..])
    };
    let foreign = challenge(&app, "other").await;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let bad: Vec<(&str, Value)> = vec![
        (
            "wrong number",
            encode(&payload(&good, (number + 1) % (DIFFICULTY + 1))).into(),
        ),
        (
            "altered challenge",
            with(
                "challenge",
                flip(good["challenge"].as_str().unwrap()).into(),
            )
            .into(),
        ),
        (
            "altered signature",
            with(
                "signature",
                flip(good["signature"].as_str().unwrap()).into(),
            )
            .into(),
        ),
        (
            "forged signature",
            with("signature", "00".repeat(32).into()).into(),
        ),
        (
            "altered salt",
            with(
                "salt",
                good["salt"]
                    .as_str()
                    .unwrap()
                    .replace("room=refusals", "room=other")
                    .into(),
            )
            .into(),
        ),
        ("another room's challenge", proof_of(&foreign).into()),
        ("not base64", "%%% not base64 %%%".into()),
        ("base64 of garbage", b64("garbage").into()),
        ("base64 of the wrong JSON", b64(r#"{"number": 1}"#).into()),
        ("not a string", json!({"number": 1})),
    ];
    for (what, proof) in bad {
        let response = enter(&app, json!({"roomId": "refusals", "proof": proof})).await;
        if what == "not a string" {
            assert_problem(response, 400, "INVALID_REQUEST").await;
        } else {
            let problem = assert_problem(response, 403, "CHALLENGE_FAILED").await;
            assert!(
                problem["detail"].as_str().unwrap().contains("proof"),
                "{what}: {problem}"
            );
        }
    }
    assert_eq!(
        waiting_and_active(&app, "refusals").await,
        0,
        "no place handed out"
    );
    assert_eq!(
        app.metric(r#"queue_challenges_total{room="refusals",outcome="failed"}"#)
            .await,
        9.0
    );
    // The good proof, untouched, still opens the gate: the refusals spent nothing.
    let entered = enter(
        &app,
        json!({"roomId": "refusals", "proof": proof_of(&good)}),
    )
    .await;
    assert_eq!(entered.status(), 200);
    assert_eq!(waiting_and_active(&app, "refusals").await, 1);
}

#[tokio::test]
async fn a_challenge_lapses_after_five_minutes() {
    let app = admin_app().await;
    gated_room(&app, DIFFICULTY).await;
    let challenge = challenge(&app, "gated").await;
    let proof = proof_of(&challenge);
    app.pass(Duration::from_secs(5 * 60 + 1)).await;
    let refused = enter(&app, json!({"roomId": "gated", "proof": proof})).await;
    let problem = assert_problem(refused, 403, "CHALLENGE_FAILED").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("expired"),
        "{problem}"
    );
}

#[tokio::test]
async fn raising_the_difficulty_live_refuses_easier_challenges_handed_out_before() {
    let app = admin_app().await;
    gated_room(&app, DIFFICULTY).await;
    let easy = challenge(&app, "gated").await;
    let room = admin(
        &app,
        reqwest::Method::PATCH,
        "/api/admin/rooms/gated",
        Some(json!({"challengeDifficulty": DIFFICULTY * 2})),
    )
    .await;
    assert_eq!(room["challengeDifficulty"], DIFFICULTY * 2);
    assert_problem(
        enter(&app, json!({"roomId": "gated", "proof": proof_of(&easy)})).await,
        403,
        "CHALLENGE_FAILED",
    )
    .await;
    let harder = challenge(&app, "gated").await;
    assert_eq!(harder["maxnumber"], DIFFICULTY * 2);
    let entered = enter(&app, json!({"roomId": "gated", "proof": proof_of(&harder)})).await;
    assert_eq!(entered.status(), 200);
}

#[tokio::test]
async fn a_proof_is_good_for_one_entry_across_instances() {
    let app = admin_app().await;
    gated_room(&app, DIFFICULTY).await;
    let peer = app.spawn_peer().await;

    // A challenge of one instance is good on the other, once.
    let challenge = challenge_at(&app, &peer, "gated").await;
    let proof = proof_of(&challenge);
    let body = json!({"roomId": "gated", "proof": proof});
    assert_eq!(enter(&app, body.clone()).await.status(), 200);
    assert_problem(enter_at(&app, &peer, body).await, 403, "CHALLENGE_FAILED").await;

    // Many entries racing with one proof through both instances: exactly one place.
    let challenge = challenge_at(&app, &app.address, "gated").await;
    let body = json!({"roomId": "gated", "proof": proof_of(&challenge)});
    let mut racers = tokio::task::JoinSet::new();
    for n in 0..24 {
        let client = app.client.clone();
        let base = if n % 2 == 0 {
            app.address.clone()
        } else {
            peer.clone()
        };
        let body = body.clone();
        racers.spawn(async move {
            client
                .post(format!("{base}/api/queue"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let statuses = racers.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        23,
        "{statuses:?}"
    );
    assert_eq!(waiting_and_active(&app, "gated").await, 2);
}

#[tokio::test]
async fn the_difficulty_is_bounded_and_set_at_creation_by_patch_or_by_the_cli() {
    let app = admin_app().await;
    for bad in [json!(-1), json!(10_000_001), json!("hard")] {
        let response = app
            .client
            .post(app.url("/api/admin/rooms"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"id": "r", "name": "R", "performanceIds": [120], "challengeDifficulty": bad}))
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "INVALID_REQUEST").await;
        let response = app
            .client
            .patch(app.url("/api/admin/queue"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"challengeDifficulty": bad}))
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "INVALID_REQUEST").await;
    }
    let room = gated_room(&app, 10_000_000).await;
    assert_eq!(room["challengeDifficulty"], 10_000_000);

    let base = app.address.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        admin_cli(
            &base,
            ADMIN_TOKEN,
            &["--room", "gated", "set", "--challenge-difficulty", "1234"],
        )
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    let room = admin(&app, reqwest::Method::GET, "/api/admin/rooms/gated", None).await;
    assert_eq!(room["challengeDifficulty"], 1234);

    let base = app.address.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        admin_cli(
            &base,
            ADMIN_TOKEN,
            &["set", "--challenge-difficulty", "4321"],
        )
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    assert!(out.contains("\"challengeDifficulty\": 4321"), "{out}");
    assert_eq!(challenge(&app, "default").await["maxnumber"], 4321);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_good_proof_is_503_and_not_spent() {
    let mut redis = LocalRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&[
        ("REDIS_URL", url.as_str()),
        ("APP__ADMIN__TOKEN", ADMIN_TOKEN),
    ])
    .await;
    admin(
        &app,
        reqwest::Method::PATCH,
        "/api/admin/queue",
        Some(json!({"challengeDifficulty": DIFFICULTY})),
    )
    .await;
    let challenge = challenge(&app, "default").await;
    let proof = proof_of(&challenge);

    redis.stop();
    let refused = enter(&app, json!({"proof": proof})).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_problem(refused, 503, "UNAVAILABLE").await;

    redis.restart();
    let started = Instant::now();
    loop {
        let response = enter(&app, json!({"proof": proof})).await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(
            response.status(),
            503,
            "only unavailable while Redis comes back"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
