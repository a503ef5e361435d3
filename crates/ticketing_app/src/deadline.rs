//! A deadline on every request (`APP__SERVER__REQUEST_DEADLINE_MS`): past it the request is
//! answered 503 `UNAVAILABLE` with `Retry-After` and its work is dropped.
//!
//! The limits below it do not cover everything: PostgreSQL's `statement_timeout` is switched off
//! before a `COMMIT` waits for its synchronous standby, so with that standby gone a hold waited
//! 420 s for its answer (issue #26). Dropping the work drops its connection mid-transaction,
//! which the pool discards; whether the commit happened is then unknown to the client, so it is
//! told 503 (never a success), and a retry with the same `Idempotency-Key` learns the outcome.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::problem::ApiError;

/// The longest any one request may take; `None` (a setting of 0) for no deadline.
#[derive(Debug, Clone, Copy)]
pub struct RequestDeadline(Option<Duration>);

impl RequestDeadline {
    pub fn from_millis(ms: u64) -> Self {
        Self((ms > 0).then(|| Duration::from_millis(ms)))
    }

    /// The middleware: the rest of the chain within the deadline, or a 503.
    pub async fn enforce(
        self,
        request: ServiceRequest,
        next: Next<impl MessageBody>,
    ) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
        let Some(limit) = self.0 else {
            return next.call(request).await;
        };
        match tokio::time::timeout(limit, next.call(request)).await {
            Ok(answered) => answered,
            // An error, not a response: a response needs the request, which the dropped work
            // owned (actix-web allows no second handle on it while the handler runs). actix-web
            // answers the error with its `error_response`: the 503 problem with Retry-After.
            Err(_) => {
                metrics::counter!("http_requests_past_deadline_total").increment(1);
                Err(ApiError::Unavailable(format!(
                    "no answer within the request deadline of {} ms",
                    limit.as_millis()
                ))
                .into())
            }
        }
    }
}
