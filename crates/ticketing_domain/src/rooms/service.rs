//! The rooms' use cases: which rooms exist (kept in step with their store by every instance),
//! entering one, which performances a token opens, and the operator's verbs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{DateTime, Utc};

use super::errors::RoomError;
use super::gate::{Challenge, ChallengeGate, GateError, Passage};
use super::id::RoomId;
use super::invite::{InviteCode, InvitePass, InviteRefusal, Invites};
use super::port::{RoomLines, RoomRepository};
use super::room::{Room, RoomChange, RoomEntry, RoomMode};
use crate::ids::{PerformanceId, UserId};
use crate::queue::{
    AccessError, ActiveToken, ClientKey, LineSettings, LineStatus, QueueControls, QueuePolicy,
    QueueService, QueueToken, QueueView, SettingsChange,
};

/// A room with its line as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomDetails {
    /// The room as stored.
    pub room: Room,
    /// Its line's settings in force and its size.
    pub line: LineStatus,
}

/// What this instance knows of the rooms, as of its last refresh.
#[derive(Default)]
struct Registry {
    rooms: HashMap<RoomId, Room>,
    /// Which room covers a performance; a performance not in it is the room `default`'s.
    covering: HashMap<PerformanceId, RoomId>,
    controls: HashMap<RoomId, Arc<dyn QueueControls>>,
    /// The read of the rooms last applied: an older read finishing later is not applied.
    applied_read: u64,
}

/// The rooms' use cases.
#[derive(Clone)]
pub struct RoomService {
    repository: Arc<dyn RoomRepository>,
    lines: Arc<dyn RoomLines>,
    queue: QueueService,
    default_controls: Arc<dyn QueueControls>,
    registry: Arc<RwLock<Registry>>,
    /// When a token of an unknown room last made this instance read the rooms.
    caught_up: Arc<Mutex<Option<DateTime<Utc>>>>,
    /// Numbers the reads of the rooms, so that only the newest is applied.
    reads: Arc<std::sync::atomic::AtomicU64>,
    /// The invite key and the ledger of used codes; `None` until [`RoomService::with_invites`]:
    /// no room can be made invite-only then.
    invites: Option<Invites>,
    /// The proof of work at the entrance, for rooms that ask for one.
    gate: Option<ChallengeGate>,
}

/// How often, at most, tokens of rooms this instance does not know make it read the rooms.
const CATCH_UP_EVERY: chrono::Duration = chrono::Duration::milliseconds(250);

impl std::fmt::Debug for RoomService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomService").finish_non_exhaustive()
    }
}

impl RoomService {
    /// The rooms kept in `repository`, their lines opened by `lines` and followed by `queue`,
    /// whose line of the room `default` is steered through `default_controls`. Knows no room
    /// but `default` until [`RoomService::refresh`].
    pub fn new(
        repository: Arc<dyn RoomRepository>,
        lines: Arc<dyn RoomLines>,
        queue: QueueService,
        default_controls: Arc<dyn QueueControls>,
    ) -> Self {
        Self {
            repository,
            lines,
            queue,
            default_controls,
            registry: Arc::default(),
            caught_up: Arc::default(),
            reads: Arc::default(),
            invites: None,
            gate: None,
        }
    }

    /// These rooms with `gate` at their entrances. Without one, a room that asks for a proof of
    /// work takes no entries (503): it fails closed.
    #[must_use]
    pub fn with_gate(self, gate: ChallengeGate) -> Self {
        Self {
            gate: Some(gate),
            ..self
        }
    }

    /// Lets rooms be invite-only, their codes verified and their uses recorded by `invites`.
    #[must_use]
    pub fn with_invites(self, invites: Invites) -> Self {
        Self {
            invites: Some(invites),
            ..self
        }
    }

    /// Refuses making `room` invite-only on an instance that cannot verify codes.
    fn check_entry(&self, room: &Room) -> Result<(), RoomError> {
        let has_key = self
            .invites
            .as_ref()
            .is_some_and(|invites| invites.key.is_some());
        if room.entry == RoomEntry::Invite && !has_key {
            return Err(crate::queue::InvalidSetting(
                "entry invite needs an invite key on the server (APP__AUTH__INVITE_KEY)".into(),
            )
            .into());
        }
        Ok(())
    }

    /// The waiting-room use cases over every room's line.
    pub fn queue(&self) -> &QueueService {
        &self.queue
    }

    fn registry(&self) -> std::sync::RwLockReadGuard<'_, Registry> {
        self.registry.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The settings a new room's line takes where the operator gave none: the configured ones of
    /// the room `default`.
    pub fn configured(&self) -> LineSettings {
        LineSettings::from_policy(&self.queue.policy())
    }

    fn policy_of(&self, room: &Room) -> QueuePolicy {
        let configured = self.queue.policy();
        room.line
            .map_or(configured, |line| line.applied_to(&configured))
    }

    /// Brings this instance in step with the rooms' store: opens the lines of new rooms (and of
    /// rooms whose settings changed), closes those of deleted ones. Every instance runs it about
    /// every half second, so that each follows an operator's change within a second.
    ///
    /// # Errors
    /// [`RoomError::Infrastructure`] when the store cannot answer; what was known stays.
    pub async fn refresh(&self) -> Result<(), RoomError> {
        let read = self
            .reads
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            .saturating_add(1);
        let stored = self.repository.list().await?;
        let mut rooms = HashMap::new();
        let mut covering = HashMap::new();
        for room in stored {
            for performance in &room.performances {
                covering.insert(*performance, room.id);
            }
            rooms.insert(room.id, room);
        }
        rooms
            .entry(RoomId::default_room())
            .or_insert_with(default_room);
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if read < registry.applied_read {
            // A newer read was applied meanwhile (refreshes run from the job, a change and a
            // request at once): this one is older news.
            return Ok(());
        }
        registry.applied_read = read;
        let gone: Vec<RoomId> = registry
            .rooms
            .keys()
            .filter(|id| !rooms.contains_key(*id))
            .copied()
            .collect();
        for id in gone {
            self.queue.close_room(&id);
            registry.controls.remove(&id);
        }
        for room in rooms.values().filter(|room| !room.id.is_default()) {
            let known = registry.rooms.get(&room.id);
            let opened = registry.controls.contains_key(&room.id);
            if !opened || known.is_none_or(|known| known.version != room.version) {
                let policy = self.policy_of(room);
                let settings = room
                    .line
                    .unwrap_or_else(|| LineSettings::from_policy(&policy));
                let stores = self.lines.open(&room.id, policy, room.mode, &settings);
                self.queue
                    .open_room(room.id, stores.queue, policy, room.mode);
                registry.controls.insert(room.id, stores.controls);
            }
        }
        registry.rooms = rooms;
        registry.covering = covering;
        Ok(())
    }

    /// Every room, `default` first, then by id.
    pub fn rooms(&self) -> Vec<Room> {
        let registry = self.registry();
        let mut rooms: Vec<Room> = registry.rooms.values().cloned().collect();
        if !registry.rooms.contains_key(&RoomId::default_room()) {
            rooms.push(default_room());
        }
        rooms.sort_by_key(|room| (!room.id.is_default(), room.id));
        rooms
    }

    /// The room `id`, as this instance last learned it; asks the store when it knows none (a
    /// room just created elsewhere).
    ///
    /// # Errors
    /// [`RoomError::NotFound`] for an unknown room; [`RoomError::Infrastructure`] when the store
    /// had to be asked and could not answer.
    pub async fn room(&self, id: &RoomId) -> Result<Room, RoomError> {
        if let Some(room) = self.known(id) {
            return Ok(room);
        }
        if self.may_catch_up() {
            self.refresh().await?;
        }
        self.known(id).ok_or(RoomError::NotFound(*id))
    }

    fn known(&self, id: &RoomId) -> Option<Room> {
        let registry = self.registry();
        match registry.rooms.get(id) {
            Some(room) => Some(room.clone()),
            None if id.is_default() => Some(default_room()),
            None => None,
        }
    }

    fn controls(&self, id: &RoomId) -> Option<Arc<dyn QueueControls>> {
        if id.is_default() {
            return Some(self.default_controls.clone());
        }
        self.registry().controls.get(id).cloned()
    }

    /// Whether any room but `default` exists (as this instance last read the rooms).
    pub fn has_rooms(&self) -> bool {
        self.registry().rooms.keys().any(|id| !id.is_default())
    }

    /// The room whose tokens open `performance`'s seat map, holds and payments.
    pub fn room_of(&self, performance: PerformanceId) -> RoomId {
        self.registry()
            .covering
            .get(&performance)
            .copied()
            .unwrap_or_default()
    }

    /// Lets `token` act on `performance` only when its room covers it.
    ///
    /// # Errors
    /// [`AccessError::TokenWrongRoom`] when another room covers the performance.
    pub fn check_scope(
        &self,
        token: &ActiveToken,
        performance: PerformanceId,
    ) -> Result<(), AccessError> {
        if self.room_of(performance) == token.room() {
            Ok(())
        } else {
            Err(AccessError::TokenWrongRoom {
                token_room: token.room(),
            })
        }
    }

    /// Reads the rooms again when a refused `token` names a room this instance does not follow
    /// yet (made on another instance since its last read), at most every [`CATCH_UP_EVERY`], so
    /// that a new room's tokens work on every instance at once, a deleted room's cannot make it
    /// read the store on every request, and a token of a known room costs nothing more. Answers
    /// whether the rooms were read, so that the token is worth judging again.
    async fn caught_up_for(&self, token: &QueueToken) -> bool {
        if self.queue.names_unknown_room(token) && self.may_catch_up() {
            // On failure the token is judged with what is known: a 401 for a room still unknown.
            return self.refresh().await.is_ok();
        }
        false
    }

    /// Whether a request naming a room this instance does not know may make it read the rooms
    /// now: at most every [`CATCH_UP_EVERY`], so that anyone naming rooms that do not exist
    /// cannot make every request read the store.
    fn may_catch_up(&self) -> bool {
        let now = self.queue.now();
        let mut last = self
            .caught_up
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now.signed_duration_since(at) < CATCH_UP_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// [`QueueService::authorize`], for a token of any room, also one made on another instance
    /// a moment ago.
    ///
    /// # Errors
    /// See [`QueueService::authorize`].
    pub async fn authorize(&self, token: QueueToken) -> Result<ActiveToken, AccessError> {
        match self.queue.authorize(token.clone()).await {
            Err(AccessError::TokenInvalid) if self.caught_up_for(&token).await => {
                self.queue.authorize(token).await
            }
            other => other,
        }
    }

    /// [`QueueService::poll`], for a token of any room, also one made on another instance a
    /// moment ago.
    ///
    /// # Errors
    /// See [`QueueService::poll`].
    pub async fn poll(&self, token: QueueToken) -> Result<QueueView, crate::queue::QueueError> {
        match self.queue.poll(token.clone()).await {
            Err(crate::queue::QueueError::TokenInvalid) if self.caught_up_for(&token).await => {
                self.queue.poll(token).await
            }
            other => other,
        }
    }

    /// [`QueueService::leave`], for a token of any room.
    ///
    /// # Errors
    /// See [`QueueService::leave`].
    pub async fn leave(&self, token: &QueueToken) -> Result<(), crate::queue::QueueError> {
        match self.queue.leave(token).await {
            Err(crate::queue::QueueError::TokenInvalid) if self.caught_up_for(token).await => {
                self.queue.leave(token).await
            }
            other => other,
        }
    }

    /// A proof-of-work challenge of room `id` at its difficulty now (at 0, a trivial one: the
    /// room asks for no proof).
    ///
    /// # Errors
    /// [`RoomError::NotFound`] for an unknown room; [`RoomError::Gate`] when no gate is wired.
    pub async fn challenge(&self, id: &RoomId) -> Result<Challenge, RoomError> {
        let room = self.room(id).await?;
        Ok(self.gate()?.issue(id, room.challenge_difficulty))
    }

    /// Lets an entry of room `id` through its gate: with no proof asked, at once; else with a
    /// good `proof`, which is spent. Call it right before [`RoomService::enter`].
    ///
    /// # Errors
    /// [`RoomError::NotFound`] for an unknown room; [`RoomError::Gate`] when the gate stays
    /// closed (see [`ChallengeGate::check`]).
    pub async fn pass_gate(&self, id: &RoomId, proof: Option<&str>) -> Result<Passage, RoomError> {
        let room = self.room(id).await?;
        if !room.challenge_difficulty.is_on() {
            return Ok(Passage::Open);
        }
        Ok(self
            .gate()?
            .check(id, room.challenge_difficulty, proof)
            .await?)
    }

    fn gate(&self) -> Result<&ChallengeGate, GateError> {
        self.gate.as_ref().ok_or_else(|| {
            GateError::Infrastructure(crate::InfrastructureError::unexpected(
                "no proof-of-work gate is wired to the rooms",
            ))
        })
    }

    /// Enters the line of room `id`.
    ///
    /// # Errors
    /// [`RoomError::NotFound`] for an unknown room, [`RoomError::Closed`] when it takes no new
    /// entries, [`RoomError::Queue`] when the line refuses or cannot answer.
    pub async fn enter(
        &self,
        id: &RoomId,
        user: Option<UserId>,
        client: &ClientKey,
    ) -> Result<QueueView, RoomError> {
        self.enter_with(id, user, client, &InvitePass::default())
            .await
    }

    /// [`RoomService::enter`], with the invite `pass` an invite-only room asks for (an open room
    /// ignores it). A code lets its account in once: it is recorded as used before the entry
    /// and forgotten again when the entry fails, so an outage does not burn it. Sent again by
    /// its account while that account has a live place in the room (a reload), it hands that
    /// place back, as entering again with a `userId` does; any other second use is refused.
    ///
    /// # Errors
    /// As [`RoomService::enter`]; in an invite-only room also [`RoomError::InviteRequired`]
    /// without a code or an account, [`RoomError::InviteInvalid`] for a code that does not let
    /// this account in (nothing is recorded then).
    pub async fn enter_with(
        &self,
        id: &RoomId,
        user: Option<UserId>,
        client: &ClientKey,
        pass: &InvitePass,
    ) -> Result<QueueView, RoomError> {
        let room = self.room(id).await?;
        let now = self.queue.now();
        if !room.takes_entries(now) {
            // People already in keep their places: a user with a live place gets it back.
            if let Some(user) = user {
                if let Some(view) = self.queue.rejoin_room(id, user).await? {
                    return Ok(view);
                }
            }
            let opens_at = self
                .queue
                .room_settings(id)
                .and_then(|line| line.opens_at)
                .filter(|at| *at > now);
            return Err(RoomError::Closed {
                room: *id,
                opens_at,
            });
        }
        if room.entry != RoomEntry::Invite {
            return self.enter_line(id, user, client).await;
        }
        let (Some(code), Some(account)) = (pass.code.as_deref(), pass.account.as_ref()) else {
            return Err(RoomError::InviteRequired(*id));
        };
        let invites = self.invites.as_ref();
        let key = invites
            .and_then(|invites| invites.key.as_ref())
            .ok_or(InviteRefusal::NoKey)?;
        let invite = key.verify(&InviteCode::parse(code)?, id, account, now)?;
        let ledger = invites.map(|invites| invites.ledger.clone());
        let ledger = ledger.ok_or(InviteRefusal::NoKey)?;
        if !ledger.claim(id, &invite.nonce, invite.expires_at).await? {
            // Used before: a reload of its account gets its live place back, entering nobody.
            if let Some(user) = user {
                if let Some(view) = self.queue.rejoin_room(id, user).await? {
                    return Ok(view);
                }
            }
            return Err(InviteRefusal::Used.into());
        }
        let entered = self.enter_line(id, user, client).await;
        if entered.is_err() {
            // The entry failed (the line's store down, the client over its rate): the code stays
            // good. Should the ledger not answer either, it stays used until it expires.
            let _ = ledger.release(id, &invite.nonce).await;
        }
        entered
    }

    async fn enter_line(
        &self,
        id: &RoomId,
        user: Option<UserId>,
        client: &ClientKey,
    ) -> Result<QueueView, RoomError> {
        if id.is_default() {
            return Ok(self.queue.enter_queue(user, client).await?);
        }
        match self.queue.enter_room(id, user, client).await {
            Err(crate::queue::QueueError::RoomUnknown) => Err(RoomError::NotFound(*id)),
            other => Ok(other?),
        }
    }

    /// The room `id` and its line.
    ///
    /// # Errors
    /// [`RoomError::NotFound`] for an unknown room; [`RoomError::Queue`] when the line's store
    /// cannot answer.
    pub async fn details(&self, id: &RoomId) -> Result<RoomDetails, RoomError> {
        let room = self.room(id).await?;
        let controls = self.controls(id).ok_or(RoomError::NotFound(*id))?;
        let line = controls.status().await?;
        Ok(RoomDetails { room, line })
    }

    /// Creates `room` and opens its line with the room's settings.
    ///
    /// # Errors
    /// [`RoomError::Invalid`] for settings that cannot be, [`RoomError::Exists`],
    /// [`RoomError::UnknownPerformance`], [`RoomError::PerformanceTaken`] as the store says;
    /// [`RoomError::Queue`] when the line's store cannot take the settings (the room exists
    /// then, and its line takes them at the next change).
    pub async fn create(&self, room: Room) -> Result<RoomDetails, RoomError> {
        room.check()?;
        self.check_entry(&room)?;
        if room.id.is_default() {
            return Err(RoomError::Exists(room.id));
        }
        let line = room.line.unwrap_or_else(|| self.configured());
        // Versions start at the creation time, so that a room deleted and created again under
        // the same id between two reads of an instance is still seen as changed there.
        let room = Room {
            line: Some(line),
            version: self.queue.now().timestamp_millis().max(1),
            ..room
        };
        self.refresh().await?;
        if self.known(&room.id).is_some() {
            return Err(RoomError::Exists(room.id));
        }
        // The line's settings first, then the room: an instance that opens the line at its next
        // read of the rooms finds them in force. The line may outlive a room of the same id
        // deleted before (its store keeps it until it empties): these settings replace its.
        let stores = self
            .lines
            .open(&room.id, self.policy_of(&room), room.mode, &line);
        let (_, after) = stores
            .controls
            .change(&self.queue.seeded(SettingsChange::replacing(&line)))
            .await?;
        self.repository.create(&room).await?;
        self.refresh().await?;
        self.queue.settings_changed(&room.id, after);
        self.details(&room.id).await
    }

    /// Makes `change` to the room `id`; every instance follows within a second.
    ///
    /// # Errors
    /// [`RoomError::NotFound`], [`RoomError::Invalid`] (also for a mode the room `default`
    /// cannot take, or a room changed meanwhile), [`RoomError::UnknownPerformance`],
    /// [`RoomError::PerformanceTaken`]; [`RoomError::Queue`] when the line's store cannot
    /// answer.
    pub async fn change(&self, id: &RoomId, change: &RoomChange) -> Result<RoomDetails, RoomError> {
        self.refresh().await?;
        let room = self.room(id).await?;
        if id.is_default() && change.mode == Some(RoomMode::Passthrough) {
            return Err(crate::queue::InvalidSetting(
                "the room default cannot be passthrough; create a room for that".into(),
            )
            .into());
        }
        let changed = change.applied_to(&room)?;
        if change.entry.is_some() {
            self.check_entry(&changed)?;
        }
        let controls = self.controls(id).ok_or(RoomError::NotFound(*id))?;
        // The line's store first: it may refuse (an opening while the last draw's places are
        // still admitted); the rooms' store then, undoing the line's change if it refuses (a
        // performance unknown or in another room, or the room changed meanwhile).
        let before = if change.line.is_empty() {
            None
        } else {
            let (before, after) = controls.change(&self.queue.seeded(change.line)).await?;
            self.queue.settings_changed(id, after);
            Some(before)
        };
        if let Err(refused) = self.repository.update(&changed).await {
            if let Some(before) = before {
                let restore = self.queue.seeded(SettingsChange::replacing(&before));
                if let Ok((_, restored)) = controls.change(&restore).await {
                    self.queue.settings_changed(id, restored);
                }
            }
            return Err(refused);
        }
        self.refresh().await?;
        self.details(id).await
    }

    /// Deletes the room `id` when nobody waits or shops in it.
    ///
    /// # Errors
    /// [`RoomError::NotFound`]; [`RoomError::Busy`] for the room `default` or a room with
    /// people in it; [`RoomError::Queue`] when its line's store cannot answer.
    pub async fn delete(&self, id: &RoomId) -> Result<(), RoomError> {
        if id.is_default() {
            return Err(RoomError::Busy(*id));
        }
        let details = self.details(id).await?;
        // The store counts a place as waiting until the front passes it, which in a paused
        // room is never: those this instance knows to have left are not people waiting. A
        // leave it has not learned of yet only makes the room look busy, never empty.
        let waiting = details
            .line
            .waiting
            .saturating_sub(self.queue.room_left_behind(id));
        if waiting > 0 || details.line.active > 0 {
            return Err(RoomError::Busy(*id));
        }
        if !self.repository.delete(id).await? {
            return Err(RoomError::NotFound(*id));
        }
        // The room is gone; its line is only forgotten (a room made again under this id starts
        // a line of its own). Should the store not answer now, the keys stay: harmless.
        if let Some(controls) = self.controls(id) {
            let _ = controls.clear().await;
        }
        self.refresh().await
    }

    /// Revokes `token` of room `id` (401 afterwards); a token of another room is left alone.
    ///
    /// # Errors
    /// [`RoomError::NotFound`] for an unknown room; [`RoomError::Queue`] when the line's store
    /// cannot answer.
    pub async fn revoke(&self, id: &RoomId, token: &QueueToken) -> Result<bool, RoomError> {
        self.room(id).await?;
        Ok(self.queue.revoke_in(id, token).await?)
    }
}

/// The room `default` as it is before an operator names or changes it.
fn default_room() -> Room {
    Room {
        id: RoomId::default_room(),
        name: super::room::RoomName::of_default_room(),
        performances: Vec::new(),
        mode: RoomMode::Fifo,
        entry: super::room::RoomEntry::Open,
        closes_at: None,
        challenge_difficulty: super::room::ChallengeDifficulty::default(),
        line: None,
        version: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::queue::{
        DrawSeed, Entered, FixedSeed, MockQueueControls, MockWaitingQueue, QueueError, SigningKey,
        Ticket, TicketState, TokenKeys,
    };
    use crate::rooms::{
        Invite, InviteAccount, InviteKey, InviteLedger, InviteNonce, MockRoomLines,
        MockRoomRepository,
    };
    use crate::testing::invites::InMemoryInviteLedger;
    use crate::testing::store::ManualClock;
    use crate::InfrastructureError;

    const KEY: &[u8] = &[3; 32];

    fn user() -> UserId {
        UserId::new(7).expect("a user id")
    }

    /// The rooms' use cases with the room `default` invite-only, its line in `line`, used
    /// invites in `ledger`.
    async fn service(line: MockWaitingQueue, ledger: Arc<InMemoryInviteLedger>) -> RoomService {
        let policy = QueuePolicy {
            max_active: NonZeroU32::MIN,
            admit_per_second: NonZeroU32::MIN,
            active_ttl: Duration::from_secs(600),
            waiting_idle_timeout: Duration::from_secs(60),
            entry_rate_per_client: None,
        };
        let keys = TokenKeys::new(SigningKey::new(vec![1; 32]).expect("a key"), None);
        let queue = QueueService::new(
            Arc::new(line),
            keys,
            policy,
            Arc::new(ManualClock::starting_now()),
            Arc::new(FixedSeed(DrawSeed::from_bytes([0; 32]))),
        );
        let mut repository = MockRoomRepository::new();
        repository.expect_list().returning(|| {
            Ok(vec![Room {
                entry: RoomEntry::Invite,
                ..default_room()
            }])
        });
        let rooms = RoomService::new(
            Arc::new(repository),
            Arc::new(MockRoomLines::new()),
            queue,
            Arc::new(MockQueueControls::new()),
        )
        .with_invites(Invites::new(
            Some(InviteKey::new(KEY).expect("a key")),
            ledger,
        ));
        rooms.refresh().await.expect("the rooms read");
        rooms
    }

    fn pass(nonce: u8) -> (InvitePass, InviteNonce) {
        let nonce = InviteNonce::from_random([nonce; 16]);
        let account = InviteAccount::new("7").expect("an account");
        let invite = Invite::new(
            RoomId::default_room(),
            account.clone(),
            Utc::now() + chrono::Duration::hours(1),
            nonce.clone(),
        );
        let code = InviteKey::new(KEY).expect("a key").sign(&invite);
        let pass = InvitePass {
            code: Some(code.to_string()),
            account: Some(account),
        };
        (pass, nonce)
    }

    fn entered() -> Entered {
        Entered {
            ticket: Ticket {
                epoch: 1,
                seq: 1,
                user: Some(user()),
            },
            state: TicketState::Waiting { position: 1 },
            admitted_now: false,
            opens_at: None,
        }
    }

    #[tokio::test]
    async fn an_entry_that_fails_leaves_the_code_unused() {
        let mut line = MockWaitingQueue::new();
        line.expect_enter()
            .returning(|_, _| Err(InfrastructureError::unavailable("down").into()));
        let ledger = Arc::new(InMemoryInviteLedger::default());
        let rooms = service(line, ledger.clone()).await;
        let (pass, nonce) = pass(1);
        let failed = rooms
            .enter_with(
                &RoomId::default_room(),
                Some(user()),
                &ClientKey::new("c"),
                &pass,
            )
            .await;
        assert!(
            matches!(failed, Err(RoomError::Queue(QueueError::Infrastructure(_)))),
            "{failed:?}"
        );
        let until = Utc::now() + chrono::Duration::hours(1);
        assert!(
            ledger
                .claim(&RoomId::default_room(), &nonce, until)
                .await
                .expect("answers"),
            "the code was released"
        );
    }

    #[tokio::test]
    async fn a_used_code_hands_back_a_live_place_and_is_refused_without_one() {
        let mut line = MockWaitingQueue::new();
        line.expect_enter().times(1).returning(|_, _| Ok(entered()));
        let mut rejoins = 0;
        line.expect_rejoin().times(2).returning(move |_| {
            rejoins += 1;
            // First the reload, while the place is live; then after it ended.
            Ok((rejoins == 1).then(entered))
        });
        let rooms = service(line, Arc::new(InMemoryInviteLedger::default())).await;
        let (pass, _) = pass(2);
        let (default, client) = (RoomId::default_room(), ClientKey::new("c"));
        let enter = || rooms.enter_with(&default, Some(user()), &client, &pass);
        let first = enter().await.expect("a good code enters");
        let again = enter().await.expect("a reload gets the place back");
        assert_eq!(again.token, first.token);
        assert_eq!(
            enter().await.map(|view| view.token),
            Err(RoomError::InviteInvalid(InviteRefusal::Used))
        );
    }

    #[tokio::test]
    async fn without_a_code_or_an_account_an_invite_room_is_required() {
        let rooms = service(
            MockWaitingQueue::new(),
            Arc::new(InMemoryInviteLedger::default()),
        )
        .await;
        let (pass, _) = pass(3);
        let default = RoomId::default_room();
        let client = ClientKey::new("c");
        let no_code = InvitePass {
            code: None,
            ..pass.clone()
        };
        let no_account = InvitePass {
            account: None,
            ..pass
        };
        for pass in [no_code, no_account] {
            assert_eq!(
                rooms
                    .enter_with(&default, Some(user()), &client, &pass)
                    .await
                    .map(|view| view.token),
                Err(RoomError::InviteRequired(default))
            );
        }
    }
}
