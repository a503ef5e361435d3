//! The `Queue-Token` header: read once, and required ACTIVE on the protected scopes.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, ResponseError};
use ticketing_domain::queue::{ActiveToken, QueueToken};

use crate::problem::ApiError;
use crate::state::AppState;

pub const QUEUE_TOKEN_HEADER: &str = "Queue-Token";

/// The token a request carries.
///
/// # Errors
/// [`ApiError::TokenMissing`] without the header, [`ApiError::TokenInvalid`] when it cannot be
/// a token.
pub fn queue_token(request: &HttpRequest) -> Result<QueueToken, ApiError> {
    token_from_headers(request.headers())
}

/// The token a request carries, if any: for endpoints that need one only when the user must
/// prove who they are (`APP__SECURITY__REQUIRE_BOUND_TOKENS`).
///
/// # Errors
/// [`ApiError::TokenInvalid`] when the header is there but cannot be a token.
pub fn optional_queue_token(request: &HttpRequest) -> Result<Option<QueueToken>, ApiError> {
    match token_from_headers(request.headers()) {
        Ok(token) => Ok(Some(token)),
        Err(ApiError::TokenMissing) => Ok(None),
        Err(other) => Err(other),
    }
}

fn token_from_headers(
    headers: &actix_web::http::header::HeaderMap,
) -> Result<QueueToken, ApiError> {
    let value = headers
        .get(QUEUE_TOKEN_HEADER)
        .ok_or(ApiError::TokenMissing)?;
    let text = value.to_str().map_err(|_| ApiError::TokenInvalid)?;
    Ok(QueueToken::parse(text.trim())?)
}

/// Lets a request through only with an ACTIVE token, which handlers then find in the request's
/// extensions (`web::ReqData<ActiveToken>`). One Redis round trip. A refusal is answered here,
/// as a response, so outer middlewares see its status like any other. For the catalog, which
/// asks no more than that whoever is at its turn may look.
pub async fn require_active_token(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let authorized = authorize(&request).await;
    admit(request, next, authorized).await
}

/// As [`require_active_token`], for endpoints that act for a user: with identity on, the caller
/// is identified first (401 without good credentials), and the token must be bound to the
/// caller (403 `TOKEN_USER_MISMATCH` for one bound to anyone else, or to nobody).
pub async fn require_callers_active_token(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let authorized = authorize_for_caller(&request).await;
    admit(request, next, authorized).await
}

async fn admit(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
    authorized: Result<ActiveToken, ApiError>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match authorized {
        Ok(active) => {
            request.extensions_mut().insert(active);
            next.call(request)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(refusal) => Ok(request
            .into_response(refusal.error_response())
            .map_into_right_body()),
    }
}

async fn authorize(request: &ServiceRequest) -> Result<ActiveToken, ApiError> {
    let token = token_from_headers(request.headers())?;
    let state = request
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state is not registered".into()))?;
    Ok(state.services.rooms.authorize(token).await?)
}

async fn authorize_for_caller(request: &ServiceRequest) -> Result<ActiveToken, ApiError> {
    // Who asks comes first: without credentials nothing else is looked at.
    let caller = super::identity::identify(request.request()).await?;
    let active = authorize(request).await?;
    // With identity on, a token acts for the caller it was issued to and nobody else: one
    // bound to another user (or to nobody) is refused as a bound token of another user is.
    if let Some(caller) = caller {
        if active.user() != Some(caller.user) {
            return Err(ApiError::TokenUserMismatch);
        }
    }
    Ok(active)
}
