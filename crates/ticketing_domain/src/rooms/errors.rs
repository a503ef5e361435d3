//! Why a room operation failed.

use chrono::{DateTime, Utc};

use super::id::RoomId;
use super::invite::InviteRefusal;
use crate::ids::PerformanceId;
use crate::queue::{ControlError, InvalidSetting, QueueError};
use crate::InfrastructureError;

/// Why a room operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// No room has this id.
    #[error("no room {0}")]
    NotFound(RoomId),
    /// A room with this id exists already.
    #[error("a room {0} exists already")]
    Exists(RoomId),
    /// People wait or are active in the room (or it is the room `default`).
    #[error("room {0} cannot be deleted: it is the default room, or people wait or shop in it")]
    Busy(RoomId),
    /// A setting out of its range, or a combination that cannot be.
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
    /// A listed performance does not exist.
    #[error("performance {0} does not exist")]
    UnknownPerformance(PerformanceId),
    /// A listed performance belongs to another room already.
    #[error("performance {performance} is in room {room} already")]
    PerformanceTaken {
        /// The performance.
        performance: PerformanceId,
        /// The room it is in.
        room: RoomId,
    },
    /// The room takes no new entries (mode `reject`, or past its closing time).
    #[error("room {room} takes no new entries")]
    Closed {
        /// The room.
        room: RoomId,
        /// When it opens, if an opening is scheduled.
        opens_at: Option<DateTime<Utc>>,
    },
    /// The room is invite-only and the entry carries no code, or no account to check it against.
    #[error("room {0} takes entries with an invite code only")]
    InviteRequired(RoomId),
    /// The entry's invite code does not let it in.
    #[error("{0}")]
    InviteInvalid(#[from] InviteRefusal),
    /// The room's gate against bots stays closed to this entry.
    #[error(transparent)]
    Gate(#[from] super::gate::GateError),
    /// The line refused (rate limited) or its store cannot answer.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The room store cannot answer.
    #[error(transparent)]
    Infrastructure(#[from] InfrastructureError),
}

impl From<ControlError> for RoomError {
    fn from(error: ControlError) -> Self {
        match error {
            ControlError::Invalid(invalid) => RoomError::Invalid(invalid),
            ControlError::Queue(queue) => RoomError::Queue(queue),
        }
    }
}
