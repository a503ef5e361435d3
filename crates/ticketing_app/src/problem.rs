//! The one place where failures become HTTP answers: `application/problem+json` bodies with the
//! stable `code` of the contract.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use ticketing_domain::access::OwnerError;
use ticketing_domain::catalog::CatalogError;
use ticketing_domain::idempotency::{IdempotencyConflict, InvalidIdempotencyKey};
use ticketing_domain::identity::IdentityError;
use ticketing_domain::ids::InvalidId;
use ticketing_domain::money::ChargeAmountOutOfRange;
use ticketing_domain::payment::{InvalidReservationSelection, PaymentError, PaymentRefusal};
use ticketing_domain::queue::{
    AccessError, ControlError, InvalidSetting, MalformedToken, QueueError,
};
use ticketing_domain::refund::{RefundError, RefundRefusal};
use ticketing_domain::reservation::{HoldError, InvalidPageSize, ListError, ReservationError};
use ticketing_domain::rooms::{GateError, InvalidRoomId, RoomError};
use ticketing_domain::wallet::WalletError;
use ticketing_domain::InfrastructureError;

/// Seconds a client should wait before retrying after a 503.
const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 1;

/// Every failure an endpoint can answer with.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the request body is larger than this endpoint accepts")]
    PayloadTooLarge,
    #[error("this endpoint needs a Queue-Token header")]
    TokenMissing,
    #[error("the queue token is unknown, malformed, expired or already used")]
    TokenInvalid,
    #[error("the queue token is still waiting; poll GET /api/queue until it is ACTIVE")]
    TokenNotActive,
    #[error("the queue token was issued for another user")]
    TokenUserMismatch,
    #[error("{0}")]
    TokenWrongRoom(String),
    #[error("{0}")]
    NotFound(String),
    /// A known path asked with a method it does not serve; `allow` lists those it does.
    #[error("{method} is not served at this path; it serves {allow}")]
    MethodNotAllowed { method: String, allow: String },
    #[error("{0}")]
    ChallengeRequired(String),
    #[error("{0}")]
    ChallengeFailed(String),
    #[error("{0}")]
    RoomExists(String),
    #[error("{0}")]
    RoomBusy(String),
    #[error("{0}")]
    InviteRequired(String),
    #[error("{0}")]
    InviteInvalid(String),
    /// `opens_at`: when the room opens, if an opening is scheduled (RFC 3339).
    #[error("{detail}")]
    RoomClosed {
        detail: String,
        opens_at: Option<String>,
    },
    /// `seats`: the taken seats of a several-seat hold (`unavailableSeatIds`); `None` keeps the
    /// one-seat answer of v1.
    #[error("{detail}")]
    SeatUnavailable {
        detail: String,
        seats: Option<Vec<i32>>,
    },
    #[error("{0}")]
    SeatLimitReached(String),
    #[error("{0}")]
    ReservationNotPayable(String),
    #[error("{0}")]
    ReservationConfirmed(String),
    #[error("{0}")]
    ReservationNotRefundable(String),
    #[error("{0}")]
    IdempotencyConflict(String),
    #[error("{0}")]
    InsufficientBalance(String),
    #[error("too many requests; retry after {retry_after_seconds} s")]
    RateLimited { retry_after_seconds: u64 },
    #[error("admin endpoints need Authorization: Bearer <APP__ADMIN__TOKEN>")]
    AdminUnauthorized,
    #[error("this endpoint needs credentials: Authorization: Bearer <token>")]
    AuthRequired,
    #[error("the credentials are invalid: {0}")]
    AuthInvalid(String),
    #[error("the caller may act for its own user only")]
    UserMismatch,
    /// The identity provider's keys cannot be had now.
    #[error("the identity provider's keys are unavailable; retry after {retry_after_seconds} s")]
    IssuerUnavailable { retry_after_seconds: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// The `application/problem+json` body of every error (RFC 9457), as sent and as documented in
/// the OpenAPI description.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Problem<'a> {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "about:blank")]
    kind: &'static str,
    /// The HTTP status's reason phrase.
    #[schema(value_type = String, example = "Conflict")]
    title: &'a str,
    #[schema(example = 409)]
    status: u16,
    /// For people; clients switch on `code`, never on this.
    detail: String,
    /// Stable and machine-readable: INVALID_REQUEST, TOKEN_MISSING, TOKEN_INVALID,
    /// TOKEN_NOT_ACTIVE, TOKEN_USER_MISMATCH, NOT_FOUND, SEAT_UNAVAILABLE, SEAT_LIMIT_REACHED,
    /// RESERVATION_NOT_PAYABLE, RESERVATION_CONFIRMED, RESERVATION_NOT_REFUNDABLE,
    /// IDEMPOTENCY_CONFLICT, INSUFFICIENT_BALANCE, RATE_LIMITED, ADMIN_UNAUTHORIZED,
    /// UNAVAILABLE, TOKEN_WRONG_ROOM, ROOM_EXISTS, ROOM_BUSY, ROOM_CLOSED, METHOD_NOT_ALLOWED,
    /// INVITE_REQUIRED, INVITE_INVALID, AUTH_REQUIRED, AUTH_INVALID, USER_MISMATCH,
    /// CHALLENGE_REQUIRED, CHALLENGE_FAILED.
    #[schema(value_type = String, example = "SEAT_UNAVAILABLE")]
    code: &'static str,
    /// Only on a 409 SEAT_UNAVAILABLE answering `seatIds`: every asked seat that is taken.
    #[serde(rename = "unavailableSeatIds", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<i32>>)]
    unavailable_seat_ids: Option<&'a [i32]>,
    /// Only on a 409 ROOM_CLOSED of a room whose opening is scheduled: when it opens.
    #[serde(rename = "opensAt", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    opens_at: Option<&'a str>,
}

impl ApiError {
    /// The contract's machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) | ApiError::PayloadTooLarge => "INVALID_REQUEST",
            ApiError::TokenMissing => "TOKEN_MISSING",
            ApiError::TokenInvalid => "TOKEN_INVALID",
            ApiError::TokenNotActive => "TOKEN_NOT_ACTIVE",
            ApiError::TokenUserMismatch => "TOKEN_USER_MISMATCH",
            ApiError::TokenWrongRoom(_) => "TOKEN_WRONG_ROOM",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            ApiError::ChallengeRequired(_) => "CHALLENGE_REQUIRED",
            ApiError::ChallengeFailed(_) => "CHALLENGE_FAILED",
            ApiError::RoomExists(_) => "ROOM_EXISTS",
            ApiError::RoomBusy(_) => "ROOM_BUSY",
            ApiError::RoomClosed { .. } => "ROOM_CLOSED",
            ApiError::InviteRequired(_) => "INVITE_REQUIRED",
            ApiError::InviteInvalid(_) => "INVITE_INVALID",
            ApiError::SeatUnavailable { .. } => "SEAT_UNAVAILABLE",
            ApiError::SeatLimitReached(_) => "SEAT_LIMIT_REACHED",
            ApiError::ReservationNotPayable(_) => "RESERVATION_NOT_PAYABLE",
            ApiError::ReservationConfirmed(_) => "RESERVATION_CONFIRMED",
            ApiError::ReservationNotRefundable(_) => "RESERVATION_NOT_REFUNDABLE",
            ApiError::IdempotencyConflict(_) => "IDEMPOTENCY_CONFLICT",
            ApiError::InsufficientBalance(_) => "INSUFFICIENT_BALANCE",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::AdminUnauthorized => "ADMIN_UNAUTHORIZED",
            ApiError::AuthRequired => "AUTH_REQUIRED",
            ApiError::AuthInvalid(_) => "AUTH_INVALID",
            ApiError::UserMismatch => "USER_MISMATCH",
            ApiError::Unavailable(_) | ApiError::IssuerUnavailable { .. } => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECONDS),
            ApiError::IssuerUnavailable {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            _ => None,
        }
    }

    /// What the client is told; internal details stay in the log.
    fn public_detail(&self) -> String {
        match self {
            ApiError::Unavailable(_) => {
                "a dependency is unavailable or overloaded; retry shortly".to_string()
            }
            ApiError::Internal(_) => "an unexpected error occurred".to_string(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TokenMissing
            | ApiError::TokenInvalid
            | ApiError::AdminUnauthorized
            | ApiError::AuthRequired
            | ApiError::AuthInvalid(_) => StatusCode::UNAUTHORIZED,
            ApiError::UserMismatch => StatusCode::FORBIDDEN,
            ApiError::TokenNotActive
            | ApiError::TokenUserMismatch
            | ApiError::TokenWrongRoom(_)
            | ApiError::InviteRequired(_)
            | ApiError::InviteInvalid(_)
            | ApiError::ChallengeRequired(_)
            | ApiError::ChallengeFailed(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RoomExists(_) | ApiError::RoomBusy(_) | ApiError::RoomClosed { .. } => {
                StatusCode::CONFLICT
            }
            ApiError::SeatUnavailable { .. }
            | ApiError::SeatLimitReached(_)
            | ApiError::ReservationNotPayable(_)
            | ApiError::ReservationConfirmed(_)
            | ApiError::ReservationNotRefundable(_)
            | ApiError::IdempotencyConflict(_) => StatusCode::CONFLICT,
            ApiError::InsufficientBalance(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::IssuerUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            ApiError::Internal(cause) => tracing::error!(%cause, "request failed with a bug"),
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "dependency unavailable"),
            _ => {}
        }
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.public_detail(),
            code: self.code(),
            unavailable_seat_ids: match self {
                ApiError::SeatUnavailable {
                    seats: Some(seats), ..
                } => Some(seats.as_slice()),
                _ => None,
            },
            opens_at: match self {
                ApiError::RoomClosed {
                    opens_at: Some(at), ..
                } => Some(at.as_str()),
                _ => None,
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = HttpResponse::build(status);
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if let Some(seconds) = self.retry_after_seconds() {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        // RFC 6750: a 401 for a bearer token names the scheme (and, for a bad one, the error).
        match self {
            ApiError::AuthRequired => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::AuthInvalid(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""));
            }
            _ => {}
        }
        response.body(body)
    }
}

impl From<InvalidId> for ApiError {
    fn from(error: InvalidId) -> Self {
        ApiError::InvalidRequest(error.to_string())
    }
}

/// The log keeps the whole cause chain (the driver's error and its causes); the client gets
/// only the public detail.
impl From<InfrastructureError> for ApiError {
    fn from(error: InfrastructureError) -> Self {
        let chain = error.chain().to_string();
        // A kind of failure this version does not know is treated as a bug, not as a reason
        // to retry.
        if error.is_unavailable() {
            ApiError::Unavailable(chain)
        } else {
            ApiError::Internal(chain)
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::ConcertNotFound(_) | CatalogError::PerformanceNotFound { .. } => {
                ApiError::NotFound(error.to_string())
            }
            CatalogError::Infrastructure(cause) => cause.into(),
            other => ApiError::unmapped(&other),
        }
    }
}

impl From<MalformedToken> for ApiError {
    fn from(_: MalformedToken) -> Self {
        ApiError::TokenInvalid
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        match error {
            QueueError::TokenInvalid => ApiError::TokenInvalid,
            QueueError::RoomUnknown => ApiError::NotFound(error.to_string()),
            QueueError::RateLimited { retry_after } => ApiError::RateLimited {
                retry_after_seconds: retry_after.as_secs_f64().ceil().max(1.0) as u64,
            },
            QueueError::Infrastructure(cause) => cause.into(),
            other => ApiError::unmapped(&other),
        }
    }
}

impl From<RoomError> for ApiError {
    fn from(error: RoomError) -> Self {
        match error {
            RoomError::NotFound(_) => ApiError::NotFound(error.to_string()),
            RoomError::Exists(_) => ApiError::RoomExists(error.to_string()),
            RoomError::Busy(_) => ApiError::RoomBusy(error.to_string()),
            RoomError::Invalid(invalid) => invalid.into(),
            RoomError::UnknownPerformance(_) | RoomError::PerformanceTaken { .. } => {
                ApiError::InvalidRequest(error.to_string())
            }
            RoomError::Closed { opens_at, .. } => ApiError::RoomClosed {
                detail: error.to_string(),
                opens_at: opens_at.map(crate::routes::rfc3339),
            },
            RoomError::InviteRequired(_) => ApiError::InviteRequired(error.to_string()),
            RoomError::InviteInvalid(_) => ApiError::InviteInvalid(error.to_string()),
            RoomError::Gate(gate) => gate.into(),
            RoomError::Queue(queue) => queue.into(),
            RoomError::Infrastructure(cause) => cause.into(),
        }
    }
}

impl From<GateError> for ApiError {
    fn from(error: GateError) -> Self {
        match error {
            GateError::Required(_) => ApiError::ChallengeRequired(error.to_string()),
            GateError::Refused(_) => ApiError::ChallengeFailed(error.to_string()),
            GateError::Infrastructure(cause) => cause.into(),
        }
    }
}

impl From<InvalidRoomId> for ApiError {
    fn from(error: InvalidRoomId) -> Self {
        ApiError::InvalidRequest(error.to_string())
    }
}

impl From<InvalidSetting> for ApiError {
    fn from(error: InvalidSetting) -> Self {
        ApiError::InvalidRequest(error.to_string())
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> Self {
        match error {
            ControlError::Invalid(invalid) => invalid.into(),
            ControlError::Queue(queue) => queue.into(),
            other => ApiError::unmapped(&other),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::TokenInvalid => ApiError::TokenInvalid,
            AccessError::TokenNotActive => ApiError::TokenNotActive,
            AccessError::TokenUserMismatch => ApiError::TokenUserMismatch,
            AccessError::TokenWrongRoom { .. } => ApiError::TokenWrongRoom(error.to_string()),
            AccessError::Infrastructure(cause) => cause.into(),
            other => ApiError::unmapped(&other),
        }
    }
}

impl From<HoldError> for ApiError {
    fn from(error: HoldError) -> Self {
        match error {
            HoldError::Access(access) => access.into(),
            HoldError::SeatNotFound { .. } | HoldError::UserNotFound(_) => {
                ApiError::NotFound(error.to_string())
            }
            HoldError::SeatUnavailable { ref seats, .. } => ApiError::SeatUnavailable {
                seats: Some(seats.iter().map(|seat| seat.get()).collect()),
                detail: error.to_string(),
            },
            HoldError::InvalidSelection(invalid) => ApiError::InvalidRequest(invalid.to_string()),
            HoldError::SeatLimitReached { .. } => ApiError::SeatLimitReached(error.to_string()),
            HoldError::Infrastructure(cause) => cause.into(),
            other => ApiError::unmapped(&other),
        }
    }
}

impl From<ReservationError> for ApiError {
    fn from(error: ReservationError) -> Self {
        match error {
            ReservationError::Access(access) => access.into(),
            ReservationError::NotFound(_) => ApiError::NotFound(error.to_string()),
            ReservationError::AlreadyConfirmed(_) => {
                ApiError::ReservationConfirmed(error.to_string())
            }
            ReservationError::Infrastructure(cause) => cause.into(),
            other => ApiError::unmapped(&other),
        }
    }
}

impl From<InvalidIdempotencyKey> for ApiError {
    fn from(error: InvalidIdempotencyKey) -> Self {
        ApiError::InvalidRequest(error.to_string())
    }
}

impl From<InvalidReservationSelection> for ApiError {
    fn from(error: InvalidReservationSelection) -> Self {
        ApiError::InvalidRequest(error.to_string())
    }
}

impl From<ChargeAmountOutOfRange> for ApiError {
    fn from(error: ChargeAmountOutOfRange) -> Self {
        ApiError::InvalidRequest(error.to_string())
    }
}

impl From<IdempotencyConflict> for ApiError {
    fn from(conflict: IdempotencyConflict) -> Self {
        ApiError::IdempotencyConflict(conflict.to_string())
    }
}

impl From<WalletError> for ApiError {
    fn from(error: WalletError) -> Self {
        match error {
            WalletError::UserNotFound(_) => ApiError::NotFound(error.to_string()),
            WalletError::Conflict(conflict) => conflict.into(),
            WalletError::Infrastructure(cause) => cause.into(),
            other => ApiError::unmapped(&other),
        }
    }
}

impl From<PaymentError> for ApiError {
    fn from(error: PaymentError) -> Self {
        match error {
            PaymentError::Access(access) => access.into(),
            PaymentError::Refused(refusal @ PaymentRefusal::ReservationNotFound(_)) => {
                ApiError::NotFound(refusal.to_string())
            }
            PaymentError::Refused(refusal @ PaymentRefusal::NotPayable(_)) => {
                ApiError::ReservationNotPayable(refusal.to_string())
            }
            PaymentError::Refused(refusal @ PaymentRefusal::InsufficientBalance { .. }) => {
                ApiError::InsufficientBalance(refusal.to_string())
            }
            PaymentError::Conflict(conflict) => conflict.into(),
            PaymentError::Infrastructure(cause) => cause.into(),
            other => ApiError::unmapped(&other),
        }
    }
}

impl From<OwnerError> for ApiError {
    fn from(error: OwnerError) -> Self {
        match error {
            OwnerError::TokenMissing => ApiError::TokenMissing,
            OwnerError::Access(access) => access.into(),
            other => ApiError::unmapped(&other),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Required => ApiError::AuthRequired,
            IdentityError::Invalid(why) => ApiError::AuthInvalid(why),
            IdentityError::KeysUnavailable { retry_after } => ApiError::IssuerUnavailable {
                retry_after_seconds: retry_after.as_secs_f64().ceil().max(1.0) as u64,
            },
            IdentityError::Mismatch => ApiError::UserMismatch,
            IdentityError::Infrastructure(cause) => cause.into(),
            other => ApiError::unmapped(&other),
        }
    }
}

impl From<InvalidPageSize> for ApiError {
    fn from(error: InvalidPageSize) -> Self {
        ApiError::InvalidRequest(error.to_string())
    }
}

impl From<ListError> for ApiError {
    fn from(error: ListError) -> Self {
        match error {
            ListError::Owner(owner) => owner.into(),
            ListError::UserNotFound(_) => ApiError::NotFound(error.to_string()),
            ListError::Infrastructure(cause) => cause.into(),
            other => ApiError::unmapped(&other),
        }
    }
}

impl From<RefundError> for ApiError {
    fn from(error: RefundError) -> Self {
        match error {
            RefundError::Owner(owner) => owner.into(),
            RefundError::Refused(refusal @ RefundRefusal::ReservationNotFound(_)) => {
                ApiError::NotFound(refusal.to_string())
            }
            RefundError::Refused(refusal @ RefundRefusal::NotRefundable(_)) => {
                ApiError::ReservationNotRefundable(refusal.to_string())
            }
            RefundError::Conflict(conflict) => conflict.into(),
            RefundError::Infrastructure(cause) => cause.into(),
            other => ApiError::unmapped(&other),
        }
    }
}

impl ApiError {
    /// The answer to a domain error this version of the HTTP layer has no mapping for (the
    /// domain's errors are `#[non_exhaustive]`, for its embedders): a bug to fix here, answered
    /// as one.
    fn unmapped(error: &dyn std::fmt::Display) -> Self {
        ApiError::Internal(format!("a domain error without an HTTP mapping: {error}"))
    }

    /// The answer of the one-seat form of `POST /api/reservations`, as in v1: a 409 without the
    /// list of taken seats.
    pub fn without_seat_list(self) -> Self {
        match self {
            ApiError::SeatUnavailable { detail, .. } => ApiError::SeatUnavailable {
                detail,
                seats: None,
            },
            other => other,
        }
    }

    /// The problem for an error answer that some layer below the handlers produced without a
    /// body of the contract's shape (an oversized body, a route matched without its method).
    pub fn for_bare_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                ApiError::NotFound("no such resource or method".to_string())
            }
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::SERVICE_UNAVAILABLE => {
                ApiError::Unavailable("the service is overloaded".to_string())
            }
            status if status.is_client_error() => {
                ApiError::InvalidRequest(format!("the request was refused: {status}"))
            }
            status => ApiError::Internal(format!("a layer answered {status} without a body")),
        }
    }
}
