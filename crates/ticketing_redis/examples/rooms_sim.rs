//! Many waiting rooms on one Redis Cluster, simulated: each room's line under its own hash tag,
//! filled with waiting people, then stepped by several simulated instances at once. Prints,
//! per master, the memory the lines take and the commands and CPU their steps cost, and, for one
//! instance's `QueueService` over every room, what it keeps in memory for people polling from
//! far back.
//!
//! cargo run --release -p ticketing_redis --example rooms_sim -- [rooms] [waiting] [entered] [instances]
//!
//! * `rooms` (default 10): rooms, each a line of its own (`{<prefix>:room:<id>}`).
//! * `waiting` (default 1,000,000): people waiting in each room. The first `entered` (default
//!   10,000) of each room enter through `enter.lua`; the rest are written in the layout the
//!   script leaves for anonymous people (the place counter and the person's liveness bit),
//!   since entering ten million through the scripts takes longer than a benchmark should.
//! * `instances` (default 3): simulated instances stepping every room every 100 ms for 10 s.
//!
//! Needs `TEST_REDIS_CLUSTER_URLS` (`scripts/redis-cluster.sh up`, `scripts/redis-cluster.sh
//! urls`). Every key it writes is under a prefix of its own and deleted at the end (also when a
//! measurement panics).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ticketing_domain::clock::Clock;
use ticketing_domain::queue::{
    ClientKey, DrawSeed, FixedSeed, LineView, QueuePolicy, QueueService, QueueToken, SigningKey,
    Ticket, TokenKeys, WaitingQueue,
};
use ticketing_domain::rooms::{RoomId, RoomMode};
use ticketing_redis::{RedisPool, RedisSettings, RedisWaitingQueue};
use tokio::time::MissedTickBehavior;

const STEP: Duration = Duration::from_millis(100);
const RUN: Duration = Duration::from_secs(10);
/// Polls reported by each instance per step and room, near the front (the keep-alive window).
const KEEP_ALIVES_PER_STEP: u64 = 20;

#[derive(Debug, Clone, Copy)]
struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

fn policy() -> QueuePolicy {
    QueuePolicy {
        max_active: NonZeroU32::new(100_000).unwrap(),
        admit_per_second: NonZeroU32::new(100).unwrap(),
        active_ttl: Duration::from_secs(600),
        // Long enough that nobody is dropped while the lines are filled.
        waiting_idle_timeout: Duration::from_secs(3600),
        entry_rate_per_client: None,
    }
}

/// Every master's direct connection, for what is per node: memory, counters, CPU.
struct Masters(Vec<(String, redis::Client)>);

#[derive(Debug, Clone, Copy, Default)]
struct NodeFigures {
    used_memory: f64,
    commands: f64,
    cpu: f64,
}

impl Masters {
    fn new(urls: &[String]) -> Self {
        Self(
            urls.iter()
                .map(|url| (url.clone(), redis::Client::open(url.as_str()).unwrap()))
                .collect(),
        )
    }

    fn figures(&self) -> Vec<NodeFigures> {
        self.0
            .iter()
            .map(|(_, client)| {
                let mut connection = client.get_connection().unwrap();
                let info: String = redis::cmd("INFO")
                    .arg("everything")
                    .query(&mut connection)
                    .unwrap();
                let field = |name: &str| -> f64 {
                    info.lines()
                        .find_map(|line| line.strip_prefix(&format!("{name}:")))
                        .and_then(|value| value.trim().parse().ok())
                        .unwrap_or(0.0)
                };
                NodeFigures {
                    used_memory: field("used_memory"),
                    commands: field("total_commands_processed"),
                    cpu: field("used_cpu_sys") + field("used_cpu_user"),
                }
            })
            .collect()
    }

    /// Which master holds the slot of `tag`.
    fn owner_of(&self, tag: &str) -> usize {
        let mut connection = self.0[0].1.get_connection().unwrap();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(format!("{{{tag}}}"))
            .query(&mut connection)
            .unwrap();
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut connection)
            .unwrap();
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let address = fields[1].split('@').next().unwrap();
            let covers = fields[8..].iter().any(|range| {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                matches!((low.parse::<u16>(), high.parse::<u16>()), (Ok(l), Ok(h)) if l <= slot && slot <= h)
            });
            if covers {
                return self
                    .0
                    .iter()
                    .position(|(url, _)| url.ends_with(address.rsplit(':').next().unwrap()))
                    .unwrap();
            }
        }
        panic!("no master holds slot {slot}");
    }

    fn delete_prefix(&self, prefix: &str) {
        for (_, client) in &self.0 {
            let Ok(mut connection) = client.get_connection() else {
                continue;
            };
            let mut cursor: u64 = 0;
            loop {
                let Ok((next, keys)) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{{{prefix}*"))
                    .arg("COUNT")
                    .arg(1000)
                    .query::<(u64, Vec<String>)>(&mut connection)
                else {
                    break;
                };
                for key in keys {
                    let _: Result<u64, _> = redis::cmd("UNLINK").arg(key).query(&mut connection);
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
    }
}

struct Cleanup<'a> {
    masters: &'a Masters,
    prefix: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.masters.delete_prefix(&self.prefix);
    }
}

/// Writes places `from..=to` of `line` as anonymous people who entered and polled: the place
/// counter moves on and each place's bit is set in the current liveness bucket.
async fn extend(pool: &RedisPool, queue_keys: &ticketing_redis::KeySpace, from: u64, to: u64) {
    let idle_ms = policy().waiting_idle_timeout.as_millis() as i64;
    let bucket_ms = (idle_ms / 4).max(50);
    let seq_key = queue_keys.key("line:seq");
    let (seconds, micros): (i64, i64) = pool
        .run(async |c| redis::cmd("TIME").arg(&seq_key).query_async(c).await)
        .await
        .unwrap_or((Utc::now().timestamp(), 0));
    let now_ms = seconds * 1000 + micros / 1000;
    let seen = queue_keys.key(&format!("line:seen:{}", now_ms / bucket_ms));
    // Whole bytes from the first byte boundary: bit 0 is the high bit of byte 0.
    let first_byte = from.div_ceil(8);
    for seq in from..(first_byte * 8).min(to + 1) {
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
    }
    let end_byte = (to + 1) / 8;
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
    let _: i64 = pool
        .run(async |c| {
            redis::cmd("INCRBY")
                .arg(&seq_key)
                .arg(to + 1 - from)
                .query_async(c)
                .await
        })
        .await
        .unwrap();
}

#[tokio::main]
async fn main() {
    let arguments: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.replace('_', "").parse().expect("a whole number"))
        .collect();
    let rooms = *arguments.first().unwrap_or(&10) as usize;
    let waiting = *arguments.get(1).unwrap_or(&1_000_000);
    let entered = (*arguments.get(2).unwrap_or(&10_000)).min(waiting);
    let instances = *arguments.get(3).unwrap_or(&3) as usize;
    let urls: Vec<String> = std::env::var("TEST_REDIS_CLUSTER_URLS")
        .expect("TEST_REDIS_CLUSTER_URLS (scripts/redis-cluster.sh urls)")
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let masters = Masters::new(&urls);
    let pool = RedisPool::new(&RedisSettings::cluster(urls.clone())).unwrap();
    let prefix = format!("bench-sim-{}", std::process::id());
    let _cleanup = Cleanup {
        masters: &masters,
        prefix: prefix.clone(),
    };
    let ids: Vec<RoomId> = (1..=rooms)
        .map(|i| RoomId::parse(&format!("room-{i}")).unwrap())
        .collect();
    let lines: Vec<Arc<RedisWaitingQueue>> = ids
        .iter()
        .map(|id| {
            let keys = RedisWaitingQueue::keys_of_room(&prefix, id);
            Arc::new(RedisWaitingQueue::new(pool.clone(), &keys, policy()).in_mode(RoomMode::Fifo))
        })
        .collect();
    let owners: Vec<usize> = ids
        .iter()
        .map(|id| masters.owner_of(&format!("{prefix}:room:{id}")))
        .collect();
    println!(
        "{rooms} rooms x {waiting} waiting ({entered} each through enter.lua), {} masters, {instances} simulated instances",
        urls.len()
    );
    for (m, (url, _)) in masters.0.iter().enumerate() {
        let held: Vec<String> = ids
            .iter()
            .zip(&owners)
            .filter(|(_, owner)| **owner == m)
            .map(|(id, _)| id.to_string())
            .collect();
        println!("  master {url}: {} rooms ({})", held.len(), held.join(", "));
    }

    let before_fill = masters.figures();
    let started = Instant::now();
    let client = ClientKey::new("bench");
    let mut tickets: Vec<Vec<Ticket>> = vec![Vec::new(); rooms];
    let mut tasks = tokio::task::JoinSet::new();
    for (index, line) in lines.iter().enumerate() {
        for worker in 0..8u64 {
            let line = line.clone();
            let client = client.clone();
            tasks.spawn(async move {
                let mut mine = Vec::new();
                for _ in (worker..entered).step_by(8) {
                    mine.push(line.enter(None, &client).await.unwrap().ticket);
                }
                (index, mine)
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        let (index, mine) = done.unwrap();
        tickets[index].extend(mine);
    }
    let entered_in = started.elapsed();
    for line_id in &ids {
        let keys = RedisWaitingQueue::keys_of_room(&prefix, line_id);
        extend(&pool, &keys, entered + 1, waiting).await;
    }
    let after_fill = masters.figures();
    println!(
        "\nfilled in {:.1} s ({} entries through enter.lua, {:.0}/s over every room)",
        started.elapsed().as_secs_f64(),
        entered * rooms as u64,
        (entered * rooms as u64) as f64 / entered_in.as_secs_f64()
    );
    println!("\n| master | rooms | used_memory growth | per waiting person |");
    println!("|---|---:|---:|---:|");
    for (m, (url, _)) in masters.0.iter().enumerate() {
        let held = owners.iter().filter(|owner| **owner == m).count();
        let growth = after_fill[m].used_memory - before_fill[m].used_memory;
        let people = held as f64 * waiting as f64;
        println!(
            "| {url} | {held} | {:.2} MiB | {} |",
            growth / 1_048_576.0,
            if people > 0.0 {
                format!("{:.2} B", growth / people)
            } else {
                "-".into()
            }
        );
    }

    // Every instance steps every room every 100 ms, staggered, each following the logs into
    // views of its own, reporting a few polls near each front.
    let before_run = masters.figures();
    let run_started = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for instance in 0..instances {
        let lines = lines.clone();
        runs.spawn(async move {
            tokio::time::sleep(STEP * instance as u32 / instances as u32).await;
            let mut views: Vec<LineView> = lines.iter().map(|_| LineView::default()).collect();
            let mut ticker = tokio::time::interval(STEP);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let (mut steps, mut admitted) = (0u64, 0u64);
            let deadline = Instant::now() + RUN;
            while Instant::now() < deadline {
                ticker.tick().await;
                let work = lines.iter().zip(views.iter()).map(|(line, view)| {
                    let head = view.head();
                    let seen: Vec<u64> = (1..=KEEP_ALIVES_PER_STEP).map(|k| head + k * 7).collect();
                    let cursor = view.cursor();
                    async move { line.advance(&seen, &cursor).await.unwrap() }
                });
                let results = futures::future::join_all(work).await;
                for (view, step) in views.iter_mut().zip(results) {
                    admitted += u64::from(step.report.admitted);
                    view.apply(step.sync, Utc::now());
                    steps += 1;
                }
            }
            (steps, admitted)
        });
    }
    let (mut steps, mut admitted) = (0u64, 0u64);
    while let Some(done) = runs.join_next().await {
        let (s, a) = done.unwrap();
        steps += s;
        admitted += a;
    }
    let run_for = run_started.elapsed().as_secs_f64();
    let after_run = masters.figures();
    println!(
        "\n{instances} instances x {rooms} rooms stepped every 100 ms for {run_for:.1} s: {steps} steps ({:.0}/s), {admitted} admitted ({:.1}/s per room, rate 100)",
        steps as f64 / run_for,
        admitted as f64 / run_for / rooms as f64
    );
    println!("\n| master | rooms | commands/s (inside scripts included) | Redis CPU |");
    println!("|---|---:|---:|---:|");
    for (m, (url, _)) in masters.0.iter().enumerate() {
        let held = owners.iter().filter(|owner| **owner == m).count();
        println!(
            "| {url} | {held} | {:.0} | {:.1} % |",
            (after_run[m].commands - before_run[m].commands) / run_for,
            (after_run[m].cpu - before_run[m].cpu) / run_for * 100.0
        );
    }

    // One instance's QueueService over every room: polls of people far back, from tokens this
    // instance never handed out, answered from memory with nothing kept per person.
    let keys = TokenKeys::new(SigningKey::new(vec![7; 32]).unwrap(), None);
    let service = QueueService::new(
        Arc::new(RedisWaitingQueue::new(
            pool.clone(),
            &RedisWaitingQueue::keys_of_room(&prefix, &RoomId::default_room()),
            policy(),
        )),
        keys.clone(),
        policy(),
        Arc::new(SystemClock),
        Arc::new(FixedSeed(DrawSeed::from_bytes([7; 32]))),
    );
    for (id, line) in ids.iter().zip(&lines) {
        service.open_room(
            *id,
            line.clone() as Arc<dyn WaitingQueue>,
            policy(),
            RoomMode::Fifo,
        );
        service.advance_room(id).await.unwrap();
    }
    let far_back: Vec<QueueToken> = ids
        .iter()
        .zip(&tickets)
        .flat_map(|(id, tickets)| {
            let keys = keys.clone();
            let epoch = tickets.first().map_or(1, |t| t.epoch);
            (0..10_000u64).map(move |i| {
                keys.seal_in_room(
                    id,
                    &Ticket {
                        epoch,
                        seq: waiting - i,
                        user: None,
                    },
                )
            })
        })
        .collect();
    let before_polls = masters.figures();
    let polled_started = Instant::now();
    let mut answered = 0u64;
    for token in &far_back {
        if service.poll(token.clone()).await.is_ok() {
            answered += 1;
        }
    }
    let polled_for = polled_started.elapsed().as_secs_f64();
    let after_polls = masters.figures();
    let commands: f64 = (0..masters.0.len())
        .map(|m| after_polls[m].commands - before_polls[m].commands)
        .sum();
    println!(
        "\none instance, {} polls of people far back in {rooms} rooms (tokens it never handed out): {answered} answered in {polled_for:.2} s; {commands:.0} Redis commands meanwhile on every master (no step ran); waiting places kept in memory: {}",
        far_back.len(),
        service.polls_kept()
    );
}
