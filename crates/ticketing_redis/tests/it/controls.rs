//! The operator's controls of the Redis waiting queue (`QueueControls`) and a scheduled opening
//! with its fair draw, against a real Redis, each test under a key prefix of its own.
//!
//! Times are Redis's: an opening is judged by Redis's clock, and an admission at Redis time `t`
//! is ACTIVE until `t + active_ttl`. Openings are first scheduled far ahead (so that entering many
//! people never races the clock), then moved to a moment just ahead, which the line's stored
//! times are then moved past (`TestRedis::pass`) instead of waiting for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ticketing_domain::queue::{
    drawn_order, ControlError, DrawRange, DrawSeed, Entered, Judgement, LineChanges, LineDraw,
    LineEvent, LineSettings, LineStatus, LineStep, LineView, QueueControls, QueuePolicy, Seq,
    SettingsChange, SyncCursor, Ticket, TicketState, WaitingQueue,
};
use ticketing_redis::RedisWaitingQueue;
use ticketing_testkit::TestRedis;

use support::{another_instance, client, policy_idling_after, queue, user, TTL, UNLIMITED};

/// Long enough that nobody in a pre-queue is dropped for idling during a test.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

fn policy(max_active: u32, admit_per_second: u32) -> QueuePolicy {
    policy_idling_after(max_active, admit_per_second, IDLE_TIMEOUT)
}

fn non_zero(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap()
}

fn position(state: &TicketState) -> Option<u64> {
    match state {
        TicketState::Waiting { position } => Some(*position),
        TicketState::Active { .. } => None,
    }
}

fn is_active(state: &TicketState) -> bool {
    matches!(state, TicketState::Active { .. })
}

fn until_of(state: &TicketState) -> DateTime<Utc> {
    match state {
        TicketState::Active { until } => *until,
        other => panic!("expected ACTIVE, got {other:?}"),
    }
}

/// What a view should say of a ticket the store describes as `state`.
fn judgement(state: Option<TicketState>) -> Judgement {
    match state {
        Some(TicketState::Active { until }) => Judgement::Active { until },
        Some(TicketState::Waiting { position }) => Judgement::Waiting { position },
        None => Judgement::Dead,
    }
}

fn at_ms(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

/// When (Redis time, ms since the epoch) a ticket ACTIVE until `until` under `ttl` was admitted.
fn admitted_at(until: DateTime<Utc>, ttl: Duration) -> i64 {
    until.timestamp_millis() - i64::try_from(ttl.as_millis()).unwrap()
}

/// A change of the rate, the room and the session length only.
fn limits(rate: Option<i64>, max_active: Option<i64>, ttl_seconds: Option<i64>) -> SettingsChange {
    SettingsChange::new(None, rate, max_active, ttl_seconds, None, Utc::now()).unwrap()
}

/// One step from `cursor`, which then moves to where the step says the next one continues.
async fn step(queue: &RedisWaitingQueue, seen: &[Seq], cursor: &mut SyncCursor) -> LineStep {
    let step = queue.advance(seen, cursor).await.unwrap();
    *cursor = step.sync.cursor.clone();
    step
}

/// The places a step's feed reports admitted, in the feed's order (a `Since` feed only).
fn admitted_in_feed(step: &LineStep) -> Vec<Seq> {
    match &step.sync.changes {
        LineChanges::Since(events) => events
            .iter()
            .flat_map(|event| match event {
                LineEvent::Admitted { seqs, .. } => seqs.clone(),
                LineEvent::Revoked { .. } => Vec::new(),
            })
            .collect(),
        other => panic!("expected the changes since the cursor, got {other:?}"),
    }
}

/// Starts the line with one admission (revoked again) and a cursor after it, so that the
/// steps that follow read the changes since (a cursor taken while the change log is still
/// empty is older than the log's floor once anything is published: its next step is a
/// snapshot, without the order of admissions).
async fn a_line_followed_from(queue: &RedisWaitingQueue) -> SyncCursor {
    let first = queue.enter(None, &client()).await.unwrap();
    assert!(is_active(&first.state));
    let mut cursor = SyncCursor::default();
    step(queue, &[], &mut cursor).await;
    assert!(queue.revoke(&first.ticket).await.unwrap());
    cursor
}

fn random_seed() -> DrawSeed {
    DrawSeed::from_bytes(rand::random())
}

/// Draws `range` as an instance does, from a seed of its own: answers whether it counted.
async fn draw(queue: &RedisWaitingQueue, range: DrawRange) -> bool {
    let seed = random_seed();
    queue
        .draw(range, &seed, &drawn_order(&seed, range))
        .await
        .unwrap()
}

/// Schedules an opening `in_ms` after Redis's now (whole milliseconds, as the store keeps it),
/// through `queue`; returns the opening time.
async fn schedule_opening(
    queue: &RedisWaitingQueue,
    redis: &TestRedis,
    in_ms: i64,
) -> DateTime<Utc> {
    let now = redis.now_ms().await;
    let opens_at = at_ms(now + in_ms);
    let change = SettingsChange::new(None, None, None, None, Some(Some(opens_at)), at_ms(now))
        .unwrap()
        .with_draw_seed(random_seed());
    let (_, after) = queue.change(&change).await.unwrap();
    assert_eq!(after.opens_at, Some(opens_at));
    opens_at
}

/// A pre-queue that does not open while the test fills it.
async fn start_pre_queue(queue: &RedisWaitingQueue, redis: &TestRedis) -> DateTime<Utc> {
    schedule_opening(queue, redis, 3_600_000).await
}

/// Moves the scheduled opening to a second ahead, then lets a little more than that second
/// pass for the line; returns the opening time as the line now keeps it (moved with the rest).
async fn open_now(queue: &RedisWaitingQueue, redis: &TestRedis) -> DateTime<Utc> {
    let opens_at = schedule_opening(queue, redis, 1000).await;
    let elapsed = Duration::from_millis(1001);
    redis.pass(elapsed, IDLE_TIMEOUT).await;
    opens_at - elapsed
}

/// Spearman's rank correlation of two rankings of `0..n` (both permutations, so no ties).
fn spearman(pairs: &[(u64, u64)]) -> f64 {
    let n = pairs.len() as f64;
    let squared: f64 = pairs
        .iter()
        .map(|(x, y)| {
            let d = *x as f64 - *y as f64;
            d * d
        })
        .sum();
    1.0 - 6.0 * squared / (n * (n * n - 1.0))
}

#[tokio::test]
async fn status_starts_from_the_policy_and_a_change_keeps_what_it_does_not_name() {
    let redis = TestRedis::new();
    let policy = policy(100, 50);
    let a = queue(&redis, policy);
    let b = another_instance(&redis, policy);
    let configured = LineSettings::from_policy(&policy);

    let untouched = LineStatus {
        settings: configured,
        waiting: 0,
        active: 0,
    };
    assert_eq!(a.status().await.unwrap(), untouched);
    assert_eq!(b.status().await.unwrap(), untouched);

    let (before, rate_changed) = a.change(&limits(Some(7), None, None)).await.unwrap();
    assert_eq!(before, configured);
    assert_eq!(
        rate_changed,
        LineSettings {
            admit_per_second: non_zero(7),
            ..configured
        }
    );

    let (before, paused) = b.change(&SettingsChange::pause(true)).await.unwrap();
    assert_eq!(before, rate_changed, "the other instance starts from it");
    assert_eq!(
        paused,
        LineSettings {
            paused: true,
            ..rate_changed
        }
    );

    let (before, all) = a.change(&limits(None, Some(3), Some(120))).await.unwrap();
    assert_eq!(before, paused);
    let expected = LineSettings {
        paused: true,
        admit_per_second: non_zero(7),
        max_active: non_zero(3),
        active_ttl: Duration::from_secs(120),
        opens_at: None,
    };
    assert_eq!(all, expected);

    let (before, resumed) = b.change(&SettingsChange::pause(false)).await.unwrap();
    assert_eq!(before, expected);
    let expected = LineSettings {
        paused: false,
        ..expected
    };
    assert_eq!(resumed, expected);

    // An empty change answers the settings in force and changes nothing.
    assert_eq!(
        a.change(&SettingsChange::default()).await.unwrap(),
        (expected, expected)
    );
    for instance in [&a, &b] {
        assert_eq!(instance.status().await.unwrap().settings, expected);
        let step = instance.advance(&[], &SyncCursor::default()).await.unwrap();
        assert_eq!(step.settings, expected, "a step carries the live settings");
    }

    // Another instance, configured otherwise, follows the live settings too.
    let mut other_policy = policy;
    other_policy.max_active = non_zero(999);
    other_policy.admit_per_second = non_zero(999);
    other_policy.active_ttl = Duration::from_secs(33);
    let c = another_instance(&redis, other_policy);
    assert_eq!(c.status().await.unwrap().settings, expected);

    // The line's size is in the status, on every instance.
    let mut entries = Vec::new();
    for _ in 0..5 {
        entries.push(a.enter(None, &client()).await.unwrap());
    }
    assert_eq!(
        entries.iter().filter(|e| is_active(&e.state)).count(),
        3,
        "the new room"
    );
    let status = b.status().await.unwrap();
    assert_eq!((status.waiting, status.active), (2, 3));
}

#[tokio::test]
async fn a_new_room_and_session_length_bind_admissions_on_every_instance() {
    let redis = TestRedis::new();
    let policy = policy(100, UNLIMITED);
    let a = queue(&redis, policy);
    let b = another_instance(&redis, policy);

    a.change(&limits(None, Some(2), None)).await.unwrap();
    assert_eq!(b.status().await.unwrap().settings.max_active, non_zero(2));

    let mut tickets = Vec::new();
    for i in 0..6 {
        let instance = if i % 2 == 0 { &a } else { &b };
        let entry = instance.enter(None, &client()).await.unwrap();
        if i < 2 {
            assert!(is_active(&entry.state), "entry {i}: {entry:?}");
        } else {
            assert_eq!(position(&entry.state), Some(i - 1), "entry {i}");
        }
        tickets.push(entry.ticket);
    }
    let (mut cursor_a, mut cursor_b) = (SyncCursor::default(), SyncCursor::default());
    for (instance, cursor) in [(&a, &mut cursor_a), (&b, &mut cursor_b)] {
        let full = step(instance, &[], cursor).await;
        assert_eq!((full.report.admitted, full.report.active), (0, 2));
        assert_eq!(full.settings.max_active, non_zero(2));
    }

    // A shorter session, set on b: the next admission, by a's step, lasts that long.
    let (_, after) = b.change(&limits(None, None, Some(30))).await.unwrap();
    assert_eq!(after.active_ttl, Duration::from_secs(30));
    assert!(a.revoke(&tickets[0]).await.unwrap());
    let before_ms = redis.now_ms().await;
    let freed = step(&a, &[], &mut cursor_a).await;
    let after_ms = redis.now_ms().await;
    assert_eq!((freed.report.admitted, freed.report.active), (1, 2));
    assert_eq!(admitted_in_feed(&freed), vec![tickets[2].seq], "the front");
    let until = until_of(&a.lookup(&tickets[2], false).await.unwrap().unwrap());
    let admitted = admitted_at(until, Duration::from_secs(30));
    assert!(
        (before_ms..=after_ms).contains(&admitted),
        "ACTIVE until {until}: admitted at {admitted}, not within [{before_ms}, {after_ms}]"
    );
    // Sessions begun before keep their length.
    let older = until_of(&a.lookup(&tickets[1], false).await.unwrap().unwrap());
    assert!(
        older - until > chrono::Duration::seconds(500),
        "{older} vs {until}"
    );

    // b's step with the room full admits nobody; a larger room, set on a, is used by b.
    let full = step(&b, &[], &mut cursor_b).await;
    assert_eq!((full.report.admitted, full.report.active), (0, 2));
    a.change(&limits(None, Some(4), None)).await.unwrap();
    let grown = step(&b, &[], &mut cursor_b).await;
    assert_eq!((grown.report.admitted, grown.report.active), (2, 4));
    assert_eq!(
        admitted_in_feed(&grown),
        vec![tickets[3].seq, tickets[4].seq],
        "in arrival order"
    );
    assert_eq!(grown.settings.max_active, non_zero(4));
    assert_eq!(
        a.lookup(&tickets[5], false).await.unwrap(),
        Some(TicketState::Waiting { position: 1 })
    );

    // The session length holds for an admission at entry too.
    assert!(a.revoke(&tickets[1]).await.unwrap());
    assert!(b.revoke(&tickets[5]).await.unwrap());
    let emptied = step(&a, &[], &mut cursor_a).await;
    assert_eq!(
        (emptied.report.dropped_idle, emptied.report.waiting),
        (1, 0)
    );
    let before_ms = redis.now_ms().await;
    let straight_in = b.enter(None, &client()).await.unwrap();
    let after_ms = redis.now_ms().await;
    let admitted = admitted_at(until_of(&straight_in.state), Duration::from_secs(30));
    assert!(
        (before_ms..=after_ms).contains(&admitted),
        "{straight_in:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_rate_binds_admissions_on_every_instance() {
    let redis = TestRedis::new();
    let policy = policy(1000, UNLIMITED);
    let a = queue(&redis, policy);
    let b = another_instance(&redis, policy);
    let rate = 2;
    let (_, after) = a.change(&limits(Some(rate), None, None)).await.unwrap();
    assert_eq!(after.admit_per_second, non_zero(2));

    redis.wait_for_next_second().await;
    let mut entries: Vec<Entered> = Vec::new();
    for i in 0..12 {
        let instance = if i % 2 == 0 { &a } else { &b };
        entries.push(instance.enter(None, &client()).await.unwrap());
    }
    let mut admissions: BTreeMap<Seq, DateTime<Utc>> = entries
        .iter()
        .filter(|e| is_active(&e.state))
        .map(|e| (e.ticket.seq, until_of(&e.state)))
        .collect();
    assert!(
        (1..=4).contains(&admissions.len()),
        "{} admitted at entry",
        admissions.len()
    );

    // Both instances step for a little over two seconds of Redis's own clock: the rate over
    // real seconds is what is observed, so the store's clock is not moved here.
    let (mut cursor_a, mut cursor_b) = (SyncCursor::default(), SyncCursor::default());
    step(&a, &[], &mut cursor_a).await;
    step(&b, &[], &mut cursor_b).await;
    let started = Instant::now();
    let mut by_steps = 0;
    while started.elapsed() < Duration::from_millis(2200) {
        for (instance, cursor) in [(&a, &mut cursor_a), (&b, &mut cursor_b)] {
            let step = step(instance, &[], cursor).await;
            assert_eq!(step.settings.admit_per_second, non_zero(2));
            by_steps += step.report.admitted;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for entry in &entries {
        if let Some(TicketState::Active { until }) = a.lookup(&entry.ticket, false).await.unwrap() {
            admissions.insert(entry.ticket.seq, until);
        }
    }

    assert!(by_steps >= 2, "admission ran: {by_steps} in 2.2 s");
    let last = *admissions.keys().last().unwrap();
    assert_eq!(
        admissions.keys().copied().collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "first come, first served"
    );
    let mut per_second: BTreeMap<i64, u32> = BTreeMap::new();
    for until in admissions.values() {
        *per_second
            .entry(admitted_at(*until, TTL).div_euclid(1000))
            .or_default() += 1;
    }
    assert!(
        per_second.values().all(|n| *n <= 2),
        "admitted per Redis second: {per_second:?}"
    );
}

#[tokio::test]
async fn paused_nobody_is_admitted_and_active_tickets_stay_until_resumed_in_order() {
    let redis = TestRedis::new();
    let policy = policy(10, UNLIMITED);
    let a = queue(&redis, policy);
    let b = another_instance(&redis, policy);
    let active: Vec<Entered> = vec![
        a.enter(None, &client()).await.unwrap(),
        b.enter(Some(user(1)), &client()).await.unwrap(),
    ];
    assert!(active.iter().all(|e| is_active(&e.state)));

    let (before, after) = a.change(&SettingsChange::pause(true)).await.unwrap();
    assert!(!before.paused);
    assert_eq!(
        after,
        LineSettings {
            paused: true,
            ..before
        }
    );

    // The room has space for eight more, yet everyone waits.
    let mut waiting = Vec::new();
    for i in 0..4_u64 {
        let instance = if i % 2 == 0 { &b } else { &a };
        let user = (i == 2).then(|| user(2));
        let entry = instance.enter(user, &client()).await.unwrap();
        assert_eq!(entry.state, TicketState::Waiting { position: i + 1 });
        waiting.push(entry.ticket);
    }
    let (mut cursor_a, mut cursor_b) = (SyncCursor::default(), SyncCursor::default());
    for _ in 0..3 {
        for (instance, cursor) in [(&a, &mut cursor_a), (&b, &mut cursor_b)] {
            let step = step(instance, &[], cursor).await;
            assert_eq!(step.report.admitted, 0);
            assert_eq!((step.report.waiting, step.report.active), (4, 2));
            assert!(step.settings.paused);
        }
    }
    for entry in &active {
        assert_eq!(
            b.lookup(&entry.ticket, true).await.unwrap(),
            Some(entry.state),
            "ACTIVE tickets keep working"
        );
    }
    let again = a.enter(Some(user(1)), &client()).await.unwrap();
    assert_eq!(
        (again.ticket, again.state),
        (active[1].ticket, active[1].state),
        "an ACTIVE user entering again keeps it"
    );
    let again = a.enter(Some(user(2)), &client()).await.unwrap();
    assert_eq!(again.ticket, waiting[2]);
    assert_eq!(again.state, TicketState::Waiting { position: 3 });
    for (index, ticket) in waiting.iter().enumerate() {
        assert_eq!(
            a.lookup(ticket, true).await.unwrap(),
            Some(TicketState::Waiting {
                position: index as u64 + 1
            })
        );
    }
    let status = a.status().await.unwrap();
    assert!(status.settings.paused);
    assert_eq!((status.waiting, status.active), (4, 2));

    // Resumed on the other instance: the next step admits in arrival order.
    let (before, after) = b.change(&SettingsChange::pause(false)).await.unwrap();
    assert!(before.paused && !after.paused);
    let resumed = step(&a, &[], &mut cursor_a).await;
    assert!(!resumed.settings.paused);
    assert_eq!((resumed.report.admitted, resumed.report.active), (4, 6));
    assert_eq!(
        admitted_in_feed(&resumed),
        waiting.iter().map(|t| t.seq).collect::<Vec<_>>()
    );
    for ticket in &waiting {
        assert!(is_active(&b.lookup(ticket, false).await.unwrap().unwrap()));
    }
    assert!(is_active(&a.enter(None, &client()).await.unwrap().state));
}

/// The big one: a pre-queue of 2,000 anonymous and 50 bound entries, opened with a fair draw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_opening_draws_a_fair_order_once_and_admits_through_it() {
    let redis = TestRedis::new();
    let policy = policy(100_000, UNLIMITED);
    let a = queue(&redis, policy);
    let b = another_instance(&redis, policy);

    // Admitted before the opening was scheduled: not part of the draw.
    let mut early = Vec::new();
    for _ in 0..5 {
        let entry = a.enter(None, &client()).await.unwrap();
        assert!(is_active(&entry.state));
        early.push(entry);
    }
    let mut cursor_a = SyncCursor::default();
    let mut cursor_b = SyncCursor::default();
    step(&a, &[], &mut cursor_a).await;
    step(&b, &[], &mut cursor_b).await;

    let far = start_pre_queue(&b, &redis).await;
    assert_eq!(a.status().await.unwrap().settings.opens_at, Some(far));

    // The pre-queue: everyone waits at position 0. Every 41st is bound to a user.
    let count: u64 = 2050;
    let mut pre_queue: Vec<Ticket> = Vec::new();
    let mut bound: HashMap<i64, Ticket> = HashMap::new();
    let entering = Instant::now();
    for i in 0..count {
        let instance = if i % 2 == 0 { &a } else { &b };
        let who = (i % 41 == 7).then(|| i64::try_from(i).unwrap() + 1);
        let entry = instance.enter(who.map(user), &client()).await.unwrap();
        assert_eq!(entry.state, TicketState::Waiting { position: 0 }, "{i}");
        if let Some(id) = who {
            bound.insert(id, entry.ticket);
        }
        pre_queue.push(entry.ticket);
    }
    println!("entered {count} in {:?}", entering.elapsed());
    assert_eq!(bound.len(), 50);
    let seqs: Vec<Seq> = pre_queue.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, (6..=5 + count).collect::<Vec<_>>());
    for (id, ticket) in &bound {
        let again = b.enter(Some(user(*id)), &client()).await.unwrap();
        assert_eq!(again.ticket, *ticket, "one place per user in the pre-queue");
        assert_eq!(again.state, TicketState::Waiting { position: 0 });
    }
    for ticket in pre_queue.iter().step_by(97) {
        assert_eq!(
            a.lookup(ticket, true).await.unwrap(),
            Some(TicketState::Waiting { position: 0 })
        );
    }
    // Three leave before the draw: the first to arrive, most likely drawn to later places.
    let left_before: Vec<Ticket> = pre_queue[..3].to_vec();
    for ticket in &left_before {
        assert!(b.revoke(ticket).await.unwrap());
    }
    for (instance, cursor) in [(&a, &mut cursor_a), (&b, &mut cursor_b)] {
        let step = step(instance, &[], cursor).await;
        assert_eq!(
            step.report.admitted, 0,
            "nobody is admitted before the opening"
        );
        assert_eq!(step.draw_due, None);
        assert_eq!(step.sync.draw, None);
        assert_eq!(step.settings.opens_at, Some(far));
        assert_eq!((step.report.waiting, step.report.active), (count, 5));
    }
    let status = b.status().await.unwrap();
    assert_eq!((status.waiting, status.active), (count, 5));

    // The opening: its draw is due, the same on both instances, and nobody is admitted yet.
    let opens_at = open_now(&a, &redis).await;
    let range = DrawRange {
        after: 5,
        through: 5 + count,
    };
    for (instance, cursor) in [(&a, &mut cursor_a), (&b, &mut cursor_b)] {
        let step = step(instance, &[], cursor).await;
        assert_eq!(step.draw_due, Some(range));
        assert_eq!(step.report.admitted, 0);
        assert_eq!(step.settings.opens_at, Some(opens_at));
    }
    assert_eq!(a.draw_order().await.unwrap(), None, "not drawn yet");

    // Entries after the opening (and its first step), before its draw: not part of it.
    let mut after_opening = Vec::new();
    for _ in 0..10 {
        let entry = b.enter(None, &client()).await.unwrap();
        assert!(!is_active(&entry.state), "{entry:?}");
        after_opening.push(entry.ticket);
    }
    let due = step(&b, &[], &mut cursor_b).await;
    assert_eq!(
        due.draw_due,
        Some(range),
        "the range is fixed at the opening"
    );
    assert_eq!(due.report.admitted, 0);

    // Both instances draw at once: exactly one order counts.
    let (drawn_a, drawn_b) = {
        let (a, b) = (a.clone(), b.clone());
        let on_a = tokio::spawn(async move { draw(&a, range).await });
        let on_b = tokio::spawn(async move { draw(&b, range).await });
        (on_a.await.unwrap(), on_b.await.unwrap())
    };
    assert!(
        drawn_a ^ drawn_b,
        "exactly one draw counts: {drawn_a}, {drawn_b}"
    );
    assert!(!draw(&a, range).await, "drawn once");
    let (range_a, order) = a.draw_order().await.unwrap().unwrap();
    let (range_b, order_b) = b.draw_order().await.unwrap().unwrap();
    assert_eq!((range_a, range_b), (range, range));
    assert_eq!(order, order_b, "one order for every instance");

    // A permutation of the range, uncorrelated with arrival.
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, seqs, "every pre-queue entry exactly once");
    let place_of: HashMap<Seq, Seq> = order
        .iter()
        .enumerate()
        .map(|(i, seq)| (*seq, range.after + 1 + i as u64))
        .collect();
    let ranks: Vec<(u64, u64)> = seqs
        .iter()
        .map(|seq| (seq - range.after - 1, place_of[seq] - range.after - 1))
        .collect();
    let rho = spearman(&ranks);
    let kept_order = seqs
        .windows(2)
        .filter(|pair| place_of[&pair[0]] < place_of[&pair[1]])
        .count() as f64
        / (seqs.len() - 1) as f64;
    let displaced = seqs.iter().filter(|seq| place_of[seq] != **seq).count();
    println!(
        "draw of {}: Spearman rho {rho:.4}, kept order with successor {kept_order:.4}, \
         {displaced} displaced",
        seqs.len()
    );
    assert!(rho.abs() < 0.1, "Spearman rho {rho}");
    assert!(
        (0.45..=0.55).contains(&kept_order),
        "kept order {kept_order}"
    );
    assert!(displaced > seqs.len() * 9 / 10, "{displaced} displaced");

    // Before any admission: the drawn places first, by their place, then everyone after the
    // opening by arrival, behind every drawn place.
    let mut after_draw = Vec::new();
    for _ in 0..10 {
        let entry = a.enter(None, &client()).await.unwrap();
        after_draw.push(entry);
    }
    for entry in &after_draw {
        assert_eq!(
            entry.state,
            TicketState::Waiting {
                position: entry.ticket.seq - range.after
            }
        );
    }
    let latecomers: Vec<Ticket> = after_opening
        .iter()
        .copied()
        .chain(after_draw.iter().map(|e| e.ticket))
        .collect();
    let left_ids: HashSet<Seq> = left_before.iter().map(|t| t.seq).collect();
    // Every ticket's state by the store, given the head and what was admitted so far.
    let check_positions = |head: Seq, admitted: HashSet<Seq>| {
        let (a, place_of, pre_queue, latecomers, left_ids) =
            (&a, &place_of, &pre_queue, &latecomers, &left_ids);
        async move {
            for ticket in pre_queue.iter().chain(latecomers) {
                let place = place_of.get(&ticket.seq).copied().unwrap_or(ticket.seq);
                let state = a.lookup(ticket, false).await.unwrap();
                if left_ids.contains(&ticket.seq) {
                    assert_eq!(state, None, "{ticket:?} left");
                } else if place <= head {
                    assert!(admitted.contains(&ticket.seq), "{ticket:?} decided");
                    assert!(is_active(&state.unwrap()), "{ticket:?}: {state:?}");
                } else {
                    assert!(!admitted.contains(&ticket.seq), "{ticket:?}");
                    assert_eq!(
                        state,
                        Some(TicketState::Waiting {
                            position: place - head
                        }),
                        "{ticket:?} at place {place}, head {head}"
                    );
                }
            }
        }
    };
    check_positions(range.after, HashSet::new()).await;
    for ticket in &latecomers {
        let position = position(&a.lookup(ticket, false).await.unwrap().unwrap()).unwrap();
        assert!(position > range.len(), "{ticket:?} at {position}");
    }
    // One place per user holds through the draw.
    for (id, ticket) in &bound {
        let again = b.enter(Some(user(*id)), &client()).await.unwrap();
        assert_eq!(again.ticket, *ticket);
        assert_eq!(
            again.state,
            TicketState::Waiting {
                position: place_of[&ticket.seq] - range.after
            }
        );
    }

    // Admission: steps on both instances; a's feed is read in order, b's steps feed a view
    // that loads the order. The drawn places go first, in the drawn order (skipping those who
    // left), then the latecomers by arrival.
    let expected_order: Vec<Seq> = order
        .iter()
        .copied()
        .filter(|seq| !left_ids.contains(seq))
        .chain(latecomers.iter().map(|t| t.seq))
        .collect();
    let mut view = LineView::default();
    let mut admitted: Vec<Seq> = Vec::new();
    let mut rounds = 0;
    while admitted.len() < expected_order.len() {
        rounds += 1;
        assert!(rounds < 30, "admission stalled at {}", admitted.len());
        let by_a = step(&a, &[], &mut cursor_a).await;
        assert_eq!(by_a.draw_due, None);
        assert_eq!(by_a.settings.opens_at, None, "the opening is done");
        admitted.extend(admitted_in_feed(&by_a));
        let head = by_a.sync.head;
        if head < range.through {
            assert_eq!(by_a.sync.draw, Some(range));
            check_positions(head, admitted.iter().copied().collect()).await;
        }

        let by_b = b.advance(&[], &view.cursor()).await.unwrap();
        view.apply(by_b.sync.clone(), Utc::now());
        if let Some(to_load) = view.draw_to_load() {
            assert_eq!(to_load, range);
            view.load_draw(range, &order);
            assert_eq!(view.draw_to_load(), None);
        }
        let now = Utc::now();
        for ticket in pre_queue.iter().chain(&latecomers).step_by(7) {
            let expected = judgement(a.lookup(ticket, false).await.unwrap());
            assert_eq!(view.judge(ticket, now), expected, "{ticket:?}");
        }
    }
    println!("admitted {} in {rounds} rounds", admitted.len());
    assert_eq!(admitted, expected_order);
    let done = step(&a, &[], &mut cursor_a).await;
    assert_eq!(done.sync.draw, None, "every drawn place is decided");
    assert_eq!(done.report.waiting, 0);
    assert_eq!(
        a.draw_order().await.unwrap(),
        Some((range, order.clone())),
        "the order stays readable"
    );
    for ticket in &left_before {
        assert_eq!(a.lookup(ticket, false).await.unwrap(), None);
    }
    for entry in early.iter().chain(&after_draw) {
        assert!(is_active(
            &a.lookup(&entry.ticket, false).await.unwrap().unwrap()
        ));
    }
}

/// One small opening on a prefix of its own; answers the arrival number at the first place.
async fn first_place_of_a_small_draw(entries: usize) -> Seq {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1000, UNLIMITED));
    start_pre_queue(&queue, &redis).await;
    for _ in 0..entries {
        queue.enter(None, &client()).await.unwrap();
    }
    open_now(&queue, &redis).await;
    let range = queue
        .advance(&[], &SyncCursor::default())
        .await
        .unwrap()
        .draw_due
        .unwrap();
    assert_eq!(range.len(), entries as u64);
    assert!(draw(&queue, range).await);
    let (_, order) = queue.draw_order().await.unwrap().unwrap();
    order[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_draws_put_different_arrivals_first() {
    let runs: Vec<_> = (0..6)
        .map(|_| tokio::spawn(first_place_of_a_small_draw(12)))
        .collect();
    let mut firsts = Vec::new();
    for run in runs {
        firsts.push(run.await.unwrap());
    }
    let distinct: HashSet<Seq> = firsts.iter().copied().collect();
    assert!(
        distinct.len() > 1,
        "the same arrival first every time: {firsts:?}"
    );
}

#[tokio::test]
async fn a_cancelled_opening_leaves_arrival_order() {
    let redis = TestRedis::new();
    let policy = policy(1000, UNLIMITED);
    let a = queue(&redis, policy);
    let b = another_instance(&redis, policy);
    let mut cursor = a_line_followed_from(&a).await;
    let scheduled = start_pre_queue(&a, &redis).await;
    let mut tickets = Vec::new();
    for _ in 0..8 {
        let entry = b.enter(None, &client()).await.unwrap();
        assert_eq!(entry.state, TicketState::Waiting { position: 0 });
        tickets.push(entry.ticket);
    }
    let pre = step(&a, &[], &mut cursor).await;
    assert_eq!((pre.report.admitted, pre.draw_due), (0, None));

    let cancel = SettingsChange::new(None, None, None, None, Some(None), Utc::now()).unwrap();
    let (before, after) = b.change(&cancel).await.unwrap();
    assert_eq!(before.opens_at, Some(scheduled));
    assert_eq!(
        after,
        LineSettings {
            opens_at: None,
            ..before
        }
    );

    for (index, ticket) in tickets.iter().enumerate() {
        assert_eq!(
            a.lookup(ticket, true).await.unwrap(),
            Some(TicketState::Waiting {
                position: index as u64 + 1
            }),
            "in arrival order"
        );
    }
    let opened = step(&a, &[], &mut cursor).await;
    assert_eq!(opened.draw_due, None);
    assert_eq!(opened.sync.draw, None);
    assert_eq!(opened.settings.opens_at, None);
    assert_eq!(
        admitted_in_feed(&opened),
        tickets.iter().map(|t| t.seq).collect::<Vec<_>>(),
        "admitted in arrival order"
    );
    assert_eq!(a.draw_order().await.unwrap(), None);
    assert!(is_active(&b.enter(None, &client()).await.unwrap().state));
}

#[tokio::test]
async fn an_opening_cancelled_while_its_draw_is_due_is_never_drawn() {
    let redis = TestRedis::new();
    let policy = policy(1000, UNLIMITED);
    let a = queue(&redis, policy);
    let b = another_instance(&redis, policy);
    let mut cursor = a_line_followed_from(&a).await;
    start_pre_queue(&a, &redis).await;
    let mut tickets = Vec::new();
    for _ in 0..8 {
        tickets.push(b.enter(None, &client()).await.unwrap().ticket);
    }
    open_now(&a, &redis).await;
    let due = step(&a, &[], &mut cursor).await.draw_due.unwrap();
    assert_eq!(
        due,
        DrawRange {
            after: 1,
            through: 9
        }
    );

    let cancel = SettingsChange::new(None, None, None, None, Some(None), Utc::now()).unwrap();
    b.change(&cancel).await.unwrap();

    assert!(!draw(&b, due).await, "a late draw of it does not count");
    let opened = step(&a, &[], &mut cursor).await;
    assert_eq!(opened.draw_due, None);
    assert_eq!(opened.sync.draw, None);
    assert_eq!(
        admitted_in_feed(&opened),
        tickets.iter().map(|t| t.seq).collect::<Vec<_>>()
    );
    assert_eq!(a.draw_order().await.unwrap(), None);
}

#[tokio::test]
async fn a_new_opening_is_refused_while_the_last_draws_places_are_undecided() {
    let redis = TestRedis::new();
    let policy = policy(2, UNLIMITED);
    let a = queue(&redis, policy);
    let b = another_instance(&redis, policy);
    let mut cursor = a_line_followed_from(&a).await;
    start_pre_queue(&a, &redis).await;
    let mut tickets = Vec::new();
    for _ in 0..5 {
        tickets.push(b.enter(None, &client()).await.unwrap().ticket);
    }
    open_now(&a, &redis).await;
    let range = step(&a, &[], &mut cursor).await.draw_due.unwrap();

    let later = |redis_now: i64| {
        SettingsChange::new(
            None,
            None,
            None,
            None,
            Some(Some(at_ms(redis_now + 3_600_000))),
            at_ms(redis_now),
        )
        .unwrap()
    };
    let refused = |result: Result<(LineSettings, LineSettings), ControlError>| {
        assert!(
            matches!(result, Err(ControlError::Invalid(_))),
            "{result:?}"
        );
    };
    // Due, not drawn yet.
    refused(b.change(&later(redis.now_ms().await)).await);
    // Other settings still change meanwhile.
    b.change(&limits(None, None, Some(300))).await.unwrap();

    assert!(draw(&a, range).await);
    let (_, order) = a.draw_order().await.unwrap().unwrap();
    let by_seq: HashMap<Seq, Ticket> = tickets.iter().map(|t| (t.seq, *t)).collect();
    let mut admitted = Vec::new();
    for round in 0..2 {
        let step = step(&a, &[], &mut cursor).await;
        let now_admitted = admitted_in_feed(&step);
        assert_eq!(now_admitted.len(), 2, "round {round}");
        assert_eq!(step.sync.draw, Some(range), "round {round}");
        // Drawn, with places undecided.
        refused(a.change(&later(redis.now_ms().await)).await);
        for seq in &now_admitted {
            assert!(b.revoke(&by_seq[seq]).await.unwrap());
        }
        admitted.extend(now_admitted);
    }
    let last = step(&a, &[], &mut cursor).await;
    admitted.extend(admitted_in_feed(&last));
    assert_eq!(admitted, order, "admitted in the drawn order");
    assert_eq!(last.sync.draw, None);
    assert_eq!(last.sync.head, range.through);

    // Every drawn place decided: a new opening may be scheduled.
    let now = redis.now_ms().await;
    let (before, after) = b.change(&later(now)).await.unwrap();
    assert_eq!(before.opens_at, None);
    assert_eq!(after.opens_at, Some(at_ms(now + 3_600_000)));

    // The second opening draws its own places, and admits through its own order.
    assert!(b.revoke(&by_seq[&order[4]]).await.unwrap());
    a.change(&limits(None, Some(10), None)).await.unwrap();
    let mut second = Vec::new();
    for _ in 0..3 {
        let entry = a.enter(None, &client()).await.unwrap();
        assert_eq!(entry.state, TicketState::Waiting { position: 0 });
        second.push(entry.ticket.seq);
    }
    open_now(&b, &redis).await;
    let second_range = step(&a, &[], &mut cursor).await.draw_due.unwrap();
    assert_eq!(
        second_range,
        DrawRange {
            after: range.through,
            through: range.through + 3
        }
    );
    assert!(draw(&b, second_range).await);
    let (drawn_range, second_order) = a.draw_order().await.unwrap().unwrap();
    assert_eq!(drawn_range, second_range);
    let mut sorted = second_order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, second);
    let opened = step(&a, &[], &mut cursor).await;
    assert_eq!(admitted_in_feed(&opened), second_order);
}

#[tokio::test]
async fn an_opening_nobody_came_to_opens_at_the_first_step() {
    let redis = TestRedis::new();
    let a = queue(&redis, policy(10, UNLIMITED));
    let mut cursor = a_line_followed_from(&a).await;
    start_pre_queue(&a, &redis).await;
    open_now(&a, &redis).await;

    let opened = step(&a, &[], &mut cursor).await;

    assert_eq!(opened.draw_due, None);
    assert_eq!(opened.sync.draw, None);
    assert_eq!(opened.settings.opens_at, None);
    assert_eq!(a.status().await.unwrap().settings.opens_at, None);
    match a.draw_order().await.unwrap() {
        None => {}
        Some((range, order)) => {
            assert!(range.is_empty(), "{range:?}");
            assert!(order.is_empty(), "{order:?}");
        }
    }
    assert!(is_active(&a.enter(None, &client()).await.unwrap().state));
}

#[tokio::test]
async fn an_opening_nobody_came_to_after_an_earlier_draw_leaves_draw_order_readable() {
    let redis = TestRedis::new();
    let a = queue(&redis, policy(10, UNLIMITED));
    let mut cursor = a_line_followed_from(&a).await;
    // A first opening, drawn and fully admitted.
    start_pre_queue(&a, &redis).await;
    for _ in 0..3 {
        a.enter(None, &client()).await.unwrap();
    }
    open_now(&a, &redis).await;
    let range = step(&a, &[], &mut cursor).await.draw_due.unwrap();
    assert!(draw(&a, range).await);
    let admitted = step(&a, &[], &mut cursor).await;
    assert_eq!(admitted.report.admitted, 3);
    assert_eq!(admitted.sync.draw, None);

    // A second one, which nobody enters before it opens.
    start_pre_queue(&a, &redis).await;
    open_now(&a, &redis).await;
    let opened = step(&a, &[], &mut cursor).await;
    assert_eq!((opened.draw_due, opened.sync.draw), (None, None));
    assert_eq!(opened.settings.opens_at, None);

    let answer = a.draw_order().await;
    match answer {
        Ok(None) => {}
        Ok(Some((range, order))) => {
            assert_eq!(order.len() as u64, range.len(), "{range:?}: {order:?}");
        }
        Err(error) => panic!("draw_order failed: {error}"),
    }
}

#[tokio::test]
async fn an_entry_after_the_opening_time_is_behind_the_draw_even_before_any_step() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1000, UNLIMITED));
    start_pre_queue(&queue, &redis).await;
    for _ in 0..30 {
        queue.enter(None, &client()).await.unwrap();
    }
    open_now(&queue, &redis).await;

    // The opening time has passed; no instance has stepped since.
    let late = queue.enter(None, &client()).await.unwrap();
    assert_eq!(late.ticket.seq, 31);

    let due = queue
        .advance(&[], &SyncCursor::default())
        .await
        .unwrap()
        .draw_due
        .unwrap();
    assert_eq!(
        due,
        DrawRange {
            after: 0,
            through: 30
        },
        "only those who entered before the opening are drawn"
    );
}

/// Schedules an opening `in_ms` after Redis's now with `seed` for its draw.
async fn schedule_with_seed(
    queue: &RedisWaitingQueue,
    redis: &TestRedis,
    in_ms: i64,
    seed: DrawSeed,
) {
    let now = redis.now_ms().await;
    let change = SettingsChange::new(
        None,
        None,
        None,
        None,
        Some(Some(at_ms(now + in_ms))),
        at_ms(now),
    )
    .unwrap()
    .with_draw_seed(seed);
    queue.change(&change).await.unwrap();
}

#[tokio::test]
async fn the_seed_is_kept_from_the_scheduling_published_with_the_draw_and_forgotten_on_cancel() {
    let redis = TestRedis::new();
    let policy = policy(1000, UNLIMITED);
    let a = queue(&redis, policy);
    let b = another_instance(&redis, policy);
    let mut cursor_a = a_line_followed_from(&a).await;
    let mut cursor_b = SyncCursor::default();
    let committed = DrawSeed::from_bytes([0xab; 32]);
    schedule_with_seed(&a, &redis, 3_600_000, committed).await;
    assert_eq!(
        step(&b, &[], &mut cursor_b).await.draw,
        LineDraw {
            pending: Some(committed),
            last: None
        },
        "every instance learns the seed of the opening from its step"
    );
    for _ in 0..5 {
        b.enter(None, &client()).await.unwrap();
    }
    schedule_with_seed(&b, &redis, 1000, DrawSeed::from_bytes([1; 32])).await;
    redis.pass(Duration::from_millis(1001), IDLE_TIMEOUT).await;
    let due = step(&a, &[], &mut cursor_a).await;
    let range = due.draw_due.unwrap();
    assert_eq!(range.len(), 5);
    assert_eq!(
        due.draw.pending,
        Some(committed),
        "a moved opening keeps the seed it was scheduled with"
    );
    let computed = drawn_order(&committed, range);
    assert!(a.draw(range, &committed, &computed).await.unwrap());
    let (_, recorded) = b.draw_order().await.unwrap().unwrap();
    assert_eq!(recorded, computed);

    let opened = step(&b, &[], &mut cursor_b).await;
    assert_eq!(opened.report.admitted, 5, "everyone drawn is admitted");
    let published = LineDraw {
        pending: None,
        last: Some((range, committed)),
    };
    assert_eq!(
        opened.draw, published,
        "the seed is published with the draw"
    );
    let later = step(&b, &[], &mut cursor_b).await;
    assert_eq!(later.sync.draw, None, "every drawn place is decided");
    assert_eq!(
        later.draw, published,
        "the draw stays published once its places are decided"
    );

    let next = DrawSeed::from_bytes([0xcd; 32]);
    schedule_with_seed(&a, &redis, 3_600_000, next).await;
    assert_eq!(
        step(&b, &[], &mut cursor_b).await.draw,
        LineDraw {
            pending: Some(next),
            ..published
        }
    );
    let cancel = SettingsChange::new(None, None, None, None, Some(None), Utc::now()).unwrap();
    b.change(&cancel).await.unwrap();
    assert_eq!(
        step(&a, &[], &mut cursor_a).await.draw,
        published,
        "a cancelled opening's seed is forgotten; the last draw stays published"
    );
}
