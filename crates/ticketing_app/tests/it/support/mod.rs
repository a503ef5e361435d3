//! `TestApp`: the real server built by `lib.rs`, on port 0, with a schema and a Redis key prefix
//! of its own, and one helper per endpoint.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, Response};
use ticketing_app::{Application, Settings};
use ticketing_domain::clock::Clock;
use ticketing_testkit::{TestDatabase, TestRedis};

pub struct TestApp {
    pub address: String,
    pub settings: Settings,
    pub client: Client,
    pub db: TestDatabase,
    pub redis: TestRedis,
    /// The clock of this app and of its peers, moved by [`TestApp::pass`].
    clock: MovableClock,
}

/// The system's time plus an offset a test moves forward: the app's clock, shared by its peers.
#[derive(Debug, Clone, Default)]
struct MovableClock {
    offset_ms: Arc<AtomicI64>,
}

impl MovableClock {
    fn advance(&self, elapsed: Duration) {
        let elapsed_ms = i64::try_from(elapsed.as_millis()).expect("a test's span of time");
        self.offset_ms.fetch_add(elapsed_ms, Ordering::SeqCst);
    }
}

impl Clock for MovableClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

pub const TOKEN_HEADER: &str = "Queue-Token";

impl TestApp {
    /// A server on the demo data set.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// A server on the demo data set, with extra `APP__...` settings.
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        let db = TestDatabase::with_demo_data().await;
        let redis = TestRedis::new();
        let config_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
        let mut vars: Vec<(String, String)> = vec![
            ("APP_CONFIG_DIR".into(), config_dir.into()),
            ("APP_ENV".into(), "test".into()),
            ("DATABASE_URL".into(), db.url().into()),
            ("REDIS_URL".into(), redis.url().into()),
            ("APP__REDIS__KEY_PREFIX".into(), redis.prefix().into()),
            ("APP__SERVER__PORT".into(), "0".into()),
            // Tests enter the queue many times from one address.
            ("APP__QUEUE__ENTRY_RATE_PER_CLIENT".into(), "0".into()),
        ];
        vars.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let settings = Settings::load_from(vars).expect("test settings");
        let clock = MovableClock::default();
        let address = serve(&settings, &clock).await;
        Self {
            address,
            settings,
            clock,
            client: Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("HTTP client"),
            db,
            redis,
        }
    }

    /// A second instance of the app on the same database and Redis prefix, as behind a load
    /// balancer; returns its base address.
    pub async fn spawn_peer(&self) -> String {
        serve(&self.settings, &self.clock).await
    }

    /// Lets `elapsed` pass, with no wait, for the app (and its peers), PostgreSQL and the line
    /// in Redis at once: holds, tokens and idle timeouts lapse as if the time had gone by.
    /// Background jobs act on it at their next tick, not here. The stores' clocks cannot move,
    /// so from then on the app's clock runs `elapsed` ahead of theirs: an instant the app learns
    /// from Redis afterwards (a new token's end) looks that much nearer to it. A TTL a test does
    /// not mean to lapse must be well above all the time it lets pass.
    pub async fn pass(&self, elapsed: Duration) {
        let waiting_idle_timeout = self
            .settings
            .queue_policy()
            .expect("queue policy")
            .waiting_idle_timeout;
        self.db.pass(elapsed).await;
        self.redis.pass(elapsed, waiting_idle_timeout).await;
        self.clock.advance(elapsed);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// The value of the `/metrics` series `series` (labels included, exactly as exported), or 0
    /// when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let body = self.get("/metrics").await.text().await.expect("metrics");
        body.lines()
            .find_map(|line| {
                line.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .and_then(|value| value.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// POST of a raw body declared as JSON, with a `Queue-Token` when given: for bodies a
    /// well-behaved client would never send.
    pub async fn post_raw(&self, path: &str, token: Option<&str>, body: &str) -> Response {
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        let request = match token {
            Some(token) => request.header(TOKEN_HEADER, token),
            None => request,
        };
        request.send().await.expect("POST")
    }

    /// GET with a `Queue-Token`.
    pub async fn get_with(&self, token: &str, path: &str) -> Response {
        self.get_at(&self.address, token, path).await
    }

    /// `GET path` with `token` at `base`: this app's address or a peer's.
    pub async fn get_at(&self, base: &str, token: &str, path: &str) -> Response {
        self.client
            .get(format!("{base}{path}"))
            .header(TOKEN_HEADER, token)
            .send()
            .await
            .expect("GET")
    }

    /// `POST /api/queue`, with `{"userId": ..}` when a user is given.
    pub async fn enter_queue(&self, user: Option<i64>) -> Response {
        let request = self.client.post(self.url("/api/queue"));
        let request = match user {
            Some(user) => request.json(&serde_json::json!({ "userId": user })),
            None => request,
        };
        request.send().await.expect("POST /api/queue")
    }

    /// `POST /api/queue` and the body, which must be a 200.
    pub async fn enter(&self, user: Option<i64>) -> serde_json::Value {
        let response = self.enter_queue(user).await;
        assert_eq!(response.status().as_u16(), 200, "entering the queue");
        response.json().await.expect("queue body")
    }

    /// A token that is ACTIVE (the test server has room), optionally bound to `user`.
    pub async fn active_token(&self, user: Option<i64>) -> String {
        let body = self.enter(user).await;
        assert_eq!(body["status"], "ACTIVE", "{body}");
        body["token"].as_str().expect("token").to_string()
    }

    pub async fn poll_queue(&self, token: &str) -> Response {
        self.get_with(token, "/api/queue").await
    }

    pub async fn leave_queue(&self, token: &str) -> Response {
        self.client
            .delete(self.url("/api/queue"))
            .header(TOKEN_HEADER, token)
            .send()
            .await
            .expect("DELETE /api/queue")
    }

    /// `POST /api/reservations` to `base` (this app or a peer).
    pub async fn hold_at(
        &self,
        base: &str,
        token: &str,
        user: i64,
        concert: i64,
        performance: i64,
        seat: i64,
    ) -> Response {
        self.client
            .post(format!("{base}/api/reservations"))
            .header(TOKEN_HEADER, token)
            .json(&serde_json::json!({
                "userId": user,
                "concertId": concert,
                "performanceId": performance,
                "seatId": seat,
            }))
            .send()
            .await
            .expect("POST /api/reservations")
    }

    /// `POST /api/reservations` of several seats (`seatIds`) of concert 1, performance 119.
    pub async fn hold_seats(&self, token: &str, user: i64, seats: &[i64]) -> Response {
        self.client
            .post(self.url("/api/reservations"))
            .header(TOKEN_HEADER, token)
            .json(&serde_json::json!({
                "userId": user,
                "concertId": 1,
                "performanceId": 119,
                "seatIds": seats,
            }))
            .send()
            .await
            .expect("POST /api/reservations")
    }

    /// `POST /api/reservations` for concert 1, performance 119.
    pub async fn hold(&self, token: &str, user: i64, seat: i64) -> Response {
        self.hold_at(&self.address, token, user, 1, 119, seat).await
    }

    pub async fn reservation(&self, token: &str, id: i64) -> Response {
        self.get_with(token, &format!("/api/reservations/{id}"))
            .await
    }

    pub async fn cancel_reservation(&self, token: &str, id: i64) -> Response {
        self.client
            .delete(self.url(&format!("/api/reservations/{id}")))
            .header(TOKEN_HEADER, token)
            .send()
            .await
            .expect("DELETE /api/reservations/{id}")
    }

    /// The status of one seat of performance 119 in the listing.
    pub async fn seat_status(&self, token: &str, seat: usize) -> String {
        let seats: Vec<serde_json::Value> = self
            .seats(token, "1", "119")
            .await
            .json()
            .await
            .expect("seat listing");
        seats[seat - 1]["status"]
            .as_str()
            .expect("status")
            .to_string()
    }

    pub async fn balance(&self, user: i64) -> Response {
        self.get(&format!("/api/users/{user}/balance")).await
    }

    /// `POST /api/users/{user}/balance/charge`, with an `Idempotency-Key` when given.
    pub async fn charge(&self, user: i64, amount: i64, key: Option<&str>) -> Response {
        let request = self
            .client
            .post(self.url(&format!("/api/users/{user}/balance/charge")))
            .json(&serde_json::json!({ "amount": amount }));
        let request = match key {
            Some(key) => request.header("Idempotency-Key", key),
            None => request,
        };
        request.send().await.expect("POST charge")
    }

    /// `POST /api/payments`, with an `Idempotency-Key` when given.
    pub async fn pay(
        &self,
        token: &str,
        reservation: i64,
        user: i64,
        key: Option<&str>,
    ) -> Response {
        let request = self
            .client
            .post(self.url("/api/payments"))
            .header(TOKEN_HEADER, token)
            .json(&serde_json::json!({ "reservationId": reservation, "userId": user }));
        let request = match key {
            Some(key) => request.header("Idempotency-Key", key),
            None => request,
        };
        request.send().await.expect("POST /api/payments")
    }

    /// `POST /api/payments` of several reservations (`reservationIds`), with an
    /// `Idempotency-Key` when given.
    pub async fn pay_several(
        &self,
        token: &str,
        reservations: &[i64],
        user: i64,
        key: Option<&str>,
    ) -> Response {
        let request = self
            .client
            .post(self.url("/api/payments"))
            .header(TOKEN_HEADER, token)
            .json(&serde_json::json!({ "reservationIds": reservations, "userId": user }));
        let request = match key {
            Some(key) => request.header("Idempotency-Key", key),
            None => request,
        };
        request.send().await.expect("POST /api/payments")
    }

    /// `POST /api/reservations/{id}/refund` for `user`, with an `Idempotency-Key` and a
    /// `Queue-Token` when given.
    pub async fn refund(
        &self,
        reservation: i64,
        user: i64,
        key: Option<&str>,
        token: Option<&str>,
    ) -> Response {
        let request = self
            .client
            .post(self.url(&format!("/api/reservations/{reservation}/refund")))
            .json(&serde_json::json!({ "userId": user }));
        let request = match key {
            Some(key) => request.header("Idempotency-Key", key),
            None => request,
        };
        let request = match token {
            Some(token) => request.header(TOKEN_HEADER, token),
            None => request,
        };
        request.send().await.expect("POST refund")
    }

    /// Holds `seat` of performance 119 for `user`, pays it from a fresh charge of its price and
    /// returns the reservation id.
    pub async fn bought(&self, user: i64, seat: i64) -> i64 {
        let token = self.active_token(Some(user)).await;
        let reservation = self.held(&token, user, seat).await;
        let held: serde_json::Value = self
            .reservation(&token, reservation)
            .await
            .json()
            .await
            .expect("reservation");
        let price = held["price"].as_i64().expect("price");
        assert_eq!(self.charge(user, price, None).await.status(), 200);
        assert_eq!(
            self.pay(&token, reservation, user, None).await.status(),
            200,
            "paying seat {seat}"
        );
        reservation
    }

    /// Holds `seat` of performance 119 for `user` and returns the reservation id.
    pub async fn held(&self, token: &str, user: i64, seat: i64) -> i64 {
        let response = self.hold(token, user, seat).await;
        assert_eq!(response.status(), 200, "holding seat {seat}");
        let body: serde_json::Value = response.json().await.expect("reservation");
        body["reservationId"].as_i64().expect("reservationId")
    }

    pub async fn concerts(&self, token: &str) -> Response {
        self.get_with(token, "/api/concerts").await
    }

    pub async fn performances(&self, token: &str, concert: &str) -> Response {
        self.get_with(token, &format!("/api/concerts/{concert}/performances"))
            .await
    }

    pub async fn seats(&self, token: &str, concert: &str, performance: &str) -> Response {
        self.get_with(
            token,
            &format!("/api/concerts/{concert}/performances/{performance}/seats"),
        )
        .await
    }
}

async fn serve(settings: &Settings, clock: &MovableClock) -> String {
    let application = Application::build_with_clock(settings, Arc::new(clock.clone()))
        .await
        .expect("build app");
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    address
}

/// Asserts a problem+json answer with `status` and `code`, returning its body.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(content_type, "application/problem+json");
    let body: serde_json::Value = response.json().await.expect("problem body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(body["type"], "about:blank");
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

/// Runs `ticketing admin <arguments>` against `base` with `token`; (success, stdout, stderr).
pub fn admin_cli(base: &str, token: &str, arguments: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ticketing"))
        .arg("admin")
        .args(["--url", base])
        .args(arguments)
        .env("APP__ADMIN__TOKEN", token)
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}
