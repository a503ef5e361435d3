//! Throughput of the waiting-queue scripts and Redis memory per waiting token, against the
//! Redis at `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), under a key prefix of its own
//! that is deleted afterwards.
//!
//! cargo run --release -p ticketing_redis --example queue_bench -- [tokens] [concurrency]
//!
//! The baseline in the same run is a bare PING through the same pool at the same concurrency:
//! the round-trip ceiling that no script can beat.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ticketing_domain::ids::UserId;
use ticketing_domain::queue::{ClientKey, QueuePolicy, QueueToken, WaitingQueue};
use ticketing_redis::RedisWaitingQueue;
use ticketing_testkit::TestRedis;

async fn measure<F, Fut>(label: &str, operations: usize, concurrency: usize, work: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (work, next) = (work.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= operations {
                        break;
                    }
                    work(index).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    let rate = operations as f64 / elapsed.as_secs_f64();
    println!(
        "{label:<38} {operations:>9} ops in {:>7.2} s = {rate:>9.0} ops/s",
        elapsed.as_secs_f64()
    );
    rate
}

async fn used_memory(redis: &TestRedis) -> i64 {
    let info: String = redis
        .pool()
        .run(async |c| redis::cmd("INFO").arg("memory").query_async(c).await)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("used_memory in INFO")
}

#[tokio::main]
async fn main() {
    let arguments: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let tokens = arguments.first().copied().unwrap_or(1_000_000);
    let concurrency = arguments.get(1).copied().unwrap_or(64);
    let redis = TestRedis::new();
    let policy = QueuePolicy {
        // One slot: every entry after the first waits, which is what is measured.
        max_active: NonZeroU32::new(1).unwrap(),
        admit_per_second: NonZeroU32::new(100).unwrap(),
        active_ttl: Duration::from_secs(3600),
        waiting_idle_timeout: Duration::from_secs(3600),
        entry_rate_per_client: None,
    };
    let queue = Arc::new(RedisWaitingQueue::new(
        redis.pool().clone(),
        &redis.keys(),
        policy,
    ));
    println!(
        "tokens {tokens}, concurrency {concurrency}, prefix {}",
        redis.prefix()
    );

    let pool = redis.pool().clone();
    measure("baseline: PING", 200_000, concurrency, move |_| {
        let pool = pool.clone();
        async move {
            pool.ping().await.unwrap();
        }
    })
    .await;

    let before = used_memory(&redis).await;
    let entered = Arc::new(std::sync::Mutex::new(Vec::with_capacity(tokens)));
    let (q, sink) = (queue.clone(), entered.clone());
    measure(
        "enter (half bound to a user)",
        tokens,
        concurrency,
        move |i| {
            let (queue, sink) = (q.clone(), sink.clone());
            async move {
                let user = (i % 2 == 0).then(|| UserId::new(i as i64 + 1).unwrap());
                let entry = queue
                    .enter(user, &ClientKey::new("127.0.0.1"))
                    .await
                    .unwrap();
                sink.lock().unwrap().push(entry.token);
            }
        },
    )
    .await;
    let after = used_memory(&redis).await;
    let per_token = (after - before) as f64 / tokens as f64;
    println!(
        "redis memory: {:.1} MiB for {tokens} waiting tokens = {per_token:.0} bytes per token",
        (after - before) as f64 / 1_048_576.0
    );

    let entered: Arc<Vec<QueueToken>> = Arc::new(std::mem::take(&mut *entered.lock().unwrap()));
    let polls = 200_000.min(tokens * 4);
    let (q, all) = (queue.clone(), entered.clone());
    measure("poll (GET /api/queue)", polls, concurrency, move |i| {
        let (queue, all) = (q.clone(), all.clone());
        async move {
            let token = &all[(i * 7919) % all.len()];
            queue.inspect(token, true).await.unwrap();
        }
    })
    .await;

    let (q, all) = (queue.clone(), entered.clone());
    measure(
        "token check (protected request)",
        polls,
        concurrency,
        move |i| {
            let (queue, all) = (q.clone(), all.clone());
            async move {
                queue.inspect(&all[i % all.len()], false).await.unwrap();
            }
        },
    )
    .await;

    let q = queue.clone();
    measure(
        "admission step (nothing to admit)",
        20_000,
        concurrency,
        move |_| {
            let queue = q.clone();
            async move {
                queue.admit().await.unwrap();
            }
        },
    )
    .await;
}
