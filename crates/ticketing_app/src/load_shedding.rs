//! A bound on the requests in flight in this instance: past it, answer 503 at once rather than
//! let a queue of slow requests grow until everyone times out.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError;
use tokio::sync::Semaphore;

use crate::problem::ApiError;

/// Paths that must answer even when the instance is saturated: probes and metrics.
const EXEMPT: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The permits for requests in flight.
#[derive(Debug, Clone)]
pub struct InFlightLimit {
    permits: Arc<Semaphore>,
}

impl InFlightLimit {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }

    /// The middleware: one permit per request, held until its answer is ready.
    pub async fn enforce(
        self,
        request: ServiceRequest,
        next: Next<impl MessageBody>,
    ) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
        if EXEMPT.contains(&request.path()) {
            return next
                .call(request)
                .await
                .map(ServiceResponse::map_into_left_body);
        }
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            metrics::counter!("http_requests_shed_total").increment(1);
            let problem = ApiError::Unavailable("too many requests in flight".into());
            return Ok(request
                .into_response(problem.error_response())
                .map_into_right_body());
        };
        next.call(request)
            .await
            .map(ServiceResponse::map_into_left_body)
    }
}
