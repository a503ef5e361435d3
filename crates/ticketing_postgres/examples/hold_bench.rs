//! Holds per second as an on-sale fills, with the tables' statistics stale, against what the
//! machine commits one row at a time, in one run.
//!
//! cargo run --release -p ticketing_postgres --example hold_bench -- [seconds per phase] [callers]
//!
//! Uses a schema of its own in `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/ticketing_test`): one performance of 400,000 seats and
//! 100,000 users, autovacuum off for the tables and analyzed once before any hold (the
//! statistics of an on-sale's first minutes: stale). The event relay runs as the app runs it
//! (every 200 ms, 500 events), publishing nowhere. Phases, each `seconds` long (default 15):
//!
//! 1. holds of distinct free seats by `callers` concurrent tasks (default 32) on a pool of 32,
//!    the performance empty;
//! 2. the same once 150,000 holds are live (the holds are written in bulk, as the adapter writes
//!    them, their events sent: the index entries they leave are the ones an on-sale leaves);
//! 3. a hold's latency at 1 and 256 concurrent callers (150,000 live holds, pool of 32);
//! 4. `pgbench -M prepared` running a one-row `UPDATE seats ... WHERE performance_id = $1 AND
//!    seat_no = $2` and its commit at `callers` connections on the same table: the rate the
//!    machine commits one-row transactions at.
//!
//! Rows read per hold are PostgreSQL's own counts (`pg_stat_user_tables` and
//! `pg_stat_user_indexes` of the schema, the outbox's tables left out as the relay reads them),
//! taken after the pool's connections have been idle long enough to hand them over. Needs
//! `pgbench` (postgresql-contrib on Debian, or /usr/lib/postgresql/*/bin).

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::cast_precision_loss)]

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ticketing_domain::events::{Event, EventOutbox, EventPublisher};
use ticketing_domain::ids::{ConcertId, PerformanceId, SeatNo, UserId};
use ticketing_domain::reservation::{
    HoldError, HoldRequest, HoldTtl, SeatInventory, SeatLimit, SeatSelection,
};
use ticketing_domain::InfrastructureError;
use ticketing_postgres::pool::build_pool;
use ticketing_postgres::{PgEventOutbox, PgPool, PgPoolSettings, PgSeatInventory};
use ticketing_testkit::TestDatabase;

const SEATS: usize = 400_000;
/// The phases hold seats of this first block, in a scattered order; the bulk holds take seats
/// after it, so every hold of a phase asks for a free seat.
const PHASE_SEATS: usize = 250_000;
const USERS: usize = 100_000;
const LIVE_HOLDS: usize = 150_000;
const POOL: usize = 32;
/// Whether a phase ran out of seats (said once).
static RAN_OUT: AtomicBool = AtomicBool::new(false);
/// The app's default (`max_seats_per_user`): the per-user count runs on every hold.
const SEATS_PER_USER: u32 = 4;

const FIXTURE: &str = "
ALTER TABLE seats SET (autovacuum_enabled = off);
ALTER TABLE reservations SET (autovacuum_enabled = off);
ALTER TABLE outbox_events SET (autovacuum_enabled = off);
ALTER TABLE users SET (autovacuum_enabled = off);
ALTER TABLE performances SET (autovacuum_enabled = off);
INSERT INTO concerts (id, title, artist, venue) VALUES (1, 'Bench', 'Bench', 'Bench');
INSERT INTO performances (id, concert_id, starts_at, total_seats)
     VALUES (1, 1, now() + interval '30 days', 400000);
INSERT INTO seats (performance_id, seat_no, grade, price)
     SELECT 1, n, 'R', 150000 FROM generate_series(1, 400000) n;
INSERT INTO users (id) SELECT generate_series(1, 100000);
ANALYZE;";

/// Live holds taken in bulk from seat 200,001 on, as the adapter records them, with their
/// events, which the relay then has sent (`$1` how many).
fn fill(count: usize) -> String {
    format!(
        "
WITH held AS (
    UPDATE seats
       SET status = 'HELD', hold_expires_at = now() + interval '1 hour',
           reservation_id = nextval(pg_get_serial_sequence('reservations', 'id'))
     WHERE performance_id = 1 AND seat_no > {PHASE_SEATS} AND seat_no <= {PHASE_SEATS} + {count}
 RETURNING reservation_id, seat_no, price, hold_expires_at
), recorded AS (
    INSERT INTO reservations (id, user_id, performance_id, seat_no, price, status, expires_at)
    SELECT reservation_id, seat_no % {USERS} + 1, 1, seat_no, price, 'HELD', hold_expires_at
      FROM held
 RETURNING id, user_id, seat_no, price
)
INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no, amount)
SELECT 'reservation.held', id, user_id, 1, seat_no, price FROM recorded;
UPDATE outbox_events SET sent_at = now() WHERE sent_at IS NULL;"
    )
}

/// Rows read from the hold's tables, sequentially or through an index.
const HOLD_ROWS_READ: &str = "
SELECT sum(seq_tup_read + coalesce(idx_tup_fetch, 0))::bigint FROM pg_stat_user_tables
 WHERE schemaname = current_schema() AND relname <> 'outbox_events'";

/// Index entries read from the hold's tables' indexes.
const HOLD_INDEX_ENTRIES_READ: &str = "
SELECT sum(idx_tup_read)::bigint FROM pg_stat_user_indexes
 WHERE schemaname = current_schema() AND relname <> 'outbox_events'";

/// Entries the relay read from the outbox's three unsent-event indexes.
const OUTBOX_UNSENT_ENTRIES: &str = "
SELECT coalesce(sum(idx_tup_read), 0)::bigint FROM pg_stat_user_indexes
 WHERE schemaname = current_schema() AND indexrelname LIKE 'outbox\\_events\\_unsent%'";

/// Scans of the outbox's three unsent-event indexes.
const OUTBOX_UNSENT_SCANS: &str = "
SELECT coalesce(sum(idx_scan), 0)::bigint FROM pg_stat_user_indexes
 WHERE schemaname = current_schema() AND indexrelname LIKE 'outbox\\_events\\_unsent%'";

/// A backend hands its counters over once it has been idle a second.
const STATISTICS_SETTLE: Duration = Duration::from_millis(2_500);

/// Publishes nowhere: the relay's reads and writes are what is measured.
struct Nowhere;

#[async_trait]
impl EventPublisher for Nowhere {
    async fn publish(&self, _events: &[Event]) -> Result<(), InfrastructureError> {
        Ok(())
    }
}

/// The `i`-th seat of the phases: every seat of the first block once, scattered.
fn phase_seat(i: usize) -> i64 {
    // 7,919 is prime and divides neither 2 nor 5, so i -> i * 7,919 mod 250,000 is a permutation.
    ((i * 7_919) % PHASE_SEATS + 1) as i64
}

struct PhaseResult {
    holds: usize,
    /// Holds answered "unavailable" (the pool's checkout or statement timeout: a 503 in the app).
    unavailable: usize,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl PhaseResult {
    fn per_second(&self) -> f64 {
        self.holds as f64 / self.seconds
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank =
            ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }
}

/// Holds distinct free seats from `callers` tasks for `seconds`.
async fn phase(
    inventory: &Arc<PgSeatInventory>,
    cursor: &Arc<AtomicUsize>,
    callers: usize,
    seconds: u64,
) -> PhaseResult {
    let ttl = HoldTtl::new(Duration::from_secs(3_600)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..callers)
        .map(|_| {
            let (inventory, cursor) = (inventory.clone(), cursor.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut unavailable = 0;
                while Instant::now() < deadline {
                    let i = cursor.fetch_add(1, Ordering::Relaxed);
                    if i >= PHASE_SEATS {
                        // Faster holds than the block was sized for: the phase ends early,
                        // its rate still measured over the time it ran.
                        if !RAN_OUT.swap(true, Ordering::Relaxed) {
                            eprintln!("the phases ran out of seats: a phase ended early");
                        }
                        break;
                    }
                    let request = HoldRequest {
                        user: UserId::new((i % USERS) as i64 + 1).unwrap(),
                        concert: ConcertId::new(1).unwrap(),
                        performance: PerformanceId::new(1).unwrap(),
                        seats: SeatSelection::one(SeatNo::new(phase_seat(i)).unwrap()),
                    };
                    let asked = Instant::now();
                    match inventory
                        .hold(request, ttl, SeatLimit::new(SEATS_PER_USER))
                        .await
                    {
                        Ok(_) => latencies.push(asked.elapsed()),
                        Err(HoldError::Infrastructure(error)) => {
                            if unavailable == 0 {
                                eprintln!("a hold was unavailable: {}", error.chain());
                            }
                            unavailable += 1;
                        }
                        Err(other) => panic!("a free seat was refused: {other:?}"),
                    }
                }
                (latencies, unavailable)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut unavailable = 0;
    for worker in workers {
        let (answered, refused) = worker.await.unwrap();
        latencies.extend(answered);
        unavailable += refused;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    PhaseResult {
        holds: latencies.len(),
        unavailable,
        seconds,
        latencies,
    }
}

/// Rows and index entries read so far from the hold's tables.
async fn hold_reads(db: &TestDatabase) -> (i64, i64) {
    tokio::time::sleep(STATISTICS_SETTLE).await;
    (
        db.query_i64(HOLD_ROWS_READ).await,
        db.query_i64(HOLD_INDEX_ENTRIES_READ).await,
    )
}

/// Rows and index entries read per hold between two readings.
fn per_hold(before: (i64, i64), after: (i64, i64), holds: usize) -> String {
    format!(
        "{:.1} / {:.1}",
        (after.0 - before.0) as f64 / holds as f64,
        (after.1 - before.1) as f64 / holds as f64
    )
}

fn pgbench() -> Option<String> {
    let found = Command::new("sh")
        .arg("-c")
        .arg("command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n 1")
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    (!path.is_empty()).then_some(path)
}

/// One-row UPDATE + commit per transaction on the seats, at `clients` connections.
fn one_row_commits(db: &TestDatabase, clients: usize, seconds: u64) -> Option<f64> {
    let pgbench = pgbench()?;
    let script = format!(
        "\\set seat random(1, {SEATS})\n\
         UPDATE seats SET price = price WHERE performance_id = 1 AND seat_no = :seat;\n"
    );
    let script_path = std::env::temp_dir().join(format!("one-row-{}.sql", db.schema()));
    std::fs::write(&script_path, script).unwrap();
    let base_url = db.url().split('?').next().unwrap().to_string();
    let output = Command::new(pgbench)
        .env("PGOPTIONS", format!("-c search_path={}", db.schema()))
        .args(["-n", "-M", "prepared", "-j", "2"])
        .args(["-c", &clients.to_string()])
        .args(["-T", &seconds.to_string()])
        .arg("-f")
        .arg(&script_path)
        .arg(&base_url)
        .output()
        .expect("run pgbench");
    let _ = std::fs::remove_file(&script_path);
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
}

fn pool(db: &TestDatabase) -> PgPool {
    let mut settings = PgPoolSettings::new(db.url());
    settings.max_size = POOL;
    build_pool(&settings).unwrap()
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

#[tokio::main]
async fn main() {
    let arguments: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let seconds = arguments.first().copied().unwrap_or(15);
    let callers = arguments.get(1).copied().unwrap_or(32) as usize;

    let db = TestDatabase::new().await;
    db.execute(FIXTURE).await;
    println!(
        "schema {}: {SEATS} seats, {USERS} users, statistics taken before any hold; \
         {seconds} s per phase, {callers} callers, pool of {POOL}",
        db.schema()
    );

    let inventory = Arc::new(PgSeatInventory::new(pool(&db)));
    let outbox = PgEventOutbox::new(pool(&db));
    let relaying = Arc::new(AtomicBool::new(true));
    let relay = {
        let relaying = relaying.clone();
        tokio::spawn(async move {
            let publisher: Arc<dyn EventPublisher> = Arc::new(Nowhere);
            while relaying.load(Ordering::Relaxed) {
                outbox.relay(500, publisher.clone()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let cursor = Arc::new(AtomicUsize::new(0));
    let outbox_entries_before = db.query_i64(OUTBOX_UNSENT_ENTRIES).await;
    let outbox_scans_before = db.query_i64(OUTBOX_UNSENT_SCANS).await;

    let reads_before = hold_reads(&db).await;
    let empty = phase(&inventory, &cursor, callers, seconds).await;
    let reads_empty = per_hold(reads_before, hold_reads(&db).await, empty.holds);

    let live = db.query_i64("SELECT count(*) FROM reservations").await;
    db.execute(&fill(LIVE_HOLDS - usize::try_from(live).unwrap()))
        .await;
    let live = db
        .query_i64("SELECT count(*) FROM reservations WHERE status = 'HELD' AND expires_at > now()")
        .await;

    let reads_before = hold_reads(&db).await;
    let filled = phase(&inventory, &cursor, callers, seconds).await;
    let reads_filled = per_hold(reads_before, hold_reads(&db).await, filled.holds);

    let alone = phase(&inventory, &cursor, 1, seconds).await;
    let crowd = phase(&inventory, &cursor, 256, seconds).await;

    relaying.store(false, Ordering::Relaxed);
    relay.await.unwrap();
    tokio::time::sleep(STATISTICS_SETTLE).await;
    let outbox_entries = db.query_i64(OUTBOX_UNSENT_ENTRIES).await - outbox_entries_before;
    let outbox_scans = db.query_i64(OUTBOX_UNSENT_SCANS).await - outbox_scans_before;
    let unsent = db
        .query_i64("SELECT count(*) FROM outbox_events WHERE sent_at IS NULL")
        .await;

    let commits = one_row_commits(&db, callers, seconds);

    println!();
    println!("| phase | live holds | holds | unavailable | holds/s | p50 ms | p99 ms | rows / index entries read per hold |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, live_at_start, result, reads) in [
        (
            format!("{callers} callers, empty"),
            0,
            &empty,
            Some(reads_empty.as_str()),
        ),
        (
            format!("{callers} callers, filled"),
            live,
            &filled,
            Some(reads_filled.as_str()),
        ),
        ("1 caller, filled".to_string(), live, &alone, None),
        ("256 callers, filled".to_string(), live, &crowd, None),
    ] {
        println!(
            "| {name} | {live_at_start} | {} | {} | {:.0} | {:.2} | {:.2} | {} |",
            result.holds,
            result.unavailable,
            result.per_second(),
            millis(result.percentile(0.50)),
            millis(result.percentile(0.99)),
            reads.unwrap_or("-"),
        );
    }
    println!();
    println!(
        "filled / empty: {:.2}",
        filled.per_second() / empty.per_second()
    );
    match commits {
        Some(tps) => println!(
            "pgbench one-row UPDATE + commit, -M prepared -c {callers} -j 2, same table: {tps:.0}/s; \
             holds/s filled / that: {:.3}",
            filled.per_second() / tps
        ),
        None => println!("pgbench not found or failed: install postgresql-contrib for the baseline"),
    }
    println!(
        "relay: the three unsent-event indexes read {outbox_entries} entries in {outbox_scans} \
         scans ({:.1} per scan); {unsent} events unsent at the end",
        outbox_entries as f64 / outbox_scans.max(1) as f64
    );
}
