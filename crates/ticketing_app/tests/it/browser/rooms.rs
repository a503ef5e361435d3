//! The page with waiting rooms: `/` lists them, `/?room=<id>` enters one, each room's turn only
//! offers that room's dates, and a closed or unknown room is said in plain words.

use fantoccini::key::Key;
use serde_json::{json, Value};

use super::driver::{Browser, Driver};
use super::CONCERT;
use crate::support::TestApp;

const ADMIN_TOKEN: &str = "an-operator-token-for-the-browser-tests";

/// Performances of concert 1 in the demo data: 119 stays with the room default.
const DEFAULT_PERFORMANCE: i64 = 119;
const GOLDEN_HOUR_PERFORMANCE: i64 = 120;
const PALETTE_PERFORMANCE: i64 = 121;

async fn app_with_rooms() -> TestApp {
    TestApp::spawn_with(&[("APP__ADMIN__TOKEN", ADMIN_TOKEN)]).await
}

/// Creates a room through the admin API; `extra` adds settings (mode, opensAt, ...).
async fn create_room(app: &TestApp, id: &str, name: &str, performance: i64, extra: Value) {
    let mut body = json!({ "id": id, "name": name, "performanceIds": [performance] });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let response = app
        .client
        .post(app.url("/api/admin/rooms"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201, "creating room {id}");
}

fn in_an_hour() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()
}

/// The room entries of the list at `/`, in the order shown: (id, status words, link).
async fn listed_rooms(person: &Browser) -> Vec<(String, String, Option<String>)> {
    let mut rooms = Vec::new();
    for item in person
        .client
        .find_all(fantoccini::Locator::Css("[data-testid=\"room\"]"))
        .await
        .unwrap()
    {
        let id = item.attr("data-room-id").await.unwrap().unwrap_or_default();
        let status = item
            .find(fantoccini::Locator::Css("[data-testid=\"room-status\"]"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let link = match item
            .find(fantoccini::Locator::Css("[data-testid=\"room-link\"]"))
            .await
        {
            Ok(link) => link.attr("href").await.unwrap(),
            Err(_) => None,
        };
        rooms.push((id, status, link));
    }
    rooms
}

/// Whether the date `performance` is offered to this browser's turn: shown, and enabled.
async fn offered(person: &Browser, performance: i64) -> bool {
    let button = person
        .wait_for(&format!("performance {performance} listed"), || async {
            person
                .find(&format!(
                    "[data-testid=\"performance\"][data-performance-id=\"{performance}\"]"
                ))
                .await
        })
        .await;
    button.is_enabled().await.unwrap()
}

/// Picks seat `seat` of `performance` and holds it; returns the held reservation's id as the
/// tab remembers it.
async fn hold_one_seat(person: &Browser, performance: i64, seat: i64) -> i64 {
    person.open_seat_map(CONCERT, performance).await;
    person.seat(seat).await.click().await.unwrap();
    person.click("hold-button").await;
    person.shown("hold-countdown").await;
    let key = match person.room() {
        Some(room) if room != "default" => {
            format!("ticketing:user-{}:room-{room}:holds", person.user)
        }
        _ => format!("ticketing:user-{}:holds", person.user),
    };
    let stored = person
        .client
        .execute(
            "return window.sessionStorage.getItem(arguments[0]);",
            vec![json!(key)],
        )
        .await
        .unwrap();
    let holds: Value = serde_json::from_str(stored.as_str().unwrap()).unwrap();
    assert_eq!(holds[0]["seatId"], seat, "{holds}");
    holds[0]["reservationId"].as_i64().unwrap()
}

#[tokio::test]
async fn the_front_page_lists_the_rooms_and_enters_the_chosen_one() {
    let Some(driver) = Driver::start("the_front_page_lists_the_rooms").await else {
        return;
    };
    let app = app_with_rooms().await;
    create_room(
        &app,
        "golden-hour",
        "Golden Hour, Seoul",
        GOLDEN_HOUR_PERFORMANCE,
        json!({}),
    )
    .await;
    create_room(
        &app,
        "palette",
        "Palette, Busan",
        PALETTE_PERFORMANCE,
        json!({ "opensAt": in_an_hour() }),
    )
    .await;

    let person = driver.browser(&app.address, 31).await;

    let rooms = person
        .wait_for("the room list", || async {
            let rooms = listed_rooms(&person).await;
            (rooms.len() == 3).then_some(rooms)
        })
        .await;
    let ids: Vec<&str> = rooms.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["golden-hour", "palette", "default"],
        "named sales first"
    );
    let (_, open, link) = &rooms[0];
    assert_eq!(open, "On sale now");
    assert_eq!(link.as_deref(), Some("/?room=golden-hour&user=31"));
    let (_, prequeue, _) = &rooms[1];
    assert!(prequeue.starts_with("Opens "), "{prequeue}");
    assert!(
        prequeue.contains("(in about 1 h") || prequeue.contains("(in about 60 minutes)"),
        "{prequeue}"
    );
    let list = person.text("room-list").await;
    assert!(
        list.contains("Golden Hour, Seoul") && list.contains("All other concerts"),
        "{list}"
    );
    assert!(
        !person.visible("queue-status").await,
        "nobody is put in a line before choosing"
    );
    assert!(person.stored_token().await.is_none());
    assert_eq!(person.error().await, None);
    person.screenshot("rooms").await;

    // With the keyboard: the room's link takes focus and Enter follows it.
    let golden_hour = person
        .find("[data-room-id=\"golden-hour\"] [data-testid=\"room-link\"]")
        .await
        .unwrap();
    person
        .client
        .execute("arguments[0].focus();", vec![json!(golden_hour)])
        .await
        .unwrap();
    let focused = person.client.active_element().await.unwrap();
    focused.send_keys(&Key::Enter.to_string()).await.unwrap();

    person.wait_for_status("ACTIVE").await;
    assert_eq!(person.text("room-name").await, "Golden Hour, Seoul");
    let token = person
        .wait_for("the room's token kept", || async {
            person.stored_token_of(Some("golden-hour")).await
        })
        .await;
    let view: Value = app.poll_queue(&token).await.json().await.unwrap();
    assert_eq!(view["roomId"], "golden-hour", "entered with the room's id");
    person.close().await;
}

#[tokio::test]
async fn two_rooms_side_by_side_each_hold_their_own_dates_seats() {
    let Some(driver) = Driver::start("two_rooms_side_by_side").await else {
        return;
    };
    let app = app_with_rooms().await;
    create_room(
        &app,
        "golden-hour",
        "Golden Hour, Seoul",
        GOLDEN_HOUR_PERFORMANCE,
        json!({}),
    )
    .await;
    create_room(
        &app,
        "palette",
        "Palette, Busan",
        PALETTE_PERFORMANCE,
        json!({}),
    )
    .await;
    let mut golden = driver
        .browser_in_room(&app.address, 32, "golden-hour")
        .await;
    let palette = driver.browser_in_room(&app.address, 33, "palette").await;

    for (person, own, others) in [
        (
            &golden,
            GOLDEN_HOUR_PERFORMANCE,
            [PALETTE_PERFORMANCE, DEFAULT_PERFORMANCE],
        ),
        (
            &palette,
            PALETTE_PERFORMANCE,
            [GOLDEN_HOUR_PERFORMANCE, DEFAULT_PERFORMANCE],
        ),
    ] {
        person.wait_for_status("ACTIVE").await;
        person.click("concert").await;
        assert!(
            offered(person, own).await,
            "user {}: {own} is offered",
            person.user
        );
        for other in others {
            assert!(
                !offered(person, other).await,
                "user {}: {other} is not offered",
                person.user
            );
        }
        let dates = person
            .find("#performance-list")
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            dates.contains("Sold through another waiting line"),
            "{dates}"
        );
    }
    let golden_hold = hold_one_seat(&golden, GOLDEN_HOUR_PERFORMANCE, 5).await;
    let palette_hold = hold_one_seat(&palette, PALETTE_PERFORMANCE, 5).await;
    assert_eq!(golden.error().await, None);
    assert_eq!(palette.error().await, None);
    for (user, id, performance) in [
        (32, golden_hold, GOLDEN_HOUR_PERFORMANCE),
        (33, palette_hold, PALETTE_PERFORMANCE),
    ] {
        let token = app.active_token(Some(user)).await;
        let held: Value = app.reservation(&token, id).await.json().await.unwrap();
        assert_eq!(held["status"], "HELD", "{held}");
        assert_eq!(held["performanceId"], performance, "{held}");
    }

    // One tab moving between the two rooms keeps a token per room: neither overwrites the other.
    let golden_token = golden.stored_token().await.unwrap();
    golden.go_to_room(Some("palette")).await;
    golden.wait_for_status("ACTIVE").await;
    assert_eq!(golden.text("room-name").await, "Palette, Busan");
    let palette_token = golden.stored_token().await.unwrap();
    assert_ne!(palette_token, golden_token);
    assert_eq!(
        golden.stored_token_of(Some("golden-hour")).await,
        Some(golden_token.clone())
    );
    assert!(
        !golden.visible("hold-countdown").await,
        "the other room's hold is not shown here"
    );
    golden.go_to_room(Some("golden-hour")).await;
    golden.shown("hold-countdown").await;
    assert_eq!(golden.stored_token().await, Some(golden_token));
    assert_eq!(golden.error().await, None);
    golden.close().await;
    palette.close().await;
}

#[tokio::test]
async fn a_closed_or_unknown_room_is_said_in_plain_words() {
    let Some(driver) = Driver::start("a_closed_or_unknown_room").await else {
        return;
    };
    let app = app_with_rooms().await;
    create_room(
        &app,
        "encore",
        "Encore, Daegu",
        PALETTE_PERFORMANCE,
        json!({ "mode": "reject", "opensAt": in_an_hour() }),
    )
    .await;
    let mut person = driver.browser(&app.address, 34).await;
    let rooms = person
        .wait_for("the room list", || async {
            let rooms = listed_rooms(&person).await;
            (rooms.len() == 2).then_some(rooms)
        })
        .await;
    let (id, status, link) = &rooms[0];
    assert_eq!(id, "encore");
    assert!(status.starts_with("Not open yet: opens "), "{status}");
    assert_eq!(link, &None, "a closed line is not offered");

    person.go_to_room(Some("encore")).await;
    let told = person
        .wait_for("an error", || async { person.error().await })
        .await;
    assert!(
        told.contains("The waiting line for Encore, Daegu is not open yet"),
        "{told}"
    );
    assert!(told.contains("It opens "), "{told}");
    assert!(
        !told.contains('{') && !told.contains("ROOM_CLOSED"),
        "plain words: {told}"
    );
    let back = person
        .find("[data-testid=\"all-rooms-link\"]")
        .await
        .unwrap();
    assert_eq!(
        back.attr("href").await.unwrap().as_deref(),
        Some("/?user=34")
    );
    assert!(person.visible("join-button").await, "they can try again");
    assert!(!person.visible("concert").await);
    assert!(person.stored_token().await.is_none());

    // A room id typed in capitals finds its room all the same.
    person.go_to_room(Some("Encore")).await;
    let told = person
        .wait_for("an error", || async { person.error().await })
        .await;
    assert!(told.contains("Encore, Daegu is not open yet"), "{told}");

    person.go_to_room(Some("no-such-line")).await;
    let told = person
        .wait_for("an error", || async { person.error().await })
        .await;
    assert!(
        told.contains("There is no waiting line called \u{201c}no-such-line\u{201d}"),
        "{told}"
    );
    assert!(told.contains("see all waiting lines"), "{told}");
    assert!(!person.visible("queue-status").await);
    assert_eq!(
        listed_rooms(&person).await.len(),
        2,
        "the lines that exist are listed under the message"
    );
    person.close().await;
}

#[tokio::test]
async fn a_date_moved_to_another_line_meanwhile_is_said_in_plain_words() {
    let Some(driver) = Driver::start("a_date_moved_to_another_line").await else {
        return;
    };
    let app = app_with_rooms().await;
    create_room(
        &app,
        "golden-hour",
        "Golden Hour, Seoul",
        GOLDEN_HOUR_PERFORMANCE,
        json!({}),
    )
    .await;
    let person = driver
        .browser_in_room(&app.address, 35, "golden-hour")
        .await;
    person.wait_for_status("ACTIVE").await;
    person.click("concert").await;
    assert!(offered(&person, GOLDEN_HOUR_PERFORMANCE).await);
    // An operator gives the date to another line while the page still offers it.
    let moved = app
        .client
        .patch(app.url("/api/admin/rooms/golden-hour"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "performanceIds": [PALETTE_PERFORMANCE] }))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status().as_u16(), 200);

    person
        .find(&format!(
            "[data-testid=\"performance\"][data-performance-id=\"{GOLDEN_HOUR_PERFORMANCE}\"]"
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let told = person
        .wait_for("an error", || async { person.error().await })
        .await;
    assert!(
        told.contains("This date is sold through another waiting line"),
        "{told}"
    );
    assert!(
        told.contains("join the line for all other concerts"),
        "{told}"
    );
    assert!(!told.contains("TOKEN_WRONG_ROOM"), "plain words: {told}");
    assert!(
        !offered(&person, GOLDEN_HOUR_PERFORMANCE).await,
        "the dates are shown again as they now stand"
    );
    assert!(offered(&person, PALETTE_PERFORMANCE).await);
    assert!(!person.visible("seat").await);
    person.close().await;
}

#[tokio::test]
async fn an_invitation_link_lets_the_fan_into_a_presale_and_its_absence_is_said() {
    let Some(driver) = Driver::start("an_invitation_link_lets_the_fan_into_a_presale").await else {
        return;
    };
    let app = crate::invites_api::invite_app().await;
    crate::invites_api::presale(&app).await;

    let uninvited = driver.browser_in_room(&app.address, 7, "presale").await;
    let said = uninvited
        .wait_for("the page to say an invite is needed", || async {
            uninvited
                .error()
                .await
                .filter(|text| text.contains("invite code"))
        })
        .await;
    assert!(said.contains("presale"), "{said}");
    uninvited.close().await;

    let invited = driver.browser_in_room(&app.address, 8, "presale").await;
    let code = crate::invites_api::code("presale", 8);
    invited
        .client
        .goto(&format!(
            "{}/?room=presale&user=8&invite={code}",
            app.address
        ))
        .await
        .unwrap();
    invited.wait_for_status("ACTIVE").await;
    assert_eq!(invited.error().await, None);
    invited.close().await;
}
