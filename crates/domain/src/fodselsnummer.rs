//! The Norwegian national identity number (fødselsnummer), including D-numbers and synthetic
//! test numbers, handled so that its digits cannot leak.
//!
//! Eleven digits: `DDMMYY` birth date, a three-digit individual number and two mod-11 check
//! digits (k1 over digits 1-9 with weights 3,7,6,1,8,9,4,5,2; k2 over digits 1-10 with weights
//! 5,4,3,2,7,6,5,4,3,2; for each `r = 11 - (sum mod 11)`, 11 becomes 0 and 10 is invalid).
//!
//! Offsets in the date part:
//! - D-number: first digit + 4 (day 41-71). Accepted.
//! - Month + 40: NAV's synthetic test numbers (Dolly). H-numbers (hjelpenummer) use the same
//!   encoding (third digit + 4) and cannot be told apart, so the whole range is treated as
//!   synthetic. H-numbers are local help numbers of the health sector, not issued by
//!   Folkeregisteret, and do not identify employees in this scheme.
//! - Month + 80: Skatteetaten's synthetic test numbers (Tenor).
//!
//! Synthetic numbers are accepted only under [`SyntheticPolicy::Accept`].
//!
//! `Debug` and `Display` print eleven asterisks; there is no `Serialize`; the digits are
//! reachable only through [`Fodselsnummer::expose_digits`] and the keyed
//! [`Fodselsnummer::pseudonym`]. Errors never contain the digits.

use std::fmt;

use hmac::Mac;

use crate::digits;
use crate::{DomainError, PseudonymKey};

/// What `Debug` and `Display` print instead of the digits.
const MASK: &str = "***********";

/// Weights for the first check digit, over digits 1-9.
const K1_WEIGHTS: [u32; 9] = [3, 7, 6, 1, 8, 9, 4, 5, 2];
/// Weights for the second check digit, over digits 1-10.
const K2_WEIGHTS: [u32; 10] = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

/// Whether synthetic test numbers (month + 40 or + 80) are accepted. Default: reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SyntheticPolicy {
    /// Accept synthetic test numbers (test and development environments).
    Accept,
    /// Reject synthetic test numbers (production).
    #[default]
    Reject,
}

/// A validated fødselsnummer or D-number. Prints as `***********`; never serialized.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fodselsnummer {
    digits: [u8; 11],
}

impl Fodselsnummer {
    /// Parses exactly 11 digits with valid check digits and a plausible day and month.
    /// Synthetic numbers pass only under [`SyntheticPolicy::Accept`]. No trimming.
    pub fn parse(input: &str, policy: SyntheticPolicy) -> Result<Self, DomainError> {
        let ascii = digits::parse_fixed::<11>(input)?;
        let mut values = [0u8; 11];
        for (value, byte) in values.iter_mut().zip(ascii) {
            *value = byte - b'0';
        }
        let (k1, k2) = check_digits(&values[..9]).ok_or(DomainError::CheckDigit)?;
        if (k1, k2) != (values[9], values[10]) {
            return Err(DomainError::CheckDigit);
        }
        let date = DatePart::decode(values[0] * 10 + values[1], values[2] * 10 + values[3])?;
        if date.synthetic && policy == SyntheticPolicy::Reject {
            return Err(DomainError::SyntheticNotAllowed);
        }
        Ok(Self { digits: ascii })
    }

    /// The eleven digits. Only for calls to external systems that need the national id;
    /// never for logs, spans, error messages or events (use [`Self::pseudonym`] there).
    pub fn expose_digits(&self) -> &str {
        digits::as_str(&self.digits)
    }

    /// True for synthetic test numbers (month + 40 or month + 80).
    pub fn is_synthetic(&self) -> bool {
        self.month_field() > 12
    }

    /// True for D-numbers (first digit + 4), issued to people without a fødselsnummer.
    pub fn is_d_number(&self) -> bool {
        digits::value(self.digits[0]) >= 4
    }

    /// A stable pseudonym: lowercase hex HMAC-SHA256 of the digits under `key`.
    /// Safe for events and evaluation data; irreversible without the key.
    pub fn pseudonym(&self, key: &PseudonymKey) -> String {
        let mut mac = key.mac();
        mac.update(&self.digits);
        let tag = mac.finalize().into_bytes();
        tag.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// The two-digit month field with its offsets still applied.
    fn month_field(&self) -> u32 {
        digits::value(self.digits[2]) * 10 + digits::value(self.digits[3])
    }
}

impl fmt::Debug for Fodselsnummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Fodselsnummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// The decoded date part: whether it is plausible and whether it marks a synthetic number.
struct DatePart {
    synthetic: bool,
}

impl DatePart {
    /// Removes D-number and synthetic offsets, then checks day 1-31 and month 1-12.
    fn decode(day_field: u8, month_field: u8) -> Result<Self, DomainError> {
        let day = if day_field > 40 {
            day_field - 40
        } else {
            day_field
        };
        let (month, synthetic) = match month_field {
            81..=92 => (month_field - 80, true),
            41..=52 => (month_field - 40, true),
            other => (other, false),
        };
        if (1..=31).contains(&day) && (1..=12).contains(&month) {
            Ok(Self { synthetic })
        } else {
            Err(DomainError::InvalidBirthDate)
        }
    }
}

/// The two check digits (k1, k2) for the first nine digit values (0-9, not ASCII), or `None`
/// if `first9` is not nine digits or either check digit would be 10.
fn check_digits(first9: &[u8]) -> Option<(u8, u8)> {
    if first9.len() != 9 || first9.iter().any(|&d| d > 9) {
        return None;
    }
    let k1 = digits::mod11_check_digit(digits::weighted_sum(first9, &K1_WEIGHTS))?;
    let mut first10 = [0u8; 10];
    first10[..9].copy_from_slice(first9);
    first10[9] = k1;
    let k2 = digits::mod11_check_digit(digits::weighted_sum(&first10, &K2_WEIGHTS))?;
    Some((k1, k2))
}

#[cfg(test)]
mod tests;
