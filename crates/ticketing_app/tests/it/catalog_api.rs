//! The catalog endpoints over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use serde_json::Value;
use support::{assert_problem, TestApp};

#[tokio::test]
async fn concerts_are_listed() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    let response = app.concerts(&token).await;

    assert_eq!(response.status().as_u16(), 200);
    let body: Vec<Value> = response.json().await.unwrap();
    assert_eq!(body.len(), 4);
    assert_eq!(body[0]["id"], 1);
    for key in ["title", "artist", "venue"] {
        assert!(body[0][key].is_string(), "{key}");
    }
}

#[tokio::test]
async fn performances_of_a_concert_are_listed_in_the_contract_shape() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    let response = app.performances(&token, "1").await;

    assert_eq!(response.status().as_u16(), 200);
    let body: Vec<Value> = response.json().await.unwrap();
    let first = &body[0];
    assert_eq!(first["id"], 119);
    assert_eq!(first["concertId"], 1);
    assert_eq!(first["totalSeats"], 1000);
    assert_eq!(first["availableSeats"], 1000);
    let starts_at = first["startsAt"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(starts_at).is_ok());
    assert!(starts_at.ends_with('Z'));
}

#[tokio::test]
async fn the_seats_of_performance_119_are_a_thousand() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    let response = app.seats(&token, "1", "119").await;

    assert_eq!(response.status().as_u16(), 200);
    let body: Vec<Value> = response.json().await.unwrap();
    assert_eq!(body.len(), 1000);
    assert_eq!(body[0]["id"], 1);
    assert_eq!(body[999]["id"], 1000);
    assert_eq!(body[0]["grade"], "R");
    assert_eq!(body[0]["price"], 150000);
    assert_eq!(body[0]["status"], "AVAILABLE");
}

#[tokio::test]
async fn a_held_or_sold_seat_is_shown_so() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    app.db
        .execute(
            "UPDATE seats SET status = 'HELD', hold_expires_at = now() + interval '1 minute', reservation_id = 1
              WHERE performance_id = 119 AND seat_no = 10;
             UPDATE seats SET status = 'SOLD', reservation_id = 2 WHERE performance_id = 119 AND seat_no = 11;",
        )
        .await;

    let body: Vec<Value> = app.seats(&token, "1", "119").await.json().await.unwrap();

    assert_eq!(body[9]["status"], "HELD");
    assert_eq!(body[10]["status"], "SOLD");
    let performances: Vec<Value> = app.performances(&token, "1").await.json().await.unwrap();
    assert_eq!(performances[0]["availableSeats"], 998);
}

#[tokio::test]
async fn an_unknown_concert_is_not_found() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    assert_problem(app.performances(&token, "999").await, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn a_performance_of_another_concert_is_not_found() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    assert_problem(app.seats(&token, "2", "119").await, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn an_unknown_performance_is_not_found() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    assert_problem(app.seats(&token, "1", "424242").await, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn a_non_numeric_id_is_a_bad_request() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    assert_problem(
        app.performances(&token, "abc").await,
        400,
        "INVALID_REQUEST",
    )
    .await;
    assert_problem(app.seats(&token, "1", "x119").await, 400, "INVALID_REQUEST").await;
    assert_problem(app.seats(&token, "1", "1.5").await, 400, "INVALID_REQUEST").await;
}

#[tokio::test]
async fn zero_negative_and_overflowing_ids_are_bad_requests() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    assert_problem(app.performances(&token, "0").await, 400, "INVALID_REQUEST").await;
    assert_problem(app.performances(&token, "-1").await, 400, "INVALID_REQUEST").await;
    assert_problem(app.seats(&token, "1", "0").await, 400, "INVALID_REQUEST").await;
    assert_problem(
        app.performances(&token, "99999999999999999999").await,
        400,
        "INVALID_REQUEST",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_route_is_a_problem_not_an_empty_page() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    assert_problem(app.get("/api/nothing-here").await, 404, "NOT_FOUND").await;
    assert_problem(
        app.get_with(&token, "/api/concerts/1/nothing").await,
        404,
        "NOT_FOUND",
    )
    .await;
}
