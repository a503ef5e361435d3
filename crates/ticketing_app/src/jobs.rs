//! Background jobs every instance runs; each is safe to run on any number of instances at once.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::state::AppState;

/// The jobs of one instance; aborted when dropped or stopped.
#[derive(Debug, Default)]
pub struct BackgroundJobs {
    handles: Vec<JoinHandle<()>>,
}

impl BackgroundJobs {
    /// Starts every job on the current runtime.
    pub fn start(state: &AppState, admission_interval: Duration) -> Self {
        Self {
            handles: vec![tokio::spawn(admit_from_the_queue(
                state.clone(),
                admission_interval,
            ))],
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

/// Moves tokens from the head of the line to the active set, within the shared budget.
async fn admit_from_the_queue(state: AppState, interval: Duration) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match state.queue.admit().await {
            Ok(report) => {
                if report.admitted > 0 || report.expired > 0 || report.dropped_idle > 0 {
                    tracing::debug!(
                        admitted = report.admitted,
                        expired = report.expired,
                        dropped_idle = report.dropped_idle,
                        waiting = report.waiting,
                        active = report.active,
                        "admission step"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "admission step failed; retrying next tick"),
        }
    }
}
