//! `GET /api/openapi.json`: the OpenAPI 3 description of every endpoint, generated from the
//! handlers' annotations so it cannot drift from the routes.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, admin_rooms, catalog, docs, health, page, payments, queue, reservations, rooms, wallet,
};
use crate::problem::Problem;

struct QueueTokenScheme;

impl Modify for QueueTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "queue_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Queue-Token",
                "The token of POST /api/queue; it must be ACTIVE",
            ))),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "APP__ADMIN__TOKEN; the admin API exists only when it is set",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ticketing",
        description = "Concert ticketing with a virtual waiting room: queue, catalog, 5-minute seat holds, prepaid balance and payment."
    ),
    paths(
        queue::enter,
        queue::poll,
        queue::leave,
        catalog::list_concerts,
        catalog::list_performances,
        catalog::list_seats,
        reservations::hold,
        reservations::show,
        reservations::cancel,
        reservations::refund,
        reservations::list,
        wallet::balance,
        wallet::charge,
        payments::pay,
        health::healthz,
        health::readyz,
        admin::status,
        admin::change,
        admin::revoke,
        admin_rooms::list,
        admin_rooms::create,
        admin_rooms::show,
        admin_rooms::change,
        admin_rooms::delete,
        admin_rooms::revoke,
        rooms::list,
        rooms::show,
        rooms::challenge,
        page::index,
        docs::to_root,
    ),
    components(schemas(Problem)),
    modifiers(&QueueTokenScheme),
    tags(
        (name = "queue", description = "The waiting room"),
        (name = "rooms", description = "The waiting rooms, one line per on-sale (public, cacheable for a second)"),
        (name = "catalog", description = "Concerts, performances and seats (ACTIVE token)"),
        (name = "reservations", description = "Seat holds (ACTIVE token), refunds and a user's reservations (no token)"),
        (name = "balance", description = "The prepaid balance"),
        (name = "payments", description = "Paying for a hold (ACTIVE token)"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "admin", description = "Operators: live queue settings, scheduled opening, revocation (Bearer APP__ADMIN__TOKEN)"),
        (name = "page", description = "For people: the waiting room and seat picker, and these docs in Swagger UI"),
    )
)]
struct ApiDoc;

fn rendered() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = ApiDoc::openapi();
        // /metrics is Prometheus text, described by hand.
        let metrics = utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .tag("operations")
                .summary(Some("Prometheus metrics in the text exposition format"))
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new()
                        .description("Metrics")
                        .content(
                            "text/plain",
                            utoipa::openapi::content::ContentBuilder::new().build(),
                        ),
                ),
        );
        document.paths.paths.insert("/metrics".to_string(), metrics);
        let openapi_path = utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .tag("operations")
                .summary(Some("This document"))
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new().description("OpenAPI 3 JSON"),
                ),
        );
        document
            .paths
            .paths
            .insert("/api/openapi.json".to_string(), openapi_path);
        document.to_json().unwrap_or_else(|_| "{}".to_string())
    })
}

/// `GET /api/openapi.json`.
/// Serves the document at `/api/openapi.json`.
pub fn configure(config: &mut actix_web::web::ServiceConfig) {
    config.route("/api/openapi.json", actix_web::web::get().to(document));
}

pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(rendered())
}
