//! `/api/admin/rooms...`: the operators' rooms. Behind the admin token, like the rest of
//! `/api/admin`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use ticketing_domain::ids::PerformanceId;
use ticketing_domain::queue::{QueueToken, SettingsChange};
use ticketing_domain::rooms::{
    ChallengeDifficulty, Room, RoomChange, RoomDetails, RoomEntry, RoomId, RoomMode, RoomName,
};
use utoipa::ToSchema;

use super::admin::{client_of, describe, instant_of, present};
use super::body::optional_json;
use super::responses::{AdminApiOff, AdminUnauthorized, Unavailable};
use super::time_format::rfc3339;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/rooms")
                .route(web::get().to(list))
                .route(web::post().to(create)),
        )
        .service(
            web::resource("/rooms/{room_id}")
                .route(web::get().to(show))
                .route(web::patch().to(change))
                .route(web::delete().to(delete)),
        )
        .route("/rooms/{room_id}/tokens/{token}", web::delete().to(revoke));
}

/// A room with its line's settings in force and its size.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AdminRoomBody {
    #[schema(example = "golden-hour")]
    id: String,
    name: String,
    performance_ids: Vec<i64>,
    admit_per_second: u32,
    max_active: u32,
    active_ttl_seconds: u64,
    /// fifo, random, passthrough or reject.
    #[schema(value_type = String, example = "fifo")]
    mode: &'static str,
    opens_at: Option<String>,
    closes_at: Option<String>,
    /// open, or invite (only entries with an invite code).
    #[schema(value_type = String, example = "open")]
    entry: &'static str,
    challenge_difficulty: u32,
    paused: bool,
    waiting: u64,
    active: u64,
}

impl From<RoomDetails> for AdminRoomBody {
    fn from(details: RoomDetails) -> Self {
        let RoomDetails { room, line } = details;
        let settings = line.settings;
        Self {
            id: room.id.to_string(),
            name: room.name.as_str().to_string(),
            performance_ids: room.performances.iter().map(|p| p.get()).collect(),
            admit_per_second: settings.admit_per_second.get(),
            max_active: settings.max_active.get(),
            active_ttl_seconds: settings.active_ttl.as_secs(),
            mode: room.mode.as_str(),
            opens_at: settings.opens_at.map(rfc3339),
            closes_at: room.closes_at.map(rfc3339),
            entry: room.entry.as_str(),
            challenge_difficulty: room.challenge_difficulty.get(),
            paused: settings.paused,
            waiting: line.waiting,
            active: line.active,
        }
    }
}

/// A new room: only `id`, `name` and `performanceIds` are required; the line's settings default
/// to the room `default`'s configured ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewRoomBody {
    #[schema(example = "golden-hour")]
    id: String,
    #[schema(example = "Golden Hour, Seoul")]
    name: String,
    performance_ids: Vec<i64>,
    #[schema(minimum = 1, maximum = 1_000_000)]
    admit_per_second: Option<i64>,
    #[schema(minimum = 1, maximum = 10_000_000)]
    max_active: Option<i64>,
    #[schema(minimum = 10, maximum = 86_400)]
    active_ttl_seconds: Option<i64>,
    /// fifo (default), random, passthrough or reject.
    mode: Option<String>,
    /// RFC 3339, in the future: a pre-queue until then, then a fair draw.
    opens_at: Option<String>,
    /// RFC 3339: from then on new entries are 409 ROOM_CLOSED.
    closes_at: Option<String>,
    /// open (default), or invite: only entries with an invite code (needs
    /// APP__AUTH__INVITE_KEY on the server).
    entry: Option<String>,
    /// 0 (default): no proof of work asked.
    challenge_difficulty: Option<i64>,
    paused: Option<bool>,
}

/// Any subset of a room's settings.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RoomChangeBody {
    name: Option<String>,
    performance_ids: Option<Vec<i64>>,
    #[schema(minimum = 1, maximum = 1_000_000)]
    admit_per_second: Option<i64>,
    #[schema(minimum = 1, maximum = 10_000_000)]
    max_active: Option<i64>,
    #[schema(minimum = 10, maximum = 86_400)]
    active_ttl_seconds: Option<i64>,
    mode: Option<String>,
    /// RFC 3339 in the future, or null to cancel a scheduled opening.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    opens_at: Option<Option<String>>,
    /// RFC 3339, or null to remove the closing time.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    closes_at: Option<Option<String>>,
    /// open, or invite (needs APP__AUTH__INVITE_KEY on the server).
    entry: Option<String>,
    challenge_difficulty: Option<i64>,
    paused: Option<bool>,
}

fn performances(ids: Vec<i64>) -> Result<Vec<PerformanceId>, ApiError> {
    ids.into_iter()
        .map(|id| PerformanceId::new(id).map_err(ApiError::from))
        .collect()
}

/// The room a path names: what cannot be a room id names no room (404).
fn room_id(text: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(text).map_err(|_| ApiError::NotFound(format!("no room {text:?}")))
}

/// Every room with its line.
#[utoipa::path(get, path = "/api/admin/rooms", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, description = "The rooms, `default` first", body = [AdminRoomBody]),
        AdminUnauthorized,
        AdminApiOff,
        Unavailable))]
pub(crate) async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rooms = &state.services.rooms;
    rooms.refresh().await?;
    let mut bodies = Vec::new();
    for room in rooms.rooms() {
        bodies.push(AdminRoomBody::from(rooms.details(&room.id).await?));
    }
    Ok(HttpResponse::Ok().json(bodies))
}

/// Create a room; its line opens on every instance within a second.
#[utoipa::path(post, path = "/api/admin/rooms", tag = "admin", security(("admin_token" = [])),
    request_body = NewRoomBody,
    responses(
        (status = 201, description = "The room", body = AdminRoomBody),
        (status = 400, description = "INVALID_REQUEST: a bad id or value, an unknown performance, a performance in another room", content_type = "application/problem+json", body = Problem),
        AdminUnauthorized,
        AdminApiOff,
        (status = 409, description = "ROOM_EXISTS", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = optional_json::<NewRoomBody>(&body)?.ok_or_else(|| {
        ApiError::InvalidRequest("a room needs id, name and performanceIds".into())
    })?;
    let rooms = &state.services.rooms;
    let now = state.services.queue.now();
    let line = SettingsChange::new(
        body.paused,
        body.admit_per_second,
        body.max_active,
        body.active_ttl_seconds,
        instant_of("opensAt", body.opens_at.map(Some))?,
        now,
    )?
    .applied_to(&rooms.configured());
    let room = Room {
        id: RoomId::parse(&body.id)?,
        name: RoomName::new(&body.name)?,
        performances: performances(body.performance_ids)?,
        mode: body
            .mode
            .as_deref()
            .map(RoomMode::parse)
            .transpose()?
            .unwrap_or_default(),
        entry: body
            .entry
            .as_deref()
            .map(RoomEntry::parse)
            .transpose()?
            .unwrap_or_default(),
        closes_at: instant_of("closesAt", body.closes_at.map(Some))?.flatten(),
        challenge_difficulty: body
            .challenge_difficulty
            .map(ChallengeDifficulty::new)
            .transpose()?
            .unwrap_or_default(),
        line: Some(line),
        version: 1,
    };
    let created = rooms.create(room).await?;
    tracing::info!(
        target: "audit",
        who = "admin",
        client = %client_of(&request),
        what = "room created",
        room = %created.room.id,
        settings = %describe(&created.line.settings),
        "operator created a room"
    );
    Ok(HttpResponse::Created().json(AdminRoomBody::from(created)))
}

/// One room with its line.
#[utoipa::path(get, path = "/api/admin/rooms/{roomId}", tag = "admin", security(("admin_token" = [])),
    params(("roomId" = String, Path, description = "The room's id")),
    responses(
        (status = 200, description = "The room", body = AdminRoomBody),
        AdminUnauthorized,
        (status = 404, description = "NOT_FOUND: no such room (or the admin API is off)", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn show(
    state: web::Data<AppState>,
    room: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let details = state.services.rooms.details(&room_id(&room)?).await?;
    Ok(HttpResponse::Ok().json(AdminRoomBody::from(details)))
}

/// Change any subset of a room's settings (also `paused` and `performanceIds`); every instance
/// follows within a second.
#[utoipa::path(patch, path = "/api/admin/rooms/{roomId}", tag = "admin", security(("admin_token" = [])),
    params(("roomId" = String, Path, description = "The room's id")),
    request_body = RoomChangeBody,
    responses(
        (status = 200, description = "The room", body = AdminRoomBody),
        (status = 400, description = "INVALID_REQUEST: a bad value, an unknown performance, a performance in another room", content_type = "application/problem+json", body = Problem),
        AdminUnauthorized,
        (status = 404, description = "NOT_FOUND: no such room (or the admin API is off)", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn change(
    state: web::Data<AppState>,
    request: HttpRequest,
    room: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = room_id(&room)?;
    let body = optional_json::<RoomChangeBody>(&body)?.ok_or_else(|| {
        ApiError::InvalidRequest("a JSON object of the settings to change is required".into())
    })?;
    let change = RoomChange {
        name: body.name.as_deref().map(RoomName::new).transpose()?,
        performances: body.performance_ids.map(performances).transpose()?,
        mode: body.mode.as_deref().map(RoomMode::parse).transpose()?,
        entry: body.entry.as_deref().map(RoomEntry::parse).transpose()?,
        closes_at: instant_of("closesAt", body.closes_at)?,
        challenge_difficulty: body
            .challenge_difficulty
            .map(ChallengeDifficulty::new)
            .transpose()?,
        line: SettingsChange::new(
            body.paused,
            body.admit_per_second,
            body.max_active,
            body.active_ttl_seconds,
            instant_of("opensAt", body.opens_at)?,
            state.services.queue.now(),
        )?,
    };
    let changed = state.services.rooms.change(&id, &change).await?;
    tracing::info!(
        target: "audit",
        who = "admin",
        client = %client_of(&request),
        what = "room changed",
        room = %id,
        settings = %describe(&changed.line.settings),
        "operator changed a room"
    );
    Ok(HttpResponse::Ok().json(AdminRoomBody::from(changed)))
}

/// Delete a room nobody waits or shops in.
#[utoipa::path(delete, path = "/api/admin/rooms/{roomId}", tag = "admin", security(("admin_token" = [])),
    params(("roomId" = String, Path, description = "The room's id")),
    responses(
        (status = 204, description = "Deleted"),
        AdminUnauthorized,
        (status = 404, description = "NOT_FOUND: no such room (or the admin API is off)", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "ROOM_BUSY: people wait or shop in it, or it is the room default", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    request: HttpRequest,
    room: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = room_id(&room)?;
    state.services.rooms.delete(&id).await?;
    tracing::info!(
        target: "audit",
        who = "admin",
        client = %client_of(&request),
        what = "room deleted",
        room = %id,
        "operator deleted a room"
    );
    Ok(HttpResponse::NoContent().finish())
}

/// Revoke one token of a room: 401 afterwards, on every instance within 1 s.
#[utoipa::path(delete, path = "/api/admin/rooms/{roomId}/tokens/{token}", tag = "admin", security(("admin_token" = [])),
    params(("roomId" = String, Path, description = "The room's id"), ("token" = String, Path, description = "The queue token", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 204, description = "Revoked (or was not live in that room)"),
        (status = 400, description = "INVALID_REQUEST: not of a token's shape", content_type = "application/problem+json", body = Problem),
        AdminUnauthorized,
        (status = 404, description = "NOT_FOUND: no such room (or the admin API is off)", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn revoke(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, token) = path.into_inner();
    let id = room_id(&room)?;
    let token = QueueToken::parse(&token)
        .map_err(|malformed| ApiError::InvalidRequest(malformed.to_string()))?;
    let was_live = state.services.rooms.revoke(&id, &token).await?;
    tracing::info!(
        target: "audit",
        who = "admin",
        client = %client_of(&request),
        what = "token revoked",
        room = %id,
        was_live,
        "operator revoked a queue token"
    );
    Ok(HttpResponse::NoContent().finish())
}
