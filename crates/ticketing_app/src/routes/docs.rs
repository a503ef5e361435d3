//! `GET /api/docs`: Swagger UI for `/api/openapi.json`.
//!
//! The Swagger UI files come from the `utoipa-swagger-ui-vendored` crate (a build downloads
//! nothing) and are embedded in the binary, in debug builds too.

use std::sync::{Arc, OnceLock};

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa_swagger_ui::Config;

use crate::problem::ApiError;

/// Where the page lives; its assets are relative to it, so it needs the trailing slash.
const DOCS_ROOT: &str = "/api/docs/";

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/api/docs", web::get().to(to_root))
        .route("/api/docs/{file:.*}", web::get().to(asset));
}

fn swagger_config() -> Arc<Config<'static>> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(
                Config::from("/api/openapi.json")
                    // The default validator is a badge loaded from a remote host: none here.
                    .validator_url("none")
                    .try_it_out_enabled(true)
                    .display_request_duration(true),
            )
        })
        .clone()
}

/// Swagger UI for /api/openapi.json (served under /api/docs/).
#[utoipa::path(get, path = "/api/docs", tag = "page", responses(
    (status = 301, description = "To /api/docs/, where Swagger UI is served", headers(("Location" = String, description = "/api/docs/")))))]
pub(crate) async fn to_root() -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, DOCS_ROOT))
        .finish()
}

async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let file = path.into_inner();
    match utoipa_swagger_ui::serve(&file, swagger_config()) {
        Ok(Some(found)) => Ok(HttpResponse::Ok()
            .content_type(found.content_type)
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(found.bytes.into_owned())),
        Ok(None) => Err(ApiError::NotFound(format!(
            "no Swagger UI file {DOCS_ROOT}{file}"
        ))),
        Err(error) => Err(ApiError::Internal(format!(
            "rendering Swagger UI file {file}: {error}"
        ))),
    }
}
