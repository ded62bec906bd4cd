//! The Norwegian organisation number (organisasjonsnummer) that identifies an employer or a
//! business unit in Enhetsregisteret.
//!
//! Nine digits; the last is a mod-11 check digit over the first eight with weights
//! 3, 2, 7, 6, 5, 4, 3, 2. Remainder 0 gives check digit 0, remainder 1 means no number with
//! those eight digits exists, otherwise the check digit is `11 - remainder`.

use std::fmt;
use std::str::FromStr;

use crate::DomainError;
use crate::digits;

/// Weights for the check digit, applied to digits 1-8.
const WEIGHTS: [u32; 8] = [3, 2, 7, 6, 5, 4, 3, 2];

/// A validated 9-digit organisation number. Serializes as its digit string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct OrganisationNumber([u8; 9]);

impl OrganisationNumber {
    /// Parses exactly 9 digits with a correct check digit. Whitespace is not trimmed.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let ascii = digits::parse_fixed::<9>(input)?;
        let expected = check_digit(&ascii[..8]).ok_or(DomainError::CheckDigit)?;
        if digits::value(ascii[8]) != u32::from(expected) {
            return Err(DomainError::CheckDigit);
        }
        Ok(Self(ascii))
    }

    /// The nine digits.
    pub fn as_str(&self) -> &str {
        digits::as_str(&self.0)
    }
}

/// Completes eight digits with their check digit; `None` if `first8` is not exactly 8 digits or
/// no valid check digit exists (remainder 1). Meant for tests and fixtures.
pub fn with_valid_check_digit(first8: &str) -> Option<OrganisationNumber> {
    let ascii = digits::parse_fixed::<8>(first8).ok()?;
    let check = check_digit(&ascii)?;
    let mut full = [0u8; 9];
    full[..8].copy_from_slice(&ascii);
    full[8] = b'0' + check;
    Some(OrganisationNumber(full))
}

/// The check digit for eight ASCII digits, or `None` when the remainder is 1.
fn check_digit(first8_ascii: &[u8]) -> Option<u8> {
    let values: Vec<u8> = first8_ascii.iter().map(|b| b - b'0').collect();
    digits::mod11_check_digit(digits::weighted_sum(&values, &WEIGHTS))
}

impl fmt::Display for OrganisationNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrganisationNumber {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

crate::serde_str::serde_via_str!(OrganisationNumber);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde_str::testing;

    // NAV's own organisation number.
    const NAV: &str = "889640782";

    #[test]
    fn accepts_a_real_number() {
        let orgnr = OrganisationNumber::parse(NAV).expect("valid");
        assert_eq!(orgnr.as_str(), NAV);
        assert_eq!(orgnr.to_string(), NAV);
        assert_eq!(NAV.parse::<OrganisationNumber>(), Ok(orgnr));
    }

    #[test]
    fn rejects_wrong_check_digit() {
        assert_eq!(
            OrganisationNumber::parse("889640783"),
            Err(DomainError::CheckDigit)
        );
    }

    #[test]
    fn rejects_wrong_length() {
        assert_eq!(
            OrganisationNumber::parse("88964078"),
            Err(DomainError::WrongLength {
                expected: 9,
                actual: 8
            })
        );
        assert_eq!(
            OrganisationNumber::parse("8896407820"),
            Err(DomainError::WrongLength {
                expected: 9,
                actual: 10
            })
        );
    }

    #[test]
    fn rejects_non_digits_and_spaces() {
        assert_eq!(
            OrganisationNumber::parse("88964078X"),
            Err(DomainError::NotDigits)
        );
        assert_eq!(
            OrganisationNumber::parse(" 889640782"),
            Err(DomainError::NotDigits)
        );
        assert_eq!(
            OrganisationNumber::parse("889 640 782"),
            Err(DomainError::NotDigits)
        );
        assert_eq!(OrganisationNumber::parse(""), Err(DomainError::Empty));
    }

    #[test]
    fn remainder_zero_gives_check_digit_zero() {
        // 0*3+…+0*2 = 0 → remainder 0 → check digit 0.
        let orgnr = with_valid_check_digit("00000000").expect("remainder 0 is valid");
        assert_eq!(orgnr.as_str(), "000000000");
    }

    #[test]
    fn remainder_one_has_no_valid_number() {
        // Only the last digit is non-zero: 6 * weight 2 = 12, remainder 1.
        assert_eq!(with_valid_check_digit("00000006"), None);
        for last in 0..=9 {
            let candidate = format!("00000006{last}");
            assert_eq!(
                OrganisationNumber::parse(&candidate),
                Err(DomainError::CheckDigit)
            );
        }
    }

    #[test]
    fn helper_rejects_bad_input() {
        assert_eq!(with_valid_check_digit("8896407"), None);
        assert_eq!(with_valid_check_digit("8896407a"), None);
        assert_eq!(
            with_valid_check_digit("88964078").map(|o| o.to_string()),
            Some(NAV.to_owned())
        );
    }

    #[test]
    fn orders_numerically() {
        let low = with_valid_check_digit("10000000").expect("valid");
        let high = with_valid_check_digit("90000000").expect("valid");
        assert!(low < high);
    }

    #[test]
    fn deserializes_only_valid_numbers() {
        let ok: OrganisationNumber = testing::from_str(NAV).expect("valid");
        assert_eq!(ok.as_str(), NAV);
        let err = testing::from_str::<OrganisationNumber>("889640783").expect_err("bad check");
        assert!(err.to_string().contains("check digit"));
    }
}
