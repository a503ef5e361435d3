//! `GET /api/rooms` and `GET /api/rooms/{roomId}`: the waiting rooms, public and cacheable.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};
use serde::Serialize;
use ticketing_domain::queue::{LineSettings, PublishedDraw};
use ticketing_domain::rooms::{Room, RoomId};
use utoipa::ToSchema;

use super::responses::Unavailable;
use super::time_format::rfc3339;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/rooms", web::get().to(list))
        .route("/rooms/{room_id}", web::get().to(show))
        .route("/rooms/{room_id}/challenge", web::get().to(challenge));
}

/// A room as the public sees it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoomBody {
    #[schema(example = "golden-hour")]
    id: String,
    name: String,
    /// The performances whose seat maps, holds and payments its tokens open; empty for the room
    /// `default`, which covers every performance no other room covers.
    performance_ids: Vec<i64>,
    /// OPEN, PREQUEUE, PAUSED or CLOSED.
    #[schema(value_type = String, example = "OPEN")]
    status: &'static str,
    opens_at: Option<String>,
    closes_at: Option<String>,
    /// open, or invite: entries need an invite code (`"invite"` in `POST /api/queue`).
    #[schema(value_type = String, example = "open")]
    entry: &'static str,
}

/// A room with its line's front: what a client needs to tell its approximate place.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoomDetailBody {
    #[serde(flatten)]
    room: RoomBody,
    /// Every place up to this number has been decided (admitted or skipped).
    serving_number: u64,
    admit_per_second: u32,
    /// Places handed out and not yet decided.
    waiting: u64,
    /// While an opening is scheduled and after its draw: SHA-256 of the draw's secret 32-byte
    /// seed (of its bytes, not of its hex spelling), in hex. Published before the opening, so the
    /// seed cannot be chosen after the places are known.
    #[schema(example = "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd")]
    draw_commitment: Option<String>,
    /// After the draw: the seed, 64 hex digits. The order is a pure function of it and
    /// `drawRange`: the arrival numbers `after + 1 ..= through` sorted by
    /// SHA-256(seed bytes || number as 8-byte big-endian), ties by number; the i-th (from 0)
    /// holds the ticket number `after + 1 + i`.
    #[schema(example = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")]
    draw_seed: Option<String>,
    /// After the draw: the arrival numbers it ordered, `after + 1 ..= through`.
    draw_range: Option<DrawRangeBody>,
}

/// The arrival numbers a draw ordered: every one after `after` up to `through`.
#[derive(Serialize, ToSchema)]
pub(crate) struct DrawRangeBody {
    #[schema(example = 100)]
    after: u64,
    #[schema(example = 5100)]
    through: u64,
}

fn body(state: &AppState, room: &Room) -> (RoomBody, LineSettings) {
    let now = state.services.queue.now();
    let line = state
        .services
        .queue
        .room_settings(&room.id)
        .or(room.line)
        .unwrap_or_else(|| state.services.queue.settings());
    let body = RoomBody {
        id: room.id.to_string(),
        name: room.name.as_str().to_string(),
        performance_ids: room.performances.iter().map(|p| p.get()).collect(),
        status: room.status(&line, now).as_str(),
        opens_at: line.opens_at.filter(|at| *at > now).map(rfc3339),
        closes_at: room.closes_at.map(rfc3339),
        entry: room.entry.as_str(),
    };
    (body, line)
}

fn public_for_a_second() -> CacheControl {
    CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(1)])
}

/// An ALTCHA challenge (v1): find the `number` in `[0, maxnumber]` whose decimal spelling after
/// `salt` hashes (SHA-256, hex) to `challenge`, then send base64 of the JSON
/// `{"algorithm", "challenge", "number", "salt", "signature"}` as `"proof"` with
/// `POST /api/queue`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ChallengeBody {
    #[schema(example = "SHA-256")]
    algorithm: &'static str,
    #[schema(example = "4f2bd9e4d3a0c5a4d0f4e1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6")]
    challenge: String,
    /// Random hex, then the expiry (unix seconds), room and difficulty as URL parameters.
    #[schema(
        example = "9b1f0e6c2a7d4e8f9a0b1c2d3e4f5a6b?expires=1796684400&room=golden-hour&max=100000&"
    )]
    salt: String,
    #[schema(example = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00")]
    signature: String,
    /// The room's difficulty: the number is at most this.
    #[schema(example = 100000)]
    maxnumber: u32,
}

/// A proof-of-work challenge of the room, valid 5 minutes on every instance; a proof solving it
/// is good for one entry. In a room that asks for no proof, a trivial one (`maxnumber` 0).
#[utoipa::path(get, path = "/api/rooms/{roomId}/challenge", tag = "rooms",
    params(("roomId" = String, Path, description = "The room's id, [a-z0-9-]{1,40}")),
    responses(
        (status = 200, description = "An ALTCHA challenge", body = ChallengeBody),
        (status = 404, description = "NOT_FOUND: no such room (also for what cannot be a room id)", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn challenge(
    state: web::Data<AppState>,
    room: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = RoomId::parse(&room).map_err(|_| ApiError::NotFound(format!("no room {room:?}")))?;
    let challenge = state.services.rooms.challenge(&id).await?;
    crate::observability::challenge_issued(&id);
    Ok(HttpResponse::Ok()
        // Each challenge is good once: no cache may hand one to two people.
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(ChallengeBody {
            algorithm: challenge.algorithm,
            challenge: challenge.challenge,
            salt: challenge.salt,
            signature: challenge.signature,
            maxnumber: challenge.maxnumber,
        }))
}

/// Every waiting room, `default` first.
#[utoipa::path(get, path = "/api/rooms", tag = "rooms",
    responses((status = 200, description = "The rooms", body = [RoomBody]), Unavailable))]
pub(crate) async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rooms: Vec<RoomBody> = state
        .services
        .rooms
        .rooms()
        .iter()
        .map(|room| body(&state, room).0)
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(public_for_a_second())
        .json(rooms))
}

/// One waiting room and the front of its line; a CDN may answer it for everyone for a second.
#[utoipa::path(get, path = "/api/rooms/{roomId}", tag = "rooms",
    params(("roomId" = String, Path, description = "The room's id, [a-z0-9-]{1,40}")),
    responses(
        (status = 200, description = "The room", body = RoomDetailBody),
        (status = 404, description = "NOT_FOUND: no such room (also for what cannot be a room id)", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn show(
    state: web::Data<AppState>,
    room: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Not a room id: no such room.
    let id = RoomId::parse(&room).map_err(|_| ApiError::NotFound(format!("no room {room:?}")))?;
    let room = state.services.rooms.room(&id).await?;
    let (room_body, line) = body(&state, &room);
    let queue = &state.services.queue;
    let (draw_commitment, draw_seed, draw_range) = match queue.room_draw(&id) {
        Some(PublishedDraw::Committed { commitment }) => (Some(commitment.to_hex()), None, None),
        Some(PublishedDraw::Drawn { seed, range }) => (
            Some(seed.commitment().to_hex()),
            Some(seed.to_hex()),
            Some(DrawRangeBody {
                after: range.after,
                through: range.through,
            }),
        ),
        None => (None, None, None),
    };
    let detail = RoomDetailBody {
        room: room_body,
        serving_number: queue.serving_number(&id).unwrap_or(0),
        admit_per_second: line.admit_per_second.get(),
        waiting: queue.room_sizes(&id).map_or(0, |(waiting, _)| waiting),
        draw_commitment,
        draw_seed,
        draw_range,
    };
    Ok(HttpResponse::Ok()
        .insert_header(public_for_a_second())
        .json(detail))
}
