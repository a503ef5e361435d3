//! The demo data set of the HTTP contract: concert 1 with performance 119 of 1000 seats, users
//! 1..=10000 with an empty wallet, and a few more concerts so listings look real.

use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use ticketing_domain::InfrastructureError;

use crate::error::from_diesel;
use crate::pool::{checkout, PgPool};
use crate::seat_state::seat_released_sql;

/// The first and last user of the demo set.
pub const DEMO_USERS: std::ops::RangeInclusive<i64> = 1..=10_000;

/// Every statement inserts only what is missing, so loading twice changes nothing and two
/// instances loading at once do not collide.
const LOAD_DEMO_DATA: &str = r#"
INSERT INTO concerts (id, title, artist, venue) VALUES
    (1, 'Golden Hour World Tour', 'IU', 'KSPO Dome, Seoul'),
    (2, 'Midnight Orchestra', 'Seoul Philharmonic', 'Lotte Concert Hall, Seoul'),
    (3, 'Neon Summer Festival', 'NewJeans', 'Busan Asiad Main Stadium'),
    (4, 'Unplugged Evenings', 'AKMU', 'Blue Square, Seoul')
ON CONFLICT (id) DO NOTHING;

INSERT INTO performances (id, concert_id, starts_at, total_seats) VALUES
    (119, 1, '2027-03-13T10:00:00Z', 1000),
    (120, 1, '2027-03-14T10:00:00Z', 1000),
    (121, 1, '2027-03-15T09:00:00Z', 1000),
    (201, 2, '2027-04-02T11:00:00Z', 500),
    (202, 2, '2027-04-03T11:00:00Z', 500),
    (301, 3, '2027-07-24T10:30:00Z', 2000),
    (401, 4, '2027-05-08T10:00:00Z', 300),
    (402, 4, '2027-05-09T10:00:00Z', 300)
ON CONFLICT (id) DO NOTHING;

-- The front fifth of a hall is R, the next three tenths S, the back half A.
INSERT INTO seats (performance_id, seat_no, grade, price)
SELECT p.id, n,
       CASE WHEN n <= p.total_seats / 5 THEN 'R' WHEN n <= p.total_seats / 2 THEN 'S' ELSE 'A' END,
       CASE WHEN n <= p.total_seats / 5 THEN 150000 WHEN n <= p.total_seats / 2 THEN 120000 ELSE 90000 END
  FROM performances p
 CROSS JOIN LATERAL generate_series(1, p.total_seats) AS n
 WHERE p.id IN (119, 120, 121, 201, 202, 301, 401, 402)
ON CONFLICT (performance_id, seat_no) DO NOTHING;

INSERT INTO users (id) SELECT generate_series(1, 10000) ON CONFLICT (id) DO NOTHING;
INSERT INTO wallets (user_id) SELECT generate_series(1, 10000) ON CONFLICT (user_id) DO NOTHING;

-- Ids given by hand above must not be handed out again by the identity columns.
SELECT setval(pg_get_serial_sequence('concerts', 'id'), (SELECT max(id) FROM concerts));
SELECT setval(pg_get_serial_sequence('performances', 'id'), (SELECT max(id) FROM performances));
"#;

/// Returns every sale of the demo data set to its initial state: no reservations, payments,
/// ledger entries, recorded outcomes or events, every seat free, every balance zero. For load tests;
/// it destroys sales data.
const RESET_SALES: &str = concat!(
    "
TRUNCATE payment_reservations, payments, wallet_entries, idempotency_keys, reservations,
         outbox_events;
UPDATE seats SET ",
    seat_released_sql!(),
    " WHERE status <> 'AVAILABLE';
UPDATE wallets SET balance = 0, updated_at = now() WHERE balance <> 0;
"
);

/// Resets every sale (see `RESET_SALES`), then loads whatever of the demo set is missing.
///
/// # Errors
/// [`InfrastructureError`] when PostgreSQL cannot be reached or refuses the statements.
pub async fn reset(pool: &PgPool) -> Result<(), InfrastructureError> {
    let mut connection = checkout(pool).await?;
    connection
        .transaction::<_, diesel::result::Error, _>(async |tx| {
            tx.batch_execute(RESET_SALES).await?;
            tx.batch_execute(LOAD_DEMO_DATA).await
        })
        .await
        .map_err(from_diesel)
}

/// Loads the demo data set; loading it again changes nothing.
///
/// # Errors
/// [`InfrastructureError`] when PostgreSQL cannot be reached or refuses the statements.
pub async fn load(pool: &PgPool) -> Result<(), InfrastructureError> {
    let mut connection = checkout(pool).await?;
    connection
        .transaction::<_, diesel::result::Error, _>(async |tx| {
            tx.batch_execute(LOAD_DEMO_DATA).await
        })
        .await
        .map_err(from_diesel)
}
