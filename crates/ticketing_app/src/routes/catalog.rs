//! `GET /api/concerts`, its performances and their seats.

use actix_web::http::header::ContentType;
use actix_web::middleware::from_fn;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::Problem;
use ticketing_domain::catalog::{Concert, Performance, Seat};
use ticketing_domain::ids::{ConcertId, PerformanceId};
use ticketing_domain::queue::ActiveToken;

use super::access::require_active_token;
use super::body::PathId;
use super::responses::{
    InvalidRequest, NotFound, TokenNotActive, TokenNotActiveHere, TokenRequired, Unavailable,
};
use super::time_format::rfc3339;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/concerts")
            .wrap(from_fn(require_active_token))
            .route("", web::get().to(list_concerts))
            .route(
                "/{concert_id}/performances",
                web::get().to(list_performances),
            )
            .route(
                "/{concert_id}/performances/{performance_id}/seats",
                web::get().to(list_seats),
            ),
    );
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConcertBody {
    id: i64,
    title: String,
    artist: String,
    venue: String,
}

impl From<Concert> for ConcertBody {
    fn from(concert: Concert) -> Self {
        Self {
            id: concert.id.get(),
            title: concert.title,
            artist: concert.artist,
            venue: concert.venue,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PerformanceBody {
    id: i64,
    concert_id: i64,
    starts_at: String,
    total_seats: u32,
    available_seats: u32,
}

impl From<Performance> for PerformanceBody {
    fn from(performance: Performance) -> Self {
        Self {
            id: performance.id.get(),
            concert_id: performance.concert_id.get(),
            starts_at: rfc3339(performance.starts_at),
            total_seats: performance.total_seats,
            available_seats: performance.available_seats,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SeatBody {
    id: i32,
    grade: String,
    price: i64,
    /// AVAILABLE, HELD or SOLD.
    #[schema(value_type = String, example = "AVAILABLE")]
    status: &'static str,
}

impl From<Seat> for SeatBody {
    fn from(seat: Seat) -> Self {
        Self {
            id: seat.no.get(),
            grade: seat.grade,
            price: seat.price.get(),
            status: seat.status.as_str(),
        }
    }
}

fn bodies<T, B: From<T>>(items: Vec<T>) -> Vec<B> {
    items.into_iter().map(B::from).collect()
}

fn json(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body)
}

/// Every concert.
#[utoipa::path(get, path = "/api/concerts", tag = "catalog", security(("queue_token" = [])),
    responses(
        (status = 200, description = "Concerts by id", body = [ConcertBody]),
        TokenRequired,
        TokenNotActive,
        Unavailable))]
pub(crate) async fn list_concerts(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let body = state
        .catalog_cache
        .concerts(async {
            let concerts = state.services.catalog.list_concerts().await?;
            Ok(bodies::<_, ConcertBody>(concerts))
        })
        .await?;
    Ok(json(body))
}

/// The performances of a concert, with their seat counts.
#[utoipa::path(get, path = "/api/concerts/{concertId}/performances", tag = "catalog", security(("queue_token" = [])),
    params(("concertId" = i64, Path, minimum = 1, description = "A concert id, > 0")),
    responses(
        (status = 200, description = "Performances, earliest first", body = [PerformanceBody]),
        InvalidRequest,
        TokenRequired,
        TokenNotActive,
        NotFound,
        Unavailable))]
pub(crate) async fn list_performances(
    state: web::Data<AppState>,
    path: web::Path<PathId>,
) -> Result<HttpResponse, ApiError> {
    let concert = ConcertId::new(path.into_inner().0)?;
    let body = state
        .catalog_cache
        .performances(concert, async {
            let performances = state.services.catalog.list_performances(concert).await?;
            Ok(bodies::<_, PerformanceBody>(performances))
        })
        .await?;
    Ok(json(body))
}

/// The seat map of a performance; a seat whose hold lapsed is AVAILABLE.
#[utoipa::path(get, path = "/api/concerts/{concertId}/performances/{performanceId}/seats", tag = "catalog", security(("queue_token" = [])),
    params(("concertId" = i64, Path, minimum = 1, description = "A concert id, > 0"),
           ("performanceId" = i64, Path, minimum = 1, description = "A performance of that concert")),
    responses(
        (status = 200, description = "Seats by number", body = [SeatBody]),
        InvalidRequest,
        TokenRequired,
        TokenNotActiveHere,
        (status = 404, description = "NOT_FOUND, also for a performance of another concert", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn list_seats(
    state: web::Data<AppState>,
    token: web::ReqData<ActiveToken>,
    path: web::Path<(PathId, PathId)>,
) -> Result<HttpResponse, ApiError> {
    let (concert, performance) = path.into_inner();
    let (concert, performance) = (
        ConcertId::new(concert.0)?,
        PerformanceId::new(performance.0)?,
    );
    state.services.rooms.check_scope(&token, performance)?;
    let body = state
        .catalog_cache
        .seats(concert, performance, async {
            let seats = state
                .services
                .catalog
                .list_seats(concert, performance)
                .await?;
            Ok(bodies::<_, SeatBody>(seats))
        })
        .await?;
    Ok(json(body))
}
