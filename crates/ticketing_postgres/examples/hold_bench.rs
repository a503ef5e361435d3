//! Seat holds per second through the app's adapter, side by side with pgbench running the same
//! statement directly on the same database (the ceiling), in one run.
//!
//! cargo run --release -p ticketing_postgres --example hold_bench -- [holds] [concurrency]
//!
//! Uses a schema of its own in `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/ticketing_test`) holding one performance of 200,000 seats
//! and 1,000 users; each phase starts from all seats free and draws seats at random, so both
//! meet the same mix of free and already-held seats. Needs `pgbench` (postgresql-contrib on
//! Debian, or /usr/lib/postgresql/*/bin).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ticketing_domain::ids::{ConcertId, PerformanceId, SeatNo, UserId};
use ticketing_domain::reservation::{
    HoldError, HoldRequest, HoldTtl, SeatInventory, SeatLimit, SeatSelection,
};
use ticketing_postgres::inventory::HOLD_SEAT;
use ticketing_postgres::pool::build_pool;
use ticketing_postgres::{PgPoolSettings, PgSeatInventory, SEAT_RELEASED_SET};
use ticketing_testkit::TestDatabase;

const SEATS: i64 = 200_000;

const FIXTURE: &str = "
INSERT INTO concerts (id, title, artist, venue) VALUES (1, 'Bench', 'Bench', 'Bench');
INSERT INTO performances (id, concert_id, starts_at, total_seats) VALUES (1, 1, now(), 200000);
INSERT INTO seats (performance_id, seat_no, grade, price) SELECT 1, n, 'R', 150000 FROM generate_series(1, 200000) n;
INSERT INTO users (id) SELECT generate_series(1, 1000);
INSERT INTO wallets (user_id) SELECT generate_series(1, 1000);
ANALYZE;";

/// Run one by one: VACUUM cannot run inside the implicit transaction of a batch.
fn reset() -> [String; 4] {
    [
        format!("UPDATE seats SET {SEAT_RELEASED_SET} WHERE status <> 'AVAILABLE'"),
        "DELETE FROM reservations".into(),
        "VACUUM ANALYZE seats".into(),
        "VACUUM ANALYZE reservations".into(),
    ]
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

/// A tiny deterministic generator, so both phases could be replayed.
fn scatter(i: usize) -> (i64, i64) {
    let x = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17);
    ((x % SEATS as u64) as i64 + 1, ((x >> 32) % 1000) as i64 + 1)
}

#[tokio::main]
async fn main() {
    let arguments: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let holds = arguments.first().copied().unwrap_or(50_000);
    let concurrency = arguments.get(1).copied().unwrap_or(16);

    let db = TestDatabase::new().await;
    db.execute(FIXTURE).await;
    println!(
        "schema {}, {SEATS} seats, {holds} holds per phase, concurrency {concurrency}",
        db.schema()
    );

    let mut settings = PgPoolSettings::new(db.url());
    settings.max_size = concurrency;
    let inventory = Arc::new(PgSeatInventory::new(build_pool(&settings).unwrap()));
    let ttl = HoldTtl::new(Duration::from_secs(300)).unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (inventory, next, taken) = (inventory.clone(), next.clone(), taken.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= holds {
                        break;
                    }
                    let (seat, user) = scatter(i);
                    let request = HoldRequest {
                        user: UserId::new(user).unwrap(),
                        concert: ConcertId::new(1).unwrap(),
                        performance: PerformanceId::new(1).unwrap(),
                        seats: SeatSelection::one(SeatNo::new(seat).unwrap()),
                    };
                    // 1,000 users take 20 holds each: no per-user limit here.
                    match inventory.hold(request, ttl, SeatLimit::unlimited()).await {
                        Ok(_) => {
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(HoldError::SeatUnavailable { .. }) => {}
                        Err(other) => panic!("hold failed: {other:?}"),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "app adapter (PgSeatInventory::hold): {holds} holds in {elapsed:.2} s = {:.0} holds/s ({} taken, {} already held)",
        holds as f64 / elapsed,
        taken.load(Ordering::Relaxed),
        holds - taken.load(Ordering::Relaxed)
    );

    for statement in reset() {
        db.execute(&statement).await;
    }
    let Some(pgbench) = pgbench() else {
        println!("pgbench not found: install postgresql-contrib for the ceiling");
        return;
    };
    let script = format!(
        "\\set seat random(1, {SEATS})\n\\set user random(1, 1000)\n{};\n",
        HOLD_SEAT
            .replace("$1", "1")
            .replace("$2", "1")
            .replace("$3", ":seat")
            .replace("$4", ":user")
            .replace("$5", "300")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    );
    let script_path = std::env::temp_dir().join(format!("hold-{}.sql", db.schema()));
    std::fs::write(&script_path, script).unwrap();
    let base_url = db.url().split('?').next().unwrap().to_string();
    let output = Command::new(pgbench)
        .env("PGOPTIONS", format!("-c search_path={}", db.schema()))
        .args(["-n", "-M", "extended", "-j", "2"])
        .args(["-c", &concurrency.to_string()])
        .args(["-t", &(holds / concurrency).to_string()])
        .arg("-f")
        .arg(&script_path)
        .arg(&base_url)
        .output()
        .expect("run pgbench");
    let _ = std::fs::remove_file(&script_path);
    let text = String::from_utf8_lossy(&output.stdout);
    let tps = text
        .lines()
        .find(|line| line.starts_with("tps = "))
        .unwrap_or("tps = ? (pgbench failed)")
        .to_string();
    let taken = db.query_i64("SELECT count(*) FROM reservations").await;
    println!(
        "pgbench, same statement, -M extended -c {concurrency} -j 2: {} transactions, {tps} ({taken} taken)",
        (holds / concurrency) * concurrency
    );
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    }
}
