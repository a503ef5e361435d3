//! The prepaid balance: charged by the user, debited by payments, never negative.

use std::sync::Arc;

use async_trait::async_trait;

use crate::idempotency::{IdempotencyConflict, IdempotencyKey, IdempotentRequest};
use crate::ids::UserId;
use crate::money::{ChargeAmount, Won};
use crate::InfrastructureError;

/// Why a balance could not be read or charged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// No user has this id.
    #[error("user {0} does not exist")]
    UserNotFound(UserId),
    /// The idempotency key was used for another request, or its first request is still running.
    #[error(transparent)]
    Conflict(#[from] IdempotencyConflict),
    /// The store cannot answer.
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

/// A charge of a user's balance, as a client asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeRequest {
    /// Whose balance.
    pub user: UserId,
    /// How much to add.
    pub amount: ChargeAmount,
}

impl ChargeRequest {
    /// What identifies this request under an `Idempotency-Key`.
    pub fn fingerprint(&self) -> String {
        format!(
            "charge;user={};amount={}",
            self.user,
            self.amount.won().get()
        )
    }
}

/// The users' balances, where they are stored.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait Wallet: Send + Sync {
    /// The user's balance.
    ///
    /// # Errors
    /// [`WalletError::UserNotFound`] for an unknown user; [`WalletError::Infrastructure`] when
    /// the store cannot answer.
    async fn balance(&self, user: UserId) -> Result<Won, WalletError>;

    /// Adds `amount` to the balance atomically (concurrent charges all count) and returns the
    /// new balance. With `idempotency`, a charge already recorded under the key is not applied
    /// again: the balance it answered first is returned.
    ///
    /// # Errors
    /// [`WalletError::UserNotFound`] for an unknown user (nothing is recorded);
    /// [`WalletError::Conflict`] when the key was used for another request or its first
    /// request is still running; [`WalletError::Infrastructure`] when the store cannot answer.
    async fn charge(
        &self,
        user: UserId,
        amount: ChargeAmount,
        idempotency: Option<IdempotentRequest>,
    ) -> Result<Won, WalletError>;
}

/// The balance use cases.
#[derive(Clone)]
pub struct WalletService {
    wallet: Arc<dyn Wallet>,
}

impl std::fmt::Debug for WalletService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletService").finish_non_exhaustive()
    }
}

impl WalletService {
    /// The use cases over the balances stored in `wallet`.
    pub fn new(wallet: Arc<dyn Wallet>) -> Self {
        Self { wallet }
    }

    /// The user's balance.
    ///
    /// # Errors
    /// See [`Wallet::balance`].
    pub async fn balance(&self, user: UserId) -> Result<Won, WalletError> {
        self.wallet.balance(user).await
    }

    /// Charges the balance, once per `key`.
    ///
    /// # Errors
    /// See [`Wallet::charge`].
    pub async fn charge(
        &self,
        user: UserId,
        amount: ChargeAmount,
        key: Option<IdempotencyKey>,
    ) -> Result<Won, WalletError> {
        let idempotency = key.map(|key| IdempotentRequest {
            key,
            fingerprint: ChargeRequest { user, amount }.fingerprint(),
        });
        self.wallet.charge(user, amount, idempotency).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_keyed_charge_is_fingerprinted_by_user_and_amount() {
        let mut wallet = MockWallet::new();
        wallet
            .expect_charge()
            .withf(|_, _, idempotency| {
                idempotency.as_ref().map(|i| i.fingerprint.as_str())
                    == Some("charge;user=7;amount=50000")
            })
            .returning(|_, amount, _| Ok(amount.won()));
        let service = WalletService::new(Arc::new(wallet));

        let balance = service
            .charge(
                UserId::new(7).expect("valid"),
                ChargeAmount::new(50_000).expect("valid"),
                Some(IdempotencyKey::parse("k1").expect("valid")),
            )
            .await;

        assert_eq!(balance, Ok(Won::new(50_000).expect("valid")));
    }
}
