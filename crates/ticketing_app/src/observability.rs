//! The operator's view: Prometheus metrics of requests, the queue, holds, payments and pools.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use metrics::{counter, gauge, histogram, Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use ticketing_domain::queue::AdmissionReport;
use ticketing_domain::rooms::{GateError, Passage, RoomError, RoomId};
use tracing::Instrument;

use crate::problem::ApiError;
use crate::state::{AppState, PoolFigures};

const REQUEST_DURATION: &str = "http_request_duration_seconds";

/// The process-wide recorder; installed once, shared by every server the process builds.
fn recorder() -> &'static Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        match PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_string()), &buckets)
            .and_then(|builder| builder.install_recorder())
        {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::error!(%error, "metrics recorder not installed; /metrics will be empty");
                None
            }
        }
    })
}

/// Installs the recorder; call before serving.
pub fn init() {
    let _ = recorder();
}

/// Folds the recorded histogram samples into their buckets; without it they pile up in memory
/// until the next scrape. Run every few seconds.
pub fn upkeep() {
    if let Some(handle) = recorder() {
        handle.run_upkeep();
    }
}

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The caller's `X-Request-Id` when it is a sane one, else a new one.
fn request_id(request: &ServiceRequest) -> String {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

/// Gives every request an id (echoed in `X-Request-Id`, carried by every log line of the
/// request), logs its outcome, and counts and times it by method, route pattern (not raw path,
/// so ids do not explode the series) and status.
pub async fn record_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = request.method().to_string();
    let id = request_id(&request);
    let span =
        tracing::info_span!("request", request_id = %id, method = %method, path = %request.path());
    let mut outcome = next.call(request).instrument(span.clone()).await;
    let (route, status) = match &mut outcome {
        Ok(response) => {
            if let Ok(value) = HeaderValue::from_str(&id) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            (
                response
                    .request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_string()),
                response.status().as_u16(),
            )
        }
        // Middlewares of this service answer refusals as responses; an error here is rare.
        Err(error) => (
            "unmatched".to_string(),
            error.as_response_error().status_code().as_u16(),
        ),
    };
    let elapsed = started.elapsed();
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(
                status,
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "request failed"
            );
        } else {
            tracing::debug!(
                status,
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "request served"
            );
        }
    });
    let (requests, durations) = request_series(method, route, status);
    requests.increment(1);
    durations.record(elapsed.as_secs_f64());
    outcome
}

type SeriesKey = (String, String, u16);

/// The counter and histogram of one (method, route, status), registered once: looking a series
/// up by its labels on every request cost a visible share of the tail latency.
fn request_series(method: String, route: String, status: u16) -> (Counter, Histogram) {
    static SERIES: OnceLock<RwLock<HashMap<SeriesKey, (Counter, Histogram)>>> = OnceLock::new();
    let series = SERIES.get_or_init(RwLock::default);
    let key = (method, route, status);
    if let Some(found) = series
        .read()
        .ok()
        .and_then(|known| known.get(&key).cloned())
    {
        return found;
    }
    let labels = [
        ("method", key.0.clone()),
        ("route", key.1.clone()),
        ("status", status.to_string()),
    ];
    let handles = (
        counter!("http_requests_total", &labels),
        histogram!(REQUEST_DURATION, &labels),
    );
    if let Ok(mut known) = series.write() {
        known.insert(key, handles.clone());
    }
    handles
}

/// After each admission step of `room`'s line: sizes of the line and of the active set, and
/// what it did. Alert when `queue_waiting > 0` and `increase(queue_admitted_total[1m]) == 0` in a
/// room: its line stalls.
pub fn admission_step(room: &RoomId, report: &AdmissionReport) {
    let room = room.to_string();
    counter!("queue_admission_steps_total", "outcome" => "ok", "room" => room.clone()).increment(1);
    counter!("queue_admitted_total", "room" => room.clone()).increment(u64::from(report.admitted));
    counter!("queue_expired_total", "room" => room.clone()).increment(u64::from(report.expired));
    counter!("queue_dropped_idle_total", "room" => room.clone())
        .increment(u64::from(report.dropped_idle));
    gauge!("queue_admitted_last_step", "room" => room.clone()).set(f64::from(report.admitted));
    gauge!("queue_waiting", "room" => room.clone()).set(report.waiting as f64);
    gauge!("queue_active", "room" => room).set(report.active as f64);
}

/// The live settings this instance follows for `room`, as gauges: an operator sees a pause or a
/// scheduled opening on the dashboard, and the stall alert does not fire for them.
pub fn queue_settings(
    room: &RoomId,
    settings: &ticketing_domain::queue::LineSettings,
    now: chrono::DateTime<chrono::Utc>,
) {
    let room = room.to_string();
    gauge!("queue_paused", "room" => room.clone()).set(if settings.paused { 1.0 } else { 0.0 });
    gauge!("queue_admit_per_second_setting", "room" => room.clone())
        .set(f64::from(settings.admit_per_second.get()));
    gauge!("queue_max_active_setting", "room" => room.clone())
        .set(f64::from(settings.max_active.get()));
    let until_opening = settings.opens_at.map_or(0.0, |at| {
        (at - now).num_milliseconds().max(0) as f64 / 1000.0
    });
    gauge!("queue_seconds_until_opening", "room" => room).set(until_opening);
}

/// A room was deleted: its gauges read 0, so that no alert fires on its last values.
pub fn room_gone(room: &RoomId) {
    let room = room.to_string();
    for name in [
        "queue_waiting",
        "queue_active",
        "queue_admitted_last_step",
        "queue_paused",
        "queue_seconds_until_opening",
    ] {
        gauge!(name, "room" => room.clone()).set(0.0);
    }
}

/// Times this instance found `room`'s line gone from Redis (flushed, or a Redis without its
/// data): every token of the old line is dead, people must enter again.
pub fn lines_lost(room: &RoomId, newly: u64) {
    counter!("queue_line_lost_total", "room" => room.to_string()).increment(newly);
}

/// Whether a dependency answered its last probe (1) or not (0).
pub fn dependency_up(dependency: &'static str, up: bool) {
    gauge!("dependency_up", "dependency" => dependency).set(if up { 1.0 } else { 0.0 });
}

/// An entry admitted straight in: an admission like those of the steps.
/// Counts a challenge handed out by `GET /api/rooms/{roomId}/challenge`.
pub fn challenge_issued(room: &RoomId) {
    counter!("queue_challenges_total", "room" => room.to_string(), "outcome" => "issued")
        .increment(1);
}

/// Counts how an entry fared at its room's gate against bots: `passed`, `required` (no proof),
/// `failed` (a proof that does not solve a good challenge of the room) or `replayed` (a proof
/// used already). Entries of rooms asking for no proof are not counted. Alert on a surge of
/// `failed` and `replayed`: someone is forging or replaying proofs.
pub fn gate_passage(room: &RoomId, passage: &Result<Passage, RoomError>) {
    let outcome = match passage {
        Ok(Passage::Open) => return,
        Ok(Passage::Proven) => "passed",
        Err(RoomError::Gate(GateError::Required(_))) => "required",
        Err(RoomError::Gate(GateError::Refused(refused))) => refused.outcome(),
        Err(_) => return,
    };
    counter!("queue_challenges_total", "room" => room.to_string(), "outcome" => outcome)
        .increment(1);
}

pub fn admitted_at_entry(room: &RoomId) {
    counter!("queue_admitted_total", "room" => room.to_string()).increment(1);
}

pub fn admission_step_failed(room: &RoomId) {
    counter!("queue_admission_steps_total", "outcome" => "error", "room" => room.to_string())
        .increment(1);
}

/// The use cases whose attempts are counted by outcome: the success's name, or the contract code
/// of the refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempts {
    /// `holds_total`: `held`, or the refusal's code.
    Holds,
    /// `payments_total`: `paid`, `replayed`, or the refusal's code.
    Payments,
}

impl Attempts {
    fn count(self, outcome: &'static str) {
        let name = match self {
            Attempts::Holds => "holds_total",
            Attempts::Payments => "payments_total",
        };
        counter!(name, "outcome" => outcome).increment(1);
    }

    /// Counts a success under `outcome`.
    pub fn succeeded(self, outcome: &'static str) {
        self.count(outcome);
    }

    /// The use case's result with its error as the HTTP answer, a refusal counted under that
    /// answer's contract code: the one place where a failed attempt becomes a metric label, so
    /// the label is always the `code` the client saw.
    ///
    /// # Errors
    /// The answer to the use case's error.
    pub fn answer<T, E: Into<ApiError>>(self, result: Result<T, E>) -> Result<T, ApiError> {
        result.map_err(|error| {
            let problem = error.into();
            self.count(problem.code());
            problem
        })
    }
}

fn pool_gauges(pool: &PoolFigures) {
    let name = pool.name;
    gauge!("pool_connections", "pool" => name).set(pool.size as f64);
    gauge!("pool_connections_idle", "pool" => name).set(pool.available as f64);
    gauge!("pool_waiting_requests", "pool" => name).set(pool.waiting as f64);
    gauge!("pool_max_connections", "pool" => name).set(pool.max_size as f64);
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    for pool in state.dependencies.pools() {
        pool_gauges(&pool);
    }
    let body = recorder()
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
