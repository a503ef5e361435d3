//! The HTTP routes of the contract, and how malformed requests are refused.

mod access;
mod admin;
mod admin_rooms;
pub mod body;
mod catalog;
mod docs;
mod headers;
mod health;
pub(crate) mod identity;
mod known_paths;
#[cfg(test)]
mod mocked_tests;
mod openapi;
mod page;
mod payments;
mod queue;
mod reservations;
mod responses;
mod rooms;
mod time_format;
mod wallet;

use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{error::JsonPayloadError, web, HttpRequest, HttpResponse, ResponseError};

use crate::problem::ApiError;
pub(crate) use time_format::rfc3339;

/// Registers every route, the extractor error handlers and the fallback for unknown paths.
pub fn configure(
    max_body_bytes: usize,
    admin_enabled: bool,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        config
            .app_data(
                web::JsonConfig::default()
                    .limit(max_body_bytes)
                    // Clients that send JSON without a Content-Type are accepted; a wrong one is not.
                    .content_type_required(false)
                    .error_handler(|error, _| {
                        match error {
                            JsonPayloadError::Overflow { .. }
                            | JsonPayloadError::OverflowKnownLength { .. } => {
                                ApiError::PayloadTooLarge
                            }
                            other => {
                                ApiError::InvalidRequest(format!("invalid JSON body: {other}"))
                            }
                        }
                        .into()
                    }),
            )
            .app_data(web::PayloadConfig::new(max_body_bytes))
            .app_data(web::PathConfig::default().error_handler(|error, _| {
                ApiError::InvalidRequest(format!("invalid path parameter: {error}")).into()
            }))
            .app_data(web::QueryConfig::default().error_handler(|error, _| {
                ApiError::InvalidRequest(format!("invalid query string: {error}")).into()
            }))
            .configure(health::configure)
            .configure(openapi::configure)
            // Before the `/api` scope, which would otherwise claim `/api/docs`.
            .configure(docs::configure)
            .configure(page::configure)
            .service(
                web::scope("/api")
                    .configure(queue::configure)
                    .configure(rooms::configure)
                    .configure(catalog::configure)
                    .configure(reservations::configure)
                    .configure(payments::configure)
                    .configure(wallet::configure)
                    .configure(identity::configure)
                    .configure(|api| {
                        if admin_enabled {
                            admin::configure(api);
                        }
                    }),
            )
            .default_service(web::to(unknown_route));
    }
}

pub use known_paths::refuse_unknown_paths;
pub use page::PageSignIn;

/// No route took the request. [`refuse_unknown_paths`] answered unknown paths and methods
/// before routing, so a request lands here only where a documented route is off (the admin API
/// without a token): 404.
async fn unknown_route(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.path()
    )))
}

/// Turns an error answer made below the handlers (framework defaults with a plain-text body)
/// into the contract's problem+json; answers that already are problems pass unchanged.
pub fn problem_for_bare_errors<B>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(
            response.map_into_left_body(),
        ));
    }
    let problem: HttpResponse<BoxBody> =
        ApiError::for_bare_status(response.status()).error_response();
    let (request, _) = response.into_parts();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, problem).map_into_right_body(),
    ))
}
