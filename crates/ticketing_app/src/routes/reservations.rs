//! `POST /api/reservations`, `GET` and `DELETE /api/reservations/{id}`: seat holds.

use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use ticketing_domain::identity::act_for;
use ticketing_domain::ids::{ConcertId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::queue::{ActiveToken, QueueToken};
use ticketing_domain::refund::RefundRequest;
use ticketing_domain::reservation::{
    HoldOrder, PageSize, Reservation, ReservationQuery, ReservationStatus,
};
use utoipa::{IntoParams, ToSchema};

use super::access::{optional_queue_token, require_callers_active_token};
use super::body::{JsonObject, PathId};
use super::headers::idempotency_key;
use super::identity::Identified;
use super::responses::{
    BoundTokenOrCallerRequired, BoundTokenOrUserMismatch, InvalidRequest, NotFound,
    TokenNotAllowed, TokenOrCallerRequired, TokenOrUserNotAllowedHere, Unavailable,
};
use super::time_format::rfc3339;
use crate::observability::Attempts;
use crate::problem::ApiError;
use crate::problem::Problem;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    // Not queue-protected, so registered before the scope, which would claim the path.
    config
        .route(
            "/reservations/{reservation_id}/refund",
            web::post().to(refund),
        )
        .route("/users/{user_id}/reservations", web::get().to(list));
    config.service(
        web::scope("/reservations")
            .wrap(from_fn(require_callers_active_token))
            .route("", web::post().to(hold))
            .route("/{reservation_id}", web::get().to(show))
            .route("/{reservation_id}", web::delete().to(cancel)),
    );
}

/// Exactly one of `seatId` and `seatIds`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HoldBody {
    #[schema(minimum = 1)]
    user_id: i64,
    #[schema(minimum = 1)]
    concert_id: i64,
    #[schema(minimum = 1)]
    performance_id: i64,
    /// One seat; the answer is its reservation.
    #[schema(example = 42, minimum = 1, maximum = 2_147_483_647, nullable = false)]
    seat_id: Option<i64>,
    /// 1 to `APP__RESERVATION__MAX_SEATS_PER_HOLD` (4) distinct seats, all held or none; the
    /// answer is `{"reservations": [...]}` in this order.
    #[schema(example = json!([12, 13]), min_items = 1, nullable = false)]
    seat_ids: Option<Vec<i64>>,
}

/// Which form of hold a body asks for: the answers differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    One,
    Several,
}

fn hold_order(body: HoldBody) -> Result<(Form, HoldOrder), ApiError> {
    let (form, seats) = match (body.seat_id, body.seat_ids) {
        (Some(seat), None) => (Form::One, vec![SeatNo::new(seat)?]),
        (None, Some(seats)) => (
            Form::Several,
            seats
                .into_iter()
                .map(SeatNo::new)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        (Some(_), Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "send either seatId or seatIds, not both".to_string(),
            ))
        }
        (None, None) => {
            return Err(ApiError::InvalidRequest(
                "missing field `seatId` (or `seatIds`)".to_string(),
            ))
        }
    };
    Ok((
        form,
        HoldOrder {
            user: UserId::new(body.user_id)?,
            concert: ConcertId::new(body.concert_id)?,
            performance: PerformanceId::new(body.performance_id)?,
            seats,
        },
    ))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReservationBody {
    reservation_id: i64,
    /// HELD, CONFIRMED, EXPIRED, CANCELLED or REFUNDED.
    #[schema(value_type = String, example = "HELD")]
    status: &'static str,
    user_id: i64,
    concert_id: i64,
    performance_id: i64,
    seat_id: i32,
    price: i64,
    expires_at: String,
}

impl From<Reservation> for ReservationBody {
    fn from(reservation: Reservation) -> Self {
        Self {
            reservation_id: reservation.id.get(),
            status: reservation.status.as_str(),
            user_id: reservation.user.get(),
            concert_id: reservation.concert.get(),
            performance_id: reservation.performance.get(),
            seat_id: reservation.seat.get(),
            price: reservation.price.get(),
            expires_at: rfc3339(reservation.expires_at),
        }
    }
}

/// The answer to a hold of `seatIds`.
#[derive(Serialize, ToSchema)]
pub(crate) struct HeldSeatsBody {
    /// One per seat, in the order of `seatIds`.
    reservations: Vec<ReservationBody>,
}

/// `seatId` is answered with its reservation, `seatIds` with `{"reservations": [...]}`.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum HoldAnswer {
    One(ReservationBody),
    Several(HeldSeatsBody),
}

/// Hold a seat, or several at once (all or none), for `reservation.hold_ttl` (5 minutes by
/// default).
#[utoipa::path(post, path = "/api/reservations", tag = "reservations", security(("queue_token" = [])),
    request_body = HoldBody,
    responses(
        (status = 200, description = "Held: the reservation for `seatId`, `{\"reservations\": [...]}` for `seatIds`", body = HoldAnswer),
        (status = 400, description = "INVALID_REQUEST: also both or neither of seatId and seatIds, no seat, a seat twice, too many seats", content_type = "application/problem+json", body = Problem),
        TokenOrCallerRequired,
        TokenOrUserNotAllowedHere,
        (status = 404, description = "NOT_FOUND: seat, performance, concert or user", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "SEAT_UNAVAILABLE (for seatIds with `unavailableSeatIds`), or SEAT_LIMIT_REACHED: past APP__RESERVATION__MAX_SEATS_PER_USER seats of the performance; nothing held", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn hold(
    state: web::Data<AppState>,
    token: web::ReqData<ActiveToken>,
    caller: Identified,
    body: JsonObject<HoldBody>,
) -> Result<HttpResponse, ApiError> {
    let (form, order) = hold_order(body.into_inner())?;
    act_for(caller.caller(), Some(order.user))?;
    let (concert, performance) = (order.concert, order.performance);
    state.services.rooms.check_scope(&token, performance)?;
    let held = Attempts::Holds
        .answer(state.services.reservations.hold_seats(&token, order).await)
        .map_err(|problem| match form {
            Form::One => problem.without_seat_list(),
            Form::Several => problem,
        })?;
    Attempts::Holds.succeeded("held");
    state.catalog_cache.seats_taken(concert, performance).await;
    let mut bodies = held.into_iter().map(ReservationBody::from);
    let answer = match (form, bodies.next()) {
        (Form::One, Some(one)) => HoldAnswer::One(one),
        (Form::Several, Some(first)) => HoldAnswer::Several(HeldSeatsBody {
            reservations: std::iter::once(first).chain(bodies).collect(),
        }),
        (_, None) => {
            return Err(ApiError::Internal(
                "a hold answered no reservation".to_string(),
            ))
        }
    };
    Ok(HttpResponse::Ok().json(answer))
}

/// A reservation.
#[utoipa::path(get, path = "/api/reservations/{reservationId}", tag = "reservations", security(("queue_token" = [])),
    params(("reservationId" = i64, Path, minimum = 1, description = "A reservation id, > 0")),
    responses(
        (status = 200, description = "The reservation", body = ReservationBody),
        InvalidRequest,
        TokenOrCallerRequired,
        TokenNotAllowed,
        NotFound,
        Unavailable))]
pub(crate) async fn show(
    state: web::Data<AppState>,
    token: web::ReqData<ActiveToken>,
    path: web::Path<PathId>,
) -> Result<HttpResponse, ApiError> {
    let id = ReservationId::new(path.into_inner().0)?;
    let reservation = state.services.reservations.reservation(&token, id).await?;
    Ok(HttpResponse::Ok().json(ReservationBody::from(reservation)))
}

/// Cancel a HELD reservation and free its seat at once.
#[utoipa::path(delete, path = "/api/reservations/{reservationId}", tag = "reservations", security(("queue_token" = [])),
    params(("reservationId" = i64, Path, minimum = 1, description = "A reservation id, > 0")),
    responses(
        (status = 204, description = "Cancelled, or already lapsed or cancelled"),
        InvalidRequest,
        TokenOrCallerRequired,
        TokenNotAllowed,
        NotFound,
        (status = 409, description = "RESERVATION_CONFIRMED: a paid reservation", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn cancel(
    state: web::Data<AppState>,
    token: web::ReqData<ActiveToken>,
    path: web::Path<PathId>,
) -> Result<HttpResponse, ApiError> {
    let id = ReservationId::new(path.into_inner().0)?;
    let cancelled = state.services.reservations.cancel(&token, id).await?;
    state
        .catalog_cache
        .seats_freed(cancelled.concert, cancelled.performance)
        .await;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefundBody {
    /// The reservation's owner.
    #[schema(minimum = 1)]
    user_id: i64,
}

/// Refund a paid reservation before its performance starts: it becomes REFUNDED, its price
/// returns to the balance and its seat is free again, in one transaction. No queue token.
/// Honours Idempotency-Key.
#[utoipa::path(post, path = "/api/reservations/{reservationId}/refund", tag = "reservations",
    params(("reservationId" = i64, Path, minimum = 1, description = "A reservation id, > 0"),
           ("Idempotency-Key" = Option<String>, Header, description = "1..=255 visible ASCII characters", min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    request_body = RefundBody,
    responses(
        (status = 200, description = "Refunded: the reservation, status REFUNDED", body = ReservationBody),
        InvalidRequest,
        BoundTokenOrCallerRequired,
        BoundTokenOrUserMismatch,
        (status = 404, description = "NOT_FOUND: unknown, or another user's reservation", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "RESERVATION_NOT_REFUNDABLE: not CONFIRMED (held, lapsed, cancelled, already refunded) or the performance has started; or IDEMPOTENCY_CONFLICT", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn refund(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Identified,
    path: web::Path<PathId>,
    body: JsonObject<RefundBody>,
) -> Result<HttpResponse, ApiError> {
    let refund = RefundRequest {
        reservation: ReservationId::new(path.into_inner().0)?,
        user: UserId::new(body.user_id)?,
    };
    act_for(caller.caller(), Some(refund.user))?;
    let key = idempotency_key(&request)?;
    let token = proof_of_user(&state, &request)?;
    let refunded = state.services.refunds.refund(token, refund, key).await?;
    state
        .catalog_cache
        .seats_freed(refunded.concert, refunded.performance)
        .await;
    Ok(HttpResponse::Ok().json(ReservationBody::from(refunded)))
}

/// A status the reservation list filters on, as reported: a lapsed hold is EXPIRED.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum StatusFilter {
    Held,
    Confirmed,
    Expired,
    Cancelled,
    Refunded,
}

impl From<StatusFilter> for ReservationStatus {
    fn from(filter: StatusFilter) -> Self {
        match filter {
            StatusFilter::Held => ReservationStatus::Held,
            StatusFilter::Confirmed => ReservationStatus::Confirmed,
            StatusFilter::Expired => ReservationStatus::Expired,
            StatusFilter::Cancelled => ReservationStatus::Cancelled,
            StatusFilter::Refunded => ReservationStatus::Refunded,
        }
    }
}

/// The query of `GET /api/users/{userId}/reservations`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only reservations of this status.
    #[param(inline)]
    status: Option<StatusFilter>,
    /// Reservations per page, 1 to 100; 50 by default.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Only reservations with a smaller id (older): the next page starts below the last
    /// reservation of this one. The `Link` header of a page that has a next one gives its URL.
    #[param(minimum = 1)]
    before: Option<i64>,
}

/// A user's reservations, newest first, a page at a time. No queue token. A page that is
/// followed by another carries `Link: <...&before=ID>; rel="next"`.
#[utoipa::path(get, path = "/api/users/{userId}/reservations", tag = "reservations",
    params(("userId" = i64, Path, minimum = 1, description = "A user id, > 0"), ListParams),
    responses(
        (status = 200, description = "Up to `limit` reservations, newest first", body = [ReservationBody],
            headers(("Link" = String, description = "`</api/users/{userId}/reservations?...&before=ID>; rel=\"next\"` when another page follows"))),
        (status = 400, description = "INVALID_REQUEST: a bad id, status, limit or before", content_type = "application/problem+json", body = Problem),
        BoundTokenOrCallerRequired,
        BoundTokenOrUserMismatch,
        (status = 404, description = "NOT_FOUND: unknown user", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Identified,
    path: web::Path<PathId>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let user = UserId::new(path.into_inner().0)?;
    act_for(caller.caller(), Some(user))?;
    let status = params.status.map(ReservationStatus::from);
    let size = params
        .limit
        .map(PageSize::new)
        .transpose()?
        .unwrap_or(PageSize::DEFAULT);
    let before = params.before.map(ReservationId::new).transpose()?;
    let token = proof_of_user(&state, &request)?;
    let page = state
        .services
        .reservations
        .reservations_of(
            token,
            ReservationQuery {
                user,
                status,
                before,
                size,
            },
        )
        .await?;
    let mut response = HttpResponse::Ok();
    if let Some(next) = page.next_before {
        let status = status.map_or(String::new(), |s| format!("&status={}", s.as_str()));
        response.insert_header((
            header::LINK,
            format!(
                "</api/users/{user}/reservations?limit={}{status}&before={next}>; rel=\"next\"",
                size.get()
            ),
        ));
    }
    let bodies: Vec<ReservationBody> = page
        .reservations
        .into_iter()
        .map(ReservationBody::from)
        .collect();
    Ok(response.json(bodies))
}

/// The `Queue-Token` of an endpoint that is not queue-protected, read only when bound tokens
/// are required (otherwise such endpoints ignore it).
fn proof_of_user(state: &AppState, request: &HttpRequest) -> Result<Option<QueueToken>, ApiError> {
    let binding = state.services.reservations.owner().binding();
    // An identified caller needs no token here: see `OwnerCheck::vouch`.
    if binding.is_required() && !binding.is_identified() {
        optional_queue_token(request)
    } else {
        Ok(None)
    }
}
