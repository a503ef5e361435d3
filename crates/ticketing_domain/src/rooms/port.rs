//! Where rooms are kept, and how a room's line is opened: the ports of the rooms area.

use std::sync::Arc;

use async_trait::async_trait;

use super::errors::RoomError;
use super::id::RoomId;
use super::room::{Room, RoomMode};
use crate::queue::{LineSettings, QueueControls, QueuePolicy, WaitingQueue};

/// The source of truth for rooms and their settings: they outlive restarts of every instance
/// and a loss of the lines' store.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait RoomRepository: Send + Sync {
    /// Every room, the room `default` included, by id.
    ///
    /// # Errors
    /// [`RoomError::Infrastructure`] when the store cannot answer.
    async fn list(&self) -> Result<Vec<Room>, RoomError>;

    /// Stores a new room.
    ///
    /// # Errors
    /// [`RoomError::Exists`] for a taken id, [`RoomError::UnknownPerformance`] for a
    /// performance that does not exist, [`RoomError::PerformanceTaken`] for one another room
    /// covers; nothing is stored then. [`RoomError::Infrastructure`] when the store cannot answer.
    async fn create(&self, room: &Room) -> Result<(), RoomError>;

    /// Replaces the stored room of `room.id` whose version is `room.version - 1` by `room`.
    ///
    /// # Errors
    /// [`RoomError::NotFound`] when there is no such room; [`RoomError::Invalid`] when it was
    /// changed meanwhile (its version moved on); [`RoomError::UnknownPerformance`] and
    /// [`RoomError::PerformanceTaken`] as for `create`; nothing is changed then.
    async fn update(&self, room: &Room) -> Result<(), RoomError>;

    /// Deletes the room `id`; returns whether it existed.
    ///
    /// # Errors
    /// [`RoomError::Infrastructure`] when the store cannot answer.
    async fn delete(&self, id: &RoomId) -> Result<bool, RoomError>;
}

/// The store of one room's line, both sides of it.
#[derive(Clone)]
pub struct RoomLineStores {
    /// What the room's use cases need.
    pub queue: Arc<dyn WaitingQueue>,
    /// What the operator's need.
    pub controls: Arc<dyn QueueControls>,
}

impl std::fmt::Debug for RoomLineStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomLineStores").finish_non_exhaustive()
    }
}

/// Opens the line of a room in the lines' store: each room's line apart from every other's.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait RoomLines: Send + Sync {
    /// The line of room `room`, admitting by `policy` unless an operator changed its settings,
    /// in `mode`. A line that does not exist in the store (new, or lost) starts with `settings`
    /// (the room's stored ones: a pause, a scheduled opening still ahead).
    fn open(
        &self,
        room: &RoomId,
        policy: QueuePolicy,
        mode: RoomMode,
        settings: &LineSettings,
    ) -> RoomLineStores;
}
