//! Balance and payments over HTTP, and the whole flow from the queue to a sold seat.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde_json::Value;
use support::{assert_problem, TestApp};

async fn json(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_whole_flow_from_the_queue_to_a_sold_seat() {
    let app = TestApp::spawn().await;

    let entered = app.enter(Some(7)).await;
    assert_eq!(entered["status"], "ACTIVE");
    let token = entered["token"].as_str().unwrap().to_string();
    let concerts = json(app.concerts(&token).await).await;
    assert_eq!(concerts[0]["id"], 1);
    let performances = json(app.performances(&token, "1").await).await;
    assert_eq!(performances[0]["id"], 119);
    let seats = json(app.seats(&token, "1", "119").await).await;
    assert_eq!(seats[41]["status"], "AVAILABLE");
    let reservation = app.held(&token, 7, 42).await;
    let charged = json(app.charge(7, 200_000, None).await).await;
    assert_eq!(charged, serde_json::json!({"userId": 7, "balance": 200000}));

    let response = app.pay(&token, reservation, 7, None).await;

    assert_eq!(response.status(), 200);
    let paid = json(response).await;
    assert!(paid["paymentId"].as_i64().unwrap() > 0);
    assert_eq!(paid["reservationId"], reservation);
    assert_eq!(paid["userId"], 7);
    assert_eq!(paid["amount"], 150000);
    assert_eq!(paid["status"], "PAID");
    assert!(chrono::DateTime::parse_from_rfc3339(paid["paidAt"].as_str().unwrap()).is_ok());
    assert!(
        paid.get("reservationIds").is_none(),
        "the one-reservation form answers as in v1: {paid}"
    );
    assert_problem(app.concerts(&token).await, 401, "TOKEN_INVALID").await;
    assert_problem(app.poll_queue(&token).await, 401, "TOKEN_INVALID").await;
    let fresh = app.active_token(Some(7)).await;
    assert_ne!(
        fresh, token,
        "the paid session is over; entering again starts a new one"
    );
    assert_eq!(app.seat_status(&fresh, 42).await, "SOLD");
    let shown = json(app.reservation(&fresh, reservation).await).await;
    assert_eq!(shown["status"], "CONFIRMED");
    assert_eq!(json(app.balance(7).await).await["balance"], 50000);
    let performances = json(app.performances(&fresh, "1").await).await;
    assert_eq!(performances[0]["availableSeats"], 999);
}

#[tokio::test]
async fn balances_are_read_and_charged() {
    let app = TestApp::spawn().await;

    assert_eq!(
        json(app.balance(7).await).await,
        serde_json::json!({"userId": 7, "balance": 0})
    );
    assert_eq!(json(app.charge(7, 1, None).await).await["balance"], 1);
    assert_eq!(
        json(app.charge(7, 10_000_000, None).await).await["balance"],
        10_000_001
    );
    assert_eq!(json(app.balance(7).await).await["balance"], 10_000_001);
}

#[tokio::test]
async fn charges_out_of_range_or_malformed_are_400() {
    let app = TestApp::spawn().await;

    for amount in [0, -5, 10_000_001, i64::MAX] {
        assert_problem(app.charge(7, amount, None).await, 400, "INVALID_REQUEST").await;
    }
    let post = |body: &'static str| app.post_raw("/api/users/7/balance/charge", None, body);
    for body in [
        "",
        "{",
        r#"{"amount": "100"}"#,
        r#"{"amount": 1.5}"#,
        r#"{}"#,
        r#"{"amount": 1e30}"#,
    ] {
        assert_problem(post(body).await, 400, "INVALID_REQUEST").await;
    }
    assert_problem(app.balance(0).await, 400, "INVALID_REQUEST").await;
    assert_problem(
        app.get("/api/users/x/balance").await,
        400,
        "INVALID_REQUEST",
    )
    .await;
    assert_problem(
        app.charge(7, 1, Some("bad key with spaces")).await,
        400,
        "INVALID_REQUEST",
    )
    .await;
    assert_eq!(json(app.balance(7).await).await["balance"], 0);
}

#[tokio::test]
async fn an_unknown_user_is_404() {
    let app = TestApp::spawn().await;

    assert_problem(app.balance(10_001).await, 404, "NOT_FOUND").await;
    assert_problem(app.charge(10_001, 100, None).await, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn a_hundred_concurrent_charges_raise_the_balance_by_exactly_their_sum() {
    let app = TestApp::spawn().await;

    let statuses: Vec<u16> = stream::iter(0..100)
        .map(|_| async { app.charge(7, 1000, None).await.status().as_u16() })
        .buffer_unordered(100)
        .collect()
        .await;

    assert!(statuses.iter().all(|s| *s == 200));
    assert_eq!(json(app.balance(7).await).await["balance"], 100_000);
}

#[tokio::test]
async fn a_double_clicked_charge_with_one_key_counts_once() {
    let app = TestApp::spawn().await;

    let first = app.charge(7, 5000, Some("click-1")).await;
    let second = app.charge(7, 5000, Some("click-1")).await;

    assert_eq!(first.status(), 200);
    assert_eq!(
        json(second).await,
        serde_json::json!({"userId": 7, "balance": 5000})
    );
    assert_eq!(json(app.balance(7).await).await["balance"], 5000);
    assert_problem(
        app.charge(7, 6000, Some("click-1")).await,
        409,
        "IDEMPOTENCY_CONFLICT",
    )
    .await;
    assert_problem(
        app.charge(8, 5000, Some("click-1")).await,
        409,
        "IDEMPOTENCY_CONFLICT",
    )
    .await;
}

#[tokio::test]
async fn an_insufficient_balance_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(7)).await;
    let reservation = app.held(&token, 7, 42).await;
    app.charge(7, 100_000, None).await;

    assert_problem(
        app.pay(&token, reservation, 7, None).await,
        422,
        "INSUFFICIENT_BALANCE",
    )
    .await;

    assert_eq!(json(app.balance(7).await).await["balance"], 100_000);
    assert_eq!(app.seat_status(&token, 42).await, "HELD");
    assert_eq!(
        json(app.reservation(&token, reservation).await).await["status"],
        "HELD"
    );
    app.charge(7, 50_000, None).await;
    assert_eq!(
        app.pay(&token, reservation, 7, None).await.status(),
        200,
        "topped up, it pays"
    );
}

#[tokio::test]
async fn expired_cancelled_and_paid_reservations_are_409_not_payable() {
    let app = TestApp::spawn_with(&[("APP__RESERVATION__HOLD_TTL_SECONDS", "60")]).await;
    app.charge(7, 1_000_000, None).await;
    let token = app.active_token(None).await;
    let lapsing = app.held(&token, 7, 1).await;
    let cancelled = app.held(&token, 7, 2).await;
    app.cancel_reservation(&token, cancelled).await;
    app.pass(Duration::from_secs(61)).await;

    assert_problem(
        app.pay(&token, lapsing, 7, None).await,
        409,
        "RESERVATION_NOT_PAYABLE",
    )
    .await;
    assert_problem(
        app.pay(&token, cancelled, 7, None).await,
        409,
        "RESERVATION_NOT_PAYABLE",
    )
    .await;
    assert_eq!(json(app.balance(7).await).await["balance"], 1_000_000);

    let paid = app.held(&token, 7, 3).await;
    assert_eq!(app.pay(&token, paid, 7, None).await.status(), 200);
    let token = app.active_token(None).await;
    assert_problem(
        app.pay(&token, paid, 7, None).await,
        409,
        "RESERVATION_NOT_PAYABLE",
    )
    .await;
}

#[tokio::test]
async fn paying_for_someone_elses_or_an_unknown_reservation_is_404() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    let reservation = app.held(&token, 7, 42).await;
    app.charge(8, 1_000_000, None).await;

    assert_problem(
        app.pay(&token, reservation, 8, None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(app.pay(&token, 424_242, 8, None).await, 404, "NOT_FOUND").await;
    assert_eq!(json(app.balance(8).await).await["balance"], 1_000_000);
}

#[tokio::test]
async fn payments_check_the_token() {
    let app = TestApp::spawn_with(&[("APP__QUEUE__MAX_ACTIVE", "2")]).await;
    let token_of_7 = app.active_token(Some(7)).await;
    let reservation = app.held(&token_of_7, 7, 42).await;
    app.charge(7, 1_000_000, None).await;
    let token_of_8 = app.active_token(Some(8)).await;
    let waiting = app.enter(None).await;

    let no_token = app
        .client
        .post(app.url("/api/payments"))
        .json(&serde_json::json!({"reservationId": reservation, "userId": 7}))
        .send()
        .await
        .unwrap();
    assert_problem(no_token, 401, "TOKEN_MISSING").await;
    assert_problem(
        app.pay("0123456789abcdef0123456789abcdef", reservation, 7, None)
            .await,
        401,
        "TOKEN_INVALID",
    )
    .await;
    assert_problem(
        app.pay(waiting["token"].as_str().unwrap(), reservation, 7, None)
            .await,
        403,
        "TOKEN_NOT_ACTIVE",
    )
    .await;
    assert_problem(
        app.pay(&token_of_8, reservation, 7, None).await,
        403,
        "TOKEN_USER_MISMATCH",
    )
    .await;
    assert_eq!(json(app.balance(7).await).await["balance"], 1_000_000);
}

#[tokio::test]
async fn malformed_payment_requests_are_400() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    let post = |body: &'static str| app.post_raw("/api/payments", Some(&token), body);

    for body in [
        "",
        "{",
        r#"{"reservationId": 1}"#,
        r#"{"reservationId": "1", "userId": 7}"#,
        r#"{"reservationId": 0, "userId": 7}"#,
        r#"{"reservationId": 1, "reservationIds": [2], "userId": 7}"#,
        r#"{"reservationIds": [], "userId": 7}"#,
        r#"{"reservationIds": [1, 2, 1], "userId": 7}"#,
        r#"{"reservationIds": [1, 0], "userId": 7}"#,
        r#"{"reservationIds": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], "userId": 7}"#,
        r#"{"userId": 7}"#,
    ] {
        assert_problem(post(body).await, 400, "INVALID_REQUEST").await;
    }
}

#[tokio::test]
async fn a_retry_with_the_same_key_gets_the_first_answer_after_the_token_expired() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(7)).await;
    let reservation = app.held(&token, 7, 42).await;
    app.charge(7, 1_000_000, None).await;

    let first = app.pay(&token, reservation, 7, Some("pay-9001")).await;
    assert_eq!(first.status(), 200);
    let first = json(first).await;
    let retry = app.pay(&token, reservation, 7, Some("pay-9001")).await;

    assert_eq!(
        retry.status(),
        200,
        "the token is expired, the outcome is still told"
    );
    assert_eq!(json(retry).await, first);
    assert_eq!(
        json(app.balance(7).await).await["balance"],
        850_000,
        "charged once"
    );
    assert_problem(
        app.pay(&token, reservation, 7, Some("another-key")).await,
        401,
        "TOKEN_INVALID",
    )
    .await;
}

#[tokio::test]
async fn a_recorded_refusal_is_replayed_and_a_reused_key_conflicts() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(7)).await;
    let reservation = app.held(&token, 7, 42).await;
    let other = app.held(&token, 7, 43).await;

    let first = app.pay(&token, reservation, 7, Some("k")).await;
    assert_eq!(first.status(), 422);
    let first_body = json(first).await;
    app.charge(7, 1_000_000, None).await;
    let again = app.pay(&token, reservation, 7, Some("k")).await;
    assert_eq!(
        again.status(),
        422,
        "the recorded refusal, not a new attempt"
    );
    assert_eq!(json(again).await, first_body);

    assert_problem(
        app.pay(&token, other, 7, Some("k")).await,
        409,
        "IDEMPOTENCY_CONFLICT",
    )
    .await;
    assert_eq!(app.pay(&token, other, 7, Some("k2")).await.status(), 200);
}

#[tokio::test]
async fn a_hundred_concurrent_payments_with_one_key_debit_once_and_agree() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(7)).await;
    let reservation = app.held(&token, 7, 42).await;
    app.charge(7, 1_000_000, None).await;

    let answers: Vec<(u16, Value)> = stream::iter(0..100)
        .map(|_| {
            let (app, token) = (&app, &token);
            async move {
                let response = app.pay(token, reservation, 7, Some("one-click")).await;
                (
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;

    let paid: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert!(!paid.is_empty());
    assert!(
        paid.iter().all(|body| *body == paid[0]),
        "every 200 is the same payment"
    );
    for (status, body) in &answers {
        assert!(
            *status == 200 || (*status == 409 && body["code"] == "IDEMPOTENCY_CONFLICT"),
            "{status} {body}"
        );
    }
    assert_eq!(json(app.balance(7).await).await["balance"], 850_000);
    assert_eq!(app.db.query_i64("SELECT count(*) FROM payments").await, 1);
}

#[tokio::test]
async fn two_concurrent_payments_covered_once_make_one_sale_and_no_debt() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(7)).await;
    let first = app.held(&token, 7, 10).await;
    let second = app.held(&token, 7, 11).await;
    app.charge(7, 200_000, None).await;

    let (a, b) = tokio::join!(
        app.pay(&token, first, 7, None),
        app.pay(&token, second, 7, None)
    );

    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    // The winner's payment ends the session, so the loser may also meet an expired token.
    assert!(
        statuses == [200, 422] || statuses == [200, 401],
        "{statuses:?}"
    );
    assert_eq!(json(app.balance(7).await).await["balance"], 50_000);
    assert_eq!(
        app.db.query_i64("SELECT min(balance) FROM wallets").await,
        0
    );
}

#[tokio::test]
async fn several_reservations_are_paid_at_once_with_one_debit_of_their_sum() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(7)).await;
    let held = json(app.hold_seats(&token, 7, &[42, 800]).await).await;
    let ids: Vec<i64> = held["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reservationId"].as_i64().unwrap())
        .collect();
    app.charge(7, 300_000, None).await;

    let response = app.pay_several(&token, &[ids[1], ids[0]], 7, None).await;

    assert_eq!(response.status(), 200);
    let paid = json(response).await;
    assert_eq!(paid["reservationId"], ids[1], "the first asked");
    assert_eq!(paid["reservationIds"], serde_json::json!([ids[1], ids[0]]));
    assert_eq!(paid["amount"], 240000);
    assert_eq!(paid["status"], "PAID");
    assert_eq!(json(app.balance(7).await).await["balance"], 60000);
    let fresh = app.active_token(Some(7)).await;
    for id in &ids {
        assert_eq!(
            json(app.reservation(&fresh, *id).await).await["status"],
            "CONFIRMED"
        );
    }
    assert_eq!(app.seat_status(&fresh, 42).await, "SOLD");
    assert_eq!(app.seat_status(&fresh, 800).await, "SOLD");
    assert_eq!(
        app.db
            .query_i64("SELECT count(*) FROM wallet_entries WHERE reason = 'PAYMENT'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_payment_of_several_is_whole_or_nothing() {
    let app = TestApp::spawn().await;
    let token = app.active_token(None).await;
    let mine = app.held(&token, 7, 1).await;
    let also_mine = app.held(&token, 7, 2).await;
    let foreign = app.held(&token, 8, 3).await;
    app.charge(7, 200_000, None).await;

    assert_problem(
        app.pay_several(&token, &[mine, foreign], 7, None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(
        app.pay_several(&token, &[mine, 987_654], 7, None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(
        app.pay_several(&token, &[mine, also_mine], 7, None).await,
        422,
        "INSUFFICIENT_BALANCE",
    )
    .await;
    app.cancel_reservation(&token, also_mine).await;
    assert_problem(
        app.pay_several(&token, &[mine, also_mine], 7, None).await,
        409,
        "RESERVATION_NOT_PAYABLE",
    )
    .await;

    assert_eq!(json(app.balance(7).await).await["balance"], 200000);
    assert_eq!(app.seat_status(&token, 1).await, "HELD");
    assert_eq!(app.db.query_i64("SELECT count(*) FROM payments").await, 0);
}

#[tokio::test]
async fn a_keyed_payment_of_several_is_replayed_and_the_other_form_conflicts() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(7)).await;
    let first = app.held(&token, 7, 1).await;
    let second = app.held(&token, 7, 2).await;
    app.charge(7, 1_000_000, None).await;

    let paid = json(
        app.pay_several(&token, &[first, second], 7, Some("both"))
            .await,
    )
    .await;
    let again = app
        .pay_several(&token, &[first, second], 7, Some("both"))
        .await;

    assert_eq!(again.status(), 200, "told again after the token ended");
    assert_eq!(json(again).await, paid);
    assert_eq!(json(app.balance(7).await).await["balance"], 700000);
    let fresh = app.active_token(Some(7)).await;
    assert_problem(
        app.pay(&fresh, first, 7, Some("both")).await,
        409,
        "IDEMPOTENCY_CONFLICT",
    )
    .await;
}
