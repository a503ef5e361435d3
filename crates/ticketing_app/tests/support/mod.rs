//! `TestApp`: the real server built by `lib.rs`, on port 0, with a schema and a Redis key prefix
//! of its own, and one helper per endpoint.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use reqwest::{Client, Response};
use ticketing_app::{Application, Settings};
use ticketing_testkit::{TestDatabase, TestRedis};

pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub db: TestDatabase,
    pub redis: TestRedis,
}

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
        ];
        vars.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let settings = Settings::load_from(vars).expect("test settings");
        let application = Application::build(&settings).await.expect("build app");
        let address = format!("http://127.0.0.1:{}", application.port());
        tokio::spawn(application.run_until_stopped());
        Self {
            address,
            client: Client::new(),
            db,
            redis,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn concerts(&self) -> Response {
        self.get("/api/concerts").await
    }

    pub async fn performances(&self, concert: &str) -> Response {
        self.get(&format!("/api/concerts/{concert}/performances"))
            .await
    }

    pub async fn seats(&self, concert: &str, performance: &str) -> Response {
        self.get(&format!(
            "/api/concerts/{concert}/performances/{performance}/seats"
        ))
        .await
    }
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
