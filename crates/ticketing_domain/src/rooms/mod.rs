//! Waiting rooms: one line per on-sale, each with its own settings, for a set of performances.
//! The room `default` is the v1/v2 line and covers every performance no other room covers.

mod errors;
mod gate;
mod id;
mod invite;
mod port;
mod room;
mod service;

pub use errors::RoomError;
#[cfg(any(test, feature = "mock"))]
pub use gate::MockSpentProofs;
pub use gate::{
    Challenge, ChallengeGate, GateError, Passage, ProofRefused, SpentProofs, VerifiedProof,
};
pub use id::{InvalidRoomId, RoomId};
#[cfg(any(test, feature = "mock"))]
pub use invite::MockInviteLedger;
pub use invite::{
    InvalidInviteAccount, InvalidInviteNonce, Invite, InviteAccount, InviteCode, InviteKey,
    InviteLedger, InviteNonce, InvitePass, InviteRefusal, Invites, WeakInviteKey,
};
#[cfg(any(test, feature = "mock"))]
pub use port::{MockRoomLines, MockRoomRepository};
pub use port::{RoomLineStores, RoomLines, RoomRepository};
pub use room::{ChallengeDifficulty, Room, RoomChange, RoomEntry, RoomMode, RoomName, RoomStatus};
pub use service::{RoomDetails, RoomService};
