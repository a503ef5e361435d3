//! A user's reservations over HTTP: `GET /api/users/{userId}/reservations`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use serde_json::Value;
use support::{assert_problem, TestApp};

async fn list(app: &TestApp, path: &str) -> (Option<String>, Vec<Value>) {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    let link = response
        .headers()
        .get("link")
        .map(|value| value.to_str().unwrap().to_string());
    (link, response.json().await.unwrap())
}

fn ids(reservations: &[Value]) -> Vec<i64> {
    reservations
        .iter()
        .map(|r| r["reservationId"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_users_reservations_are_listed_newest_first_without_a_token() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    let first = app.held(&token, 7, 1).await;
    let second = app.held(&token, 7, 2).await;
    app.held(&token, 8, 3).await;
    app.cancel_reservation(&token, first).await;

    let (link, listed) = list(&app, "/api/users/7/reservations").await;

    assert_eq!(link, None, "one page");
    assert_eq!(ids(&listed), [second, first]);
    assert_eq!(listed[1]["status"], "CANCELLED");
    let shown: Value = app.reservation(&token, second).await.json().await.unwrap();
    assert_eq!(
        listed[0], shown,
        "each as GET /api/reservations/{{id}} shows it"
    );
}

#[tokio::test]
async fn the_status_filter_sees_statuses_as_reported() {
    let app = TestApp::spawn_with(&[
        ("APP__RESERVATION__HOLD_TTL_SECONDS", "1"),
        ("APP__RESERVATION__EXPIRY_SWEEP_INTERVAL_MS", "3600000"),
    ])
    .await;
    let paid = app.bought(7, 1).await;
    let token = app.active_token(None).await;
    let lapsing = app.held(&token, 7, 2).await;
    app.pass(std::time::Duration::from_secs(2)).await;

    let (_, confirmed) = list(&app, "/api/users/7/reservations?status=CONFIRMED").await;
    let (_, expired) = list(&app, "/api/users/7/reservations?status=EXPIRED").await;
    let (_, held) = list(&app, "/api/users/7/reservations?status=HELD").await;

    assert_eq!(ids(&confirmed), [paid]);
    assert_eq!(
        ids(&expired),
        [lapsing],
        "a lapsed hold is EXPIRED before any clean-up"
    );
    assert!(held.is_empty());
}

#[tokio::test]
async fn a_long_list_comes_in_pages_linked_by_before() {
    let app = TestApp::spawn_with(&[("APP__RESERVATION__MAX_SEATS_PER_USER", "0")]).await;
    let token = app.active_token(None).await;
    let mut held = Vec::new();
    for seat in 1..=5 {
        held.push(app.held(&token, 7, seat).await);
    }
    held.reverse();

    let (link, page) = list(&app, "/api/users/7/reservations?limit=2").await;
    assert_eq!(ids(&page), held[..2]);
    let link = link.expect("a next page");
    assert_eq!(
        link,
        format!(
            "</api/users/7/reservations?limit=2&before={}>; rel=\"next\"",
            held[1]
        )
    );
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let (link, page) = list(&app, next).await;
    assert_eq!(ids(&page), held[2..4]);
    let next = link.expect("a third page");
    let next = next.trim_start_matches('<').split('>').next().unwrap();
    let (link, page) = list(&app, next).await;
    assert_eq!(ids(&page), held[4..]);
    assert_eq!(link, None);
    let (link, _) = list(&app, "/api/users/7/reservations?limit=2&status=HELD").await;
    assert!(
        link.unwrap().contains("&status=HELD&before="),
        "the filter is kept"
    );
}

#[tokio::test]
async fn bad_queries_are_400_and_an_unknown_user_404() {
    let app = TestApp::spawn().await;

    for path in [
        "/api/users/0/reservations",
        "/api/users/abc/reservations",
        "/api/users/7/reservations?status=PAID",
        "/api/users/7/reservations?status=held",
        "/api/users/7/reservations?limit=0",
        "/api/users/7/reservations?limit=101",
        "/api/users/7/reservations?limit=ten",
        "/api/users/7/reservations?before=0",
        "/api/users/7/reservations?before=-5",
    ] {
        assert_problem(app.get(path).await, 400, "INVALID_REQUEST").await;
    }
    assert_problem(
        app.get("/api/users/99999/reservations").await,
        404,
        "NOT_FOUND",
    )
    .await;
    let (_, empty) = list(&app, "/api/users/7/reservations").await;
    assert!(empty.is_empty());
}
