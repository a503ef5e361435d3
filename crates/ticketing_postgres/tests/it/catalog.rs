//! The PostgreSQL catalog adapter against a real database, one schema per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ticketing_domain::catalog::{CatalogError, ConcertCatalog, SeatStatus};
use ticketing_domain::ids::{ConcertId, PerformanceId};
use ticketing_postgres::PgConcertCatalog;
use ticketing_testkit::TestDatabase;

fn concert(id: i64) -> ConcertId {
    ConcertId::new(id).unwrap()
}

fn performance(id: i64) -> PerformanceId {
    PerformanceId::new(id).unwrap()
}

#[tokio::test]
async fn concerts_are_listed_by_id() {
    let db = TestDatabase::with_demo_data().await;
    let catalog = PgConcertCatalog::new(db.pool().clone());

    let concerts = catalog.concerts().await.unwrap();

    let ids: Vec<i64> = concerts.iter().map(|c| c.id.get()).collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    assert!(concerts.iter().all(|c| !c.title.is_empty()));
}

#[tokio::test]
async fn performances_of_a_concert_come_earliest_first_with_their_seat_counts() {
    let db = TestDatabase::with_demo_data().await;
    let catalog = PgConcertCatalog::new(db.pool().clone());

    let performances = catalog.performances(concert(1)).await.unwrap();

    let ids: Vec<i64> = performances.iter().map(|p| p.id.get()).collect();
    assert_eq!(ids, vec![119, 120, 121]);
    assert!(performances
        .iter()
        .all(|p| p.total_seats == 1000 && p.available_seats == 1000));
}

#[tokio::test]
async fn performances_of_an_unknown_concert_are_not_found() {
    let db = TestDatabase::with_demo_data().await;
    let catalog = PgConcertCatalog::new(db.pool().clone());

    let result = catalog.performances(concert(999)).await;

    assert_eq!(result, Err(CatalogError::ConcertNotFound(concert(999))));
}

#[tokio::test]
async fn a_concert_without_performances_lists_none() {
    let db = TestDatabase::new().await;
    db.execute("INSERT INTO concerts (id, title, artist, venue) VALUES (5, 'T', 'A', 'V')")
        .await;
    let catalog = PgConcertCatalog::new(db.pool().clone());

    assert_eq!(catalog.performances(concert(5)).await, Ok(vec![]));
}

#[tokio::test]
async fn the_demo_performance_has_a_thousand_numbered_available_seats() {
    let db = TestDatabase::with_demo_data().await;
    let catalog = PgConcertCatalog::new(db.pool().clone());

    let seats = catalog.seats(concert(1), performance(119)).await.unwrap();

    assert_eq!(seats.len(), 1000);
    let numbers: Vec<i32> = seats.iter().map(|s| s.no.get()).collect();
    assert_eq!(numbers, (1..=1000).collect::<Vec<_>>());
    assert!(seats.iter().all(|s| s.status == SeatStatus::Available));
    assert_eq!(seats[0].grade, "R");
    assert_eq!(seats[0].price.get(), 150_000);
}

#[tokio::test]
async fn a_performance_of_another_concert_is_not_found() {
    let db = TestDatabase::with_demo_data().await;
    let catalog = PgConcertCatalog::new(db.pool().clone());

    let result = catalog.seats(concert(2), performance(119)).await;

    assert_eq!(
        result,
        Err(CatalogError::PerformanceNotFound {
            concert: concert(2),
            performance: performance(119)
        })
    );
}

#[tokio::test]
async fn an_unknown_performance_is_not_found() {
    let db = TestDatabase::with_demo_data().await;
    let catalog = PgConcertCatalog::new(db.pool().clone());

    let result = catalog.seats(concert(1), performance(9999)).await;

    assert!(matches!(
        result,
        Err(CatalogError::PerformanceNotFound { .. })
    ));
}

/// Seat 1 of performance 119 under a live hold, seat 2 under a lapsed one, seat 3 sold.
async fn hold_sell_and_lapse_seats_1_to_3(db: &TestDatabase) {
    db.execute(
        "UPDATE seats SET status = 'HELD', hold_expires_at = now() + interval '5 minutes', reservation_id = 1
          WHERE performance_id = 119 AND seat_no = 1;
         UPDATE seats SET status = 'HELD', hold_expires_at = now() - interval '1 second', reservation_id = 2
          WHERE performance_id = 119 AND seat_no = 2;
         UPDATE seats SET status = 'SOLD', reservation_id = 3
          WHERE performance_id = 119 AND seat_no = 3;",
    )
    .await;
}

#[tokio::test]
async fn seat_statuses_follow_holds_sales_and_expiry_by_the_database_clock() {
    let db = TestDatabase::with_demo_data().await;
    hold_sell_and_lapse_seats_1_to_3(&db).await;
    let catalog = PgConcertCatalog::new(db.pool().clone());

    let seats = catalog.seats(concert(1), performance(119)).await.unwrap();
    let performances = catalog.performances(concert(1)).await.unwrap();

    assert_eq!(seats[0].status, SeatStatus::Held);
    assert_eq!(
        seats[1].status,
        SeatStatus::Available,
        "an expired hold is free"
    );
    assert_eq!(seats[2].status, SeatStatus::Sold);
    assert_eq!(performances[0].available_seats, 998);
}

#[tokio::test]
async fn taken_seats_are_the_sold_and_live_held_ones_with_the_database_clock() {
    use ticketing_domain::ids::SeatNo;

    let db = TestDatabase::with_demo_data().await;
    hold_sell_and_lapse_seats_1_to_3(&db).await;
    let catalog = PgConcertCatalog::new(db.pool().clone());
    let seat = |no: i64| SeatNo::new(no).unwrap();

    let taken = catalog
        .taken_seats(concert(1), performance(119))
        .await
        .unwrap();

    assert_eq!(taken.len(), 2, "the lapsed hold is not taken");
    assert_eq!(
        taken.still_taken(
            &[seat(1), seat(2), seat(3), seat(4)],
            std::time::Duration::ZERO
        ),
        vec![seat(1), seat(3)]
    );
    assert_eq!(
        taken.still_taken(&[seat(1), seat(3)], std::time::Duration::from_secs(301)),
        vec![seat(3)],
        "the live hold lapses by the database clock read with it"
    );
}

#[tokio::test]
async fn a_performance_without_taken_seats_has_none_and_a_foreign_one_is_not_found() {
    let db = TestDatabase::with_demo_data().await;
    let catalog = PgConcertCatalog::new(db.pool().clone());

    let none = catalog
        .taken_seats(concert(1), performance(119))
        .await
        .unwrap();
    let foreign = catalog.taken_seats(concert(2), performance(119)).await;
    let unknown = catalog.taken_seats(concert(1), performance(9999)).await;

    assert!(none.is_empty());
    assert!(matches!(
        foreign,
        Err(CatalogError::PerformanceNotFound { .. })
    ));
    assert!(matches!(
        unknown,
        Err(CatalogError::PerformanceNotFound { .. })
    ));
}
