//! `POST`, `GET` and `DELETE /api/queue`: the waiting room.

use std::net::IpAddr;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use ticketing_domain::identity::{act_for, Caller};
use ticketing_domain::ids::UserId;
use ticketing_domain::queue::{ClientKey, QueueView};
use ticketing_domain::rooms::{InviteAccount, InvitePass, RoomId};
use utoipa::ToSchema;

use super::access::queue_token;
use super::body::optional_json;
use super::identity::Identified;
use super::responses::{CallerRequired, InvalidRequest, TokenRequired, Unavailable};
use super::time_format::rfc3339;
use crate::problem::ApiError;
use crate::problem::Problem;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::resource("/queue")
            .route(web::post().to(enter))
            .route(web::get().to(poll))
            .route(web::delete().to(leave)),
    );
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EnterBody {
    #[schema(minimum = 1)]
    user_id: Option<i64>,
    /// The room to wait in; the room `default` when absent.
    #[schema(example = "golden-hour", pattern = "^[a-z0-9-]{1,40}$")]
    room_id: Option<String>,
    /// An invite code, for a room whose entry is `invite` (other rooms ignore it).
    invite: Option<String>,
    /// In a room that asks for a proof of work: base64 of the ALTCHA payload solving a challenge
    /// of `GET /api/rooms/{roomId}/challenge`. Good for one entry.
    proof: Option<String>,
}

/// The account an invite code is checked against: with identity on, the caller's subject (an
/// invite names the account's subject, so that a person who has never visited can be invited);
/// with it off, the body's `userId` as decimal text.
fn invite_account(caller: Option<&Caller>, user: Option<UserId>) -> Option<InviteAccount> {
    match caller {
        Some(caller) => InviteAccount::new(caller.subject.as_str()).ok(),
        None => user.and_then(|user| InviteAccount::new(&user.get().to_string()).ok()),
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueueBody {
    token: String,
    /// The room whose line the token is in.
    #[schema(example = "default")]
    room_id: String,
    /// The place's number in the room's order (after a draw, the drawn one); compare it with
    /// the room's `servingNumber` (`GET /api/rooms/{roomId}`).
    ticket_number: u64,
    /// ACTIVE or WAITING.
    #[schema(value_type = String, example = "WAITING")]
    status: &'static str,
    /// 1-based among WAITING tokens, 0 when ACTIVE.
    position: u64,
    estimated_wait_seconds: u64,
    active_until: Option<String>,
    /// WAITING only: seconds until the next poll is useful (clients should honour it).
    #[serde(skip_serializing_if = "Option::is_none")]
    poll_after_seconds: Option<u64>,
    /// Only while the line is a pre-queue: when it opens (RFC 3339); position is 0 until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    opens_at: Option<String>,
}

impl From<QueueView> for QueueBody {
    fn from(view: QueueView) -> Self {
        Self {
            token: view.token.as_str().to_string(),
            room_id: view.room.to_string(),
            ticket_number: view.ticket_number,
            status: view.status.as_str(),
            position: view.position,
            estimated_wait_seconds: view.estimated_wait_seconds,
            active_until: view.active_until.map(rfc3339),
            poll_after_seconds: view.poll_after_seconds,
            opens_at: view.opens_at.map(rfc3339),
        }
    }
}

/// Who entries are counted for: the network peer, or, when the peer is a trusted proxy, the
/// nearest address of its `X-Forwarded-For` that is not itself a trusted proxy (a client cannot
/// forge the part the proxies appended). From anyone else the header is ignored.
fn client_key(request: &HttpRequest, trusted: &[IpAddr]) -> ClientKey {
    let Some(peer) = request.peer_addr().map(|address| address.ip()) else {
        return ClientKey::new("unknown");
    };
    if !trusted.contains(&peer) {
        return ClientKey::new(peer.to_string());
    }
    let forwarded = request
        .headers()
        .get_all("X-Forwarded-For")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let client = forwarded
        .iter()
        .rev()
        .map_while(|entry| entry.parse::<IpAddr>().ok())
        .find(|address| !trusted.contains(address));
    ClientKey::new(client.unwrap_or(peer).to_string())
}

/// Enter the queue; with a userId, entering again returns the same token and place. An
/// invite-only room takes only entries with an invite code for that account.
#[utoipa::path(post, path = "/api/queue", tag = "queue",
    request_body(content = Option<EnterBody>, description = "Optional: bind the token to a user"),
    responses(
        (status = 200, description = "The token and its place", body = QueueBody),
        InvalidRequest,
        CallerRequired,
        (status = 403, description = "INVITE_REQUIRED: the room is invite-only and the entry has no invite or no account; INVITE_INVALID: the invite is forged, expired, for another room or account, or used; CHALLENGE_REQUIRED: the room asks for a proof of work and none came; CHALLENGE_FAILED: a wrong, expired, foreign, altered or already used proof; USER_MISMATCH: only with identity on, for another user than the caller", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "NOT_FOUND: no room of that roomId", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "ROOM_CLOSED: the room takes no new entries (mode reject, or past closesAt); with opensAt when an opening is scheduled", content_type = "application/problem+json", body = Problem),
        (status = 429, description = "RATE_LIMITED, with Retry-After", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn enter(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Identified,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body = optional_json::<EnterBody>(&body)?;
    let named = body
        .as_ref()
        .and_then(|body| body.user_id)
        .map(UserId::new)
        .transpose()?;
    let invite = body.as_ref().and_then(|body| body.invite.clone());
    // With identity on the token is bound to the caller (another named user is refused).
    let user = act_for(caller.caller(), named)?;
    let proof = body.as_ref().and_then(|body| body.proof.clone());
    let room = body
        .and_then(|body| body.room_id)
        .map(|room| {
            // What cannot be a room id names no room.
            RoomId::parse(&room).map_err(|_| ApiError::NotFound(format!("no room {room:?}")))
        })
        .transpose()?
        .unwrap_or_default();
    let client = client_key(&request, &state.trusted_proxies);
    // The gate first: a proof is cheap to check and spent at once; an invite is claimed with
    // the entry itself.
    pass_gate(&state, &room, proof.as_deref()).await?;
    let pass = InvitePass {
        code: invite,
        account: invite_account(caller.caller(), user),
    };
    let view = state
        .services
        .rooms
        .enter_with(&room, user, &client, &pass)
        .await?;
    if view.admitted_now {
        crate::observability::admitted_at_entry(&view.room);
    }
    Ok(HttpResponse::Ok().json(QueueBody::from(view)))
}

/// Lets the entry through the room's gate against bots (a proof of work, when the room asks for
/// one), counting how it went.
async fn pass_gate(state: &AppState, room: &RoomId, proof: Option<&str>) -> Result<(), ApiError> {
    let passage = state.services.rooms.pass_gate(room, proof).await;
    crate::observability::gate_passage(room, &passage);
    passage.map(|_| ()).map_err(ApiError::from)
}

/// Where a token stands; polling keeps a WAITING token in line.
#[utoipa::path(get, path = "/api/queue", tag = "queue", security(("queue_token" = [])),
    responses(
        (status = 200, description = "The token and its place", body = QueueBody),
        TokenRequired,
        Unavailable))]
pub(crate) async fn poll(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let view = state.services.rooms.poll(queue_token(&request)?).await?;
    Ok(HttpResponse::Ok().json(QueueBody::from(view)))
}

/// Leave the line or give up the active slot.
#[utoipa::path(delete, path = "/api/queue", tag = "queue", security(("queue_token" = [])),
    responses(
        (status = 204, description = "Left"),
        TokenRequired,
        Unavailable))]
pub(crate) async fn leave(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state.services.rooms.leave(&queue_token(&request)?).await?;
    Ok(HttpResponse::NoContent().finish())
}
