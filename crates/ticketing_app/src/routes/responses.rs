//! The problem answers several endpoints share, described once for the OpenAPI document: an
//! endpoint lists the ones it gives (`responses((status = 200, ...), TokenRequired,
//! Unavailable)`), next to its own answers. These types only describe; the answers are made by
//! [`ApiError`](crate::problem::ApiError), so they are never built (hence `dead_code`).
#![allow(dead_code)]

use utoipa::IntoResponses;

use crate::problem::Problem;

/// Declares a response set of one `application/problem+json` answer.
macro_rules! problem_response {
    ($(#[doc = $doc:literal])* $name:ident, $status:literal, $description:literal) => {
        $(#[doc = $doc])*
        #[derive(IntoResponses)]
        #[response(
            status = $status,
            description = $description,
            content_type = "application/problem+json"
        )]
        pub(crate) struct $name(Problem<'static>);
    };
}

problem_response!(
    /// A malformed id, query, header or body, when the endpoint has nothing more to say about it.
    InvalidRequest,
    400,
    "INVALID_REQUEST"
);

problem_response!(
    /// The `Queue-Token` header is missing or holds no live token.
    TokenRequired,
    401,
    "TOKEN_MISSING or TOKEN_INVALID"
);

problem_response!(
    /// The token is live but still waiting.
    TokenNotActive,
    403,
    "TOKEN_NOT_ACTIVE"
);

problem_response!(
    /// The token is waiting, or of a room that does not cover the performance.
    TokenNotActiveHere,
    403,
    "TOKEN_NOT_ACTIVE, or TOKEN_WRONG_ROOM: the token's room does not cover this performance"
);

problem_response!(
    /// The token is waiting, or bound to another user than the one the request acts for.
    TokenNotAllowed,
    403,
    "TOKEN_NOT_ACTIVE or TOKEN_USER_MISMATCH"
);

problem_response!(
    /// With identity on (`APP__AUTH__*`), a request without good credentials.
    CallerRequired,
    401,
    "AUTH_REQUIRED or AUTH_INVALID: only with identity on; with WWW-Authenticate: Bearer"
);

problem_response!(
    /// With identity on, a request naming another user than the caller.
    UserMismatch,
    403,
    "USER_MISMATCH: only with identity on, for another user than the caller"
);

problem_response!(
    /// A queue-protected endpoint: no live token, or (identity on) no good credentials.
    TokenOrCallerRequired,
    401,
    "TOKEN_MISSING or TOKEN_INVALID; with identity on also AUTH_REQUIRED or AUTH_INVALID (WWW-Authenticate: Bearer)"
);

problem_response!(
    /// The token is waiting, bound to another user, or of a room that does not cover the
    /// performance; or (identity on) the request names another user than the caller.
    TokenOrUserNotAllowedHere,
    403,
    "TOKEN_NOT_ACTIVE, TOKEN_USER_MISMATCH, TOKEN_WRONG_ROOM (the token's room does not cover this performance), or USER_MISMATCH (identity on: another user than the caller)"
);

problem_response!(
    /// An endpoint without a queue token: one only when bound tokens are required, credentials
    /// with identity on.
    BoundTokenOrCallerRequired,
    401,
    "TOKEN_MISSING or TOKEN_INVALID: only with APP__SECURITY__REQUIRE_BOUND_TOKENS; AUTH_REQUIRED or AUTH_INVALID: only with identity on"
);

problem_response!(
    /// An endpoint without a queue token: a token of another user when bound tokens are
    /// required, another user than the caller with identity on.
    BoundTokenOrUserMismatch,
    403,
    "TOKEN_USER_MISMATCH: only with APP__SECURITY__REQUIRE_BOUND_TOKENS; USER_MISMATCH: only with identity on"
);

problem_response!(
    /// What the request names does not exist.
    NotFound,
    404,
    "NOT_FOUND"
);

problem_response!(
    /// A missing or wrong `Authorization: Bearer` on the admin API.
    AdminUnauthorized,
    401,
    "ADMIN_UNAUTHORIZED"
);

problem_response!(
    /// Without `APP__ADMIN__TOKEN` the admin API is not registered: every admin path is unknown.
    AdminApiOff,
    404,
    "NOT_FOUND: the admin API is off"
);

/// A dependency is down or overloaded, or the instance sheds load; every 503 says when to retry.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "UNAVAILABLE, with Retry-After",
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
)]
pub(crate) struct Unavailable(Problem<'static>);
