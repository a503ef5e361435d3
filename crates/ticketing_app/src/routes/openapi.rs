//! `GET /api/openapi.json`: the OpenAPI 3 description of every endpoint, generated from the
//! handlers' annotations so it cannot drift from the routes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    admin, admin_rooms, catalog, docs, health, identity, page, payments, queue, reservations,
    rooms, wallet,
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

/// Bodies that take exactly one of two fields (one seat or several, one reservation or
/// several): the fields' own schemas cannot say "exactly one", so each such body becomes
/// `allOf: [its object, oneOf: [requires the first, requires the second]]`. A body with both or
/// neither then breaks the document as it breaks the server (400).
struct ExactlyOneOf;

/// Lists of distinct ids whose every item is an id (> 0, and at most `maximum`): `Vec<i64>`
/// cannot say it of its items, nor that the server refuses an id named twice.
fn positive_items(
    components: &mut utoipa::openapi::Components,
    body: &str,
    property: &str,
    maximum: Option<i64>,
) {
    use utoipa::openapi::schema::{ArrayItems, Schema};
    use utoipa::openapi::RefOr;
    let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(body) else {
        return;
    };
    let Some(RefOr::T(Schema::Array(array))) = object.properties.get_mut(property) else {
        return;
    };
    array.unique_items = true;
    if let ArrayItems::RefOrSchema(items) = &mut array.items {
        if let RefOr::T(Schema::Object(item)) = items.as_mut() {
            item.minimum = Some(1.into());
            item.maximum = maximum.map(Into::into);
        }
    }
}

impl Modify for ExactlyOneOf {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (body, property, maximum) in [
            ("HoldBody", "seatIds", Some(i64::from(i32::MAX))),
            ("PaymentBody", "reservationIds", None),
            ("NewRoomBody", "performanceIds", None),
            ("RoomChangeBody", "performanceIds", None),
        ] {
            positive_items(components, body, property, maximum);
        }
        for (body, fields) in [
            ("HoldBody", ["seatId", "seatIds"]),
            ("PaymentBody", ["reservationId", "reservationIds"]),
        ] {
            if let Some(object) = components.schemas.remove(body) {
                let choice = fields.iter().fold(OneOfBuilder::new(), |choice, field| {
                    choice.item(ObjectBuilder::new().required(*field))
                });
                let exact = AllOfBuilder::new().item(object).item(choice);
                components.schemas.insert(body.to_string(), exact.into());
            }
        }
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
        identity::me,
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
        page::identity,
        docs::to_root,
    ),
    components(schemas(Problem)),
    modifiers(&QueueTokenScheme, &ExactlyOneOf),
    tags(
        (name = "queue", description = "The waiting room"),
        (name = "rooms", description = "The waiting rooms, one line per on-sale (public, cacheable for a second)"),
        (name = "catalog", description = "Concerts, performances and seats (ACTIVE token)"),
        (name = "reservations", description = "Seat holds (ACTIVE token), refunds and a user's reservations (no token)"),
        (name = "balance", description = "The prepaid balance"),
        (name = "payments", description = "Paying for a hold (ACTIVE token)"),
        (name = "identity", description = "Who the caller is (APP__AUTH__*; off by default)"),
        (name = "operations", description = "Health, readiness, metrics"),
        (name = "admin", description = "Operators: live queue settings, scheduled opening, revocation (Bearer APP__ADMIN__TOKEN)"),
        (name = "page", description = "For people: the waiting room and seat picker, and these docs in Swagger UI"),
    )
)]
struct ApiDoc;

/// The document as this server enforces it: a hold's `seatIds` may name at most
/// `seats_per_hold` seats (`APP__RESERVATION__MAX_SEATS_PER_HOLD`). Rendered once per value.
fn rendered(seats_per_hold: u32) -> Arc<str> {
    static DOCUMENTS: OnceLock<Mutex<BTreeMap<u32, Arc<str>>>> = OnceLock::new();
    let documents = DOCUMENTS.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut documents = documents
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    documents
        .entry(seats_per_hold)
        .or_insert_with(|| {
            let mut document = full_document();
            at_most_seats_per_hold(&mut document, seats_per_hold);
            Arc::from(document.to_json().unwrap_or_else(|_| "{}".to_string()))
        })
        .clone()
}

/// Sets `maxItems` of the hold body's `seatIds` (inside the `allOf` of [`ExactlyOneOf`]).
fn at_most_seats_per_hold(document: &mut utoipa::openapi::OpenApi, seats_per_hold: u32) {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;
    let Some(components) = document.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::AllOf(all_of))) = components.schemas.get_mut("HoldBody") else {
        return;
    };
    for part in &mut all_of.items {
        if let RefOr::T(Schema::Object(object)) = part {
            if let Some(RefOr::T(Schema::Array(seats))) = object.properties.get_mut("seatIds") {
                seats.max_items = usize::try_from(seats_per_hold).ok();
            }
        }
    }
}

/// The document: the handlers' annotations, and the two paths described by hand.
pub(crate) fn full_document() -> utoipa::openapi::OpenApi {
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
    document
}

/// `GET /api/openapi.json`.
/// Serves the document at `/api/openapi.json`.
pub fn configure(config: &mut actix_web::web::ServiceConfig) {
    config.route("/api/openapi.json", actix_web::web::get().to(document));
}

pub async fn document(state: actix_web::web::Data<crate::state::AppState>) -> HttpResponse {
    let seats_per_hold = state.services.reservations.rules().max_per_hold.get();
    HttpResponse::Ok()
        .content_type("application/json")
        .body(rendered(seats_per_hold).to_string())
}
