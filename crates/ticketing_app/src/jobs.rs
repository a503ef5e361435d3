//! Background jobs every instance runs; each is safe to run on any number of instances at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ticketing_domain::error::ErrorChain;
use ticketing_domain::rooms::RoomId;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::state::AppState;

/// How often each job runs.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub admission: Duration,
    pub hold_expiry: Duration,
    pub outcome_cleanup: Duration,
    pub outcome_retention: Duration,
    pub event_relay: Duration,
    pub event_retention: Duration,
}

/// The jobs of one instance; aborted when dropped or stopped.
#[derive(Debug, Default)]
pub struct BackgroundJobs {
    handles: Vec<JoinHandle<()>>,
}

impl BackgroundJobs {
    /// Starts every job on the current runtime.
    pub fn start(state: &AppState, schedule: Schedule) -> Self {
        Self {
            handles: vec![
                tokio::spawn(admit_in_every_room(state.clone(), schedule.admission)),
                tokio::spawn(follow_the_rooms(state.clone())),
                tokio::spawn(release_lapsed_holds(state.clone(), schedule.hold_expiry)),
                tokio::spawn(metrics_upkeep()),
                tokio::spawn(probe_dependencies(state.clone())),
                tokio::spawn(forget_old_outcomes(
                    state.clone(),
                    schedule.outcome_cleanup,
                    schedule.outcome_retention,
                )),
                tokio::spawn(relay_events(
                    state.clone(),
                    schedule.event_relay,
                    schedule.event_retention,
                )),
            ],
        }
    }

    /// Stops every job.
    pub fn stop(&mut self) {
        for handle in self.handles.drain(..) {
            handle.abort();
        }
    }
}

impl Drop for BackgroundJobs {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ticker(interval: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// Marks lapsed holds EXPIRED and frees their seats, so listings and reports stay tidy; holds
/// and payments already treat a lapsed hold as free without it.
async fn release_lapsed_holds(state: AppState, interval: Duration) {
    let mut ticker = ticker(interval);
    loop {
        ticker.tick().await;
        match state.services.reservations.release_expired_holds().await {
            Ok(0) => {}
            Ok(released) => tracing::debug!(released, "released lapsed holds"),
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "releasing lapsed holds failed; retrying next tick")
            }
        }
    }
}

/// Keeps the metrics recorder's memory bounded between scrapes.
async fn metrics_upkeep() {
    let mut ticker = ticker(Duration::from_secs(5));
    loop {
        ticker.tick().await;
        crate::observability::upkeep();
    }
}

/// Pings PostgreSQL and Redis every few seconds for the `dependency_up` gauges, so an alert
/// fires on an unreachable store even while no request needs it.
async fn probe_dependencies(state: AppState) {
    const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
    let mut ticker = ticker(Duration::from_secs(5));
    loop {
        ticker.tick().await;
        for dependency in state.dependencies.probe(PROBE_TIMEOUT).await {
            crate::observability::dependency_up(dependency.name, dependency.up);
        }
    }
}

/// Forgets `Idempotency-Key` outcomes past their retention.
async fn forget_old_outcomes(state: AppState, interval: Duration, retention: Duration) {
    let mut ticker = ticker(interval);
    loop {
        ticker.tick().await;
        match state
            .services
            .outcome_retention
            .forget_older_than(retention)
            .await
        {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, "forgot old idempotency outcomes"),
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "forgetting old idempotency outcomes failed")
            }
        }
    }
}

/// Publishes the outbox's unsent events to the Redis stream, oldest first; every instance runs
/// it, and each event is claimed by one relay at a time (`FOR UPDATE SKIP LOCKED`). While Redis
/// is away the events wait in PostgreSQL and go out once it is back. Now and then, sent events
/// past their retention are forgotten.
async fn relay_events(state: AppState, interval: Duration, retention: Duration) {
    const CLEAN_UP_EVERY: u32 = 3000;
    let mut ticker = ticker(interval);
    let mut failing = false;
    let mut ticks: u32 = 0;
    loop {
        ticker.tick().await;
        match state.services.events.relay_pending().await {
            Ok(published) => {
                if failing {
                    tracing::info!(published, "publishing events again");
                    failing = false;
                } else if published > 0 {
                    tracing::debug!(published, "published events");
                }
            }
            Err(error) => {
                // Once per outage, not once per tick.
                if !failing {
                    tracing::warn!(error = %ErrorChain(&error), "publishing events failed; they wait in the outbox");
                    failing = true;
                }
            }
        }
        ticks = ticks.wrapping_add(1);
        if ticks % CLEAN_UP_EVERY == 1 {
            match state
                .services
                .events
                .forget_sent_older_than(retention)
                .await
            {
                Ok(0) => {}
                Ok(forgotten) => tracing::info!(forgotten, "forgot old sent events"),
                Err(error) => {
                    tracing::warn!(error = %ErrorChain(&error), "forgetting old sent events failed")
                }
            }
        }
    }
}

/// Keeps this instance in step with the rooms stored in PostgreSQL: opens the lines of new or
/// changed rooms, closes those of deleted ones. Twice a second, so that every instance follows
/// an operator's change within a second.
async fn follow_the_rooms(state: AppState) {
    let mut ticker = ticker(Duration::from_millis(500));
    let mut failing = false;
    loop {
        ticker.tick().await;
        match state.services.rooms.refresh().await {
            Ok(()) => failing = false,
            Err(error) => {
                if !failing {
                    tracing::warn!(error = %ErrorChain(&error), "reading the rooms failed; the rooms known stay in force");
                    failing = true;
                }
            }
        }
    }
}

/// One step of every room's line, each room's in a task of its own so that a room whose line
/// fails or is slow does not hold up the rest: reports this instance's polls, moves people from the
/// front of each line to its active set within the room's shared budget, and refreshes this
/// instance's view of each line.
async fn admit_in_every_room(state: AppState, interval: Duration) {
    let mut ticker = ticker(interval);
    let lines_lost_reported: Arc<Mutex<HashMap<RoomId, u64>>> = Arc::default();
    let mut running: HashMap<RoomId, RoomStep> = HashMap::new();
    loop {
        ticker.tick().await;
        let rooms = state.services.queue.rooms();
        // A room whose last step still runs (its Redis master slow or away) skips this tick;
        // the others step as usual.
        for room in &rooms {
            if running.get(room).is_some_and(|step| !step.0.is_finished()) {
                continue;
            }
            let (state, room, reported) = (state.clone(), *room, lines_lost_reported.clone());
            running.insert(
                room,
                RoomStep(tokio::spawn(async move {
                    step_room(&state, &room, &reported).await
                })),
            );
        }
        // A deleted room's gauges would otherwise keep their last values.
        running.retain(|room, _| {
            let kept = rooms.contains(room);
            if !kept {
                crate::observability::room_gone(room);
            }
            kept
        });
        lines_lost_reported
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|room, _| rooms.contains(room));
    }
}

/// A room's step running in a task of its own; stopped with the job (when the job is aborted,
/// its map of steps is dropped), so that no step outlives the server's shutdown.
struct RoomStep(JoinHandle<()>);

impl Drop for RoomStep {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One step of `room`'s line, and its metrics.
async fn step_room(state: &AppState, room: &RoomId, lost_reported: &Mutex<HashMap<RoomId, u64>>) {
    let queue = &state.services.queue;
    match queue.advance_room(room).await {
        Ok(report) => {
            crate::observability::admission_step(room, &report);
            if let Some(settings) = queue.room_settings(room) {
                crate::observability::queue_settings(room, &settings, queue.now());
            }
            let lost = queue.room_lines_lost(room);
            let newly = {
                let mut reported = lost_reported.lock().unwrap_or_else(PoisonError::into_inner);
                let reported = reported.entry(*room).or_default();
                let newly = lost.saturating_sub(*reported);
                *reported = lost;
                newly
            };
            crate::observability::lines_lost(room, newly);
            if report.admitted > 0 || report.expired > 0 || report.dropped_idle > 0 {
                tracing::debug!(
                    room = %room,
                    admitted = report.admitted,
                    expired = report.expired,
                    dropped_idle = report.dropped_idle,
                    waiting = report.waiting,
                    active = report.active,
                    "admission step"
                );
            }
        }
        Err(error) => {
            crate::observability::admission_step_failed(room);
            tracing::warn!(room = %room, error = %ErrorChain(&error), "admission step failed; retrying next tick");
        }
    }
}
