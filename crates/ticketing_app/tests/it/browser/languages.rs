//! The page in the fan's language: Korean for a browser that prefers it, English otherwise,
//! `?lang=` chooses and is remembered. The English flow is the rest of `browser::`, unchanged.

use super::driver::{Browser, Driver};
use super::{charge_and_pay, CONCERT, PERFORMANCE};
use crate::support::TestApp;

/// Whether `text` holds a price the Korean way: digits grouped by commas, then 원 (150,000원).
fn has_korean_price(text: &str) -> bool {
    text.match_indices('원').any(|(at, _)| {
        let before: String = text[..at]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .collect();
        before.chars().any(|c| c.is_ascii_digit()) && !before.ends_with(',')
    })
}

/// Whether `text` holds a date and time the Korean way: 2027년 3월 13일 토요일 오전 10:00.
fn has_korean_date(text: &str) -> bool {
    ["년 ", "월 ", "일 ", "요일 "]
        .iter()
        .all(|part| text.contains(part))
        && (text.contains("오전 ") || text.contains("오후 "))
}

async fn html_lang(person: &Browser) -> String {
    person
        .script_text("return document.documentElement.lang;")
        .await
}

#[tokio::test]
async fn a_korean_browser_goes_through_the_whole_sale_in_korean() {
    let Some(driver) = Driver::start("a_korean_browser_goes_through_the_whole_sale").await else {
        return;
    };
    let app = TestApp::spawn().await;
    let person = driver.browser_speaking(&app.address, 1, "ko-KR").await;

    person.wait_for_status("ACTIVE").await;
    assert_eq!(html_lang(&person).await, "ko");
    assert_eq!(person.text("queue-status").await, "입장 가능");
    assert_eq!(
        person.script_text("return document.title;").await,
        "티켓: 대기실"
    );
    assert_eq!(person.text("join-button").await, "", "hidden while in line");

    person.open_seat_map(CONCERT, PERFORMANCE).await;
    let dates = person
        .script_text("return document.getElementById('performance-list').innerText;")
        .await;
    assert!(has_korean_date(&dates), "a Korean date: {dates}");
    assert!(dates.contains("석 남음"), "seats left in Korean: {dates}");
    let legend = person
        .script_text("return document.getElementById('legend').innerText;")
        .await;
    assert!(has_korean_price(&legend), "a Korean price: {legend}");

    person.seat(5).await.click().await.unwrap();
    let summary = person
        .script_text("return document.getElementById('selection-summary').innerText;")
        .await;
    assert!(summary.starts_with("선택: 5번 좌석"), "{summary}");
    assert!(has_korean_price(&summary), "{summary}");
    assert_eq!(person.text("hold-button").await, "이 좌석 선점하기");
    person.screenshot("seat-map-ko").await;
    person.click("hold-button").await;
    person.shown("hold-countdown").await;
    let pay = person.text("pay-button").await;
    assert!(pay.ends_with("결제하기") && has_korean_price(&pay), "{pay}");

    let reservations = charge_and_pay(&person).await;
    assert_eq!(reservations.len(), 1);
    let confirmation = person.text("confirmation").await;
    assert!(confirmation.contains("결제 완료"), "{confirmation}");
    assert!(confirmation.contains("예매 번호"), "{confirmation}");
    assert!(has_korean_price(&confirmation), "{confirmation}");
    assert!(has_korean_date(&confirmation), "{confirmation}");
    person.screenshot("confirmation-ko").await;
    assert_eq!(person.error().await, None);
    person.close().await;
}

#[tokio::test]
async fn lang_chooses_over_the_browser_and_is_remembered() {
    let Some(driver) = Driver::start("lang_chooses_over_the_browser").await else {
        return;
    };
    let app = TestApp::spawn().await;
    let person = driver.browser_speaking(&app.address, 2, "ko-KR").await;
    person.wait_for_status("ACTIVE").await;
    assert_eq!(html_lang(&person).await, "ko");

    person
        .client
        .goto(&format!("{}/?user=2&lang=en", app.address))
        .await
        .unwrap();
    person.wait_for_status("ACTIVE").await;
    assert_eq!(html_lang(&person).await, "en");
    assert_eq!(person.text("queue-status").await, "ACTIVE");

    // Remembered without `?lang=`, and an unknown one falls back to it without an error.
    for address in ["/?user=2", "/?user=2&lang=xx"] {
        person
            .client
            .goto(&format!("{}{address}", app.address))
            .await
            .unwrap();
        person.wait_for_status("ACTIVE").await;
        assert_eq!(html_lang(&person).await, "en", "{address}");
        assert_eq!(person.error().await, None, "{address}");
    }
    let heading = person
        .script_text("return document.getElementById('line-title').textContent;")
        .await;
    assert_eq!(heading, "Your place in line");
    person.close().await;
}

#[test]
fn the_korean_formats_are_recognised() {
    assert!(has_korean_price("R석: 150,000원"));
    assert!(!has_korean_price("₩150,000"));
    assert!(has_korean_date("2027년 3월 13일 토요일 오전 10:00"));
    assert!(!has_korean_date("Saturday, March 13, 2027 at 10:00 AM"));
}
