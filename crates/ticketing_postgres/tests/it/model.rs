//! A model-based test of seats, holds, payments, refunds and balances against a real
//! PostgreSQL.
//!
//! [`Model`] is a reference state machine of six seats of performance 119 (three prices), four
//! users with their balances and queue tokens, every reservation made, every payment and every
//! `Idempotency-Key` outcome. `proptest-state-machine` draws sequences of steps from it: holds of
//! one to five seats (a duplicate or an unknown seat now and then), cancellations (also of
//! someone else's reservation), payments of one or several reservations with and without a key
//! (replays of a recorded key, a key reused with another body, replays once the paying token is
//! gone), balance charges (keyed or not), refunds (keyed or not), a hold that lapses (its rows
//! backdated: `reservations.expires_at` and `seats.hold_expires_at`), the expiry sweep
//! (`release_expired`), re-entering the line, the performance starting, and listings of a user's
//! reservations.
//!
//! Each step runs through the domain's services ([`ReservationService`], [`PaymentService`],
//! [`RefundService`], [`WalletService`]) wired to the real adapters ([`PgSeatInventory`],
//! [`PgPaymentLedger`], [`PgRefundLedger`], [`PgWallet`]) as the app wires them, with bound
//! tokens required as in production; only the waiting line is an in-memory fake (every token is
//! ACTIVE until revoked). After every step:
//! - the answer (which reservations, which error, which balance, replayed or not) is the model's;
//! - the database agrees with the model: each seat's row, each reservation's status, each
//!   balance and its ledger, each payment and what it paid, each recorded key and its outcome,
//!   the outbox events by type;
//! - and, on the database alone: each seat is in exactly one state (AVAILABLE, HELD by one live
//!   reservation, or SOLD to one confirmed one; a lapsed hold counts as available), no seat has
//!   two live reservations, every balance is >= 0 and the sum of its ledger entries, each entry's
//!   `balance_after` is the running sum, money is conserved (charges - payments + refunds = the
//!   sum of the balances), one payment per key and per paid reservation.
//!
//! Cases start from the demo data with opening balances drawn per user (each as a first CHARGE
//! entry). Each worker (`MODEL_WORKERS`, 2 by default: a step mostly waits for PostgreSQL) owns
//! one schema for all its cases and resets it between them: it deletes what the previous case
//! made and puts back the six seats, the four wallets and the performance's start.
//!
//! `cargo test -p ticketing_postgres --test it -- model::` runs 1,000 cases of 1 to 19 steps (about 40 s
//! on two cores). Longer: `MODEL_CASES=20000 cargo test -p ticketing_postgres --test it -- model::`, and
//! `MODEL_STEPS=40` for sequences of up to 39 steps; `-- --nocapture` shows how often each kind
//! of answer came. A failure prints the smallest sequence of steps found; `PROPTEST_RNG_SEED`
//! (with the same `MODEL_CASES` and `MODEL_WORKERS`) replays a run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::Union;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use proptest_state_machine::ReferenceStateMachine;
use ticketing_domain::access::{OwnerCheck, OwnerError, TokenBinding};
use ticketing_domain::clock::Clock;
use ticketing_domain::idempotency::{IdempotencyConflict, IdempotencyKey};
use ticketing_domain::ids::{ConcertId, PaymentId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::money::ChargeAmount;
use ticketing_domain::payment::{
    PaymentError, PaymentForm, PaymentRefusal, PaymentRequest, PaymentService, ReservationSelection,
};
use ticketing_domain::queue::{
    AccessError, ActiveToken, ClientKey, DrawRange, DrawSeed, Entered, FixedSeed, LineStep,
    QueueError, QueuePolicy, QueueService, QueueToken, Seq, SigningKey, SyncCursor, Ticket,
    TicketState, TokenKeys, WaitingQueue,
};
use ticketing_domain::refund::{RefundError, RefundRefusal, RefundRequest, RefundService};
use ticketing_domain::reservation::{
    HoldError, HoldOrder, HoldRules, HoldTtl, InvalidSeatSelection, ListError, PageSize,
    ReservationError, ReservationQuery, ReservationService, ReservationStatus, SeatLimit,
    SeatsPerHold,
};
use ticketing_domain::wallet::{WalletError, WalletService};
use ticketing_domain::InfrastructureError;
use ticketing_postgres::{
    PgPaymentLedger, PgRefundLedger, PgSeatInventory, PgWallet, SEAT_RELEASED_SET,
};
use ticketing_testkit::TestDatabase;

// ---------------------------------------------------------------------------------------------
// The world of the model
// ---------------------------------------------------------------------------------------------

/// The seats of performance 119 the model plays with, and their prices in the demo data (the
/// front fifth R at 150,000, the next three tenths S at 120,000, the back half A at 90,000).
const SEATS: [(i64, i64); 6] = [
    (1, 150_000),
    (2, 150_000),
    (200, 150_000),
    (201, 120_000),
    (500, 120_000),
    (501, 90_000),
];
/// A seat that does not exist (performance 119 has 1,000).
const GHOST_SEAT: i64 = 1001;
/// A reservation id that never exists.
const GHOST_RESERVATION: i64 = 999_999_999;
const USERS: [i64; 4] = [1, 2, 3, 4];
const CONCERT: i64 = 1;
const PERFORMANCE: i64 = 119;
/// Most seats per hold and per user and performance: the production defaults.
const SEAT_LIMIT: usize = 4;
const OPENING_BALANCES: [i64; 4] = [0, 150_000, 400_000, 1_000_000];
const CHARGES: [i64; 5] = [50_000, 150_000, 300_000, 600_000, 1_000_000];

fn seat_position(seat: i64) -> Option<usize> {
    SEATS.iter().position(|(no, _)| *no == seat)
}

fn user_position(user: i64) -> usize {
    USERS
        .iter()
        .position(|u| *u == user)
        .expect("a user of the model")
}

/// A reservation as the model names it: the n-th made in this case, or one that never existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Res {
    Made(usize),
    Ghost,
}

/// A reservation's status as stored (a lapsed hold stays HELD until the sweep or a new hold of
/// its seat retires it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Held,
    Confirmed,
    Expired,
    Cancelled,
    Refunded,
}

impl Stored {
    fn as_str(self) -> &'static str {
        match self {
            Stored::Held => "HELD",
            Stored::Confirmed => "CONFIRMED",
            Stored::Expired => "EXPIRED",
            Stored::Cancelled => "CANCELLED",
            Stored::Refunded => "REFUNDED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelReservation {
    user: i64,
    seat: i64,
    price: i64,
    stored: Stored,
    /// Its hold was backdated (meaningful while stored HELD).
    lapsed: bool,
}

impl ModelReservation {
    /// As the service reports it: a lapsed hold is EXPIRED.
    fn reported(&self) -> ReservationStatus {
        match self.stored {
            Stored::Held if self.lapsed => ReservationStatus::Expired,
            Stored::Held => ReservationStatus::Held,
            Stored::Confirmed => ReservationStatus::Confirmed,
            Stored::Expired => ReservationStatus::Expired,
            Stored::Cancelled => ReservationStatus::Cancelled,
            Stored::Refunded => ReservationStatus::Refunded,
        }
    }

    fn live_hold(&self) -> bool {
        self.stored == Stored::Held && !self.lapsed
    }
}

/// A seat's row as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeatRow {
    Available,
    Held(usize),
    Sold(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelPayment {
    user: i64,
    /// In the order asked; the first is `payments.reservation_id`.
    reservations: Vec<usize>,
    amount: i64,
}

/// The three scopes of `Idempotency-Key`s: the same key in two scopes is two keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Scope {
    Charge,
    Payment,
    Refund,
}

/// What a key was first used for: the same key with another request is a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Charge {
        user: i64,
        amount: i64,
    },
    Pay {
        user: i64,
        reservations: Vec<Res>,
        several: bool,
    },
    Refund {
        user: i64,
        reservation: Res,
    },
}

/// An outcome recorded under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Charged(i64),
    Paid(usize),
    PayRefused(PayNo),
    Refunded(Res),
    RefundRefused(RefundNo),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyRecord {
    request: Request,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HoldNo {
    TokenInvalid,
    TooMany(usize),
    Duplicate(i64),
    SeatNotFound(i64),
    Unavailable(Vec<i64>),
    LimitReached(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelNo {
    TokenInvalid,
    NotFound,
    TokenUserMismatch,
    AlreadyConfirmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PayNo {
    TokenInvalid,
    NotFound(Res),
    NotPayable(Res),
    Insufficient(i64),
    KeyConflict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefundNo {
    TokenInvalid,
    NotFound(Res),
    NotRefundable(Res),
    KeyConflict,
}

/// What a step answers, as the model predicts it and as the service gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Nothing,
    /// The seats held with their prices, in the order asked.
    Held(Vec<(i64, i64)>),
    HoldRefused(HoldNo),
    /// The reservation as it was before cancelling.
    Cancelled {
        reservation: Res,
        status: ReservationStatus,
    },
    CancelRefused(CancelNo),
    Paid {
        payment: usize,
        amount: i64,
        reservations: Vec<Res>,
        replayed: bool,
    },
    PayRefused(PayNo),
    Charged(i64),
    ChargeConflict,
    Refunded {
        reservation: Res,
        price: i64,
    },
    RefundRefused(RefundNo),
    Listed(BTreeSet<(Res, &'static str)>),
    ListRefused,
    Swept(u64),
}

/// One step of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Hold {
        user: i64,
        seats: Vec<i64>,
    },
    Cancel {
        user: i64,
        reservation: Res,
    },
    Pay {
        user: i64,
        reservations: Vec<Res>,
        several: bool,
        key: Option<String>,
    },
    Charge {
        user: i64,
        amount: i64,
        key: Option<String>,
    },
    Refund {
        user: i64,
        reservation: Res,
        key: Option<String>,
    },
    /// The hold of this reservation lapses (its rows are backdated).
    Lapse {
        reservation: usize,
    },
    /// The clean-up job runs once.
    Sweep,
    /// The user enters the line again and gets a new ACTIVE token.
    Enter {
        user: i64,
    },
    /// The performance starts: nothing is refundable any more.
    Start,
    List {
        user: i64,
        status: Option<ReservationStatus>,
    },
}

// ---------------------------------------------------------------------------------------------
// The reference state machine
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Model {
    /// The balances a case starts with.
    opening: [i64; 4],
    reservations: Vec<ModelReservation>,
    seats: [SeatRow; 6],
    balances: [i64; 4],
    charged: [i64; 4],
    debited: [i64; 4],
    refunded: [i64; 4],
    payments: Vec<ModelPayment>,
    keys: BTreeMap<(Scope, String), KeyRecord>,
    /// Whether each user's current token is live (a payment ends it).
    token_live: [bool; 4],
    started: bool,
    events: BTreeMap<&'static str, i64>,
    /// The answer of the last step.
    answer: Answer,
}

impl Model {
    /// The demo data with these balances, each the case's first ledger entry (a CHARGE).
    fn new(opening: [i64; 4]) -> Self {
        Self {
            opening,
            reservations: Vec::new(),
            seats: [SeatRow::Available; 6],
            balances: opening,
            charged: opening,
            debited: [0; 4],
            refunded: [0; 4],
            payments: Vec::new(),
            keys: BTreeMap::new(),
            token_live: [true; 4],
            started: false,
            events: BTreeMap::new(),
            answer: Answer::Nothing,
        }
    }

    fn live(&self, user: i64) -> bool {
        self.token_live[user_position(user)]
    }

    fn event(&mut self, kind: &'static str) {
        *self.events.entry(kind).or_insert(0) += 1;
    }

    fn seat_free(&self, position: usize) -> bool {
        match self.seats[position] {
            SeatRow::Available => true,
            SeatRow::Held(r) => self.reservations[r].lapsed,
            SeatRow::Sold(_) => false,
        }
    }

    fn reservation(&self, res: Res) -> Option<&ModelReservation> {
        match res {
            Res::Made(i) => self.reservations.get(i),
            Res::Ghost => None,
        }
    }

    fn hold(&mut self, user: i64, seats: &[i64]) -> Answer {
        if !self.live(user) {
            return Answer::HoldRefused(HoldNo::TokenInvalid);
        }
        if seats.len() > SEAT_LIMIT {
            return Answer::HoldRefused(HoldNo::TooMany(seats.len()));
        }
        let mut seen = HashSet::new();
        if let Some(twice) = seats.iter().find(|seat| !seen.insert(**seat)) {
            return Answer::HoldRefused(HoldNo::Duplicate(*twice));
        }
        if let Some(missing) = seats.iter().find(|seat| seat_position(**seat).is_none()) {
            return Answer::HoldRefused(HoldNo::SeatNotFound(*missing));
        }
        let positions: Vec<usize> = seats.iter().filter_map(|s| seat_position(*s)).collect();
        let taken: Vec<i64> = positions
            .iter()
            .filter(|p| !self.seat_free(**p))
            .map(|p| SEATS[*p].0)
            .collect();
        if !taken.is_empty() {
            return Answer::HoldRefused(HoldNo::Unavailable(taken));
        }
        let owned = self
            .reservations
            .iter()
            .filter(|r| r.user == user && (r.stored == Stored::Confirmed || r.live_hold()))
            .count();
        if owned + seats.len() > SEAT_LIMIT {
            return Answer::HoldRefused(HoldNo::LimitReached(SEAT_LIMIT as u32));
        }
        let mut held = Vec::new();
        for position in positions {
            if let SeatRow::Held(lapsed) = self.seats[position] {
                self.reservations[lapsed].stored = Stored::Expired;
                self.event("reservation.expired");
            }
            let (seat, price) = SEATS[position];
            self.reservations.push(ModelReservation {
                user,
                seat,
                price,
                stored: Stored::Held,
                lapsed: false,
            });
            self.seats[position] = SeatRow::Held(self.reservations.len() - 1);
            self.event("reservation.held");
            held.push((seat, price));
        }
        Answer::Held(held)
    }

    fn cancel(&mut self, user: i64, res: Res) -> Answer {
        if !self.live(user) {
            return Answer::CancelRefused(CancelNo::TokenInvalid);
        }
        let Res::Made(i) = res else {
            return Answer::CancelRefused(CancelNo::NotFound);
        };
        let found = self.reservations[i].clone();
        if found.user != user {
            return Answer::CancelRefused(CancelNo::TokenUserMismatch);
        }
        match found.stored {
            Stored::Held if !found.lapsed => {
                self.reservations[i].stored = Stored::Cancelled;
                let position = seat_position(found.seat).expect("a model seat");
                self.seats[position] = SeatRow::Available;
                self.event("reservation.cancelled");
            }
            Stored::Confirmed => return Answer::CancelRefused(CancelNo::AlreadyConfirmed),
            _ => {}
        }
        Answer::Cancelled {
            reservation: res,
            status: found.reported(),
        }
    }

    /// The payment itself, as the ledger judges it: every reservation the user's, then every one
    /// payable, then the balance.
    fn attempt_payment(&mut self, user: i64, reservations: &[Res]) -> Result<usize, PayNo> {
        for res in reservations {
            match self.reservation(*res) {
                Some(r) if r.user == user => {}
                _ => return Err(PayNo::NotFound(*res)),
            }
        }
        let mut indices = Vec::new();
        for res in reservations {
            let Res::Made(i) = res else { unreachable!() };
            if !self.reservations[*i].live_hold() {
                return Err(PayNo::NotPayable(*res));
            }
            indices.push(*i);
        }
        let amount: i64 = indices.iter().map(|i| self.reservations[*i].price).sum();
        let u = user_position(user);
        if self.balances[u] < amount {
            return Err(PayNo::Insufficient(amount));
        }
        self.balances[u] -= amount;
        self.debited[u] += amount;
        self.event("balance.debited");
        for i in &indices {
            self.reservations[*i].stored = Stored::Confirmed;
            let position = seat_position(self.reservations[*i].seat).expect("a model seat");
            self.seats[position] = SeatRow::Sold(*i);
            self.event("reservation.confirmed");
        }
        self.payments.push(ModelPayment {
            user,
            reservations: indices,
            amount,
        });
        Ok(self.payments.len() - 1)
    }

    fn paid_answer(&self, outcome: &Result<usize, PayNo>, replayed: bool) -> Answer {
        match outcome {
            Ok(p) => Answer::Paid {
                payment: *p,
                amount: self.payments[*p].amount,
                reservations: self.payments[*p]
                    .reservations
                    .iter()
                    .map(|i| Res::Made(*i))
                    .collect(),
                replayed,
            },
            Err(no) => Answer::PayRefused(*no),
        }
    }

    fn recorded_payment(record: &KeyRecord) -> Result<usize, PayNo> {
        match &record.outcome {
            Outcome::Paid(p) => Ok(*p),
            Outcome::PayRefused(no) => Err(*no),
            other => panic!("a payment key recorded {other:?}"),
        }
    }

    fn pay(&mut self, user: i64, reservations: &[Res], several: bool, key: Option<&str>) -> Answer {
        let request = Request::Pay {
            user,
            reservations: reservations.to_vec(),
            several,
        };
        let key = key.map(|k| (Scope::Payment, k.to_string()));
        let recorded = key.as_ref().and_then(|k| self.keys.get(k)).cloned();
        if let Some(record) = &recorded {
            if record.request != request {
                return Answer::PayRefused(PayNo::KeyConflict);
            }
            let outcome = Self::recorded_payment(record);
            // A live token is ended by the replay of a payment too; a dead one learns the
            // outcome without a token.
            if outcome.is_ok() {
                self.token_live[user_position(user)] = false;
            }
            return self.paid_answer(&outcome, true);
        }
        if !self.live(user) {
            return Answer::PayRefused(PayNo::TokenInvalid);
        }
        let outcome = self.attempt_payment(user, reservations);
        if let Some(key) = key {
            let outcome = match outcome {
                Ok(p) => Outcome::Paid(p),
                Err(no) => Outcome::PayRefused(no),
            };
            self.keys.insert(key, KeyRecord { request, outcome });
        }
        if outcome.is_ok() {
            self.token_live[user_position(user)] = false;
        }
        self.paid_answer(&outcome, false)
    }

    fn charge(&mut self, user: i64, amount: i64, key: Option<&str>) -> Answer {
        let request = Request::Charge { user, amount };
        let key = key.map(|k| (Scope::Charge, k.to_string()));
        if let Some(record) = key.as_ref().and_then(|k| self.keys.get(k)) {
            return match (&record.outcome, record.request == request) {
                (Outcome::Charged(balance), true) => Answer::Charged(*balance),
                (_, false) => Answer::ChargeConflict,
                (other, true) => panic!("a charge key recorded {other:?}"),
            };
        }
        let u = user_position(user);
        self.balances[u] += amount;
        self.charged[u] += amount;
        self.event("balance.charged");
        if let Some(key) = key {
            self.keys.insert(
                key,
                KeyRecord {
                    request,
                    outcome: Outcome::Charged(self.balances[u]),
                },
            );
        }
        Answer::Charged(self.balances[u])
    }

    fn refund_answer(&self, outcome: Result<Res, RefundNo>) -> Answer {
        match outcome {
            Ok(res) => Answer::Refunded {
                reservation: res,
                price: self.reservation(res).expect("a refunded reservation").price,
            },
            Err(no) => Answer::RefundRefused(no),
        }
    }

    fn refund(&mut self, user: i64, res: Res, key: Option<&str>) -> Answer {
        // Refunds are not queue-protected, but with bound tokens required they need a live
        // token of the user, before anything else.
        if !self.live(user) {
            return Answer::RefundRefused(RefundNo::TokenInvalid);
        }
        let request = Request::Refund {
            user,
            reservation: res,
        };
        let key = key.map(|k| (Scope::Refund, k.to_string()));
        if let Some(record) = key.as_ref().and_then(|k| self.keys.get(k)) {
            if record.request != request {
                return Answer::RefundRefused(RefundNo::KeyConflict);
            }
            let outcome = match &record.outcome {
                Outcome::Refunded(res) => Ok(*res),
                Outcome::RefundRefused(no) => Err(*no),
                other => panic!("a refund key recorded {other:?}"),
            };
            return self.refund_answer(outcome);
        }
        let outcome = match (res, self.reservation(res).cloned()) {
            (Res::Made(i), Some(r)) if r.user == user => {
                if r.stored == Stored::Confirmed && !self.started {
                    self.reservations[i].stored = Stored::Refunded;
                    let position = seat_position(r.seat).expect("a model seat");
                    self.seats[position] = SeatRow::Available;
                    let u = user_position(user);
                    self.balances[u] += r.price;
                    self.refunded[u] += r.price;
                    self.event("reservation.refunded");
                    self.event("balance.refunded");
                    Ok(res)
                } else {
                    Err(RefundNo::NotRefundable(res))
                }
            }
            _ => Err(RefundNo::NotFound(res)),
        };
        if let Some(key) = key {
            let recorded = match outcome {
                Ok(res) => Outcome::Refunded(res),
                Err(no) => Outcome::RefundRefused(no),
            };
            self.keys.insert(
                key,
                KeyRecord {
                    request,
                    outcome: recorded,
                },
            );
        }
        self.refund_answer(outcome)
    }

    fn sweep(&mut self) -> Answer {
        let mut released = 0;
        for position in 0..SEATS.len() {
            if let SeatRow::Held(r) = self.seats[position] {
                if self.reservations[r].lapsed {
                    self.seats[position] = SeatRow::Available;
                    self.reservations[r].stored = Stored::Expired;
                    self.event("reservation.expired");
                    released += 1;
                }
            }
        }
        Answer::Swept(released)
    }

    fn list(&self, user: i64, status: Option<ReservationStatus>) -> Answer {
        if !self.live(user) {
            return Answer::ListRefused;
        }
        Answer::Listed(
            self.reservations
                .iter()
                .enumerate()
                .filter(|(_, r)| r.user == user)
                .filter(|(_, r)| status.is_none_or(|s| r.reported() == s))
                .map(|(i, r)| (Res::Made(i), r.reported().as_str()))
                .collect(),
        )
    }

    /// Whether every reservation a step names exists in this state (shrinking may remove the
    /// step that made it).
    fn names_known(&self, res: Res) -> bool {
        match res {
            Res::Made(i) => i < self.reservations.len(),
            Res::Ghost => true,
        }
    }
}

/// Keys are few, so that they are reused: within a scope (a replay, or a conflict) and across
/// scopes (two different keys).
fn key_choice(used: Vec<String>) -> BoxedStrategy<Option<String>> {
    let fresh = format!("k{}", used.len());
    let mut options: Vec<(u32, BoxedStrategy<Option<String>>)> =
        vec![(4, Just(None).boxed()), (3, Just(Some(fresh)).boxed())];
    if !used.is_empty() {
        options.push((2, select(used).prop_map(Some).boxed()));
    }
    Union::new_weighted(options).boxed()
}

fn any_user() -> BoxedStrategy<i64> {
    select(USERS.to_vec()).boxed()
}

fn seat_nos() -> Vec<i64> {
    SEATS.iter().map(|(no, _)| *no).collect()
}

fn hold_seats() -> BoxedStrategy<Vec<i64>> {
    prop_oneof![
        12 => subsequence(seat_nos(), 1..=SEAT_LIMIT).prop_shuffle(),
        1 => subsequence(seat_nos(), SEAT_LIMIT + 1).prop_shuffle(),
        1 => (select(seat_nos()), subsequence(seat_nos(), 0..=2)).prop_map(|(twice, others)| {
            let mut seats = vec![twice];
            seats.extend(others.into_iter().filter(|s| *s != twice));
            seats.push(twice);
            seats
        }),
        1 => subsequence(seat_nos(), 0..=2)
            .prop_map(|mut seats| {
                seats.push(GHOST_SEAT);
                seats
            })
            .prop_shuffle(),
    ]
    .boxed()
}

/// A reservation to name: mostly one of `preferred`, else any made, now and then a ghost.
fn some_reservation(preferred: Vec<usize>, made: usize) -> BoxedStrategy<Res> {
    let mut options: Vec<(u32, BoxedStrategy<Res>)> = vec![(1, Just(Res::Ghost).boxed())];
    if !preferred.is_empty() {
        options.push((8, select(preferred).prop_map(Res::Made).boxed()));
    }
    if made > 0 {
        options.push((3, (0..made).prop_map(Res::Made).boxed()));
    }
    Union::new_weighted(options).boxed()
}

fn keys_of(state: &Model, scope: Scope) -> Vec<((Scope, String), KeyRecord)> {
    state
        .keys
        .iter()
        .filter(|((s, _), _)| *s == scope)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn key_names(state: &Model, scope: Scope) -> Vec<String> {
    keys_of(state, scope)
        .into_iter()
        .map(|((_, k), _)| k)
        .collect()
}

impl ReferenceStateMachine for Model {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        // Most cases start with some money, so that they get to payments and refunds.
        proptest::array::uniform4(select(OPENING_BALANCES.to_vec()))
            .prop_map(Model::new)
            .boxed()
    }

    /// Weighted towards what leads somewhere: users who hold seats are charged and pay, paid
    /// reservations are refunded, a user whose token a payment ended enters again.
    fn transitions(state: &Model) -> BoxedStrategy<Step> {
        let made = state.reservations.len();
        let owners: Vec<i64> = state.reservations.iter().map(|r| r.user).collect();
        let held_by: Vec<Vec<usize>> = USERS
            .iter()
            .map(|u| {
                (0..made)
                    .filter(|i| {
                        state.reservations[*i].user == *u
                            && state.reservations[*i].stored == Stored::Held
                    })
                    .collect()
            })
            .collect();
        let holders: Vec<i64> = USERS
            .iter()
            .zip(&held_by)
            .filter(|(_, held)| !held.is_empty())
            .map(|(u, _)| *u)
            .collect();
        let held: Vec<usize> = (0..made)
            .filter(|i| state.reservations[*i].stored == Stored::Held)
            .collect();
        let live_holds: Vec<usize> = (0..made)
            .filter(|i| state.reservations[*i].live_hold())
            .collect();
        let confirmed: Vec<usize> = (0..made)
            .filter(|i| state.reservations[*i].stored == Stored::Confirmed)
            .collect();
        let dead: Vec<i64> = USERS.iter().copied().filter(|u| !state.live(*u)).collect();
        // Mostly a user who holds seats (the one who will pay), else anyone.
        let likely_payer = || -> BoxedStrategy<i64> {
            if holders.is_empty() {
                any_user()
            } else {
                prop_oneof![4 => select(holders.clone()), 1 => any_user()].boxed()
            }
        };

        let mut steps: Vec<(u32, BoxedStrategy<Step>)> = Vec::new();
        steps.push((
            16,
            (any_user(), hold_seats())
                .prop_map(|(user, seats)| Step::Hold { user, seats })
                .boxed(),
        ));
        {
            let owners = owners.clone();
            steps.push((
                if made == 0 { 1 } else { 4 },
                (
                    some_reservation(held, made),
                    any_user(),
                    prop::bool::weighted(0.8),
                )
                    .prop_map(move |(reservation, other, own)| {
                        let user = match reservation {
                            Res::Made(i) if own => owners[i],
                            _ => other,
                        };
                        Step::Cancel { user, reservation }
                    })
                    .boxed(),
            ));
        }
        {
            let keys = key_names(state, Scope::Payment);
            let pay = likely_payer()
                .prop_flat_map(move |user| {
                    let mine = held_by[user_position(user)].clone();
                    let mut choices: Vec<(u32, BoxedStrategy<Vec<Res>>)> =
                        vec![(1, Just(vec![Res::Ghost]).boxed())];
                    if !mine.is_empty() {
                        let most = mine.len().min(3);
                        choices.push((
                            12,
                            subsequence(mine, 1..=most)
                                .prop_shuffle()
                                .prop_map(|v| v.into_iter().map(Res::Made).collect())
                                .boxed(),
                        ));
                    }
                    if made > 0 {
                        choices.push((
                            2,
                            subsequence((0..made).collect::<Vec<_>>(), 1..=made.min(3))
                                .prop_shuffle()
                                .prop_map(|v| v.into_iter().map(Res::Made).collect())
                                .boxed(),
                        ));
                    }
                    (
                        Just(user),
                        Union::new_weighted(choices),
                        prop::bool::weighted(0.3),
                        key_choice(keys.clone()),
                    )
                })
                .prop_map(|(user, reservations, several, key)| Step::Pay {
                    user,
                    several: several || reservations.len() > 1,
                    reservations,
                    key,
                });
            steps.push((if made == 0 { 1 } else { 14 }, pay.boxed()));
        }
        let paid_keys = keys_of(state, Scope::Payment);
        if !paid_keys.is_empty() {
            // The very request again under its key: a replay (by a live or an ended token).
            steps.push((
                5,
                select(paid_keys)
                    .prop_map(|((_, key), record)| match record.request {
                        Request::Pay {
                            user,
                            reservations,
                            several,
                        } => Step::Pay {
                            user,
                            reservations,
                            several,
                            key: Some(key),
                        },
                        other => panic!("a payment key for {other:?}"),
                    })
                    .boxed(),
            ));
        }
        steps.push((
            10,
            (
                likely_payer(),
                select(CHARGES.to_vec()),
                key_choice(key_names(state, Scope::Charge)),
            )
                .prop_map(|(user, amount, key)| Step::Charge { user, amount, key })
                .boxed(),
        ));
        let charge_keys = keys_of(state, Scope::Charge);
        if !charge_keys.is_empty() {
            steps.push((
                2,
                select(charge_keys)
                    .prop_map(|((_, key), record)| match record.request {
                        Request::Charge { user, amount } => Step::Charge {
                            user,
                            amount,
                            key: Some(key),
                        },
                        other => panic!("a charge key for {other:?}"),
                    })
                    .boxed(),
            ));
        }
        {
            let weight = match (made, confirmed.is_empty()) {
                (0, _) => 1,
                (_, true) => 2,
                (_, false) => 10,
            };
            steps.push((
                weight,
                (
                    some_reservation(confirmed, made),
                    any_user(),
                    prop::bool::weighted(0.85),
                    key_choice(key_names(state, Scope::Refund)),
                )
                    .prop_map(move |(reservation, other, own, key)| {
                        let user = match reservation {
                            Res::Made(i) if own => owners[i],
                            _ => other,
                        };
                        Step::Refund {
                            user,
                            reservation,
                            key,
                        }
                    })
                    .boxed(),
            ));
        }
        let refund_keys = keys_of(state, Scope::Refund);
        if !refund_keys.is_empty() {
            steps.push((
                2,
                select(refund_keys)
                    .prop_map(|((_, key), record)| match record.request {
                        Request::Refund { user, reservation } => Step::Refund {
                            user,
                            reservation,
                            key: Some(key),
                        },
                        other => panic!("a refund key for {other:?}"),
                    })
                    .boxed(),
            ));
        }
        if !live_holds.is_empty() {
            steps.push((
                5,
                select(live_holds)
                    .prop_map(|reservation| Step::Lapse { reservation })
                    .boxed(),
            ));
        }
        steps.push((2, Just(Step::Sweep).boxed()));
        if !dead.is_empty() {
            steps.push((
                16,
                select(dead).prop_map(|user| Step::Enter { user }).boxed(),
            ));
        }
        if !state.started {
            steps.push((1, Just(Step::Start).boxed()));
        }
        steps.push((
            2,
            (
                any_user(),
                select(vec![
                    None,
                    Some(ReservationStatus::Held),
                    Some(ReservationStatus::Confirmed),
                    Some(ReservationStatus::Expired),
                    Some(ReservationStatus::Cancelled),
                    Some(ReservationStatus::Refunded),
                ]),
            )
                .prop_map(|(user, status)| Step::List { user, status })
                .boxed(),
        ));
        Union::new_weighted(steps).boxed()
    }

    fn preconditions(state: &Model, step: &Step) -> bool {
        match step {
            Step::Cancel { reservation, .. } | Step::Refund { reservation, .. } => {
                state.names_known(*reservation)
            }
            Step::Pay {
                reservations,
                several,
                ..
            } => {
                let distinct: HashSet<&Res> = reservations.iter().collect();
                !reservations.is_empty()
                    && distinct.len() == reservations.len()
                    && (*several || reservations.len() == 1)
                    && reservations.iter().all(|r| state.names_known(*r))
            }
            Step::Lapse { reservation } => *reservation < state.reservations.len(),
            Step::Hold { seats, .. } => !seats.is_empty(),
            Step::Charge { .. }
            | Step::Sweep
            | Step::Enter { .. }
            | Step::Start
            | Step::List { .. } => true,
        }
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        state.answer = match step {
            Step::Hold { user, seats } => state.hold(*user, seats),
            Step::Cancel { user, reservation } => state.cancel(*user, *reservation),
            Step::Pay {
                user,
                reservations,
                several,
                key,
            } => state.pay(*user, reservations, *several, key.as_deref()),
            Step::Charge { user, amount, key } => state.charge(*user, *amount, key.as_deref()),
            Step::Refund {
                user,
                reservation,
                key,
            } => state.refund(*user, *reservation, key.as_deref()),
            Step::Lapse { reservation } => {
                let r = &mut state.reservations[*reservation];
                if r.stored == Stored::Held {
                    r.lapsed = true;
                }
                Answer::Nothing
            }
            Step::Sweep => state.sweep(),
            Step::Enter { user } => {
                state.token_live[user_position(*user)] = true;
                Answer::Nothing
            }
            Step::Start => {
                state.started = true;
                Answer::Nothing
            }
            Step::List { user, status } => state.list(*user, *status),
        };
        state
    }
}

// ---------------------------------------------------------------------------------------------
// The system under test: the domain's services on the real adapters
// ---------------------------------------------------------------------------------------------

struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

/// The waiting line, in memory: every token is ACTIVE until it is revoked (a payment ends it).
#[derive(Default)]
struct FakeLine {
    revoked: Mutex<HashSet<Seq>>,
}

fn not_in_this_test() -> QueueError {
    QueueError::Infrastructure(InfrastructureError::unexpected(
        "not used by the model test",
    ))
}

#[async_trait]
impl WaitingQueue for FakeLine {
    async fn enter(&self, _: Option<UserId>, _: &ClientKey) -> Result<Entered, QueueError> {
        Err(not_in_this_test())
    }

    async fn rejoin(&self, _: UserId) -> Result<Option<Entered>, QueueError> {
        Err(not_in_this_test())
    }

    async fn lookup(&self, ticket: &Ticket, _: bool) -> Result<Option<TicketState>, QueueError> {
        let revoked = self.revoked.lock().unwrap().contains(&ticket.seq);
        Ok((!revoked).then(|| TicketState::Active {
            until: chrono::Utc::now() + chrono::Duration::minutes(10),
        }))
    }

    async fn revoke(&self, ticket: &Ticket) -> Result<bool, QueueError> {
        Ok(self.revoked.lock().unwrap().insert(ticket.seq))
    }

    async fn advance(&self, _: &[Seq], _: &SyncCursor) -> Result<LineStep, QueueError> {
        Err(not_in_this_test())
    }

    async fn draw(&self, _: DrawRange, _: &DrawSeed, _: &[Seq]) -> Result<bool, QueueError> {
        Err(not_in_this_test())
    }

    async fn draw_order(&self) -> Result<Option<(DrawRange, Vec<Seq>)>, QueueError> {
        Err(not_in_this_test())
    }
}

/// What lives for the whole run: one runtime, one schema, the services, a client for checks.
struct Harness {
    runtime: tokio::runtime::Runtime,
    /// The schema, dropped at the end of the run.
    _schema: TestDatabase,
    client: tokio_postgres::Client,
    keys: TokenKeys,
    next_seq: AtomicU64,
    queue: QueueService,
    reservations: ReservationService,
    payments: PaymentService,
    refunds: RefundService,
    wallet: WalletService,
    statements: Statements,
}

struct Statements {
    seats: tokio_postgres::Statement,
    reservations: tokio_postgres::Statement,
    wallets: tokio_postgres::Statement,
    entries: tokio_postgres::Statement,
    running: tokio_postgres::Statement,
    payments: tokio_postgres::Statement,
    keys: tokio_postgres::Statement,
    events: tokio_postgres::Statement,
    lapse: tokio_postgres::Statement,
}

/// Back to the demo data, for the seats and users the model touches.
fn reset_sql() -> String {
    format!(
        "
DELETE FROM payment_reservations;
DELETE FROM payments;
UPDATE seats SET {SEAT_RELEASED_SET}
 WHERE performance_id = 119 AND seat_no IN (1, 2, 200, 201, 500, 501) AND status <> 'AVAILABLE';
DELETE FROM reservations;
DELETE FROM wallet_entries;
DELETE FROM idempotency_keys;
DELETE FROM outbox_events;
UPDATE wallets SET balance = 0 WHERE user_id IN (1, 2, 3, 4) AND balance <> 0;
UPDATE performances SET starts_at = now() + interval '30 days' WHERE id = 119;"
    )
}

impl Harness {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (db, client, statements) = runtime.block_on(async {
            let db = TestDatabase::with_demo_data().await;
            let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
                .await
                .expect("connect for the checks");
            tokio::spawn(connection);
            let statements = Statements::prepare(&client).await;
            (db, client, statements)
        });
        let keys = TokenKeys::new(SigningKey::new(vec![7; 32]).expect("long enough"), None);
        let policy = QueuePolicy {
            max_active: NonZeroU32::new(1000).expect("non-zero"),
            admit_per_second: NonZeroU32::new(100).expect("non-zero"),
            active_ttl: Duration::from_secs(600),
            waiting_idle_timeout: Duration::from_secs(60),
            entry_rate_per_client: None,
        };
        let queue = QueueService::new(
            Arc::new(FakeLine::default()),
            keys.clone(),
            policy,
            Arc::new(SystemClock),
            Arc::new(FixedSeed(DrawSeed::from_bytes([0; 32]))),
        );
        let binding = TokenBinding::new(true);
        let owner = OwnerCheck::new(binding, queue.clone(), keys.clone());
        let pool = db.pool().clone();
        let rules = HoldRules {
            ttl: HoldTtl::new(Duration::from_secs(300)).expect("non-zero"),
            max_per_hold: SeatsPerHold::new(NonZeroU32::new(SEAT_LIMIT as u32).expect("non-zero")),
            per_user: SeatLimit::new(SEAT_LIMIT as u32),
        };
        Self {
            reservations: ReservationService::new(
                Arc::new(PgSeatInventory::new(pool.clone())),
                rules,
                owner.clone(),
            ),
            payments: PaymentService::new(
                Arc::new(PgPaymentLedger::new(pool.clone())),
                queue.clone(),
                binding,
            ),
            refunds: RefundService::new(Arc::new(PgRefundLedger::new(pool.clone())), owner),
            wallet: WalletService::new(Arc::new(PgWallet::new(pool))),
            queue,
            keys,
            next_seq: AtomicU64::new(1),
            runtime,
            _schema: db,
            client,
            statements,
        }
    }

    fn token(&self, user: i64) -> QueueToken {
        self.keys.seal(&Ticket {
            epoch: 1,
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            user: Some(UserId::new(user).expect("valid")),
        })
    }
}

impl Statements {
    async fn prepare(client: &tokio_postgres::Client) -> Self {
        let prepare = |sql: &'static str| async move {
            client
                .prepare(sql)
                .await
                .unwrap_or_else(|e| panic!("{e}\n{sql}"))
        };
        Self {
            seats: prepare(
                "SELECT s.seat_no::bigint, s.status, s.reservation_id,
                        s.hold_expires_at IS NULL, coalesce(s.hold_expires_at < now(), false),
                        s.hold_expires_at IS NOT DISTINCT FROM
                            (SELECT r.expires_at FROM reservations r WHERE r.id = s.reservation_id)
                   FROM seats s
                  WHERE s.performance_id = 119 AND s.seat_no IN (1, 2, 200, 201, 500, 501)
                  ORDER BY s.seat_no",
            )
            .await,
            reservations: prepare(
                "SELECT id, user_id, performance_id, seat_no::bigint, price, status,
                        expires_at < now()
                   FROM reservations ORDER BY id",
            )
            .await,
            wallets: prepare(
                "SELECT user_id, balance FROM wallets WHERE user_id IN (1, 2, 3, 4) ORDER BY user_id",
            )
            .await,
            entries: prepare(
                "SELECT user_id, reason, sum(amount)::bigint, count(*)
                   FROM wallet_entries GROUP BY user_id, reason",
            )
            .await,
            running: prepare(
                "SELECT count(*) FROM (
                     SELECT balance_after,
                            sum(amount) OVER (PARTITION BY user_id ORDER BY id) AS running
                       FROM wallet_entries) entries
                  WHERE balance_after <> running",
            )
            .await,
            payments: prepare(
                "SELECT p.id, p.user_id, p.amount, p.reservation_id,
                        coalesce(array_agg(pr.reservation_id ORDER BY pr.reservation_id)
                                     FILTER (WHERE pr.reservation_id IS NOT NULL), '{}'),
                        coalesce(sum(pr.amount), 0)::bigint
                   FROM payments p LEFT JOIN payment_reservations pr ON pr.payment_id = p.id
                  GROUP BY p.id ORDER BY p.id",
            )
            .await,
            keys: prepare(
                "SELECT scope, key, request_fingerprint, outcome, outcome_data
                   FROM idempotency_keys",
            )
            .await,
            events: prepare("SELECT type, count(*) FROM outbox_events GROUP BY type").await,
            lapse: prepare(
                "WITH lapsed AS (
                     UPDATE reservations SET expires_at = now() - interval '1 second'
                      WHERE id = $1 AND status = 'HELD'
                  RETURNING id, expires_at)
                 UPDATE seats s SET hold_expires_at = lapsed.expires_at
                   FROM lapsed
                  WHERE s.reservation_id = lapsed.id AND s.status = 'HELD'",
            )
            .await,
        }
    }
}

/// One case's view of the system: which database ids the model's reservations and payments
/// are, and each user's current token.
struct Case<'h> {
    h: &'h Harness,
    reservations: Vec<ReservationId>,
    payments: Vec<PaymentId>,
    tokens: Vec<QueueToken>,
}

fn rid(id: i64) -> ReservationId {
    ReservationId::new(id).expect("valid")
}

fn user_id(user: i64) -> UserId {
    UserId::new(user).expect("valid")
}

fn key(key: &Option<String>) -> Option<IdempotencyKey> {
    key.as_deref()
        .map(|k| IdempotencyKey::parse(k).expect("valid key"))
}

impl<'h> Case<'h> {
    /// Back to the demo data, with the model's opening balances.
    fn start(h: &'h Harness, model: &Model) -> Self {
        let mut reset = reset_sql();
        for (user, balance) in USERS.iter().zip(model.opening) {
            if balance > 0 {
                reset.push_str(&format!(
                    "UPDATE wallets SET balance = {balance} WHERE user_id = {user};
                     INSERT INTO wallet_entries (user_id, amount, reason, balance_after)
                     VALUES ({user}, {balance}, 'CHARGE', {balance});"
                ));
            }
        }
        h.runtime.block_on(async {
            h.client.batch_execute(&reset).await.expect("reset");
        });
        Self {
            h,
            reservations: Vec::new(),
            payments: Vec::new(),
            tokens: USERS.iter().map(|u| h.token(*u)).collect(),
        }
    }

    fn id(&self, res: Res) -> ReservationId {
        match res {
            Res::Made(i) => self.reservations[i],
            Res::Ghost => rid(GHOST_RESERVATION),
        }
    }

    fn res(&self, id: ReservationId) -> Res {
        if id.get() == GHOST_RESERVATION {
            return Res::Ghost;
        }
        Res::Made(
            self.reservations
                .iter()
                .position(|r| *r == id)
                .unwrap_or_else(|| panic!("reservation {id} is none the model made")),
        )
    }

    fn payment(&mut self, id: PaymentId) -> usize {
        match self.payments.iter().position(|p| *p == id) {
            Some(known) => known,
            None => {
                self.payments.push(id);
                self.payments.len() - 1
            }
        }
    }

    fn token(&self, user: i64) -> QueueToken {
        self.tokens[user_position(user)].clone()
    }

    async fn authorize(&self, user: i64) -> Result<ActiveToken, AccessError> {
        self.h.queue.authorize(self.token(user)).await
    }

    fn run(&mut self, step: &Step) -> Answer {
        let h = self.h;
        h.runtime.block_on(async {
            match step {
                Step::Hold { user, seats } => self.hold(*user, seats).await,
                Step::Cancel { user, reservation } => self.cancel(*user, *reservation).await,
                Step::Pay {
                    user,
                    reservations,
                    several,
                    key,
                } => self.pay(*user, reservations, *several, key).await,
                Step::Charge {
                    user,
                    amount,
                    key: k,
                } => match h
                    .wallet
                    .charge(
                        user_id(*user),
                        ChargeAmount::new(*amount).expect("valid"),
                        key(k),
                    )
                    .await
                {
                    Ok(balance) => Answer::Charged(balance.get()),
                    Err(WalletError::Conflict(IdempotencyConflict::DifferentRequest)) => {
                        Answer::ChargeConflict
                    }
                    Err(other) => panic!("charge: {other:?}"),
                },
                Step::Refund {
                    user,
                    reservation,
                    key,
                } => self.refund(*user, *reservation, key).await,
                Step::Lapse { reservation } => {
                    h.client
                        .execute(
                            &h.statements.lapse,
                            &[&self.reservations[*reservation].get()],
                        )
                        .await
                        .expect("backdate the hold");
                    Answer::Nothing
                }
                Step::Sweep => Answer::Swept(
                    h.reservations
                        .release_expired_holds()
                        .await
                        .expect("release"),
                ),
                Step::Enter { user } => {
                    self.tokens[user_position(*user)] = h.token(*user);
                    Answer::Nothing
                }
                Step::Start => {
                    h.client
                        .batch_execute(
                            "UPDATE performances SET starts_at = now() - interval '1 minute'
                              WHERE id = 119",
                        )
                        .await
                        .expect("start the performance");
                    Answer::Nothing
                }
                Step::List { user, status } => self.list(*user, *status).await,
            }
        })
    }

    async fn hold(&mut self, user: i64, seats: &[i64]) -> Answer {
        let token = match self.authorize(user).await {
            Ok(token) => token,
            Err(AccessError::TokenInvalid) => return Answer::HoldRefused(HoldNo::TokenInvalid),
            Err(other) => panic!("authorize: {other:?}"),
        };
        let order = HoldOrder {
            user: user_id(user),
            concert: ConcertId::new(CONCERT).expect("valid"),
            performance: PerformanceId::new(PERFORMANCE).expect("valid"),
            seats: seats
                .iter()
                .map(|s| SeatNo::new(*s).expect("valid"))
                .collect(),
        };
        match self.h.reservations.hold_seats(&token, order).await {
            Ok(held) => {
                for r in &held {
                    assert_eq!(r.status, ReservationStatus::Held);
                    assert_eq!(r.user.get(), user);
                    assert_eq!(r.performance.get(), PERFORMANCE);
                    assert_eq!(r.concert.get(), CONCERT);
                    self.reservations.push(r.id);
                }
                Answer::Held(
                    held.iter()
                        .map(|r| (i64::from(r.seat.get()), r.price.get()))
                        .collect(),
                )
            }
            Err(HoldError::InvalidSelection(InvalidSeatSelection::TooMany { asked, .. })) => {
                Answer::HoldRefused(HoldNo::TooMany(asked))
            }
            Err(HoldError::InvalidSelection(InvalidSeatSelection::Duplicate(seat))) => {
                Answer::HoldRefused(HoldNo::Duplicate(seat.get().into()))
            }
            Err(HoldError::SeatNotFound { seat, .. }) => {
                Answer::HoldRefused(HoldNo::SeatNotFound(seat.get().into()))
            }
            Err(HoldError::SeatUnavailable { seats, .. }) => Answer::HoldRefused(
                HoldNo::Unavailable(seats.iter().map(|s| i64::from(s.get())).collect()),
            ),
            Err(HoldError::SeatLimitReached { limit, .. }) => {
                Answer::HoldRefused(HoldNo::LimitReached(limit))
            }
            Err(other) => panic!("hold: {other:?}"),
        }
    }

    async fn cancel(&mut self, user: i64, res: Res) -> Answer {
        let token = match self.authorize(user).await {
            Ok(token) => token,
            Err(AccessError::TokenInvalid) => return Answer::CancelRefused(CancelNo::TokenInvalid),
            Err(other) => panic!("authorize: {other:?}"),
        };
        match self.h.reservations.cancel(&token, self.id(res)).await {
            Ok(found) => Answer::Cancelled {
                reservation: self.res(found.id),
                status: found.status,
            },
            Err(ReservationError::NotFound(_)) => Answer::CancelRefused(CancelNo::NotFound),
            Err(ReservationError::Access(AccessError::TokenUserMismatch)) => {
                Answer::CancelRefused(CancelNo::TokenUserMismatch)
            }
            Err(ReservationError::AlreadyConfirmed(_)) => {
                Answer::CancelRefused(CancelNo::AlreadyConfirmed)
            }
            Err(other) => panic!("cancel: {other:?}"),
        }
    }

    fn payment_request(&self, user: i64, reservations: &[Res], several: bool) -> PaymentRequest {
        let ids: Vec<ReservationId> = reservations.iter().map(|r| self.id(*r)).collect();
        if several {
            PaymentRequest {
                reservations: ReservationSelection::new(ids).expect("distinct"),
                user: user_id(user),
                form: PaymentForm::Several,
            }
        } else {
            PaymentRequest::one(ids[0], user_id(user))
        }
    }

    async fn pay(
        &mut self,
        user: i64,
        reservations: &[Res],
        several: bool,
        k: &Option<String>,
    ) -> Answer {
        let request = self.payment_request(user, reservations, several);
        match self.h.payments.pay(self.token(user), request, key(k)).await {
            Ok(receipt) => {
                assert_eq!(receipt.payment.user.get(), user);
                assert_eq!(
                    Some(&receipt.payment.reservation),
                    receipt.payment.reservations.first()
                );
                Answer::Paid {
                    payment: self.payment(receipt.payment.id),
                    amount: receipt.payment.amount.get(),
                    reservations: receipt
                        .payment
                        .reservations
                        .iter()
                        .map(|id| self.res(*id))
                        .collect(),
                    replayed: receipt.replayed,
                }
            }
            Err(PaymentError::Access(AccessError::TokenInvalid)) => {
                Answer::PayRefused(PayNo::TokenInvalid)
            }
            Err(PaymentError::Refused(PaymentRefusal::ReservationNotFound(id))) => {
                Answer::PayRefused(PayNo::NotFound(self.res(id)))
            }
            Err(PaymentError::Refused(PaymentRefusal::NotPayable(id))) => {
                Answer::PayRefused(PayNo::NotPayable(self.res(id)))
            }
            Err(PaymentError::Refused(PaymentRefusal::InsufficientBalance { price })) => {
                Answer::PayRefused(PayNo::Insufficient(price.get()))
            }
            Err(PaymentError::Conflict(IdempotencyConflict::DifferentRequest)) => {
                Answer::PayRefused(PayNo::KeyConflict)
            }
            Err(other) => panic!("pay: {other:?}"),
        }
    }

    async fn refund(&mut self, user: i64, res: Res, k: &Option<String>) -> Answer {
        let request = RefundRequest {
            reservation: self.id(res),
            user: user_id(user),
        };
        match self
            .h
            .refunds
            .refund(Some(self.token(user)), request, key(k))
            .await
        {
            Ok(refunded) => {
                assert_eq!(refunded.status, ReservationStatus::Refunded);
                assert_eq!(refunded.user.get(), user);
                Answer::Refunded {
                    reservation: self.res(refunded.id),
                    price: refunded.price.get(),
                }
            }
            Err(RefundError::Owner(OwnerError::Access(AccessError::TokenInvalid))) => {
                Answer::RefundRefused(RefundNo::TokenInvalid)
            }
            Err(RefundError::Refused(RefundRefusal::ReservationNotFound(id))) => {
                Answer::RefundRefused(RefundNo::NotFound(self.res(id)))
            }
            Err(RefundError::Refused(RefundRefusal::NotRefundable(id))) => {
                Answer::RefundRefused(RefundNo::NotRefundable(self.res(id)))
            }
            Err(RefundError::Conflict(IdempotencyConflict::DifferentRequest)) => {
                Answer::RefundRefused(RefundNo::KeyConflict)
            }
            Err(other) => panic!("refund: {other:?}"),
        }
    }

    async fn list(&mut self, user: i64, status: Option<ReservationStatus>) -> Answer {
        let query = ReservationQuery {
            user: user_id(user),
            status,
            before: None,
            size: PageSize::new(100).expect("valid"),
        };
        match self
            .h
            .reservations
            .reservations_of(Some(self.token(user)), query)
            .await
        {
            Ok(page) => {
                assert_eq!(page.next_before, None, "one page holds them all");
                assert!(
                    page.reservations.windows(2).all(|w| w[0].id > w[1].id),
                    "newest first"
                );
                Answer::Listed(
                    page.reservations
                        .iter()
                        .map(|r| {
                            assert_eq!(r.user.get(), user);
                            (self.res(r.id), r.status.as_str())
                        })
                        .collect(),
                )
            }
            Err(ListError::Owner(OwnerError::Access(AccessError::TokenInvalid))) => {
                Answer::ListRefused
            }
            Err(other) => panic!("list: {other:?}"),
        }
    }

    /// The recorded outcome of a key, in the model's terms.
    fn decode(&self, scope: &str, outcome: &str, data: &str) -> (Scope, Outcome) {
        let json = || serde_json::from_str::<serde_json::Value>(data).expect("JSON outcome");
        let res_in = |case: &Self| case.res(rid(json()["reservation_id"].as_i64().expect("id")));
        match (scope, outcome) {
            ("charge", "CHARGED") => (
                Scope::Charge,
                Outcome::Charged(data.parse().expect("a balance")),
            ),
            ("payment", "PAID") => {
                let id = PaymentId::new(json()["payment_id"].as_i64().expect("id")).expect("id");
                let known = self
                    .payments
                    .iter()
                    .position(|p| *p == id)
                    .expect("a payment the case saw");
                (Scope::Payment, Outcome::Paid(known))
            }
            ("payment", "RESERVATION_NOT_FOUND") => (
                Scope::Payment,
                Outcome::PayRefused(PayNo::NotFound(res_in(self))),
            ),
            ("payment", "NOT_PAYABLE") => (
                Scope::Payment,
                Outcome::PayRefused(PayNo::NotPayable(res_in(self))),
            ),
            ("payment", "INSUFFICIENT_BALANCE") => (
                Scope::Payment,
                Outcome::PayRefused(PayNo::Insufficient(
                    json()["price"].as_i64().expect("price"),
                )),
            ),
            ("refund", "REFUNDED") => (Scope::Refund, Outcome::Refunded(res_in(self))),
            ("refund", "RESERVATION_NOT_FOUND") => (
                Scope::Refund,
                Outcome::RefundRefused(RefundNo::NotFound(res_in(self))),
            ),
            ("refund", "NOT_REFUNDABLE") => (
                Scope::Refund,
                Outcome::RefundRefused(RefundNo::NotRefundable(res_in(self))),
            ),
            other => panic!("an outcome the model does not know: {other:?}"),
        }
    }

    /// The fingerprint the service sends for a request the model recorded.
    fn fingerprint(&self, request: &Request) -> Option<String> {
        match request {
            // The wallet service builds it privately; its outcome is checked instead.
            Request::Charge { .. } => None,
            Request::Pay {
                user,
                reservations,
                several,
            } => Some(
                self.payment_request(*user, reservations, *several)
                    .fingerprint(),
            ),
            Request::Refund { user, reservation } => Some(
                RefundRequest {
                    reservation: self.id(*reservation),
                    user: user_id(*user),
                }
                .fingerprint(),
            ),
        }
    }

    /// Every invariant, on the database alone and against the model.
    fn check(&self, model: &Model) {
        let h = self.h;
        let s = &h.statements;
        let c = &h.client;
        let (seats, reservations, wallets, entries, running, payments, keys, events) = h
            .runtime
            .block_on(async {
                tokio::try_join!(
                    c.query(&s.seats, &[]),
                    c.query(&s.reservations, &[]),
                    c.query(&s.wallets, &[]),
                    c.query(&s.entries, &[]),
                    c.query_one(&s.running, &[]),
                    c.query(&s.payments, &[]),
                    c.query(&s.keys, &[]),
                    c.query(&s.events, &[]),
                )
            })
            .expect("read the state");

        // Reservations: (id, user, performance, seat, price, status, lapsed).
        type Row = (i64, i64, i64, i64, i64, String, bool);
        let reservations: Vec<Row> = reservations
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                )
            })
            .collect();
        let by_id: BTreeMap<i64, &Row> = reservations.iter().map(|r| (r.0, r)).collect();
        for (id, _, performance, seat, price, status, _) in &reservations {
            assert_eq!(*performance, PERFORMANCE, "reservation {id}");
            let position = seat_position(*seat).unwrap_or_else(|| panic!("seat {seat}"));
            assert_eq!(
                *price, SEATS[position].1,
                "reservation {id} at its seat's price"
            );
            assert!(["HELD", "CONFIRMED", "EXPIRED", "CANCELLED", "REFUNDED"]
                .contains(&status.as_str()));
        }

        // Each seat in exactly one state.
        assert_eq!(seats.len(), SEATS.len());
        for (position, row) in seats.iter().enumerate() {
            let seat: i64 = row.get(0);
            let status: String = row.get(1);
            let holder: Option<i64> = row.get(2);
            let no_hold: bool = row.get(3);
            let hold_lapsed: bool = row.get(4);
            let hold_matches: bool = row.get(5);
            assert_eq!(seat, SEATS[position].0);
            let of_seat: Vec<&Row> = reservations.iter().filter(|r| r.3 == seat).collect();
            let live = of_seat
                .iter()
                .filter(|r| r.5 == "CONFIRMED" || (r.5 == "HELD" && !r.6))
                .count();
            let stored_live = of_seat
                .iter()
                .filter(|r| r.5 == "CONFIRMED" || r.5 == "HELD")
                .count();
            assert!(live <= 1, "seat {seat}: {live} live reservations");
            assert!(
                stored_live <= 1,
                "seat {seat}: {stored_live} HELD or CONFIRMED rows"
            );
            let holding = holder.map(|id| {
                *by_id
                    .get(&id)
                    .unwrap_or_else(|| panic!("seat {seat} names missing reservation {id}"))
            });
            match (status.as_str(), holding) {
                ("AVAILABLE", None) => {
                    assert!(no_hold, "seat {seat}: AVAILABLE with a hold expiry");
                    assert_eq!(
                        stored_live, 0,
                        "seat {seat}: AVAILABLE with a live reservation"
                    );
                }
                ("HELD", Some(r)) => {
                    assert!(
                        !no_hold && hold_matches,
                        "seat {seat}: hold expiry is its reservation's"
                    );
                    assert_eq!(
                        (r.3, r.5.as_str()),
                        (seat, "HELD"),
                        "seat {seat} held by {r:?}"
                    );
                    assert_eq!(hold_lapsed, r.6);
                }
                ("SOLD", Some(r)) => {
                    assert!(no_hold, "seat {seat}: SOLD with a hold expiry");
                    assert_eq!(
                        (r.3, r.5.as_str()),
                        (seat, "CONFIRMED"),
                        "seat {seat} sold to {r:?}"
                    );
                }
                other => panic!("seat {seat} in no state: {other:?}"),
            }
            // Against the model.
            let expected = match model.seats[position] {
                SeatRow::Available => ("AVAILABLE", None),
                SeatRow::Held(r) => ("HELD", Some(self.reservations[r].get())),
                SeatRow::Sold(r) => ("SOLD", Some(self.reservations[r].get())),
            };
            assert_eq!((status.as_str(), holder), expected, "seat {seat}");
        }
        for r in &reservations {
            if r.5 == "HELD" || r.5 == "CONFIRMED" {
                let position = seat_position(r.3).expect("a model seat");
                let holder: Option<i64> = seats[position].get(2);
                assert_eq!(holder, Some(r.0), "{r:?} is its seat's");
            }
        }
        assert_eq!(
            reservations.len(),
            model.reservations.len(),
            "reservations made"
        );
        for (i, expected) in model.reservations.iter().enumerate() {
            let id = self.reservations[i].get();
            let r = by_id.get(&id).unwrap_or_else(|| panic!("reservation {id}"));
            assert_eq!(
                (r.1, r.3, r.4, r.5.as_str()),
                (
                    expected.user,
                    expected.seat,
                    expected.price,
                    expected.stored.as_str()
                ),
                "reservation {id} (#{i})"
            );
            if expected.stored == Stored::Held {
                assert_eq!(r.6, expected.lapsed, "reservation {id} (#{i}) lapsed");
            }
        }

        // Balances and their ledger.
        let mut ledger: BTreeMap<(i64, String), (i64, i64)> = BTreeMap::new();
        for row in &entries {
            ledger.insert((row.get(0), row.get(1)), (row.get(2), row.get(3)));
        }
        let entry = |user: i64, reason: &str| {
            ledger
                .get(&(user, reason.to_string()))
                .copied()
                .unwrap_or((0, 0))
        };
        assert!(
            ledger.keys().all(|(user, _)| USERS.contains(user)),
            "only the model's users' wallets move: {ledger:?}"
        );
        assert_eq!(wallets.len(), USERS.len());
        let mut balance_sum = 0;
        for (u, row) in wallets.iter().enumerate() {
            let user: i64 = row.get(0);
            let balance: i64 = row.get(1);
            let (charged, _) = entry(user, "CHARGE");
            let (paid, payment_entries) = entry(user, "PAYMENT");
            let (refunded, refund_entries) = entry(user, "REFUND");
            assert!(balance >= 0, "user {user}: balance {balance}");
            assert_eq!(
                balance,
                charged + paid + refunded,
                "user {user}: balance is its ledger"
            );
            assert_eq!(
                (balance, charged, -paid, refunded),
                (
                    model.balances[u],
                    model.charged[u],
                    model.debited[u],
                    model.refunded[u]
                ),
                "user {user}: balance, charged, paid, refunded"
            );
            let payments_of_user = model.payments.iter().filter(|p| p.user == user).count();
            assert_eq!(
                payment_entries as usize, payments_of_user,
                "user {user}: one debit per payment"
            );
            let refunds_of_user = model
                .reservations
                .iter()
                .filter(|r| r.user == user && r.stored == Stored::Refunded)
                .count();
            assert_eq!(
                refund_entries as usize, refunds_of_user,
                "user {user}: one credit per refund"
            );
            balance_sum += balance;
        }
        let total = |reason: &str| -> i64 {
            ledger
                .iter()
                .filter(|((_, r), _)| r == reason)
                .map(|(_, (sum, _))| *sum)
                .sum()
        };
        assert_eq!(
            total("CHARGE") + total("PAYMENT") + total("REFUND"),
            balance_sum,
            "money is conserved"
        );
        let off: i64 = running.get(0);
        assert_eq!(off, 0, "every entry's balance_after is the running sum");

        // Payments: one per paid set, each reservation paid once.
        assert_eq!(payments.len(), model.payments.len(), "payments made");
        let mut paid_reservations = BTreeSet::new();
        let mut payment_total = 0;
        for (i, expected) in model.payments.iter().enumerate() {
            let id = self.payments[i].get();
            let row = payments
                .iter()
                .find(|row| row.get::<_, i64>(0) == id)
                .unwrap_or_else(|| panic!("payment {id}"));
            let (user, amount, first, mut items, items_sum): (i64, i64, i64, Vec<i64>, i64) =
                (row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
            let mut expected_items: Vec<i64> = expected
                .reservations
                .iter()
                .map(|r| self.reservations[*r].get())
                .collect();
            assert_eq!(
                first, expected_items[0],
                "payment {id}: its first reservation"
            );
            expected_items.sort_unstable();
            items.sort_unstable();
            assert_eq!(
                (user, amount, items.clone(), items_sum),
                (
                    expected.user,
                    expected.amount,
                    expected_items,
                    expected.amount
                ),
                "payment {id}"
            );
            for item in items {
                assert!(
                    paid_reservations.insert(item),
                    "reservation {item} paid twice"
                );
                let r = by_id[&item];
                assert_eq!(r.1, user, "payment {id} pays its user's reservations");
                assert!(
                    r.5 == "CONFIRMED" || r.5 == "REFUNDED",
                    "a paid reservation stays paid or is refunded: {r:?}"
                );
            }
            payment_total += amount;
        }
        assert_eq!(payment_total, -total("PAYMENT"), "payments are the debits");
        for r in &reservations {
            if r.5 == "CONFIRMED" || r.5 == "REFUNDED" {
                assert!(paid_reservations.contains(&r.0), "{r:?} was paid");
            }
        }

        // Idempotency keys: what each recorded, under the request it was first used with.
        let mut recorded = BTreeMap::new();
        let mut paid_under_keys = BTreeSet::new();
        for row in &keys {
            let (scope, key, fingerprint, outcome, data): (String, String, String, String, String) =
                (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            let (scope, outcome) = self.decode(&scope, &outcome, &data);
            if let Outcome::Paid(p) = outcome {
                assert!(
                    paid_under_keys.insert(p),
                    "payment #{p} recorded under two keys"
                );
            }
            let expected = model
                .keys
                .get(&(scope, key.clone()))
                .unwrap_or_else(|| panic!("{scope:?} key {key} recorded, the model has none"));
            if let Some(sent) = self.fingerprint(&expected.request) {
                assert_eq!(fingerprint, sent, "{scope:?} key {key}: its request");
            }
            recorded.insert((scope, key), outcome);
        }
        let expected: BTreeMap<(Scope, String), Outcome> = model
            .keys
            .iter()
            .map(|(k, v)| (k.clone(), v.outcome.clone()))
            .collect();
        assert_eq!(recorded, expected, "the recorded outcomes");

        // Events: one per change, none for a refusal.
        let events: BTreeMap<String, i64> = events.iter().map(|r| (r.get(0), r.get(1))).collect();
        let expected: BTreeMap<String, i64> = model
            .events
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        assert_eq!(events, expected, "outbox events by type");
    }

    /// At the end of a case: nothing outside the model's seats and users moved.
    fn check_untouched(&self) {
        let h = self.h;
        let (seats, wallets): (i64, i64) = h.runtime.block_on(async {
            let seats = h
                .client
                .query_one(
                    "SELECT count(*) FROM seats WHERE status <> 'AVAILABLE'
                        AND NOT (performance_id = 119 AND seat_no IN (1, 2, 200, 201, 500, 501))",
                    &[],
                )
                .await
                .expect("seats")
                .get(0);
            let wallets = h
                .client
                .query_one(
                    "SELECT count(*) FROM wallets WHERE balance <> 0 AND user_id NOT IN (1, 2, 3, 4)",
                    &[],
                )
                .await
                .expect("wallets")
                .get(0);
            (seats, wallets)
        });
        assert_eq!(
            (seats, wallets),
            (0, 0),
            "other seats and wallets untouched"
        );
    }
}

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
        })
        .unwrap_or(default)
}

/// How often each kind of answer came, over the run: what the cases exercised.
#[derive(Default)]
struct Tally {
    answers: Mutex<BTreeMap<&'static str, u64>>,
    steps: AtomicU64,
}

impl Tally {
    fn count(&self, answer: &Answer) {
        let kind = match answer {
            Answer::Nothing => "nothing (lapse, enter, start)",
            Answer::Held(seats) if seats.len() > 1 => "held several seats",
            Answer::Held(_) => "held one seat",
            Answer::HoldRefused(HoldNo::Unavailable(_)) => "hold refused: unavailable",
            Answer::HoldRefused(HoldNo::LimitReached(_)) => "hold refused: limit",
            Answer::HoldRefused(_) => "hold refused: token, selection or unknown seat",
            Answer::Cancelled { .. } => "cancelled",
            Answer::CancelRefused(_) => "cancel refused",
            Answer::Paid { replayed: true, .. } => "paid (replayed)",
            Answer::Paid { reservations, .. } if reservations.len() > 1 => "paid several",
            Answer::Paid { .. } => "paid one",
            Answer::PayRefused(PayNo::Insufficient(_)) => "payment refused: balance",
            Answer::PayRefused(PayNo::KeyConflict) => "payment refused: key reused",
            Answer::PayRefused(PayNo::TokenInvalid) => "payment refused: token",
            Answer::PayRefused(_) => "payment refused: not found or not payable",
            Answer::Charged(_) => "charged",
            Answer::ChargeConflict => "charge refused: key reused",
            Answer::Refunded { .. } => "refunded",
            Answer::RefundRefused(_) => "refund refused",
            Answer::Listed(_) | Answer::ListRefused => "listed",
            Answer::Swept(0) => "swept nothing",
            Answer::Swept(_) => "swept lapsed holds",
        };
        *self.answers.lock().unwrap().entry(kind).or_insert(0) += 1;
        self.steps.fetch_add(1, Ordering::Relaxed);
    }
}

/// A failing case as it ran: the opening balances, the steps up to the one that failed, why.
struct Failure {
    opening: [i64; 4],
    steps: Vec<Step>,
    why: String,
}

impl Failure {
    fn report(&self) -> String {
        let listed: Vec<String> = self
            .steps
            .iter()
            .enumerate()
            .map(|(n, step)| format!("  {}. {step:?}", n + 1))
            .collect();
        format!(
            "the adapters disagree with the model: {}\nsmallest failing case: users {USERS:?} \
             open with balances {:?}, then\n{}",
            self.why,
            self.opening,
            listed.join("\n")
        )
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Runs `cases` cases on a schema of its own; the smallest failing case, if any.
///
/// The failing cases are recorded here as they run, and the one with the fewest steps is
/// reported: the value proptest-state-machine hands back after shrinking is not always one
/// that failed (a simplification that passed is not always undone).
fn run_worker(worker: u32, cases: u32, steps: usize, tally: &Tally) -> Result<(), String> {
    let harness = Harness::new();
    let mut config = Config {
        cases,
        // The printed case is the record: no regression file in the source tree.
        failure_persistence: None,
        ..Config::default()
    };
    // A seed given to replay a run gives each worker a sequence of its own.
    if let RngSeed::Fixed(seed) = config.rng_seed {
        config.rng_seed = RngSeed::Fixed(seed.wrapping_add(u64::from(worker)));
    }
    let smallest: Mutex<Option<Failure>> = Mutex::new(None);
    let mut runner = TestRunner::new(config);
    let result = runner.run(
        &Model::sequential_strategy(1..steps),
        |(initial, steps, seen)| {
            let opening = initial.opening;
            let reached = AtomicUsize::new(0);
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut model = initial;
                let mut case = Case::start(&harness, &model);
                case.check(&model);
                for (n, step) in steps.iter().enumerate() {
                    if let Some(seen) = &seen {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                    reached.store(n + 1, Ordering::Relaxed);
                    model = Model::apply(model, step);
                    let answer = case.run(step);
                    assert_eq!(answer, model.answer, "step {}: {step:?}", n + 1);
                    case.check(&model);
                    tally.count(&answer);
                }
                case.check_untouched();
            }));
            let Err(panic) = ran else {
                return Ok(());
            };
            let why = panic_message(panic.as_ref());
            let failed = Failure {
                opening,
                steps: steps[..reached.load(Ordering::Relaxed)].to_vec(),
                why: why.clone(),
            };
            let mut smallest = smallest.lock().unwrap();
            if smallest
                .as_ref()
                .is_none_or(|known| failed.steps.len() <= known.steps.len())
            {
                *smallest = Some(failed);
            }
            Err(TestCaseError::fail(why))
        },
    );
    match (result, smallest.into_inner().unwrap()) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(failure)) => Err(failure.report()),
        (Err(TestError::Abort(reason)), None) => Err(format!("the model test gave up: {reason}")),
        (Err(TestError::Fail(reason, _)), None) => Err(format!("failed: {reason}")),
    }
}

/// Each worker runs its share of the cases on a schema of its own: a step mostly waits for
/// PostgreSQL, so two workers on two cores get through about twice as many cases.
#[test]
fn the_adapters_behave_as_the_model_of_seats_holds_payments_and_refunds() {
    let cases = env_number("MODEL_CASES", 1000).max(1);
    let steps = env_number("MODEL_STEPS", 20).max(2) as usize;
    let workers = env_number("MODEL_WORKERS", 2).clamp(1, cases);
    let tally = Tally::default();
    let began = Instant::now();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..workers)
            .map(|worker| {
                let share = cases / workers + u32::from(worker < cases % workers);
                let tally = &tally;
                scope.spawn(move || run_worker(worker, share, steps, tally))
            })
            .collect();
        running
            .into_iter()
            .filter_map(|worker| match worker.join() {
                Ok(outcome) => outcome.err(),
                Err(_) => Some("a worker panicked outside a case".to_string()),
            })
            .collect()
    });
    let answers: Vec<String> = tally
        .answers
        .lock()
        .unwrap()
        .iter()
        .map(|(kind, n)| format!("  {kind}: {n}"))
        .collect();
    eprintln!(
        "model: {cases} cases, {} steps, {workers} workers, {:.1} s\n{}",
        tally.steps.load(Ordering::Relaxed),
        began.elapsed().as_secs_f64(),
        answers.join("\n")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
