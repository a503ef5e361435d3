//! `POST`, `GET` and `DELETE /api/queue`: the waiting room.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use ticketing_domain::ids::UserId;
use ticketing_domain::queue::{ClientKey, QueueView};

use super::access::queue_token;
use super::body::optional_json;
use super::catalog::rfc3339;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::resource("/queue")
            .route(web::post().to(enter))
            .route(web::get().to(poll))
            .route(web::delete().to(leave)),
    );
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnterBody {
    user_id: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueBody {
    token: String,
    status: &'static str,
    position: u64,
    estimated_wait_seconds: u64,
    active_until: Option<String>,
}

impl From<QueueView> for QueueBody {
    fn from(view: QueueView) -> Self {
        Self {
            token: view.token.as_str().to_string(),
            status: view.status.as_str(),
            position: view.position,
            estimated_wait_seconds: view.estimated_wait_seconds,
            active_until: view.active_until.map(rfc3339),
        }
    }
}

/// Entries are counted per network peer; behind a proxy that is the proxy.
fn client_key(request: &HttpRequest) -> ClientKey {
    ClientKey::new(
        request
            .peer_addr()
            .map_or_else(|| "unknown".to_string(), |address| address.ip().to_string()),
    )
}

async fn enter(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let user = optional_json::<EnterBody>(&body)?
        .and_then(|body| body.user_id)
        .map(UserId::new)
        .transpose()?;
    let view = state.queue.enter_queue(user, &client_key(&request)).await?;
    Ok(HttpResponse::Ok().json(QueueBody::from(view)))
}

async fn poll(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let view = state.queue.poll(queue_token(&request)?).await?;
    Ok(HttpResponse::Ok().json(QueueBody::from(view)))
}

async fn leave(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.queue.leave(&queue_token(&request)?).await?;
    Ok(HttpResponse::NoContent().finish())
}
