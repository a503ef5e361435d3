//! The page for people (`GET /`) and Swagger UI (`GET /api/docs`), as served: from the binary,
//! nothing fetched from elsewhere. The page's behaviour in a real browser: `browser.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use support::{assert_problem, TestApp};

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Every `src` and `href` of a document.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(start) = rest.find(attribute) {
            let after = &rest[start + attribute.len()..];
            let end = after.find('"').unwrap();
            found.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    found
}

#[tokio::test]
async fn the_page_is_served_with_its_test_hooks_and_only_same_origin_assets() {
    let app = TestApp::spawn().await;

    let response = app.get("/").await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    let policy = header(&response, "content-security-policy");
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    let html = response.text().await.unwrap();
    for hook in [
        "queue-status",
        "queue-position",
        "hold-button",
        "hold-countdown",
        "charge-button",
        "pay-button",
        "confirmation",
        "error",
    ] {
        assert!(
            html.contains(&format!("data-testid=\"{hook}\"")),
            "no {hook} hook"
        );
    }
    for reference in references(&html) {
        assert!(
            reference.starts_with('/') || reference.starts_with('#') || reference == "data:,",
            "{reference} is not from this origin"
        );
        if reference.starts_with("/assets/") {
            let asset = app.get(&reference).await;
            assert_eq!(asset.status(), 200, "{reference}");
            assert_eq!(header(&asset, "x-content-type-options"), "nosniff");
        }
    }
}

#[tokio::test]
async fn the_script_builds_the_hooks_the_html_does_not_hold() {
    let app = TestApp::spawn().await;

    let response = app.get("/assets/page.js").await;

    assert_eq!(
        header(&response, "content-type"),
        "text/javascript; charset=utf-8"
    );
    let script = response.text().await.unwrap();
    for hook in ["concert", "performance", "seat"] {
        assert!(
            script.contains(&format!("'data-testid': '{hook}'")),
            "{hook}"
        );
    }
    assert!(script.contains("'data-seat-id'") && script.contains("'data-status'"));
    assert!(!script.contains("http://") && !script.contains("https://"));
}

#[tokio::test]
async fn the_script_builds_the_room_list_hooks() {
    let app = TestApp::spawn().await;

    let script = app.get("/assets/page.js").await.text().await.unwrap();

    for hook in ["room", "room-link", "room-status"] {
        assert!(
            script.contains(&format!("'data-testid': '{hook}'")),
            "{hook}"
        );
    }
    assert!(script.contains("'data-room-id'"));
    let html = app.get("/").await.text().await.unwrap();
    assert!(
        html.contains("data-testid=\"room-name\""),
        "no room-name hook"
    );
}

#[tokio::test]
async fn the_stylesheet_is_css() {
    let app = TestApp::spawn().await;

    let response = app.get("/assets/page.css").await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "text/css; charset=utf-8");
}

#[tokio::test]
async fn the_page_words_are_served_per_language_and_an_unknown_one_is_404() {
    let app = TestApp::spawn().await;
    for language in ["en", "ko"] {
        let response = app.get(&format!("/assets/i18n/{language}.json")).await;
        assert_eq!(response.status(), 200, "{language}");
        assert!(header(&response, "content-type").starts_with("application/json"));
        let words: serde_json::Value = response.json().await.unwrap();
        assert!(words["line.title"].is_string(), "{language}");
    }
    let korean: serde_json::Value = app.get("/assets/i18n/ko.json").await.json().await.unwrap();
    assert_eq!(korean["format.won"], "{amount}원");
    assert_problem(app.get("/assets/i18n/xx.json").await, 404, "NOT_FOUND").await;
    let script = app.get("/assets/page.js").await.text().await.unwrap();
    assert!(
        script.starts_with("window.TICKETING_ENGLISH_WORDS = {"),
        "English comes with the script, so no word is ever shown as its key"
    );
}

#[tokio::test]
async fn api_docs_redirects_to_swagger_ui_for_the_openapi_document() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let redirect = client.get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(redirect.status(), 301);
    assert_eq!(header(&redirect, "location"), "/api/docs/");

    let page = app.get("/api/docs/").await;
    assert_eq!(page.status(), 200);
    assert!(header(&page, "content-type").starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    for reference in references(&html) {
        assert!(
            !reference.contains("://"),
            "{reference} is fetched from elsewhere"
        );
        let asset = app.get(&format!("/api/docs/{reference}")).await;
        assert_eq!(asset.status(), 200, "{reference}");
    }

    let initializer = app
        .get("/api/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        initializer.contains("\"url\": \"/api/openapi.json\""),
        "{initializer}"
    );
    assert!(
        initializer.contains("\"validatorUrl\": \"none\""),
        "{initializer}"
    );
}

#[tokio::test]
async fn an_unknown_swagger_ui_file_is_a_problem() {
    let app = TestApp::spawn().await;

    assert_problem(app.get("/api/docs/nothing-here.js").await, 404, "NOT_FOUND").await;
}
