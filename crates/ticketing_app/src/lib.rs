#![doc = include_str!("../README.md")]

mod account_memory;
pub mod admin_cli;
mod catalog_cache;
pub mod cli;
mod deadline;
pub mod events_cli;
mod jobs;
mod load_shedding;
pub mod logging;
mod observability;
pub mod problem;
mod routes;
mod seat_memory;
pub mod settings;
pub mod startup_checks;
mod state;
pub mod verify_draw_cli;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use ticketing_domain::clock::Clock;
use ticketing_postgres::pool::build_pool;
use ticketing_redis::RedisPool;

use crate::jobs::BackgroundJobs;
use crate::state::SystemClock;

pub use settings::Settings;
pub use state::AppState;

/// A server bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    schedule: jobs::Schedule,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Builds the pools and the HTTP server and binds the listen address (port 0 picks a free
    /// port). Does not migrate: see [`cli::serve`].
    ///
    /// # Errors
    /// When the address cannot be bound or a pool cannot be built.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with the clock the queue tells time by: this instance's view
    /// of the line judges by it which tokens are still ACTIVE, whether a WAITING one was polled
    /// within the idle timeout, and the waits it estimates. Holds still lapse by PostgreSQL's
    /// `now()` and the line's state by Redis's `TIME`, whatever `clock` says: whoever moves
    /// `clock` moves what those stores hold with it (as the tests' `TestApp::pass` does).
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_with_clock(
        settings: &Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        observability::init();
        let postgres = build_pool(&settings.postgres()).context("building the PostgreSQL pool")?;
        let redis = RedisPool::new(&settings.redis()).context("building the Redis pool")?;
        let app_state = AppState::new(postgres, redis, settings, clock)?;
        // So that the rooms' tokens are judged from the first request on; the background job
        // keeps trying if the database does not answer yet.
        if let Err(error) = app_state.services.rooms.refresh().await {
            tracing::warn!(error = %ticketing_domain::error::ErrorChain(&error), "reading the rooms failed; retrying in the background");
        }
        let state = web::Data::new(app_state.clone());
        let page_sign_in = web::Data::new(settings.page_sign_in());

        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address).with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        let max_body_bytes = settings.server.max_body_bytes;
        let admin_enabled = app_state.admin_token.is_some();
        let in_flight = load_shedding::InFlightLimit::new(settings.server.max_in_flight);
        let deadline = deadline::RequestDeadline::from_millis(settings.server.request_deadline_ms);
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(
                    actix_web::middleware::ErrorHandlers::new()
                        .default_handler(routes::problem_for_bare_errors),
                )
                .wrap(actix_web::middleware::from_fn(
                    routes::body::json_bodies_only,
                ))
                // Before a body is judged: a wrong path or method is that, whatever the body.
                .wrap(actix_web::middleware::from_fn(routes::refuse_unknown_paths))
                .wrap(actix_web::middleware::from_fn(move |request, next| {
                    deadline.enforce(request, next)
                }))
                .wrap({
                    let limit = in_flight.clone();
                    actix_web::middleware::from_fn(move |request, next| {
                        limit.clone().enforce(request, next)
                    })
                })
                // Outermost: shed and refused requests are counted too.
                .wrap(actix_web::middleware::from_fn(
                    observability::record_request,
                ))
                .app_data(state.clone())
                .app_data(page_sign_in.clone())
                .configure(routes::configure(max_body_bytes, admin_enabled))
        });
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        // actix-web's own default is 5 s: a client (or load balancer) reusing a connection idle
        // for about that long could send just as the server closed it, and see no answer.
        server = server.keep_alive(settings.keep_alive());
        // Stop signals are handled in `run_until_stopped`, so the background jobs stop before
        // the workers (whose runtimes drive some pooled Redis connections) go away.
        let server = server.listen(listener)?.disable_signals().run();
        Ok(Self {
            port,
            server,
            state: app_state,
            schedule: jobs::Schedule {
                admission: Duration::from_millis(settings.queue.admission_interval_ms),
                hold_expiry: Duration::from_millis(settings.reservation.expiry_sweep_interval_ms),
                outcome_cleanup: Duration::from_secs(settings.idempotency.cleanup_interval_seconds),
                outcome_retention: settings.idempotency_retention(),
                event_relay: Duration::from_millis(settings.events.relay_interval_ms),
                event_retention: settings.event_retention(),
            },
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves, and runs the background jobs, until the process is told to stop (SIGINT or
    /// SIGTERM): the jobs stop first, then the server stops accepting and finishes the requests
    /// in flight.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let mut jobs = BackgroundJobs::start(&self.state, self.schedule);
        let handle = self.server.handle();
        let mut server = std::pin::pin!(self.server);
        tokio::select! {
            outcome = &mut server => {
                jobs.stop();
                outcome
            }
            () = stop_requested() => {
                jobs.stop();
                // The server future carries out the stop, so it is polled alongside.
                let ((), outcome) = tokio::join!(handle.stop(true), server);
                outcome
            }
        }
    }
}

/// Resolves at SIGINT or SIGTERM (or never, where they cannot be listened to).
async fn stop_requested() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
