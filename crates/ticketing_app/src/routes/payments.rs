//! `POST /api/payments`.
//!
//! Not behind the token middleware: a retry under an `Idempotency-Key` must learn the outcome
//! even after the payment ended the token's session, so the payment use case checks the token.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use ticketing_domain::ids::{ReservationId, UserId};
use ticketing_domain::payment::{Payment, PaymentRequest};
use utoipa::ToSchema;

use super::access::queue_token;
use super::catalog::rfc3339;
use super::idempotency_key;
use super::openapi::ProblemDoc;
use crate::observability;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/payments", web::post().to(pay));
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaymentBody {
    reservation_id: i64,
    user_id: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaidBody {
    payment_id: i64,
    reservation_id: i64,
    user_id: i64,
    amount: i64,
    #[schema(value_type = String, example = "PAID")]
    status: &'static str,
    paid_at: String,
}

impl From<Payment> for PaidBody {
    fn from(payment: Payment) -> Self {
        Self {
            payment_id: payment.id.get(),
            reservation_id: payment.reservation.get(),
            user_id: payment.user.get(),
            amount: payment.amount.get(),
            status: "PAID",
            paid_at: rfc3339(payment.paid_at),
        }
    }
}

/// Pay for a held reservation from the balance; ends the token's session. Honours
/// Idempotency-Key, also after that session ended.
#[utoipa::path(post, path = "/api/payments", tag = "payments", security(("queue_token" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1..=255 visible ASCII characters")),
    request_body = PaymentBody,
    responses(
        (status = 200, description = "Paid", body = PaidBody),
        (status = 400, description = "INVALID_REQUEST", content_type = "application/problem+json", body = ProblemDoc),
        (status = 401, description = "TOKEN_MISSING or TOKEN_INVALID", content_type = "application/problem+json", body = ProblemDoc),
        (status = 403, description = "TOKEN_NOT_ACTIVE or TOKEN_USER_MISMATCH", content_type = "application/problem+json", body = ProblemDoc),
        (status = 404, description = "NOT_FOUND", content_type = "application/problem+json", body = ProblemDoc),
        (status = 409, description = "RESERVATION_NOT_PAYABLE or IDEMPOTENCY_CONFLICT", content_type = "application/problem+json", body = ProblemDoc),
        (status = 422, description = "INSUFFICIENT_BALANCE", content_type = "application/problem+json", body = ProblemDoc),
        (status = 503, description = "UNAVAILABLE", content_type = "application/problem+json", body = ProblemDoc)))]
pub(crate) async fn pay(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Json<PaymentBody>,
) -> Result<HttpResponse, ApiError> {
    let token = queue_token(&request)?;
    let payment = PaymentRequest {
        reservation: ReservationId::new(body.reservation_id)?,
        user: UserId::new(body.user_id)?,
    };
    let key = idempotency_key(&request)?;
    let receipt = state
        .payments
        .pay(token, payment, key)
        .await
        .map_err(|error| {
            let problem = ApiError::from(error);
            observability::payment_attempt(problem.code());
            problem
        })?;
    // A replay answers the first payment again; nothing was paid this time.
    if receipt.replayed {
        observability::payment_attempt("replayed");
    } else {
        observability::payment_attempt("paid");
        state.catalog_cache.everything_changed();
    }
    Ok(HttpResponse::Ok().json(PaidBody::from(receipt.payment)))
}
