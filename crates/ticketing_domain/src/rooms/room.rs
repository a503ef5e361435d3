//! A waiting room: a line with its own settings for a set of performances.

use chrono::{DateTime, Utc};

use super::id::RoomId;
use crate::ids::PerformanceId;
use crate::queue::{InvalidSetting, LineSettings, SettingsChange};

/// How a room admits people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoomMode {
    /// First come, first served; a scheduled opening draws the order of those who came before.
    #[default]
    Fifo,
    /// Admissions in random order: whenever the front has passed the last batch, everyone
    /// waiting is drawn in a uniformly random order and admitted through it (at the room's rate),
    /// before those who arrive later, who make the next batch.
    Random,
    /// Nobody waits: every entry is ACTIVE at once, the rate and capacity are not applied.
    Passthrough,
    /// New entries are refused; people already in keep their places and sessions.
    Reject,
}

impl RoomMode {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomMode::Fifo => "fifo",
            RoomMode::Random => "random",
            RoomMode::Passthrough => "passthrough",
            RoomMode::Reject => "reject",
        }
    }

    /// Reads the contract's spelling.
    ///
    /// # Errors
    /// [`InvalidSetting`] for anything else.
    pub fn parse(text: &str) -> Result<Self, InvalidSetting> {
        match text {
            "fifo" => Ok(RoomMode::Fifo),
            "random" => Ok(RoomMode::Random),
            "passthrough" => Ok(RoomMode::Passthrough),
            "reject" => Ok(RoomMode::Reject),
            other => Err(InvalidSetting(format!(
                "mode must be fifo, random, passthrough or reject, not {other:?}"
            ))),
        }
    }
}

/// Who may enter a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoomEntry {
    /// Anyone.
    #[default]
    Open,
    /// Only entries with an invite code signed for that account and room, each code once
    /// (presales).
    Invite,
}

impl RoomEntry {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomEntry::Open => "open",
            RoomEntry::Invite => "invite",
        }
    }

    /// Reads the contract's spelling.
    ///
    /// # Errors
    /// [`InvalidSetting`] for anything else.
    pub fn parse(text: &str) -> Result<Self, InvalidSetting> {
        match text {
            "open" => Ok(RoomEntry::Open),
            "invite" => Ok(RoomEntry::Invite),
            other => Err(InvalidSetting(format!(
                "entry must be open or invite, not {other:?}"
            ))),
        }
    }
}

/// A room's display name: 1 to 200 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomName(String);

impl RoomName {
    /// The longest name, in characters.
    pub const MAX_CHARS: usize = 200;

    /// # Errors
    /// [`InvalidSetting`] when blank or too long.
    pub fn new(text: &str) -> Result<Self, InvalidSetting> {
        let chars = text.chars().count();
        if text.trim().is_empty() || chars > Self::MAX_CHARS {
            return Err(InvalidSetting(format!(
                "name must be 1 to {} characters, not blank",
                Self::MAX_CHARS
            )));
        }
        Ok(Self(text.to_string()))
    }

    /// The room `default`'s name until an operator gives it another.
    pub(crate) fn of_default_room() -> Self {
        Self("Default".into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The proof-of-work difficulty asked at entry: the largest number an ALTCHA challenge may hide
/// (`maxnumber`), so a client tries about half of it in SHA-256 hashes. 0 is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct ChallengeDifficulty(u32);

impl ChallengeDifficulty {
    /// The highest difficulty: about 10 s of a phone's CPU in a browser. Above it nobody gets in
    /// within a sale's patience, so a larger value is a typo, not a policy.
    pub const MAX: u32 = 10_000_000;

    /// # Errors
    /// [`InvalidSetting`] below 0 or above [`ChallengeDifficulty::MAX`].
    pub fn new(value: i64) -> Result<Self, InvalidSetting> {
        u32::try_from(value)
            .ok()
            .filter(|value| *value <= Self::MAX)
            .map(Self)
            .ok_or_else(|| {
                InvalidSetting(format!(
                    "challengeDifficulty must be 0 (off) to {}, not {value}",
                    Self::MAX
                ))
            })
    }

    /// The difficulty.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Whether entries need a proof of work.
    pub fn is_on(self) -> bool {
        self.0 > 0
    }
}

/// Where a room stands, as the public sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomStatus {
    /// Entries are taken and admitted.
    Open,
    /// An opening is scheduled: entries wait for its draw.
    Prequeue,
    /// Entries wait; nobody is admitted.
    Paused,
    /// New entries are refused (mode `reject`, or past `closesAt`).
    Closed,
}

impl RoomStatus {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomStatus::Open => "OPEN",
            RoomStatus::Prequeue => "PREQUEUE",
            RoomStatus::Paused => "PAUSED",
            RoomStatus::Closed => "CLOSED",
        }
    }
}

/// A waiting room as stored: the source of truth for its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Its id.
    pub id: RoomId,
    /// Its display name.
    pub name: RoomName,
    /// The performances whose seat maps, holds and payments its tokens open. Empty for the room
    /// `default`, which covers every performance no other room covers.
    pub performances: Vec<PerformanceId>,
    /// How it admits.
    pub mode: RoomMode,
    /// Who may enter.
    pub entry: RoomEntry,
    /// From then on new entries are refused.
    pub closes_at: Option<DateTime<Utc>>,
    /// Proof of work asked at entry.
    pub challenge_difficulty: ChallengeDifficulty,
    /// The line's settings as last set: what the line starts with, and comes back to when its
    /// store lost it. `None` for the room `default`, whose line keeps the configured settings
    /// and an operator's changes in its store (as the v2 line did).
    pub line: Option<LineSettings>,
    /// Bumped by every change, so that every instance notices one.
    pub version: i64,
}

impl Room {
    /// Where the room stands at `now`, given the line settings in force.
    pub fn status(&self, line: &LineSettings, now: DateTime<Utc>) -> RoomStatus {
        if !self.takes_entries(now) {
            RoomStatus::Closed
        } else if line.paused {
            RoomStatus::Paused
        } else if line.opens_at.is_some_and(|at| at > now) {
            RoomStatus::Prequeue
        } else {
            RoomStatus::Open
        }
    }

    /// Whether new entries are taken at `now`.
    pub fn takes_entries(&self, now: DateTime<Utc>) -> bool {
        self.mode != RoomMode::Reject && self.closes_at.is_none_or(|at| now < at)
    }
}

/// An operator's change of a room: any subset of its settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoomChange {
    /// A new name.
    pub name: Option<RoomName>,
    /// The new set of performances.
    pub performances: Option<Vec<PerformanceId>>,
    /// A new mode.
    pub mode: Option<RoomMode>,
    /// Who may enter.
    pub entry: Option<RoomEntry>,
    /// `Some(None)` removes the closing time.
    pub closes_at: Option<Option<DateTime<Utc>>>,
    /// Proof of work asked at entry.
    pub challenge_difficulty: Option<ChallengeDifficulty>,
    /// The line's settings.
    pub line: SettingsChange,
}

impl RoomChange {
    /// `room` with this change made, its version bumped.
    ///
    /// # Errors
    /// [`InvalidSetting`] when the performances are listed twice, or the closing time would not
    /// come after the opening.
    pub fn applied_to(&self, room: &Room) -> Result<Room, InvalidSetting> {
        let changed = Room {
            id: room.id,
            name: self.name.clone().unwrap_or_else(|| room.name.clone()),
            performances: self
                .performances
                .clone()
                .unwrap_or_else(|| room.performances.clone()),
            mode: self.mode.unwrap_or(room.mode),
            entry: self.entry.unwrap_or(room.entry),
            closes_at: self.closes_at.unwrap_or(room.closes_at),
            challenge_difficulty: self
                .challenge_difficulty
                .unwrap_or(room.challenge_difficulty),
            line: room.line.map(|line| self.line.applied_to(&line)),
            version: room.version + 1,
        };
        changed.check()?;
        Ok(changed)
    }
}

impl Room {
    /// Checks what a single field cannot: no performance twice, the default room lists none,
    /// and a closing after the opening.
    ///
    /// # Errors
    /// [`InvalidSetting`] naming what is wrong.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = self.performances.iter().find(|p| !seen.insert(**p)) {
            return Err(InvalidSetting(format!(
                "performanceIds lists {twice} more than once"
            )));
        }
        if self.id.is_default() && !self.performances.is_empty() {
            return Err(InvalidSetting(
                "the room default covers every performance no other room covers; it lists none"
                    .into(),
            ));
        }
        if let (Some(opens), Some(closes)) = (self.line.and_then(|l| l.opens_at), self.closes_at) {
            if closes <= opens {
                return Err(InvalidSetting("closesAt must come after opensAt".into()));
            }
        }
        Ok(())
    }
}
