//! `GET /api/openapi.json`: the OpenAPI 3 description of every endpoint, generated from the
//! handlers' annotations so it cannot drift from the routes.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{admin, catalog, docs, health, page, payments, queue, reservations, wallet};

/// The `application/problem+json` body of every error.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProblemDoc {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    /// Stable and machine-readable: INVALID_REQUEST, TOKEN_MISSING, TOKEN_INVALID,
    /// TOKEN_NOT_ACTIVE, TOKEN_USER_MISMATCH, NOT_FOUND, SEAT_UNAVAILABLE, SEAT_LIMIT_REACHED,
    /// RESERVATION_NOT_PAYABLE, RESERVATION_CONFIRMED, RESERVATION_NOT_REFUNDABLE,
    /// IDEMPOTENCY_CONFLICT,
    /// INSUFFICIENT_BALANCE, RATE_LIMITED, ADMIN_UNAUTHORIZED, UNAVAILABLE.
    code: String,
    /// Only on a 409 SEAT_UNAVAILABLE answering `seatIds`: every asked seat that is taken.
    #[serde(rename = "unavailableSeatIds")]
    unavailable_seat_ids: Option<Vec<i32>>,
}

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
        page::index,
        docs::to_root,
    ),
    components(schemas(ProblemDoc)),
    modifiers(&QueueTokenScheme),
    tags(
        (name = "queue", description = "The waiting room"),
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
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(rendered())
}
