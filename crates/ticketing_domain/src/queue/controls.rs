//! What an operator steers while a sale runs: pause, rate, capacity, session length, and a
//! scheduled opening with a fair draw. Kept by the store, so every instance follows and the
//! settings outlive restarts; the configuration gives the values until an operator changes them.

use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::draw::DrawSeed;
use super::errors::QueueError;
use super::policy::QueuePolicy;
use super::token::Seq;

/// The line's settings in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSettings {
    /// Entries still wait; nobody is admitted; ACTIVE tokens keep working.
    pub paused: bool,
    /// Most admissions per second, all instances together.
    pub admit_per_second: NonZeroU32,
    /// Most ACTIVE tokens at once.
    pub max_active: NonZeroU32,
    /// Life of an ACTIVE token.
    pub active_ttl: Duration,
    /// While set, the line is a pre-queue until then; at it, a fair draw orders everyone who
    /// entered before.
    pub opens_at: Option<DateTime<Utc>>,
}

impl LineSettings {
    /// The settings the configuration gives, before any operator change.
    pub fn from_policy(policy: &QueuePolicy) -> Self {
        Self {
            paused: false,
            admit_per_second: policy.admit_per_second,
            max_active: policy.max_active,
            active_ttl: policy.active_ttl,
            opens_at: None,
        }
    }

    /// `policy` with these settings in force.
    pub fn applied_to(&self, policy: &QueuePolicy) -> QueuePolicy {
        QueuePolicy {
            admit_per_second: self.admit_per_second,
            max_active: self.max_active,
            active_ttl: self.active_ttl,
            ..*policy
        }
    }
}

/// A setting out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub String);

/// Ranges the admin API accepts.
pub const ADMIT_PER_SECOND_RANGE: std::ops::RangeInclusive<u64> = 1..=1_000_000;
/// The values the admin API accepts for `maxActive` (ACTIVE tokens at once).
pub const MAX_ACTIVE_RANGE: std::ops::RangeInclusive<u64> = 1..=10_000_000;
/// The values the admin API accepts for `activeTtlSeconds` (an ACTIVE token's life, in seconds).
pub const ACTIVE_TTL_SECONDS_RANGE: std::ops::RangeInclusive<u64> = 10..=86_400;

/// An operator's change: any subset of the settings, each checked against its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SettingsChange {
    paused: Option<bool>,
    admit_per_second: Option<NonZeroU32>,
    max_active: Option<NonZeroU32>,
    active_ttl: Option<Duration>,
    /// `Some(None)` cancels a scheduled opening.
    opens_at: Option<Option<DateTime<Utc>>>,
    /// The seed of the scheduled opening's draw, kept unless the store keeps one already.
    draw_seed: Option<DrawSeed>,
}

fn in_range(
    name: &str,
    value: i64,
    range: &std::ops::RangeInclusive<u64>,
) -> Result<u64, InvalidSetting> {
    u64::try_from(value)
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| {
            InvalidSetting(format!(
                "{name} must be between {} and {}, not {value}",
                range.start(),
                range.end()
            ))
        })
}

fn non_zero(value: u64) -> Result<NonZeroU32, InvalidSetting> {
    u32::try_from(value)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| InvalidSetting(format!("{value} is out of range")))
}

impl SettingsChange {
    /// Checks each given value; `now` is when the change is asked for.
    ///
    /// # Errors
    /// [`InvalidSetting`] naming the first value out of range, or an opening not in the future.
    pub fn new(
        paused: Option<bool>,
        admit_per_second: Option<i64>,
        max_active: Option<i64>,
        active_ttl_seconds: Option<i64>,
        opens_at: Option<Option<DateTime<Utc>>>,
        now: DateTime<Utc>,
    ) -> Result<Self, InvalidSetting> {
        let admit_per_second = admit_per_second
            .map(|v| in_range("admitPerSecond", v, &ADMIT_PER_SECOND_RANGE).and_then(non_zero))
            .transpose()?;
        let max_active = max_active
            .map(|v| in_range("maxActive", v, &MAX_ACTIVE_RANGE).and_then(non_zero))
            .transpose()?;
        let active_ttl = active_ttl_seconds
            .map(|v| in_range("activeTtlSeconds", v, &ACTIVE_TTL_SECONDS_RANGE))
            .transpose()?
            .map(Duration::from_secs);
        if let Some(Some(at)) = opens_at {
            if at <= now {
                return Err(InvalidSetting(format!(
                    "opensAt must be in the future (or null), not {}",
                    at.to_rfc3339()
                )));
            }
        }
        Ok(Self {
            paused,
            admit_per_second,
            max_active,
            active_ttl,
            opens_at,
            draw_seed: None,
        })
    }

    /// A change that sets every setting to `settings`' (a new room's line, or one restored).
    pub fn replacing(settings: &LineSettings) -> Self {
        Self {
            paused: Some(settings.paused),
            admit_per_second: Some(settings.admit_per_second),
            max_active: Some(settings.max_active),
            active_ttl: Some(settings.active_ttl),
            opens_at: Some(settings.opens_at),
            draw_seed: None,
        }
    }

    /// A change that only pauses or resumes.
    pub fn pause(paused: bool) -> Self {
        Self {
            paused: Some(paused),
            ..Self::default()
        }
    }

    /// This change with `seed` for the draw of the opening it schedules; a change that
    /// schedules none is left as it is. The store keeps the seed an opening already has, so
    /// moving a scheduled opening keeps its published commitment.
    pub fn with_draw_seed(self, seed: DrawSeed) -> Self {
        if self.schedules_opening() {
            Self {
                draw_seed: Some(seed),
                ..self
            }
        } else {
            self
        }
    }

    /// Whether the change schedules an opening (or moves a scheduled one).
    pub fn schedules_opening(&self) -> bool {
        matches!(self.opens_at, Some(Some(_)))
    }

    /// The seed for the draw of the opening this change schedules, if given.
    pub fn draw_seed(&self) -> Option<DrawSeed> {
        self.draw_seed
    }

    /// Whether the change leaves every setting as it is.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `settings` with this change made.
    pub fn applied_to(&self, settings: &LineSettings) -> LineSettings {
        LineSettings {
            paused: self.paused.unwrap_or(settings.paused),
            admit_per_second: self.admit_per_second.unwrap_or(settings.admit_per_second),
            max_active: self.max_active.unwrap_or(settings.max_active),
            active_ttl: self.active_ttl.unwrap_or(settings.active_ttl),
            opens_at: self.opens_at.unwrap_or(settings.opens_at),
        }
    }

    /// Whether to pause (`true`) or resume (`false`), if given.
    pub fn paused(&self) -> Option<bool> {
        self.paused
    }

    /// The new most admissions per second, if given.
    pub fn admit_per_second(&self) -> Option<NonZeroU32> {
        self.admit_per_second
    }

    /// The new most ACTIVE tokens at once, if given.
    pub fn max_active(&self) -> Option<NonZeroU32> {
        self.max_active
    }

    /// The new life of an ACTIVE token, if given.
    pub fn active_ttl(&self) -> Option<Duration> {
        self.active_ttl
    }

    /// The new opening, if given: `Some(None)` cancels a scheduled one.
    pub fn opens_at(&self) -> Option<Option<DateTime<Utc>>> {
        self.opens_at
    }
}

/// The line as an operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineStatus {
    /// The settings in force.
    pub settings: LineSettings,
    /// Places handed out and not yet decided.
    pub waiting: u64,
    /// ACTIVE tickets.
    pub active: u64,
}

/// The places of a scheduled opening's draw: every place after `after` up to `through`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawRange {
    /// The last place before the draw (not drawn).
    pub after: Seq,
    /// The last place drawn.
    pub through: Seq,
}

impl DrawRange {
    /// How many places are drawn.
    pub fn len(&self) -> u64 {
        self.through.saturating_sub(self.after)
    }

    /// Whether no place is drawn.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a change was refused by the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The change was refused: a value out of range, or a new opening scheduled while the places of
    /// the last draw are still being admitted.
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
    /// The store cannot answer.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The operator's side of the line's store.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait QueueControls: Send + Sync {
    /// The settings in force and the line's size.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    async fn status(&self) -> Result<LineStatus, QueueError>;

    /// Forgets the whole line: every place, the settings, the draw. The next entry starts a
    /// new line (a new epoch, so no old token comes back to life). For a room deleted with
    /// nobody in it.
    ///
    /// # Errors
    /// [`QueueError::Infrastructure`] when the store cannot answer.
    async fn clear(&self) -> Result<(), QueueError>;

    /// Makes `change` and answers the settings before and after it, atomically.
    ///
    /// # Errors
    /// [`ControlError::Invalid`] when a new opening is scheduled while the places of the last
    /// draw are still being admitted; [`ControlError::Queue`] when the store cannot answer.
    async fn change(
        &self,
        change: &SettingsChange,
    ) -> Result<(LineSettings, LineSettings), ControlError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_900_000_000, 0).expect("valid")
    }

    #[test]
    fn values_out_of_range_are_refused_with_the_reason() {
        let refused = |rate, max, ttl| SettingsChange::new(None, rate, max, ttl, None, now());
        assert!(refused(Some(0), None, None).is_err());
        assert!(refused(Some(-5), None, None).is_err());
        assert!(refused(None, Some(0), None).is_err());
        assert!(refused(None, None, Some(5)).is_err());
        assert!(refused(None, None, Some(86_401)).is_err());
        let message = refused(None, Some(0), None).expect_err("refused").0;
        assert!(message.contains("maxActive"), "{message}");
        assert!(refused(Some(50), Some(500), Some(300)).is_ok());
    }

    #[test]
    fn an_opening_in_the_past_is_refused_and_null_cancels() {
        let past = now() - chrono::Duration::seconds(1);
        assert!(SettingsChange::new(None, None, None, None, Some(Some(past)), now()).is_err());
        let cancel = SettingsChange::new(None, None, None, None, Some(None), now()).expect("ok");
        let scheduled = LineSettings {
            paused: false,
            admit_per_second: NonZeroU32::new(1).expect("non-zero"),
            max_active: NonZeroU32::new(1).expect("non-zero"),
            active_ttl: Duration::from_secs(60),
            opens_at: Some(now()),
        };
        assert_eq!(cancel.applied_to(&scheduled).opens_at, None);
    }

    #[test]
    fn a_change_keeps_what_it_does_not_name() {
        let settings = LineSettings {
            paused: false,
            admit_per_second: NonZeroU32::new(100).expect("non-zero"),
            max_active: NonZeroU32::new(1000).expect("non-zero"),
            active_ttl: Duration::from_secs(600),
            opens_at: None,
        };
        let changed = SettingsChange::pause(true).applied_to(&settings);
        assert_eq!(
            changed,
            LineSettings {
                paused: true,
                ..settings
            }
        );
    }
}
