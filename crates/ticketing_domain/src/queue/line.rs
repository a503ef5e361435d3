//! One instance's view of the line, kept in memory and refreshed from the store every
//! admission interval, so that token checks and polls need no round trip.
//!
//! The view is a replica of three facts: the front of the line (`head`: every place up to it is
//! decided, admitted or skipped), the ACTIVE tickets with their expiry, and the places behind the
//! front whose holder left. It learns them from the store's change feed ([`LineChanges::Since`]),
//! or starts over from a snapshot when it is new, fell behind, or the line was recreated.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::controls::DrawRange;
use super::policy::QueuePolicy;
use super::token::{Seq, Ticket};

/// A position in the store's change feed; empty before the first sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncCursor(String);

impl SyncCursor {
    /// The position the store gave, to continue from.
    pub fn new(position: impl Into<String>) -> Self {
        Self(position.into())
    }

    /// The position as the store spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether no sync happened yet.
    pub fn is_start(&self) -> bool {
        self.0.is_empty()
    }
}

/// One change the feed reports.
#[derive(Debug, Clone, PartialEq, Eq)]
// Not `#[non_exhaustive]`: port vocabulary, which every adapter and its tests handle in full;
// a new variant changes the port and must break them.
pub enum LineEvent {
    /// These places were admitted, all until `until`.
    Admitted {
        /// The places admitted.
        seqs: Vec<Seq>,
        /// When their admission ends.
        until: DateTime<Utc>,
    },
    /// This ticket was ended (left the line, paid, or was revoked by an operator).
    Revoked {
        /// The place of the ticket ended.
        seq: Seq,
    },
}

/// What changed, or the whole state.
#[derive(Debug, Clone, PartialEq, Eq)]
// Not `#[non_exhaustive]`: port vocabulary, which every adapter and its tests handle in full;
// a new variant changes the port and must break them.
pub enum LineChanges {
    /// The changes after the cursor the view gave, in order.
    Since(Vec<LineEvent>),
    /// Everything: the view starts over from it.
    Snapshot {
        /// The ACTIVE places, each with the end of its admission.
        active: Vec<(Seq, DateTime<Utc>)>,
        /// The places behind the front whose holder left.
        left: Vec<Seq>,
    },
}

/// The line as the store reports it in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSync {
    /// The line's incarnation; `None` while nobody ever entered.
    pub epoch: Option<u32>,
    /// Every place up to this one is decided (admitted or skipped).
    pub head: Seq,
    /// The last place handed out.
    pub last_seq: Seq,
    /// Where the next sync continues.
    pub cursor: SyncCursor,
    /// What changed since the caller's cursor, or the whole state.
    pub changes: LineChanges,
    /// The places of the last scheduled opening, ordered by its draw, while in force.
    pub draw: Option<DrawRange>,
}

/// What the view can tell of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Judgement {
    /// Admitted, until `until`.
    Active {
        /// When the admission ends.
        until: DateTime<Utc>,
    },
    /// In line, 1-based, counting places ahead not yet known to be empty.
    Waiting {
        /// The place in line, 1-based.
        position: u64,
    },
    /// Expired, ended, skipped, or left.
    Dead,
    /// Of a line this view does not know (new, or recreated): only the store can tell.
    Unknown,
}

/// One instance's replica of the line.
#[derive(Debug, Default)]
pub struct LineView {
    epoch: Option<u32>,
    head: Seq,
    last_seq: Seq,
    cursor: SyncCursor,
    active: HashMap<Seq, DateTime<Utc>>,
    /// Expiries of the ACTIVE tickets, ascending: for the expected wait when the room is full.
    expiries: Vec<DateTime<Utc>>,
    left: HashSet<Seq>,
    /// What this instance learned first-hand lately (an admission at entry, an end): a step
    /// read from the store before it must not undo it.
    noted_here: HashMap<Seq, NotedHere>,
    synced_at: Option<DateTime<Utc>>,
    /// The draw the store says is in force.
    announced_draw: Option<DrawRange>,
    /// Its order, once loaded: for the place `after + 1 + i`, `offsets[i]` is that of its
    /// holder's arrival number, inverted so a ticket finds its place.
    draw: Option<DrawMap>,
}

#[derive(Debug)]
struct DrawMap {
    range: DrawRange,
    /// `place_offsets[seq - after - 1] = place - after - 1`.
    place_offsets: Vec<u32>,
}

/// How long a first-hand note outweighs what steps report: longer than any step takes.
const NOTED_HERE_MEMORY: chrono::Duration = chrono::Duration::seconds(10);

/// A fact this instance learned first-hand, about a place of line `epoch`, at `at`.
#[derive(Debug, Clone, Copy)]
struct NotedHere {
    epoch: u32,
    ended: bool,
    until: DateTime<Utc>,
    at: DateTime<Utc>,
}

impl LineView {
    /// The line this view follows, once known.
    pub fn epoch(&self) -> Option<u32> {
        self.epoch
    }

    /// Where the next sync continues.
    pub fn cursor(&self) -> SyncCursor {
        self.cursor.clone()
    }

    /// Whether the last sync is recent enough for a "yes" from memory.
    pub fn is_fresh(&self, now: DateTime<Utc>, max_age: Duration) -> bool {
        self.synced_at.is_some_and(|at| {
            now.signed_duration_since(at)
                .to_std()
                .map_or(true, |age| age <= max_age)
        })
    }

    /// The front of the line: every place up to it is decided (admitted or skipped).
    pub fn head(&self) -> Seq {
        self.head
    }

    /// Places handed out and not yet decided.
    pub fn undecided(&self) -> u64 {
        self.last_seq.saturating_sub(self.head)
    }

    /// Places behind the front known here to have been left by their holders.
    pub fn left_behind(&self) -> usize {
        self.left.len()
    }

    /// ACTIVE tickets known here, expired ones included until the next sync drops them.
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Takes in one step's report, at `now` by this instance's clock.
    pub fn apply(&mut self, sync: LineSync, now: DateTime<Utc>) {
        if sync.epoch.is_none() && self.epoch.is_some() {
            // Either read before the line's first entry, or the store lost the line. Not
            // applied, and the view is not refreshed: it goes stale, and the store is asked.
            return;
        }
        match sync.changes {
            LineChanges::Snapshot { active, left } => {
                self.active = active.into_iter().collect();
                self.left = left.into_iter().collect();
            }
            LineChanges::Since(events) => {
                if sync.epoch != self.epoch {
                    // A feed of another line cannot continue this one; the next sync's cursor
                    // is from the new line, whose snapshot the store sends when asked.
                    self.active.clear();
                    self.left.clear();
                }
                for event in events {
                    self.record(event);
                }
            }
        }
        if sync.epoch == self.epoch {
            // What this instance noted between the store's answer and now is not undone.
            self.head = self.head.max(sync.head);
            self.last_seq = self.last_seq.max(sync.last_seq);
        } else {
            self.head = sync.head;
            self.last_seq = sync.last_seq;
        }
        self.epoch = sync.epoch;
        self.cursor = sync.cursor;
        self.announced_draw = sync.draw;
        if self.draw.as_ref().map(|map| map.range) != sync.draw {
            self.draw = None;
        }
        // `now` is when this step read the store: what was noted before that is in the data
        // read (an end, or an admission and maybe its revocation since), so only what was noted
        // after it is re-applied.
        self.noted_here.retain(|_, note| {
            note.at >= now && note.at.signed_duration_since(now) < NOTED_HERE_MEMORY
        });
        let notes: Vec<(Seq, NotedHere)> = self
            .noted_here
            .iter()
            .filter(|(_, note)| Some(note.epoch) == self.epoch)
            .map(|(seq, note)| (*seq, *note))
            .collect();
        for (seq, note) in notes {
            if note.ended {
                self.forget(seq);
            } else {
                self.active.insert(seq, note.until);
                self.head = self.head.max(seq);
            }
        }
        self.active.retain(|_, until| *until > now);
        let head = self.head;
        let decided: Vec<Seq> = self
            .left
            .iter()
            .copied()
            .filter(|seq| self.place_of(*seq).is_some_and(|place| place <= head))
            .collect();
        for seq in decided {
            self.left.remove(&seq);
        }
        self.expiries = self.active.values().copied().collect();
        self.expiries.sort_unstable();
        self.synced_at = Some(now);
    }

    fn record(&mut self, event: LineEvent) {
        match event {
            LineEvent::Admitted { seqs, until } => {
                for seq in seqs {
                    if !self.left.contains(&seq) {
                        self.active.insert(seq, until);
                    }
                }
            }
            LineEvent::Revoked { seq } => self.forget(seq),
        }
    }

    /// This instance admitted `seq` (at entry, or learned it from the store) before the feed
    /// says so.
    ///
    /// The store's answer is current: a ticket of a line this view does not know (the first
    /// entry ever, or a line recreated since the last sync) starts the view over on that line,
    /// unsynced until the next step.
    pub fn note_active(&mut self, ticket: &Ticket, until: DateTime<Utc>, now: DateTime<Utc>) {
        if Some(ticket.epoch) != self.epoch {
            *self = LineView {
                epoch: Some(ticket.epoch),
                noted_here: std::mem::take(&mut self.noted_here),
                ..LineView::default()
            };
        }
        let ended_here = self
            .noted_here
            .get(&ticket.seq)
            .is_some_and(|note| note.ended && note.epoch == ticket.epoch);
        if ended_here {
            return;
        }
        self.noted_here.insert(
            ticket.seq,
            NotedHere {
                epoch: ticket.epoch,
                ended: false,
                until,
                at: now,
            },
        );
        if self.active.insert(ticket.seq, until).is_none() {
            let index = self.expiries.partition_point(|expiry| *expiry <= until);
            self.expiries.insert(index, until);
        }
        self.head = self.head.max(ticket.seq);
        self.last_seq = self.last_seq.max(ticket.seq);
    }

    /// This instance ended `ticket`, or learned from the store that it is dead, at `now`.
    pub fn note_dead(&mut self, ticket: &Ticket, now: DateTime<Utc>) {
        if Some(ticket.epoch) == self.epoch {
            self.forget(ticket.seq);
        }
        self.noted_here.insert(
            ticket.seq,
            NotedHere {
                epoch: ticket.epoch,
                ended: true,
                until: now,
                at: now,
            },
        );
    }

    fn forget(&mut self, seq: Seq) {
        if let Some(until) = self.active.remove(&seq) {
            if let Some(index) = self.expiries.iter().position(|expiry| *expiry == until) {
                self.expiries.remove(index);
            }
        }
        if self.place_of(seq).is_none_or(|place| place > self.head) {
            self.left.insert(seq);
        }
    }

    /// The draw whose order this view still has to load, if any.
    pub fn draw_to_load(&self) -> Option<DrawRange> {
        match (self.announced_draw, &self.draw) {
            (Some(announced), Some(loaded)) if loaded.range == announced => None,
            (announced, _) => announced,
        }
    }

    /// Loads the order of the draw in force: `order[i]` holds the place `after + 1 + i`.
    /// An order that is not a permutation of the range is not loaded.
    pub fn load_draw(&mut self, range: DrawRange, order: &[Seq]) {
        let len = usize::try_from(range.len()).unwrap_or(usize::MAX);
        if order.len() != len {
            return;
        }
        let mut place_offsets = vec![u32::MAX; len];
        for (place_offset, seq) in order.iter().enumerate() {
            let Some(seq_offset) = seq
                .checked_sub(range.after + 1)
                .and_then(|offset| usize::try_from(offset).ok())
                .filter(|offset| *offset < len)
            else {
                return;
            };
            place_offsets[seq_offset] = u32::try_from(place_offset).unwrap_or(u32::MAX);
        }
        if place_offsets.contains(&u32::MAX) {
            return;
        }
        self.draw = Some(DrawMap {
            range,
            place_offsets,
        });
    }

    /// The number of arrival number `seq`'s place in the line's order (see
    /// [`LineView::place_of`]).
    pub fn ticket_number(&self, seq: Seq) -> Option<Seq> {
        self.place_of(seq)
    }

    /// The place of arrival number `seq` in the line: itself, unless a draw ordered it; `None`
    /// while the order of a draw that covers it is not loaded.
    fn place_of(&self, seq: Seq) -> Option<Seq> {
        let Some(range) = self.announced_draw else {
            return Some(seq);
        };
        if seq <= range.after || seq > range.through {
            return Some(seq);
        }
        let map = self.draw.as_ref().filter(|map| map.range == range)?;
        let offset = usize::try_from(seq - range.after - 1).ok()?;
        map.place_offsets
            .get(offset)
            .map(|place_offset| range.after + 1 + u64::from(*place_offset))
    }

    /// What the view tells of `ticket` at `now`.
    pub fn judge(&self, ticket: &Ticket, now: DateTime<Utc>) -> Judgement {
        if self.epoch != Some(ticket.epoch) {
            return Judgement::Unknown;
        }
        let Some(place) = self.place_of(ticket.seq) else {
            return Judgement::Unknown;
        };
        if place <= self.head {
            return match self.active.get(&ticket.seq) {
                Some(until) if *until > now => Judgement::Active { until: *until },
                _ => Judgement::Dead,
            };
        }
        if self.left.contains(&ticket.seq) {
            return Judgement::Dead;
        }
        Judgement::Waiting {
            position: place - self.head,
        }
    }

    /// Whole seconds a ticket at `position` likely waits at most: the longer of what the
    /// admission rate allows and what the room allows (when it is full, places free up only as
    /// ACTIVE sessions end; sessions not yet begun are counted at their full length, so people
    /// who pay early make the real wait shorter, never longer).
    pub fn estimated_wait(&self, position: u64, policy: &QueuePolicy, now: DateTime<Utc>) -> u64 {
        let by_rate = policy.wait_by_rate(position);
        let live: &[DateTime<Utc>] = {
            let first_live = self.expiries.partition_point(|until| *until <= now);
            &self.expiries[first_live..]
        };
        let max_active = u64::from(policy.max_active.get());
        let free = max_active.saturating_sub(live.len() as u64);
        if position <= free {
            return by_rate;
        }
        // Places that must free up before this one; each ACTIVE session frees its place when it
        // ends, then the place is taken again for a whole session.
        let needed = position - free;
        let ttl = policy.active_ttl.as_secs().max(1);
        let by_room = match u64::try_from(live.len()) {
            Ok(0) | Err(_) => needed.div_ceil(max_active).saturating_mul(ttl),
            Ok(in_use) => {
                let rounds = (needed - 1) / in_use;
                let index = usize::try_from((needed - 1) % in_use).unwrap_or(0);
                let first_free = live.get(index).map_or(ttl, |until| {
                    let seconds = until.signed_duration_since(now).num_milliseconds();
                    u64::try_from(seconds).unwrap_or(0).div_ceil(1000)
                });
                rounds.saturating_mul(ttl).saturating_add(first_free)
            }
        };
        by_rate.max(by_room)
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_900_000_000 + seconds, 0).expect("valid")
    }

    fn ticket(seq: Seq) -> Ticket {
        Ticket {
            epoch: 1,
            seq,
            user: None,
        }
    }

    fn sync(head: Seq, last_seq: Seq, cursor: &str, changes: LineChanges) -> LineSync {
        LineSync {
            epoch: Some(1),
            head,
            last_seq,
            cursor: SyncCursor::new(cursor),
            changes,
            draw: None,
        }
    }

    fn policy(max_active: u32, rate: u32) -> QueuePolicy {
        QueuePolicy {
            max_active: NonZeroU32::new(max_active).expect("non-zero"),
            admit_per_second: NonZeroU32::new(rate).expect("non-zero"),
            active_ttl: Duration::from_secs(600),
            waiting_idle_timeout: Duration::from_secs(60),
            entry_rate_per_client: None,
        }
    }

    fn view_with(active: Vec<(Seq, DateTime<Utc>)>, head: Seq, last: Seq) -> LineView {
        let mut view = LineView::default();
        view.apply(
            sync(
                head,
                last,
                "1-0",
                LineChanges::Snapshot {
                    active,
                    left: vec![],
                },
            ),
            at(0),
        );
        view
    }

    #[test]
    fn a_new_view_knows_nothing_and_is_not_fresh() {
        let view = LineView::default();
        assert_eq!(view.judge(&ticket(1), at(0)), Judgement::Unknown);
        assert!(!view.is_fresh(at(0), Duration::from_secs(1)));
        assert!(view.cursor().is_start());
    }

    #[test]
    fn an_admitted_place_is_active_until_its_expiry_and_dead_after() {
        let view = view_with(vec![(3, at(10))], 3, 5);

        assert_eq!(
            view.judge(&ticket(3), at(9)),
            Judgement::Active { until: at(10) }
        );
        assert_eq!(view.judge(&ticket(3), at(10)), Judgement::Dead);
    }

    #[test]
    fn a_decided_place_that_was_not_admitted_was_skipped() {
        let view = view_with(vec![(3, at(10))], 3, 5);
        assert_eq!(view.judge(&ticket(2), at(0)), Judgement::Dead);
    }

    #[test]
    fn a_place_behind_the_front_waits_at_its_distance_from_it() {
        let view = view_with(vec![], 3, 9);
        assert_eq!(
            view.judge(&ticket(5), at(0)),
            Judgement::Waiting { position: 2 }
        );
        assert_eq!(
            view.judge(&ticket(12), at(0)),
            Judgement::Waiting { position: 9 },
            "handed out after the last sync: still in line"
        );
    }

    #[test]
    fn the_feed_admits_and_revokes() {
        let mut view = view_with(vec![], 0, 4);
        view.apply(
            sync(
                2,
                4,
                "2-0",
                LineChanges::Since(vec![LineEvent::Admitted {
                    seqs: vec![1, 2],
                    until: at(600),
                }]),
            ),
            at(1),
        );
        assert_eq!(
            view.judge(&ticket(2), at(1)),
            Judgement::Active { until: at(600) }
        );

        view.apply(
            sync(
                2,
                4,
                "3-0",
                LineChanges::Since(vec![
                    LineEvent::Revoked { seq: 2 },
                    LineEvent::Revoked { seq: 4 },
                ]),
            ),
            at(2),
        );
        assert_eq!(
            view.judge(&ticket(2), at(2)),
            Judgement::Dead,
            "paid or left"
        );
        assert_eq!(
            view.judge(&ticket(4), at(2)),
            Judgement::Dead,
            "left the line"
        );
        assert_eq!(
            view.judge(&ticket(3), at(2)),
            Judgement::Waiting { position: 1 }
        );
        assert_eq!(view.cursor(), SyncCursor::new("3-0"));
    }

    #[test]
    fn a_step_read_before_an_end_noted_here_does_not_bring_the_ticket_back() {
        let mut view = view_with(vec![(1, at(600))], 1, 1);
        view.note_dead(&ticket(1), at(2));

        view.apply(
            sync(
                1,
                1,
                "2-0",
                LineChanges::Snapshot {
                    active: vec![(1, at(600))],
                    left: vec![],
                },
            ),
            at(1),
        );

        assert_eq!(view.judge(&ticket(1), at(2)), Judgement::Dead);
    }

    #[test]
    fn an_admission_of_a_line_not_yet_synced_is_remembered_but_not_fresh() {
        let mut view = LineView::default();
        view.note_active(&ticket(1), at(600), at(0));

        assert_eq!(
            view.judge(&ticket(1), at(0)),
            Judgement::Active { until: at(600) }
        );
        assert!(!view.is_fresh(at(0), Duration::from_secs(1)));
        assert!(view.cursor().is_start(), "the next step sends a snapshot");
    }

    #[test]
    fn a_step_read_before_an_admission_noted_here_does_not_undo_it() {
        let mut view = view_with(vec![], 0, 0);
        view.note_active(&ticket(1), at(600), at(2));

        view.apply(
            sync(
                0,
                0,
                "2-0",
                LineChanges::Snapshot {
                    active: vec![],
                    left: vec![],
                },
            ),
            at(1),
        );

        assert_eq!(
            view.judge(&ticket(1), at(2)),
            Judgement::Active { until: at(600) }
        );
    }

    #[test]
    fn a_step_of_no_line_does_not_wipe_a_known_line_but_lets_it_go_stale() {
        let mut view = view_with(vec![(1, at(600))], 1, 1);
        view.apply(
            LineSync {
                epoch: None,
                head: 0,
                last_seq: 0,
                cursor: SyncCursor::default(),
                changes: LineChanges::Since(vec![]),
                draw: None,
            },
            at(5),
        );

        assert_eq!(
            view.judge(&ticket(1), at(5)),
            Judgement::Active { until: at(600) }
        );
        assert!(!view.is_fresh(at(5), Duration::from_secs(1)));
    }

    #[test]
    fn after_a_draw_a_place_is_found_through_its_order() {
        // Places 3..=6 were drawn: the line goes 5, 3, 6, 4, then 7 by arrival.
        let mut view = view_with(vec![], 2, 7);
        let range = DrawRange {
            after: 2,
            through: 6,
        };
        view.apply(
            LineSync {
                draw: Some(range),
                ..sync(2, 7, "2-0", LineChanges::Since(vec![]))
            },
            at(1),
        );
        assert_eq!(view.draw_to_load(), Some(range));
        assert_eq!(
            view.judge(&ticket(4), at(1)),
            Judgement::Unknown,
            "order not loaded"
        );

        view.load_draw(range, &[5, 3, 6, 4]);

        assert_eq!(view.draw_to_load(), None);
        let position = |seq| match view.judge(&ticket(seq), at(1)) {
            Judgement::Waiting { position } => position,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            [5, 3, 6, 4, 7].map(position),
            [1, 2, 3, 4, 5],
            "drawn order first, then arrivals"
        );
    }

    #[test]
    fn an_order_that_is_not_a_permutation_is_not_loaded() {
        let mut view = view_with(vec![], 0, 3);
        let range = DrawRange {
            after: 0,
            through: 3,
        };
        view.apply(
            LineSync {
                draw: Some(range),
                ..sync(0, 3, "2-0", LineChanges::Since(vec![]))
            },
            at(1),
        );
        view.load_draw(range, &[1, 1, 3]);
        assert_eq!(view.draw_to_load(), Some(range));
    }

    #[test]
    fn an_admission_learned_before_a_step_read_yields_to_a_revocation_in_it() {
        let mut view = view_with(vec![], 0, 1);
        view.note_active(&ticket(1), at(600), at(1));

        view.apply(
            sync(
                1,
                1,
                "2-0",
                LineChanges::Since(vec![LineEvent::Revoked { seq: 1 }]),
            ),
            at(2),
        );

        assert_eq!(view.judge(&ticket(1), at(2)), Judgement::Dead);
    }

    #[test]
    fn a_ticket_of_another_line_is_for_the_store_to_judge() {
        let view = view_with(vec![(1, at(10))], 1, 1);
        let other = Ticket {
            epoch: 2,
            ..ticket(1)
        };
        assert_eq!(view.judge(&other, at(0)), Judgement::Unknown);
    }

    #[test]
    fn a_recreated_line_forgets_the_old_one() {
        let mut view = view_with(vec![(1, at(10))], 1, 1);
        view.apply(
            LineSync {
                epoch: Some(9),
                head: 0,
                last_seq: 0,
                cursor: SyncCursor::new("0-1"),
                changes: LineChanges::Since(vec![]),
                draw: None,
            },
            at(1),
        );
        assert_eq!(view.judge(&ticket(1), at(1)), Judgement::Unknown);
        assert_eq!(view.active_count(), 0);
    }

    #[test]
    fn freshness_is_the_age_of_the_last_sync() {
        let view = view_with(vec![], 0, 0);
        assert!(view.is_fresh(at(1), Duration::from_secs(1)));
        assert!(!view.is_fresh(at(2), Duration::from_secs(1)));
    }

    #[test]
    fn with_room_the_wait_is_the_position_over_the_rate() {
        let view = view_with(vec![], 0, 300);
        assert_eq!(view.estimated_wait(250, &policy(1000, 100), at(0)), 3);
    }

    #[test]
    fn with_the_room_full_the_wait_is_until_enough_sessions_end() {
        // Four places taken, ending at 40, 100, 200 and 600 s: the 1st in line waits for the
        // first to end, the 5th for a whole second round of the first.
        let view = view_with(
            vec![(1, at(40)), (2, at(100)), (3, at(200)), (4, at(600))],
            4,
            9,
        );
        let policy = policy(4, 100);

        assert_eq!(view.estimated_wait(1, &policy, at(0)), 40);
        assert_eq!(view.estimated_wait(4, &policy, at(0)), 600);
        assert_eq!(view.estimated_wait(5, &policy, at(0)), 640);
    }

    #[test]
    fn free_places_are_used_before_waiting_for_sessions_to_end() {
        let view = view_with(vec![(1, at(300))], 1, 5);
        let policy = policy(3, 1);

        assert_eq!(view.estimated_wait(2, &policy, at(0)), 2, "two places free");
        assert_eq!(view.estimated_wait(3, &policy, at(0)), 300);
    }
}
