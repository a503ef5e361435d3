//! Request bodies and path ids that the extractors cannot express.

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
    // `null` says "no body" as plainly as an empty one.
    let object: Option<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(body)
            .map_err(|error| ApiError::InvalidRequest(format!("invalid JSON body: {error}")))?;
    object.map(from_object).transpose()
}

/// The body's fields as `T`. Every body of the contract is a JSON object: serde would also take
/// an array of the fields' values in order (`[1, 1, 119, 7]` as a hold), which no client means.
fn from_object<T: DeserializeOwned>(
    object: serde_json::Map<String, serde_json::Value>,
) -> Result<T, ApiError> {
    let mut value = serde_json::Value::Object(object);
    whole_numbers_as_integers(&mut value);
    serde_json::from_value(value)
        .map_err(|error| ApiError::InvalidRequest(format!("invalid JSON body: {error}")))
}

/// JSON has one number type: `7.0` is the integer 7 to JSON Schema, and to every client that
/// writes numbers as floats. serde reads it as a float and would refuse it where an integer is
/// asked; read as the integer it is, it is judged like `7` (a fraction stays a float: refused).
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(number) if number.is_f64() => {
            let Some(float) = number.as_f64() else { return };
            // Within i64's range, below 2^63 so that the conversion is exact.
            if float.fract() == 0.0 && float.abs() < 9.223_372_036_854_775e18 {
                #[allow(clippy::cast_possible_truncation)]
                let whole = float as i64;
                *value = serde_json::Value::from(whole);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        serde_json::Value::Object(fields) => {
            fields.values_mut().for_each(whole_numbers_as_integers);
        }
        _ => {}
    }
}

/// A required JSON body that must be an object, read with the app's `JsonConfig` (size limit,
/// problem answers) like `web::Json`.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<T> JsonObject<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonObject<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> actix_web::FromRequest for JsonObject<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(
        request: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let object =
            actix_web::web::Json::<serde_json::Map<String, serde_json::Value>>::from_request(
                request, payload,
            );
        Box::pin(async move {
            let object = object.await?.into_inner();
            Ok(JsonObject(from_object(object)?))
        })
    }
}

/// An id in a path (`/api/users/7/balance`). JSON Schema's integers include `7.0`, and clients
/// generated from the document may write an id so: it is read as 7. Anything else that is not a
/// whole number is refused (400) like a body's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct PathId(pub i64);

impl TryFrom<String> for PathId {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let whole = match text.split_once('.') {
            Some((whole, fraction))
                if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') =>
            {
                whole
            }
            _ => text.as_str(),
        };
        whole
            .parse::<i64>()
            .map(PathId)
            .map_err(|_| format!("{text:?} is not a whole number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Body {
        n: Option<i64>,
    }

    #[test]
    fn a_whole_number_written_as_a_float_is_that_integer() {
        assert_eq!(
            optional_json::<Body>(br#"{"n": 7.0}"#).ok(),
            Some(Some(Body { n: Some(7) }))
        );
        assert!(optional_json::<Body>(br#"{"n": 7.5}"#).is_err());
        assert!(optional_json::<Body>(br#"{"n": 1e300}"#).is_err());
    }

    #[test]
    fn a_path_id_may_be_written_as_a_whole_float() {
        assert_eq!(PathId::try_from("7".to_string()), Ok(PathId(7)));
        assert_eq!(PathId::try_from("7.00".to_string()), Ok(PathId(7)));
        assert_eq!(PathId::try_from("-3".to_string()), Ok(PathId(-3)));
        for bad in ["7.5", "7.", "abc", "", "1e3", "99999999999999999999"] {
            assert!(PathId::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }

    #[test]
    fn null_is_no_body() {
        assert_eq!(optional_json::<Body>(b"null").ok(), Some(None));
    }

    #[test]
    fn a_body_is_an_object_not_the_fields_in_an_array() {
        assert!(optional_json::<Body>(b"[7]").is_err());
        assert!(optional_json::<Body>(b"[null, null]").is_err());
        assert!(optional_json::<Body>(b"7").is_err());
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
