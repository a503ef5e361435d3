//! Seat holds against a real PostgreSQL, one schema per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ticketing_domain::ids::{ConcertId, PerformanceId, ReservationId, SeatNo, UserId};
use ticketing_domain::reservation::{
    CancelOutcome, HoldError, HoldRequest, HoldTtl, PageSize, Reservation, ReservationQuery,
    ReservationStatus, SeatInventory, SeatLimit, SeatSelection, SeatsPerHold,
};
use ticketing_domain::InfrastructureError;
use ticketing_postgres::PgSeatInventory;
use ticketing_testkit::TestDatabase;

fn request(user: i64, concert: i64, performance: i64, seat: i64) -> HoldRequest {
    several(user, concert, performance, &[seat])
}

fn several(user: i64, concert: i64, performance: i64, seats: &[i64]) -> HoldRequest {
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

/// A hold of one seat, answered as that one reservation.
trait HoldOne {
    async fn hold_one(&self, request: HoldRequest, ttl: HoldTtl) -> Result<Reservation, HoldError>;
}

impl HoldOne for PgSeatInventory {
    async fn hold_one(&self, request: HoldRequest, ttl: HoldTtl) -> Result<Reservation, HoldError> {
        let mut held = self.hold(request, ttl, SeatLimit::unlimited()).await?;
        assert_eq!(held.len(), 1, "one seat asked, one held");
        Ok(held.remove(0))
    }
}

fn ttl(seconds: u64) -> HoldTtl {
    HoldTtl::new(Duration::from_secs(seconds)).unwrap()
}

async fn live_reservations_per_seat_max(db: &TestDatabase) -> i64 {
    db.query_i64(
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM reservations
          WHERE status IN ('HELD', 'CONFIRMED') GROUP BY performance_id, seat_no) per_seat",
    )
    .await
}

#[tokio::test]
async fn a_free_seat_is_held_at_its_price_for_the_ttl() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());

    let held = inventory
        .hold_one(request(7, 1, 119, 42), ttl(300))
        .await
        .unwrap();

    assert_eq!(held.status, ReservationStatus::Held);
    assert_eq!(held.price.get(), 150_000);
    assert_eq!(held.user.get(), 7);
    let remaining = held.expires_at - chrono::Utc::now();
    assert!(
        remaining > chrono::Duration::seconds(290) && remaining <= chrono::Duration::seconds(301)
    );
    let seat_status = db
        .query_i64("SELECT count(*) FROM seats WHERE performance_id = 119 AND seat_no = 42 AND status = 'HELD'")
        .await;
    assert_eq!(seat_status, 1);
    let found = inventory.find(held.id).await.unwrap().unwrap();
    assert_eq!(found, held);
}

#[tokio::test]
async fn a_held_seat_is_unavailable_to_anyone_else() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    inventory
        .hold_one(request(7, 1, 119, 42), ttl(300))
        .await
        .unwrap();

    let second = inventory.hold_one(request(8, 1, 119, 42), ttl(300)).await;
    let same_user_again = inventory.hold_one(request(7, 1, 119, 42), ttl(300)).await;

    assert!(matches!(second, Err(HoldError::SeatUnavailable { .. })));
    assert!(matches!(
        same_user_again,
        Err(HoldError::SeatUnavailable { .. })
    ));
}

#[tokio::test]
async fn unknown_seats_performances_and_users_are_not_found() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());

    let no_seat = inventory.hold_one(request(7, 1, 119, 1001), ttl(300)).await;
    let no_performance = inventory.hold_one(request(7, 1, 999, 1), ttl(300)).await;
    let other_concert = inventory.hold_one(request(7, 2, 119, 1), ttl(300)).await;
    let no_user = inventory
        .hold_one(request(99_999, 1, 119, 1), ttl(300))
        .await;

    assert!(matches!(no_seat, Err(HoldError::SeatNotFound { .. })));
    assert!(matches!(
        no_performance,
        Err(HoldError::SeatNotFound { .. })
    ));
    assert!(matches!(other_concert, Err(HoldError::SeatNotFound { .. })));
    assert!(matches!(no_user, Err(HoldError::UserNotFound(_))));
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE status <> 'AVAILABLE'")
            .await,
        0,
        "a refused hold takes nothing"
    );
}

#[tokio::test]
async fn a_lapsed_hold_is_free_at_once_and_its_reservation_expires() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    let first = inventory
        .hold_one(request(7, 1, 119, 42), ttl(1))
        .await
        .unwrap();

    db.pass(Duration::from_secs(2)).await;
    assert_eq!(
        inventory.find(first.id).await.unwrap().unwrap().status,
        ReservationStatus::Expired,
        "reported EXPIRED before any clean-up ran"
    );
    let second = inventory
        .hold_one(request(8, 1, 119, 42), ttl(300))
        .await
        .unwrap();

    assert_eq!(second.user.get(), 8);
    assert_eq!(
        db.query_i64(&format!(
            "SELECT count(*) FROM reservations WHERE id = {} AND status = 'EXPIRED'",
            first.id
        ))
        .await,
        1
    );
    assert_eq!(live_reservations_per_seat_max(&db).await, 1);
}

#[tokio::test]
async fn cancelling_frees_the_seat_at_once() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    let held = inventory
        .hold_one(request(7, 1, 119, 42), ttl(300))
        .await
        .unwrap();

    assert_eq!(
        inventory.cancel(held.id).await.unwrap(),
        CancelOutcome::Cancelled
    );

    assert_eq!(
        inventory.find(held.id).await.unwrap().unwrap().status,
        ReservationStatus::Cancelled
    );
    assert!(inventory
        .hold_one(request(8, 1, 119, 42), ttl(300))
        .await
        .is_ok());
    assert_eq!(
        inventory.cancel(held.id).await.unwrap(),
        CancelOutcome::AlreadyReleased,
        "cancelling again changes nothing, and does not free the new holder's seat"
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE performance_id = 119 AND seat_no = 42 AND status = 'HELD'").await,
        1
    );
}

#[tokio::test]
async fn a_paid_or_unknown_reservation_is_not_cancelled() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    let held = inventory
        .hold_one(request(7, 1, 119, 42), ttl(300))
        .await
        .unwrap();
    db.execute(&format!(
        "UPDATE seats SET status = 'SOLD', hold_expires_at = NULL WHERE reservation_id = {id};
         UPDATE reservations SET status = 'CONFIRMED' WHERE id = {id};",
        id = held.id
    ))
    .await;

    assert_eq!(
        inventory.cancel(held.id).await.unwrap(),
        CancelOutcome::Confirmed
    );
    assert_eq!(
        inventory
            .cancel(ReservationId::new(987_654).unwrap())
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE status = 'SOLD'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_clean_up_releases_lapsed_holds_only() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    let lapsing = inventory
        .hold_one(request(7, 1, 119, 1), ttl(1))
        .await
        .unwrap();
    let live = inventory
        .hold_one(request(7, 1, 119, 2), ttl(300))
        .await
        .unwrap();
    db.pass(Duration::from_secs(2)).await;

    assert_eq!(inventory.release_expired(100).await.unwrap(), 1);
    assert_eq!(inventory.release_expired(100).await.unwrap(), 0);

    let statuses = db
        .query_i64("SELECT count(*) FROM seats WHERE performance_id = 119 AND status = 'HELD'")
        .await;
    assert_eq!(statuses, 1);
    assert_eq!(
        db.query_i64(&format!(
            "SELECT count(*) FROM reservations WHERE id = {} AND status = 'EXPIRED'",
            lapsing.id
        ))
        .await,
        1
    );
    assert_eq!(
        inventory.find(live.id).await.unwrap().unwrap().status,
        ReservationStatus::Held
    );
}

#[tokio::test]
async fn a_thousand_racing_holds_on_one_seat_have_exactly_one_winner() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = Arc::new(PgSeatInventory::new(db.pool().clone()));

    let attempts: Vec<_> = (0..1000)
        .map(|i| {
            let inventory = inventory.clone();
            tokio::spawn(async move {
                inventory
                    .hold_one(request(1 + i % 1000, 1, 119, 500), ttl(300))
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => winners += 1,
            Err(HoldError::SeatUnavailable { .. }) => refused += 1,
            Err(other) => panic!("a racing hold failed otherwise: {other:?}"),
        }
    }

    assert_eq!((winners, refused), (1, 999));
    assert_eq!(live_reservations_per_seat_max(&db).await, 1);
    assert_eq!(db.query_i64("SELECT count(*) FROM reservations").await, 1);
}

#[tokio::test]
async fn a_database_that_does_not_answer_is_unavailable() {
    let mut settings =
        ticketing_postgres::PgPoolSettings::new("postgres://postgres@127.0.0.1:1/none");
    settings.checkout_timeout = Duration::from_millis(500);
    let pool = ticketing_postgres::pool::build_pool(&settings).unwrap();
    let inventory = PgSeatInventory::new(pool);

    let result = inventory.hold_one(request(1, 1, 119, 1), ttl(300)).await;

    assert!(matches!(
        result,
        Err(HoldError::Infrastructure(InfrastructureError::Unavailable(
            _
        )))
    ));
}

#[tokio::test]
async fn racing_holds_on_a_lapsed_seat_have_exactly_one_winner() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = Arc::new(PgSeatInventory::new(db.pool().clone()));
    inventory
        .hold_one(request(1, 1, 119, 77), ttl(1))
        .await
        .unwrap();
    db.pass(Duration::from_secs(2)).await;

    let attempts: Vec<_> = (0..200)
        .map(|i| {
            let inventory = inventory.clone();
            tokio::spawn(async move {
                inventory
                    .hold_one(request(2 + i, 1, 119, 77), ttl(300))
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => winners += 1,
            Err(HoldError::SeatUnavailable { .. }) => {}
            Err(other) => panic!("a racing hold failed otherwise: {other:?}"),
        }
    }

    assert_eq!(winners, 1);
    assert_eq!(live_reservations_per_seat_max(&db).await, 1);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM reservations WHERE status = 'EXPIRED'")
            .await,
        1
    );
}

#[tokio::test]
async fn several_seats_are_held_at_once_in_the_order_asked() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());

    let held = inventory
        .hold(
            several(7, 1, 119, &[13, 12, 800]),
            ttl(300),
            SeatLimit::unlimited(),
        )
        .await
        .unwrap();

    let seats: Vec<i32> = held.iter().map(|r| r.seat.get()).collect();
    assert_eq!(seats, [13, 12, 800]);
    assert_eq!(
        held.iter().map(|r| r.price.get()).collect::<Vec<_>>(),
        [150_000, 150_000, 90_000]
    );
    let ids: HashSet<i64> = held.iter().map(|r| r.id.get()).collect();
    assert_eq!(ids.len(), 3);
    for reservation in &held {
        assert_eq!(
            inventory.find(reservation.id).await.unwrap().as_ref(),
            Some(reservation)
        );
    }
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE status = 'HELD'")
            .await,
        3
    );
}

#[tokio::test]
async fn one_taken_seat_holds_none_and_every_taken_seat_is_named() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    inventory
        .hold(
            several(8, 1, 119, &[14, 12]),
            ttl(300),
            SeatLimit::unlimited(),
        )
        .await
        .unwrap();

    let refused = inventory
        .hold(
            several(7, 1, 119, &[12, 13, 14]),
            ttl(300),
            SeatLimit::unlimited(),
        )
        .await;

    match refused {
        Err(HoldError::SeatUnavailable { seats, .. }) => {
            assert_eq!(seats.iter().map(|s| s.get()).collect::<Vec<_>>(), [12, 14])
        }
        other => panic!("expected SeatUnavailable, got {other:?}"),
    }
    assert_eq!(
        db.query_i64("SELECT count(*) FROM reservations WHERE user_id = 7")
            .await,
        0,
        "nothing held for the refused request"
    );
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM seats WHERE performance_id = 119 AND seat_no = 13 AND status = 'AVAILABLE'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_missing_seat_in_a_selection_is_not_found_and_holds_none() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());

    let refused = inventory
        .hold(
            several(7, 1, 119, &[1, 1001]),
            ttl(300),
            SeatLimit::unlimited(),
        )
        .await;
    let foreign_user = inventory
        .hold(
            several(99_999, 1, 119, &[1, 2]),
            ttl(300),
            SeatLimit::unlimited(),
        )
        .await;

    assert!(matches!(
        refused,
        Err(HoldError::SeatNotFound { seat, .. }) if seat.get() == 1001
    ));
    assert!(matches!(foreign_user, Err(HoldError::UserNotFound(_))));
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE status <> 'AVAILABLE'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_selection_retires_the_lapsed_holds_on_its_seats() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    let lapsing = inventory
        .hold_one(request(8, 1, 119, 21), ttl(1))
        .await
        .unwrap();
    db.pass(Duration::from_secs(2)).await;

    let held = inventory
        .hold(
            several(7, 1, 119, &[20, 21]),
            ttl(300),
            SeatLimit::unlimited(),
        )
        .await
        .unwrap();

    assert_eq!(held.len(), 2);
    assert_eq!(
        inventory.find(lapsing.id).await.unwrap().unwrap().status,
        ReservationStatus::Expired
    );
    assert_eq!(live_reservations_per_seat_max(&db).await, 1);
}

/// Many concurrent holds of 2 to 4 seats over a small, overlapping range: every seat is held at
/// most once, every hold is whole or absent, and no hold deadlocks or fails otherwise.
#[tokio::test]
async fn racing_holds_of_overlapping_seats_are_all_or_nothing() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = Arc::new(PgSeatInventory::new(db.pool().clone()));

    let attempts: Vec<_> = (0..400u64)
        .map(|i| {
            let inventory = inventory.clone();
            // Seats from 1..=30, 2 to 4 of them, in scrambled orders.
            let start = (i * 7) % 28 + 1;
            let len = 2 + i % 3;
            let mut seats: Vec<i64> = (start..start + len).map(|s| s as i64).collect();
            if i % 2 == 0 {
                seats.reverse();
            }
            seats.retain(|s| *s <= 30);
            tokio::spawn(async move {
                let asked = seats.clone();
                (
                    asked,
                    inventory
                        .hold(
                            several(1 + i as i64, 1, 119, &seats),
                            ttl(300),
                            SeatLimit::unlimited(),
                        )
                        .await,
                )
            })
        })
        .collect();
    let mut won: Vec<i64> = Vec::new();
    for attempt in attempts {
        let (asked, outcome) = attempt.await.unwrap();
        match outcome {
            Ok(held) => {
                assert_eq!(held.len(), asked.len(), "a hold is whole");
                won.extend(held.iter().map(|r| i64::from(r.seat.get())));
            }
            Err(HoldError::SeatUnavailable { seats, .. }) => assert!(!seats.is_empty()),
            Err(other) => panic!("a racing hold failed otherwise: {other:?}"),
        }
    }

    let distinct: HashSet<i64> = won.iter().copied().collect();
    assert_eq!(won.len(), distinct.len(), "no seat held twice");
    assert_eq!(
        db.query_i64("SELECT count(*) FROM reservations").await as usize,
        won.len(),
        "no reservation beyond the whole holds"
    );
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seats WHERE status = 'HELD'")
            .await as usize,
        won.len()
    );
    assert_eq!(live_reservations_per_seat_max(&db).await, 1);
}

#[tokio::test]
async fn a_user_holds_up_to_the_limit_per_performance_and_a_hold_past_it_takes_nothing() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    let four = SeatLimit::new(4);
    inventory
        .hold(several(7, 1, 119, &[1, 2, 3]), ttl(300), four)
        .await
        .unwrap();

    let past = inventory
        .hold(several(7, 1, 119, &[4, 5]), ttl(300), four)
        .await;
    let other_performance = inventory
        .hold(several(7, 1, 120, &[4, 5]), ttl(300), four)
        .await;
    let other_user = inventory
        .hold(several(8, 1, 119, &[4, 5]), ttl(300), four)
        .await;
    let up_to = inventory
        .hold(several(7, 1, 119, &[6]), ttl(300), four)
        .await;

    assert!(matches!(
        past,
        Err(HoldError::SeatLimitReached { limit: 4, .. })
    ));
    assert!(other_performance.is_ok(), "the limit is per performance");
    assert!(other_user.is_ok());
    assert!(up_to.is_ok());
    assert_eq!(
        db.query_i64(
            "SELECT count(*) FROM reservations WHERE user_id = 7 AND performance_id = 119"
        )
        .await,
        4
    );
}

#[tokio::test]
async fn paid_seats_count_against_the_limit_and_lapsed_or_cancelled_ones_do_not() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    let two = SeatLimit::new(2);
    let paid = inventory
        .hold_one(request(7, 1, 119, 1), ttl(300))
        .await
        .unwrap();
    db.execute(&format!(
        "UPDATE seats SET status = 'SOLD', hold_expires_at = NULL WHERE reservation_id = {id};
         UPDATE reservations SET status = 'CONFIRMED' WHERE id = {id};",
        id = paid.id
    ))
    .await;
    inventory
        .hold_one(request(7, 1, 119, 2), ttl(1))
        .await
        .unwrap();
    let cancelled = inventory
        .hold_one(request(7, 1, 119, 3), ttl(300))
        .await
        .unwrap();
    inventory.cancel(cancelled.id).await.unwrap();
    db.pass(Duration::from_secs(2)).await;

    let one_more = inventory
        .hold(several(7, 1, 119, &[4]), ttl(300), two)
        .await;
    let past = inventory
        .hold(several(7, 1, 119, &[5]), ttl(300), two)
        .await;

    assert!(one_more.is_ok(), "{one_more:?}");
    assert!(matches!(past, Err(HoldError::SeatLimitReached { .. })));
}

#[tokio::test]
async fn a_taken_seat_is_answered_before_the_limit() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    inventory
        .hold_one(request(8, 1, 119, 9), ttl(300))
        .await
        .unwrap();

    let refused = inventory
        .hold(several(7, 1, 119, &[8, 9]), ttl(300), SeatLimit::new(1))
        .await;

    assert!(matches!(refused, Err(HoldError::SeatUnavailable { .. })));
}

/// Twenty concurrent two-seat holds of one user over distinct free seats, with a limit of 4:
/// exactly two of them win, whatever the interleaving.
#[tokio::test]
async fn concurrent_holds_of_one_user_never_pass_the_limit_together() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = Arc::new(PgSeatInventory::new(db.pool().clone()));

    let attempts: Vec<_> = (0..20i64)
        .map(|i| {
            let inventory = inventory.clone();
            tokio::spawn(async move {
                inventory
                    .hold(
                        several(7, 1, 119, &[100 + 2 * i, 101 + 2 * i]),
                        ttl(300),
                        SeatLimit::new(4),
                    )
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(held) => won += held.len(),
            Err(HoldError::SeatLimitReached { .. }) => {}
            Err(other) => panic!("a racing hold failed otherwise: {other:?}"),
        }
    }

    assert_eq!(won, 4);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM reservations WHERE user_id = 7")
            .await,
        4
    );
}

fn list_query(
    user: i64,
    status: Option<ReservationStatus>,
    before: Option<ReservationId>,
    size: i64,
) -> ReservationQuery {
    ReservationQuery {
        user: UserId::new(user).unwrap(),
        status,
        before,
        size: PageSize::new(size).unwrap(),
    }
}

#[tokio::test]
async fn a_users_reservations_are_listed_newest_first_with_reported_statuses() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());
    let lapsing = inventory
        .hold_one(request(7, 1, 119, 1), ttl(1))
        .await
        .unwrap();
    let cancelled = inventory
        .hold_one(request(7, 1, 120, 2), ttl(300))
        .await
        .unwrap();
    inventory.cancel(cancelled.id).await.unwrap();
    let live = inventory
        .hold_one(request(7, 1, 119, 3), ttl(300))
        .await
        .unwrap();
    inventory
        .hold_one(request(8, 1, 119, 4), ttl(300))
        .await
        .unwrap();
    db.pass(Duration::from_secs(2)).await;

    let all = inventory
        .list(list_query(7, None, None, 10), 10)
        .await
        .unwrap()
        .unwrap();
    let statuses: Vec<(ReservationId, ReservationStatus)> =
        all.iter().map(|r| (r.id, r.status)).collect();

    assert_eq!(
        statuses,
        vec![
            (live.id, ReservationStatus::Held),
            (cancelled.id, ReservationStatus::Cancelled),
            (lapsing.id, ReservationStatus::Expired),
        ]
    );
    assert_eq!(all[1].concert.get(), 1);
    assert_eq!(all[1].performance.get(), 120);
    for (status, expected) in [
        (ReservationStatus::Held, vec![live.id]),
        (ReservationStatus::Expired, vec![lapsing.id]),
        (ReservationStatus::Cancelled, vec![cancelled.id]),
        (ReservationStatus::Confirmed, vec![]),
    ] {
        let ids: Vec<ReservationId> = inventory
            .list(list_query(7, Some(status), None, 10), 10)
            .await
            .unwrap()
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, expected, "{status:?}");
    }
    let older: Vec<ReservationId> = inventory
        .list(list_query(7, None, Some(cancelled.id), 10), 10)
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(older, vec![lapsing.id], "before: the next page");
    assert_eq!(
        inventory
            .list(list_query(7, None, None, 10), 2)
            .await
            .unwrap()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_user_without_reservations_has_an_empty_list_and_an_unknown_user_none() {
    let db = TestDatabase::with_demo_data().await;
    let inventory = PgSeatInventory::new(db.pool().clone());

    assert_eq!(
        inventory
            .list(list_query(7, None, None, 10), 10)
            .await
            .unwrap(),
        Some(vec![])
    );
    assert_eq!(
        inventory
            .list(list_query(99_999, None, None, 10), 10)
            .await
            .unwrap(),
        None
    );
}

/// A request future dropped in the middle of its transaction (its client went away) gives its
/// connection back to the pool still in the transaction: the server ends that session after the
/// statement timeout, so the seats it locked are free again (and a test schema can be dropped).
#[tokio::test]
async fn a_transaction_left_open_lets_go_of_its_locks_after_the_statement_timeout() {
    use diesel_async::SimpleAsyncConnection;

    let db = TestDatabase::with_demo_data().await;
    let mut settings = ticketing_postgres::PgPoolSettings::new(db.url());
    settings.statement_timeout = Duration::from_millis(500);
    let pool = ticketing_postgres::pool::build_pool(&settings).unwrap();
    {
        let mut connection = pool.get().await.unwrap();
        connection
            .batch_execute(
                "BEGIN; SELECT 1 FROM seats WHERE performance_id = 119 AND seat_no = 42 FOR UPDATE",
            )
            .await
            .unwrap();
    }

    // Short of the pool's default timeout (5 s): the session must end by the 500 ms set here.
    let db = &db;
    crate::eventually(
        "the seat the abandoned transaction locked is free",
        Duration::from_secs(3),
        move || async move {
            let mut connection = db.pool().get().await.unwrap();
            connection
                .batch_execute(
                    "SELECT 1 FROM seats WHERE performance_id = 119 AND seat_no = 42 FOR UPDATE NOWAIT",
                )
                .await
                .is_ok()
        },
    )
    .await;
}
