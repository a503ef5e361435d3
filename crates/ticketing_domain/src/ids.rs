//! Identifiers: positive numbers, validated once at the edge.

use std::fmt;

/// An identifier that is not a positive number in range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be a positive integer no larger than {max}, got {value}")]
pub struct InvalidId {
    /// Which identifier was wrong, for the error message.
    pub kind: &'static str,
    /// The value received.
    pub value: i64,
    /// The largest value accepted.
    pub max: i64,
}

macro_rules! positive_id {
    ($(#[$meta:meta])* $name:ident, $repr:ty, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name($repr);

        impl $name {
            /// Validates `value`: it must be positive and fit the identifier's range.
            ///
            /// # Errors
            /// [`InvalidId`] when `value` is zero, negative or too large.
            pub fn new(value: i64) -> Result<Self, InvalidId> {
                let invalid = InvalidId { kind: $kind, value, max: <$repr>::MAX as i64 };
                if value <= 0 {
                    return Err(invalid);
                }
                <$repr>::try_from(value).map(Self).map_err(|_| invalid)
            }

            /// The number itself.
            pub fn get(self) -> $repr {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = InvalidId;
            fn try_from(value: i64) -> Result<Self, InvalidId> {
                Self::new(value)
            }
        }

        impl From<$name> for $repr {
            fn from(id: $name) -> $repr {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

positive_id!(
    /// A concert (an artist's show that may have several performances).
    ConcertId, i64, "concertId"
);
positive_id!(
    /// One performance (a date) of a concert.
    PerformanceId, i64, "performanceId"
);
positive_id!(
    /// A seat's number inside its performance, 1..=total seats.
    SeatNo, i32, "seatId"
);
positive_id!(
    /// A customer, owner of a wallet.
    UserId, i64, "userId"
);
positive_id!(
    /// A reservation (a hold on a seat, later confirmed by a payment).
    ReservationId, i64, "reservationId"
);
positive_id!(
    /// A recorded payment.
    PaymentId, i64, "paymentId"
);
positive_id!(
    /// An event of the outbox: unique, and growing in the order events were recorded.
    EventId, i64, "eventId"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_positive_id_is_accepted() {
        assert_eq!(ConcertId::new(1).map(ConcertId::get), Ok(1));
    }

    #[test]
    fn zero_and_negative_ids_are_rejected() {
        assert!(ConcertId::new(0).is_err());
        assert!(UserId::new(-7).is_err());
    }

    #[test]
    fn a_seat_number_beyond_its_range_is_rejected() {
        let too_large = i64::from(i32::MAX) + 1;
        let error = SeatNo::new(too_large).expect_err("out of range");
        assert_eq!(error.kind, "seatId");
        assert_eq!(
            SeatNo::new(i64::from(i32::MAX)).map(SeatNo::get),
            Ok(i32::MAX)
        );
    }
}
