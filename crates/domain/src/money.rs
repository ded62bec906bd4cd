//! Money as whole øre in an `i64`, never floating point.
//!
//! Grants, refunds, invoices and budget reservations all add and compare amounts; integer øre
//! keeps every sum exact and every overflow visible. Display follows Norwegian convention:
//! `24 000,00 kr`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Øre per krone.
const ORE_PER_KRONE: i64 = 100;

/// An amount in øre (1/100 krone). Serializes as the integer number of øre.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(i64);

impl Money {
    /// Zero kroner.
    pub const ZERO: Money = Money(0);

    /// The upper bound of every amount about one case: an estimated cost, a max rate, a grant,
    /// an agreement price, an invoice, a claim, a payout, a reservation. 10 million kroner is far
    /// above any expert assignment (the max rate is about 24 000 kroner), and a sum of even a
    /// million such amounts stays far inside an `i64` and a PostgreSQL `bigint`.
    pub const MAX_CASE_AMOUNT: Money = Money(1_000_000_000);

    /// The upper bound of an appropriation: 100 billion kroner, above the whole of the
    /// ministry's chapter 2650 (which post 76 is a small part of). Sums over every year,
    /// account and county stay far inside an `i64`.
    pub const MAX_APPROPRIATION: Money = Money(10_000_000_000_000);

    /// An amount of `ore` øre.
    pub const fn from_ore(ore: i64) -> Self {
        Self(ore)
    }

    /// An amount of whole kroner; fails with [`DomainError::Overflow`] if it does not fit.
    pub fn from_kroner(kroner: i64) -> Result<Self, DomainError> {
        kroner
            .checked_mul(ORE_PER_KRONE)
            .map(Self)
            .ok_or(DomainError::Overflow)
    }

    /// The amount in øre.
    pub const fn ore(&self) -> i64 {
        self.0
    }

    /// `self + other`, or `None` on overflow.
    pub const fn checked_add(self, other: Money) -> Option<Money> {
        match self.0.checked_add(other.0) {
            Some(sum) => Some(Money(sum)),
            None => None,
        }
    }

    /// `self - other`, or `None` on overflow.
    pub const fn checked_sub(self, other: Money) -> Option<Money> {
        match self.0.checked_sub(other.0) {
            Some(difference) => Some(Money(difference)),
            None => None,
        }
    }

    /// The smaller of the two amounts (e.g. payout = min(claimed, granted)).
    pub const fn min(self, other: Money) -> Money {
        if self.0 <= other.0 { self } else { other }
    }

    /// True if the amount is above zero.
    pub const fn is_positive(&self) -> bool {
        self.0 > 0
    }

    /// The amount if it is above zero, otherwise [`DomainError::NotPositive`].
    pub fn require_positive(self) -> Result<Money, DomainError> {
        if self.is_positive() {
            Ok(self)
        } else {
            Err(DomainError::NotPositive)
        }
    }

    /// The amount if it is not above `max`, otherwise [`DomainError::AboveMaximum`].
    pub fn require_at_most(self, max: Money) -> Result<Money, DomainError> {
        if self <= max {
            Ok(self)
        } else {
            Err(DomainError::AboveMaximum { max })
        }
    }

    /// A case amount: above zero and at most [`Money::MAX_CASE_AMOUNT`].
    pub fn require_case_amount(self) -> Result<Money, DomainError> {
        self.require_positive()?
            .require_at_most(Money::MAX_CASE_AMOUNT)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let kroner = (magnitude / 100).to_string();
        let ore = magnitude % 100;
        let mut grouped = String::with_capacity(kroner.len() + kroner.len() / 3);
        for (index, digit) in kroner.chars().enumerate() {
            if index > 0 && (kroner.len() - index).is_multiple_of(3) {
                grouped.push(' ');
            }
            grouped.push(digit);
        }
        write!(f, "{sign}{grouped},{ore:02} kr")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kroner_convert_to_ore() {
        assert_eq!(Money::from_kroner(24_000), Ok(Money::from_ore(2_400_000)));
        assert_eq!(Money::from_kroner(0), Ok(Money::ZERO));
        assert_eq!(Money::from_kroner(-5).map(|m| m.ore()), Ok(-500));
    }

    #[test]
    fn case_amounts_and_appropriations_have_upper_bounds() {
        assert_eq!(
            Money::from_kroner(10_000_000).and_then(Money::require_case_amount),
            Ok(Money::MAX_CASE_AMOUNT)
        );
        assert_eq!(
            Money::from_ore(Money::MAX_CASE_AMOUNT.ore() + 1).require_case_amount(),
            Err(DomainError::AboveMaximum {
                max: Money::MAX_CASE_AMOUNT
            })
        );
        assert_eq!(
            Money::ZERO.require_case_amount(),
            Err(DomainError::NotPositive)
        );
        assert!(
            Money::from_ore(i64::MAX)
                .require_at_most(Money::MAX_APPROPRIATION)
                .is_err()
        );
        // A thousand years of the largest appropriation still fit in an i64.
        assert!(Money::MAX_APPROPRIATION.ore().checked_mul(1_000).is_some());
        assert_eq!(
            DomainError::AboveMaximum {
                max: Money::MAX_CASE_AMOUNT
            }
            .to_string(),
            "must be at most 10 000 000,00 kr (1000000000 øre)"
        );
    }

    #[test]
    fn kroner_overflow_is_an_error() {
        assert_eq!(Money::from_kroner(i64::MAX), Err(DomainError::Overflow));
        assert_eq!(Money::from_kroner(i64::MIN), Err(DomainError::Overflow));
        assert!(Money::from_kroner(i64::MAX / 100).is_ok());
        assert_eq!(
            Money::from_kroner(i64::MAX / 100 + 1),
            Err(DomainError::Overflow)
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::from_ore(150);
        let b = Money::from_ore(50);
        assert_eq!(a.checked_add(b), Some(Money::from_ore(200)));
        assert_eq!(a.checked_sub(b), Some(Money::from_ore(100)));
        assert_eq!(b.checked_sub(a), Some(Money::from_ore(-100)));
        assert_eq!(
            Money::from_ore(i64::MAX).checked_add(Money::from_ore(1)),
            None
        );
        assert_eq!(
            Money::from_ore(i64::MIN).checked_sub(Money::from_ore(1)),
            None
        );
    }

    #[test]
    fn min_and_positivity() {
        let claimed = Money::from_ore(2_500_000);
        let granted = Money::from_ore(2_400_000);
        assert_eq!(claimed.min(granted), granted);
        assert_eq!(granted.min(claimed), granted);
        assert!(Money::from_ore(1).is_positive());
        assert!(!Money::ZERO.is_positive());
        assert!(!Money::from_ore(-1).is_positive());
        assert_eq!(
            Money::ZERO.require_positive(),
            Err(DomainError::NotPositive)
        );
        assert_eq!(granted.require_positive(), Ok(granted));
    }

    #[test]
    fn displays_norwegian_style() {
        assert_eq!(Money::from_ore(2_400_000).to_string(), "24 000,00 kr");
        assert_eq!(Money::from_ore(2_230_000).to_string(), "22 300,00 kr");
        assert_eq!(Money::from_ore(0).to_string(), "0,00 kr");
        assert_eq!(Money::from_ore(5).to_string(), "0,05 kr");
        assert_eq!(Money::from_ore(99_950).to_string(), "999,50 kr");
        assert_eq!(Money::from_ore(100_000).to_string(), "1 000,00 kr");
        assert_eq!(Money::from_ore(123_456_789).to_string(), "1 234 567,89 kr");
        assert_eq!(Money::from_ore(-2_400_050).to_string(), "-24 000,50 kr");
        assert_eq!(
            Money::from_ore(i64::MIN).to_string(),
            "-92 233 720 368 547 758,08 kr"
        );
    }

    #[test]
    fn serde_is_plain_ore() {
        use serde::de::IntoDeserializer;
        use serde::de::value::Error;
        let money = Money::deserialize(IntoDeserializer::<Error>::into_deserializer(2_400_000i64))
            .expect("integer");
        assert_eq!(money, Money::from_ore(2_400_000));
    }
}
