//! The accounts, remembered by this instance: a subject's user never changes once made, so
//! every request of an account after its first asks PostgreSQL nothing.

use std::sync::Arc;

use async_trait::async_trait;
use moka::future::Cache;
use ticketing_domain::identity::{Accounts, Subject};
use ticketing_domain::ids::UserId;
use ticketing_domain::InfrastructureError;

/// How many accounts one instance remembers (about 100 bytes each).
const REMEMBERED: u64 = 200_000;

/// [`Accounts`] in front of another: answers from memory what that one answered before.
pub(crate) struct RememberedAccounts {
    inner: Arc<dyn Accounts>,
    known: Cache<String, UserId>,
}

impl std::fmt::Debug for RememberedAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RememberedAccounts")
            .field("remembered", &self.known.entry_count())
            .finish_non_exhaustive()
    }
}

impl RememberedAccounts {
    pub(crate) fn new(inner: Arc<dyn Accounts>) -> Self {
        Self {
            inner,
            known: Cache::new(REMEMBERED),
        }
    }
}

#[async_trait]
impl Accounts for RememberedAccounts {
    async fn user_of(&self, subject: &Subject) -> Result<UserId, InfrastructureError> {
        if let Some(user) = self.known.get(subject.as_str()).await {
            return Ok(user);
        }
        let user = self.inner.user_of(subject).await?;
        self.known.insert(subject.as_str().to_string(), user).await;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use ticketing_domain::identity::MockAccounts;

    use super::*;

    #[tokio::test]
    async fn an_account_is_asked_of_the_store_once() {
        let mut store = MockAccounts::new();
        store
            .expect_user_of()
            .times(1)
            .returning(|_| Ok(UserId::new(7).expect("valid")));
        let accounts = RememberedAccounts::new(Arc::new(store));
        let alice = Subject::parse("alice").expect("valid");

        for _ in 0..3 {
            assert_eq!(
                accounts.user_of(&alice).await.map(UserId::get).ok(),
                Some(7)
            );
        }
    }

    #[tokio::test]
    async fn a_failure_is_not_remembered() {
        let mut store = MockAccounts::new();
        let mut calls = 0;
        store.expect_user_of().times(2).returning(move |_| {
            calls += 1;
            if calls == 1 {
                Err(InfrastructureError::unavailable("down"))
            } else {
                Ok(UserId::new(7).expect("valid"))
            }
        });
        let accounts = RememberedAccounts::new(Arc::new(store));
        let alice = Subject::parse("alice").expect("valid");

        assert!(accounts.user_of(&alice).await.is_err());
        assert!(accounts.user_of(&alice).await.is_ok());
    }
}
