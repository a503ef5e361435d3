//! Seat holds over HTTP: the contract, the races and expiry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde_json::Value;
use support::{assert_problem, TestApp, TOKEN_HEADER};

#[tokio::test]
async fn a_hold_answers_the_reservation_in_the_contract_shape() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(7)).await;

    let response = app.hold(&token, 7, 42).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["reservationId"].as_i64().unwrap() > 0);
    assert_eq!(body["status"], "HELD");
    assert_eq!(body["userId"], 7);
    assert_eq!(body["concertId"], 1);
    assert_eq!(body["performanceId"], 119);
    assert_eq!(body["seatId"], 42);
    assert_eq!(body["price"], 150000);
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    let remaining = expires_at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        remaining > chrono::Duration::seconds(290),
        "held for 5 minutes by default"
    );

    let shown: Value = app
        .reservation(&token, body["reservationId"].as_i64().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown, body);
}

#[tokio::test]
async fn a_held_seat_is_shown_held_and_counted_out_of_the_available_seats() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    app.hold(&token, 7, 42).await;

    assert_eq!(app.seat_status(&token, 42).await, "HELD");
    let performances: Vec<Value> = app.performances(&token, "1").await.json().await.unwrap();
    assert_eq!(performances[0]["availableSeats"], 999);
}

#[tokio::test]
async fn a_seat_held_by_someone_else_is_409_seat_unavailable() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    app.hold(&token, 7, 42).await;

    assert_problem(app.hold(&token, 8, 42).await, 409, "SEAT_UNAVAILABLE").await;
}

#[tokio::test]
async fn unknown_seats_performances_and_users_are_404() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    let base = app.address.clone();

    assert_problem(app.hold(&token, 7, 1001).await, 404, "NOT_FOUND").await;
    assert_problem(
        app.hold_at(&base, &token, 7, 1, 999, 1).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(
        app.hold_at(&base, &token, 7, 2, 119, 1).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(
        app.hold_at(&base, &token, 7, 999, 119, 1).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(app.hold(&token, 10_001, 1).await, 404, "NOT_FOUND").await;
    assert_problem(app.reservation(&token, 987_654).await, 404, "NOT_FOUND").await;
    assert_problem(
        app.cancel_reservation(&token, 987_654).await,
        404,
        "NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn malformed_hold_requests_are_400() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    let post = |body: &'static str| app.post_raw("/api/reservations", Some(&token), body);

    for body in [
        "",
        "{",
        "[]",
        r#"{"concertId": 1, "performanceId": 119, "seatId": 1}"#,
        r#"{"userId": "7", "concertId": 1, "performanceId": 119, "seatId": 1}"#,
        r#"{"userId": 7, "concertId": 1, "performanceId": 119, "seatId": 1.5}"#,
        r#"{"userId": 0, "concertId": 1, "performanceId": 119, "seatId": 1}"#,
        r#"{"userId": 7, "concertId": 1, "performanceId": -119, "seatId": 1}"#,
        r#"{"userId": 7, "concertId": 1, "performanceId": 119, "seatId": 99999999999}"#,
        r#"{"userId": 7, "concertId": 1, "performanceId": 119, "seatId": null}"#,
    ] {
        let response = post(body).await;
        assert_problem(response, 400, "INVALID_REQUEST").await;
    }
    assert_problem(app.reservation(&token, 0).await, 400, "INVALID_REQUEST").await;
    assert_problem(
        app.get_with(&token, "/api/reservations/abc").await,
        400,
        "INVALID_REQUEST",
    )
    .await;
}

#[tokio::test]
async fn reservations_need_an_active_token() {
    let app = TestApp::spawn().await;

    let response = app
        .client
        .post(app.url("/api/reservations"))
        .json(&serde_json::json!({"userId": 7, "concertId": 1, "performanceId": 119, "seatId": 1}))
        .send()
        .await
        .unwrap();

    assert_problem(response, 401, "TOKEN_MISSING").await;
    assert_problem(
        app.hold("0123456789abcdef0123456789abcdef", 7, 1).await,
        401,
        "TOKEN_INVALID",
    )
    .await;
}

#[tokio::test]
async fn a_token_bound_to_another_user_is_403_token_user_mismatch() {
    let app = TestApp::spawn().await;
    let token_of_7 = app.active_token(Some(7)).await;
    let token_of_8 = app.active_token(Some(8)).await;
    let held: Value = app.hold(&token_of_7, 7, 42).await.json().await.unwrap();
    let id = held["reservationId"].as_i64().unwrap();

    assert_problem(
        app.hold(&token_of_8, 7, 43).await,
        403,
        "TOKEN_USER_MISMATCH",
    )
    .await;
    assert_problem(
        app.reservation(&token_of_8, id).await,
        403,
        "TOKEN_USER_MISMATCH",
    )
    .await;
    assert_problem(
        app.cancel_reservation(&token_of_8, id).await,
        403,
        "TOKEN_USER_MISMATCH",
    )
    .await;
    assert_eq!(app.seat_status(&token_of_7, 43).await, "AVAILABLE");
    assert_eq!(app.seat_status(&token_of_7, 42).await, "HELD");
}

#[tokio::test]
async fn a_waiting_token_cannot_hold() {
    let app = TestApp::spawn_with(&[("APP__QUEUE__MAX_ACTIVE", "1")]).await;
    app.enter(None).await;
    let waiting = app.enter(None).await;

    let response = app.hold(waiting["token"].as_str().unwrap(), 7, 1).await;

    assert_problem(response, 403, "TOKEN_NOT_ACTIVE").await;
}

#[tokio::test]
async fn cancelling_releases_the_seat_at_once() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    let held: Value = app.hold(&token, 7, 42).await.json().await.unwrap();
    let id = held["reservationId"].as_i64().unwrap();

    assert_eq!(app.cancel_reservation(&token, id).await.status(), 204);

    let shown: Value = app.reservation(&token, id).await.json().await.unwrap();
    assert_eq!(shown["status"], "CANCELLED");
    assert_eq!(app.seat_status(&token, 42).await, "AVAILABLE");
    assert_eq!(
        app.hold(&token, 8, 42).await.status(),
        200,
        "someone else can take it"
    );
    assert_eq!(
        app.cancel_reservation(&token, id).await.status(),
        204,
        "cancelling again changes nothing"
    );
    assert_eq!(app.seat_status(&token, 42).await, "HELD");
}

#[tokio::test]
async fn a_paid_reservation_cannot_be_cancelled() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    let held: Value = app.hold(&token, 7, 42).await.json().await.unwrap();
    let id = held["reservationId"].as_i64().unwrap();
    app.db
        .execute(&format!(
            "UPDATE seats SET status = 'SOLD', hold_expires_at = NULL WHERE reservation_id = {id};
             UPDATE reservations SET status = 'CONFIRMED' WHERE id = {id};"
        ))
        .await;

    assert_problem(
        app.cancel_reservation(&token, id).await,
        409,
        "RESERVATION_CONFIRMED",
    )
    .await;
    assert_eq!(app.seat_status(&token, 42).await, "SOLD");
}

#[tokio::test]
async fn a_lapsed_hold_expires_frees_the_seat_and_is_cleaned_up() {
    let app = TestApp::spawn_with(&[
        ("APP__RESERVATION__HOLD_TTL_SECONDS", "1"),
        ("APP__RESERVATION__EXPIRY_SWEEP_INTERVAL_MS", "100"),
        // The listing read while HELD would otherwise be served for a while after the lapse:
        // time passes for the stores, not for this process's cache.
        ("APP__CATALOG__MAX_STALENESS_MS", "0"),
    ])
    .await;
    let token = app.active_token(None).await;
    let held: Value = app.hold(&token, 7, 42).await.json().await.unwrap();
    let id = held["reservationId"].as_i64().unwrap();
    assert_eq!(app.seat_status(&token, 42).await, "HELD");

    app.pass(Duration::from_secs(2)).await;

    let shown: Value = app.reservation(&token, id).await.json().await.unwrap();
    assert_eq!(shown["status"], "EXPIRED");
    assert_eq!(app.seat_status(&token, 42).await, "AVAILABLE");
    let marked =
        format!("SELECT count(*) FROM reservations WHERE id = {id} AND status = 'EXPIRED'");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.db.query_i64(&marked).await != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the clean-up job did not mark it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.db
            .query_i64("SELECT count(*) FROM seats WHERE performance_id = 119 AND status = 'HELD'")
            .await,
        0
    );
    assert_eq!(app.hold(&token, 8, 42).await.status(), 200);
}

#[tokio::test]
async fn a_lapsed_hold_is_free_even_without_the_clean_up_job() {
    let app = TestApp::spawn_with(&[
        ("APP__RESERVATION__HOLD_TTL_SECONDS", "1"),
        ("APP__RESERVATION__EXPIRY_SWEEP_INTERVAL_MS", "3600000"),
    ])
    .await;
    let token = app.active_token(None).await;
    app.hold(&token, 7, 42).await;

    app.pass(Duration::from_secs(2)).await;

    assert_eq!(app.seat_status(&token, 42).await, "AVAILABLE");
    assert_eq!(app.hold(&token, 8, 42).await.status(), 200);
}

#[tokio::test]
async fn a_thousand_racing_holds_on_one_seat_make_one_200_and_999_409() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    let statuses: Vec<u16> = stream::iter(0..1000)
        .map(|i| {
            let (app, token) = (&app, &token);
            async move { app.hold(token, 1 + i % 1000, 500).await.status().as_u16() }
        })
        .buffer_unordered(250)
        .collect()
        .await;

    let ok = statuses.iter().filter(|s| **s == 200).count();
    let conflict = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!(
        (ok, conflict),
        (1, 999),
        "other statuses: {:?}",
        statuses
            .iter()
            .filter(|s| **s != 200 && **s != 409)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn five_thousand_holds_through_two_instances_never_double_book() {
    let app = TestApp::spawn().await;
    let peer = app.spawn_peer().await;
    let token = app.active_token(None).await;
    let bases = [app.address.clone(), peer];

    let outcomes: Vec<(u16, i64)> = stream::iter(0..5000u64)
        .map(|i| {
            let (app, token, bases) = (&app, &token, &bases);
            // A cheap deterministic scatter over the 1000 seats and 1000 users.
            let seat = (i * 7919 + i / 3) % 1000 + 1;
            let user = (i * 104_729) % 1000 + 1;
            async move {
                let base = &bases[(i % 2) as usize];
                let status = app
                    .hold_at(base, token, user as i64, 1, 119, seat as i64)
                    .await
                    .status()
                    .as_u16();
                (status, seat as i64)
            }
        })
        // 100 in flight over the two instances' 16 database connections: a race on every seat
        // without queueing past the pools' checkout timeout on a loaded 2-core machine (which
        // would answer 503, the fast refusal of a saturated pool).
        .buffer_unordered(100)
        .collect()
        .await;

    let won: Vec<i64> = outcomes
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, seat)| *seat)
        .collect();
    let refused = outcomes.iter().filter(|(s, _)| *s == 409).count();
    let others: Vec<u16> = outcomes
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| *s != 200 && *s != 409)
        .collect();
    assert_eq!(
        won.len() + refused,
        5000,
        "only 200 and 409 answers: {others:?}"
    );
    let distinct: HashSet<i64> = won.iter().copied().collect();
    assert_eq!(won.len(), distinct.len(), "each won seat was won once");
    let held_in_db = app
        .db
        .query_i64("SELECT count(*) FROM seats WHERE performance_id = 119 AND status = 'HELD'")
        .await;
    assert_eq!(held_in_db as usize, distinct.len());
    let double_booked = app
        .db
        .query_i64(
            "SELECT count(*) FROM (SELECT performance_id, seat_no FROM reservations
              WHERE status IN ('HELD', 'CONFIRMED') GROUP BY 1, 2 HAVING count(*) > 1) doubles",
        )
        .await;
    assert_eq!(double_booked, 0);
}

#[tokio::test]
async fn a_cached_seat_map_shows_this_instances_writes_at_once() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    assert_eq!(app.seat_status(&token, 42).await, "AVAILABLE");

    let id = app.held(&token, 7, 42).await;
    assert_eq!(app.seat_status(&token, 42).await, "HELD");
    let performances: Vec<Value> = app.performances(&token, "1").await.json().await.unwrap();
    assert_eq!(performances[0]["availableSeats"], 999);

    app.cancel_reservation(&token, id).await;
    assert_eq!(app.seat_status(&token, 42).await, "AVAILABLE");
}

#[tokio::test]
async fn another_instances_hold_shows_within_the_staleness_bound() {
    let app = TestApp::spawn().await;
    let peer = app.spawn_peer().await;
    let token = app.active_token(None).await;
    assert_eq!(app.seat_status(&token, 42).await, "AVAILABLE");

    let held = app.hold_at(&peer, &token, 7, 1, 119, 42).await;
    assert_eq!(held.status(), 200);

    let started = std::time::Instant::now();
    while app.seat_status(&token, 42).await != "HELD" {
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "still AVAILABLE after the 1 s staleness bound"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_body_of_the_wrong_content_type_is_400_not_a_crash() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        let response = app
            .client
            .post(app.url("/api/reservations"))
            .header(TOKEN_HEADER, &token)
            .header("content-type", content_type)
            .body(r#"{"userId": 7, "concertId": 1, "performanceId": 119, "seatId": 1}"#)
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "INVALID_REQUEST").await;
    }
    assert_eq!(app.seat_status(&token, 1).await, "AVAILABLE");
}

#[tokio::test]
async fn several_seats_are_held_at_once_and_answered_in_the_order_asked() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(7)).await;

    let response = app.hold_seats(&token, 7, &[13, 12, 800]).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let reservations = body["reservations"].as_array().unwrap();
    let seats: Vec<i64> = reservations
        .iter()
        .map(|r| r["seatId"].as_i64().unwrap())
        .collect();
    assert_eq!(seats, [13, 12, 800]);
    for reservation in reservations {
        assert_eq!(reservation["status"], "HELD");
        assert_eq!(reservation["userId"], 7);
        let shown: Value = app
            .reservation(&token, reservation["reservationId"].as_i64().unwrap())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(&shown, reservation);
    }
    assert_eq!(reservations[2]["price"], 90000);
    for seat in [12, 13, 800] {
        assert_eq!(app.seat_status(&token, seat).await, "HELD");
    }
}

#[tokio::test]
async fn one_taken_seat_holds_none_and_names_every_taken_seat() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    app.hold_seats(&token, 8, &[14, 12]).await;

    let body = assert_problem(
        app.hold_seats(&token, 7, &[12, 13, 14]).await,
        409,
        "SEAT_UNAVAILABLE",
    )
    .await;

    assert_eq!(body["unavailableSeatIds"], serde_json::json!([12, 14]));
    assert_eq!(app.seat_status(&token, 13).await, "AVAILABLE");
    assert_eq!(
        app.db
            .query_i64("SELECT count(*) FROM reservations WHERE user_id = 7")
            .await,
        0
    );
}

#[tokio::test]
async fn the_one_seat_form_keeps_its_v1_refusal() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    app.hold(&token, 8, 42).await;

    let body = assert_problem(app.hold(&token, 7, 42).await, 409, "SEAT_UNAVAILABLE").await;

    assert!(body.get("unavailableSeatIds").is_none(), "{body}");
    assert_eq!(
        body["detail"],
        "seat 42 of performance 119 is held by someone else or sold"
    );
}

#[tokio::test]
async fn bad_seat_lists_are_400_and_hold_nothing() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    let post = |body: &'static str| app.post_raw("/api/reservations", Some(&token), body);

    for body in [
        r#"{"userId": 7, "concertId": 1, "performanceId": 119, "seatId": 1, "seatIds": [2]}"#,
        r#"{"userId": 7, "concertId": 1, "performanceId": 119}"#,
        r#"{"userId": 7, "concertId": 1, "performanceId": 119, "seatIds": []}"#,
        r#"{"userId": 7, "concertId": 1, "performanceId": 119, "seatIds": [3, 4, 3]}"#,
        r#"{"userId": 7, "concertId": 1, "performanceId": 119, "seatIds": [1, 2, 3, 4, 5]}"#,
        r#"{"userId": 7, "concertId": 1, "performanceId": 119, "seatIds": [1, 0]}"#,
        r#"{"userId": 7, "concertId": 1, "performanceId": 119, "seatIds": [1, -2]}"#,
        r#"{"userId": 7, "concertId": 1, "performanceId": 119, "seatIds": [1, "2"]}"#,
        r#"{"userId": 7, "concertId": 1, "performanceId": 119, "seatIds": 1}"#,
    ] {
        assert_problem(post(body).await, 400, "INVALID_REQUEST").await;
    }
    assert_eq!(
        app.db
            .query_i64("SELECT count(*) FROM seats WHERE status <> 'AVAILABLE'")
            .await,
        0
    );
}

#[tokio::test]
async fn the_most_seats_per_hold_is_a_setting() {
    let app = TestApp::spawn_with(&[("APP__RESERVATION__MAX_SEATS_PER_HOLD", "2")]).await;
    let token = app.active_token(None).await;

    assert_problem(
        app.hold_seats(&token, 7, &[1, 2, 3]).await,
        400,
        "INVALID_REQUEST",
    )
    .await;
    assert_eq!(app.hold_seats(&token, 7, &[1, 2]).await.status(), 200);
}

#[tokio::test]
async fn a_missing_seat_in_a_list_is_404_and_holds_none() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    assert_problem(
        app.hold_seats(&token, 7, &[1, 1001]).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(app.seat_status(&token, 1).await, "AVAILABLE");
}

/// Many people at once, each asking for 2 to 4 seats over the same 40: each seat is held at
/// most once and every hold is whole or nothing.
#[tokio::test]
async fn racing_several_seat_holds_over_overlapping_seats_never_hold_part() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;

    let outcomes: Vec<(u16, Vec<i64>, Value)> = stream::iter(0..600i64)
        .map(|i| {
            let (app, token) = (&app, &token);
            let start = (i * 13) % 37 + 1;
            let len = 2 + i % 3;
            let mut seats: Vec<i64> = (start..start + len).collect();
            if i % 2 == 1 {
                seats.reverse();
            }
            async move {
                let response = app.hold_seats(token, 1 + i, &seats).await;
                let status = response.status().as_u16();
                (status, seats, response.json().await.unwrap_or(Value::Null))
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;

    let mut won = Vec::new();
    for (status, asked, body) in &outcomes {
        match status {
            200 => {
                let held: Vec<i64> = body["reservations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["seatId"].as_i64().unwrap())
                    .collect();
                assert_eq!(&held, asked, "whole, in the order asked");
                won.extend(held);
            }
            409 => assert!(!body["unavailableSeatIds"].as_array().unwrap().is_empty()),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let distinct: HashSet<i64> = won.iter().copied().collect();
    assert_eq!(won.len(), distinct.len(), "no seat held twice");
    assert_eq!(
        app.db
            .query_i64("SELECT count(*) FROM reservations WHERE status = 'HELD'")
            .await as usize,
        won.len(),
        "nothing held beyond the whole holds answered 200"
    );
}

#[tokio::test]
async fn a_hold_past_the_users_limit_per_performance_is_409_and_takes_nothing() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    assert_eq!(app.hold_seats(&token, 7, &[1, 2, 3]).await.status(), 200);

    let body = assert_problem(
        app.hold_seats(&token, 7, &[4, 5]).await,
        409,
        "SEAT_LIMIT_REACHED",
    )
    .await;

    assert_eq!(
        body["detail"],
        "user 7 may hold or own at most 4 seats of performance 119"
    );
    assert_eq!(app.seat_status(&token, 4).await, "AVAILABLE");
    assert_eq!(
        app.hold(&token, 7, 4).await.status(),
        200,
        "up to the limit"
    );
    assert_problem(app.hold(&token, 7, 5).await, 409, "SEAT_LIMIT_REACHED").await;
    assert_eq!(app.hold(&token, 8, 5).await.status(), 200, "per user");
}

#[tokio::test]
async fn a_zero_limit_per_user_is_no_limit() {
    let app = TestApp::spawn_with(&[("APP__RESERVATION__MAX_SEATS_PER_USER", "0")]).await;
    let token = app.active_token(None).await;

    for first in [1, 5, 9] {
        let seats: Vec<i64> = (first..first + 4).collect();
        assert_eq!(app.hold_seats(&token, 7, &seats).await.status(), 200);
    }
}

/// Thirty concurrent requests of one user for two distinct free seats each, limit 4: exactly
/// two are held, the others are 409 SEAT_LIMIT_REACHED.
#[tokio::test]
async fn concurrent_holds_of_one_user_never_pass_the_limit_together() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(7)).await;

    let statuses: Vec<u16> = stream::iter(0..30i64)
        .map(|i| {
            let (app, token) = (&app, &token);
            async move {
                let seats = [200 + 2 * i, 201 + 2 * i];
                let response = app.hold_seats(token, 7, &seats).await;
                let status = response.status().as_u16();
                if status == 409 {
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(body["code"], "SEAT_LIMIT_REACHED");
                }
                status
            }
        })
        .buffer_unordered(30)
        .collect()
        .await;

    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2);
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 28);
    assert_eq!(
        app.db
            .query_i64("SELECT count(*) FROM reservations WHERE user_id = 7")
            .await,
        4
    );
}

/// With the seat memory kept for a minute, so that nothing but this instance's own changes
/// makes it read the seats again during the test.
async fn remembering_app() -> TestApp {
    TestApp::spawn_with(&[("APP__CATALOG__MAX_STALENESS_MS", "60000")]).await
}

/// Makes every hold that reaches PostgreSQL fail: what is still answered 409 was answered from
/// this instance's memory.
async fn take_the_reservations_table_away(app: &TestApp) {
    app.db
        .execute("ALTER TABLE reservations RENAME TO reservations_away")
        .await;
}

async fn give_the_reservations_table_back(app: &TestApp) {
    app.db
        .execute("ALTER TABLE reservations_away RENAME TO reservations")
        .await;
}

#[tokio::test]
async fn a_seat_known_taken_is_refused_from_memory_without_asking_the_database() {
    let app = remembering_app().await;
    app.db
        .execute(
            "UPDATE seats SET status = 'SOLD', reservation_id = 1 WHERE performance_id = 119 AND seat_no = 5;
             UPDATE seats SET status = 'HELD', hold_expires_at = now() + interval '5 minutes', reservation_id = 2
              WHERE performance_id = 119 AND seat_no = 6;
             UPDATE seats SET status = 'HELD', hold_expires_at = now() - interval '1 second', reservation_id = 3
              WHERE performance_id = 119 AND seat_no = 7;",
        )
        .await;
    let token = app.active_token(None).await;
    app.held(&token, 1, 8).await;

    take_the_reservations_table_away(&app).await;
    let sold = app.hold(&token, 2, 5).await;
    let held = app.hold(&token, 2, 6).await;
    let several = app.hold_seats(&token, 2, &[9, 6, 5]).await;
    let lapsed = app.hold(&token, 2, 7).await;
    let free = app.hold(&token, 2, 10).await;
    give_the_reservations_table_back(&app).await;

    assert_problem(sold, 409, "SEAT_UNAVAILABLE").await;
    assert_problem(held, 409, "SEAT_UNAVAILABLE").await;
    let several = assert_problem(several, 409, "SEAT_UNAVAILABLE").await;
    assert_eq!(several["unavailableSeatIds"], serde_json::json!([6, 5]));
    assert_ne!(
        lapsed.status(),
        409,
        "a lapsed hold is never refused from memory: the database decides"
    );
    assert_ne!(free.status(), 409, "a free seat is asked of the database");
    assert_eq!(app.seat_status(&token, 9).await, "AVAILABLE");
    assert_eq!(app.hold(&token, 2, 7).await.status(), 200);
}

#[tokio::test]
async fn memory_refuses_only_after_the_token_and_the_body_are_checked() {
    let app = TestApp::spawn_with(&[
        ("APP__CATALOG__MAX_STALENESS_MS", "60000"),
        ("APP__SECURITY__REQUIRE_BOUND_TOKENS", "true"),
    ])
    .await;
    let token = app.active_token(Some(1)).await;
    app.held(&token, 1, 5).await;
    app.held(&token, 1, 6).await;
    let cancelled = app.held(&token, 1, 7).await;
    app.cancel_reservation(&token, cancelled).await;
    let other = app.active_token(Some(2)).await;
    app.held(&other, 2, 8).await;

    take_the_reservations_table_away(&app).await;
    let foreign = app.hold(&token, 2, 5).await;
    let duplicates = app.hold_seats(&other, 2, &[5, 5]).await;
    let without_token = app
        .post_raw(
            "/api/reservations",
            None,
            r#"{"userId": 2, "concertId": 1, "performanceId": 119, "seatId": 5}"#,
        )
        .await;
    let refused = app.hold(&other, 2, 5).await;
    give_the_reservations_table_back(&app).await;

    assert_problem(foreign, 403, "TOKEN_USER_MISMATCH").await;
    assert_problem(duplicates, 400, "INVALID_REQUEST").await;
    assert_problem(without_token, 401, "TOKEN_MISSING").await;
    assert_problem(refused, 409, "SEAT_UNAVAILABLE").await;
}

#[tokio::test]
async fn a_seat_this_instance_freed_is_never_refused_from_its_memory() {
    let app = remembering_app().await;
    let token = app.active_token(None).await;
    let first = app.held(&token, 1, 9).await;
    let other = app.held(&token, 1, 11).await;
    // A cancellation here makes the memory read the seats again: now it knows seat 9.
    app.cancel_reservation(&token, other).await;
    app.held(&token, 2, 12).await;
    take_the_reservations_table_away(&app).await;
    assert_problem(app.hold(&token, 2, 9).await, 409, "SEAT_UNAVAILABLE").await;
    give_the_reservations_table_back(&app).await;

    app.cancel_reservation(&token, first).await;
    let again = app.hold(&token, 2, 9).await;

    assert_eq!(
        again.status(),
        200,
        "the seat cancelled through this instance is held at once"
    );
}

#[tokio::test]
async fn a_seat_refunded_through_this_instance_is_held_again_at_once() {
    let app = remembering_app().await;
    let reservation = app.bought(3, 20).await;
    let token = app.active_token(None).await;
    let other = app.held(&token, 4, 21).await;
    app.cancel_reservation(&token, other).await;
    assert_problem(app.hold(&token, 4, 20).await, 409, "SEAT_UNAVAILABLE").await;

    assert_eq!(app.refund(reservation, 3, None, None).await.status(), 200);
    let again = app.hold(&token, 4, 20).await;

    assert_eq!(again.status(), 200);
}
