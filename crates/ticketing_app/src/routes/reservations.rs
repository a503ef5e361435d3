//! `POST /api/reservations`, `GET` and `DELETE /api/reservations/{id}`: seat holds.

use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use ticketing_domain::ids::{ConcertId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::queue::ActiveToken;
use ticketing_domain::reservation::{HoldRequest, Reservation};
use utoipa::ToSchema;

use super::access::require_active_token;
use super::catalog::rfc3339;
use super::openapi::ProblemDoc;
use crate::observability;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/reservations")
            .wrap(from_fn(require_active_token))
            .route("", web::post().to(hold))
            .route("/{reservation_id}", web::get().to(show))
            .route("/{reservation_id}", web::delete().to(cancel)),
    );
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HoldBody {
    user_id: i64,
    concert_id: i64,
    performance_id: i64,
    seat_id: i64,
}

impl TryFrom<HoldBody> for HoldRequest {
    type Error = ApiError;
    fn try_from(body: HoldBody) -> Result<Self, ApiError> {
        Ok(HoldRequest {
            user: UserId::new(body.user_id)?,
            concert: ConcertId::new(body.concert_id)?,
            performance: PerformanceId::new(body.performance_id)?,
            seat: SeatNo::new(body.seat_id)?,
        })
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReservationBody {
    reservation_id: i64,
    /// HELD, CONFIRMED, EXPIRED or CANCELLED.
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

/// Hold a seat for `reservation.hold_ttl` (5 minutes by default).
#[utoipa::path(post, path = "/api/reservations", tag = "reservations", security(("queue_token" = [])),
    request_body = HoldBody,
    responses(
        (status = 200, description = "Held", body = ReservationBody),
        (status = 400, description = "INVALID_REQUEST", content_type = "application/problem+json", body = ProblemDoc),
        (status = 401, description = "TOKEN_MISSING or TOKEN_INVALID", content_type = "application/problem+json", body = ProblemDoc),
        (status = 403, description = "TOKEN_NOT_ACTIVE or TOKEN_USER_MISMATCH", content_type = "application/problem+json", body = ProblemDoc),
        (status = 404, description = "NOT_FOUND: seat, performance, concert or user", content_type = "application/problem+json", body = ProblemDoc),
        (status = 409, description = "SEAT_UNAVAILABLE", content_type = "application/problem+json", body = ProblemDoc),
        (status = 503, description = "UNAVAILABLE", content_type = "application/problem+json", body = ProblemDoc)))]
pub(crate) async fn hold(
    state: web::Data<AppState>,
    token: web::ReqData<ActiveToken>,
    body: web::Json<HoldBody>,
) -> Result<HttpResponse, ApiError> {
    let request = HoldRequest::try_from(body.into_inner())?;
    let reservation = state
        .reservations
        .hold_seat(&token, request)
        .await
        .map_err(|error| {
            let problem = ApiError::from(error);
            observability::hold_attempt(problem.code());
            problem
        })?;
    observability::hold_attempt("held");
    state
        .catalog_cache
        .seat_changed(reservation.concert, reservation.performance)
        .await;
    Ok(HttpResponse::Ok().json(ReservationBody::from(reservation)))
}

/// A reservation.
#[utoipa::path(get, path = "/api/reservations/{reservationId}", tag = "reservations", security(("queue_token" = [])),
    params(("reservationId" = i64, Path, description = "A reservation id, > 0")),
    responses(
        (status = 200, description = "The reservation", body = ReservationBody),
        (status = 400, description = "INVALID_REQUEST", content_type = "application/problem+json", body = ProblemDoc),
        (status = 401, description = "TOKEN_MISSING or TOKEN_INVALID", content_type = "application/problem+json", body = ProblemDoc),
        (status = 403, description = "TOKEN_NOT_ACTIVE or TOKEN_USER_MISMATCH", content_type = "application/problem+json", body = ProblemDoc),
        (status = 404, description = "NOT_FOUND", content_type = "application/problem+json", body = ProblemDoc),
        (status = 503, description = "UNAVAILABLE", content_type = "application/problem+json", body = ProblemDoc)))]
pub(crate) async fn show(
    state: web::Data<AppState>,
    token: web::ReqData<ActiveToken>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = ReservationId::new(path.into_inner())?;
    let reservation = state.reservations.reservation(&token, id).await?;
    Ok(HttpResponse::Ok().json(ReservationBody::from(reservation)))
}

/// Cancel a HELD reservation and free its seat at once.
#[utoipa::path(delete, path = "/api/reservations/{reservationId}", tag = "reservations", security(("queue_token" = [])),
    params(("reservationId" = i64, Path, description = "A reservation id, > 0")),
    responses(
        (status = 204, description = "Cancelled, or already lapsed or cancelled"),
        (status = 400, description = "INVALID_REQUEST", content_type = "application/problem+json", body = ProblemDoc),
        (status = 401, description = "TOKEN_MISSING or TOKEN_INVALID", content_type = "application/problem+json", body = ProblemDoc),
        (status = 403, description = "TOKEN_NOT_ACTIVE or TOKEN_USER_MISMATCH", content_type = "application/problem+json", body = ProblemDoc),
        (status = 404, description = "NOT_FOUND", content_type = "application/problem+json", body = ProblemDoc),
        (status = 409, description = "RESERVATION_CONFIRMED: a paid reservation", content_type = "application/problem+json", body = ProblemDoc),
        (status = 503, description = "UNAVAILABLE", content_type = "application/problem+json", body = ProblemDoc)))]
pub(crate) async fn cancel(
    state: web::Data<AppState>,
    token: web::ReqData<ActiveToken>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = ReservationId::new(path.into_inner())?;
    let cancelled = state.reservations.cancel(&token, id).await?;
    state
        .catalog_cache
        .seat_changed(cancelled.concert, cancelled.performance)
        .await;
    Ok(HttpResponse::NoContent().finish())
}
