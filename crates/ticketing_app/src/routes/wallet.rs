//! `GET /api/users/{userId}/balance` and `POST /api/users/{userId}/balance/charge`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use ticketing_domain::identity::act_for;
use ticketing_domain::ids::UserId;
use ticketing_domain::money::{ChargeAmount, Won};
use utoipa::ToSchema;

use super::body::{JsonObject, PathId};
use super::headers::idempotency_key;
use super::identity::Identified;
use super::responses::{CallerRequired, InvalidRequest, NotFound, Unavailable, UserMismatch};
use crate::problem::ApiError;
use crate::problem::Problem;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/users/{user_id}/balance", web::get().to(balance))
        .route("/users/{user_id}/balance/charge", web::post().to(charge));
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct ChargeBody {
    /// 1 ..= 10,000,000 won.
    #[schema(minimum = 1, maximum = 10000000)]
    amount: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BalanceBody {
    user_id: i64,
    balance: i64,
}

fn answer(user: UserId, balance: Won) -> HttpResponse {
    HttpResponse::Ok().json(BalanceBody {
        user_id: user.get(),
        balance: balance.get(),
    })
}

/// A user's balance.
#[utoipa::path(get, path = "/api/users/{userId}/balance", tag = "balance",
    params(("userId" = i64, Path, minimum = 1, description = "A user id, > 0")),
    responses(
        (status = 200, description = "The balance", body = BalanceBody),
        InvalidRequest,
        CallerRequired,
        UserMismatch,
        NotFound,
        Unavailable))]
pub(crate) async fn balance(
    state: web::Data<AppState>,
    caller: Identified,
    path: web::Path<PathId>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::new(path.into_inner().0)?;
    act_for(caller.caller(), Some(user))?;
    let balance = state.services.wallet.balance(user).await?;
    Ok(answer(user, balance))
}

/// Add to a user's balance; honours Idempotency-Key.
#[utoipa::path(post, path = "/api/users/{userId}/balance/charge", tag = "balance",
    params(("userId" = i64, Path, minimum = 1, description = "A user id, > 0"),
           ("Idempotency-Key" = Option<String>, Header, description = "1..=255 visible ASCII characters", min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    request_body = ChargeBody,
    responses(
        (status = 200, description = "The new balance", body = BalanceBody),
        InvalidRequest,
        CallerRequired,
        UserMismatch,
        NotFound,
        (status = 409, description = "IDEMPOTENCY_CONFLICT", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn charge(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Identified,
    path: web::Path<PathId>,
    body: JsonObject<ChargeBody>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::new(path.into_inner().0)?;
    act_for(caller.caller(), Some(user))?;
    let amount = ChargeAmount::new(body.amount)?;
    let key = idempotency_key(&request)?;
    let balance = state.services.wallet.charge(user, amount, key).await?;
    Ok(answer(user, balance))
}
