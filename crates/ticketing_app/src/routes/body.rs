//! Request bodies that the JSON extractor cannot express.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{mime, ResponseError};
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// Whether a request's declared body type is acceptable: JSON (`application/json`, `+json`),
/// no declaration at all (read as JSON), or an empty body whatever it declares.
fn declares_json_or_nothing(request: &ServiceRequest) -> bool {
    let Some(declared) = request.headers().get(header::CONTENT_TYPE) else {
        return true;
    };
    let empty = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok())
        .is_some_and(|length| length.trim() == "0");
    if empty {
        return true;
    }
    declared
        .to_str()
        .ok()
        .and_then(|text| text.parse::<mime::Mime>().ok())
        .is_some_and(|mime| mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
}

/// Refuses bodies declared as anything but JSON with a 400 problem, before any handler runs.
pub async fn json_bodies_only(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if declares_json_or_nothing(&request) {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let refusal = ApiError::InvalidRequest(
        "request bodies are JSON: send Content-Type: application/json".to_string(),
    );
    Ok(request
        .into_response(refusal.error_response())
        .map_into_right_body())
}

/// Parses an optional JSON body: empty (or blank) is `None`, anything else must be valid JSON
/// of the expected shape.
///
/// # Errors
/// [`ApiError::InvalidRequest`] for malformed JSON or fields of the wrong type.
pub fn optional_json<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|error| ApiError::InvalidRequest(format!("invalid JSON body: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Body {
        n: Option<i64>,
    }

    #[test]
    fn an_empty_body_is_no_body() {
        assert_eq!(optional_json::<Body>(b"").ok(), Some(None));
        assert_eq!(optional_json::<Body>(b" \n").ok(), Some(None));
    }

    #[test]
    fn a_malformed_body_is_refused() {
        assert!(optional_json::<Body>(b"{").is_err());
        assert!(optional_json::<Body>(br#"{"n": "seven"}"#).is_err());
    }

    #[test]
    fn a_valid_body_is_read() {
        assert_eq!(
            optional_json::<Body>(br#"{"n": 7}"#).ok(),
            Some(Some(Body { n: Some(7) }))
        );
    }
}
