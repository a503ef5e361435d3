//! `POST /api/payments`.
//!
//! Not behind the token middleware: a retry under an `Idempotency-Key` must learn the outcome
//! even after the payment ended the token's session, so the payment use case checks the token.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use ticketing_domain::identity::act_for;
use ticketing_domain::ids::{ReservationId, UserId};
use ticketing_domain::payment::{Payment, PaymentForm, PaymentRequest, ReservationSelection};
use ticketing_domain::queue::QueueToken;
use utoipa::ToSchema;

use super::access::queue_token;
use super::body::JsonObject;
use super::headers::idempotency_key;
use super::identity::Identified;
use super::responses::{TokenOrCallerRequired, TokenOrUserNotAllowedHere, Unavailable};
use super::time_format::rfc3339;
use crate::observability::Attempts;
use crate::problem::ApiError;
use crate::problem::Problem;
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/payments", web::post().to(pay));
}

/// Exactly one of `reservationId` and `reservationIds`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaymentBody {
    /// One reservation.
    #[schema(example = 9001, minimum = 1, nullable = false)]
    reservation_id: Option<i64>,
    /// 1 to 20 distinct reservations of the user, all paid with one debit of their sum, or
    /// none.
    #[schema(example = json!([9001, 9002]), min_items = 1, max_items = 20, nullable = false)]
    reservation_ids: Option<Vec<i64>>,
    #[schema(minimum = 1)]
    user_id: i64,
}

impl TryFrom<&PaymentBody> for PaymentRequest {
    type Error = ApiError;
    fn try_from(body: &PaymentBody) -> Result<Self, ApiError> {
        let user = UserId::new(body.user_id)?;
        match (body.reservation_id, &body.reservation_ids) {
            (Some(id), None) => Ok(PaymentRequest::one(ReservationId::new(id)?, user)),
            (None, Some(ids)) => Ok(PaymentRequest {
                reservations: ReservationSelection::new(
                    ids.iter()
                        .map(|id| ReservationId::new(*id))
                        .collect::<Result<Vec<_>, _>>()?,
                )?,
                user,
                form: PaymentForm::Several,
            }),
            (Some(_), Some(_)) => Err(ApiError::InvalidRequest(
                "send either reservationId or reservationIds, not both".to_string(),
            )),
            (None, None) => Err(ApiError::InvalidRequest(
                "missing field `reservationId` (or `reservationIds`)".to_string(),
            )),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaidBody {
    payment_id: i64,
    /// The reservation paid; with `reservationIds`, the first of them.
    reservation_id: i64,
    /// Only when the request sent `reservationIds`: every reservation paid, in that order.
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation_ids: Option<Vec<i64>>,
    user_id: i64,
    /// The price, or the sum of the prices.
    amount: i64,
    #[schema(value_type = String, example = "PAID")]
    status: &'static str,
    paid_at: String,
}

impl PaidBody {
    fn new(payment: Payment, form: PaymentForm) -> Self {
        Self {
            payment_id: payment.id.get(),
            reservation_id: payment.reservation.get(),
            reservation_ids: match form {
                PaymentForm::One => None,
                PaymentForm::Several => {
                    Some(payment.reservations.iter().map(|id| id.get()).collect())
                }
            },
            user_id: payment.user.get(),
            amount: payment.amount.get(),
            status: "PAID",
            paid_at: rfc3339(payment.paid_at),
        }
    }
}

/// A payment for a performance that the token's room does not cover is 403 TOKEN_WRONG_ROOM,
/// as its seat map and holds are. Judged only for a token ACTIVE now and reservations it may
/// read (one read each, and none at all while the room `default` is the only room); anything
/// else is the payment's own to answer, so that a keyed retry after the session ended still
/// learns the first outcome and an unknown reservation is answered (and recorded) as before.
async fn refuse_other_rooms(
    state: &AppState,
    token: &QueueToken,
    payment: &PaymentRequest,
) -> Result<(), ApiError> {
    let rooms = &state.services.rooms;
    if !rooms.has_rooms() {
        return Ok(());
    }
    let Ok(active) = rooms.authorize(token.clone()).await else {
        return Ok(());
    };
    for id in payment.reservations.ids() {
        match state.services.reservations.reservation(&active, *id).await {
            Ok(reservation) => rooms.check_scope(&active, reservation.performance)?,
            Err(refused) => {
                // Paying unchecked is not an option; retrying is.
                if let unavailable @ ApiError::Unavailable(_) = ApiError::from(refused) {
                    return Err(unavailable);
                }
            }
        }
    }
    Ok(())
}

/// Pay for a held reservation, or several at once with one debit of their sum (all or none),
/// from the balance; ends the token's session. Honours Idempotency-Key, also after that session
/// ended.
#[utoipa::path(post, path = "/api/payments", tag = "payments", security(("queue_token" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1..=255 visible ASCII characters", min_length = 1, max_length = 255, pattern = "^[!-~]+$")),
    request_body = PaymentBody,
    responses(
        (status = 200, description = "Paid", body = PaidBody),
        (status = 400, description = "INVALID_REQUEST: also both or neither of reservationId and reservationIds, an empty list, a reservation twice, more than 20", content_type = "application/problem+json", body = Problem),
        TokenOrCallerRequired,
        TokenOrUserNotAllowedHere,
        (status = 404, description = "NOT_FOUND: a reservation unknown or another user's (nothing paid)", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "RESERVATION_NOT_PAYABLE or IDEMPOTENCY_CONFLICT", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "INSUFFICIENT_BALANCE", content_type = "application/problem+json", body = Problem),
        Unavailable))]
pub(crate) async fn pay(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Identified,
    body: JsonObject<PaymentBody>,
) -> Result<HttpResponse, ApiError> {
    let token = queue_token(&request)?;
    let payment = PaymentRequest::try_from(&*body)?;
    act_for(caller.caller(), Some(payment.user))?;
    let form = payment.form;
    let key = idempotency_key(&request)?;
    Attempts::Payments.answer(refuse_other_rooms(&state, &token, &payment).await)?;
    let receipt =
        Attempts::Payments.answer(state.services.payments.pay(token, payment, key).await)?;
    // A replay answers the first payment again; nothing was paid this time.
    if receipt.replayed {
        Attempts::Payments.succeeded("replayed");
    } else {
        Attempts::Payments.succeeded("paid");
        state.catalog_cache.everything_changed();
    }
    Ok(HttpResponse::Ok().json(PaidBody::new(receipt.payment, form)))
}
