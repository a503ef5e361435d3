//! Liveness and readiness.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::responses::Unavailable;
use crate::problem::ApiError;
use crate::state::AppState;

/// Longest a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(crate::observability::metrics));
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when PostgreSQL and Redis answer, else 503.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready"),
    Unavailable))]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let dependencies = state.dependencies.probe(PROBE_TIMEOUT).await;
    let state_of = |up: bool| if up { "up" } else { "down" };
    if dependencies.iter().all(|dependency| dependency.up) {
        let mut body = serde_json::Map::new();
        body.insert("status".to_string(), json!("ready"));
        for dependency in &dependencies {
            body.insert(dependency.name.to_string(), json!(state_of(dependency.up)));
        }
        Ok(HttpResponse::Ok().json(body))
    } else {
        let report: Vec<String> = dependencies
            .iter()
            .map(|dependency| format!("{} {}", dependency.name, state_of(dependency.up)))
            .collect();
        Err(ApiError::Unavailable(format!(
            "not ready: {}",
            report.join(", ")
        )))
    }
}
