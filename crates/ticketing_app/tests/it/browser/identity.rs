//! Identity end to end, against a real OpenID Connect issuer ([`Issuer`]): a fan signs in through
//! the page (authorization code with PKCE in the page's own JavaScript), then waits in line,
//! holds and pays as that account; the issuer rotates its keys and the service follows.

use std::time::Duration;

use serde_json::Value;

use super::driver::{Browser, Driver};
use super::issuer::{Issuer, AUDIENCE, PAGE_CLIENT, PAGE_SCOPE};
use super::{charge_and_pay, CONCERT, PERFORMANCE};
use crate::support::TestApp;

/// The service with identity on, trusting `issuer`, its page signing in as the public client.
async fn app_trusting(issuer: &str) -> TestApp {
    TestApp::spawn_with(&[
        ("APP__AUTH__ISSUER", issuer),
        ("APP__AUTH__AUDIENCE", AUDIENCE),
        ("APP__AUTH__PAGE_CLIENT_ID", PAGE_CLIENT),
        ("APP__AUTH__PAGE_SCOPE", PAGE_SCOPE),
    ])
    .await
}

/// A free loopback port for the issuer, known before the service that must trust it starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Signs in from the page's button through the issuer's own login and consent pages, as `login`.
async fn sign_in(person: &Browser, login: &str) {
    person.click("sign-in-button").await;
    let field = person
        .wait_for("the issuer's sign-in form", || async {
            person.find("input[name=\"login\"]").await
        })
        .await;
    field.send_keys(login).await.expect("typing the login");
    let password = person
        .find("input[name=\"password\"]")
        .await
        .expect("a password field");
    password.send_keys("any password").await.expect("typing");
    let submit = person
        .find("button[type=\"submit\"]")
        .await
        .expect("submit");
    submit.click().await.expect("signing in at the issuer");
    let consent = person
        .wait_for("the issuer's consent page", || async {
            let button = person.find("button[type=\"submit\"]").await?;
            (button.text().await.ok()?.trim() == "Continue").then_some(button)
        })
        .await;
    consent.click().await.expect("consenting");
}

/// The access token the page keeps for this tab after signing in.
async fn access_token(person: &Browser) -> String {
    person
        .wait_for("the page to keep an access token", || async {
            let kept = person
                .client
                .execute(
                    "return window.sessionStorage.getItem('ticketing:access-token');",
                    vec![],
                )
                .await
                .ok()?;
            let kept: Value = serde_json::from_str(kept.as_str()?).ok()?;
            kept["token"].as_str().map(str::to_string)
        })
        .await
}

async fn me(app: &TestApp, bearer: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/me"))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("GET /api/me")
}

#[tokio::test]
async fn a_fan_signs_in_at_the_issuer_then_waits_holds_and_pays_as_that_account() {
    let Some(driver) = Driver::start("a_fan_signs_in_at_the_issuer").await else {
        return;
    };
    let port = free_port();
    let issuer_url = format!("http://127.0.0.1:{port}");
    let app = app_trusting(&issuer_url).await;
    let Some(_issuer) = Issuer::start_on(port, &["rsa-1"], &format!("{}/", app.address)) else {
        return;
    };
    let person = driver.browser(&app.address, 1).await;
    person.shown("sign-in-button").await;
    assert!(
        !person.visible("queue-status").await,
        "nobody is put in line before signing in"
    );
    sign_in(&person, "fan-seoul-1").await;

    person.wait_for_status("ACTIVE").await;
    let bearer = access_token(&person).await;
    let account: Value = me(&app, &bearer).await.json().await.unwrap();
    assert_eq!(account["subject"], "fan-seoul-1");
    let user = account["userId"].as_i64().expect("a user id");
    let who = person
        .script_text("return document.getElementById('who').innerText;")
        .await;
    assert!(
        who.contains("fan-seoul-1"),
        "the page says who is buying: {who}"
    );

    person.open_seat_map(CONCERT, PERFORMANCE).await;
    person.seat(9).await.click().await.unwrap();
    person.click("hold-button").await;
    let reservations = charge_and_pay(&person).await;
    assert_eq!(reservations.len(), 1);
    assert_eq!(person.error().await, None);

    let bought: Value = app
        .client
        .get(app.url(&format!("/api/users/{user}/reservations")))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = bought.to_string();
    assert!(
        text.contains(&reservations[0].to_string()) && text.contains("CONFIRMED"),
        "the account owns the confirmed seat: {text}"
    );
    // Nobody else may read that account's wallet: without the account's token it is refused.
    let anonymous = app
        .client
        .get(app.url(&format!("/api/users/{user}/balance")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    person.close().await;
}

#[tokio::test]
async fn tokens_follow_the_issuer_when_it_rotates_its_keys() {
    let Some(driver) = Driver::start("tokens_follow_the_issuer_when_it_rotates").await else {
        return;
    };
    let port = free_port();
    let app = app_trusting(&format!("http://127.0.0.1:{port}")).await;
    let Some(mut issuer) = Issuer::start_on(port, &["rsa-old"], &format!("{}/", app.address))
    else {
        return;
    };
    let first = driver.browser(&app.address, 1).await;
    sign_in(&first, "fan-rotation").await;
    // In line: the service has fetched the issuer's keys and taken the token.
    first.wait_for_status("ACTIVE").await;
    let old_token = access_token(&first).await;
    assert_eq!(me(&app, &old_token).await.status(), 200);
    first.close().await;

    issuer.rotate(&["rsa-new"]);
    // The service refetches the JWKS for an unknown key at most once per 30 s (a token of a key
    // it does not know is refused until then): let that pass on its clock.
    app.pass(Duration::from_secs(31)).await;
    let second = driver.browser(&app.address, 1).await;
    sign_in(&second, "fan-rotation").await;
    second.wait_for_status("ACTIVE").await;
    let new_token = access_token(&second).await;
    assert_eq!(
        me(&app, &new_token).await.status(),
        200,
        "the new key's token"
    );
    // The refetch replaced the keys: the withdrawn key's token is refused.
    let refused = me(&app, &old_token).await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "AUTH_INVALID");
    let same: Value = me(&app, &new_token).await.json().await.unwrap();
    assert_eq!(
        same["subject"], "fan-rotation",
        "the same account after rotation"
    );
    second.close().await;
}
