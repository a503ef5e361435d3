//! The page at `GET /` in real headless Chromium, against the real server: people go from the
//! line to a confirmed seat, race for one seat, wait for their turn.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`);
//! without them each test prints that it was skipped. `BROWSER_TESTS=required` turns that into
//! a failure (CI), and `BROWSER_SCREENSHOTS=docs/images` saves the screenshots of the README.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

mod driver;
mod gate;
mod identity;
mod issuer;
mod languages;
mod rooms;

use std::time::Duration;

use driver::{Browser, Driver};
use serde_json::Value;
use support::TestApp;

const CONCERT: i64 = 1;
const PERFORMANCE: i64 = 119;

/// Buys what the browser holds: charges what is missing, pays, and returns the reservation ids
/// of the confirmation.
async fn charge_and_pay(person: &Browser) -> Vec<i64> {
    person.shown("hold-countdown").await;
    person.click("charge-button").await;
    person
        .wait_for("the balance to cover the total", || async {
            (!person.visible("charge-button").await).then_some(())
        })
        .await;
    person.click("pay-button").await;
    person.confirmed_reservations().await
}

/// What the server says of a reservation, read with a fresh turn of `user`.
async fn reservation(app: &TestApp, user: i64, id: i64) -> Value {
    let token = app.active_token(Some(user)).await;
    let response = app.reservation(&token, id).await;
    assert_eq!(response.status(), 200, "reservation {id}");
    response.json().await.unwrap()
}

/// The status of `seat` of performance 119 in the listing, once it is `expected` (the listing
/// may be up to the catalog staleness behind).
async fn wait_for_seat_status(app: &TestApp, seat: usize, expected: &str) {
    let token = app.active_token(None).await;
    let mut last = String::new();
    for _ in 0..50 {
        last = app.seat_status(&token, seat).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("seat {seat} is {last}, not {expected}");
}

fn looks_like_a_countdown(text: &str) -> bool {
    let Some((minutes, seconds)) = text.split_once(':') else {
        return false;
    };
    minutes.parse::<u32>().is_ok_and(|m| m <= 5)
        && seconds.len() == 2
        && seconds.parse::<u32>().is_ok_and(|s| s < 60)
}

#[tokio::test]
async fn one_person_goes_from_the_line_to_a_confirmed_seat() {
    let Some(driver) = Driver::start("one_person_goes_from_the_line_to_a_confirmed_seat").await
    else {
        return;
    };
    let app = TestApp::spawn().await;
    let person = driver.browser(&app.address, 1).await;

    person.wait_for_status("ACTIVE").await;
    assert!(person.stored_token().await.is_some(), "the token is kept");
    person.open_seat_map(CONCERT, PERFORMANCE).await;
    let seat = person.seat(7).await;
    assert_eq!(person.seat_status(7).await, "AVAILABLE");
    seat.click().await.unwrap();
    assert_eq!(
        seat.attr("aria-pressed").await.unwrap().as_deref(),
        Some("true")
    );
    person.screenshot("seat-map").await;
    person.click("hold-button").await;

    let countdown = person.shown("hold-countdown").await;
    let shown = person
        .wait_for("a countdown", || async {
            let text = countdown.text().await.ok()?;
            looks_like_a_countdown(&text).then_some(text)
        })
        .await;
    assert!(shown.starts_with("4:") || shown == "5:00", "{shown}");
    person.screenshot("hold").await;
    let reservations = charge_and_pay(&person).await;
    person.screenshot("confirmation").await;

    assert_eq!(reservations.len(), 1);
    assert!(
        person
            .text("confirmation")
            .await
            .contains(&reservations[0].to_string()),
        "the confirmation shows the reservation id"
    );
    assert_eq!(person.error().await, None);
    let confirmed = reservation(&app, 1, reservations[0]).await;
    assert_eq!(confirmed["status"], "CONFIRMED");
    assert_eq!(confirmed["seatId"], 7);
    let balance: Value = app.balance(1).await.json().await.unwrap();
    assert_eq!(
        balance["balance"], 0,
        "exactly what was missing was charged"
    );
    wait_for_seat_status(&app, 7, "SOLD").await;
    person.close().await;
}

#[tokio::test]
async fn several_seats_are_picked_with_the_keyboard_held_and_paid_together() {
    let Some(driver) = Driver::start("several_seats_are_picked_with_the_keyboard").await else {
        return;
    };
    let app = TestApp::spawn().await;
    let person = driver.browser(&app.address, 4).await;

    person.open_seat_map(CONCERT, PERFORMANCE).await;
    let first = person.seat(21).await;
    first.click().await.unwrap();
    // The map is one tab stop; arrow keys move inside it, Space picks.
    let keys = format!("{}", fantoccini::key::Key::Right);
    first.send_keys(&keys).await.unwrap();
    let focused = person.client.active_element().await.unwrap();
    assert_eq!(
        focused.attr("data-seat-id").await.unwrap().as_deref(),
        Some("22")
    );
    focused.send_keys(" ").await.unwrap();
    person
        .wait_for("two seats picked", || async {
            let text = person.text("hold-button").await;
            text.contains('2').then_some(())
        })
        .await;
    person.click("hold-button").await;
    let reservations = charge_and_pay(&person).await;

    assert_eq!(reservations.len(), 2, "{reservations:?}");
    let mut seats = Vec::new();
    for id in &reservations {
        let confirmed = reservation(&app, 4, *id).await;
        assert_eq!(confirmed["status"], "CONFIRMED", "{confirmed}");
        seats.push(confirmed["seatId"].as_i64().unwrap());
    }
    seats.sort_unstable();
    assert_eq!(seats, [21, 22]);
    assert_eq!(person.error().await, None);
    person.close().await;
}

#[tokio::test]
async fn two_people_race_for_one_seat_and_exactly_one_gets_it() {
    let Some(driver) = Driver::start("two_people_race_for_one_seat").await else {
        return;
    };
    let app = TestApp::spawn().await;
    let first = driver.browser(&app.address, 2).await;
    let second = driver.browser(&app.address, 3).await;
    for person in [&first, &second] {
        person.open_seat_map(CONCERT, PERFORMANCE).await;
        person.seat(50).await.click().await.unwrap();
    }

    let (one, two) = tokio::join!(first.click("hold-button"), second.click("hold-button"));
    let ((), ()) = (one, two);
    let mut outcomes = Vec::new();
    for person in [&first, &second] {
        let held = person
            .wait_for("the hold or an error", || async {
                if person.visible("hold-countdown").await {
                    Some(true)
                } else if person.error().await.is_some() {
                    Some(false)
                } else {
                    None
                }
            })
            .await;
        outcomes.push(held);
    }
    assert_eq!(
        outcomes.iter().filter(|held| **held).count(),
        1,
        "exactly one holds the seat: {outcomes:?}"
    );
    let (winner, loser) = if outcomes[0] {
        (&first, &second)
    } else {
        (&second, &first)
    };

    let told = loser.error().await.unwrap();
    assert!(told.contains("taken"), "{told}");
    assert!(!told.contains('{'), "plain words, not JSON: {told}");
    loser
        .wait_for("the map to show the seat taken", || async {
            (loser.seat_status(50).await != "AVAILABLE").then_some(())
        })
        .await;
    loser.screenshot("seat-taken").await;
    let reservations = charge_and_pay(winner).await;
    assert_eq!(reservations.len(), 1);
    let confirmed = reservation(&app, winner.user, reservations[0]).await;
    assert_eq!(confirmed["seatId"], 50);
    assert_eq!(confirmed["status"], "CONFIRMED");
    wait_for_seat_status(&app, 50, "SOLD").await;
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn a_waiting_person_sees_their_place_fall_and_is_admitted_when_someone_leaves() {
    let Some(driver) = Driver::start("a_waiting_person_is_admitted").await else {
        return;
    };
    let app = TestApp::spawn_with(&[
        ("APP__QUEUE__MAX_ACTIVE", "1"),
        // Polls every 2 s at most, so the test sees changes quickly.
        ("APP__QUEUE__WAITING_IDLE_TIMEOUT_SECONDS", "6"),
    ])
    .await;
    let inside = driver.browser(&app.address, 1).await;
    inside.wait_for_status("ACTIVE").await;
    let ahead = app.enter(Some(3)).await;
    assert_eq!(ahead["status"], "WAITING");
    let ahead_token = ahead["token"].as_str().unwrap().to_string();
    // The person ahead keeps polling (a place not polled is dropped), until they leave.
    let keep_alive = {
        let client = app.client.clone();
        let url = app.url("/api/queue");
        let token = ahead_token.clone();
        tokio::spawn(async move {
            loop {
                let _ = client.get(&url).header("Queue-Token", &token).send().await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    let waiting = driver.browser(&app.address, 2).await;
    waiting.wait_for_status("WAITING").await;
    waiting
        .wait_for("position 2", || async {
            (waiting.text("queue-position").await == "2").then_some(())
        })
        .await;
    assert_eq!(waiting.error().await, None);
    assert!(
        !waiting.visible("concert").await,
        "no catalog while waiting"
    );
    // A second tab of the same person gets the same place, not a second one.
    let second_tab = driver.browser(&app.address, 2).await;
    second_tab
        .wait_for("the same place in the second tab", || async {
            (second_tab.text("queue-position").await == "2").then_some(())
        })
        .await;
    assert_eq!(second_tab.text("queue-status").await, "WAITING");
    assert_eq!(
        second_tab.stored_token().await,
        waiting.stored_token().await
    );
    second_tab.close().await;
    waiting
        .client
        .set_window_size(414, 896)
        .await
        .expect("a phone-sized window");
    waiting.screenshot("waiting").await;

    keep_alive.abort();
    let left = app.leave_queue(&ahead_token).await;
    assert_eq!(left.status(), 204);
    waiting
        .wait_for("position 1", || async {
            (waiting.text("queue-position").await == "1").then_some(())
        })
        .await;
    inside.click("leave-button").await;
    waiting.wait_for_status("ACTIVE").await;
    waiting.shown("concert").await;
    assert_eq!(waiting.error().await, None);
    inside.close().await;
    waiting.close().await;
}

#[tokio::test]
async fn a_taken_seat_in_a_several_seat_hold_lets_go_of_the_others() {
    let Some(driver) = Driver::start("a_taken_seat_lets_go_of_the_others").await else {
        return;
    };
    let app = TestApp::spawn().await;
    let person = driver.browser(&app.address, 5).await;
    person.open_seat_map(CONCERT, PERFORMANCE).await;
    person.seat(60).await.click().await.unwrap();
    person.seat(61).await.click().await.unwrap();
    // Someone else takes seat 61 while this map still shows it free.
    let other = app.active_token(Some(6)).await;
    app.held(&other, 6, 61).await;

    person.click("hold-button").await;

    let told = person
        .wait_for("an error", || async { person.error().await })
        .await;
    assert!(told.contains("Seat 61 was just taken"), "{told}");
    assert!(told.contains("let go of the other seats"), "{told}");
    assert!(!person.visible("hold-countdown").await);
    wait_for_seat_status(&app, 60, "AVAILABLE").await;
    person
        .wait_for("the map to show seat 61 held", || async {
            (person.seat_status(61).await == "HELD").then_some(())
        })
        .await;
    person.close().await;
}

#[tokio::test]
async fn a_withdrawn_turn_sends_the_person_back_to_the_line_with_a_message() {
    let Some(driver) = Driver::start("a_withdrawn_turn_sends_the_person_back").await else {
        return;
    };
    let app = TestApp::spawn().await;
    let person = driver.browser(&app.address, 7).await;
    person.wait_for_status("ACTIVE").await;
    person.shown("concert").await;
    let before = person.stored_token().await.unwrap();
    // The turn ends behind the page's back (as an expiry or an operator's revoke would).
    assert_eq!(app.leave_queue(&before).await.status(), 204);

    person.click("concert").await;

    let told = person
        .wait_for("an error", || async { person.error().await })
        .await;
    assert!(told.contains("Your turn in line ended"), "{told}");
    assert!(told.contains("back in the line"), "{told}");
    person.wait_for_status("ACTIVE").await;
    person.shown("concert").await;
    let after = person.stored_token().await.unwrap();
    assert_ne!(after, before, "a new place, under a new token");
    person.close().await;
}

#[tokio::test]
async fn a_hold_that_runs_out_is_said_and_the_seat_is_free_again() {
    let Some(driver) = Driver::start("a_hold_that_runs_out").await else {
        return;
    };
    let app = TestApp::spawn_with(&[("APP__RESERVATION__HOLD_TTL_SECONDS", "3")]).await;
    let person = driver.browser(&app.address, 8).await;
    person.open_seat_map(CONCERT, PERFORMANCE).await;
    person.seat(80).await.click().await.unwrap();
    person.click("hold-button").await;
    person.shown("hold-countdown").await;

    let told = person
        .wait_for("the hold to run out", || async { person.error().await })
        .await;

    assert!(told.contains("ran out before payment"), "{told}");
    assert!(told.contains("nothing was charged"), "{told}");
    assert!(!person.visible("hold-countdown").await);
    // Back on the seat map; once the server has let the hold go, the seat is free again.
    person
        .wait_for("seat 80 free again", || async {
            if person.seat_status(80).await == "AVAILABLE" {
                return Some(());
            }
            let refresh = person.find("#refresh-seats").await?;
            let _ = refresh.click().await;
            tokio::time::sleep(Duration::from_millis(400)).await;
            None
        })
        .await;
    person.close().await;
}

#[tokio::test]
async fn a_busy_service_is_said_in_plain_words_and_tried_again() {
    let Some(driver) = Driver::start("a_busy_service_is_said_in_plain_words").await else {
        return;
    };
    // Nothing listens on port 1: entering the line fails closed with 503 and Retry-After.
    let app = TestApp::spawn_with(&[("REDIS_URL", "redis://127.0.0.1:1")]).await;
    let person = driver.browser(&app.address, 9).await;

    let told = person
        .wait_for("an error", || async { person.error().await })
        .await;

    assert!(told.contains("very busy"), "{told}");
    assert!(told.contains("try again by ourselves"), "{told}");
    assert!(
        !told.contains('{') && !told.contains("UNAVAILABLE"),
        "plain words, not the problem document: {told}"
    );
    assert!(!person.visible("concert").await);
    person.close().await;
}

#[tokio::test]
async fn before_the_sale_opens_the_page_says_when() {
    let Some(driver) = Driver::start("before_the_sale_opens").await else {
        return;
    };
    let admin_token = "an-operator-token-for-the-browser-tests";
    let app = TestApp::spawn_with(&[("APP__ADMIN__TOKEN", admin_token)]).await;
    let opens_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let scheduled = app
        .client
        .patch(app.url("/api/admin/queue"))
        .bearer_auth(admin_token)
        .json(&serde_json::json!({ "opensAt": opens_at }))
        .send()
        .await
        .unwrap();
    assert_eq!(scheduled.status(), 200);

    let person = driver.browser(&app.address, 10).await;

    person.wait_for_status("WAITING").await;
    let opens = person
        .wait_for("the opening time", || async {
            let element = person.find("#opens-at").await?;
            let text = element.text().await.ok()?;
            (!text.is_empty()).then_some(text)
        })
        .await;
    assert!(opens.starts_with("The sale opens at"), "{opens}");
    assert!(opens.contains("fair draw"), "{opens}");
    assert_eq!(person.text("queue-position").await, "0");
    assert_eq!(person.error().await, None);
    person.screenshot("before-opening").await;
    person.close().await;
}
