//! `/api/admin/...`: the operators' API. Registered only when `APP__ADMIN__TOKEN` is set, so
//! without it every admin path is an unknown route (404).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use ticketing_domain::queue::{LineSettings, LineStatus, QueueToken, SettingsChange};
use ticketing_domain::rooms::{
    ChallengeDifficulty, Room, RoomChange, RoomEntry, RoomId, RoomMode, RoomName,
};
use utoipa::ToSchema;

use super::body::optional_json;
use super::responses::{AdminApiOff, AdminUnauthorized, Unavailable};
use super::time_format::rfc3339;
use crate::problem::ApiError;
use crate::problem::Problem;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/admin")
            .wrap(from_fn(require_admin_token))
            .service(
                web::resource("/queue")
                    .route(web::get().to(status))
                    .route(web::patch().to(change)),
            )
            .route("/queue/tokens/{token}", web::delete().to(revoke))
            .configure(super::admin_rooms::configure),
    );
}

/// The client's address, for the audit log.
pub(crate) fn client_of(request: &HttpRequest) -> String {
    request
        .peer_addr()
        .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string())
}

/// An RFC 3339 time of a setting named `name`, or the reason it is not one.
pub(crate) fn instant_of(
    name: &str,
    text: Option<Option<String>>,
) -> Result<Option<Option<chrono::DateTime<chrono::Utc>>>, ApiError> {
    text.map(|at| {
        at.map(|text| {
            chrono::DateTime::parse_from_rfc3339(&text)
                .map(|at| at.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    ApiError::InvalidRequest(format!(
                        "{name} must be an RFC 3339 time, not {text:?}"
                    ))
                })
        })
        .transpose()
    })
    .transpose()
}

/// Whether `presented` is the admin token, in time that does not depend on where they differ.
fn is_admin_token(presented: &str, expected: &str) -> bool {
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    presented.ct_eq(&expected).into()
}

async fn require_admin_token(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let expected = request
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.admin_token.clone());
    let presented = request
        .headers()
        .get("Authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let allowed = match (presented, expected) {
        (Some(presented), Some(expected)) => is_admin_token(presented, &expected),
        _ => false,
    };
    if allowed {
        next.call(request)
            .await
            .map(ServiceResponse::map_into_left_body)
    } else {
        Ok(request
            .into_response(ApiError::AdminUnauthorized.error_response())
            .map_into_right_body())
    }
}

/// The line's settings in force and its size.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdminQueueBody {
    paused: bool,
    admit_per_second: u32,
    max_active: u32,
    active_ttl_seconds: u64,
    /// While set, the line is a pre-queue until then (RFC 3339).
    opens_at: Option<String>,
    waiting: u64,
    active: u64,
    /// Who may enter the line: open, or invite (only with an invite code).
    #[schema(value_type = String, example = "open")]
    entry: &'static str,
    /// The proof of work asked at entry (0: none).
    challenge_difficulty: u32,
    /// The room `default`'s mode: fifo, random, passthrough or reject.
    #[schema(value_type = String, example = "fifo")]
    mode: &'static str,
    /// When the room `default` stops taking entries (RFC 3339), if it does.
    closes_at: Option<String>,
}

impl AdminQueueBody {
    /// The line's status with what its room (`default`) says of entering it.
    fn of(status: LineStatus, room: &Room) -> Self {
        Self {
            entry: room.entry.as_str(),
            challenge_difficulty: room.challenge_difficulty.get(),
            mode: room.mode.as_str(),
            closes_at: room.closes_at.map(rfc3339),
            ..Self::from(status)
        }
    }
}

impl From<LineStatus> for AdminQueueBody {
    fn from(status: LineStatus) -> Self {
        let settings = status.settings;
        Self {
            entry: RoomEntry::Open.as_str(),
            challenge_difficulty: 0,
            mode: RoomMode::Fifo.as_str(),
            closes_at: None,
            paused: settings.paused,
            admit_per_second: settings.admit_per_second.get(),
            max_active: settings.max_active.get(),
            active_ttl_seconds: settings.active_ttl.as_secs(),
            opens_at: settings.opens_at.map(rfc3339),
            waiting: status.waiting,
            active: status.active,
        }
    }
}

/// Absent stays `None`; `null` becomes `Some(None)`.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Any subset of the settings.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AdminQueueChange {
    paused: Option<bool>,
    #[schema(minimum = 1, maximum = 1_000_000)]
    admit_per_second: Option<i64>,
    #[schema(minimum = 1, maximum = 10_000_000)]
    max_active: Option<i64>,
    #[schema(minimum = 10, maximum = 86_400)]
    active_ttl_seconds: Option<i64>,
    /// RFC 3339 time in the future, or null to cancel a scheduled opening.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    opens_at: Option<Option<String>>,
    /// open, or invite: only entries with an invite code (needs APP__AUTH__INVITE_KEY).
    entry: Option<String>,
    /// The proof of work asked at entry: 0 (off) to 10000000.
    #[schema(minimum = 0, maximum = 10_000_000)]
    challenge_difficulty: Option<i64>,
    /// The room `default`'s name for people.
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    /// fifo, random, passthrough or reject (see the rooms' modes).
    #[schema(pattern = "^(fifo|random|passthrough|reject)$")]
    mode: Option<String>,
    /// RFC 3339: from then on new entries are 409 ROOM_CLOSED; null removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    closes_at: Option<Option<String>>,
}

/// The line's settings and size.
#[utoipa::path(get, path = "/api/admin/queue", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, description = "Settings in force and the line's size", body = AdminQueueBody),
        AdminUnauthorized,
        AdminApiOff,
        Unavailable))]
pub(crate) async fn status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(queue_body(&state).await?))
}

/// The `default` line's settings and size, with who may enter it (its room's entry and gate).
async fn queue_body(state: &AppState) -> Result<AdminQueueBody, ApiError> {
    let status = state.services.operator.status().await?;
    let room = state.services.rooms.room(&RoomId::default_room()).await?;
    Ok(AdminQueueBody::of(status, &room))
}

pub(crate) fn describe(settings: &LineSettings) -> String {
    format!(
        "paused={} admitPerSecond={} maxActive={} activeTtlSeconds={} opensAt={}",
        settings.paused,
        settings.admit_per_second,
        settings.max_active,
        settings.active_ttl.as_secs(),
        settings
            .opens_at
            .map_or_else(|| "null".to_string(), rfc3339)
    )
}

/// Change any subset of the settings; every instance follows within 1 s.
#[utoipa::path(patch, path = "/api/admin/queue", tag = "admin", security(("admin_token" = [])),
    request_body = AdminQueueChange,
    responses(
        (status = 200, description = "The new state", body = AdminQueueBody),
        (status = 400, description = "INVALID_REQUEST: unknown field, value out of range, opensAt not RFC 3339 or not in the future, closesAt not after the opening, entry invite without an invite key, challengeDifficulty out of range, an unknown mode", content_type = "application/problem+json", body = Problem),
        AdminUnauthorized,
        AdminApiOff,
        Unavailable))]
pub(crate) async fn change(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = optional_json::<AdminQueueChange>(&body)?.ok_or_else(|| {
        ApiError::InvalidRequest("a JSON object of the settings to change is required".into())
    })?;
    let opens_at = instant_of("opensAt", body.opens_at)?;
    let change = SettingsChange::new(
        body.paused,
        body.admit_per_second,
        body.max_active,
        body.active_ttl_seconds,
        opens_at,
        state.services.queue.now(),
    )?;
    let entry = body.entry.as_deref().map(RoomEntry::parse).transpose()?;
    let difficulty = body
        .challenge_difficulty
        .map(ChallengeDifficulty::new)
        .transpose()?;
    let room_change = RoomChange {
        name: body.name.as_deref().map(RoomName::new).transpose()?,
        mode: body.mode.as_deref().map(RoomMode::parse).transpose()?,
        closes_at: instant_of("closesAt", body.closes_at)?,
        entry,
        challenge_difficulty: difficulty,
        ..RoomChange::default()
    };
    let entrance = room_change.name.is_some()
        || room_change.mode.is_some()
        || room_change.closes_at.is_some()
        || entry.is_some()
        || difficulty.is_some();
    if entrance {
        // The room `default` is the line: its other settings are the room's (refused, with
        // nothing changed, when they cannot be; the line's settings then stay as they are too).
        let change = room_change;
        state
            .services
            .rooms
            .change(&RoomId::default_room(), &change)
            .await?;
        tracing::info!(
            target: "audit",
            who = "admin",
            client = %client_of(&request),
            what = "queue room settings",
            name = change.name.as_ref().map(RoomName::as_str),
            mode = change.mode.map(RoomMode::as_str),
            closes_at = ?change.closes_at.map(|at| at.map(rfc3339)),
            entry = entry.map(RoomEntry::as_str),
            challenge_difficulty = difficulty.map(ChallengeDifficulty::get),
            "operator changed the default room's settings"
        );
    }
    if entrance && change.is_empty() {
        return Ok(HttpResponse::Ok().json(queue_body(&state).await?));
    }
    let (before, after) = state.services.operator.change(&change).await?;
    tracing::info!(
        target: "audit",
        who = "admin",
        client = %client_of(&request),
        what = "queue settings",
        old = %describe(&before),
        new = %describe(&after),
        "operator changed the queue settings"
    );
    Ok(HttpResponse::Ok().json(queue_body(&state).await?))
}

/// Revoke one token: 401 afterwards, on every instance within 1 s. Unknown tokens: 204 too.
#[utoipa::path(delete, path = "/api/admin/queue/tokens/{token}", tag = "admin", security(("admin_token" = [])),
    params(("token" = String, Path, description = "The queue token", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 204, description = "Revoked (or was not live)"),
        (status = 400, description = "INVALID_REQUEST: not of a token's shape", content_type = "application/problem+json", body = Problem),
        AdminUnauthorized,
        AdminApiOff,
        Unavailable))]
pub(crate) async fn revoke(
    state: web::Data<AppState>,
    request: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let token = QueueToken::parse(&token)
        .map_err(|malformed| ApiError::InvalidRequest(malformed.to_string()))?;
    let was_live = state.services.operator.revoke(&token).await?;
    tracing::info!(
        target: "audit",
        who = "admin",
        client = %client_of(&request),
        what = "token revoked",
        was_live,
        "operator revoked a queue token"
    );
    Ok(HttpResponse::NoContent().finish())
}
