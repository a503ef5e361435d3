//! APP__SECURITY__REQUIRE_BOUND_TOKENS: only a queue token bound to a reservation's user may
//! touch it, and endpoints outside the queue ask for one too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use support::{assert_problem, TestApp, TOKEN_HEADER};

const BOUND: (&str, &str) = ("APP__SECURITY__REQUIRE_BOUND_TOKENS", "true");

#[tokio::test]
async fn a_hold_needs_a_token_bound_to_the_bodys_user() {
    let app = TestApp::spawn_with(&[BOUND]).await;
    let unbound = app.active_token(None).await;
    let of_8 = app.active_token(Some(8)).await;
    let of_7 = app.active_token(Some(7)).await;

    assert_problem(app.hold(&unbound, 7, 1).await, 403, "TOKEN_USER_MISMATCH").await;
    assert_problem(app.hold(&of_8, 7, 1).await, 403, "TOKEN_USER_MISMATCH").await;
    assert_problem(
        app.hold_seats(&unbound, 7, &[1, 2]).await,
        403,
        "TOKEN_USER_MISMATCH",
    )
    .await;
    assert_eq!(app.hold(&of_7, 7, 1).await.status(), 200);
}

#[tokio::test]
async fn reading_cancelling_and_paying_need_a_token_bound_to_the_reservations_user() {
    let app = TestApp::spawn_with(&[BOUND]).await;
    let of_7 = app.active_token(Some(7)).await;
    let unbound = app.active_token(None).await;
    let reservation = app.held(&of_7, 7, 1).await;
    app.charge(7, 200_000, None).await;

    assert_problem(
        app.reservation(&unbound, reservation).await,
        403,
        "TOKEN_USER_MISMATCH",
    )
    .await;
    assert_problem(
        app.cancel_reservation(&unbound, reservation).await,
        403,
        "TOKEN_USER_MISMATCH",
    )
    .await;
    assert_problem(
        app.pay(&unbound, reservation, 7, None).await,
        403,
        "TOKEN_USER_MISMATCH",
    )
    .await;
    assert_eq!(app.reservation(&of_7, reservation).await.status(), 200);
    assert_eq!(app.pay(&of_7, reservation, 7, None).await.status(), 200);
}

#[tokio::test]
async fn refunds_and_lists_need_a_live_token_bound_to_the_user() {
    let app = TestApp::spawn_with(&[BOUND]).await;
    let paid = app.bought(7, 1).await;
    let of_8 = app.active_token(Some(8)).await;
    let unbound = app.active_token(None).await;

    assert_problem(app.refund(paid, 7, None, None).await, 401, "TOKEN_MISSING").await;
    assert_problem(
        app.refund(paid, 7, None, Some("0123456789abcdef0123456789abcdef"))
            .await,
        401,
        "TOKEN_INVALID",
    )
    .await;
    assert_problem(
        app.refund(paid, 7, None, Some(&of_8)).await,
        403,
        "TOKEN_USER_MISMATCH",
    )
    .await;
    assert_problem(
        app.refund(paid, 7, None, Some(&unbound)).await,
        403,
        "TOKEN_USER_MISMATCH",
    )
    .await;
    assert_problem(
        app.get("/api/users/7/reservations").await,
        401,
        "TOKEN_MISSING",
    )
    .await;
    let list_with = |token: String| {
        app.client
            .get(app.url("/api/users/7/reservations"))
            .header(TOKEN_HEADER, token)
            .send()
    };
    assert_problem(
        list_with(of_8.clone()).await.unwrap(),
        403,
        "TOKEN_USER_MISMATCH",
    )
    .await;

    // The payment ended user 7's session: entering the line again gives a token to prove it.
    let again = app.enter(Some(7)).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(list_with(again.clone()).await.unwrap().status(), 200);
    assert_eq!(app.refund(paid, 7, None, Some(&again)).await.status(), 200);
}

#[tokio::test]
async fn a_waiting_token_is_enough_outside_the_queue() {
    let app = TestApp::spawn_with(&[BOUND, ("APP__QUEUE__MAX_ACTIVE", "1")]).await;
    app.active_token(Some(1)).await;
    let waiting = app.enter(Some(7)).await;
    assert_eq!(waiting["status"], "WAITING");
    let token = waiting["token"].as_str().unwrap();

    let response = app
        .client
        .get(app.url("/api/users/7/reservations"))
        .header(TOKEN_HEADER, token)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn by_default_unbound_tokens_act_for_anyone_and_no_token_is_asked_outside_the_queue() {
    let app = TestApp::spawn().await;
    let unbound = app.active_token(None).await;
    let reservation = app.held(&unbound, 7, 1).await;

    assert_eq!(app.reservation(&unbound, reservation).await.status(), 200);
    assert_eq!(app.get("/api/users/7/reservations").await.status(), 200);
    assert_eq!(
        app.refund(reservation, 7, None, Some("not a token at all"))
            .await
            .status(),
        409,
        "the token is not even read"
    );
}
