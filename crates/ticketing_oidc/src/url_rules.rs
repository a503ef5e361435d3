//! Which issuer URLs are accepted: `https://`, or `http://` on a loopback address only (local
//! and test issuers); keys fetched over plain HTTP from elsewhere could be anyone's.

use std::net::IpAddr;

use reqwest::Url;

/// Why an issuer or JWKS URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerUrlError {
    /// Not a URL.
    #[error("{0:?} is not a URL")]
    Malformed(String),
    /// `http://` to a host that is not loopback, or another scheme.
    #[error("{0:?} must be https:// (http:// only on loopback addresses)")]
    NotSecure(String),
}

/// Whether `text` may be fetched from.
///
/// # Errors
/// [`IssuerUrlError`] as described there.
pub fn check(text: &str) -> Result<(), IssuerUrlError> {
    let url = Url::parse(text).map_err(|_| IssuerUrlError::Malformed(text.to_string()))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        _ => Err(IssuerUrlError::NotSecure(text.to_string())),
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        assert_eq!(check("https://id.example.com/realms/x"), Ok(()));
        assert_eq!(check("http://127.0.0.1:8080"), Ok(()));
        assert_eq!(check("http://localhost:9000/issuer"), Ok(()));
        assert_eq!(check("http://[::1]:9000"), Ok(()));
        assert!(matches!(
            check("http://id.example.com"),
            Err(IssuerUrlError::NotSecure(_))
        ));
        assert!(matches!(
            check("http://10.0.0.1"),
            Err(IssuerUrlError::NotSecure(_))
        ));
        assert!(matches!(
            check("ftp://127.0.0.1"),
            Err(IssuerUrlError::NotSecure(_))
        ));
        assert!(matches!(
            check("not a url"),
            Err(IssuerUrlError::Malformed(_))
        ));
    }
}
