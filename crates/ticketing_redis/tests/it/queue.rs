//! The Redis waiting queue against a real Redis, each test under a key prefix of its own.
//!
//! Times of admission are read from the store's own answers: an admission at Redis time `t`
//! is ACTIVE until `t + active_ttl`, so the budget checks count admissions per Redis second
//! exactly, whatever the speed of the machine running the tests.
//!
//! Time passes for the line by `TestRedis::pass` (what it stored moves into the past), not by
//! sleeping: the short sessions and idle timeouts of these tests are a few seconds, so that the
//! checks made before time passes are far from them even on a busy machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ticketing_domain::queue::{
    ClientKey, Entered, Judgement, LineChanges, LineEvent, LineStep, LineView, QueueError,
    QueuePolicy, Seq, SyncCursor, Ticket, TicketState, WaitingQueue,
};
use ticketing_domain::rooms::{RoomId, RoomMode};
use ticketing_domain::InfrastructureError;
use ticketing_redis::{KeySpace, RedisPool, RedisSettings, RedisWaitingQueue};
use ticketing_testkit::TestRedis;

use support::{another_instance, client, policy_idling_after, queue, user, TTL, UNLIMITED};

fn policy(max_active: u32, admit_per_second: u32) -> QueuePolicy {
    policy_idling_after(max_active, admit_per_second, Duration::from_secs(60))
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

/// When (Redis time, ms since the epoch) a ticket ACTIVE until `until` under `ttl` was admitted.
fn admitted_at(until: DateTime<Utc>, ttl: Duration) -> i64 {
    until.timestamp_millis() - i64::try_from(ttl.as_millis()).unwrap()
}

/// One step from `cursor`, which then moves to where the step says the next one continues.
async fn step(queue: &RedisWaitingQueue, seen: &[Seq], cursor: &mut SyncCursor) -> LineStep {
    let step = queue.advance(seen, cursor).await.unwrap();
    *cursor = step.sync.cursor.clone();
    step
}

/// One step feeding `view`, as an instance's admission job does.
async fn sync_view(queue: &RedisWaitingQueue, view: &mut LineView) -> LineStep {
    let step = queue.advance(&[], &view.cursor()).await.unwrap();
    view.apply(step.sync.clone(), Utc::now());
    step
}

fn active_seqs(changes: &LineChanges) -> Vec<Seq> {
    match changes {
        LineChanges::Snapshot { active, .. } => {
            let mut seqs: Vec<Seq> = active.iter().map(|(seq, _)| *seq).collect();
            seqs.sort_unstable();
            seqs
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

#[tokio::test]
async fn a_newcomer_is_active_at_once_when_there_is_room() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(10, 100));

    let anonymous = queue.enter(None, &client()).await.unwrap();
    let bound = queue.enter(Some(user(3)), &client()).await.unwrap();

    assert_eq!(anonymous.ticket.seq, 1);
    assert_eq!(anonymous.ticket.user, None);
    assert_ne!(anonymous.ticket.epoch, 0, "epoch 0 is never a line's");
    let ttl = until_of(&anonymous.state) - Utc::now();
    assert!(
        ttl > chrono::Duration::seconds(590) && ttl <= chrono::Duration::seconds(601),
        "ACTIVE for {ttl}"
    );
    assert_eq!(bound.ticket.user, Some(user(3)));
    assert_eq!(bound.ticket.epoch, anonymous.ticket.epoch);
    assert!(is_active(&bound.state));
    assert_eq!(
        queue.lookup(&anonymous.ticket, false).await.unwrap(),
        Some(anonymous.state)
    );
}

#[tokio::test]
async fn places_are_distinct_increasing_seqs_of_one_epoch() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(10, UNLIMITED));

    let mut entries = Vec::new();
    for _ in 0..200 {
        entries.push(queue.enter(None, &client()).await.unwrap());
    }

    let seqs: Vec<Seq> = entries.iter().map(|e| e.ticket.seq).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<Seq>>());
    let epoch = entries[0].ticket.epoch;
    assert!(entries.iter().all(|e| e.ticket.epoch == epoch));
    assert!(entries[..10].iter().all(|e| is_active(&e.state)));
    let positions: Vec<Option<u64>> = entries[10..].iter().map(|e| position(&e.state)).collect();
    assert_eq!(positions, (1..=190).map(Some).collect::<Vec<_>>());
}

#[tokio::test]
async fn newcomers_wait_when_the_room_is_full_and_are_admitted_in_arrival_order() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, UNLIMITED));
    let first = queue.enter(None, &client()).await.unwrap();
    assert!(is_active(&first.state));

    let mut waiting = Vec::new();
    for expected in 1..=5 {
        let entry = queue.enter(None, &client()).await.unwrap();
        assert_eq!(position(&entry.state), Some(expected));
        waiting.push(entry.ticket);
    }

    let mut cursor = SyncCursor::default();
    step(&queue, &[], &mut cursor).await;
    for (index, ticket) in waiting.iter().enumerate() {
        // Free the one ACTIVE place, step, and the front of the line is the one admitted.
        let active_now = if index == 0 {
            &first.ticket
        } else {
            &waiting[index - 1]
        };
        assert!(queue.revoke(active_now).await.unwrap());
        let step = step(&queue, &[], &mut cursor).await;
        assert_eq!(step.report.admitted, 1);
        assert_eq!(step.report.active, 1);
        assert_eq!(step.sync.head, ticket.seq);
        let state = queue.lookup(ticket, false).await.unwrap().unwrap();
        assert_eq!(
            step.sync.changes,
            LineChanges::Since(vec![
                LineEvent::Revoked {
                    seq: active_now.seq
                },
                LineEvent::Admitted {
                    seqs: vec![ticket.seq],
                    until: until_of(&state),
                },
            ])
        );
        for (later_index, later) in waiting.iter().enumerate().skip(index + 1) {
            let state = queue.lookup(later, false).await.unwrap().unwrap();
            assert_eq!(position(&state), Some((later_index - index) as u64));
        }
    }
}

#[tokio::test]
async fn nobody_jumps_the_line_when_a_place_frees_up() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, UNLIMITED));
    let first = queue.enter(None, &client()).await.unwrap().ticket;
    let second = queue.enter(None, &client()).await.unwrap().ticket;
    assert!(queue.revoke(&first).await.unwrap());

    let third = queue.enter(None, &client()).await.unwrap();

    assert_eq!(
        position(&third.state),
        Some(2),
        "the newcomer queues behind"
    );
    assert_eq!(
        queue.lookup(&second, false).await.unwrap(),
        Some(TicketState::Waiting { position: 1 })
    );
    let step = queue.advance(&[], &SyncCursor::default()).await.unwrap();
    assert_eq!(step.report.admitted, 1);
    assert!(is_active(
        &queue.lookup(&second, false).await.unwrap().unwrap()
    ));
    assert_eq!(
        queue.lookup(&third.ticket, false).await.unwrap(),
        Some(TicketState::Waiting { position: 1 })
    );
}

#[tokio::test]
async fn immediate_entries_stay_within_the_seconds_budget() {
    let redis = TestRedis::new();
    let rate = 3;
    let queue = queue(&redis, policy(1000, rate));

    let mut entries = Vec::new();
    for _ in 0..10 {
        entries.push(queue.enter(None, &client()).await.unwrap());
    }

    let active: Vec<&Entered> = entries.iter().filter(|e| is_active(&e.state)).collect();
    // The ten entries may straddle one second boundary: at most two seconds' budget.
    assert!((3..=6).contains(&active.len()), "{} admitted", active.len());
    let mut per_second: HashMap<i64, u32> = HashMap::new();
    for entry in &active {
        let at = admitted_at(until_of(&entry.state), TTL);
        *per_second.entry(at.div_euclid(1000)).or_default() += 1;
    }
    assert!(
        per_second.values().all(|count| *count <= rate),
        "admitted per second: {per_second:?}"
    );
    // Once one waits, everybody after waits behind them.
    let (admitted, waiting) = entries.split_at(active.len());
    assert!(admitted.iter().all(|e| is_active(&e.state)));
    let positions: Vec<Option<u64>> = waiting.iter().map(|e| position(&e.state)).collect();
    assert_eq!(
        positions,
        (1..=waiting.len() as u64).map(Some).collect::<Vec<_>>()
    );
}

/// What one admission loop saw of the line.
#[derive(Debug, Default)]
struct Follower {
    /// Admitted by this loop's own steps.
    admitted_here: u32,
    /// Every admission this loop learned of, with its expiry.
    admissions: HashMap<Seq, DateTime<Utc>>,
    /// The places admitted, in the order of the feed.
    feed_order: Vec<Seq>,
}

impl Follower {
    fn take(&mut self, step: LineStep) {
        self.admitted_here += step.report.admitted;
        match step.sync.changes {
            LineChanges::Snapshot { active, .. } => self.admissions.extend(active),
            LineChanges::Since(events) => {
                for event in events {
                    if let LineEvent::Admitted { seqs, until } = event {
                        for seq in seqs {
                            self.admissions.insert(seq, until);
                            self.feed_order.push(seq);
                        }
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_admit_within_the_rate_spread_over_each_second() {
    let redis = TestRedis::new();
    let rate = 20;
    let policy = policy(100_000, rate);
    let instances = [
        Arc::new(queue(&redis, policy)),
        Arc::new(another_instance(&redis, policy)),
    ];
    // Spend this second's budget at entry, then fill the line.
    let mut admitted_at_entry = HashSet::new();
    loop {
        let entry = instances[0].enter(None, &client()).await.unwrap();
        if !is_active(&entry.state) {
            break;
        }
        admitted_at_entry.insert(entry.ticket.seq);
    }
    for _ in 0..300 {
        let entry = instances[1].enter(None, &client()).await.unwrap();
        assert!(!is_active(&entry.state));
    }

    // Real Redis seconds go by: the spread of admissions over each second, by two loops, is
    // what is observed, so the store's clock is not moved here.
    let started = Instant::now();
    let run_for = Duration::from_millis(2500);
    let loops: Vec<_> = instances
        .iter()
        .map(|instance| {
            let instance = instance.clone();
            tokio::spawn(async move {
                let mut follower = Follower::default();
                let mut cursor = SyncCursor::default();
                while started.elapsed() < run_for {
                    follower.take(step(&instance, &[], &mut cursor).await);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                follower
            })
        })
        .collect();
    let mut followers = Vec::new();
    for handle in loops {
        followers.push(handle.await.unwrap());
    }

    // Every admission is in some loop's view: each step's answer includes its own admissions.
    let mut admissions: BTreeMap<Seq, DateTime<Utc>> = BTreeMap::new();
    for follower in &followers {
        for (seq, until) in &follower.admissions {
            if let Some(known) = admissions.insert(*seq, *until) {
                assert_eq!(known, *until, "the two feeds disagree on {seq}");
            }
        }
        let mut sorted = follower.feed_order.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            follower.feed_order, sorted,
            "admitted in arrival order, each once"
        );
    }
    let last = *admissions.keys().last().unwrap();
    assert_eq!(
        admissions.keys().copied().collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "first come, first served: nobody skipped"
    );
    let by_steps: u32 = followers.iter().map(|f| f.admitted_here).sum();
    assert_eq!(
        by_steps as usize,
        admissions.len() - admitted_at_entry.len()
    );
    assert!(by_steps >= rate, "admission ran: {by_steps} in 2.5 s");

    // Per Redis second, at most `rate`; by its m-th millisecond, at most ceil(rate (m+1) / 1000).
    let mut per_second: BTreeMap<i64, Vec<(i64, Seq)>> = BTreeMap::new();
    for (seq, until) in &admissions {
        let at = admitted_at(*until, TTL);
        per_second
            .entry(at.div_euclid(1000))
            .or_default()
            .push((at.rem_euclid(1000), *seq));
    }
    for (second, admitted) in &per_second {
        assert!(
            admitted.len() <= rate as usize,
            "{} admitted in second {second}",
            admitted.len()
        );
        for (ms, seq) in admitted {
            if admitted_at_entry.contains(seq) {
                continue; // entries are admitted with the whole second's budget at once
            }
            let by_then = admitted.iter().filter(|(other, _)| other <= ms).count();
            let allowed = (i64::from(rate) * (ms + 1)).div_euclid(1000)
                + i64::from((i64::from(rate) * (ms + 1)).rem_euclid(1000) != 0);
            assert!(
                by_then as i64 <= allowed,
                "{by_then} admitted by ms {ms} of second {second}, {allowed} allowed"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_never_exceed_the_room() {
    let redis = TestRedis::new();
    let max_active = 100;
    let policy = policy(max_active, UNLIMITED);
    let instances = [
        Arc::new(queue(&redis, policy)),
        Arc::new(another_instance(&redis, policy)),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    // Admission loops run on both instances while the entries race.
    let admitters: Vec<_> = instances
        .iter()
        .map(|instance| {
            let instance = instance.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut cursor = SyncCursor::default();
                let mut steps = 0;
                while !stop.load(Ordering::Relaxed) || steps < 20 {
                    let step = step(&instance, &[], &mut cursor).await;
                    assert!(step.report.active <= u64::from(max_active), "{step:?}");
                    steps += 1;
                }
            })
        })
        .collect();
    let entries: Vec<_> = (0..600_i64)
        .map(|i| {
            let instance = instances[usize::try_from(i % 2).unwrap()].clone();
            tokio::spawn(async move {
                let user = (i % 3 == 0).then(|| user(i + 1));
                instance.enter(user, &client()).await
            })
        })
        .collect();
    let mut tickets = Vec::new();
    for entry in entries {
        tickets.push(entry.await.unwrap().unwrap().ticket);
    }
    stop.store(true, Ordering::Relaxed);
    for admitter in admitters {
        admitter.await.unwrap();
    }
    instances[0]
        .advance(&[], &SyncCursor::default())
        .await
        .unwrap();

    let mut active = Vec::new();
    let mut positions = Vec::new();
    for ticket in &tickets {
        match instances[1].lookup(ticket, false).await.unwrap() {
            Some(TicketState::Active { .. }) => active.push(ticket.seq),
            Some(TicketState::Waiting { position }) => positions.push(position),
            None => panic!("{ticket:?} was lost"),
        }
    }
    active.sort_unstable();
    assert_eq!(
        active,
        (1..=u64::from(max_active)).collect::<Vec<_>>(),
        "exactly the room is ACTIVE, the first arrived"
    );
    positions.sort_unstable();
    assert_eq!(positions, (1..=500).collect::<Vec<u64>>());
    let report = instances[1]
        .advance(&[], &SyncCursor::default())
        .await
        .unwrap()
        .report;
    assert_eq!((report.active, report.waiting), (100, 500));
}

#[tokio::test]
async fn one_place_per_user() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, UNLIMITED));
    queue.enter(None, &client()).await.unwrap();
    let before = queue.enter(None, &client()).await.unwrap();
    let first = queue.enter(Some(user(42)), &client()).await.unwrap();
    let after = queue.enter(None, &client()).await.unwrap();
    assert_eq!(position(&before.state), Some(1));
    assert_eq!(position(&first.state), Some(2));
    assert_eq!(position(&after.state), Some(3));

    let again = queue.enter(Some(user(42)), &client()).await.unwrap();

    assert_eq!(again.ticket, first.ticket);
    assert_eq!(position(&again.state), Some(2), "reloading keeps the place");
    let last = queue.enter(None, &client()).await.unwrap();
    assert_eq!(last.ticket.seq, after.ticket.seq + 1);
    assert_eq!(position(&last.state), Some(4), "no second place was taken");
}

#[tokio::test]
async fn an_active_user_entering_again_gets_the_same_active_ticket() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(10, UNLIMITED));
    let first = queue.enter(Some(user(7)), &client()).await.unwrap();

    let again = queue.enter(Some(user(7)), &client()).await.unwrap();

    assert_eq!(again.ticket, first.ticket);
    assert_eq!(again.ticket.user, Some(user(7)));
    assert!(is_active(&again.state));
    assert_eq!(
        again.state, first.state,
        "same expiry: entering again does not extend the session"
    );
}

#[tokio::test]
async fn a_user_whose_ticket_was_revoked_gets_a_new_place() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, UNLIMITED));
    let active = queue.enter(Some(user(7)), &client()).await.unwrap();
    let waiting = queue.enter(Some(user(8)), &client()).await.unwrap();
    assert!(queue.revoke(&active.ticket).await.unwrap());
    assert!(queue.revoke(&waiting.ticket).await.unwrap());

    let active_again = queue.enter(Some(user(7)), &client()).await.unwrap();
    let waiting_again = queue.enter(Some(user(8)), &client()).await.unwrap();

    assert_eq!(active_again.ticket.seq, 3);
    assert_eq!(waiting_again.ticket.seq, 4);
    assert_eq!(queue.lookup(&active.ticket, false).await.unwrap(), None);
    assert_eq!(queue.lookup(&waiting.ticket, false).await.unwrap(), None);
    assert!(
        !queue.revoke(&active.ticket).await.unwrap(),
        "ended already"
    );
    assert!(!queue.revoke(&waiting.ticket).await.unwrap());
}

#[tokio::test]
async fn an_idle_waiting_place_is_skipped_while_places_kept_alive_stay() {
    let redis = TestRedis::new();
    let mut short_idle = policy(1, UNLIMITED);
    short_idle.waiting_idle_timeout = Duration::from_secs(8);
    let queue = queue(&redis, short_idle);
    queue.enter(None, &client()).await.unwrap();
    let idle = queue.enter(Some(user(5)), &client()).await.unwrap().ticket;
    let kept_by_steps = queue.enter(None, &client()).await.unwrap().ticket;
    let kept_by_lookups = queue.enter(None, &client()).await.unwrap().ticket;

    // The idle place is dropped 8 to 10 s after its entry; the others are polled every 2 s (a
    // liveness bucket of this idle timeout), for 16 s.
    let mut cursor = SyncCursor::default();
    let mut dropped = 0;
    for _ in 0..8 {
        redis
            .pass(Duration::from_secs(2), short_idle.waiting_idle_timeout)
            .await;
        let step = step(&queue, &[kept_by_steps.seq], &mut cursor).await;
        dropped += step.report.dropped_idle;
        assert_eq!(step.report.admitted, 0, "the room stays full");
        assert!(queue
            .lookup(&kept_by_lookups, true)
            .await
            .unwrap()
            .is_some());
    }

    assert_eq!(dropped, 1, "only the idle place was skipped");
    assert_eq!(queue.lookup(&idle, true).await.unwrap(), None);
    assert_eq!(
        queue.lookup(&kept_by_steps, false).await.unwrap(),
        Some(TicketState::Waiting { position: 1 }),
        "moved up"
    );
    assert_eq!(
        queue.lookup(&kept_by_lookups, false).await.unwrap(),
        Some(TicketState::Waiting { position: 2 })
    );
    let again = queue.enter(Some(user(5)), &client()).await.unwrap();
    assert_eq!(again.ticket.seq, 5, "the dropped user starts over");
    assert_eq!(position(&again.state), Some(3));
}

#[tokio::test]
async fn an_idle_place_is_dead_to_lookup_before_any_step_reaches_it() {
    let redis = TestRedis::new();
    let mut short_idle = policy(1, UNLIMITED);
    short_idle.waiting_idle_timeout = Duration::from_secs(6);
    let queue = queue(&redis, short_idle);
    queue.enter(None, &client()).await.unwrap();
    let idle = queue.enter(None, &client()).await.unwrap().ticket;
    assert!(queue.lookup(&idle, true).await.unwrap().is_some());

    // Dropped 6 to 7.5 s after the last poll.
    redis
        .pass(Duration::from_secs(9), short_idle.waiting_idle_timeout)
        .await;

    assert_eq!(queue.lookup(&idle, true).await.unwrap(), None);
    assert_eq!(
        queue.lookup(&idle, true).await.unwrap(),
        None,
        "a poll of a dead place does not bring it back"
    );
    let step = queue.advance(&[], &SyncCursor::default()).await.unwrap();
    assert_eq!(step.report.dropped_idle, 1);
    assert_eq!(step.sync.head, idle.seq);
}

#[tokio::test]
async fn a_place_that_left_is_skipped_without_spending_the_budget() {
    let redis = TestRedis::new();
    // One admission per second: a budget spent on a place that left would leave none for `next`.
    let one_per_second = policy(100, 1);
    let queue = queue(&redis, one_per_second);
    redis.wait_for_next_second().await;
    let first = queue.enter(None, &client()).await.unwrap();
    assert!(is_active(&first.state));
    let mut left = Vec::new();
    for expected in 1..=2 {
        let entry = queue.enter(None, &client()).await.unwrap();
        assert_eq!(
            position(&entry.state),
            Some(expected),
            "this second's budget is spent"
        );
        left.push(entry.ticket);
    }
    let next = queue.enter(None, &client()).await.unwrap().ticket;
    for ticket in &left {
        assert!(queue.revoke(ticket).await.unwrap());
    }
    assert_eq!(queue.lookup(&left[0], true).await.unwrap(), None);

    // The next second: a fresh budget of one.
    redis
        .pass(Duration::from_secs(1), one_per_second.waiting_idle_timeout)
        .await;
    let step = queue.advance(&[], &SyncCursor::default()).await.unwrap();

    assert_eq!(step.report.dropped_idle, 2);
    assert_eq!(step.report.admitted, 1);
    assert_eq!(
        active_seqs(&step.sync.changes),
        vec![first.ticket.seq, next.seq]
    );
    assert!(is_active(
        &queue.lookup(&next, false).await.unwrap().unwrap()
    ));
    assert_eq!(step.sync.head, next.seq);
    assert_eq!(step.report.waiting, 0);
}

#[tokio::test]
async fn revoking_an_active_ticket_frees_its_place() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(2, UNLIMITED));
    let first = queue.enter(None, &client()).await.unwrap().ticket;
    let second = queue.enter(None, &client()).await.unwrap().ticket;
    let third = queue.enter(None, &client()).await.unwrap().ticket;
    let full = queue.advance(&[], &SyncCursor::default()).await.unwrap();
    assert_eq!((full.report.admitted, full.report.active), (0, 2));

    assert!(queue.revoke(&first).await.unwrap());
    let step = queue.advance(&[], &SyncCursor::default()).await.unwrap();

    assert_eq!((step.report.admitted, step.report.active), (1, 2));
    assert_eq!(queue.lookup(&first, false).await.unwrap(), None);
    assert!(is_active(
        &queue.lookup(&second, false).await.unwrap().unwrap()
    ));
    assert!(is_active(
        &queue.lookup(&third, false).await.unwrap().unwrap()
    ));
    assert!(!queue.revoke(&first).await.unwrap(), "only once");
}

#[tokio::test]
async fn an_active_ticket_expires_after_its_ttl_and_its_place_goes_to_the_next() {
    let redis = TestRedis::new();
    let mut short_ttl = policy(1, UNLIMITED);
    short_ttl.active_ttl = Duration::from_secs(6);
    let queue = queue(&redis, short_ttl);
    let active = queue.enter(Some(user(9)), &client()).await.unwrap().ticket;
    let next = queue.enter(None, &client()).await.unwrap().ticket;
    assert!(is_active(
        &queue.lookup(&active, false).await.unwrap().unwrap()
    ));

    redis
        .pass(Duration::from_secs(9), short_ttl.waiting_idle_timeout)
        .await;

    assert_eq!(queue.lookup(&active, false).await.unwrap(), None);
    let step = queue.advance(&[], &SyncCursor::default()).await.unwrap();
    assert_eq!(step.report.expired, 1);
    assert_eq!(
        step.report.admitted, 1,
        "the freed place goes to the next in line"
    );
    assert_eq!(active_seqs(&step.sync.changes), vec![next.seq]);
    assert!(is_active(
        &queue.lookup(&next, false).await.unwrap().unwrap()
    ));
    let again = queue.enter(Some(user(9)), &client()).await.unwrap();
    assert_eq!(again.ticket.seq, 3, "the expired user starts over");
}

/// The two hashes that bind places to users: user -> place and place -> user.
async fn user_bindings(redis: &TestRedis) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let users = redis.keys().key("line:users");
    let seq_users = redis.keys().key("line:seq_users");
    redis
        .pool()
        .run(async |connection| {
            redis::pipe()
                .cmd("HGETALL")
                .arg(&users)
                .cmd("HGETALL")
                .arg(&seq_users)
                .query_async(connection)
                .await
        })
        .await
        .unwrap()
}

fn bindings(pairs: &[(u64, Seq)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(user, seq)| (user.to_string(), seq.to_string()))
        .collect()
}

#[tokio::test]
async fn an_expired_or_idle_place_lets_go_of_its_user() {
    let redis = TestRedis::new();
    let mut short = policy(1, UNLIMITED);
    short.active_ttl = Duration::from_secs(6);
    short.waiting_idle_timeout = Duration::from_secs(8);
    let queue = queue(&redis, short);
    let expiring = queue.enter(Some(user(9)), &client()).await.unwrap();
    assert!(is_active(&expiring.state));
    let idling = queue.enter(Some(user(5)), &client()).await.unwrap();
    assert_eq!(position(&idling.state), Some(1));
    let (users, seq_users) = user_bindings(&redis).await;
    assert_eq!(users, bindings(&[(9, 1), (5, 2)]));
    assert_eq!(
        seq_users.get("1").map(String::as_str),
        Some("9"),
        "the place knows its user"
    );

    // User 9's ACTIVE session expires (6 s); user 5 never polls and idles out (8 to 10 s).
    redis
        .pass(Duration::from_secs(13), short.waiting_idle_timeout)
        .await;
    let step = queue.advance(&[], &SyncCursor::default()).await.unwrap();

    assert_eq!((step.report.expired, step.report.dropped_idle), (1, 1));
    let (users, seq_users) = user_bindings(&redis).await;
    assert!(users.is_empty(), "both users are forgotten: {users:?}");
    assert!(seq_users.is_empty(), "{seq_users:?}");
    let again = queue.enter(Some(user(9)), &client()).await.unwrap();
    assert_eq!(again.ticket.seq, 3, "user 9 starts afresh");
    assert!(is_active(&again.state), "into the room the expiry freed");
    let again = queue.enter(Some(user(5)), &client()).await.unwrap();
    assert_eq!(again.ticket.seq, 4, "user 5 starts afresh");
    assert_eq!(position(&again.state), Some(1));
    assert_eq!(user_bindings(&redis).await.0, bindings(&[(9, 3), (5, 4)]));
}

#[tokio::test]
async fn a_user_who_entered_again_before_the_sweep_keeps_the_new_place() {
    let redis = TestRedis::new();
    let mut short_ttl = policy(1, UNLIMITED);
    short_ttl.active_ttl = Duration::from_secs(6);
    let queue = queue(&redis, short_ttl);
    let first = queue.enter(Some(user(9)), &client()).await.unwrap().ticket;
    redis
        .pass(Duration::from_secs(9), short_ttl.waiting_idle_timeout)
        .await;
    // Expired, but no step has swept it yet: the user enters again and gets a new place.
    let second = queue.enter(Some(user(9)), &client()).await.unwrap();
    assert_eq!(second.ticket.seq, first.seq + 1);

    let step = queue.advance(&[], &SyncCursor::default()).await.unwrap();

    assert_eq!(step.report.expired, 1);
    let (users, seq_users) = user_bindings(&redis).await;
    assert_eq!(
        users,
        bindings(&[(9, second.ticket.seq)]),
        "the new place stays"
    );
    assert_eq!(
        seq_users,
        [(second.ticket.seq.to_string(), "9".to_string())]
            .into_iter()
            .collect()
    );
    let same = queue.enter(Some(user(9)), &client()).await.unwrap();
    assert_eq!(
        same.ticket.seq, second.ticket.seq,
        "still one place per user"
    );
}

#[tokio::test]
async fn before_anyone_enters_a_step_reports_no_line() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, UNLIMITED));

    let step = queue.advance(&[], &SyncCursor::default()).await.unwrap();

    assert_eq!(step.sync.epoch, None);
    assert_eq!((step.sync.head, step.sync.last_seq), (0, 0));
    assert!(step.sync.cursor.is_start());
    assert_eq!(step.sync.changes, LineChanges::Since(vec![]));
    assert_eq!(step.report, Default::default());
}

#[tokio::test]
async fn a_fresh_cursor_gets_a_snapshot_then_the_changes_in_order() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(2, UNLIMITED));
    let mut entries = Vec::new();
    for _ in 0..5 {
        entries.push(queue.enter(None, &client()).await.unwrap());
    }
    let tickets: Vec<Ticket> = entries.iter().map(|e| e.ticket).collect();
    let epoch = tickets[0].epoch;
    let (u1, u2) = (until_of(&entries[0].state), until_of(&entries[1].state));

    let mut cursor_a = SyncCursor::default();
    let mut view_a = LineView::default();
    let first = step(&queue, &[], &mut cursor_a).await;
    assert_eq!(first.sync.epoch, Some(epoch));
    assert_eq!((first.sync.head, first.sync.last_seq), (2, 5));
    assert!(!first.sync.cursor.is_start());
    let LineChanges::Snapshot { mut active, left } = first.sync.changes.clone() else {
        panic!("expected a snapshot, got {:?}", first.sync.changes);
    };
    active.sort_unstable();
    assert_eq!(active, vec![(1, u1), (2, u2)]);
    assert!(left.is_empty());
    view_a.apply(first.sync, Utc::now());

    // Someone waiting leaves; a second view starts now: its snapshot knows who left.
    assert!(queue.revoke(&tickets[3]).await.unwrap());
    let mut cursor_b = SyncCursor::default();
    let mut view_b = LineView::default();
    let snapshot = step(&queue, &[], &mut cursor_b).await;
    assert_eq!(
        snapshot.sync.changes,
        LineChanges::Snapshot {
            active: {
                let mut active = vec![(1, u1), (2, u2)];
                // As stored: by expiry, then by place.
                active.sort_by_key(|(seq, until)| (*until, seq.to_string()));
                active
            },
            left: vec![4],
        }
    );
    view_b.apply(snapshot.sync, Utc::now());

    // Someone ACTIVE ends; the next step admits the front and skips the one who left.
    assert!(queue.revoke(&tickets[0]).await.unwrap());
    let changes_a = step(&queue, &[], &mut cursor_a).await;
    assert_eq!(changes_a.report.admitted, 1);
    assert_eq!(changes_a.report.dropped_idle, 1);
    assert_eq!((changes_a.sync.head, changes_a.sync.last_seq), (4, 5));
    let u3 = until_of(&queue.lookup(&tickets[2], false).await.unwrap().unwrap());
    assert_eq!(
        changes_a.sync.changes,
        LineChanges::Since(vec![
            LineEvent::Revoked { seq: 4 },
            LineEvent::Revoked { seq: 1 },
            LineEvent::Admitted {
                seqs: vec![3],
                until: u3
            },
        ])
    );
    view_a.apply(changes_a.sync, Utc::now());
    let changes_b = step(&queue, &[], &mut cursor_b).await;
    assert_eq!(changes_b.report.admitted, 0, "the room is full again");
    assert_eq!(
        changes_b.sync.changes,
        LineChanges::Since(vec![
            LineEvent::Revoked { seq: 1 },
            LineEvent::Admitted {
                seqs: vec![3],
                until: u3
            },
        ])
    );
    view_b.apply(changes_b.sync, Utc::now());

    let quiet = step(&queue, &[], &mut cursor_a).await;
    assert_eq!(quiet.sync.changes, LineChanges::Since(vec![]));
    assert_eq!(quiet.sync.cursor, view_a.cursor(), "nothing new to read");

    let now = Utc::now();
    for ticket in &tickets {
        let expected = judgement(queue.lookup(ticket, false).await.unwrap());
        assert_eq!(view_a.judge(ticket, now), expected, "{ticket:?}");
        assert_eq!(view_b.judge(ticket, now), expected, "{ticket:?}");
    }
    assert_eq!(
        view_a.judge(&tickets[4], now),
        Judgement::Waiting { position: 1 }
    );
    assert_eq!(view_a.judge(&tickets[3], now), Judgement::Dead);
    assert_eq!(view_a.judge(&tickets[0], now), Judgement::Dead);
}

/// A small deterministic generator, so a failing sequence of operations can be replayed.
#[derive(Debug)]
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Steps both views until a round changes nothing in the store, so both are current.
async fn settle(
    instances: &[RedisWaitingQueue; 2],
    views: &mut [LineView; 2],
) -> (LineStep, LineStep) {
    for _ in 0..20 {
        let a = sync_view(&instances[0], &mut views[0]).await;
        let b = sync_view(&instances[1], &mut views[1]).await;
        let quiet = |step: &LineStep| {
            step.report.admitted == 0 && step.report.dropped_idle == 0 && step.report.expired == 0
        };
        if quiet(&a) && quiet(&b) {
            return (a, b);
        }
    }
    panic!("the line never settled");
}

#[tokio::test]
async fn views_fed_from_two_cursors_agree_with_lookup() {
    let redis = TestRedis::new();
    let policy = policy(3, UNLIMITED);
    let instances = [queue(&redis, policy), another_instance(&redis, policy)];
    let mut views = [LineView::default(), LineView::default()];
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let mut tickets: Vec<Ticket> = Vec::new();

    for round in 0..6 {
        for _ in 0..25 {
            let on = usize::try_from(dice.below(2)).unwrap();
            match dice.below(10) {
                0..=4 => {
                    let user = (dice.below(3) == 0).then(|| user(1 + dice.below(6) as i64));
                    let entry = instances[on].enter(user, &client()).await.unwrap();
                    if !tickets.contains(&entry.ticket) {
                        tickets.push(entry.ticket); // a user entering again gets theirs back
                    }
                }
                5..=7 if !tickets.is_empty() => {
                    let index = usize::try_from(dice.below(tickets.len() as u64)).unwrap();
                    instances[on].revoke(&tickets[index]).await.unwrap();
                }
                _ => {
                    sync_view(&instances[on], &mut views[on]).await;
                }
            }
        }

        let (a, b) = settle(&instances, &mut views).await;
        assert_eq!(a.sync.head, b.sync.head);
        assert_eq!(views[0].head(), views[1].head(), "round {round}");
        assert_eq!(views[0].undecided(), a.report.waiting, "round {round}");
        let now = Utc::now();
        let mut active = 0;
        for ticket in &tickets {
            let state = instances[0].lookup(ticket, false).await.unwrap();
            active += usize::from(matches!(state, Some(TicketState::Active { .. })));
            let expected = judgement(state);
            for (index, view) in views.iter().enumerate() {
                assert_eq!(
                    view.judge(ticket, now),
                    expected,
                    "round {round}: view {index} on {ticket:?}"
                );
            }
        }
        assert_eq!(views[0].active_count(), active, "round {round}");
        assert_eq!(views[1].active_count(), active, "round {round}");
        assert_eq!(a.report.active, active as u64, "round {round}");
    }
}

#[tokio::test]
async fn a_cursor_of_another_epoch_gets_a_snapshot() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, UNLIMITED));
    let first = queue.enter(None, &client()).await.unwrap().ticket;
    queue.enter(None, &client()).await.unwrap();
    let mut cursor = SyncCursor::default();
    step(&queue, &[], &mut cursor).await;
    let (_, log_id) = cursor.as_str().split_once(':').unwrap();

    let foreign = SyncCursor::new(format!("{}:{log_id}", first.epoch.wrapping_add(1)));
    let step = queue.advance(&[], &foreign).await.unwrap();

    assert_eq!(step.sync.epoch, Some(first.epoch));
    assert_eq!(active_seqs(&step.sync.changes), vec![first.seq]);
    assert_eq!(step.sync.cursor, cursor, "continues on this line");
}

#[tokio::test]
async fn a_cursor_behind_what_the_log_trimmed_gets_a_snapshot() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, UNLIMITED));
    let first = queue.enter(None, &client()).await.unwrap().ticket;
    let second = queue.enter(None, &client()).await.unwrap().ticket;
    let mut lagging = LineView::default();
    sync_view(&queue, &mut lagging).await;
    assert!(queue.revoke(&first).await.unwrap());
    let mut cursor = lagging.cursor();
    let admitted = step(&queue, &[], &mut cursor).await;
    assert_eq!(admitted.report.admitted, 1);

    // The log keeps a minute of changes (`publish` trims with MINID); an instance that fell
    // further behind, as if that minute had passed:
    let log = redis.keys().key("line:log");
    let trim_before = redis.now_ms().await + 1;
    let trimmed: i64 = redis
        .pool()
        .run(async |connection| {
            redis::cmd("XTRIM")
                .arg(&log)
                .arg("MINID")
                .arg(trim_before)
                .query_async(connection)
                .await
        })
        .await
        .unwrap();
    assert_eq!(
        trimmed, 3,
        "every change so far: two admissions and a revocation"
    );
    // `publish` records the floor it trimmed below; so does this simulation.
    let admission = redis.keys().key("line:admission");
    let _: i64 = redis
        .pool()
        .run(async |connection| {
            redis::cmd("HSET")
                .arg(&admission)
                .arg("log_floor")
                .arg(trim_before)
                .query_async(connection)
                .await
        })
        .await
        .unwrap();

    let late = sync_view(&queue, &mut lagging).await;

    let now = Utc::now();
    let second_state = queue.lookup(&second, false).await.unwrap();
    assert_eq!(
        lagging.judge(&first, now),
        Judgement::Dead,
        "the lagging view missed the revocation: {:?}",
        late.sync.changes
    );
    assert_eq!(
        lagging.judge(&second, now),
        judgement(second_state),
        "the lagging view missed the admission"
    );
    assert_eq!(
        late.sync.changes,
        LineChanges::Snapshot {
            active: vec![(second.seq, until_of(&second_state.unwrap()))],
            left: vec![],
        }
    );
}

#[tokio::test]
async fn a_ticket_of_another_epoch_is_dead() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, UNLIMITED));
    let stranger = Ticket {
        epoch: 0,
        seq: 1,
        user: None,
    };
    assert_eq!(queue.lookup(&stranger, true).await.unwrap(), None);
    assert!(!queue.revoke(&stranger).await.unwrap());

    let first = queue.enter(None, &client()).await.unwrap().ticket;
    let waiting = queue.enter(None, &client()).await.unwrap().ticket;

    assert_eq!(queue.lookup(&stranger, true).await.unwrap(), None);
    assert!(!queue.revoke(&stranger).await.unwrap());
    let of_another_line = Ticket {
        epoch: waiting.epoch.wrapping_add(1),
        ..waiting
    };
    assert_eq!(queue.lookup(&of_another_line, true).await.unwrap(), None);
    assert!(!queue.revoke(&of_another_line).await.unwrap());
    assert!(is_active(
        &queue.lookup(&first, false).await.unwrap().unwrap()
    ));
    assert_eq!(
        queue.lookup(&waiting, false).await.unwrap(),
        Some(TicketState::Waiting { position: 1 }),
        "the real ones are untouched"
    );
    let not_yet_handed_out = Ticket {
        seq: waiting.seq + 1,
        ..waiting
    };
    assert_eq!(queue.lookup(&not_yet_handed_out, true).await.unwrap(), None);
}

#[tokio::test]
async fn revoking_a_place_not_yet_handed_out_does_not_harm_whoever_gets_it() {
    let redis = TestRedis::new();
    let queue = queue(&redis, policy(1, UNLIMITED));
    let first = queue.enter(None, &client()).await.unwrap().ticket;
    // A ticket of this epoch whose place the store does not know: issued before the store lost
    // its last writes (a failover to a replica that lagged), or never issued at all.
    let unknown = Ticket {
        seq: first.seq + 1,
        ..first
    };
    assert!(!queue.revoke(&unknown).await.unwrap(), "it was not live");

    let next = queue.enter(None, &client()).await.unwrap();

    assert_eq!(next.ticket.seq, unknown.seq);
    assert_eq!(next.state, TicketState::Waiting { position: 1 });
    assert_eq!(
        queue.lookup(&next.ticket, true).await.unwrap(),
        Some(TicketState::Waiting { position: 1 }),
        "a newcomer is in line, not dead on arrival"
    );
}

#[tokio::test]
async fn entries_past_the_per_client_rate_are_refused_with_a_retry_delay() {
    let redis = TestRedis::new();
    let mut limited = policy(1000, UNLIMITED);
    limited.entry_rate_per_client = NonZeroU32::new(5);
    let queue = queue(&redis, limited);

    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(queue.enter(None, &client()).await);
    }
    let other_client = queue.enter(None, &ClientKey::new("10.0.0.9")).await;

    assert!(outcomes[..5].iter().all(Result::is_ok), "{outcomes:?}");
    match &outcomes[5] {
        Err(QueueError::RateLimited { retry_after }) => {
            assert!(*retry_after <= Duration::from_secs(1) && *retry_after > Duration::ZERO);
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(other_client.is_ok(), "other clients are not limited");
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable_quickly() {
    let pool = RedisPool::new(&RedisSettings::new("redis://127.0.0.1:1")).unwrap();
    let queue = RedisWaitingQueue::new(pool, &KeySpace::new("unreachable"), policy(1, 1));
    let ticket = Ticket {
        epoch: 1,
        seq: 1,
        user: None,
    };
    let unavailable = |result: Result<(), QueueError>| {
        assert!(
            matches!(
                result,
                Err(QueueError::Infrastructure(
                    InfrastructureError::Unavailable(_)
                ))
            ),
            "{result:?}"
        );
    };
    let started = Instant::now();

    unavailable(queue.enter(None, &client()).await.map(drop));
    unavailable(queue.lookup(&ticket, true).await.map(drop));
    unavailable(queue.revoke(&ticket).await.map(drop));
    unavailable(queue.advance(&[1], &SyncCursor::default()).await.map(drop));

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_recreated_line_has_a_new_epoch_and_the_old_tickets_are_dead() {
    let redis = TestRedis::new();
    let other = TestRedis::new();
    let queue_a = queue(&redis, policy(1, UNLIMITED));
    let queue_b = queue(&other, policy(1, UNLIMITED));
    let mut old = Vec::new();
    for _ in 0..3 {
        old.push(queue_a.enter(None, &client()).await.unwrap().ticket);
        queue_b.enter(None, &client()).await.unwrap();
    }
    let mut cursor = SyncCursor::default();
    step(&queue_a, &[], &mut cursor).await;

    let deleted = redis
        .pool()
        .delete_matching(&redis.keys().pattern())
        .await
        .unwrap();
    assert!(deleted >= 3, "{deleted} keys deleted");

    let new = queue_a.enter(None, &client()).await.unwrap();
    assert!(is_active(&new.state), "a new line, empty");
    assert_eq!(new.ticket.seq, 1);
    assert_ne!(new.ticket.epoch, old[0].epoch);
    for ticket in &old {
        assert_eq!(queue_a.lookup(ticket, true).await.unwrap(), None);
        assert!(!queue_a.revoke(ticket).await.unwrap());
    }
    let resumed = step(&queue_a, &[], &mut cursor).await;
    assert_eq!(resumed.sync.epoch, Some(new.ticket.epoch));
    assert_eq!(active_seqs(&resumed.sync.changes), vec![1]);
    assert!(
        !is_active(&queue_b.enter(None, &client()).await.unwrap().state),
        "the other stack's line is untouched"
    );
}

/// The line of `room` under the test's prefix, on the test's Redis (single or cluster).
fn room_line(
    redis: &TestRedis,
    room: &str,
    policy: QueuePolicy,
    mode: RoomMode,
) -> RedisWaitingQueue {
    let keys = RedisWaitingQueue::keys_of_room(redis.prefix(), &RoomId::parse(room).unwrap());
    RedisWaitingQueue::new(redis.pool().clone(), &keys, policy).in_mode(mode)
}

#[tokio::test]
async fn each_rooms_line_is_apart_from_the_others_and_from_the_default_line() {
    let redis = TestRedis::new();
    let default_line = queue(&redis, policy(1, UNLIMITED));
    let golden = room_line(&redis, "golden-hour", policy(1, UNLIMITED), RoomMode::Fifo);
    let palette = room_line(&redis, "palette", policy(1, UNLIMITED), RoomMode::Fifo);

    // Each line has room for one: the first of each is ACTIVE, the second waits.
    for line in [&default_line, &golden, &palette] {
        assert!(is_active(&line.enter(None, &client()).await.unwrap().state));
        let second = line.enter(None, &client()).await.unwrap();
        assert_eq!(position(&second.state), Some(1));
    }
    // One place per user per line: the same user has a place in each.
    let user_in_golden = golden.enter(Some(user(7)), &client()).await.unwrap();
    let user_in_palette = palette.enter(Some(user(7)), &client()).await.unwrap();
    assert_eq!(user_in_golden.ticket.seq, 3);
    assert_eq!(user_in_palette.ticket.seq, 3);
    // Revoking in one line leaves the others alone.
    assert!(golden.revoke(&user_in_golden.ticket).await.unwrap());
    assert!(palette
        .lookup(&user_in_palette.ticket, false)
        .await
        .unwrap()
        .is_some());

    // On a cluster each line's scripts ran on the slot of its own hash tag; the keys say so.
    let golden_keys =
        RedisWaitingQueue::keys_of_room(redis.prefix(), &RoomId::parse("golden-hour").unwrap());
    assert!(golden_keys
        .key("line:epoch")
        .starts_with(&format!("{{{}:room:golden-hour}}", redis.prefix())));
}

#[tokio::test]
async fn a_passthrough_rooms_line_admits_everyone_at_once_and_counts_them() {
    let redis = TestRedis::new();
    let line = room_line(&redis, "walk-in", policy(1, 1), RoomMode::Passthrough);
    for _ in 0..5 {
        let entered = line.enter(None, &client()).await.unwrap();
        assert!(entered.admitted_now, "{entered:?}");
    }
    let step = line.advance(&[], &SyncCursor::default()).await.unwrap();
    assert_eq!(step.report.active, 5);
}

#[tokio::test]
async fn a_step_admits_what_falls_due_until_the_callers_next_step() {
    use ticketing_domain::queue::{QueueControls, SettingsChange};
    let redis = TestRedis::new();
    let rate = 1000;
    let line = queue(&redis, policy(UNLIMITED, rate)).stepped_every(Duration::from_millis(100));
    // Paused, so that everyone waits instead of being admitted at entry.
    line.change(&SettingsChange::pause(true)).await.unwrap();
    for _ in 0..500 {
        line.enter(None, &client()).await.unwrap();
    }
    line.change(&SettingsChange::pause(false)).await.unwrap();
    redis.wait_for_next_second().await;
    let step = line.advance(&[], &SyncCursor::default()).await.unwrap();
    // At millisecond m of the second, what is due by the next step, 100 ms later:
    // ceil(rate * (m + 101) / 1000) = m + 101, at least 101 whatever m is; a step that admitted
    // only what is due by its own millisecond would admit m + 1.
    assert!(
        (101..=500).contains(&step.report.admitted),
        "admitted {}",
        step.report.admitted
    );
}
