//! Holds that share commits (issue #30): the concurrent holds of one instance are combined into
//! batches, and a batch is judged and written in ONE transaction, each request still getting its
//! own answer.
//!
//! # The combiner
//! A hold puts its request in a bounded queue and waits for its answer. One worker
//! task per [`crate::PgSeatInventory`] takes a permit (at most `max_in_flight` batches run at
//! once), then the first queued request, then whatever else is already queued, up to
//! `max_batch` requests, waiting up to `linger` for more (zero by default: a request that finds
//! nothing else waiting is sent at once, so under light load a hold waits no longer than it
//! did alone). Batches grow by themselves under load: while `max_in_flight` batches are at the
//! database, arriving requests queue and leave together in the next one, as a group commit.
//!
//! Every request has a deadline (`deadline` after it was asked). The worker never sends one
//! past it (it answers it unavailable instead), and a caller whose deadline passes while its
//! request still queues withdraws it and answers unavailable itself. Withdrawing and taking are
//! one compare-and-swap on the request's state, so a request is either sent or answered 503 by
//! the deadline, never both: nothing is held for a request answered "unavailable", and none is
//! held for a caller that went away before its request was taken (dropping the caller's future
//! withdraws it too).
//!
//! # One batch
//! 1. A plain read (no transaction, no lock) of every asked seat of the batch refuses what it
//!    can: a seat that does not exist (or of another concert's performance) is 404, a seat taken
//!    in that snapshot is 409 (taken when the read ran, so the "no" is as true as one under
//!    lock). These requests are answered at once; the rest go on.
//! 2. One transaction. Three statements pipelined (one round trip): the users' advisory locks
//!    (one per user and performance, in the order of their keys), then every asked seat locked
//!    in (performance, seat) order, then, for each user and performance of the batch, whether
//!    the user exists and how many seats they hold or own. Locks are taken in one global order
//!    (user locks by key, then seats by key), so two batches, or a batch and a cancellation,
//!    payment or sweep (which take seat locks only, in the same order), cannot deadlock. The
//!    count runs after the user's lock was granted (a statement of its own: in READ COMMITTED
//!    it sees every hold of that user committed before), so no other batch on any instance can
//!    change it until this one commits.
//! 3. Rust judges each request in arrival order on the locked rows, as the port says: every seat
//!    must exist, then be free (a seat taken by an earlier request of the same batch is not),
//!    then the user must exist, then the user's count (what they had plus what earlier requests
//!    of the batch took) plus the asked seats must be within the limit. A refusal refuses that
//!    request only.
//! 4. One statement writes all winners (seats, lapsed holds retired, reservations, events), and
//!    the transaction commits once. Each winner then gets its reservations, each refused request
//!    its refusal.
//!
//! A database error anywhere in the transaction rolls it all back: every request of the batch
//! that reached it is answered unavailable (503, retryable: a request may fail only because of a
//! neighbour, so even an unexpected error is retryable for a batch of several) and none is held.
//!
//! Holds take no `Idempotency-Key` (the contract has none for them); nothing here changes that.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{Array, BigInt, Bool, Double, Integer, Nullable, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use ticketing_domain::ids::{ReservationId, SeatNo};
use ticketing_domain::money::Won;
use ticketing_domain::reservation::{
    HoldError, HoldRequest, HoldTtl, Reservation, ReservationStatus, SeatLimit,
};
use ticketing_domain::InfrastructureError;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::error::from_diesel;
use crate::pool::{checkout, PgPool};
use crate::reservation_read::corrupt;
use crate::schema::{performances, seats};
use crate::seat_state::{seat_is_free, seat_is_free_sql};

/// How holds are combined: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CombinerSettings {
    /// The most requests one batch (one transaction) takes.
    pub max_batch: NonZeroUsize,
    /// The most batches at the database at once (each on a connection of the pool). Few
    /// batches in flight make large batches: at 32 callers on the 2-core development machine,
    /// 2 gave 2,800 holds/s, 4 gave 950 (batches of one or two, as callers answered by one
    /// batch asked again just as the next left); docs/holds-benchmark.md.
    pub max_in_flight: NonZeroUsize,
    /// How long a batch waits for more requests after its first, when fewer than `max_batch`
    /// are queued. Zero: only what is already queued is taken, the first request is never held
    /// back.
    pub linger: Duration,
    /// The longest a request may wait in the combiner before it is sent; past it, it is
    /// answered unavailable and never sent.
    pub deadline: Duration,
}

impl Default for CombinerSettings {
    fn default() -> Self {
        Self {
            max_batch: NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN),
            max_in_flight: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
            linger: Duration::ZERO,
            deadline: Duration::from_secs(2),
        }
    }
}

/// How many requests may queue before a caller waits to queue (within its deadline).
const QUEUE_CAPACITY: usize = 4096;

/// Where a queued request stands; a request leaves `QUEUED` once, to be sent or withdrawn.
const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

type Answer = Result<Vec<Reservation>, HoldError>;

/// One request in the queue.
struct Pending {
    request: HoldRequest,
    ttl: HoldTtl,
    limit: SeatLimit,
    deadline: Instant,
    state: Arc<AtomicU8>,
    answer: oneshot::Sender<Answer>,
}

impl Pending {
    /// Claims the request for a batch: false when its caller withdrew it.
    fn take(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Withdraws a request still queued when its caller stops waiting (deadline, or the caller's
/// future dropped).
struct Withdraw(Arc<AtomicU8>);

impl Withdraw {
    /// True when the request was still queued and is now withdrawn: it will never be sent.
    fn withdraw(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        let _ = self.withdraw();
    }
}

fn unavailable(why: &'static str) -> HoldError {
    HoldError::Infrastructure(InfrastructureError::unavailable(why))
}

/// The combiner of one inventory; its worker starts with the first hold (on that runtime), and
/// again if that runtime went away.
pub(crate) struct Combiner {
    pool: PgPool,
    settings: CombinerSettings,
    queue: Mutex<Option<mpsc::Sender<Pending>>>,
}

impl Combiner {
    pub(crate) fn new(pool: PgPool, settings: CombinerSettings) -> Self {
        Self {
            pool,
            settings,
            queue: Mutex::new(None),
        }
    }

    /// The queue, starting its worker when there is none or it stopped.
    fn queue(&self) -> Result<mpsc::Sender<Pending>, HoldError> {
        let mut queue = self
            .queue
            .lock()
            .map_err(|_| unavailable("the hold combiner's queue is poisoned"))?;
        if let Some(sender) = queue.as_ref().filter(|sender| !sender.is_closed()) {
            return Ok(sender.clone());
        }
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run_worker(self.pool.clone(), self.settings, receiver));
        *queue = Some(sender.clone());
        Ok(sender)
    }

    /// Holds `request` in the next batch: see the module documentation.
    pub(crate) async fn hold(
        &self,
        request: HoldRequest,
        ttl: HoldTtl,
        limit: SeatLimit,
    ) -> Result<Vec<Reservation>, HoldError> {
        let deadline = Instant::now() + self.settings.deadline;
        let state = Arc::new(AtomicU8::new(QUEUED));
        let withdraw = Withdraw(Arc::clone(&state));
        let (answer, mut answered) = oneshot::channel();
        let pending = Pending {
            request,
            ttl,
            limit,
            deadline,
            state,
            answer,
        };
        match tokio::time::timeout_at(deadline, self.queue()?.send(pending)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(unavailable("the hold combiner stopped")),
            Err(_) => return Err(unavailable("holds queued past their deadline")),
        }
        match tokio::time::timeout_at(deadline, &mut answered).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(unavailable("a hold batch ended without an answer")),
            Err(_) if withdraw.withdraw() => Err(unavailable(
                "a hold queued past its deadline; it was not sent",
            )),
            // Taken by a batch already at the database: its answer comes within the
            // statement timeout, and is the truth.
            Err(_) => answered
                .await
                .unwrap_or_else(|_| Err(unavailable("a hold batch ended without an answer"))),
        }
    }
}

/// Takes batches off the queue while anyone can still queue.
async fn run_worker(pool: PgPool, settings: CombinerSettings, mut queue: mpsc::Receiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(settings.max_in_flight.get()));
    loop {
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = vec![first];
        let until = Instant::now() + settings.linger;
        while batch.len() < settings.max_batch.get() {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(mpsc::error::TryRecvError::Empty) if !settings.linger.is_zero() => {
                    match tokio::time::timeout_at(until, queue.recv()).await {
                        Ok(Some(next)) => batch.push(next),
                        Ok(None) | Err(_) => break,
                    }
                }
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            run_batch(&pool, batch).await;
            drop(permit);
        });
    }
}

/// Sends the batch's requests that are still wanted and within their deadline, and answers
/// each.
async fn run_batch(pool: &PgPool, batch: Vec<Pending>) {
    let now = Instant::now();
    let mut sent = Vec::with_capacity(batch.len());
    for pending in batch {
        if pending.deadline <= now {
            // Withdrawn here (or by its caller): never sent, answered unavailable.
            if Withdraw(Arc::clone(&pending.state)).withdraw() {
                let _ = pending.answer.send(Err(unavailable(
                    "a hold queued past its deadline; it was not sent",
                )));
            }
        } else if pending.take() {
            sent.push(pending);
        }
    }
    if sent.is_empty() {
        return;
    }
    let asked: Vec<Asked<'_>> = sent
        .iter()
        .map(|p| Asked {
            request: &p.request,
            ttl: p.ttl,
            limit: p.limit,
        })
        .collect();
    let answers = hold_batch(pool, &asked).await;
    drop(asked);
    for (pending, answer) in sent.into_iter().zip(answers) {
        let _ = pending.answer.send(answer);
    }
}

/// A request of a batch.
struct Asked<'a> {
    request: &'a HoldRequest,
    ttl: HoldTtl,
    limit: SeatLimit,
}

/// A seat as the (performance, seat number) key of its row.
type SeatKey = (i64, i32);

fn seat_keys(request: &HoldRequest) -> impl Iterator<Item = SeatKey> + '_ {
    let performance = request.performance.get();
    request
        .seats
        .seats()
        .iter()
        .map(move |seat| (performance, seat.get()))
}

/// Holds what it can of `batch`: one answer per request, in order.
async fn hold_batch(pool: &PgPool, batch: &[Asked<'_>]) -> Vec<Answer> {
    let failed = |error: InfrastructureError| -> Vec<Answer> {
        let error = if batch.len() > 1 && !error.is_unavailable() {
            // A request may have failed only because of a neighbour: worth a retry.
            InfrastructureError::unavailable(error)
        } else {
            error
        };
        batch
            .iter()
            .map(|_| Err(HoldError::Infrastructure(error.clone())))
            .collect()
    };
    let mut connection = match checkout(pool).await {
        Ok(connection) => connection,
        Err(error) => return failed(error),
    };
    let seen = match seat_states(&mut connection, batch).await {
        Ok(seen) => seen,
        Err(error) => return failed(error),
    };
    let mut answers: Vec<Option<Answer>> = batch
        .iter()
        .map(|asked| {
            let found = found_seats(asked.request, |key| {
                seen.get(&key).and_then(|(concert, free)| {
                    (*concert == asked.request.concert.get()).then_some(*free)
                })
            });
            asked
                .request
                .seats
                .judge(&found)
                .err()
                .map(|refusal| Err(asked.request.refused(refusal)))
        })
        .collect();
    let going: Vec<usize> = (0..batch.len()).filter(|i| answers[*i].is_none()).collect();
    if !going.is_empty() {
        let candidates: Vec<&Asked<'_>> = going.iter().map(|i| &batch[*i]).collect();
        let judged = connection
            .transaction::<_, DieselError, _>(async |tx| judge_and_write(tx, &candidates).await)
            .await;
        match judged {
            Ok(outcomes) => {
                for (i, outcome) in going.iter().zip(outcomes) {
                    answers[*i] = Some(outcome);
                }
            }
            Err(error) => {
                let error = match error {
                    DieselError::QueryBuilderError(cause) => {
                        cause.downcast::<InfrastructureError>().map_or_else(
                            |other| from_diesel(DieselError::QueryBuilderError(other)),
                            |e| *e,
                        )
                    }
                    other => from_diesel(other),
                };
                let failed = failed(error);
                for (i, outcome) in going.iter().zip(failed) {
                    answers[*i] = Some(outcome);
                }
            }
        }
    }
    answers
        .into_iter()
        .map(|answer| answer.unwrap_or_else(|| Err(unavailable("a hold was not judged"))))
        .collect()
}

/// `(seat, free)` for each asked seat that `state` knows, in the order asked.
fn found_seats(
    request: &HoldRequest,
    state: impl Fn(SeatKey) -> Option<bool>,
) -> Vec<(SeatNo, bool)> {
    request
        .seats
        .seats()
        .iter()
        .zip(seat_keys(request))
        .filter_map(|(seat, key)| state(key).map(|free| (*seat, free)))
        .collect()
}

/// Every asked seat of the batch that exists: its performance's concert and whether it is
/// free now by the database's clock. A plain read, no lock; seats are reached through their
/// primary key (both columns `= ANY`), the concert through the performance's.
async fn seat_states(
    connection: &mut AsyncPgConnection,
    batch: &[Asked<'_>],
) -> Result<HashMap<SeatKey, (i64, bool)>, InfrastructureError> {
    let keys: HashSet<SeatKey> = batch.iter().flat_map(|a| seat_keys(a.request)).collect();
    let performance_ids: Vec<i64> = distinct(keys.iter().map(|k| k.0));
    let seat_nos: Vec<i32> = distinct(keys.iter().map(|k| k.1));
    let concert = performances::table
        .filter(performances::id.eq(seats::performance_id))
        .select(performances::concert_id)
        .single_value();
    let rows: Vec<(i64, i32, Option<i64>, Option<bool>)> = seats::table
        .filter(seats::performance_id.eq_any(&performance_ids))
        .filter(seats::seat_no.eq_any(&seat_nos))
        .select((
            seats::performance_id,
            seats::seat_no,
            concert,
            seat_is_free(),
        ))
        .load(connection)
        .await
        .map_err(from_diesel)?;
    Ok(rows
        .into_iter()
        .filter(|(performance, seat, _, _)| keys.contains(&(*performance, *seat)))
        .filter_map(|(performance, seat, concert, free)| {
            concert.map(|concert| ((performance, seat), (concert, free == Some(true))))
        })
        .collect())
}

fn distinct<T: Ord>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut values: Vec<T> = values.collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// The advisory locks of the batch's users, one per user and performance, taken in the order of
/// their keys (`$1` users and `$2` performances, as text, pairwise): two batches wanting the
/// same users queue instead of deadlocking. The key is the one a single hold took before
/// batches (schema, user, performance), so instances of both versions exclude each other.
/// Holds take them before any seat lock and nothing else takes them.
///
/// `sql_query`: advisory locks are PostgreSQL functions on keys hashed from text, not a table,
/// and the order of taking them is the point; pipelined with the two statements that follow.
const LOCK_USERS: &str = "
SELECT count(pg_advisory_xact_lock(k)) AS locked
  FROM (SELECT DISTINCT hashtextextended(
                   current_schema() || chr(31) || 'seats-of-user' || chr(31) || u || chr(31) || p,
                   0) AS k
          FROM unnest($1::text[], $2::text[]) AS q(u, p)
         ORDER BY k) AS keys";

/// Locks every asked seat of the batch (`$1` performances, `$2` seats, pairwise) in
/// (performance, seat) order, the one global order every statement that locks several seats
/// uses, and says of each whether it is free by the database's clock, read on the locked (latest)
/// version, and what it holds. The seats are reached through their primary key (both columns
/// `= ANY`), whatever the statistics say; the pairwise test keeps seats nobody asked unlocked.
///
/// `sql_query`: the query builder has no row-value `IN (SELECT ... FROM unnest(...))`; the lock
/// is pipelined with its neighbours (one round trip).
const LOCK_SEATS: &str = concat!(
    "
SELECT s.performance_id, s.seat_no, s.status, s.reservation_id, ",
    seat_is_free_sql!(),
    " AS free
  FROM seats s
 WHERE s.performance_id = ANY($1) AND s.seat_no = ANY($2)
   AND (s.performance_id, s.seat_no) IN (SELECT * FROM unnest($1::bigint[], $2::int[]))
 ORDER BY s.performance_id, s.seat_no
   FOR UPDATE OF s"
);

/// For each user and performance of the batch (`$1` users, `$2` performances, pairwise): whether
/// the user exists and how many seats of the performance they hold (live) or own, counted
/// through `reservations_live_by_user_and_performance` (docs/holds-benchmark.md). Runs after
/// [`LOCK_USERS`], a statement of its own, so in READ COMMITTED it sees every hold committed
/// before the locks were granted.
///
/// `sql_query`: one correlated count per pair of an array, pipelined with the locks; the query
/// builder has no `unnest` of several arrays.
const COUNT_OWNED: &str = "
SELECT q.u AS user_id, q.p AS performance_id,
       EXISTS (SELECT 1 FROM users WHERE users.id = q.u) AS known,
       (SELECT count(*)
          FROM reservations r
         WHERE r.user_id = q.u AND r.performance_id = q.p
           AND (r.status = 'CONFIRMED' OR (r.status = 'HELD' AND r.expires_at >= now()))) AS owned
  FROM unnest($1::bigint[], $2::bigint[]) AS q(u, p)";

/// Takes the judged winners' seats, already locked by [`LOCK_SEATS`] (`$1` performances, `$2`
/// seats, `$3` users, `$4` hold seconds, pairwise), retires the lapsed holds on them (`$5`, their
/// reservation ids, read under the same locks), records one HELD reservation per seat and
/// writes each event. The free test stays as a guard: a seat it would not take makes the caller
/// roll the batch back. The insert waits for `lapsed` so the partial unique index never sees two
/// HELD reservations for a seat. Seats are reached by their primary key, lapsed holds by their
/// ids, whatever the statistics say; no status filter sits beside those ids (a planner without
/// statistics ANDed in a scan of a partial index on the status, every live hold: measured in
/// docs/holds-benchmark.md), the seat's own status, read under lock, says they are holds.
///
/// `sql_query`: three writes, two event inserts and an ordering through data-modifying CTEs over
/// arrays, one statement for the whole batch; the query builder has neither.
const WRITE_WINNERS: &str = concat!(
    "
WITH won AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::float8[])
                  AS w(performance_id, seat_no, user_id, secs)
), taken AS (
    UPDATE seats s
       SET status = 'HELD',
           hold_expires_at = now() + make_interval(secs => won.secs),
           reservation_id = nextval(pg_get_serial_sequence('reservations', 'id'))
      FROM won
     WHERE s.performance_id = ANY($1) AND s.seat_no = ANY($2)
       AND s.performance_id = won.performance_id AND s.seat_no = won.seat_no
       AND ",
    seat_is_free_sql!(),
    "
 RETURNING s.reservation_id AS id, won.user_id, s.performance_id, s.seat_no, s.price,
           s.hold_expires_at
), lapsed AS (
    UPDATE reservations r
       SET status = 'EXPIRED', updated_at = now()
     WHERE r.id = ANY($5::bigint[])
 RETURNING r.id, r.user_id, r.performance_id, r.seat_no
), expired_events AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no)
    SELECT 'reservation.expired', id, user_id, performance_id, seat_no FROM lapsed
), held AS (
    INSERT INTO reservations (id, user_id, performance_id, seat_no, price, status, expires_at)
    SELECT taken.id, taken.user_id, taken.performance_id, taken.seat_no, taken.price, 'HELD',
           taken.hold_expires_at
      FROM taken
     WHERE (SELECT count(*) FROM lapsed) >= 0
 RETURNING id, user_id, performance_id, seat_no, price, expires_at
), held_events AS (
    INSERT INTO outbox_events (type, reservation_id, user_id, performance_id, seat_no, amount)
    SELECT 'reservation.held', id, user_id, performance_id, seat_no, price FROM held
)
SELECT id, user_id, performance_id, seat_no, price, expires_at FROM held"
);

#[derive(QueryableByName)]
struct LockedSeat {
    #[diesel(sql_type = BigInt)]
    performance_id: i64,
    #[diesel(sql_type = Integer)]
    seat_no: i32,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    reservation_id: Option<i64>,
    #[diesel(sql_type = Bool)]
    free: bool,
}

#[derive(QueryableByName)]
struct Owned {
    #[diesel(sql_type = BigInt)]
    user_id: i64,
    #[diesel(sql_type = BigInt)]
    performance_id: i64,
    #[diesel(sql_type = Bool)]
    known: bool,
    #[diesel(sql_type = BigInt)]
    owned: i64,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    locked: i64,
}

#[derive(QueryableByName)]
struct Written {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    user_id: i64,
    #[diesel(sql_type = BigInt)]
    performance_id: i64,
    #[diesel(sql_type = Integer)]
    seat_no: i32,
    #[diesel(sql_type = BigInt)]
    price: i64,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
}

/// An error that must roll the batch back, carried through diesel's transaction.
fn abort(error: InfrastructureError) -> DieselError {
    DieselError::QueryBuilderError(Box::new(error))
}

/// Steps 2 to 4 of a batch (module documentation), inside its transaction: an answer per
/// candidate, or an error that rolls the whole batch back.
async fn judge_and_write(
    tx: &mut AsyncPgConnection,
    candidates: &[&Asked<'_>],
) -> Result<Vec<Answer>, DieselError> {
    let keys: Vec<SeatKey> = distinct(candidates.iter().flat_map(|a| seat_keys(a.request)));
    let seat_performances: Vec<i64> = keys.iter().map(|k| k.0).collect();
    let seat_nos: Vec<i32> = keys.iter().map(|k| k.1).collect();
    let pairs: Vec<(i64, i64)> = distinct(
        candidates
            .iter()
            .map(|a| (a.request.user.get(), a.request.performance.get())),
    );
    let limited: Vec<(i64, i64)> = distinct(
        candidates
            .iter()
            .filter(|a| a.limit.get().is_some())
            .map(|a| (a.request.user.get(), a.request.performance.get())),
    );
    let count_users: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let count_performances: Vec<i64> = pairs.iter().map(|p| p.1).collect();

    let connection: &AsyncPgConnection = tx;
    let (mut on_seats, mut on_counts) = (connection, connection);
    let lock_seats = diesel::sql_query(LOCK_SEATS)
        .bind::<Array<BigInt>, _>(&seat_performances)
        .bind::<Array<Integer>, _>(&seat_nos)
        .load::<LockedSeat>(&mut on_seats);
    let count = diesel::sql_query(COUNT_OWNED)
        .bind::<Array<BigInt>, _>(&count_users)
        .bind::<Array<BigInt>, _>(&count_performances)
        .load::<Owned>(&mut on_counts);
    // The statements are pipelined: once one fails, the server refuses the rest with "current
    // transaction is aborted", which says nothing of why. So all are awaited and the first
    // error in the order they were sent is the one reported (a timeout stays a timeout: 503).
    let (locked, owned) = if limited.is_empty() {
        let (locked, owned) = tokio::join!(lock_seats, count);
        (locked?, owned?)
    } else {
        let lock_users: Vec<String> = limited.iter().map(|p| p.0.to_string()).collect();
        let lock_performances: Vec<String> = limited.iter().map(|p| p.1.to_string()).collect();
        let mut on_users = connection;
        let lock = diesel::sql_query(LOCK_USERS)
            .bind::<Array<Text>, _>(&lock_users)
            .bind::<Array<Text>, _>(&lock_performances)
            .load::<Locked>(&mut on_users);
        let (lock, locked, owned) = tokio::join!(lock, lock_seats, count);
        lock?;
        (locked?, owned?)
    };

    let seats: HashMap<SeatKey, LockedSeat> = locked
        .into_iter()
        .map(|row| ((row.performance_id, row.seat_no), row))
        .collect();
    let mut counts: HashMap<(i64, i64), (bool, u64)> = owned
        .into_iter()
        .map(|row| {
            (
                (row.user_id, row.performance_id),
                (row.known, u64::try_from(row.owned).unwrap_or(u64::MAX)),
            )
        })
        .collect();

    // Judged in arrival order; a winner's seats are no longer free for those after it.
    let mut claimed: HashSet<SeatKey> = HashSet::new();
    let mut answers: Vec<Option<Answer>> = Vec::with_capacity(candidates.len());
    let mut winners: Vec<usize> = Vec::new();
    for (i, asked) in candidates.iter().enumerate() {
        let request = asked.request;
        let found = found_seats(request, |key| {
            seats
                .get(&key)
                .map(|row| row.free && !claimed.contains(&key))
        });
        if let Err(refusal) = request.seats.judge(&found) {
            answers.push(Some(Err(request.refused(refusal))));
            continue;
        }
        let pair = (request.user.get(), request.performance.get());
        let (known, owned) = counts.get(&pair).copied().unwrap_or((false, 0));
        if !known {
            answers.push(Some(Err(HoldError::UserNotFound(request.user))));
            continue;
        }
        if let Some(max) = asked.limit.get() {
            if !asked.limit.admits(owned, request.seats.len()) {
                answers.push(Some(Err(HoldError::SeatLimitReached {
                    user: request.user,
                    performance: request.performance,
                    limit: max.get(),
                })));
                continue;
            }
        }
        claimed.extend(seat_keys(request));
        counts.insert(
            pair,
            (known, owned.saturating_add(request.seats.len() as u64)),
        );
        winners.push(i);
        answers.push(None);
    }
    if winners.is_empty() {
        return Ok(answers.into_iter().flatten().collect());
    }

    let mut won_performances = Vec::new();
    let mut won_seats = Vec::new();
    let mut won_users = Vec::new();
    let mut won_seconds = Vec::new();
    let mut lapsed: Vec<i64> = Vec::new();
    for i in &winners {
        let asked = candidates[*i];
        for key in seat_keys(asked.request) {
            won_performances.push(key.0);
            won_seats.push(key.1);
            won_users.push(asked.request.user.get());
            won_seconds.push(asked.ttl.get().as_secs_f64());
            if let Some(row) = seats.get(&key) {
                if row.status == "HELD" {
                    lapsed.extend(row.reservation_id);
                }
            }
        }
    }
    let written = diesel::sql_query(WRITE_WINNERS)
        .bind::<Array<BigInt>, _>(&won_performances)
        .bind::<Array<Integer>, _>(&won_seats)
        .bind::<Array<BigInt>, _>(&won_users)
        .bind::<Array<Double>, _>(&won_seconds)
        .bind::<Array<BigInt>, _>(&lapsed)
        .load::<Written>(tx)
        .await?;
    if written.len() != won_seats.len() {
        return Err(abort(corrupt(format!(
            "a batch took {} of the {} seats it had locked free",
            written.len(),
            won_seats.len()
        ))));
    }
    let mut by_seat: HashMap<SeatKey, Written> = written
        .into_iter()
        .map(|row| ((row.performance_id, row.seat_no), row))
        .collect();
    for i in winners {
        let request = candidates[i].request;
        let mut held = Vec::with_capacity(request.seats.len());
        for key in seat_keys(request) {
            let row = by_seat
                .remove(&key)
                .filter(|row| row.user_id == request.user.get())
                .ok_or_else(|| abort(corrupt("a batch lost a seat it took")))?;
            held.push(reservation(request, row).map_err(abort)?);
        }
        answers[i] = Some(Ok(request.seats.in_asked_order(held)));
    }
    Ok(answers
        .into_iter()
        .map(|answer| answer.unwrap_or_else(|| Err(unavailable("a hold was not judged"))))
        .collect())
}

fn reservation(request: &HoldRequest, row: Written) -> Result<Reservation, InfrastructureError> {
    Ok(Reservation {
        id: ReservationId::new(row.id).map_err(corrupt)?,
        user: request.user,
        concert: request.concert,
        performance: request.performance,
        seat: SeatNo::new(row.seat_no.into()).map_err(corrupt)?,
        price: Won::new(row.price).map_err(corrupt)?,
        status: ReservationStatus::Held,
        expires_at: row.expires_at,
    })
}
