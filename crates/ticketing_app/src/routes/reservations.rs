//! `POST /api/reservations`, `GET` and `DELETE /api/reservations/{id}`: seat holds.

use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use ticketing_domain::ids::{ConcertId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::queue::ActiveToken;
use ticketing_domain::reservation::{HoldRequest, Reservation};

use super::access::require_active_token;
use super::catalog::rfc3339;
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HoldBody {
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReservationBody {
    reservation_id: i64,
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

async fn hold(
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

async fn show(
    state: web::Data<AppState>,
    token: web::ReqData<ActiveToken>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = ReservationId::new(path.into_inner())?;
    let reservation = state.reservations.reservation(&token, id).await?;
    Ok(HttpResponse::Ok().json(ReservationBody::from(reservation)))
}

async fn cancel(
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
