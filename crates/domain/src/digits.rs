//! Shared parsing of fixed-length digit strings, used by every identifier type.
//!
//! Identifiers are stored as ASCII digit arrays so they are `Copy`-cheap, const-constructible
//! and order like numbers. These helpers keep the "exactly N digits, nothing else" rule in one
//! place and never put the input into an error.

use crate::DomainError;

/// Parses `input` as exactly `N` ASCII digits. No trimming: surrounding spaces are invalid.
pub(crate) fn parse_fixed<const N: usize>(input: &str) -> Result<[u8; N], DomainError> {
    if input.is_empty() {
        return Err(DomainError::Empty);
    }
    if !input.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::NotDigits);
    }
    <[u8; N]>::try_from(input.as_bytes()).map_err(|_| DomainError::WrongLength {
        expected: N,
        actual: input.len(),
    })
}

/// Views an array that is known to hold ASCII digits as `&str`.
pub(crate) fn as_str(ascii_digits: &[u8]) -> &str {
    // Every constructor guarantees ASCII digits, so this never falls back.
    std::str::from_utf8(ascii_digits).unwrap_or_default()
}

/// Numeric value of an ASCII digit.
pub(crate) const fn value(ascii_digit: u8) -> u32 {
    (ascii_digit - b'0') as u32
}

/// Weighted sum of digit values (not ASCII) under `weights`, pairwise.
pub(crate) fn weighted_sum(digit_values: &[u8], weights: &[u32]) -> u32 {
    digit_values
        .iter()
        .zip(weights)
        .map(|(&d, &w)| u32::from(d) * w)
        .sum()
}

/// The mod-11 check digit for a weighted sum: `11 - (sum mod 11)`, where 11 becomes 0 and 10
/// means no valid check digit exists.
pub(crate) fn mod11_check_digit(weighted_sum: u32) -> Option<u8> {
    match 11 - (weighted_sum % 11) {
        11 => Some(0),
        10 => None,
        r => u8::try_from(r).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_digits() {
        assert_eq!(parse_fixed::<4>("0301"), Ok(*b"0301"));
    }

    #[test]
    fn rejects_empty_non_digits_and_wrong_length() {
        assert_eq!(parse_fixed::<4>(""), Err(DomainError::Empty));
        assert_eq!(parse_fixed::<4>("03a1"), Err(DomainError::NotDigits));
        assert_eq!(parse_fixed::<4>(" 0301"), Err(DomainError::NotDigits));
        assert_eq!(parse_fixed::<4>("０３０１"), Err(DomainError::NotDigits));
        assert_eq!(
            parse_fixed::<4>("030"),
            Err(DomainError::WrongLength {
                expected: 4,
                actual: 3
            })
        );
        assert_eq!(
            parse_fixed::<4>("03011"),
            Err(DomainError::WrongLength {
                expected: 4,
                actual: 5
            })
        );
    }

    #[test]
    fn mod11_maps_remainders() {
        assert_eq!(mod11_check_digit(0), Some(0));
        assert_eq!(mod11_check_digit(11), Some(0));
        assert_eq!(mod11_check_digit(1), None);
        assert_eq!(mod11_check_digit(2), Some(9));
        assert_eq!(mod11_check_digit(10), Some(1));
    }
}
