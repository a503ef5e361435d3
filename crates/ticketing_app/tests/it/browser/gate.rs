//! The page with the gate against bots on: it solves the room's proof-of-work challenge in a Web
//! Worker, says that it is checking the browser, and enters the line with the proof.

use serde_json::json;

use super::driver::Driver;
use crate::support::TestApp;

const ADMIN_TOKEN: &str = "an-operator-token-for-the-browser-tests";

/// Enough that the page really works (about 10,000 WebCrypto hashes on average), little
/// enough for a test (a fraction of a second here).
const DIFFICULTY: u64 = 20_000;

#[tokio::test]
async fn the_page_solves_the_challenge_and_enters_the_line() {
    let Some(driver) = Driver::start("the_page_solves_the_challenge_and_enters_the_line").await
    else {
        return;
    };
    let app = TestApp::spawn_with(&[("APP__ADMIN__TOKEN", ADMIN_TOKEN)]).await;
    let response = app
        .client
        .patch(app.url("/api/admin/queue"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "challengeDifficulty": DIFFICULTY }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let passed = r#"queue_challenges_total{room="default",outcome="passed"}"#;
    let before = app.metric(passed).await;

    let person = driver.browser(&app.address, 1).await;
    person.wait_for_status("ACTIVE").await;
    assert_eq!(person.error().await, None);
    assert!(person.stored_token().await.is_some(), "the token is kept");
    assert!(
        app.metric(passed).await > before,
        "the page entered with a proof that passed"
    );
    // The polite live region told a screen reader what happened (nothing else says this).
    let notice = person
        .client
        .execute(
            "const notice = document.getElementById('notice');
             return [notice.textContent, notice.getAttribute('aria-live')];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(notice, json!(["Your browser is checked.", "polite"]));
    person.close().await;
}

/// Solves `runs` challenges of room `default` at `difficulty` with the page's own worker in this
/// browser; returns each solve's milliseconds and the hashes it tried (its number + 1).
async fn solve_in_the_browser(person: &super::driver::Browser, runs: u32) -> Vec<(f64, f64)> {
    let mut solves = Vec::new();
    for _ in 0..runs {
        let answer = person
            .client
            .execute(
                r"
                const challenge = await (await fetch('/api/rooms/default/challenge')).json();
                const started = performance.now();
                const number = await new Promise((resolve) => {
                  const worker = new Worker('/assets/pow-worker.js');
                  worker.onmessage = (event) => {
                    if (event.data.progress === undefined) { worker.terminate(); resolve(event.data.number); }
                  };
                  worker.postMessage(challenge);
                });
                return [performance.now() - started, number + 1];
                ",
                vec![],
            )
            .await
            .expect("the worker solves");
        solves.push((
            answer[0].as_f64().expect("milliseconds"),
            answer[1].as_f64().expect("tries"),
        ));
    }
    solves
}

/// Not a test: measures the page's solver in headless Chromium (docs/performance.md).
/// `GATE_DIFFICULTY=200000 cargo test -p ticketing_app --test it -- --ignored --nocapture
/// browser::gate::measure_solve_time`
#[tokio::test]
#[ignore = "a measurement, run by hand"]
async fn measure_solve_time() {
    let Some(driver) = Driver::start("measure_solve_time").await else {
        return;
    };
    let difficulty: u64 = std::env::var("GATE_DIFFICULTY")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(200_000);
    let runs: u32 = std::env::var("GATE_RUNS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(10);
    let app = TestApp::spawn_with(&[("APP__ADMIN__TOKEN", ADMIN_TOKEN)]).await;
    let person = driver.browser(&app.address, 1).await;
    person.wait_for_status("ACTIVE").await;
    for difficulty in [difficulty, difficulty * 4] {
        let response = app
            .client
            .patch(app.url("/api/admin/queue"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "challengeDifficulty": difficulty }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let solves = solve_in_the_browser(&person, runs).await;
        let millis: f64 = solves.iter().map(|(ms, _)| ms).sum();
        let tries: f64 = solves.iter().map(|(_, tries)| tries).sum();
        let rate = tries / millis * 1000.0;
        let mut times: Vec<f64> = solves.iter().map(|(ms, _)| *ms).collect();
        times.sort_by(f64::total_cmp);
        println!(
            "difficulty {difficulty}: {runs} solves, mean {:.0} ms, median {:.0} ms, max {:.0} ms; \
             {rate:.0} hashes/s, so on average {:.0} ms (difficulty / 2 hashes), at worst {:.0} ms",
            millis / f64::from(runs),
            times[times.len() / 2],
            times[times.len() - 1],
            difficulty as f64 / 2.0 / rate * 1000.0,
            difficulty as f64 / rate * 1000.0,
        );
    }
    person.close().await;
}
