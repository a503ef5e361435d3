//! The waiting line with signed tokens, measured: throughput of its scripts, Redis memory per
//! waiting person, Redis work at the admission rate with a very long line, and how many polls and
//! token checks one instance answers from memory. Against the Redis at `TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`), under key prefixes of its own that are deleted afterwards (also on
//! Ctrl-C); nothing else in that Redis is touched.
//!
//! cargo run --release -p ticketing_redis --example queue_bench -- \
//!     [waiting] [concurrency] [line] [entered]
//!
//! * `waiting` (default 1,000,000): people entered into each of two lines, one anonymous and one
//!   bound to users, to measure entry throughput and memory per waiting person of each kind.
//! * `concurrency` (default 64): concurrent callers over the app's own pool, for every
//!   throughput figure. The baseline in the same run is a bare PING through the same pool at the
//!   same concurrency: the round-trip ceiling that no script can beat.
//! * `line` (default 10,000,000): people entered (half bound to a user) into the simulated line
//!   on which lookups, steps, Redis commands per second at the admission rate, and the polls and
//!   token checks answered from memory are measured.
//! * `entered` (default: all of `line`): how many of the line enter through `enter.lua`; the rest
//!   are written directly in the layout the script leaves (place counter, liveness bit, users
//!   hash field), for a line longer than there is time to enter on a small machine. Everything
//!   measured on the line afterwards goes through the adapter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ticketing_domain::clock::Clock;
use ticketing_domain::ids::UserId;
use ticketing_domain::queue::{
    ClientKey, DrawSeed, FixedSeed, LineView, QueuePolicy, QueueService, QueueStatus, QueueToken,
    Seq, SigningKey, SyncCursor, Ticket, TicketState, TokenKeys, WaitingQueue,
};
use ticketing_redis::{KeySpace, RedisPool, RedisWaitingQueue};
use ticketing_testkit::TestRedis;
use tokio::time::MissedTickBehavior;

/// How often every instance runs a step (`queue.admission_interval_ms`).
const ADMISSION_INTERVAL: Duration = Duration::from_millis(100);
/// How long each run of simulated instances lasts.
const INSTANCE_RUN: Duration = Duration::from_secs(10);
/// How long each in-memory measurement lasts.
const MEMORY_RUN: Duration = Duration::from_secs(3);
/// Places polled per step in the step-throughput measurement.
const SEEN_PER_STEP: usize = 100;

fn positive(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap()
}

/// The shipped defaults (`config/default.toml`): how often far-back clients poll, hence how many
/// keep-alives a line of a given length sends.
fn default_policy() -> QueuePolicy {
    QueuePolicy {
        max_active: positive(1000),
        admit_per_second: positive(100),
        active_ttl: Duration::from_secs(600),
        waiting_idle_timeout: Duration::from_secs(60),
        entry_rate_per_client: positive(20).into(),
    }
}

/// The measured lines: the idle timeout is long enough that nobody is dropped while the line is
/// being filled (a fill of millions takes minutes); no per-client limit, since every entry comes
/// from one address.
fn bench_policy(max_active: u32) -> QueuePolicy {
    QueuePolicy {
        max_active: positive(max_active),
        admit_per_second: positive(100),
        active_ttl: Duration::from_secs(600),
        waiting_idle_timeout: Duration::from_secs(3600),
        entry_rate_per_client: None,
    }
}

/// A small, fast generator of places to poll: the same sequence for the same seed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % bound.max(1)
    }

    /// `count` places drawn from `(low, high]`.
    fn places(&mut self, count: usize, low: Seq, high: Seq) -> Vec<Seq> {
        if high <= low {
            return Vec::new();
        }
        (0..count)
            .map(|_| low + 1 + self.below(high - low))
            .collect()
    }
}

/// Deletes every key under the benchmark's prefixes when dropped, also when a measurement
/// panics: the Redis is shared, and a line of millions must not be left behind in it.
struct Cleanup {
    url: String,
    pattern: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection() else {
            return;
        };
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&self.pattern)
                .arg("COUNT")
                .arg(1000)
                .query::<(u64, Vec<String>)>(&mut connection)
            else {
                return;
            };
            if !keys.is_empty() {
                let _: Result<u64, _> = redis::cmd("UNLINK").arg(keys).query(&mut connection);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}

/// The process's wall clock.
#[derive(Debug, Clone, Copy)]
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Runs `operations` calls of `work` over `concurrency` tasks; prints and returns the rate.
async fn measure<F, Fut>(label: &str, operations: usize, concurrency: usize, work: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
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
        "{label:<52} {operations:>10} ops in {:>7.2} s = {rate:>9.0} ops/s",
        elapsed.as_secs_f64()
    );
    rate
}

async fn info(pool: &RedisPool, section: &str) -> String {
    pool.run(async |c| redis::cmd("INFO").arg(section).query_async(c).await)
        .await
        .unwrap()
}

fn info_field(info: &str, name: &str) -> f64 {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in INFO"))
}

async fn used_memory(pool: &RedisPool) -> i64 {
    info_field(&info(pool, "memory").await, "used_memory") as i64
}

/// Waits until Redis has freed what was unlinked, so that it does not count against the next
/// memory measurement.
async fn settle(pool: &RedisPool) {
    for _ in 0..600 {
        if info_field(&info(pool, "memory").await, "lazyfree_pending_objects") == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis's own counters: commands processed, calls and time per command, CPU used.
#[derive(Debug, Clone, Default)]
struct Counters {
    processed: u64,
    commands: HashMap<String, (u64, u64)>,
    cpu_seconds: f64,
}

async fn counters(pool: &RedisPool) -> Counters {
    let stats = info(pool, "stats").await;
    let cpu = info(pool, "cpu").await;
    let commandstats = info(pool, "commandstats").await;
    let commands = commandstats
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| -> u64 {
                rest.split(',')
                    .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(0)
            };
            Some((name.to_string(), (field("calls"), field("usec"))))
        })
        .collect();
    Counters {
        processed: info_field(&stats, "total_commands_processed") as u64,
        commands,
        cpu_seconds: info_field(&cpu, "used_cpu_user") + info_field(&cpu, "used_cpu_sys"),
    }
}

/// What Redis did between two readings of its counters, per second of `elapsed`.
fn report_delta(label: &str, before: &Counters, after: &Counters, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let processed = (after.processed - before.processed) as f64 / seconds;
    let mut by_command: Vec<(String, f64, f64)> = after
        .commands
        .iter()
        .map(|(name, (calls, usec))| {
            let (calls_before, usec_before) = before.commands.get(name).copied().unwrap_or((0, 0));
            (
                name.clone(),
                (calls - calls_before) as f64 / seconds,
                (usec - usec_before) as f64 / seconds,
            )
        })
        .filter(|(_, calls, _)| *calls > 0.0)
        .collect();
    by_command.sort_by(|a, b| b.1.total_cmp(&a.1));
    let all_calls: f64 = by_command.iter().map(|(_, calls, _)| calls).sum();
    let evalsha = by_command
        .iter()
        .find(|(name, _, _)| name == "evalsha")
        .map_or((0.0, 0.0), |(_, calls, usec)| (*calls, *usec));
    let cpu = (after.cpu_seconds - before.cpu_seconds) / seconds;
    println!(
        "{label}: total_commands_processed {processed:.1}/s; EVALSHA {:.1}/s taking {:.1} ms/s \
         of Redis time; commands incl. those inside scripts {all_calls:.0}/s; Redis CPU {:.1} %",
        evalsha.0,
        evalsha.1 / 1000.0,
        cpu * 100.0
    );
    let top: Vec<String> = by_command
        .iter()
        .take(8)
        .map(|(name, calls, _)| format!("{name} {calls:.0}/s"))
        .collect();
    println!("    by command: {}", top.join(", "));
}

/// Every key matching `pattern`.
async fn scan(pool: &RedisPool, pattern: &str) -> Vec<String> {
    let mut cursor: u64 = 0;
    let mut found = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = pool
            .run(async |c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(c)
                    .await
            })
            .await
            .unwrap();
        found.extend(batch);
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

/// Memory of every key of a line, by `MEMORY USAGE`.
async fn key_breakdown(
    pool: &RedisPool,
    keys: &KeySpace,
    exact: bool,
) -> Vec<(String, String, u64)> {
    let mut found = scan(pool, &keys.pattern()).await;
    found.sort();
    let mut rows = Vec::new();
    for key in found {
        let kind: String = pool
            .run(async |c| redis::cmd("TYPE").arg(&key).query_async(c).await)
            .await
            .unwrap();
        // SAMPLES 0 walks every field of a hash: exact, but it blocks a shared Redis for a
        // while on millions of fields, where the default sample of 5 is used instead.
        let samples = if exact { 0 } else { 5 };
        let bytes: Option<u64> = pool
            .run(async |c| {
                redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(&key)
                    .arg("SAMPLES")
                    .arg(samples)
                    .query_async(c)
                    .await
            })
            .await
            .unwrap();
        rows.push((key, kind, bytes.unwrap_or(0)));
    }
    rows
}

fn print_breakdown(rows: &[(String, String, u64)]) {
    for (key, kind, bytes) in rows {
        println!("    {key:<44} {kind:<7} {bytes:>13} bytes");
    }
}

/// Enters `count` people into `queue`; `bound(i)` tells whether the i-th is bound to a user.
/// Returns the entry rate and how many were admitted at once.
async fn fill(
    label: &str,
    queue: &Arc<RedisWaitingQueue>,
    count: usize,
    concurrency: usize,
    first_user: i64,
    bound: fn(usize) -> bool,
) -> (f64, u64) {
    let active = Arc::new(AtomicU64::new(0));
    let (q, admitted) = (queue.clone(), active.clone());
    let rate = measure(label, count, concurrency, move |i| {
        let (queue, admitted) = (q.clone(), admitted.clone());
        async move {
            let user = bound(i).then(|| UserId::new(first_user + i as i64).unwrap());
            let entered = queue
                .enter(user, &ClientKey::new("127.0.0.1"))
                .await
                .unwrap();
            if matches!(entered.state, TicketState::Active { .. }) {
                admitted.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    (rate, active.load(Ordering::Relaxed))
}

/// Memory per waiting person of a line of `count`, all anonymous or all bound to users.
async fn memory_per_person(
    pool: &RedisPool,
    prefix: &str,
    name: &str,
    count: usize,
    concurrency: usize,
    bound: fn(usize) -> bool,
) -> f64 {
    let keys = KeySpace::new(&format!("{prefix}-{name}"));
    let queue = Arc::new(RedisWaitingQueue::new(pool.clone(), &keys, bench_policy(1)));
    // The first entry creates the line and is admitted (one place): not counted.
    fill(&format!("warm-up ({name})"), &queue, 1, 1, 1, bound).await;
    settle(pool).await;
    let before = used_memory(pool).await;
    let (_, admitted) = fill(
        &format!("enter ({name}), {count} waiting"),
        &queue,
        count,
        concurrency,
        2,
        bound,
    )
    .await;
    assert_eq!(admitted, 0, "with one place taken, everybody waits");
    let after = used_memory(pool).await;
    let per_person = (after - before) as f64 / count as f64;
    println!(
        "    redis used_memory grew {:.2} MiB for {count} waiting ({name}) = {per_person:.1} bytes per waiting person",
        (after - before) as f64 / 1_048_576.0
    );
    let rows = key_breakdown(pool, &keys, true).await;
    print_breakdown(&rows);
    let total: u64 = rows.iter().map(|(_, _, bytes)| bytes).sum();
    println!(
        "    MEMORY USAGE of the line's keys: {total} bytes = {:.1} bytes per waiting person",
        total as f64 / count as f64
    );
    let deleted = pool.delete_matching(&keys.pattern()).await.unwrap();
    println!("    deleted the {deleted} keys of the {name} line");
    per_person
}

/// First user id of the places written by [`extend_line`]: eight digits, like the ids of a
/// user table of tens of millions.
const EXTENSION_USERS: i64 = 20_000_000;

/// Writes the places `from..=to` into the line as `enter.lua` leaves a waiting person: the place
/// counter, the person's bit in the newest liveness bitmap and, for every even place, a field
/// of the users hash. Only for building a line longer than the benchmark has time to enter
/// through the script; what is measured on it afterwards goes through the adapter.
async fn extend_line(pool: &RedisPool, keys: &KeySpace, from: Seq, to: Seq) {
    let bitmaps = scan(pool, &keys.key("line:seen:*")).await;
    let bucket = |key: &String| -> u64 {
        key.rsplit(':')
            .next()
            .and_then(|b| b.parse().ok())
            .unwrap_or(0)
    };
    let seen = bitmaps
        .iter()
        .max_by_key(|key| bucket(key))
        .unwrap()
        .clone();
    let set_bit = async |seq: Seq| {
        pool.run(async |c| {
            redis::cmd("SETBIT")
                .arg(&seen)
                .arg(seq)
                .arg(1)
                .query_async::<i64>(c)
                .await
        })
        .await
        .unwrap();
    };
    // Whole bytes of the bitmap at once (bit 0 is the high bit of byte 0), the ends bit by bit.
    let (first_byte, end_byte) = (from.div_ceil(8), (to + 1) / 8);
    if first_byte < end_byte {
        for seq in from..first_byte * 8 {
            set_bit(seq).await;
        }
        let mut byte = first_byte;
        while byte < end_byte {
            let length = (end_byte - byte).min(65_536);
            let ones = vec![0xFF_u8; length as usize];
            pool.run(async |c| {
                redis::cmd("SETRANGE")
                    .arg(&seen)
                    .arg(byte)
                    .arg(&ones[..])
                    .query_async::<i64>(c)
                    .await
            })
            .await
            .unwrap();
            byte += length;
        }
        for seq in end_byte * 8..=to {
            set_bit(seq).await;
        }
    } else {
        for seq in from..=to {
            set_bit(seq).await;
        }
    }
    let users = keys.key("line:users");
    let bound: Vec<Seq> = (from..=to).filter(|seq| seq % 2 == 0).collect();
    for chunk in bound.chunks(1000) {
        let mut command = redis::cmd("HSET");
        command.arg(&users);
        for &seq in chunk {
            command.arg(EXTENSION_USERS + seq as i64).arg(seq);
        }
        pool.run(async |c| command.query_async::<i64>(c).await)
            .await
            .unwrap();
    }
    let seq_key = keys.key("line:seq");
    let last: Seq = pool
        .run(async |c| {
            redis::cmd("INCRBY")
                .arg(&seq_key)
                .arg(to + 1 - from)
                .query_async(c)
                .await
        })
        .await
        .unwrap();
    assert_eq!(last, to, "nobody else entered meanwhile");
}

/// What one simulated instance did in a run.
#[derive(Debug, Default)]
struct InstanceRun {
    steps: u64,
    admitted: u64,
    seen: u64,
    latencies: Vec<Duration>,
}

/// One instance: a step every admission interval reporting `batch` polled places, following the
/// log into a view of its own, for `run_for`.
async fn run_instance(
    queue: Arc<RedisWaitingQueue>,
    batch: usize,
    last: Seq,
    run_for: Duration,
    start_after: Duration,
    seed: u64,
) -> InstanceRun {
    tokio::time::sleep(start_after).await;
    let mut view = LineView::default();
    let mut places = XorShift::new(seed);
    let mut ticks = tokio::time::interval(ADMISSION_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let deadline = Instant::now() + run_for;
    let mut run = InstanceRun::default();
    while Instant::now() < deadline {
        ticks.tick().await;
        let seen = places.places(batch, view.head(), last);
        let started = Instant::now();
        let step = queue.advance(&seen, &view.cursor()).await.unwrap();
        run.latencies.push(started.elapsed());
        view.apply(step.sync, Utc::now());
        run.steps += 1;
        run.admitted += u64::from(step.report.admitted);
        run.seen += seen.len() as u64;
    }
    run
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index]
}

/// `instances` instances stepping the line at once for [`INSTANCE_RUN`], each reporting `batch`
/// keep-alives per step; prints what Redis did meanwhile.
async fn run_instances(
    pool: &RedisPool,
    queue: &Arc<RedisWaitingQueue>,
    instances: usize,
    batch: usize,
    last: Seq,
) {
    let label = format!("{instances} instance(s), {batch} keep-alives per step each");
    let before = counters(pool).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..instances)
        .map(|i| {
            // Instances are not in step with each other: spread their starts over an interval.
            let start_after = ADMISSION_INTERVAL * i as u32 / instances as u32;
            tokio::spawn(run_instance(
                queue.clone(),
                batch,
                last,
                INSTANCE_RUN,
                start_after,
                1000 + i as u64,
            ))
        })
        .collect();
    let mut runs = Vec::new();
    for task in tasks {
        runs.push(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    let after = counters(pool).await;
    let steps: u64 = runs.iter().map(|run| run.steps).sum();
    let admitted: u64 = runs.iter().map(|run| run.admitted).sum();
    let seen: u64 = runs.iter().map(|run| run.seen).sum();
    let mut latencies: Vec<Duration> = runs.iter().flat_map(|run| run.latencies.clone()).collect();
    latencies.sort_unstable();
    println!(
        "{label}: {steps} steps in {:.1} s ({:.1} steps/s), {admitted} admitted ({:.1}/s), \
         {:.0} keep-alives/s; step latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        steps as f64 / elapsed.as_secs_f64(),
        admitted as f64 / elapsed.as_secs_f64(),
        seen as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        percentile(&latencies, 1.0).as_secs_f64() * 1000.0,
    );
    report_delta("    redis", &before, &after, elapsed);
}

/// Calls `work` on one task, as fast as it goes, for [`MEMORY_RUN`]; returns calls per second.
async fn on_one_core<F, Fut>(label: &str, items: usize, mut work: F) -> f64
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    let mut done = 0usize;
    while started.elapsed() < MEMORY_RUN {
        for _ in 0..1000 {
            work(done % items).await;
            done += 1;
        }
    }
    let elapsed = started.elapsed();
    let rate = done as f64 / elapsed.as_secs_f64();
    println!(
        "{label:<52} {done:>10} ops in {:>7.2} s = {rate:>9.0} ops/s",
        elapsed.as_secs_f64()
    );
    rate
}

async fn bench(
    redis: &TestRedis,
    waiting: usize,
    concurrency: usize,
    line: usize,
    entered_by_script: usize,
) {
    let pool = redis.pool().clone();
    let prefix = redis.prefix().to_string();

    println!("\n== baseline");
    let p = pool.clone();
    measure("PING", 200_000, concurrency, move |_| {
        let pool = p.clone();
        async move {
            pool.ping().await.unwrap();
        }
    })
    .await;

    println!("\n== entry throughput and memory per waiting person ({waiting} waiting per line)");
    memory_per_person(&pool, &prefix, "anonymous", waiting, concurrency, |_| false).await;
    memory_per_person(&pool, &prefix, "user-bound", waiting, concurrency, |_| true).await;

    let by_script = line.min(entered_by_script);
    println!(
        "\n== the simulated line: {line} people, half bound to a user ({by_script} entered \
         through enter.lua, {} written directly in its layout)",
        line - by_script
    );
    let keys = KeySpace::new(&format!("{prefix}-line"));
    let policy = bench_policy(100_000);
    let queue = Arc::new(RedisWaitingQueue::new(pool.clone(), &keys, policy));
    let first = queue
        .enter(None, &ClientKey::new("127.0.0.1"))
        .await
        .unwrap();
    let epoch = first.ticket.epoch;
    settle(&pool).await;
    let before = used_memory(&pool).await;
    let (_, admitted) = fill(
        "enter (half bound to a user)",
        &queue,
        by_script,
        concurrency,
        1,
        |i| i % 2 == 0,
    )
    .await;
    let after_script = used_memory(&pool).await;
    println!(
        "    admitted at entry: {}; redis used_memory grew {:.1} MiB = {:.1} bytes per person entered",
        admitted + 1,
        (after_script - before) as f64 / 1_048_576.0,
        (after_script - before) as f64 / by_script as f64
    );
    let entered = line as u64 + 1;
    if line > by_script {
        let started = Instant::now();
        extend_line(&pool, &keys, by_script as u64 + 2, entered).await;
        let after = used_memory(&pool).await;
        println!(
            "    extended to {line} waiting in {:.1} s by direct writes; redis used_memory grew \
             {:.1} MiB since the first entry = {:.1} bytes per waiting person",
            started.elapsed().as_secs_f64(),
            (after - before) as f64 / 1_048_576.0,
            (after - before) as f64 / line as f64
        );
    }
    let rows = key_breakdown(&pool, &keys, false).await;
    print_breakdown(&rows);
    let total: u64 = rows.iter().map(|(_, _, bytes)| bytes).sum();
    println!(
        "    MEMORY USAGE of the line's keys (hash sampled): {total} bytes = {:.1} bytes per \
         waiting person",
        total as f64 / line as f64
    );
    let memory = info(&pool, "memory").await;
    println!(
        "    redis used_memory now {:.1} MiB (used_memory_rss {:.1} MiB)",
        info_field(&memory, "used_memory") / 1_048_576.0,
        info_field(&memory, "used_memory_rss") / 1_048_576.0
    );

    let step = queue.advance(&[], &SyncCursor::default()).await.unwrap();
    let (head, last) = (step.sync.head, step.sync.last_seq);
    println!(
        "    line: head {head}, last place {last}, undecided {}, active {}",
        step.report.waiting, step.report.active
    );
    assert_eq!(last, entered);
    // Places far enough back that nothing measured here admits them.
    let back_half = last / 2;

    println!("\n== the store's answers (the fallback of polls and checks), on waiting places");
    for keep_alive in [true, false] {
        let answered = Arc::new(AtomicU64::new(0));
        let (q, waiting_answers) = (queue.clone(), answered.clone());
        let lookups = 200_000;
        measure(
            &format!("lookup (keep_alive {keep_alive})"),
            lookups,
            concurrency,
            move |i| {
                let (queue, waiting_answers) = (q.clone(), waiting_answers.clone());
                async move {
                    let seq = back_half + 1 + XorShift::new(i as u64).below(last - back_half);
                    let ticket = Ticket {
                        epoch,
                        seq,
                        user: None,
                    };
                    let state = queue.lookup(&ticket, keep_alive).await.unwrap();
                    if matches!(state, Some(TicketState::Waiting { .. })) {
                        waiting_answers.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
        )
        .await;
        assert_eq!(answered.load(Ordering::Relaxed), lookups as u64);
    }

    // Every step continues from the newest cursor, as an instance that keeps up does.
    let cursor = Arc::new(std::sync::Mutex::new(step.sync.cursor.clone()));
    let q = queue.clone();
    measure(
        &format!("advance ({SEEN_PER_STEP} polled places per step)"),
        20_000,
        concurrency,
        move |i| {
            let (queue, cursor) = (q.clone(), cursor.clone());
            async move {
                let seen = XorShift::new(i as u64).places(SEEN_PER_STEP, head, last);
                let since = cursor.lock().unwrap().clone();
                let step = queue.advance(&seen, &since).await.unwrap();
                *cursor.lock().unwrap() = step.sync.cursor;
            }
        },
    )
    .await;

    println!("\n== Redis work at the admission rate ({line} waiting)");
    let shipped = default_policy();
    let polls_per_second: f64 = (1..=line as u64)
        .map(|position| 1.0 / shipped.poll_after(shipped.wait_by_rate(position)) as f64)
        .sum();
    let per_step = polls_per_second * ADMISSION_INTERVAL.as_secs_f64();
    println!(
        "keep-alives: with the shipped policy (idle timeout {} s, far-back clients poll every {} s), \
         {line} waiting poll {polls_per_second:.0} times/s = {per_step:.0} places per admission interval, \
         all instances together",
        shipped.waiting_idle_timeout.as_secs(),
        shipped.longest_poll_interval()
    );
    let quiet_before = counters(&pool).await;
    let quiet_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    report_delta(
        "background (nothing of this benchmark running)",
        &quiet_before,
        &counters(&pool).await,
        quiet_started.elapsed(),
    );
    for (instances, batch) in [
        (1, per_step.round() as usize),
        (3, (per_step / 3.0).round() as usize),
        (3, 0),
    ] {
        run_instances(&pool, &queue, instances, batch, last).await;
    }

    println!("\n== one instance answering from memory (QueueService, {line} waiting)");
    // Whether an answer came from memory is read off Redis: every script call is an EVALSHA,
    // and the only ones this instance makes besides its lookups are its steps, counted here.
    let token_keys = TokenKeys::new(SigningKey::new([7u8; 32]).unwrap(), None);
    let store: Arc<dyn WaitingQueue> = queue.clone();
    // No opening is scheduled here, so no seed is ever drawn from this source.
    let seeds = Arc::new(FixedSeed(DrawSeed::from_bytes([0; 32])));
    let service = QueueService::new(
        store,
        token_keys.clone(),
        policy,
        Arc::new(SystemClock),
        seeds,
    );
    service.advance().await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let steps = Arc::new(AtomicU64::new(0));
    let stepper = {
        let (service, stop, steps) = (service.clone(), stop.clone(), steps.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(ADMISSION_INTERVAL);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            while !stop.load(Ordering::Relaxed) {
                ticks.tick().await;
                service.advance().await.unwrap();
                steps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let round_trips = async |label: &str, before: (Counters, u64)| {
        let after = counters(&pool).await;
        let evalsha = |c: &Counters| c.commands.get("evalsha").map_or(0, |(calls, _)| *calls);
        let scripts = evalsha(&after) - evalsha(&before.0);
        let stepped = steps.load(Ordering::Relaxed) - before.1;
        println!(
            "    {label}: {scripts} script calls reached Redis, {stepped} of them this \
             instance's steps: at most {} store lookups",
            scripts.saturating_sub(stepped)
        );
    };
    let mark = async || (counters(&pool).await, steps.load(Ordering::Relaxed));

    // Distinct places spread over the back half of the line.
    let polled = 100_000.min(line / 2).max(1);
    let stride = ((last - back_half) / polled as u64).max(1);
    let waiting_tokens: Arc<Vec<QueueToken>> = Arc::new(
        (0..polled as u64)
            .map(|i| {
                token_keys.seal(&Ticket {
                    epoch,
                    seq: back_half + 1 + i * stride,
                    user: None,
                })
            })
            .collect(),
    );
    let before = mark().await;
    let (s, tokens) = (service.clone(), waiting_tokens.clone());
    measure(
        "poll, first on this instance (asks the store)",
        polled,
        concurrency,
        move |i| {
            let (service, tokens) = (s.clone(), tokens.clone());
            async move {
                let view = service.poll(tokens[i].clone()).await.unwrap();
                assert_eq!(view.status, QueueStatus::Waiting);
            }
        },
    )
    .await;
    round_trips("meanwhile", before).await;

    let before = mark().await;
    let (s, tokens) = (service.clone(), waiting_tokens.clone());
    on_one_core("poll of a waiting token, from memory", polled, |i| {
        let (service, token) = (s.clone(), tokens[i].clone());
        async move {
            let view = service.poll(token).await.unwrap();
            debug_assert_eq!(view.status, QueueStatus::Waiting);
        }
    })
    .await;
    round_trips("meanwhile", before).await;

    let active: Vec<Seq> = {
        let key = keys.key("line:active");
        pool.run(async |c| {
            redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(9999)
                .query_async(c)
                .await
        })
        .await
        .unwrap()
    };
    println!("    ACTIVE tokens checked: {}", active.len());
    assert!(!active.is_empty(), "the steps above admitted people");
    let active_tokens: Vec<QueueToken> = active
        .iter()
        .map(|&seq| {
            token_keys.seal(&Ticket {
                epoch,
                seq,
                user: None,
            })
        })
        .collect();
    let before = mark().await;
    let s = service.clone();
    on_one_core(
        "authorize an ACTIVE token, from memory",
        active_tokens.len(),
        |i| {
            let (service, token) = (s.clone(), active_tokens[i].clone());
            async move {
                service.authorize(token).await.unwrap();
            }
        },
    )
    .await;
    round_trips("meanwhile", before).await;
    on_one_core("of which: the signature check alone", polled, |i| {
        let outcome = token_keys.open(&waiting_tokens[i]);
        async move {
            outcome.unwrap();
        }
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    stepper.await.unwrap();
}

#[tokio::main]
async fn main() {
    let arguments: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .expect("numbers: [waiting] [concurrency] [line] [entered]")
        })
        .collect();
    let waiting = arguments.first().copied().unwrap_or(1_000_000);
    let concurrency = arguments.get(1).copied().unwrap_or(64);
    let line = arguments.get(2).copied().unwrap_or(10_000_000);
    let entered_by_script = arguments.get(3).copied().unwrap_or(line);
    let redis = TestRedis::new();
    let pattern = format!("{{{}-*", redis.prefix());
    let _cleanup = Cleanup {
        url: redis.url().to_string(),
        pattern: pattern.clone(),
    };
    let server = info(redis.pool(), "server").await;
    println!(
        "waiting {waiting} per line, concurrency {concurrency}, simulated line {line}, \
         redis {} at {}, keys {pattern}",
        server
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?"),
        redis.url()
    );

    let started = Instant::now();
    tokio::select! {
        () = bench(&redis, waiting, concurrency, line, entered_by_script) => {}
        interrupted = tokio::signal::ctrl_c() => {
            interrupted.unwrap();
            println!("interrupted: cleaning up");
        }
    }
    let deleted = redis.pool().delete_matching(&pattern).await.unwrap();
    settle(redis.pool()).await;
    println!(
        "\ndeleted the {deleted} remaining keys under {pattern}; total run {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
