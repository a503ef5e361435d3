//! `GET /`: the waiting room and seat picker for people.
//!
//! Plain HTML, CSS and JavaScript from `assets/`, compiled into the binary; no build step, no
//! CDN. The page talks to the same JSON API as every other client.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const PAGE_CSS: &str = include_str!("../../assets/page.css");
const PAGE_JS: &str = include_str!("../../assets/page.js");
/// Solves the gate's proof-of-work challenges off the page's main thread.
const POW_WORKER_JS: &str = include_str!("../../assets/pow-worker.js");

/// Everything the page needs comes from this origin; nothing runs inline.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; worker-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(index))
        .route("/assets/page.css", web::get().to(stylesheet))
        .route("/assets/page.js", web::get().to(script))
        .route("/assets/pow-worker.js", web::get().to(pow_worker));
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
pub(crate) async fn index() -> HttpResponse {
    let mut response = asset("text/html; charset=utf-8", INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
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
