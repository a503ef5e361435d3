//! Money: whole won, never negative.

use std::fmt;

/// An amount of won that cannot be negative (a price, a balance, a payment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Won(i64);

/// A negative amount where only zero or more makes sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an amount of money cannot be negative, got {0}")]
pub struct NegativeAmount(pub i64);

impl Won {
    /// Zero won.
    pub const ZERO: Won = Won(0);

    /// Validates `amount`.
    ///
    /// # Errors
    /// [`NegativeAmount`] when `amount < 0`.
    pub fn new(amount: i64) -> Result<Self, NegativeAmount> {
        if amount < 0 {
            Err(NegativeAmount(amount))
        } else {
            Ok(Self(amount))
        }
    }

    /// The number of won.
    pub fn get(self) -> i64 {
        self.0
    }

    /// The sum, or the largest amount when it would not fit (no balance covers that).
    pub fn saturating_add(self, other: Won) -> Won {
        Won(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Won {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} won", self.0)
    }
}

/// The amount of one balance charge: 1 ..= 10,000,000 won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChargeAmount(Won);

/// A charge amount outside the accepted range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("amount must be between 1 and 10000000 won, got {0}")]
pub struct ChargeAmountOutOfRange(pub i64);

impl ChargeAmount {
    /// The smallest charge accepted.
    pub const MIN: i64 = 1;
    /// The largest charge accepted in one request.
    pub const MAX: i64 = 10_000_000;

    /// Validates `amount`.
    ///
    /// # Errors
    /// [`ChargeAmountOutOfRange`] outside `MIN..=MAX`.
    pub fn new(amount: i64) -> Result<Self, ChargeAmountOutOfRange> {
        if (Self::MIN..=Self::MAX).contains(&amount) {
            Ok(Self(Won(amount)))
        } else {
            Err(ChargeAmountOutOfRange(amount))
        }
    }

    /// The amount as money.
    pub fn won(self) -> Won {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_money_cannot_be_built() {
        assert_eq!(Won::new(-1), Err(NegativeAmount(-1)));
        assert_eq!(Won::new(0), Ok(Won::ZERO));
    }

    #[test]
    fn charge_amounts_are_bounded_on_both_sides() {
        assert!(ChargeAmount::new(0).is_err());
        assert!(ChargeAmount::new(1).is_ok());
        assert!(ChargeAmount::new(10_000_000).is_ok());
        assert!(ChargeAmount::new(10_000_001).is_err());
    }
}
