//! Request headers the handlers share, beside `Queue-Token` (see `access`).

use actix_web::HttpRequest;
use ticketing_domain::idempotency::{IdempotencyKey, InvalidIdempotencyKey};

use crate::problem::ApiError;

/// The optional `Idempotency-Key` header.
///
/// # Errors
/// [`ApiError::InvalidRequest`] when present but not a valid key.
pub(crate) fn idempotency_key(request: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    request
        .headers()
        .get("Idempotency-Key")
        .map(|value| {
            let text = value.to_str().map_err(|_| InvalidIdempotencyKey)?;
            IdempotencyKey::parse(text.trim())
        })
        .transpose()
        .map_err(ApiError::from)
}
