//! The integration tests of ticketing_postgres, in one binary: a test binary per file linked the
//! crate and its dependencies once per file, which made `make test` slow on two cores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod batches;
mod catalog;
mod contract;
mod failover;
mod holds;
mod migrations_and_demo_data;
mod model;
mod money;
mod outbox;
mod plans;
mod refunds;
mod transient;

use std::future::Future;
use std::time::Duration;

/// Checks `condition` again and again until it holds, failing the test if it has not within
/// `deadline`: for what the server does by itself (ends a session, puts a statement to wait on
/// a lock), which gives a test nothing to await.
async fn eventually<Check, Checked>(what: &str, deadline: Duration, mut condition: Check)
where
    Check: FnMut() -> Checked,
    Checked: Future<Output = bool>,
{
    const BETWEEN_CHECKS: Duration = Duration::from_millis(20);
    let waited = tokio::time::timeout(deadline, async {
        while !condition().await {
            tokio::time::sleep(BETWEEN_CHECKS).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "not within {deadline:?}: {what}");
}
