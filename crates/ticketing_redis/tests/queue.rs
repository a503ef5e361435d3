//! The Redis waiting queue against a real Redis, each test under a key prefix of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ticketing_domain::ids::UserId;
use ticketing_domain::queue::{
    ClientKey, QueueError, QueuePolicy, QueueToken, TokenState, WaitingQueue,
};
use ticketing_redis::RedisWaitingQueue;
use ticketing_testkit::TestRedis;

fn policy(max_active: u32, admit_per_second: u32) -> QueuePolicy {
    QueuePolicy {
        max_active: NonZeroU32::new(max_active).unwrap(),
        admit_per_second: NonZeroU32::new(admit_per_second).unwrap(),
        active_ttl: Duration::from_secs(600),
        waiting_idle_timeout: Duration::from_secs(60),
        entry_rate_per_client: None,
    }
}

fn queue(redis: &TestRedis, policy: QueuePolicy) -> RedisWaitingQueue {
    RedisWaitingQueue::new(redis.pool().clone(), &redis.keys(), policy)
}

fn client() -> ClientKey {
    ClientKey::new("127.0.0.1")
}

fn user(id: i64) -> UserId {
    UserId::new(id).unwrap()
}

fn position(state: &TokenState) -> Option<u64> {
    match state {
        TokenState::Waiting { position, .. } => Some(*position),
        TokenState::Active { .. } => None,
    }
}

fn is_active(state: &Option<TokenState>) -> bool {
    matches!(state, Some(TokenState::Active { .. }))
}

#[tokio::test]
async fn a_newcomer_is_active_at_once_when_there_is_room() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(10, 100));

    let entry = queue.enter(None, &client()).await.unwrap();

    match entry.state {
        TokenState::Active { user, until } => {
            assert_eq!(user, None);
            let ttl = until - chrono::Utc::now();
            assert!(ttl > chrono::Duration::seconds(590) && ttl <= chrono::Duration::seconds(601));
        }
        other => panic!("expected ACTIVE, got {other:?}"),
    }
}

#[tokio::test]
async fn tokens_are_distinct_and_carry_at_least_122_random_bits() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1000, 1000));
    let mut seen = std::collections::HashSet::new();

    for _ in 0..200 {
        let token = queue.enter(None, &client()).await.unwrap().token;
        // 32 hex digits = 128 bits.
        assert_eq!(token.as_str().len(), 32);
        assert!(seen.insert(token));
    }
}

#[tokio::test]
async fn newcomers_wait_when_the_active_set_is_full_and_are_admitted_in_arrival_order() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, 100));
    let first = queue.enter(None, &client()).await.unwrap();
    assert!(first.state.is_active());

    let mut waiting = Vec::new();
    for expected in 1..=5 {
        let entry = queue.enter(None, &client()).await.unwrap();
        assert_eq!(position(&entry.state), Some(expected));
        waiting.push(entry.token);
    }

    for (index, token) in waiting.iter().enumerate() {
        // Free the one active slot, admit, and the head of the line is the one admitted.
        let active_now = if index == 0 {
            &first.token
        } else {
            &waiting[index - 1]
        };
        assert!(queue.remove(active_now).await.unwrap());
        let report = queue.admit().await.unwrap();
        assert_eq!(report.admitted, 1);
        assert!(is_active(&queue.inspect(token, false).await.unwrap()));
        for (later_index, later) in waiting.iter().enumerate().skip(index + 1) {
            let state = queue.inspect(later, false).await.unwrap().unwrap();
            assert_eq!(position(&state), Some((later_index - index) as u64));
        }
    }
}

#[tokio::test]
async fn nobody_jumps_the_line_even_when_a_slot_frees_up() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, 100));
    let first = queue.enter(None, &client()).await.unwrap().token;
    let second = queue.enter(None, &client()).await.unwrap().token;
    queue.remove(&first).await.unwrap();

    let third = queue.enter(None, &client()).await.unwrap();

    assert_eq!(
        position(&third.state),
        Some(2),
        "the newcomer queues behind"
    );
    assert_eq!(
        position(&queue.inspect(&second, false).await.unwrap().unwrap()),
        Some(1)
    );
}

#[tokio::test]
async fn the_admission_budget_of_a_second_also_bounds_immediate_entries() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1000, 3));
    let started = Instant::now();

    let mut active = 0;
    for _ in 0..10 {
        if queue
            .enter(None, &client())
            .await
            .unwrap()
            .state
            .is_active()
        {
            active += 1;
        }
    }

    // The ten entries may straddle one second boundary: at most two seconds' budget.
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!((3..=6).contains(&active), "{active} admitted at once");
}

#[tokio::test]
async fn one_place_per_user() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, 100));
    queue.enter(None, &client()).await.unwrap();
    let before = queue.enter(None, &client()).await.unwrap();
    let first = queue.enter(Some(user(42)), &client()).await.unwrap();
    let after = queue.enter(None, &client()).await.unwrap();
    assert_eq!(position(&before.state), Some(1));
    assert_eq!(position(&first.state), Some(2));
    assert_eq!(position(&after.state), Some(3));

    let again = queue.enter(Some(user(42)), &client()).await.unwrap();

    assert_eq!(again.token, first.token);
    assert_eq!(position(&again.state), Some(2), "reloading keeps the place");
    let last = queue.enter(None, &client()).await.unwrap();
    assert_eq!(position(&last.state), Some(4), "no second place was taken");
}

#[tokio::test]
async fn an_active_user_entering_again_gets_the_same_active_token() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(10, 100));
    let first = queue.enter(Some(user(7)), &client()).await.unwrap();

    let again = queue.enter(Some(user(7)), &client()).await.unwrap();

    assert_eq!(again.token, first.token);
    assert_eq!(
        again.state, first.state,
        "same expiry: entering again does not extend the session"
    );
    match again.state {
        TokenState::Active { user: bound, .. } => assert_eq!(bound, Some(user(7))),
        other => panic!("expected ACTIVE, got {other:?}"),
    }
}

#[tokio::test]
async fn a_user_whose_token_was_removed_gets_a_new_one() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(10, 100));
    let first = queue.enter(Some(user(7)), &client()).await.unwrap();
    queue.remove(&first.token).await.unwrap();

    let again = queue.enter(Some(user(7)), &client()).await.unwrap();

    assert_ne!(again.token, first.token);
    assert_eq!(queue.inspect(&first.token, false).await.unwrap(), None);
}

#[tokio::test]
async fn capacity_is_never_exceeded_while_a_thousand_enter_concurrently() {
    let redis = TestRedis::new();
    let queue = Arc::new(queue(&redis, policy(100, 100_000)));

    let mut tasks = Vec::new();
    for i in 0..1000 {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let user = (i % 3 == 0).then(|| user(i + 1));
            queue.enter(user, &client()).await
        }));
    }
    // Admission loops run while the entries race.
    let admitters: Vec<_> = (0..2)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    queue.admit().await.unwrap();
                }
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.unwrap().unwrap().token);
    }
    for admitter in admitters {
        admitter.await.unwrap();
    }
    queue.admit().await.unwrap();

    let mut active = 0;
    let mut positions = Vec::new();
    for token in &tokens {
        match queue.inspect(token, false).await.unwrap() {
            Some(TokenState::Active { .. }) => active += 1,
            Some(TokenState::Waiting { position, .. }) => positions.push(position),
            None => panic!("a token was lost"),
        }
    }
    assert_eq!(active, 100, "exactly the capacity is active");
    positions.sort_unstable();
    assert_eq!(positions, (1..=900).collect::<Vec<u64>>());
    let report = queue.admit().await.unwrap();
    assert_eq!((report.active, report.waiting), (100, 900));
}

#[tokio::test]
async fn two_admission_loops_together_admit_no_faster_than_the_rate() {
    let redis = TestRedis::new();
    let rate = 20;
    let queue = Arc::new(queue(&redis, policy(100_000, rate)));
    // Spend this second's budget, then fill the line.
    while queue
        .enter(None, &client())
        .await
        .unwrap()
        .state
        .is_active()
    {}
    for _ in 0..300 {
        queue.enter(None, &client()).await.unwrap();
    }

    let started = Instant::now();
    let run_for = Duration::from_millis(2500);
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut admitted = 0;
                while started.elapsed() < run_for {
                    admitted += queue.admit().await.unwrap().admitted;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                admitted
            })
        })
        .collect();
    let mut total = 0;
    for handle in loops {
        total += handle.await.unwrap();
    }

    // 2.5 s touch at most 4 distinct seconds, one of whose budgets was spent before.
    assert!(total <= rate * 4, "{total} admitted in 2.5 s at {rate}/s");
    assert!(total >= rate, "admission ran: {total}");
}

#[tokio::test]
async fn an_idle_waiting_token_is_dropped_and_frees_its_place() {
    let redis = TestRedis::new();
    let mut short_idle = policy(1, 100);
    short_idle.waiting_idle_timeout = Duration::from_millis(600);
    let queue = queue(&redis, short_idle);
    queue.enter(None, &client()).await.unwrap();
    let idle = queue.enter(Some(user(5)), &client()).await.unwrap().token;
    let polling = queue.enter(None, &client()).await.unwrap().token;

    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        queue.inspect(&polling, true).await.unwrap();
    }
    let report = queue.admit().await.unwrap();

    assert_eq!(report.dropped_idle, 1);
    assert_eq!(queue.inspect(&idle, true).await.unwrap(), None);
    assert_eq!(
        position(&queue.inspect(&polling, true).await.unwrap().unwrap()),
        Some(1),
        "the poller moved up"
    );
    let again = queue.enter(Some(user(5)), &client()).await.unwrap();
    assert_ne!(again.token, idle, "the dropped user starts over");
}

#[tokio::test]
async fn an_idle_token_answers_as_unknown_even_before_the_admission_job_runs() {
    let redis = TestRedis::new();
    let mut short_idle = policy(1, 100);
    short_idle.waiting_idle_timeout = Duration::from_millis(300);
    let queue = queue(&redis, short_idle);
    queue.enter(None, &client()).await.unwrap();
    let idle = queue.enter(None, &client()).await.unwrap().token;

    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(queue.inspect(&idle, true).await.unwrap(), None);
}

#[tokio::test]
async fn an_active_token_expires_after_its_ttl() {
    let redis = TestRedis::new();
    let mut short_ttl = policy(1, 100);
    short_ttl.active_ttl = Duration::from_millis(400);
    let queue = queue(&redis, short_ttl);
    let active = queue.enter(Some(user(9)), &client()).await.unwrap().token;
    let next = queue.enter(None, &client()).await.unwrap().token;
    assert!(is_active(&queue.inspect(&active, false).await.unwrap()));

    tokio::time::sleep(Duration::from_millis(600)).await;

    assert_eq!(queue.inspect(&active, false).await.unwrap(), None);
    let report = queue.admit().await.unwrap();
    assert_eq!(
        report.admitted, 1,
        "the freed slot goes to the next in line"
    );
    assert!(is_active(&queue.inspect(&next, false).await.unwrap()));
    let again = queue.enter(Some(user(9)), &client()).await.unwrap();
    assert_ne!(again.token, active);
}

#[tokio::test]
async fn an_unknown_token_is_unknown() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, 100));

    let token = QueueToken::parse("0123456789abcdef0123456789abcdef").unwrap();

    assert_eq!(queue.inspect(&token, true).await.unwrap(), None);
    assert!(!queue.remove(&token).await.unwrap());
}

#[tokio::test]
async fn entries_past_the_per_client_rate_are_refused_with_a_retry_delay() {
    let redis = TestRedis::new();
    let mut limited = policy(1000, 1000);
    limited.entry_rate_per_client = NonZeroU32::new(5);
    let queue = queue(&redis, limited);

    let mut refused = None;
    for _ in 0..6 {
        if let Err(error) = queue.enter(None, &client()).await {
            refused = Some(error);
        }
    }
    let other_client = queue.enter(None, &ClientKey::new("10.0.0.9")).await;

    match refused {
        Some(QueueError::RateLimited { retry_after }) => {
            assert!(retry_after <= Duration::from_secs(1) && retry_after > Duration::ZERO)
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(other_client.is_ok(), "other clients are not limited");
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable_not_a_bug() {
    let pool = ticketing_redis::RedisPool::new(&ticketing_redis::RedisSettings::new(
        "redis://127.0.0.1:1",
    ))
    .unwrap();
    let queue = RedisWaitingQueue::new(pool, &ticketing_redis::KeySpace::new("x"), policy(1, 1));

    let result = queue.enter(None, &client()).await;

    assert!(matches!(
        result,
        Err(QueueError::Infrastructure(
            ticketing_domain::InfrastructureError::Unavailable(_)
        ))
    ));
}

trait IsActive {
    fn is_active(&self) -> bool;
}

impl IsActive for TokenState {
    fn is_active(&self) -> bool {
        matches!(self, TokenState::Active { .. })
    }
}

#[tokio::test]
async fn emptying_a_stack_deletes_its_keys_only() {
    let redis = TestRedis::new();
    let other = TestRedis::new();
    let queue_a = queue(&redis, policy(1, 100));
    let queue_b = queue(&other, policy(1, 100));
    for _ in 0..5 {
        queue_a.enter(None, &client()).await.unwrap();
        queue_b.enter(None, &client()).await.unwrap();
    }

    let deleted = redis
        .pool()
        .delete_matching(&redis.keys().pattern())
        .await
        .unwrap();

    assert!(deleted >= 3, "{deleted} keys deleted");
    assert!(queue_a
        .enter(None, &client())
        .await
        .unwrap()
        .state
        .is_active());
    assert!(!queue_b
        .enter(None, &client())
        .await
        .unwrap()
        .state
        .is_active());
}

#[tokio::test]
async fn a_seconds_admissions_are_spread_over_the_second_not_sent_in_one_burst() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(100_000, 20));
    while queue
        .enter(None, &client())
        .await
        .unwrap()
        .state
        .is_active()
    {}
    for _ in 0..100 {
        queue.enter(None, &client()).await.unwrap();
    }

    let started = Instant::now();
    let mut largest_step = 0;
    let mut total = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        let admitted = queue.admit().await.unwrap().admitted;
        largest_step = largest_step.max(admitted);
        total += admitted;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // 20 per second arrive as one per 50 ms, give or take a step's timing.
    assert!(largest_step <= 2, "a step admitted {largest_step} at once");
    // The first second's budget was spent before: 0.5 to 1.5 s of budget remain.
    assert!(
        (8..=32).contains(&total),
        "{total} admitted in 1.5 s at 20/s"
    );
}
