//! Refunds over HTTP: `POST /api/reservations/{id}/refund`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use futures::stream::{self, StreamExt};
use serde_json::Value;
use support::{assert_problem, TestApp};

async fn json(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_paid_reservation_is_refunded_without_a_token_and_its_seat_is_free_again() {
    let app = TestApp::spawn().await;
    let reservation = app.bought(7, 42).await;
    assert_eq!(json(app.balance(7).await).await["balance"], 0);

    let response = app.refund(reservation, 7, None, None).await;

    assert_eq!(response.status(), 200);
    let refunded = json(response).await;
    assert_eq!(refunded["reservationId"], reservation);
    assert_eq!(refunded["status"], "REFUNDED");
    assert_eq!(refunded["userId"], 7);
    assert_eq!(refunded["concertId"], 1);
    assert_eq!(refunded["performanceId"], 119);
    assert_eq!(refunded["seatId"], 42);
    assert_eq!(refunded["price"], 150000);
    assert_eq!(json(app.balance(7).await).await["balance"], 150000);
    let token = app.active_token(Some(7)).await;
    assert_eq!(
        json(app.reservation(&token, reservation).await).await["status"],
        "REFUNDED"
    );
    assert_eq!(app.seat_status(&token, 42).await, "AVAILABLE");
    assert_eq!(
        app.hold(&token, 7, 42).await.status(),
        200,
        "for sale again"
    );
}

#[tokio::test]
async fn what_is_not_paid_or_not_the_users_is_not_refunded() {
    let app = TestApp::spawn().await;
    let paid = app.bought(7, 1).await;
    let token = app.active_token(None).await;
    let held = app.held(&token, 7, 2).await;

    assert_problem(app.refund(paid, 8, None, None).await, 404, "NOT_FOUND").await;
    assert_problem(app.refund(987_654, 7, None, None).await, 404, "NOT_FOUND").await;
    assert_problem(
        app.refund(held, 7, None, None).await,
        409,
        "RESERVATION_NOT_REFUNDABLE",
    )
    .await;
    assert_eq!(app.refund(paid, 7, None, None).await.status(), 200);
    assert_problem(
        app.refund(paid, 7, None, None).await,
        409,
        "RESERVATION_NOT_REFUNDABLE",
    )
    .await;
    assert_eq!(json(app.balance(7).await).await["balance"], 150000);
    assert_eq!(app.seat_status(&token, 2).await, "HELD");
}

#[tokio::test]
async fn nothing_is_refunded_once_the_performance_has_started() {
    let app = TestApp::spawn().await;
    let paid = app.bought(7, 1).await;
    app.db
        .execute("UPDATE performances SET starts_at = now() - interval '1 second' WHERE id = 119")
        .await;

    assert_problem(
        app.refund(paid, 7, None, None).await,
        409,
        "RESERVATION_NOT_REFUNDABLE",
    )
    .await;
    assert_eq!(json(app.balance(7).await).await["balance"], 0);
}

#[tokio::test]
async fn malformed_refunds_are_400() {
    let app = TestApp::spawn().await;
    let post = |path: &'static str, body: &'static str| app.post_raw(path, None, body);

    for (path, body) in [
        ("/api/reservations/1/refund", ""),
        ("/api/reservations/1/refund", "{"),
        ("/api/reservations/1/refund", r#"{"userId": 0}"#),
        ("/api/reservations/1/refund", r#"{"userId": "7"}"#),
        ("/api/reservations/0/refund", r#"{"userId": 7}"#),
        ("/api/reservations/abc/refund", r#"{"userId": 7}"#),
    ] {
        assert_problem(post(path, body).await, 400, "INVALID_REQUEST").await;
    }
}

#[tokio::test]
async fn a_keyed_refund_is_answered_again_and_applied_once() {
    let app = TestApp::spawn().await;
    let paid = app.bought(7, 1).await;

    let first = json(app.refund(paid, 7, Some("refund-1"), None).await).await;
    let again = app.refund(paid, 7, Some("refund-1"), None).await;

    assert_eq!(again.status(), 200);
    assert_eq!(json(again).await, first);
    assert_eq!(json(app.balance(7).await).await["balance"], 150000);
    assert_problem(
        app.refund(paid, 8, Some("refund-1"), None).await,
        409,
        "IDEMPOTENCY_CONFLICT",
    )
    .await;
}

#[tokio::test]
async fn concurrent_refunds_of_one_reservation_refund_it_once() {
    let app = TestApp::spawn().await;
    let paid = app.bought(7, 1).await;

    let statuses: Vec<u16> = stream::iter(0..30)
        .map(|_| {
            let app = &app;
            async move { app.refund(paid, 7, None, None).await.status().as_u16() }
        })
        .buffer_unordered(30)
        .collect()
        .await;

    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1);
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 29);
    assert_eq!(json(app.balance(7).await).await["balance"], 150000);
}

/// A refund racing the payment of the same reservation: the refund sees it paid (both win, the
/// money is back) or not yet (the refund is refused, the sale stands); never a refund of a hold.
#[tokio::test]
async fn a_refund_racing_the_payment_of_its_reservation_never_refunds_a_hold() {
    let app = TestApp::spawn().await;

    for seat in 1..=10 {
        let user = 100 + seat;
        app.charge(user, 1_000_000, None).await;
        let token = app.active_token(Some(user)).await;
        let reservation = app.held(&token, user, seat).await;
        let (paid, refunded) = tokio::join!(
            app.pay(&token, reservation, user, None),
            app.refund(reservation, user, None, None)
        );
        assert_eq!(paid.status(), 200);
        let price = json(paid).await["amount"].as_i64().unwrap();
        let status = refunded.status().as_u16();
        let fresh = app.active_token(Some(user)).await;
        let shown = json(app.reservation(&fresh, reservation).await).await;
        let balance = json(app.balance(user).await).await["balance"].clone();
        match status {
            200 => {
                assert_eq!(shown["status"], "REFUNDED");
                assert_eq!(balance, 1_000_000);
            }
            409 => {
                assert_eq!(shown["status"], "CONFIRMED");
                assert_eq!(balance, 1_000_000 - price);
            }
            other => panic!("refund answered {other}"),
        }
    }
}
