//! The ledger of used invite codes in memory, and the contract every [`InviteLedger`] keeps.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::rooms::{InviteLedger, InviteNonce, RoomId};
use crate::InfrastructureError;

/// Used invites in a [`Mutex`]: claims never lapse (a code past its expiry is refused before
/// the ledger is asked, so keeping them longer changes no answer).
#[derive(Debug, Default)]
pub struct InMemoryInviteLedger {
    used: Mutex<HashSet<(RoomId, String)>>,
}

#[async_trait]
impl InviteLedger for InMemoryInviteLedger {
    async fn claim(
        &self,
        room: &RoomId,
        nonce: &InviteNonce,
        _until: DateTime<Utc>,
    ) -> Result<bool, InfrastructureError> {
        Ok(self
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((*room, nonce.as_str().to_string())))
    }

    async fn release(&self, room: &RoomId, nonce: &InviteNonce) -> Result<(), InfrastructureError> {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(*room, nonce.as_str().to_string()));
        Ok(())
    }
}

/// What every [`InviteLedger`] must do: a nonce is claimed once per room until released; a
/// released nonce can be claimed again; rooms and nonces are apart. `ledger` must hold no claim
/// of the rooms `contract-a` and `contract-b`. Racing claims are the adapter's own test to run
/// (it needs a runtime this crate does not have).
///
/// # Panics
/// When the ledger breaks the contract or cannot answer.
#[allow(clippy::expect_used)]
pub async fn invite_ledger_contract(ledger: &dyn InviteLedger) {
    let room = RoomId::parse("contract-a").expect("a room id");
    let other_room = RoomId::parse("contract-b").expect("a room id");
    let nonce = InviteNonce::from_random([1; 16]);
    let other_nonce = InviteNonce::from_random([2; 16]);
    let until = Utc::now() + chrono::Duration::hours(1);
    let claim = |room: RoomId, nonce: InviteNonce| async move {
        ledger
            .claim(&room, &nonce, until)
            .await
            .expect("the ledger answers")
    };
    assert!(claim(room, nonce.clone()).await, "a first claim counts");
    assert!(!claim(room, nonce.clone()).await, "a second claim does not");
    assert!(
        claim(room, other_nonce.clone()).await,
        "another nonce is apart"
    );
    assert!(
        claim(other_room, nonce.clone()).await,
        "another room is apart"
    );
    ledger
        .release(&room, &nonce)
        .await
        .expect("the ledger answers");
    assert!(
        claim(room, nonce.clone()).await,
        "a released nonce can be claimed again"
    );
    assert!(
        !claim(other_room, nonce).await,
        "releasing in one room leaves the other's claim"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_memory_ledger_keeps_the_contract() {
        invite_ledger_contract(&InMemoryInviteLedger::default()).await;
    }
}
