//! `GET /api/users/{userId}/balance` and `POST /api/users/{userId}/balance/charge`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use ticketing_domain::ids::UserId;
use ticketing_domain::money::{ChargeAmount, Won};

use super::idempotency_key;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/users/{user_id}/balance", web::get().to(balance))
        .route("/users/{user_id}/balance/charge", web::post().to(charge));
}

#[derive(Deserialize)]
struct ChargeBody {
    amount: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BalanceBody {
    user_id: i64,
    balance: i64,
}

fn answer(user: UserId, balance: Won) -> HttpResponse {
    HttpResponse::Ok().json(BalanceBody {
        user_id: user.get(),
        balance: balance.get(),
    })
}

async fn balance(
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::new(path.into_inner())?;
    let balance = state.wallet.balance(user).await?;
    Ok(answer(user, balance))
}

async fn charge(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<i64>,
    body: web::Json<ChargeBody>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::new(path.into_inner())?;
    let amount = ChargeAmount::new(body.amount)?;
    let key = idempotency_key(&request)?;
    let balance = state.wallet.charge(user, amount, key).await?;
    Ok(answer(user, balance))
}
