//! The waiting room: who may use the protected endpoints, admitted first come, first served, at
//! a controlled rate, with tokens any instance verifies and judges from memory.

pub mod controls;
pub mod draw;
mod errors;
pub mod line;
mod policy;
mod port;
mod service;
pub mod token;

#[cfg(any(test, feature = "mock"))]
pub use controls::MockQueueControls;
pub use controls::{
    ControlError, DrawRange, InvalidSetting, LineSettings, LineStatus, QueueControls,
    SettingsChange,
};
#[cfg(any(test, feature = "mock"))]
pub use draw::MockSeedSource;
pub use draw::{
    drawn_order, order_digest, DrawCommitment, DrawSeed, FixedSeed, LineDraw, PublishedDraw,
    SeedSource,
};
pub use errors::{AccessError, QueueError};
pub use line::{Judgement, LineChanges, LineEvent, LineSync, LineView, SyncCursor};
pub use policy::QueuePolicy;
#[cfg(any(test, feature = "mock"))]
pub use port::MockWaitingQueue;
pub use port::{AdmissionReport, ClientKey, Entered, LineStep, TicketState, WaitingQueue};
pub use service::{ActiveToken, LineOperator, QueueService, QueueStatus, QueueView, MAX_VIEW_AGE};
pub use token::{
    ForgedToken, MalformedToken, QueueToken, Seq, SigningKey, Ticket, TokenKeys, WeakSigningKey,
};
