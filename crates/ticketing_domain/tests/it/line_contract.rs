//! The line contract against the in-memory line, on a clock the checks move.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ticketing_domain::clock::Clock;
use ticketing_domain::queue::{QueueControls, QueuePolicy, WaitingQueue};
use ticketing_domain::testing::line::InMemoryLine;
use ticketing_domain::testing::line_contract::{self, LineFixture, LineUnderTest};
use ticketing_domain::testing::store::ManualClock;

struct InMemory;

struct ClockedLine {
    line: InMemoryLine,
    clock: ManualClock,
}

#[async_trait]
impl LineFixture for InMemory {
    type Line = ClockedLine;

    async fn line(&self, policy: QueuePolicy) -> ClockedLine {
        // A quarter into a second, as a real clock would be anywhere in one.
        let start = DateTime::from_timestamp_millis(1_900_000_000_250).expect("in range");
        let clock = ManualClock::new(start);
        ClockedLine {
            line: InMemoryLine::new(policy, Arc::new(clock.clone())),
            clock,
        }
    }
}

#[async_trait]
impl LineUnderTest for ClockedLine {
    fn queue(&self) -> &dyn WaitingQueue {
        &self.line
    }

    fn controls(&self) -> &dyn QueueControls {
        &self.line
    }

    async fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn pass(&self, elapsed: Duration) {
        self.clock.advance(elapsed);
    }

    async fn next_second(&self) {
        let next = self.clock.now().timestamp() + 1;
        self.clock
            .set(DateTime::from_timestamp(next, 0).expect("in range"));
    }
}

#[tokio::test]
async fn entering() {
    line_contract::entering(&InMemory).await;
}

#[tokio::test]
async fn first_come_first_served() {
    line_contract::first_come_first_served(&InMemory).await;
}

#[tokio::test]
async fn room() {
    line_contract::room(&InMemory).await;
}

#[tokio::test]
async fn admission_rate() {
    line_contract::admission_rate(&InMemory).await;
}

#[tokio::test]
async fn one_place_per_user() {
    line_contract::one_place_per_user(&InMemory).await;
}

#[tokio::test]
async fn idle_places() {
    line_contract::idle_places(&InMemory).await;
}

#[tokio::test]
async fn session_expiry() {
    line_contract::session_expiry(&InMemory).await;
}

#[tokio::test]
async fn leaving_and_revoking() {
    line_contract::leaving_and_revoking(&InMemory).await;
}

#[tokio::test]
async fn pause_and_resume() {
    line_contract::pause_and_resume(&InMemory).await;
}

#[tokio::test]
async fn settings_changes() {
    line_contract::settings_changes(&InMemory).await;
}

#[tokio::test]
async fn scheduled_opening() {
    line_contract::scheduled_opening(&InMemory).await;
}

#[tokio::test]
async fn per_client_rate() {
    line_contract::per_client_rate(&InMemory).await;
}

#[tokio::test]
async fn change_feed() {
    line_contract::change_feed(&InMemory).await;
}

#[tokio::test]
async fn clearing() {
    line_contract::clearing(&InMemory).await;
}
