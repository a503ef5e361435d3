//! The HTTP routes of the contract, and how malformed requests are refused.

mod catalog;
mod health;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::problem::ApiError;

/// Registers every route, the extractor error handlers and the fallback for unknown paths.
pub fn configure(max_body_bytes: usize) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        config
            .app_data(
                web::JsonConfig::default()
                    .limit(max_body_bytes)
                    // Clients that send JSON without a Content-Type are accepted; a wrong one is not.
                    .content_type_required(false)
                    .error_handler(|error, _| {
                        ApiError::InvalidRequest(format!("invalid JSON body: {error}")).into()
                    }),
            )
            .app_data(web::PathConfig::default().error_handler(|error, _| {
                ApiError::InvalidRequest(format!("invalid path parameter: {error}")).into()
            }))
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                ApiError::InvalidRequest(format!("invalid query string: {error}")).into()
            }))
            .configure(health::configure)
            .service(web::scope("/api").configure(catalog::configure))
            .default_service(web::to(unknown_route));
    }
}

async fn unknown_route(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.path()
    )))
}
