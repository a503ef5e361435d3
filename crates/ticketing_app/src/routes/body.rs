//! Request bodies that the JSON extractor cannot express.

use serde::de::DeserializeOwned;

use crate::problem::ApiError;

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
