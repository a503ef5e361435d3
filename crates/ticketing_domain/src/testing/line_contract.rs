//! The contract of the waiting line's store: what any adapter of [`WaitingQueue`] and
//! [`QueueControls`] must do, as async functions that panic with the rule broken.
//!
//! An adapter's test suite implements [`LineFixture`] (a fresh, empty line with a given policy,
//! in a store of its own) and [`LineUnderTest`] (the line, the store's clock, and a way to move
//! that clock), then runs [`run_all`] or one function per rule group. The in-memory adapter
//! ([`super::line::InMemoryLine`]) moves a [`super::store::ManualClock`]; the Redis adapter,
//! whose scripts read Redis's own clock, shifts the times it stored into the past.
//!
//! Where adapters may differ, the contract allows it: a waiting place not polled for the idle
//! timeout may live on up to a quarter of it more (it is checked alive at three quarters of the
//! timeout and dead at one and a half), and a step may admit less than the second's budget left
//! (Redis spreads the budget over the second) but never more.
//!
//! ```no_run
//! # use ticketing_domain::testing::line_contract::{run_all, LineFixture};
//! # async fn example(fixture: impl LineFixture) {
//! run_all(&fixture).await;
//! # }
//! ```

// Test support: a broken rule is reported by a panic naming it, as in any test, so unwrap and
// expect are how a failed store answer ends the check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::UserId;
use crate::queue::{
    drawn_order, ClientKey, ControlError, DrawRange, DrawSeed, Entered, Judgement, LineChanges,
    LineDraw, LineEvent, LineSettings, LineStep, LineView, QueueControls, QueueError, QueuePolicy,
    Seq, SettingsChange, SyncCursor, Ticket, TicketState, WaitingQueue,
};

/// Builds the lines the contract checks.
#[async_trait]
pub trait LineFixture: Send + Sync {
    /// The line under test.
    type Line: LineUnderTest;

    /// A fresh line, nobody ever entered, enforcing `policy`, in a store (or key space) of its
    /// own: nothing another line does is seen in it.
    async fn line(&self, policy: QueuePolicy) -> Self::Line;
}

/// One line under test, and control of its store's clock.
#[async_trait]
pub trait LineUnderTest: Send + Sync {
    /// The line.
    fn queue(&self) -> &dyn WaitingQueue;

    /// The operator's controls of the same line.
    fn controls(&self) -> &dyn QueueControls;

    /// The store's clock now: the one its expiries and budgets are counted by.
    async fn now(&self) -> DateTime<Utc>;

    /// Moves the store's clock `elapsed` forward, as far as the line can tell: sessions come
    /// nearer their end, polls grow older, an opening comes nearer, and a move of a second or
    /// more starts a new admission second.
    async fn pass(&self, elapsed: Duration);

    /// Moves the store's clock to the start of its next second: a fresh admission budget, and
    /// most of that second left for what follows (the checks of the budget run within it).
    async fn next_second(&self);
}

/// The life of an ACTIVE ticket in the contract's policies.
pub const ACTIVE_TTL: Duration = Duration::from_secs(600);
/// The idle timeout of a waiting place in the contract's policies.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A rate that never limits a check not about the rate.
pub const UNLIMITED_RATE: u32 = 1_000_000;

/// The contract's policy: `max_active` at once, `admit_per_second`, [`ACTIVE_TTL`],
/// [`IDLE_TIMEOUT`], no per-client limit.
pub fn policy(max_active: u32, admit_per_second: u32) -> QueuePolicy {
    QueuePolicy {
        max_active: NonZeroU32::new(max_active).expect("max_active > 0"),
        admit_per_second: NonZeroU32::new(admit_per_second).expect("admit_per_second > 0"),
        active_ttl: ACTIVE_TTL,
        waiting_idle_timeout: IDLE_TIMEOUT,
        entry_rate_per_client: None,
    }
}

/// A policy whose waiting places outlive every move of the clock a check makes.
fn patient_policy(max_active: u32, admit_per_second: u32) -> QueuePolicy {
    QueuePolicy {
        waiting_idle_timeout: Duration::from_secs(3600),
        ..policy(max_active, admit_per_second)
    }
}

fn client() -> ClientKey {
    ClientKey::new("198.51.100.7")
}

fn user(id: i64) -> UserId {
    UserId::new(id).expect("a positive id")
}

async fn enter(line: &impl LineUnderTest, user: Option<UserId>) -> Entered {
    line.queue()
        .enter(user, &client())
        .await
        .expect("enter answers")
}

async fn lookup(line: &impl LineUnderTest, ticket: &Ticket) -> Option<TicketState> {
    line.queue()
        .lookup(ticket, false)
        .await
        .expect("lookup answers")
}

async fn poll(line: &impl LineUnderTest, ticket: &Ticket) -> Option<TicketState> {
    line.queue()
        .lookup(ticket, true)
        .await
        .expect("lookup answers")
}

async fn revoke(line: &impl LineUnderTest, ticket: &Ticket) -> bool {
    line.queue().revoke(ticket).await.expect("revoke answers")
}

/// One step from the start (a snapshot), polling nobody.
async fn step(line: &impl LineUnderTest) -> LineStep {
    line.queue()
        .advance(&[], &SyncCursor::default())
        .await
        .expect("advance answers")
}

async fn change(
    line: &impl LineUnderTest,
    change: &SettingsChange,
) -> (LineSettings, LineSettings) {
    line.controls()
        .change(change)
        .await
        .expect("change answers")
}

fn is_active(state: Option<TicketState>) -> bool {
    matches!(state, Some(TicketState::Active { .. }))
}

fn until_of(state: Option<TicketState>, what: &str) -> DateTime<Utc> {
    match state {
        Some(TicketState::Active { until }) => until,
        other => panic!("{what}: expected ACTIVE, got {other:?}"),
    }
}

/// Asserts `until` is `ttl` after a time between `before` and `after` (the store's clock around
/// the admission), give or take a second for clocks that count in milliseconds.
fn assert_ends_after(
    until: DateTime<Utc>,
    ttl: Duration,
    before: DateTime<Utc>,
    after: DateTime<Utc>,
    what: &str,
) {
    let ttl = chrono::Duration::from_std(ttl).expect("a short ttl");
    let slack = chrono::Duration::seconds(1);
    assert!(
        until >= before + ttl - slack && until <= after + ttl + slack,
        "{what}: an admission between {before} and {after} ends {ttl} later, not at {until}"
    );
}

fn other_epoch(ticket: &Ticket) -> Ticket {
    Ticket {
        epoch: ticket.epoch.wrapping_add(1).max(1),
        ..*ticket
    }
}

/// Runs every rule group against lines built by `fixture`.
pub async fn run_all<F: LineFixture>(fixture: &F) {
    entering(fixture).await;
    first_come_first_served(fixture).await;
    room(fixture).await;
    admission_rate(fixture).await;
    one_place_per_user(fixture).await;
    idle_places(fixture).await;
    session_expiry(fixture).await;
    leaving_and_revoking(fixture).await;
    pause_and_resume(fixture).await;
    settings_changes(fixture).await;
    scheduled_opening(fixture).await;
    per_client_rate(fixture).await;
    change_feed(fixture).await;
    clearing(fixture).await;
}

/// Clearing: the line is forgotten; its tickets are dead and the next entry starts a new line.
pub async fn clearing<F: LineFixture>(fixture: &F) {
    let line = fixture.line(policy(1, UNLIMITED_RATE)).await;
    let active = enter(&line, Some(user(1))).await;
    let waiting = enter(&line, None).await;
    line.controls().clear().await.expect("clear answers");
    let status = line.controls().status().await.expect("status answers");
    assert_eq!((status.waiting, status.active), (0, 0));
    assert_eq!(lookup(&line, &active.ticket).await, None);
    assert_eq!(lookup(&line, &waiting.ticket).await, None);
    let again = enter(&line, Some(user(1))).await;
    assert_ne!(again.ticket.epoch, active.ticket.epoch, "a new line");
    assert_eq!(again.ticket.seq, 1);
    assert!(matches!(again.state, TicketState::Active { .. }));
}

/// Entering: ACTIVE at once while there is room and nobody waits, then WAITING at the back;
/// arrival numbers 1, 2, 3... of one epoch; `lookup` agrees with `enter`; a ticket never handed
/// out, or of another line, is dead.
pub async fn entering<F: LineFixture>(fixture: &F) {
    let line = fixture.line(policy(2, UNLIMITED_RATE)).await;

    let before = line.now().await;
    let first = enter(&line, None).await;
    let after = line.now().await;
    assert!(first.admitted_now, "the first entry is admitted at once");
    let until = until_of(Some(first.state), "the first entry");
    assert_ends_after(until, ACTIVE_TTL, before, after, "the first entry");
    assert_eq!(first.ticket.seq, 1, "the first arrival number is 1");
    assert_eq!(first.ticket.user, None);

    let second = enter(&line, Some(user(2))).await;
    assert!(second.admitted_now && is_active(Some(second.state)));
    assert_eq!(second.ticket.user, Some(user(2)), "the ticket is bound");
    let third = enter(&line, None).await;
    let fourth = enter(&line, None).await;
    assert!(!third.admitted_now, "the room (2) is full");
    assert_eq!(third.state, TicketState::Waiting { position: 1 });
    assert_eq!(fourth.state, TicketState::Waiting { position: 2 });
    let tickets = [first.ticket, second.ticket, third.ticket, fourth.ticket];
    assert_eq!(
        tickets.map(|ticket| ticket.seq),
        [1, 2, 3, 4],
        "arrival numbers count up by one"
    );
    assert!(
        tickets
            .iter()
            .all(|ticket| ticket.epoch == first.ticket.epoch),
        "one line, one epoch: {tickets:?}"
    );

    assert_eq!(
        lookup(&line, &first.ticket).await,
        Some(first.state),
        "lookup tells the admission enter told"
    );
    assert_eq!(
        lookup(&line, &fourth.ticket).await,
        Some(TicketState::Waiting { position: 2 })
    );
    let never_handed_out = Ticket {
        seq: 99,
        ..first.ticket
    };
    assert_eq!(lookup(&line, &never_handed_out).await, None);
    assert_eq!(
        lookup(&line, &other_epoch(&first.ticket)).await,
        None,
        "a ticket of another line is dead"
    );

    let status = line.controls().status().await.expect("status answers");
    assert_eq!((status.waiting, status.active), (2, 2), "{status:?}");
}

/// First come, first served: a freed place goes to the first in line, never to a newcomer, and
/// everyone behind moves up.
pub async fn first_come_first_served<F: LineFixture>(fixture: &F) {
    let line = fixture.line(policy(1, UNLIMITED_RATE)).await;
    let active = enter(&line, None).await.ticket;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(enter(&line, None).await.ticket);
    }

    let full = step(&line).await;
    assert_eq!(
        (
            full.report.admitted,
            full.report.active,
            full.report.waiting
        ),
        (0, 1, 3),
        "nobody is admitted while the room is full"
    );

    assert!(revoke(&line, &active).await);
    let newcomer = enter(&line, None).await;
    assert!(
        !newcomer.admitted_now,
        "a newcomer does not jump the line when a place frees up"
    );
    assert_eq!(newcomer.state, TicketState::Waiting { position: 4 });

    for (round, admitted) in waiting.iter().enumerate() {
        let report = step(&line).await.report;
        assert_eq!(report.admitted, 1, "round {round}: one place was free");
        assert!(
            is_active(lookup(&line, admitted).await),
            "round {round}: the first in line is admitted"
        );
        for (behind, ticket) in waiting[round + 1..]
            .iter()
            .chain([&newcomer.ticket])
            .enumerate()
        {
            assert_eq!(
                lookup(&line, ticket).await,
                Some(TicketState::Waiting {
                    position: behind as u64 + 1
                }),
                "round {round}: everyone behind moved up"
            );
        }
        assert!(revoke(&line, admitted).await);
    }
}

/// The room: never more ACTIVE tickets than `max_active`, by entry or by step.
pub async fn room<F: LineFixture>(fixture: &F) {
    let line = fixture.line(policy(2, UNLIMITED_RATE)).await;
    let mut tickets = Vec::new();
    for _ in 0..5 {
        tickets.push(enter(&line, None).await);
    }
    let admitted = tickets.iter().filter(|entry| entry.admitted_now).count();
    assert_eq!(admitted, 2, "two entries fill the room of two");
    assert_eq!(step(&line).await.report.admitted, 0);

    assert!(revoke(&line, &tickets[0].ticket).await);
    let report = step(&line).await.report;
    assert_eq!(
        (report.admitted, report.active),
        (1, 2),
        "one freed place admits one"
    );
    let status = line.controls().status().await.expect("status answers");
    assert_eq!((status.active, status.waiting), (2, 2), "{status:?}");
}

/// The admission rate: at most `admit_per_second` admissions per second of the store's clock, by
/// entry and by step together; an entry while the budget is spent waits; the next second admits
/// again, in order.
pub async fn admission_rate<F: LineFixture>(fixture: &F) {
    let line = fixture.line(policy(100, 2)).await;
    line.next_second().await;
    let first = enter(&line, None).await;
    let second = enter(&line, None).await;
    let third = enter(&line, None).await;
    assert!(first.admitted_now && second.admitted_now);
    assert_eq!(
        third.state,
        TicketState::Waiting { position: 1 },
        "this second's budget of 2 is spent, though there is room"
    );
    let fourth = enter(&line, None).await;
    assert_eq!(fourth.state, TicketState::Waiting { position: 2 });
    assert_eq!(
        step(&line).await.report.admitted,
        0,
        "a step within the same second admits nobody"
    );

    line.next_second().await;
    let mut admitted = 0;
    for _ in 0..3 {
        admitted += step(&line).await.report.admitted;
    }
    assert!(
        (1..=2).contains(&admitted),
        "steps within one second admit at least one and at most the budget of 2, not {admitted}"
    );
    assert!(
        is_active(lookup(&line, &third.ticket).await),
        "the first in line goes first"
    );
    if admitted == 1 {
        line.next_second().await;
        assert_eq!(step(&line).await.report.admitted, 1);
    }
    assert!(is_active(lookup(&line, &fourth.ticket).await));
}

/// One place per user: a user entering again gets their live ticket back (same place, not an
/// admission); anonymous entries each get a place; a user whose place ended gets a new one.
pub async fn one_place_per_user<F: LineFixture>(fixture: &F) {
    let line = fixture.line(policy(1, UNLIMITED_RATE)).await;
    let active = enter(&line, Some(user(1))).await;
    let again = enter(&line, Some(user(1))).await;
    assert_eq!(
        again.ticket, active.ticket,
        "an ACTIVE user gets their ticket back"
    );
    assert_eq!(again.state, active.state, "with the same admission");
    assert!(!again.admitted_now, "handing a place back is no admission");

    let waiting = enter(&line, Some(user(2))).await;
    let waiting_again = enter(&line, Some(user(2))).await;
    assert_eq!(waiting_again.ticket, waiting.ticket);
    assert_eq!(waiting_again.state, TicketState::Waiting { position: 1 });
    assert!(!waiting_again.admitted_now);

    let anonymous = enter(&line, None).await.ticket;
    let anonymous_again = enter(&line, None).await.ticket;
    assert_ne!(
        anonymous.seq, anonymous_again.seq,
        "an anonymous entry always gets a new place"
    );
    let status = line.controls().status().await.expect("status answers");
    assert_eq!(status.waiting, 3, "user 2 holds one place, not two");

    assert!(revoke(&line, &waiting.ticket).await);
    let after_leaving = enter(&line, Some(user(2))).await;
    assert!(
        after_leaving.ticket.seq > anonymous_again.seq,
        "a user who left starts over at the back: {after_leaving:?}"
    );

    // Rejoining hands back a live place and enters nobody.
    let before = line.controls().status().await.expect("status answers");
    let rejoined = line
        .queue()
        .rejoin(user(2))
        .await
        .expect("rejoin answers")
        .expect("user 2 has a live place");
    assert_eq!(rejoined.ticket, after_leaving.ticket);
    assert!(!rejoined.admitted_now);
    assert_eq!(
        line.queue().rejoin(user(99)).await.expect("rejoin answers"),
        None,
        "nobody is entered for a user without a place"
    );
    let after = line.controls().status().await.expect("status answers");
    assert_eq!(after.waiting, before.waiting, "rejoining entered nobody");

    line.pass(ACTIVE_TTL + Duration::from_secs(1)).await;
    let after_expiry = enter(&line, Some(user(1))).await;
    assert!(
        after_expiry.ticket.seq > after_leaving.ticket.seq,
        "a user whose session expired gets a new place: {after_expiry:?}"
    );
}

/// Keep-alives: a waiting place polled within the idle timeout (by `lookup` with `keep_alive`,
/// or reported in a step's `seen`) stays; one not polled for longer is dead to `lookup` at once
/// and skipped by the front without taking the room; a poll does not bring it back, and its user
/// starts over.
pub async fn idle_places<F: LineFixture>(fixture: &F) {
    let line = fixture.line(policy(1, UNLIMITED_RATE)).await;
    let active = enter(&line, None).await.ticket;
    let idle = enter(&line, Some(user(7))).await.ticket;
    let kept_by_lookups = enter(&line, None).await.ticket;
    let kept_by_steps = enter(&line, None).await.ticket;
    let looked_at_only = enter(&line, None).await.ticket;

    let three_quarters = IDLE_TIMEOUT * 3 / 4;
    line.pass(three_quarters).await;
    assert!(poll(&line, &kept_by_lookups).await.is_some());
    assert!(
        lookup(&line, &looked_at_only).await.is_some(),
        "alive within the idle timeout"
    );
    line.queue()
        .advance(&[kept_by_steps.seq], &SyncCursor::default())
        .await
        .expect("advance answers");
    line.pass(three_quarters).await;

    assert_eq!(
        lookup(&line, &idle).await,
        None,
        "not polled for 1.5 idle timeouts: dead before any step reaches it"
    );
    assert_eq!(
        lookup(&line, &looked_at_only).await,
        None,
        "a lookup without keep_alive is no poll"
    );
    assert_eq!(
        poll(&line, &idle).await,
        None,
        "a poll of a dead place does not bring it back"
    );
    assert!(
        poll(&line, &kept_by_lookups).await.is_some(),
        "polled 0.75 idle timeouts ago"
    );
    assert!(
        poll(&line, &kept_by_steps).await.is_some(),
        "reported seen by a step"
    );

    assert!(revoke(&line, &active).await);
    let report = step(&line).await.report;
    assert_eq!(report.admitted, 1);
    assert!(
        report.dropped_idle >= 1,
        "the idle place at the front was skipped: {report:?}"
    );
    assert!(
        is_active(lookup(&line, &kept_by_lookups).await),
        "the place after the idle one is admitted"
    );
    assert_eq!(
        lookup(&line, &kept_by_steps).await,
        Some(TicketState::Waiting { position: 1 })
    );
    let again = enter(&line, Some(user(7))).await;
    assert!(
        again.ticket.seq > looked_at_only.seq,
        "the dropped user starts over: {again:?}"
    );
}

/// Sessions: an ACTIVE ticket is ACTIVE until `active_ttl` after its admission by the store's
/// clock, dead from then on without any step; a step then drops it and gives its place to the
/// next in line; its user gets a new place.
pub async fn session_expiry<F: LineFixture>(fixture: &F) {
    let line = fixture.line(patient_policy(1, UNLIMITED_RATE)).await;
    let active = enter(&line, Some(user(9))).await.ticket;
    let next = enter(&line, None).await.ticket;

    let half = ACTIVE_TTL / 2;
    line.pass(half).await;
    let until = until_of(lookup(&line, &active).await, "halfway through the session");
    let now = line.now().await;
    assert_ends_after(until, half, now, now, "halfway through the session");

    line.pass(half + Duration::from_secs(1)).await;
    assert_eq!(lookup(&line, &active).await, None, "expired");
    let status = line.controls().status().await.expect("status answers");
    assert_eq!(status.active, 0, "an expired session takes no room");
    let report = step(&line).await.report;
    assert_eq!((report.expired, report.admitted), (1, 1), "{report:?}");
    assert!(
        is_active(lookup(&line, &next).await),
        "the freed place goes to the next in line"
    );
    assert!(
        !revoke(&line, &active).await,
        "an expired ticket was not live"
    );
    let again = enter(&line, Some(user(9))).await;
    assert_eq!(again.ticket.seq, 3, "the expired user starts over");
    assert_eq!(again.state, TicketState::Waiting { position: 1 });
}

/// Leaving and revoking: `revoke` ends a live ticket once (true, then false); a place that left
/// is skipped without spending the budget; a ticket of another line or never handed out is not
/// live, and revoking one harms nobody.
pub async fn leaving_and_revoking<F: LineFixture>(fixture: &F) {
    // One admission per second: a budget spent on a place that left would leave none for `next`.
    let line = fixture.line(policy(100, 1)).await;
    line.next_second().await;
    let first = enter(&line, None).await;
    assert!(first.admitted_now);
    let leaving = [
        enter(&line, None).await.ticket,
        enter(&line, None).await.ticket,
    ];
    let next = enter(&line, None).await.ticket;
    for ticket in &leaving {
        assert!(revoke(&line, ticket).await, "a waiting ticket is live");
        assert!(!revoke(&line, ticket).await, "only once");
        assert_eq!(lookup(&line, ticket).await, None);
    }

    line.next_second().await;
    let report = step(&line).await.report;
    assert_eq!(
        (report.dropped_idle, report.admitted, report.waiting),
        (2, 1, 0),
        "both places that left are skipped and the second's one admission goes to the next"
    );
    assert!(is_active(lookup(&line, &next).await));

    assert!(
        revoke(&line, &first.ticket).await,
        "an ACTIVE ticket is live"
    );
    assert_eq!(lookup(&line, &first.ticket).await, None);
    assert!(!revoke(&line, &first.ticket).await);
    assert!(!revoke(&line, &other_epoch(&next)).await);
    assert!(
        is_active(lookup(&line, &next).await),
        "another line's ticket is not this one"
    );

    let not_yet_handed_out = Ticket {
        seq: next.seq + 1,
        ..next
    };
    assert!(!revoke(&line, &not_yet_handed_out).await);
    let whoever = enter(&line, None).await;
    assert_eq!(whoever.ticket.seq, not_yet_handed_out.seq);
    assert!(
        lookup(&line, &whoever.ticket).await.is_some(),
        "revoking a place before it was handed out does not harm whoever gets it"
    );
}

/// Pause: entries wait and steps admit nobody, ACTIVE tickets keep working; resuming admits
/// again. `change` answers the settings before and after.
pub async fn pause_and_resume<F: LineFixture>(fixture: &F) {
    let line = fixture.line(policy(2, UNLIMITED_RATE)).await;
    let active = enter(&line, None).await.ticket;
    let (before, after) = change(&line, &SettingsChange::pause(true)).await;
    assert!(!before.paused && after.paused);
    let status = line.controls().status().await.expect("status answers");
    assert!(status.settings.paused);

    let waiting = enter(&line, None).await;
    assert_eq!(
        waiting.state,
        TicketState::Waiting { position: 1 },
        "paused: an entry waits though there is room"
    );
    let paused_step = step(&line).await;
    assert_eq!(paused_step.report.admitted, 0, "paused: nobody is admitted");
    assert!(
        paused_step.settings.paused,
        "a step reports the settings in force"
    );
    assert!(
        is_active(lookup(&line, &active).await),
        "paused: ACTIVE tickets keep working"
    );

    let (before, after) = change(&line, &SettingsChange::pause(false)).await;
    assert!(before.paused && !after.paused);
    assert_eq!(
        step(&line).await.report.admitted,
        1,
        "resumed: the line admits"
    );
    assert!(is_active(lookup(&line, &waiting.ticket).await));
}

/// Live settings: the configured ones until an operator changes them, then the changed ones,
/// for room, rate and session length; a change names only what it changes; running sessions
/// keep their end.
pub async fn settings_changes<F: LineFixture>(fixture: &F) {
    let configured = policy(1, UNLIMITED_RATE);
    let line = fixture.line(configured).await;
    let status = line.controls().status().await.expect("status answers");
    assert_eq!(status.settings, LineSettings::from_policy(&configured));

    let first = enter(&line, None).await;
    let first_until = until_of(Some(first.state), "the first entry");
    let second = enter(&line, None).await.ticket;
    let third = enter(&line, None).await.ticket;
    let now = line.now().await;
    let more_room = SettingsChange::new(None, None, Some(3), None, None, now).expect("valid");
    let (before, after) = change(&line, &more_room).await;
    assert_eq!(before, LineSettings::from_policy(&configured));
    assert_eq!(
        after,
        LineSettings {
            max_active: NonZeroU32::new(3).expect("3"),
            ..before
        },
        "only the room changed"
    );
    let report = step(&line).await.report;
    assert_eq!(
        (report.admitted, report.active),
        (2, 3),
        "the room of 3 is filled"
    );
    assert!(is_active(lookup(&line, &second).await) && is_active(lookup(&line, &third).await));

    let shorter = Duration::from_secs(120);
    let now = line.now().await;
    let shorter_sessions =
        SettingsChange::new(None, None, Some(4), Some(120), None, now).expect("valid");
    change(&line, &shorter_sessions).await;
    let before = line.now().await;
    let fourth = enter(&line, None).await;
    let after = line.now().await;
    assert!(fourth.admitted_now, "the room of 4 has a place");
    assert_ends_after(
        until_of(Some(fourth.state), "an admission after the change"),
        shorter,
        before,
        after,
        "an admission after the change",
    );
    assert_eq!(
        until_of(lookup(&line, &first.ticket).await, "a running session"),
        first_until,
        "a running session keeps its end"
    );

    let now = line.now().await;
    let slower = SettingsChange::new(None, Some(1), Some(10), None, None, now).expect("valid");
    change(&line, &slower).await;
    line.next_second().await;
    let fifth = enter(&line, None).await;
    let sixth = enter(&line, None).await;
    assert!(fifth.admitted_now, "room and budget for one");
    assert!(!sixth.admitted_now, "the live rate of 1 is spent");

    let (before, after) = change(&line, &SettingsChange::default()).await;
    assert_eq!(before, after, "an empty change changes nothing");
    assert_eq!(
        (
            after.admit_per_second.get(),
            after.max_active.get(),
            after.active_ttl
        ),
        (1, 10, shorter)
    );
    assert_eq!(
        step(&line).await.settings,
        after,
        "steps report the live settings"
    );
}

/// A scheduled opening: until it the line is a pre-queue (everyone waits at position 0, nobody
/// is admitted); once it has passed, the places handed out until then are due for a draw and
/// nobody is admitted until one is recorded; only the first draw counts; the line then admits in
/// the drawn order, later entries behind; a new opening cannot be scheduled while the drawn
/// places are being admitted. The opening's seed is kept from its scheduling (secret: steps
/// report it to instances) and kept with the draw's order once recorded. A cancelled opening
/// draws nobody and forgets its seed; an opening nobody came to opens at once.
pub async fn scheduled_opening<F: LineFixture>(fixture: &F) {
    let line = fixture.line(patient_policy(2, UNLIMITED_RATE)).await;
    let opens_at = whole_second(line.now().await) + chrono::Duration::seconds(600);
    let schedule = |now| SettingsChange::new(None, None, None, None, Some(Some(opens_at)), now);
    let seed = DrawSeed::from_bytes([0x5e; 32]);
    let scheduled = schedule(line.now().await)
        .expect("valid")
        .with_draw_seed(seed);
    let (_, after) = change(&line, &scheduled).await;
    assert_eq!(after.opens_at, Some(opens_at));

    let mut early = Vec::new();
    for _ in 0..4 {
        let entered = enter(&line, None).await;
        assert_eq!(
            entered.state,
            TicketState::Waiting { position: 0 },
            "a pre-queue: no place before the draw, nobody admitted though there is room"
        );
        early.push(entered.ticket);
    }
    assert_eq!(
        lookup(&line, &early[0]).await,
        Some(TicketState::Waiting { position: 0 })
    );
    let before_opening = step(&line).await;
    assert_eq!(before_opening.report.admitted, 0);
    assert_eq!(before_opening.draw_due, None, "no draw before the opening");
    assert_eq!(before_opening.settings.opens_at, Some(opens_at));
    assert_eq!(
        before_opening.draw,
        LineDraw {
            pending: Some(seed),
            last: None
        },
        "the seed is kept from the scheduling"
    );

    line.pass(Duration::from_secs(601)).await;
    let due = step(&line).await;
    let range = DrawRange {
        after: 0,
        through: 4,
    };
    assert_eq!(due.draw_due, Some(range), "the places before the opening");
    assert_eq!(due.report.admitted, 0, "nobody is admitted before the draw");
    let late = enter(&line, None).await;
    assert!(!late.admitted_now, "nobody is admitted before the draw");
    assert_eq!(
        line.queue().draw_order().await.expect("draw_order answers"),
        None
    );

    assert_eq!(
        due.draw.pending,
        Some(seed),
        "the seed is kept until the draw"
    );
    let computed = drawn_order(&seed, range);
    assert!(line
        .queue()
        .draw(range, &seed, &computed)
        .await
        .expect("draw answers"));
    let other = DrawSeed::from_bytes([1; 32]);
    assert!(
        !line
            .queue()
            .draw(range, &other, &drawn_order(&other, range))
            .await
            .expect("draw answers"),
        "only the first draw counts"
    );
    let (drawn, order) = line
        .queue()
        .draw_order()
        .await
        .expect("draw_order answers")
        .expect("the draw is recorded");
    assert_eq!(drawn, range);
    assert_eq!(order, computed, "the order recorded is the one given");
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        vec![1, 2, 3, 4],
        "the order is a permutation of the range"
    );

    let opened = step(&line).await;
    assert_eq!(opened.settings.opens_at, None, "the opening is done");
    assert_eq!(opened.sync.draw, Some(range), "the draw is in force");
    assert_eq!(
        opened.draw,
        LineDraw {
            pending: None,
            last: Some((range, seed))
        },
        "the seed is kept with the draw, to be published"
    );
    assert_eq!(opened.report.admitted, 2);
    let ticket_at = |seq: Seq| Ticket { seq, ..early[0] };
    for (place, seq) in order.iter().enumerate() {
        let state = lookup(&line, &ticket_at(*seq)).await;
        if place < 2 {
            assert!(
                is_active(state),
                "place {place} of the draw is admitted first"
            );
        } else {
            assert_eq!(
                state,
                Some(TicketState::Waiting {
                    position: place as u64 - 1
                }),
                "place {place} of the draw"
            );
        }
    }
    assert_eq!(
        lookup(&line, &late.ticket).await,
        Some(TicketState::Waiting { position: 3 }),
        "an entry after the opening waits behind the drawn places"
    );
    // Validated against the first opening's time: the store's clock has passed it.
    let another = SettingsChange::new(
        None,
        None,
        None,
        None,
        Some(Some(opens_at + chrono::Duration::seconds(3600))),
        opens_at,
    )
    .expect("valid");
    let refused = line.controls().change(&another).await;
    assert!(
        matches!(refused, Err(ControlError::Invalid(_))),
        "no new opening while the drawn places are being admitted: {refused:?}"
    );

    for seq in &order {
        if is_active(lookup(&line, &ticket_at(*seq)).await) {
            revoke(&line, &ticket_at(*seq)).await;
        }
    }
    step(&line).await;
    for seq in &order {
        revoke(&line, &ticket_at(*seq)).await;
    }
    step(&line).await;
    assert!(is_active(lookup(&line, &late.ticket).await));
    line.controls()
        .change(&another)
        .await
        .expect("a new opening once the drawn places are decided");

    cancelled_opening(fixture).await;
    opening_nobody_came_to(fixture).await;
}

fn whole_second(instant: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(instant.timestamp(), 0).expect("a time in range")
}

async fn cancelled_opening<F: LineFixture>(fixture: &F) {
    let line = fixture.line(patient_policy(2, UNLIMITED_RATE)).await;
    let now = line.now().await;
    let opens_at = whole_second(now) + chrono::Duration::seconds(600);
    let schedule =
        SettingsChange::new(None, None, None, None, Some(Some(opens_at)), now).expect("valid");
    let seed = DrawSeed::from_bytes([0xc0; 32]);
    change(&line, &schedule.with_draw_seed(seed)).await;
    let moved = SettingsChange::new(
        None,
        None,
        None,
        None,
        Some(Some(opens_at + chrono::Duration::seconds(60))),
        now,
    )
    .expect("valid")
    .with_draw_seed(DrawSeed::from_bytes([2; 32]));
    change(&line, &moved).await;
    assert_eq!(
        step(&line).await.draw.pending,
        Some(seed),
        "a moved opening keeps its seed, so its commitment stands"
    );
    let mut tickets = Vec::new();
    for _ in 0..3 {
        tickets.push(enter(&line, None).await.ticket);
    }
    let cancel = SettingsChange::new(None, None, None, None, Some(None), now).expect("valid");
    let (_, after) = change(&line, &cancel).await;
    assert_eq!(after.opens_at, None);

    let report = step(&line).await;
    assert_eq!(report.draw_due, None, "a cancelled opening draws nobody");
    assert_eq!(
        report.draw,
        LineDraw::default(),
        "a cancelled opening forgets its seed"
    );
    assert_eq!(report.report.admitted, 2);
    assert!(
        is_active(lookup(&line, &tickets[0]).await) && is_active(lookup(&line, &tickets[1]).await)
    );
    assert_eq!(
        lookup(&line, &tickets[2]).await,
        Some(TicketState::Waiting { position: 1 }),
        "arrival order"
    );
}

async fn opening_nobody_came_to<F: LineFixture>(fixture: &F) {
    let line = fixture.line(patient_policy(2, UNLIMITED_RATE)).await;
    let now = line.now().await;
    let opens_at = whole_second(now) + chrono::Duration::seconds(60);
    let schedule =
        SettingsChange::new(None, None, None, None, Some(Some(opens_at)), now).expect("valid");
    change(&line, &schedule).await;
    line.pass(Duration::from_secs(61)).await;
    let first = enter(&line, None).await;
    assert!(
        first.admitted_now,
        "an opening nobody came to opens at once: {first:?}"
    );
    let step = step(&line).await;
    assert_eq!(step.draw_due, None);
    assert_eq!(step.settings.opens_at, None);
}

/// The per-client limit: past `entry_rate_per_client` entries in a second, a client is refused
/// with a delay of at most a second, after which it may enter; other clients are not limited.
pub async fn per_client_rate<F: LineFixture>(fixture: &F) {
    let limited = QueuePolicy {
        entry_rate_per_client: NonZeroU32::new(2),
        ..policy(100, UNLIMITED_RATE)
    };
    let line = fixture.line(limited).await;
    let hurried = ClientKey::new("203.0.113.9");
    for _ in 0..2 {
        line.queue()
            .enter(None, &hurried)
            .await
            .expect("within the limit");
    }
    let refused = line.queue().enter(None, &hurried).await;
    let Err(QueueError::RateLimited { retry_after }) = refused else {
        panic!("the third entry within a second is refused, not {refused:?}");
    };
    assert!(
        retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1),
        "retry within a second, not {retry_after:?}"
    );
    line.queue()
        .enter(None, &client())
        .await
        .expect("another client is not limited");

    line.pass(retry_after + Duration::from_millis(1)).await;
    line.queue()
        .enter(None, &hurried)
        .await
        .expect("after the delay the client may enter again");
}

/// The change feed: before anyone enters, no line; a fresh cursor gets a snapshot (ACTIVE
/// places with their end, places that left); a cursor given back gets the admissions and
/// revocations since, in order; a cursor of another line gets a snapshot; a [`LineView`] fed by
/// the steps judges every ticket as `lookup` does.
pub async fn change_feed<F: LineFixture>(fixture: &F) {
    let line = fixture.line(policy(1, UNLIMITED_RATE)).await;
    let empty = step(&line).await;
    assert_eq!(
        empty.sync.epoch, None,
        "before anyone enters there is no line"
    );
    assert_eq!((empty.sync.head, empty.sync.last_seq), (0, 0));
    assert!(empty.sync.cursor.is_start());
    assert_eq!(empty.report, Default::default());

    let first = enter(&line, None).await;
    let first_until = until_of(Some(first.state), "the first entry");
    let second = enter(&line, None).await.ticket;
    let third = enter(&line, None).await.ticket;
    let mut view = LineView::default();

    let snapshot = step(&line).await;
    assert_eq!(snapshot.sync.epoch, Some(first.ticket.epoch));
    assert_eq!((snapshot.sync.head, snapshot.sync.last_seq), (1, 3));
    assert_eq!(
        snapshot.sync.changes,
        LineChanges::Snapshot {
            active: vec![(1, first_until)],
            left: vec![]
        }
    );
    view.apply(snapshot.sync.clone(), line.now().await);
    let all = [first.ticket, second, third];
    assert_view_agrees(&line, &view, &all, "after a snapshot").await;

    assert!(revoke(&line, &third).await);
    assert!(revoke(&line, &first.ticket).await);
    let since = line
        .queue()
        .advance(&[], &snapshot.sync.cursor)
        .await
        .expect("advance answers");
    assert_eq!(
        (since.report.admitted, since.report.dropped_idle),
        (1, 1),
        "the second admitted, the third skipped"
    );
    let second_until = until_of(lookup(&line, &second).await, "the second");
    assert_eq!(
        since.sync.changes,
        LineChanges::Since(vec![
            LineEvent::Revoked { seq: 3 },
            LineEvent::Revoked { seq: 1 },
            LineEvent::Admitted {
                seqs: vec![2],
                until: second_until
            },
        ]),
        "the changes since the cursor, in order"
    );
    assert_eq!((since.sync.head, since.sync.last_seq), (3, 3));
    view.apply(since.sync.clone(), line.now().await);
    assert_view_agrees(&line, &view, &all, "after the changes").await;

    let nothing_new = line
        .queue()
        .advance(&[], &since.sync.cursor)
        .await
        .expect("advance answers");
    assert_eq!(nothing_new.sync.changes, LineChanges::Since(vec![]));

    let fourth = enter(&line, None).await.ticket;
    let fifth = enter(&line, None).await.ticket;
    // The one behind the front leaves: the front, still waiting for room, does not reach it.
    assert!(revoke(&line, &fifth).await);
    let foreign = line
        .queue()
        .advance(&[], &SyncCursor::new("0:0"))
        .await
        .expect("advance answers");
    assert_eq!(
        foreign.sync.changes,
        LineChanges::Snapshot {
            active: vec![(2, second_until)],
            left: vec![fifth.seq]
        },
        "a cursor of another line gets a snapshot, with the places that left"
    );
    let mut fresh_view = LineView::default();
    fresh_view.apply(foreign.sync, line.now().await);
    let all = [first.ticket, second, third, fourth, fifth];
    assert_view_agrees(&line, &fresh_view, &all, "a view from a snapshot").await;
    let fed = line
        .queue()
        .advance(&[], &nothing_new.sync.cursor)
        .await
        .expect("advance answers");
    view.apply(fed.sync, line.now().await);
    assert_view_agrees(&line, &view, &all, "a view fed by the changes").await;
}

async fn assert_view_agrees(
    line: &impl LineUnderTest,
    view: &LineView,
    tickets: &[Ticket],
    what: &str,
) {
    let now = line.now().await;
    for ticket in tickets {
        let expected = match lookup(line, ticket).await {
            Some(TicketState::Active { until }) => Judgement::Active { until },
            Some(TicketState::Waiting { position }) => Judgement::Waiting { position },
            None => Judgement::Dead,
        };
        assert_eq!(
            view.judge(ticket, now),
            expected,
            "{what}: the view judges place {} as the store does",
            ticket.seq
        );
    }
}
