//! `GET /`: the waiting room and seat picker for people.
//!
//! Plain HTML, CSS and JavaScript from `assets/`, compiled into the binary; no build step, no
//! CDN. The page talks to the same JSON API as every other client.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

use crate::problem::ApiError;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const PAGE_CSS: &str = include_str!("../../assets/page.css");
/// The page's script, with the English words in front: the words every other language falls
/// back to, there before anything is fetched.
const PAGE_JS: &str = concat!(
    "window.TICKETING_ENGLISH_WORDS = ",
    include_str!("../../assets/i18n/en.json"),
    ";\n",
    include_str!("../../assets/page.js")
);

/// The page's languages and their message catalogs (assets/i18n/); a new language is its file
/// here and its locale in page.js's `LANGUAGES`.
const CATALOGS: [(&str, &str); 2] = [
    ("en.json", include_str!("../../assets/i18n/en.json")),
    ("ko.json", include_str!("../../assets/i18n/ko.json")),
];

/// Solves the gate's proof-of-work challenges off the page's main thread.
const POW_WORKER_JS: &str = include_str!("../../assets/pow-worker.js");

/// Everything the page needs comes from this origin, but for the identity provider's discovery
/// document and token endpoint when the page signs in itself; nothing runs inline.
fn content_security_policy(sign_in: &PageSignIn) -> String {
    let issuer = match sign_in {
        PageSignIn::Bearer { issuer, .. } => format!(" {}", origin_of(issuer)),
        PageSignIn::Off | PageSignIn::Gateway => String::new(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'{issuer}; worker-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of an absolute URL (what a CSP source names).
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url, |end| &url[..after_scheme + end])
}

/// How the page learns who is buying (`GET /api/identity`); `Off` when not registered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PageSignIn {
    /// Identity off: the page buys as `?user=`.
    #[default]
    Off,
    /// The page signs in at `issuer` itself (authorization code with PKCE) as the public client
    /// `client_id`, asking for `scope`, and sends the access token as a bearer token.
    Bearer {
        issuer: String,
        client_id: Option<String>,
        scope: String,
    },
    /// A gateway in front signs people in and names them in a header: the page asks `/api/me`.
    Gateway,
}

/// What `GET /api/identity` answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageSignInView {
    /// `off`, `bearer` or `gateway`.
    mode: &'static str,
    /// With `bearer`: the OpenID Connect issuer the page signs in at.
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    /// With `bearer`: the page's public client id at the issuer (absent: the page cannot sign in
    /// by itself; tokens still work from other clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// With `bearer`: the scopes the page asks for.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

fn sign_in_of(registered: Option<web::Data<PageSignIn>>) -> PageSignIn {
    registered.map_or(PageSignIn::Off, |data| data.get_ref().clone())
}

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(index))
        .route("/assets/page.css", web::get().to(stylesheet))
        .route("/assets/page.js", web::get().to(script))
        .route("/assets/i18n/{file}", web::get().to(catalog))
        .route("/assets/pow-worker.js", web::get().to(pow_worker))
        .route("/api/identity", web::get().to(identity));
}

/// How the page signs in: identity off, a provider the page signs in at, or a gateway.
#[utoipa::path(get, path = "/api/identity", tag = "page", responses(
    (status = 200, description = "How the page learns who is buying", body = PageSignInView)))]
pub(crate) async fn identity(registered: Option<web::Data<PageSignIn>>) -> HttpResponse {
    let view = match sign_in_of(registered) {
        PageSignIn::Off => PageSignInView {
            mode: "off",
            issuer: None,
            client_id: None,
            scope: None,
        },
        PageSignIn::Bearer {
            issuer,
            client_id,
            scope,
        } => PageSignInView {
            mode: "bearer",
            issuer: Some(issuer),
            client_id,
            scope: Some(scope),
        },
        PageSignIn::Gateway => PageSignInView {
            mode: "gateway",
            issuer: None,
            client_id: None,
            scope: None,
        },
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .json(view)
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        // Small files: revalidate every time, so a new binary's page is picked up at once.
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .body(body)
}

/// The waiting room and seat picker for people (HTML; `?user=<id>` picks the demo user).
#[utoipa::path(get, path = "/", tag = "page", responses(
    (status = 200, description = "The page: HTML, with its CSS and JavaScript under /assets/", content_type = "text/html")))]
pub(crate) async fn index(registered: Option<web::Data<PageSignIn>>) -> HttpResponse {
    let mut response = asset("text/html; charset=utf-8", INDEX_HTML);
    let policy = content_security_policy(&sign_in_of(registered));
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn stylesheet() -> HttpResponse {
    asset("text/css; charset=utf-8", PAGE_CSS)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", PAGE_JS)
}

async fn pow_worker() -> HttpResponse {
    asset("text/javascript; charset=utf-8", POW_WORKER_JS)
}

/// A language's words for the page (`/assets/i18n/ko.json`).
async fn catalog(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    CATALOGS
        .iter()
        .find(|(name, _)| *name == file.as_str())
        .map(|(_, words)| asset("application/json", words))
        .ok_or_else(|| ApiError::NotFound(format!("the page has no words in {file}")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const PLURAL_FORMS: [&str; 6] = ["zero", "one", "two", "few", "many", "other"];

    /// A catalog's keys, plural forms (`key.one`, `key.other`) counted as their key.
    fn keys_of(catalog: &str) -> BTreeSet<String> {
        let words: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(catalog).expect("a catalog is a JSON object");
        words
            .iter()
            .map(|(key, value)| {
                assert!(value.is_string(), "{key} is not a string");
                match key.rsplit_once('.') {
                    Some((base, form)) if PLURAL_FORMS.contains(&form) => base.to_string(),
                    _ => key.clone(),
                }
            })
            .collect()
    }

    /// The keys `text` names after each of `openers` (`t('`, `data-i18n="`), up to `close`.
    fn named_after(text: &str, openers: &[&str], close: char) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for opener in openers {
            for (at, _) in text.match_indices(opener) {
                let preceded_by_word = text[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
                if preceded_by_word {
                    continue;
                }
                let rest = &text[at + opener.len()..];
                if let Some(end) = rest.find(close) {
                    keys.insert(rest[..end].to_string());
                }
            }
        }
        keys
    }

    #[test]
    fn every_catalog_has_every_key_and_the_page_uses_no_other() {
        let english = keys_of(CATALOGS[0].1);
        for (file, catalog) in CATALOGS {
            let keys = keys_of(catalog);
            assert_eq!(
                keys.symmetric_difference(&english).collect::<Vec<_>>(),
                Vec::<&String>::new(),
                "{file} and en.json differ in these keys"
            );
        }
        let mut used = named_after(
            include_str!("../../assets/page.js"),
            &["t('", "phrase('"],
            '\'',
        );
        used.extend(named_after(
            INDEX_HTML,
            &["data-i18n=\"", "data-i18n-aria-label=\""],
            '"',
        ));
        let unknown: Vec<_> = used.difference(&english).collect();
        assert!(
            unknown.is_empty(),
            "the page uses keys no catalog has: {unknown:?}"
        );
        let unused: Vec<_> = english.difference(&used).collect();
        assert!(
            unused.is_empty(),
            "the catalogs have keys the page never uses: {unused:?}"
        );
    }

    #[test]
    fn the_script_carries_the_english_words() {
        assert!(PAGE_JS.starts_with("window.TICKETING_ENGLISH_WORDS = {"));
    }

    #[test]
    fn the_page_may_reach_only_its_own_origin_and_the_issuer() {
        assert!(content_security_policy(&PageSignIn::Off).contains("connect-src 'self';"));
        let bearer = PageSignIn::Bearer {
            issuer: "https://id.example.com/realms/fans".into(),
            client_id: Some("page".into()),
            scope: "openid".into(),
        };
        assert!(
            content_security_policy(&bearer).contains("connect-src 'self' https://id.example.com;")
        );
    }

    #[test]
    fn an_origin_keeps_its_port_and_drops_its_path() {
        assert_eq!(origin_of("http://127.0.0.1:4799"), "http://127.0.0.1:4799");
        assert_eq!(
            origin_of("http://127.0.0.1:4799/oidc?x"),
            "http://127.0.0.1:4799"
        );
    }
}
