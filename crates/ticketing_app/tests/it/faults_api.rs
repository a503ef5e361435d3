//! Faults: a dependency that goes away during traffic and comes back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};

use support::{assert_problem, TestApp};
use ticketing_app::settings::DEVELOPMENT_SIGNING_KEY;
use ticketing_domain::queue::{SigningKey, Ticket, TokenKeys};
use ticketing_testkit::LocalRedis;

/// A well-signed token of a line this instance never saw: only Redis could judge it.
fn signed_token_of_another_line() -> String {
    let keys = TokenKeys::new(
        SigningKey::new(DEVELOPMENT_SIGNING_KEY).expect("long enough"),
        None,
    );
    // Real lines' epochs are never 0.
    keys.seal(&Ticket {
        epoch: 0,
        seq: 1,
        user: None,
    })
    .as_str()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_dies_admitted_buyers_go_on_newcomers_get_503_and_it_recovers() {
    let mut redis = LocalRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&[("REDIS_URL", url.as_str())]).await;
    let token = app.active_token(Some(7)).await;
    assert_eq!(app.concerts(&token).await.status(), 200);

    redis.stop();

    let started = Instant::now();
    let entering = app.enter_queue(Some(8)).await;
    assert!(entering.headers().contains_key("retry-after"));
    assert_problem(entering, 503, "UNAVAILABLE").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered fast, not hung"
    );
    assert_eq!(
        app.concerts(&token).await.status(),
        200,
        "fail static: an admitted buyer keeps browsing"
    );
    let held = app.hold(&token, 7, 42).await;
    assert_eq!(
        held.status(),
        200,
        "and holding (the seat lives in PostgreSQL)"
    );
    assert_problem(
        app.concerts("0123456789abcdef0123456789abcdef").await,
        401,
        "TOKEN_INVALID",
    )
    .await;
    assert_problem(
        app.concerts(&signed_token_of_another_line()).await,
        503,
        "UNAVAILABLE",
    )
    .await;
    assert_problem(app.get("/readyz").await, 503, "UNAVAILABLE").await;

    redis.restart();

    let started = Instant::now();
    while app.get("/readyz").await.status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no recovery without a restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let polled: serde_json::Value = app.poll_queue(&token).await.json().await.unwrap();
    assert_eq!(
        polled["status"], "ACTIVE",
        "the append-only file kept the session"
    );
    let entered = app.enter(Some(8)).await;
    assert!(entered["token"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_postgres_crashes_requests_get_503_fast_nothing_acknowledged_is_lost_and_it_recovers()
{
    let postgres = ticketing_testkit::LocalPostgres::start();
    let url = postgres.url("ticketing");
    ticketing_postgres::migrations::create_database_if_missing(&url)
        .await
        .unwrap();
    ticketing_postgres::migrations::run_pending(&url)
        .await
        .unwrap();
    let pool =
        ticketing_postgres::pool::build_pool(&ticketing_postgres::PgPoolSettings::new(url.clone()))
            .unwrap();
    ticketing_postgres::demo_data::load(&pool).await.unwrap();
    drop(pool);
    let app = TestApp::spawn_with(&[
        ("DATABASE_URL", url.as_str()),
        ("APP__CATALOG__MAX_STALENESS_MS", "0"),
    ])
    .await;
    let token = app.active_token(Some(7)).await;
    app.charge(7, 500_000, None).await;
    let acknowledged = app.held(&token, 7, 42).await;
    let paid = app.held(&token, 7, 43).await;

    postgres.crash();

    let started = Instant::now();
    let hold = app.hold(&token, 7, 44).await;
    assert!(hold.headers().contains_key("retry-after"));
    assert_problem(hold, 503, "UNAVAILABLE").await;
    assert_problem(
        app.pay(&token, paid, 7, Some("pay-43")).await,
        503,
        "UNAVAILABLE",
    )
    .await;
    assert_problem(app.seats(&token, "1", "119").await, 503, "UNAVAILABLE").await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded, not hung: {:?}",
        started.elapsed()
    );
    assert_problem(app.get("/readyz").await, 503, "UNAVAILABLE").await;

    postgres.start_again();

    let started = Instant::now();
    while app.get("/readyz").await.status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no recovery without a restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shown: serde_json::Value = app
        .reservation(&token, acknowledged)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["status"], "HELD",
        "the acknowledged hold survived the crash"
    );
    assert_eq!(
        app.seat_status(&token, 44).await,
        "AVAILABLE",
        "the refused hold left nothing"
    );
    let retried = app.pay(&token, paid, 7, Some("pay-43")).await;
    assert_eq!(
        retried.status(),
        200,
        "the refused payment can be retried with its key"
    );
    let balance: serde_json::Value = app.balance(7).await.json().await.unwrap();
    assert_eq!(balance["balance"], 350_000, "charged exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_gives_503_within_the_command_timeout_not_a_hang() {
    let redis = LocalRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&[("REDIS_URL", url.as_str())]).await;
    let token = app.active_token(None).await;

    redis.pause();

    let started = Instant::now();
    let entering = app.enter_queue(None).await;
    let waited = started.elapsed();
    assert_problem(entering, 503, "UNAVAILABLE").await;
    assert!(waited < Duration::from_secs(3), "answered in {waited:?}");
    let started = Instant::now();
    assert_problem(app.get("/readyz").await, 503, "UNAVAILABLE").await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        app.concerts(&token).await.status(),
        200,
        "fail static while frozen"
    );

    redis.resume();

    let started = Instant::now();
    while app.enter_queue(None).await.status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no recovery after the thaw"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_stuck_past_the_statement_timeout_is_a_503_and_changes_nothing() {
    let app = TestApp::spawn_with(&[("APP__DATABASE__STATEMENT_TIMEOUT_MS", "500")]).await;
    let token = app.active_token(None).await;
    // Another session holds the seat's row lock and does not let go: PostgreSQL is "slow".
    let blocker = app
        .db
        .open_transaction(
            "SELECT * FROM seats WHERE performance_id = 119 AND seat_no = 42 FOR UPDATE",
        )
        .await;

    let started = Instant::now();
    let stuck = app.hold(&token, 7, 42).await;
    let waited = started.elapsed();

    assert!(stuck.headers().contains_key("retry-after"));
    assert_problem(stuck, 503, "UNAVAILABLE").await;
    assert!(
        waited < Duration::from_secs(2),
        "cut at the statement timeout, after {waited:?}"
    );
    drop(blocker);
    assert_eq!(
        app.db.query_i64("SELECT count(*) FROM reservations").await,
        0,
        "the cancelled statement left nothing behind"
    );
    let started = Instant::now();
    loop {
        let retried = app.hold(&token, 7, 42).await.status();
        if retried == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still {retried} once the lock is gone"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_busy_with_a_runaway_script_answers_503_not_500_and_recovers() {
    let redis = LocalRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&[("REDIS_URL", url.as_str())]).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut control = client.get_connection().unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("busy-reply-threshold")
        .arg("100")
        .query(&mut control)
        .unwrap();
    // A script that never ends on its own: Redis answers BUSY to everyone else meanwhile.
    let runaway = std::thread::spawn({
        let client = client.clone();
        move || {
            let mut connection = client.get_connection().unwrap();
            let _: Result<(), _> = redis::cmd("EVAL")
                .arg("while true do end")
                .arg(0)
                .query(&mut connection);
        }
    });
    let started = Instant::now();
    while redis::cmd("PING").query::<String>(&mut control).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the script keeps Redis busy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let busy = app.enter_queue(None).await;

    assert!(busy.headers().contains_key("retry-after"));
    assert_problem(busy, 503, "UNAVAILABLE").await;
    let _: () = redis::cmd("SCRIPT")
        .arg("KILL")
        .query(&mut control)
        .unwrap();
    runaway.join().unwrap();
    let started = Instant::now();
    while app.enter_queue(None).await.status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "recovers by itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis killed and restarted from its append-only file answers `LOADING` while it reads the
/// file: entering the line is a 503 with `Retry-After` meanwhile (it used to be a 500), and the
/// service goes on by itself once the data is in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_loading_its_data_after_a_restart_answers_503_not_500_and_recovers() {
    let mut redis = LocalRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&[("REDIS_URL", url.as_str())]).await;
    assert_eq!(app.enter_queue(Some(7)).await.status(), 200);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut control = client.get_connection().unwrap();
    // Enough keys that loading them 10 ms each takes seconds.
    let mut filler = redis::pipe();
    for n in 0..600 {
        filler.set(format!("filler:{n}"), "x").ignore();
    }
    let _: () = filler.query(&mut control).unwrap();
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut control).unwrap();
    let rewritten = |control: &mut redis::Connection| {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(control)
            .unwrap();
        info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0")
    };
    let started = Instant::now();
    while !rewritten(&mut control) {
        assert!(started.elapsed() < Duration::from_secs(10), "AOF rewrite");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(control);

    redis.restart_loading_slowly(Duration::from_millis(10));
    assert!(
        !redis.is_loaded(),
        "still loading: the test would prove nothing"
    );
    let loading = app.enter_queue(Some(8)).await;

    assert!(loading.headers().contains_key("retry-after"));
    assert_problem(loading, 503, "UNAVAILABLE").await;
    let started = Instant::now();
    while app.enter_queue(Some(8)).await.status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "recovers by itself once loaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(redis.is_loaded());
}

/// What a Redis answers in the middle of a failover or when full: a replica refuses writes
/// (`READONLY`), a replica cut from its master refuses everything (`MASTERDOWN`), a full one
/// refuses writes (`OOM`). Each is a 503 with `Retry-After`, and the service goes on by itself
/// once Redis does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_is_a_replica_cut_off_or_full_answers_503_not_500_and_recovers() {
    let redis = LocalRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&[("REDIS_URL", url.as_str())]).await;
    assert_eq!(app.enter_queue(Some(7)).await.status(), 200);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut control = client.get_connection().unwrap();
    let mut config = |command: &[&str]| {
        let _: redis::Value = redis::cmd(command[0])
            .arg(&command[1..])
            .query(&mut control)
            .unwrap();
    };
    // (the answer, the commands that bring it about, the commands that end it)
    type Commands<'a> = &'a [&'a [&'a str]];
    let states: [(&str, Commands, Commands); 3] = [
        (
            "READONLY",
            &[&["REPLICAOF", "127.0.0.1", "1"]],
            &[&["REPLICAOF", "NO", "ONE"]],
        ),
        (
            "MASTERDOWN",
            &[
                &["CONFIG", "SET", "replica-serve-stale-data", "no"],
                &["REPLICAOF", "127.0.0.1", "1"],
            ],
            &[
                &["REPLICAOF", "NO", "ONE"],
                &["CONFIG", "SET", "replica-serve-stale-data", "yes"],
            ],
        ),
        (
            "OOM",
            &[&["CONFIG", "SET", "maxmemory", "1"]],
            &[&["CONFIG", "SET", "maxmemory", "0"]],
        ),
    ];
    for (user, (state, into, out)) in (8..).zip(states) {
        for command in into {
            config(command);
        }

        let refused = app.enter_queue(Some(user)).await;

        assert!(refused.headers().contains_key("retry-after"), "{state}");
        assert_problem(refused, 503, "UNAVAILABLE").await;
        for command in out {
            config(command);
        }
        let started = Instant::now();
        while app.enter_queue(Some(user)).await.status() != 200 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "recovers by itself after {state}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_loses_the_line_old_tokens_are_refused_newcomers_start_a_new_one_and_it_is_counted(
) {
    let redis = LocalRedis::start();
    let url = redis.url();
    let app = TestApp::spawn_with(&[("REDIS_URL", url.as_str())]).await;
    let token = app.active_token(Some(7)).await;
    assert_eq!(app.concerts(&token).await.status(), 200);
    // The loss is told from the line the instance followed, which it learns at an admission
    // step (every 100 ms): three steps' time so that it has seen the line before it is lost.
    // Nothing observable from outside tells that a step ran (the metrics are process-wide).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let _: () = redis::cmd("FLUSHALL").query(&mut connection).unwrap();

    let flushed = Instant::now();
    while app.concerts(&token).await.status() == 200 {
        assert!(
            flushed.elapsed() < Duration::from_secs(2),
            "a token of the lost line still admitted after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_problem(app.concerts(&token).await, 401, "TOKEN_INVALID").await;
    assert_problem(app.hold(&token, 7, 3).await, 401, "TOKEN_INVALID").await;
    let fresh = app.active_token(Some(7)).await;
    assert_ne!(fresh, token, "a new line, a new token");
    assert_eq!(app.concerts(&fresh).await.status(), 200);
    let started = Instant::now();
    while app.metric(r#"queue_line_lost_total{room="default"}"#).await < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the loss is counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A request that nothing else bounds (here a charge waiting on a row lock, under a statement
/// timeout longer than the deadline; in production a COMMIT waiting for a synchronous standby
/// that is gone, which no statement timeout covers) is answered 503 with `Retry-After` at the
/// request deadline, and a keyed retry afterwards applies the charge exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_is_a_503_and_a_keyed_retry_learns_the_outcome() {
    let app = TestApp::spawn_with(&[
        ("APP__SERVER__REQUEST_DEADLINE_MS", "500"),
        ("APP__DATABASE__STATEMENT_TIMEOUT_MS", "3000"),
    ])
    .await;
    let blocker = app
        .db
        .open_transaction("SELECT * FROM wallets WHERE user_id = 7 FOR UPDATE")
        .await;

    let started = Instant::now();
    let stuck = app.charge(7, 1000, Some("deadline-1")).await;
    let waited = started.elapsed();

    assert!(stuck.headers().contains_key("retry-after"));
    assert_problem(stuck, 503, "UNAVAILABLE").await;
    assert!(
        waited < Duration::from_millis(2500),
        "cut at the 500 ms deadline, not the 3 s statement timeout: {waited:?}"
    );
    drop(blocker);
    // The abandoned attempt may still hold its key until the server ends it: retry as a client
    // would, with the same key.
    let started = Instant::now();
    loop {
        let retried = app.charge(7, 1000, Some("deadline-1")).await;
        if retried.status() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the keyed retry never succeeded: {}",
            retried.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        app.db
            .query_i64("SELECT balance FROM wallets WHERE user_id = 7")
            .await,
        1000,
        "charged exactly once"
    );
}

/// `DATABASE_READ_URL` takes the catalog reads and nothing else: pointed at a server that is not
/// there, the catalog answers 503 with `Retry-After` while holds (on `DATABASE_URL`) go on.
#[tokio::test]
async fn catalog_reads_go_to_the_read_url_and_only_they_do() {
    let app =
        TestApp::spawn_with(&[("DATABASE_READ_URL", "postgres://postgres@127.0.0.1:1/none")]).await;
    let token = app.active_token(None).await;

    let concerts = app.concerts(&token).await;
    assert!(concerts.headers().contains_key("retry-after"));
    assert_problem(concerts, 503, "UNAVAILABLE").await;
    assert_eq!(app.hold(&token, 7, 42).await.status(), 200);
}
