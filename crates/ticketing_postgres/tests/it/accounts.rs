//! Accounts of an identity provider against a real PostgreSQL, one schema per test.

use ticketing_domain::identity::{Accounts, Subject};
use ticketing_domain::money::Won;
use ticketing_domain::wallet::Wallet;
use ticketing_postgres::{PgAccounts, PgWallet};
use ticketing_testkit::TestDatabase;

fn subject(text: &str) -> Subject {
    Subject::parse(text).unwrap()
}

#[tokio::test]
async fn a_subject_is_one_user_made_on_first_sight_with_balance_zero() {
    let db = TestDatabase::new().await;
    let accounts = PgAccounts::new(db.pool().clone());

    let alice = accounts.user_of(&subject("alice")).await.unwrap();
    let again = accounts.user_of(&subject("alice")).await.unwrap();
    let bob = accounts.user_of(&subject("bob")).await.unwrap();

    assert_eq!(alice, again);
    assert_ne!(alice, bob);
    let wallet = PgWallet::new(db.pool().clone());
    assert_eq!(wallet.balance(alice).await.unwrap(), Won::new(0).unwrap());
    assert_eq!(db.query_i64("SELECT count(*) FROM accounts").await, 2);
}

#[tokio::test]
async fn ids_taken_by_users_made_otherwise_are_skipped() {
    let db = TestDatabase::new().await;
    db.execute("INSERT INTO users (id) VALUES (1), (2), (3), (50)")
        .await;
    let accounts = PgAccounts::new(db.pool().clone());

    let alice = accounts.user_of(&subject("alice")).await.unwrap();

    assert!(alice.get() > 50, "{alice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_first_requests_at_once_make_one_user() {
    let db = TestDatabase::new().await;
    let accounts = PgAccounts::new(db.pool().clone());

    for round in 0..10 {
        let name = format!("racer-{round}");
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let accounts = accounts.clone();
                let name = name.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    accounts.user_of(&subject(&name)).await.unwrap()
                })
            })
            .collect();
        let mut users = Vec::new();
        for racer in racers {
            users.push(racer.await.unwrap());
        }
        assert!(
            users.iter().all(|user| *user == users[0]),
            "round {round}: {users:?}"
        );
    }
    assert_eq!(db.query_i64("SELECT count(*) FROM accounts").await, 10);
    // The losers' users were rolled back with their transactions.
    assert_eq!(db.query_i64("SELECT count(*) FROM users").await, 10);
    assert_eq!(db.query_i64("SELECT count(*) FROM wallets").await, 10);
}
