//! Transient answers of PostgreSQL, provoked for real: each is "unavailable" (a 503 with
//! `Retry-After` at the HTTP edge), never "unexpected" (a 500), and the pool recovers by itself.
//! The messages diesel does not classify are unit-tested beside the classifier
//! (`src/error.rs`); these are the ones a test can bring about on a shared server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ticketing_domain::ids::UserId;
use ticketing_domain::money::ChargeAmount;
use ticketing_domain::wallet::{Wallet, WalletError};
use ticketing_domain::InfrastructureError;
use ticketing_postgres::pool::build_pool;
use ticketing_postgres::{PgPoolSettings, PgWallet};
use ticketing_testkit::{unique_suffix, TestDatabase};

fn user() -> UserId {
    UserId::new(7).unwrap()
}

fn wallet_on(url: String) -> PgWallet {
    let mut settings = PgPoolSettings::new(url);
    settings.max_size = 1;
    PgWallet::new(build_pool(&settings).unwrap())
}

fn is_unavailable(result: &Result<impl std::fmt::Debug, WalletError>) -> bool {
    matches!(
        result,
        Err(WalletError::Infrastructure(
            InfrastructureError::Unavailable(_)
        ))
    )
}

/// An operator (or a failover) ends the session in the middle of a statement: `terminating
/// connection due to administrator command` (57P01); then the pool opens a new connection.
// Several threads: the blocking session's connection must be served while the schema is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_by_the_server_mid_statement_is_unavailable_and_the_pool_recovers() {
    let db = TestDatabase::with_demo_data().await;
    let name = format!("terminated_{}", unique_suffix());
    let wallet = wallet_on(format!("{}&application_name={name}", db.url()));
    let lock = db
        .open_transaction("SELECT 1 FROM wallets WHERE user_id = 7 FOR UPDATE")
        .await;
    let waiting = tokio::spawn({
        let wallet = wallet.clone();
        async move {
            wallet
                .charge(user(), ChargeAmount::new(1000).unwrap(), None)
                .await
        }
    });
    let waiting_on_the_lock = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}' AND wait_event_type = 'Lock'"
    );
    let db = &db;
    let waiting_on_the_lock = &waiting_on_the_lock;
    crate::eventually(
        "the charge waits on the locked wallet",
        Duration::from_secs(10),
        move || async move { db.query_i64(waiting_on_the_lock).await > 0 },
    )
    .await;

    db.execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'"
    ))
    .await;
    let cut = waiting.await.unwrap();
    lock.batch_execute("ROLLBACK").await.unwrap();

    assert!(is_unavailable(&cut), "{cut:?}");
    // The pool may hand out the dead connection once more before its closing is noticed: that
    // request is unavailable too, and the next one gets a new connection.
    let mut answers = Vec::new();
    loop {
        let answer = wallet
            .charge(user(), ChargeAmount::new(1000).unwrap(), None)
            .await;
        let done = answer.is_ok();
        answers.push(answer);
        if done || answers.len() == 3 {
            break;
        }
    }
    assert!(
        answers
            .iter()
            .all(|answer| answer.is_ok() || is_unavailable(answer)),
        "{answers:?}"
    );
    assert_eq!(
        answers.last(),
        Some(&Ok(ticketing_domain::money::Won::new(1000).unwrap())),
        "recovered without a restart: {answers:?}"
    );
}

/// A connection that lands on a read-only server (a standby after a failover, before the
/// proxy moves) refuses writes: `cannot execute ... in a read-only transaction` (25006).
#[tokio::test]
async fn a_write_refused_by_a_read_only_server_is_unavailable() {
    let db = TestDatabase::with_demo_data().await;
    let read_only = format!("{}%20-c%20default_transaction_read_only%3Don", db.url());
    let wallet = wallet_on(read_only);

    let charged = wallet
        .charge(user(), ChargeAmount::new(1000).unwrap(), None)
        .await;

    assert!(is_unavailable(&charged), "{charged:?}");
    assert_eq!(
        db.query_i64("SELECT balance FROM wallets WHERE user_id = 7")
            .await,
        0,
        "nothing was written"
    );
}

/// A statement that waits on a lock past the statement timeout is cancelled by the server
/// (`canceling statement due to statement timeout`, 57014).
// Several threads: the blocking session's connection must be served while the schema is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_cancelled_by_the_server_is_unavailable() {
    let db = TestDatabase::with_demo_data().await;
    let mut settings = PgPoolSettings::new(db.url());
    settings.max_size = 1;
    settings.statement_timeout = Duration::from_millis(300);
    let wallet = PgWallet::new(build_pool(&settings).unwrap());
    let lock = db
        .open_transaction("SELECT 1 FROM wallets WHERE user_id = 7 FOR UPDATE")
        .await;

    let charged = wallet
        .charge(user(), ChargeAmount::new(1000).unwrap(), None)
        .await;
    lock.batch_execute("ROLLBACK").await.unwrap();

    assert!(is_unavailable(&charged), "{charged:?}");
}
