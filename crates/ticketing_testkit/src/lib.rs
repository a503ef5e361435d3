#![doc = include_str!("../README.md")]
// Test support: a failure to set up is a failed test, so panicking with a clear message is right.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod database;
mod local_postgres;
mod local_redis;
mod pg_store;
mod redis_space;

pub use database::{TestDatabase, STORED_INSTANTS};
pub use local_postgres::LocalPostgres;
pub use local_redis::LocalRedis;
pub use pg_store::PgStore;
pub use redis_space::TestRedis;

/// A short random name part, unique enough for parallel tests.
pub fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// Runs `work` to completion on a runtime of its own in another thread: usable from `Drop` and
/// from inside any runtime flavor.
fn run_detached<F, T>(work: F) -> T
where
    F: FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for test set-up")
            .block_on(work())
    })
    .join()
    .expect("test set-up thread panicked")
}
