//! Handler tests on use cases whose ports are the domain's mocks (feature `mock`): what the HTTP
//! layer answers for each outcome a port can report, including the failures a real store is
//! hard to drive into on demand. No PostgreSQL or Redis; a mock with no expectation set panics
//! if a handler touches it.

use std::io::Write;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{test, web, App};
use async_trait::async_trait;
use serde_json::{json, Value};
use ticketing_domain::access::{OwnerCheck, TokenBinding};
use ticketing_domain::catalog::{CatalogService, MockConcertCatalog};
use ticketing_domain::clock::MockClock;
use ticketing_domain::events::{EventRelay, MockEventOutbox, MockEventPublisher};
use ticketing_domain::idempotency::{IdempotencyConflict, MockOutcomeRetention};
use ticketing_domain::ids::{ReservationId, UserId};
use ticketing_domain::money::Won;
use ticketing_domain::payment::{
    LedgerAnswer, LedgerError, MockPaymentLedger, PaymentRefusal, PaymentRequest, PaymentService,
};
use ticketing_domain::queue::{
    LineOperator, MockQueueControls, MockWaitingQueue, QueueError, QueueService, Ticket,
    TicketState,
};
use ticketing_domain::refund::{
    MockRefundLedger, RefundAnswer, RefundRefusal, RefundRequest, RefundService,
};
use ticketing_domain::reservation::{
    HoldError, HoldRequest, MockSeatInventory, ReservationService,
};
use ticketing_domain::taken_seats::TakenSeats;
use ticketing_domain::wallet::{MockWallet, WalletError, WalletService};
use ticketing_domain::InfrastructureError;

use crate::settings::Settings;
use crate::state::{AppState, Dependencies, DependencyHealth, PoolFigures, Services};

/// The ports a test sets expectations on; the others stay untouched.
#[derive(Default)]
struct Ports {
    /// The line that judges queue tokens.
    line: MockWaitingQueue,
    /// Read by the seat memory before a hold.
    catalog: MockConcertCatalog,
    inventory: MockSeatInventory,
    wallet: MockWallet,
    payments: MockPaymentLedger,
    refunds: MockRefundLedger,
}

/// No stores: the use cases' ports are mocks.
struct NoStores;

#[async_trait]
impl Dependencies for NoStores {
    async fn probe(&self, _timeout: Duration) -> Vec<DependencyHealth> {
        Vec::new()
    }

    fn pools(&self) -> Vec<PoolFigures> {
        Vec::new()
    }
}

/// The built-in defaults, whatever `./config` or the environment of the test run hold.
fn settings() -> Settings {
    Settings::load_from([("APP_CONFIG_DIR".to_string(), "/nonexistent".to_string())])
        .expect("the built-in defaults load")
}

fn state(ports: Ports) -> AppState {
    let settings = settings();
    let policy = settings.queue_policy().expect("default queue policy");
    let keys = || settings.token_keys().expect("default signing key");
    let mut clock = MockClock::new();
    clock.expect_now().returning(chrono::Utc::now);
    let seeds =
        ticketing_domain::queue::FixedSeed(ticketing_domain::queue::DrawSeed::from_bytes([0; 32]));
    let queue = QueueService::new(
        Arc::new(ports.line),
        keys(),
        policy,
        Arc::new(clock),
        Arc::new(seeds),
    );
    let binding = TokenBinding::new(settings.security.require_bound_tokens);
    let owner = OwnerCheck::new(binding, queue.clone(), keys());
    let services = Services {
        catalog: CatalogService::new(Arc::new(ports.catalog)),
        operator: LineOperator::new(Arc::new(MockQueueControls::new()), queue.clone()),
        rooms: ticketing_domain::rooms::RoomService::new(
            Arc::new(ticketing_domain::rooms::MockRoomRepository::new()),
            Arc::new(ticketing_domain::rooms::MockRoomLines::new()),
            queue.clone(),
            Arc::new(MockQueueControls::new()),
        ),
        reservations: ReservationService::new(
            Arc::new(ports.inventory),
            settings.hold_rules().expect("default hold rules"),
            owner.clone(),
        ),
        wallet: WalletService::new(Arc::new(ports.wallet)),
        payments: PaymentService::new(Arc::new(ports.payments), queue.clone(), binding),
        refunds: RefundService::new(Arc::new(ports.refunds), owner),
        outcome_retention: Arc::new(MockOutcomeRetention::new()),
        events: EventRelay::new(
            Arc::new(MockEventOutbox::new()),
            Arc::new(MockEventPublisher::new()),
            NonZeroU32::MIN,
        ),
        queue,
    };
    AppState::from_services(services, Arc::new(NoStores), &settings).expect("the state builds")
}

/// Sends `request` to the routes of the real service over `ports`; the status, headers and body.
async fn answer(
    ports: Ports,
    request: test::TestRequest,
) -> (StatusCode, header::HeaderMap, Value) {
    let app = test::init_service(
        App::new()
            .wrap(
                actix_web::middleware::ErrorHandlers::new()
                    .default_handler(super::problem_for_bare_errors),
            )
            .app_data(web::Data::new(state(ports)))
            .configure(super::configure(64 * 1024, false)),
    )
    .await;
    let response = test::call_service(&app, request.to_request()).await;
    let (status, headers) = (response.status(), response.headers().clone());
    let body = test::read_body(response).await;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, headers, body)
}

fn is_problem(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == b"application/problem+json")
}

fn balance_failing_with(error: InfrastructureError) -> Ports {
    let mut ports = Ports::default();
    ports
        .wallet
        .expect_balance()
        .return_once(move |_| Err(WalletError::Infrastructure(error)));
    ports
}

/// A store that cannot be reached, with a detail a client must never see.
fn store_down() -> InfrastructureError {
    InfrastructureError::unavailable(refused_connection())
}

/// A driver error with a detail a client must never see.
fn refused_connection() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "db-internal-7.example:5432 refused the connection",
    )
}

#[actix_web::test]
async fn a_balance_is_read_from_the_wallet() {
    let mut ports = Ports::default();
    ports
        .wallet
        .expect_balance()
        .withf(|user| *user == UserId::new(7).expect("a valid id"))
        .return_once(|_| Ok(Won::new(1500).expect("a valid amount")));

    let (status, _, body) =
        answer(ports, test::TestRequest::get().uri("/api/users/7/balance")).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "userId": 7, "balance": 1500 }));
}

#[actix_web::test]
async fn an_unavailable_store_is_a_503_to_retry_without_its_detail() {
    let ports = balance_failing_with(store_down());

    let (status, headers, body) =
        answer(ports, test::TestRequest::get().uri("/api/users/7/balance")).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(is_problem(&headers), "{headers:?}");
    assert_eq!(
        headers.get(header::RETRY_AFTER).map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert_eq!(body["code"], "UNAVAILABLE");
    assert_eq!(body["status"], 503);
    assert!(!body.to_string().contains("db-internal-7"), "{body}");
}

/// Collects what the handlers log, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut written) = self.0.lock() {
            written.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|written| String::from_utf8_lossy(&written).into_owned())
            .unwrap_or_default()
    }
}

#[actix_web::test]
async fn an_unexpected_failure_is_a_500_that_logs_its_causes_and_tells_the_client_none() {
    let ports = balance_failing_with(InfrastructureError::unexpected(refused_connection()));
    let log = Captured::default();
    // actix's test runtime runs the handler on this thread.
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_ansi(false)
            .finish(),
    );

    let (status, headers, body) =
        answer(ports, test::TestRequest::get().uri("/api/users/7/balance")).await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(is_problem(&headers), "{headers:?}");
    assert_eq!(body["code"], "INTERNAL");
    assert_eq!(body["detail"], "an unexpected error occurred");
    assert!(!body.to_string().contains("db-internal-7"), "{body}");
    let log = log.text();
    assert!(
        log.contains(
            "unexpected infrastructure failure: db-internal-7.example:5432 refused the connection"
        ),
        "the log keeps the cause: {log}"
    );
}

#[actix_web::test]
async fn an_unknown_user_is_a_404_not_found() {
    let mut ports = Ports::default();
    ports
        .wallet
        .expect_balance()
        .return_once(|user| Err(WalletError::UserNotFound(user)));

    let (status, headers, body) =
        answer(ports, test::TestRequest::get().uri("/api/users/7/balance")).await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(is_problem(&headers));
    assert_eq!(body["code"], "NOT_FOUND");
}

#[actix_web::test]
async fn a_refund_the_ledger_refuses_is_a_409_reservation_not_refundable() {
    let mut ports = Ports::default();
    let reservation = ReservationId::new(9).expect("a valid id");
    ports
        .refunds
        .expect_refund()
        .withf(move |request: &RefundRequest, key| {
            request.reservation == reservation && key.is_none()
        })
        .return_once(move |_, _| {
            Ok(RefundAnswer {
                outcome: Err(RefundRefusal::NotRefundable(reservation)),
                replayed: false,
            })
        });

    let (status, headers, body) = answer(
        ports,
        test::TestRequest::post()
            .uri("/api/reservations/9/refund")
            .set_json(json!({ "userId": 7 })),
    )
    .await;

    assert_eq!(status, StatusCode::CONFLICT);
    assert!(is_problem(&headers));
    assert_eq!(body["code"], "RESERVATION_NOT_REFUNDABLE");
    assert_eq!(body["status"], 409);
}

#[actix_web::test]
async fn a_charge_under_a_key_used_for_another_request_is_a_409_idempotency_conflict() {
    let mut ports = Ports::default();
    ports
        .wallet
        .expect_charge()
        .withf(|_, _, key| key.is_some())
        .return_once(|_, _, _| Err(IdempotencyConflict::DifferentRequest.into()));

    let (status, headers, body) = answer(
        ports,
        test::TestRequest::post()
            .uri("/api/users/7/balance/charge")
            .insert_header(("Idempotency-Key", "charge-1"))
            .set_json(json!({ "amount": 1000 })),
    )
    .await;

    assert_eq!(status, StatusCode::CONFLICT);
    assert!(is_problem(&headers));
    assert_eq!(body["code"], "IDEMPOTENCY_CONFLICT");
}

#[actix_web::test]
async fn readiness_of_a_state_without_stores_is_ready() {
    let (status, _, body) = answer(Ports::default(), test::TestRequest::get().uri("/readyz")).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "status": "ready" }));
}

// --- Holds and payments: a token the line judges, then the store's answer -------------------

/// The token of user 7, sealed with the default keys the state's queue opens tokens with.
fn token_of_user_7() -> String {
    let keys = settings().token_keys().expect("default signing key");
    keys.seal(&Ticket {
        epoch: 1,
        seq: 1,
        user: Some(UserId::new(7).expect("a valid id")),
    })
    .as_str()
    .to_string()
}

/// Ports whose line judges every token ACTIVE and whose seat memory remembers no seat taken.
fn admitted() -> Ports {
    let mut ports = Ports::default();
    ports.line.expect_lookup().returning(|_, _| {
        Ok(Some(TicketState::Active {
            until: chrono::Utc::now() + chrono::Duration::minutes(10),
        }))
    });
    ports.line.expect_revoke().returning(|_| Ok(true));
    ports
        .catalog
        .expect_taken_seats()
        .returning(|_, _| Ok(TakenSeats::new(chrono::Utc::now(), [])));
    ports
}

fn hold_of_seat_3() -> test::TestRequest {
    test::TestRequest::post()
        .uri("/api/reservations")
        .insert_header(("Queue-Token", token_of_user_7()))
        .set_json(json!({ "userId": 7, "concertId": 1, "performanceId": 119, "seatId": 3 }))
}

fn payment_of_reservation_9() -> test::TestRequest {
    test::TestRequest::post()
        .uri("/api/payments")
        .insert_header(("Queue-Token", token_of_user_7()))
        .set_json(json!({ "reservationId": 9, "userId": 7 }))
}

fn assert_unavailable(status: StatusCode, headers: &header::HeaderMap, body: &Value) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(is_problem(headers), "{headers:?}");
    assert!(headers.contains_key(header::RETRY_AFTER), "{headers:?}");
    assert_eq!(body["code"], "UNAVAILABLE");
    assert!(!body.to_string().contains("db-internal-7"), "{body}");
}

#[actix_web::test]
async fn a_hold_of_a_seat_the_store_finds_taken_is_a_409_seat_unavailable() {
    let mut ports = admitted();
    ports
        .inventory
        .expect_hold()
        .withf(|request: &HoldRequest, _, _| request.user == UserId::new(7).expect("a valid id"))
        .return_once(|request, _, _| {
            Err(HoldError::SeatUnavailable {
                performance: request.performance,
                seats: request.seats.seats().to_vec(),
            })
        });

    let (status, headers, body) = answer(ports, hold_of_seat_3()).await;

    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(is_problem(&headers));
    assert_eq!(body["code"], "SEAT_UNAVAILABLE");
}

#[actix_web::test]
async fn a_hold_while_the_database_is_down_is_a_503_to_retry() {
    let mut ports = admitted();
    ports
        .inventory
        .expect_hold()
        .return_once(|_, _, _| Err(HoldError::Infrastructure(store_down())));

    let (status, headers, body) = answer(ports, hold_of_seat_3()).await;

    assert_unavailable(status, &headers, &body);
}

#[actix_web::test]
async fn a_token_the_line_cannot_judge_while_redis_is_down_is_a_503_and_holds_nothing() {
    let mut ports = Ports::default();
    ports
        .line
        .expect_lookup()
        .returning(|_, _| Err(QueueError::Infrastructure(store_down())));
    // The inventory has no expectation: a hold reaching it panics.

    let (status, headers, body) = answer(ports, hold_of_seat_3()).await;

    assert_unavailable(status, &headers, &body);
}

#[actix_web::test]
async fn a_payment_the_balance_does_not_cover_is_a_422_insufficient_balance() {
    let mut ports = admitted();
    ports
        .payments
        .expect_pay()
        .withf(|request: &PaymentRequest, key| {
            request.user == UserId::new(7).expect("a valid id") && key.is_none()
        })
        .return_once(|_, _| {
            Ok(LedgerAnswer {
                outcome: Err(PaymentRefusal::InsufficientBalance {
                    price: Won::new(150_000).expect("a valid amount"),
                }),
                replayed: false,
            })
        });

    let (status, headers, body) = answer(ports, payment_of_reservation_9()).await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(is_problem(&headers));
    assert_eq!(body["code"], "INSUFFICIENT_BALANCE");
}

#[actix_web::test]
async fn a_payment_while_the_database_is_down_is_a_503_to_retry() {
    let mut ports = admitted();
    ports
        .payments
        .expect_pay()
        .return_once(|_, _| Err(LedgerError::Infrastructure(store_down())));

    let (status, headers, body) = answer(ports, payment_of_reservation_9()).await;

    assert_unavailable(status, &headers, &body);
}
