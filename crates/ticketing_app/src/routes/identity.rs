//! Who the caller is, as the HTTP layer learns it: the credential a request carries (a bearer
//! token, or a trusted gateway's header from a trusted address), turned into a [`Caller`] once
//! per request, and `GET /api/me`.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use serde::Serialize;
use ticketing_domain::identity::{Caller, Credential, IdentityService};
use utoipa::ToSchema;

use super::responses::Unavailable;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/me", web::get().to(me));
}

/// How this instance identifies callers.
#[derive(Debug, Clone)]
pub struct Identity {
    pub service: IdentityService,
    /// The trusted gateway's header (`APP__AUTH__TRUSTED_HEADER`), in that mode.
    pub header: Option<HeaderName>,
}

impl Identity {
    /// Nobody is identified.
    pub fn off() -> Self {
        Self {
            service: IdentityService::off(),
            header: None,
        }
    }
}

/// The caller of a request: `None` with identity off. As an extractor it refuses a request
/// without good credentials while identity is on (401 `AUTH_REQUIRED` / `AUTH_INVALID`).
#[derive(Debug, Clone)]
pub struct Identified(pub Option<Caller>);

impl Identified {
    pub fn caller(&self) -> Option<&Caller> {
        self.0.as_ref()
    }
}

/// What the request carries to say who sent it, as the mode takes it. The gateway's header is
/// believed only from a trusted peer: from anyone else it is as if it were absent.
fn credential(
    identity: &Identity,
    trusted: &[IpAddr],
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> Option<Credential> {
    match &identity.header {
        Some(name) => {
            let peer = peer?;
            if !trusted.contains(&peer) {
                return None;
            }
            let value = headers.get(name)?.to_str().ok()?;
            Some(Credential::Vouched(value.trim().to_string()))
        }
        None => {
            let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| Credential::Bearer(token.trim().to_string()))
        }
    }
}

/// The caller of `request`, identified at most once per request (the answer is kept in the
/// request's extensions for the middleware and the handler that both ask).
///
/// # Errors
/// With identity on: 401 without credentials or with bad ones; 503 when the issuer's keys or
/// the accounts cannot be had.
pub async fn identify(request: &HttpRequest) -> Result<Option<Caller>, ApiError> {
    if let Some(known) = request.extensions().get::<Identified>() {
        return Ok(known.0.clone());
    }
    let state = request
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state is not registered".into()))?;
    if !state.identity.service.is_on() {
        return Ok(None);
    }
    let credential = credential(
        &state.identity,
        &state.trusted_proxies,
        request.peer_addr().map(|address| address.ip()),
        request.headers(),
    );
    let caller = state.identity.service.identify(credential).await?;
    request.extensions_mut().insert(Identified(caller.clone()));
    Ok(caller)
}

impl FromRequest for Identified {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move { identify(&request).await.map(Identified) })
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MeBody {
    user_id: i64,
    subject: String,
}

/// Who the caller is (identity on only).
#[utoipa::path(get, path = "/api/me", tag = "identity",
    responses(
        (status = 200, description = "The caller's user and account", body = MeBody),
        (status = 401, description = "AUTH_REQUIRED or AUTH_INVALID, with WWW-Authenticate: Bearer", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "NOT_FOUND: identity is off", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn me(caller: Identified) -> Result<HttpResponse, ApiError> {
    let caller = caller
        .0
        .ok_or_else(|| ApiError::NotFound("identity is off: nobody is identified".into()))?;
    Ok(HttpResponse::Ok().json(MeBody {
        user_id: caller.user.get(),
        subject: caller.subject.as_str().to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix_web::http::header::HeaderValue;
    use ticketing_domain::identity::{IdentityMode, MockAccounts};

    use super::*;

    fn gateway() -> Identity {
        Identity {
            service: IdentityService::new(
                IdentityMode::TrustedHeader,
                Arc::new(MockAccounts::new()),
            ),
            header: Some(HeaderName::from_static("x-user-subject")),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).expect("valid"),
            );
        }
        map
    }

    #[test]
    fn the_gateways_header_is_believed_from_trusted_peers_only() {
        let proxy: IpAddr = "10.0.0.5".parse().expect("ip");
        let stranger: IpAddr = "203.0.113.9".parse().expect("ip");
        let sent = headers(&[("x-user-subject", "alice")]);

        assert_eq!(
            credential(&gateway(), &[proxy], Some(proxy), &sent),
            Some(Credential::Vouched("alice".into()))
        );
        assert_eq!(
            credential(&gateway(), &[proxy], Some(stranger), &sent),
            None
        );
        assert_eq!(credential(&gateway(), &[proxy], None, &sent), None);
    }

    #[test]
    fn a_bearer_token_is_read_from_authorization() {
        let jwt = Identity {
            header: None,
            ..gateway()
        };
        assert_eq!(
            credential(
                &jwt,
                &[],
                None,
                &headers(&[("authorization", "Bearer a.b.c")])
            ),
            Some(Credential::Bearer("a.b.c".into()))
        );
        assert_eq!(
            credential(&jwt, &[], None, &headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(credential(&jwt, &[], None, &headers(&[])), None);
    }
}
