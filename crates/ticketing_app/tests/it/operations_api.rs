//! Liveness and readiness.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};

use support::{assert_problem, TestApp};

/// The `/metrics` text once `complete` holds for it, or as it is after 5 s: the background jobs
/// (admission steps, store probes) record some figures at their own pace.
async fn metrics_once(app: &TestApp, complete: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let body = app.get("/metrics").await.text().await.unwrap();
        if complete(&body) || Instant::now() >= deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_process_is_healthy() {
    let app = TestApp::spawn().await;

    assert_eq!(app.get("/healthz").await.status().as_u16(), 200);
}

#[tokio::test]
async fn ready_when_postgres_and_redis_answer() {
    let app = TestApp::spawn().await;

    let response = app.get("/readyz").await;

    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["postgres"], "up");
    assert_eq!(body["redis"], "up");
}

#[tokio::test]
async fn not_ready_with_retry_after_when_redis_is_unreachable() {
    // Nothing listens on port 1: the connection is refused at once.
    let app = TestApp::spawn_with(&[("REDIS_URL", "redis://127.0.0.1:1")]).await;

    let response = app.get("/readyz").await;

    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503, "UNAVAILABLE").await;
}

#[tokio::test]
async fn not_ready_when_postgres_is_unreachable() {
    let app =
        TestApp::spawn_with(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")]).await;

    assert_problem(app.get("/readyz").await, 503, "UNAVAILABLE").await;
}

#[tokio::test]
async fn a_catalog_read_answers_503_not_500_when_postgres_is_unreachable() {
    let app =
        TestApp::spawn_with(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")]).await;

    let token = app.active_token(None).await;

    let response = app.concerts(&token).await;

    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503, "UNAVAILABLE").await;
}

#[tokio::test]
async fn metrics_are_exported_in_prometheus_text_format() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(7)).await;
    app.seats(&token, "1", "119").await;
    app.hold(&token, 7, 5).await;
    let expected = [
        "http_requests_total{",
        r#"route="/api/concerts/{concert_id}/performances/{performance_id}/seats""#,
        "http_request_duration_seconds_bucket{",
        r#"queue_waiting{room="default"}"#,
        r#"queue_active{room="default"}"#,
        "queue_admission_steps_total{",
        r#"holds_total{outcome="held"}"#,
        r#"pool_connections{pool="postgres"}"#,
        r#"pool_connections{pool="redis"}"#,
    ];
    metrics_once(&app, |body| expected.iter().all(|e| body.contains(e))).await;

    let response = app.get("/metrics").await;

    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let body = response.text().await.unwrap();
    for expected in expected {
        assert!(body.contains(expected), "missing {expected} in\n{body}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint() {
    let app = TestApp::spawn().await;

    let response = app.get("/api/openapi.json").await;

    assert_eq!(response.status(), 200);
    let document: serde_json::Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/queue", "post"),
        ("/api/queue", "get"),
        ("/api/queue", "delete"),
        ("/api/concerts", "get"),
        ("/api/concerts/{concertId}/performances", "get"),
        (
            "/api/concerts/{concertId}/performances/{performanceId}/seats",
            "get",
        ),
        ("/api/reservations", "post"),
        ("/api/reservations/{reservationId}", "get"),
        ("/api/reservations/{reservationId}", "delete"),
        ("/api/users/{userId}/balance", "get"),
        ("/api/users/{userId}/balance/charge", "post"),
        ("/api/payments", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/api/openapi.json", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not described"
        );
    }
    assert!(document["components"]["securitySchemes"]["queue_token"].is_object());
}

#[tokio::test]
async fn a_known_path_with_a_method_it_does_not_serve_is_405_with_allow() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    for (method, path, allowed) in [
        ("PUT", "/api/queue", &["GET", "POST", "DELETE"][..]),
        ("POST", "/api/concerts", &["GET"][..]),
        (
            "DELETE",
            "/api/concerts/1/performances/119/seats",
            &["GET"][..],
        ),
        ("PATCH", "/api/reservations", &["POST"][..]),
        ("POST", "/healthz", &["GET"][..]),
        ("DELETE", "/api/openapi.json", &["GET"][..]),
        ("POST", "/assets/page.js", &["GET"][..]),
        // The admin API is off here: a wrong method is still a wrong method.
        ("PUT", "/api/admin/queue", &["GET", "PATCH"][..]),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = client
            .request(method.clone(), app.url(path))
            .header("Queue-Token", "whatever")
            .send()
            .await
            .unwrap();
        let allow = response
            .headers()
            .get("allow")
            .map(|value| value.to_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"));
        for served in allowed {
            assert!(allow.contains(served), "{method} {path}: Allow {allow}");
        }
        assert_problem(response, 405, "METHOD_NOT_ALLOWED").await;
    }
}

#[tokio::test]
async fn an_unknown_path_is_404_and_a_switched_off_route_too() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/nowhere",
        "/api/concerts/1/nothing",
        "/api/rooms/a/b/c",
    ] {
        assert_problem(app.get(path).await, 404, "NOT_FOUND").await;
    }
    // The admin API exists only with a token configured.
    assert_problem(app.get("/api/admin/queue").await, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn past_the_in_flight_bound_requests_are_shed_fast_with_503_and_probes_still_answer() {
    let app = TestApp::spawn_with(&[
        ("APP__SERVER__MAX_IN_FLIGHT", "2"),
        ("APP__CATALOG__MAX_STALENESS_MS", "0"),
    ])
    .await;
    let token = app.active_token(None).await;

    let answers: Vec<reqwest::Response> =
        futures::future::join_all((0..100).map(|_| app.seats(&token, "1", "119"))).await;

    let mut shed = 0;
    for response in answers {
        match response.status().as_u16() {
            200 => {}
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                assert_problem(response, 503, "UNAVAILABLE").await;
                shed += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        shed > 0,
        "100 concurrent requests never exceeded 2 in flight"
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_sane_one_is_kept() {
    let app = TestApp::spawn().await;

    let generated = app.get("/api/concerts").await;
    let kept = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "trace-42.a_b")
        .send()
        .await
        .unwrap();
    let replaced = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "not sane!")
        .send()
        .await
        .unwrap();

    assert_eq!(generated.status(), 401);
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a fresh UUID: {id}");
    assert_eq!(kept.headers()["x-request-id"], "trace-42.a_b");
    assert_ne!(replaced.headers()["x-request-id"], "not sane!");
}

#[tokio::test]
async fn a_replayed_payment_is_counted_as_a_replay_not_a_second_sale() {
    let app = TestApp::spawn().await;
    let paid_before = app.metric(r#"payments_total{outcome="paid"}"#).await;
    let replayed_before = app.metric(r#"payments_total{outcome="replayed"}"#).await;
    let token = app.active_token(Some(7)).await;
    app.charge(7, 500_000, None).await;
    let reservation = app.held(&token, 7, 77).await;

    assert_eq!(
        app.pay(&token, reservation, 7, Some("metrics-k"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.pay(&token, reservation, 7, Some("metrics-k"))
            .await
            .status(),
        200
    );

    let paid = app.metric(r#"payments_total{outcome="paid"}"#).await - paid_before;
    let replayed = app.metric(r#"payments_total{outcome="replayed"}"#).await - replayed_before;
    assert_eq!((paid, replayed), (1.0, 1.0));
}

#[tokio::test]
async fn an_admission_at_entry_counts_as_an_admission() {
    let app = TestApp::spawn().await;
    let admitted = r#"queue_admitted_total{room="default"}"#;
    let before = app.metric(admitted).await;

    app.active_token(None).await;

    assert!(app.metric(admitted).await - before >= 1.0);
}

/// The metric names an expression of config/prometheus/alerts.yml reads.
fn metrics_used_by_alerts() -> Vec<String> {
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/prometheus/alerts.yml"
    ))
    .unwrap();
    let not_metrics = [
        "sum",
        "max",
        "min",
        "rate",
        "increase",
        "by",
        "and",
        "or",
        "unless",
        "le",
        "histogram_quantile",
        "on",
        "ignoring",
        "without",
        "bool",
        "count",
        "avg",
    ];
    let mut names = Vec::new();
    let mut in_expr = false;
    for line in rules.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("expr:") {
            in_expr = true;
            collect_names(rest, &not_metrics, &mut names);
        } else if in_expr && !trimmed.contains(':') && !trimmed.is_empty() {
            collect_names(trimmed, &not_metrics, &mut names);
        } else {
            in_expr = false;
        }
    }
    names.sort();
    names.dedup();
    names
}

fn collect_names(expression: &str, not_metrics: &[&str], names: &mut Vec<String>) {
    // Label matchers ({...}), grouping labels (by (...)) and range selectors ([...]) are not
    // metric names.
    let mut plain = String::new();
    let mut depth = 0;
    for c in expression.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let plain = plain.replace("by (le)", " ").replace("by (pool)", " ");
    for word in plain.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let is_name = word.starts_with(|c: char| c.is_ascii_lowercase())
            && word.contains('_')
            && !not_metrics.contains(&word);
        if is_name {
            names.push(word.to_string());
        }
    }
}

#[tokio::test]
async fn every_metric_an_alert_uses_is_exported() {
    let app = TestApp::spawn().await;
    let token = app.active_token(Some(7)).await;
    app.hold(&token, 7, 9).await;
    app.hold(&token, 7, 9).await;
    app.charge(7, 500_000, None).await;
    let reservation = app.held(&token, 7, 10).await;
    app.pay(&token, reservation, 7, None).await;
    // The gate's counter starts with a challenge handed out.
    app.get("/api/rooms/default/challenge").await;
    let used = metrics_used_by_alerts();
    let is_exported = |body: &str, name: &str| {
        body.lines().any(|line| {
            line.starts_with(&format!("{name} ")) || line.starts_with(&format!("{name}{{"))
        })
    };

    let body = metrics_once(&app, |body| used.iter().all(|name| is_exported(body, name))).await;

    assert!(used.len() >= 10, "{used:?}");
    for name in used {
        let exported = is_exported(&body, &name);
        assert!(
            exported,
            "the alerts use {name}, which /metrics does not export"
        );
    }
}
