//! The admission rules, as configured.

use std::num::NonZeroU32;
use std::time::Duration;

/// How the line admits people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Most ACTIVE tokens at once.
    pub max_active: NonZeroU32,
    /// Most admissions per second, all instances together.
    pub admit_per_second: NonZeroU32,
    /// Life of an ACTIVE token.
    pub active_ttl: Duration,
    /// A WAITING token not polled for this long is dropped.
    pub waiting_idle_timeout: Duration,
    /// Entries per second per client; `None` turns the limit off.
    pub entry_rate_per_client: Option<NonZeroU32>,
}

impl QueuePolicy {
    /// Whole seconds until a token at `position` is admitted if the rate were the only limit:
    /// position / rate, rounded up.
    pub fn wait_by_rate(&self, position: u64) -> u64 {
        position.div_ceil(u64::from(self.admit_per_second.get()))
    }

    /// The longest a waiting client should leave between two polls: well inside the idle
    /// timeout, so a client that follows the advice is never dropped.
    pub fn longest_poll_interval(&self) -> u64 {
        (self.waiting_idle_timeout.as_secs() / 3).clamp(1, 30)
    }

    /// How many places behind the front keep-alives are tracked: what the front can reach
    /// within two idle timeouts, at least 1,000. Further back a place's liveness does not matter
    /// yet (the front skips it if its holder is gone when it gets there), so polls from there
    /// cost the store nothing.
    pub fn keep_alive_window(&self) -> u64 {
        (2 * u64::from(self.admit_per_second.get()) * self.waiting_idle_timeout.as_secs()).max(1000)
    }

    /// When a client told to wait `wait_seconds` should poll next: rarely when far back, every
    /// second near the front, so polls spread by position instead of arriving together.
    pub fn poll_after(&self, wait_seconds: u64) -> u64 {
        (wait_seconds / 4).clamp(1, self.longest_poll_interval())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rate: u32, idle_seconds: u64) -> QueuePolicy {
        QueuePolicy {
            max_active: NonZeroU32::new(10).expect("non-zero"),
            admit_per_second: NonZeroU32::new(rate).expect("non-zero"),
            active_ttl: Duration::from_secs(600),
            waiting_idle_timeout: Duration::from_secs(idle_seconds),
            entry_rate_per_client: None,
        }
    }

    #[test]
    fn the_wait_by_rate_is_the_position_over_the_rate_rounded_up() {
        assert_eq!(policy(100, 60).wait_by_rate(0), 0);
        assert_eq!(policy(100, 60).wait_by_rate(1), 1);
        assert_eq!(policy(100, 60).wait_by_rate(100), 1);
        assert_eq!(policy(100, 60).wait_by_rate(101), 2);
        assert_eq!(policy(3, 60).wait_by_rate(7), 3);
    }

    #[test]
    fn keep_alives_are_tracked_within_two_idle_timeouts_of_admissions() {
        assert_eq!(policy(100, 60).keep_alive_window(), 12_000);
        assert_eq!(policy(1, 1).keep_alive_window(), 1000);
    }

    #[test]
    fn polls_spread_by_wait_and_stay_inside_the_idle_timeout() {
        let policy = policy(100, 60);
        assert_eq!(policy.poll_after(0), 1);
        assert_eq!(policy.poll_after(8), 2);
        assert_eq!(policy.poll_after(10_000), 20, "a third of the idle timeout");
        assert_eq!(self::policy(100, 1).poll_after(10_000), 1);
    }
}
