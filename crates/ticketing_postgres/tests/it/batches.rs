//! Holds combined into batches (issue #30): one transaction judges several requests, each gets
//! its own answer, a failure holds nothing, a request never waits past its deadline, and racing
//! holds never double-book or pass the per-user limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ticketing_domain::ids::{ConcertId, PerformanceId, SeatNo, UserId};
use ticketing_domain::reservation::{
    HoldError, HoldRequest, HoldTtl, Reservation, SeatInventory, SeatLimit, SeatSelection,
    SeatsPerHold,
};
use ticketing_postgres::{CombinerSettings, PgSeatInventory};
use ticketing_testkit::TestDatabase;

fn asked(user: i64, concert: i64, performance: i64, seats: &[i64]) -> HoldRequest {
    HoldRequest {
        user: UserId::new(user).unwrap(),
        concert: ConcertId::new(concert).unwrap(),
        performance: PerformanceId::new(performance).unwrap(),
        seats: SeatSelection::new(
            seats.iter().map(|s| SeatNo::new(*s).unwrap()).collect(),
            SeatsPerHold::new(NonZeroU32::new(10).unwrap()),
        )
        .unwrap(),
    }
}

fn ttl() -> HoldTtl {
    HoldTtl::new(Duration::from_secs(300)).unwrap()
}

/// A combiner that sends one batch at a time and waits `linger` for more requests: what is
/// asked within it goes in one transaction.
fn batching(db: &TestDatabase, linger: Duration, deadline: Duration) -> Arc<PgSeatInventory> {
    Arc::new(PgSeatInventory::with_combiner(
        db.pool().clone(),
        CombinerSettings {
            max_batch: NonZeroUsize::new(64).unwrap(),
            max_in_flight: NonZeroUsize::new(1).unwrap(),
            linger,
            deadline,
        },
    ))
}

type Outcome = tokio::task::JoinHandle<Result<Vec<Reservation>, HoldError>>;

/// Asks each request in turn (a few milliseconds apart, so they queue in this order).
async fn ask_in_order(
    inventory: &Arc<PgSeatInventory>,
    requests: Vec<(HoldRequest, SeatLimit)>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for (request, limit) in requests {
        let inventory = Arc::clone(inventory);
        outcomes.push(tokio::spawn(async move {
            inventory.hold(request, ttl(), limit).await
        }));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    outcomes
}

fn seats_of(held: &[Reservation]) -> Vec<i64> {
    held.iter().map(|r| i64::from(r.seat.get())).collect()
}

#[tokio::test]
async fn a_batch_answers_each_request_its_own_outcome_and_holds_the_rest() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = batching(&db, Duration::from_millis(600), Duration::from_secs(5));
    let two = SeatLimit::new(2);
    inventory
        .hold(asked(7, 1, 119, &[5]), ttl(), SeatLimit::unlimited())
        .await
        .unwrap();

    let outcomes = ask_in_order(
        &inventory,
        vec![
            (asked(8, 1, 119, &[5]), two),       // taken before the batch: 409
            (asked(9, 1, 119, &[10, 11]), two),  // held
            (asked(10, 1, 119, &[11, 12]), two), // 11 taken by the one before, same batch: 409
            (asked(11, 1, 119, &[20]), two),     // held
            (asked(11, 1, 119, &[21, 22]), two), // 1 + 2 > 2 across the batch: limit
            (asked(12, 1, 119, &[1001]), two),   // no such seat: 404
            (asked(12, 1, 999, &[1]), two),      // no such performance: 404
            (asked(12, 2, 119, &[1]), two),      // another concert's performance: 404
            (asked(99_999, 1, 119, &[30]), two), // no such user: 404
            (asked(13, 1, 119, &[31]), two),     // held
            (asked(11, 1, 119, &[23]), two),     // 1 + 1 <= 2: held
        ],
    )
    .await;
    let mut answers = Vec::new();
    for outcome in outcomes {
        answers.push(outcome.await.unwrap());
    }

    assert!(
        matches!(&answers[0], Err(HoldError::SeatUnavailable { seats, .. }) if seats == &[SeatNo::new(5).unwrap()]),
        "{:?}",
        answers[0]
    );
    assert_eq!(seats_of(answers[1].as_ref().unwrap()), vec![10, 11]);
    assert!(
        matches!(&answers[2], Err(HoldError::SeatUnavailable { seats, .. }) if seats == &[SeatNo::new(11).unwrap()]),
        "{:?}",
        answers[2]
    );
    assert_eq!(seats_of(answers[3].as_ref().unwrap()), vec![20]);
    assert!(
        matches!(
            &answers[4],
            Err(HoldError::SeatLimitReached { limit: 2, .. })
        ),
        "{:?}",
        answers[4]
    );
    for refused in &answers[5..8] {
        assert!(
            matches!(refused, Err(HoldError::SeatNotFound { .. })),
            "{refused:?}"
        );
    }
    assert!(
        matches!(&answers[8], Err(HoldError::UserNotFound(user)) if user.get() == 99_999),
        "{:?}",
        answers[8]
    );
    assert_eq!(seats_of(answers[9].as_ref().unwrap()), vec![31]);
    assert_eq!(seats_of(answers[10].as_ref().unwrap()), vec![23]);

    // Exactly the winners are held, each by its user, all in ONE transaction.
    let held: Vec<(i64, i64)> = vec![(9, 10), (9, 11), (11, 20), (13, 31), (11, 23)];
    for (user, seat) in &held {
        assert_eq!(
            db.query_i64(&format!(
                "SELECT count(*) FROM reservations r JOIN seats s
                    ON s.performance_id = r.performance_id AND s.seat_no = r.seat_no
                   AND s.reservation_id = r.id AND s.status = 'HELD'
                 WHERE r.user_id = {user} AND r.seat_no = {seat} AND r.status = 'HELD'"
            ))
            .await,
            1,
            "user {user} holds seat {seat}"
        );
    }
    assert_eq!(
        db.query_i64("SELECT count(*) FROM reservations WHERE user_id <> 7")
            .await,
        held.len() as i64,
        "nothing else is held"
    );
    assert_eq!(
        db.query_i64("SELECT count(DISTINCT xmin::text) FROM reservations WHERE user_id <> 7")
            .await,
        1,
        "the winners were written by one transaction"
    );
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM outbox_events WHERE type = 'reservation.held' AND user_id <> 7"
        )
        .await,
        held.len() as i64
    );
}

/// A database error in the batch's transaction (a trigger refusing one row of the batch's
/// write) fails every request that reached it, retryably, and holds none of them.
#[tokio::test]
async fn a_database_error_in_a_batch_holds_nothing_and_answers_every_request_unavailable() {
    let db = TestDatabase::with_demo_data().await;
    db.execute(
        "CREATE FUNCTION refuse_seat_13() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.seat_no = 13 THEN RAISE EXCEPTION 'injected failure'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_seat_13 BEFORE INSERT ON reservations
             FOR EACH ROW EXECUTE FUNCTION refuse_seat_13();",
    )
    .await;
    let inventory = batching(&db, Duration::from_millis(400), Duration::from_secs(5));

    let outcomes = ask_in_order(
        &inventory,
        vec![
            (asked(20, 1, 119, &[12]), SeatLimit::new(4)),
            (asked(21, 1, 119, &[13, 14]), SeatLimit::new(4)),
            (asked(22, 1, 119, &[15]), SeatLimit::unlimited()),
        ],
    )
    .await;
    for outcome in outcomes {
        match outcome.await.unwrap() {
            Err(HoldError::Infrastructure(error)) => {
                assert!(error.is_unavailable(), "retryable: {error}");
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    assert_eq!(db.query_i64("SELECT count(*) FROM reservations").await, 0);
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM seats WHERE status <> 'AVAILABLE' AND performance_id = 119"
        )
        .await,
        0
    );
    assert_eq!(db.query_i64("SELECT count(*) FROM outbox_events").await, 0);
    // The seats were not left locked: a batch without the failing seat holds them.
    let held = inventory
        .hold(asked(20, 1, 119, &[12, 14, 15]), ttl(), SeatLimit::new(4))
        .await
        .unwrap();
    assert_eq!(seats_of(&held), vec![12, 14, 15]);
}

/// The batch's backend is killed while it waits inside its transaction: every request of the
/// batch is answered unavailable, and nothing is held.
#[tokio::test]
async fn a_batch_whose_backend_is_killed_holds_nothing() {
    let db = TestDatabase::with_demo_data().await;
    // The batch queues behind this lock, in the middle of its transaction.
    let blocker = db
        .open_transaction(
            "SELECT 1 FROM seats WHERE performance_id = 119 AND seat_no = 52 FOR UPDATE",
        )
        .await;
    let inventory = batching(&db, Duration::from_millis(300), Duration::from_secs(10));
    let outcomes = ask_in_order(
        &inventory,
        vec![
            (asked(30, 1, 119, &[51]), SeatLimit::new(4)),
            (asked(31, 1, 119, &[52]), SeatLimit::new(4)),
            (asked(32, 1, 119, &[53, 54]), SeatLimit::unlimited()),
        ],
    )
    .await;
    let blocker_pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    // Only this test's batch can wait for the blocker's lock.
    let blocked = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE {blocker_pid} = ANY(pg_blocking_pids(pid))"
    );
    let (db_ref, blocked_ref) = (&db, &blocked);
    crate::eventually(
        "the batch waits on the seat lock",
        Duration::from_secs(5),
        move || async move { db_ref.query_i64(blocked_ref).await >= 1 },
    )
    .await;
    let killed = db
        .query_i64(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE {blocker_pid} = ANY(pg_blocking_pids(pid))"
        ))
        .await;
    assert_eq!(killed, 1, "one batch backend was waiting on the blocker");
    for outcome in outcomes {
        match outcome.await.unwrap() {
            Err(HoldError::Infrastructure(error)) => {
                assert!(error.is_unavailable(), "retryable: {error}");
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }
    drop(blocker);
    assert_eq!(db.query_i64("SELECT count(*) FROM reservations").await, 0);
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM seats WHERE status <> 'AVAILABLE' AND performance_id = 119"
        )
        .await,
        0
    );
}

/// A request that cannot be sent by its deadline (the one batch allowed at once is stuck on a
/// lock) is answered unavailable by then, and is never sent afterwards; the stuck batch's own
/// request, already at the database, gets its true answer once the lock goes.
#[tokio::test]
async fn a_request_never_waits_in_the_combiner_past_its_deadline_nor_is_held_after() {
    let db = TestDatabase::with_demo_data().await;
    let blocker = db
        .open_transaction(
            "SELECT 1 FROM seats WHERE performance_id = 119 AND seat_no = 60 FOR UPDATE",
        )
        .await;
    let inventory = batching(&db, Duration::ZERO, Duration::from_millis(300));
    let stuck = {
        let inventory = Arc::clone(&inventory);
        tokio::spawn(async move {
            inventory
                .hold(asked(40, 1, 119, &[60]), ttl(), SeatLimit::unlimited())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    let asked_at = Instant::now();
    let late = inventory
        .hold(asked(41, 1, 119, &[61]), ttl(), SeatLimit::unlimited())
        .await;
    let waited = asked_at.elapsed();
    assert!(
        matches!(&late, Err(HoldError::Infrastructure(error)) if error.is_unavailable()),
        "{late:?}"
    );
    assert!(
        waited < Duration::from_millis(800),
        "answered within its deadline (300 ms), waited {waited:?}"
    );

    blocker.batch_execute("COMMIT").await.unwrap();
    let held = stuck.await.unwrap().unwrap();
    assert_eq!(seats_of(&held), vec![60]);
    // Let the worker run whatever is left in its queue: the late request is not among it.
    inventory
        .hold(asked(42, 1, 119, &[62]), ttl(), SeatLimit::unlimited())
        .await
        .unwrap();
    assert_eq!(
        db.query_i64("SELECT count(*) FROM reservations WHERE user_id = 41")
            .await,
        0
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE performance_id = 119 AND seat_no = 61 AND status <> 'AVAILABLE'")
            .await,
        0
    );
}

/// Hundreds of holds race over a few seats through the default combiner (batches form by
/// themselves under this load): no seat is held twice, no user passes the limit, every
/// answered hold is stored and nothing is stored that was not answered a hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_holds_in_batches_never_double_book_nor_pass_the_limit() {
    const HOLDS: i64 = 400;
    const SEATS: i64 = 40;
    const USERS: i64 = 60;
    const LIMIT: u32 = 2;
    let db = TestDatabase::with_demo_data().await;
    let inventory = Arc::new(PgSeatInventory::new(db.pool().clone()));

    let tasks: Vec<_> = (0..HOLDS)
        .map(|i| {
            let inventory = Arc::clone(&inventory);
            let user = i % USERS + 1;
            let first = (i * 7) % SEATS + 1;
            let seats = if i % 3 == 0 {
                vec![first, first % SEATS + 1]
            } else {
                vec![first]
            };
            tokio::spawn(async move {
                let answer = inventory
                    .hold(asked(user, 1, 119, &seats), ttl(), SeatLimit::new(LIMIT))
                    .await;
                (user, seats, answer)
            })
        })
        .collect();
    let mut granted: HashMap<i64, i64> = HashMap::new();
    let mut per_user: HashMap<i64, usize> = HashMap::new();
    for task in tasks {
        let (user, seats, answer) = task.await.unwrap();
        match answer {
            Ok(held) => {
                assert_eq!(seats_of(&held), seats);
                for reservation in held {
                    assert!(
                        granted
                            .insert(i64::from(reservation.seat.get()), reservation.id.get())
                            .is_none(),
                        "seat {} answered held twice",
                        reservation.seat
                    );
                    *per_user.entry(user).or_default() += 1;
                }
            }
            Err(HoldError::SeatUnavailable { .. } | HoldError::SeatLimitReached { .. }) => {}
            Err(other) => panic!("hold of {seats:?} for {user}: {other:?}"),
        }
    }
    assert!(per_user.values().all(|n| *n <= LIMIT as usize));
    assert!(!granted.is_empty());
    let stored = db.query_i64("SELECT count(*) FROM reservations").await;
    assert_eq!(
        stored,
        granted.len() as i64,
        "stored exactly what was answered"
    );
    let answered: HashSet<i64> = granted.values().copied().collect();
    let ids = answered
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        db.query_i64(&format!(
            "SELECT count(*) FROM reservations WHERE status = 'HELD' AND id IN ({ids})"
        ))
        .await,
        granted.len() as i64
    );
    let most = db
        .query_i64(
            "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM reservations
              WHERE status = 'HELD' GROUP BY user_id) per_user",
        )
        .await;
    assert!(most <= i64::from(LIMIT), "a user holds {most} seats");
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM seats s WHERE s.performance_id = 119 AND s.status = 'HELD'
               AND NOT EXISTS (SELECT 1 FROM reservations r WHERE r.id = s.reservation_id
                                  AND r.status = 'HELD' AND r.seat_no = s.seat_no)"
        )
        .await,
        0
    );
}
