//! Liveness and readiness.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

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
    (status = 503, description = "UNAVAILABLE, with Retry-After", content_type = "application/problem+json", body = crate::problem::Problem)))]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let postgres = tokio::time::timeout(
        PROBE_TIMEOUT,
        ticketing_postgres::pool::ping(&state.postgres),
    );
    let redis = tokio::time::timeout(PROBE_TIMEOUT, state.redis.ping());
    let (postgres, redis) = tokio::join!(postgres, redis);
    let verdict = |result: Result<Result<(), _>, _>| matches!(result, Ok(Ok(())));
    let (postgres_up, redis_up) = (verdict(postgres), verdict(redis));
    if postgres_up && redis_up {
        Ok(HttpResponse::Ok().json(json!({ "status": "ready", "postgres": "up", "redis": "up" })))
    } else {
        let state_of = |up: bool| if up { "up" } else { "down" };
        Err(ApiError::Unavailable(format!(
            "not ready: postgres {}, redis {}",
            state_of(postgres_up),
            state_of(redis_up)
        )))
    }
}
