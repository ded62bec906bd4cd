//! The one error type for every rule in this crate.
//!
//! Each variant's message states the rule that was broken, in plain English, as a predicate
//! ("must be exactly 9 digits, got 8") so callers can prefix it with the field name. No message
//! ever echoes a fødselsnummer: variants that carry text carry only codes that are safe to show.

use thiserror::Error;

use crate::MunicipalityStructure;

/// A domain rule was broken. The Display text names the rule, never the offending identifier.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// The value has the wrong number of characters.
    #[error("must be exactly {expected} digits, got {actual}")]
    WrongLength {
        /// How many characters the rule requires.
        expected: usize,
        /// How many characters the value had.
        actual: usize,
    },
    /// The value contains something other than the ASCII digits 0-9.
    #[error("must contain only digits")]
    NotDigits,
    /// A mod-11 check digit does not match the other digits.
    #[error("check digit does not match (mod 11)")]
    CheckDigit,
    /// A synthetic test fødselsnummer was given where only real ones are allowed.
    #[error("synthetic test numbers are not accepted here")]
    SyntheticNotAllowed,
    /// The day and month encoded in a fødselsnummer do not form a plausible date.
    #[error("birth date part must be a valid day (1-31) and month (1-12)")]
    InvalidBirthDate,
    /// The value is not a real calendar date.
    #[error("must be a valid calendar date")]
    InvalidDate,
    /// The county code is not a county in the 2024 county structure.
    #[error("must be a county in the 2024 county structure")]
    UnknownCounty,
    /// The municipality number is not a municipality in the structure in force on the date.
    #[error(
        "must be a municipality in the structure in force on {date} (the {structure} structure)"
    )]
    NotInMunicipalityStructure {
        /// The date the number was checked at.
        date: time::Date,
        /// The structure in force on that date.
        structure: MunicipalityStructure,
    },
    /// A date range whose start lies after its end.
    #[error("from must not be after to")]
    InvalidDateRange,
    /// The code is not one of the known competence areas. Only codes that look like codes are kept.
    #[error("must be a known competence area code, got '{0}'")]
    UnknownCompetenceArea(String),
    /// The code is not one of the known routing reasons. Only codes that look like codes are kept.
    #[error("must be a known routing reason code, got '{0}'")]
    UnknownRoutingReason(String),
    /// The code is not one of the known flows. Only codes that look like codes are kept.
    #[error("must be a known flow code (REGULAR or PILOT), got '{0}'")]
    UnknownFlow(String),
    /// The value is empty (or only whitespace where text is trimmed).
    #[error("must not be empty")]
    Empty,
    /// The value has more characters than allowed.
    #[error("must be at most {max} characters")]
    TooLong {
        /// The largest number of characters allowed.
        max: usize,
    },
    /// Text contains a control character (newline, tab, NUL, …).
    #[error("must not contain control characters")]
    ControlCharacter,
    /// An amount that must be above zero was zero or negative.
    #[error("must be greater than zero")]
    NotPositive,
    /// An arithmetic result does not fit in the representation.
    #[error("amount is too large to represent")]
    Overflow,
    /// An amount is above the documented upper bound of what it stands for.
    #[error("must be at most {max} ({} øre)", max.ore())]
    AboveMaximum {
        /// The largest amount allowed.
        max: crate::Money,
    },
    /// The value does not have the required textual shape.
    #[error("must have the form {expected}")]
    Malformed {
        /// The required shape, e.g. `YYYY-MM-DD`.
        expected: &'static str,
    },
    /// The same year appears twice in a rate table.
    #[error("year {0} must not be listed more than once")]
    DuplicateYear(i32),
    /// A pseudonym key is too short to be safe.
    #[error("pseudonym key must be at least {min} bytes")]
    KeyTooShort {
        /// The smallest key length accepted, in bytes.
        min: usize,
    },
    /// An encryption key does not have the length its cipher needs (or is not base64).
    #[error("encryption key must be {expected} bytes, base64-encoded")]
    KeyLength {
        /// The key length required, in bytes.
        expected: usize,
    },
    /// A sealed value cannot be opened: not sealed by this system, sealed under another key,
    /// or changed since.
    #[error("sealed value cannot be opened with this key")]
    SealedValue,
}

/// Longest unknown code that is echoed back in an error message.
const MAX_ECHOED_CODE: usize = 64;

/// Returns `code` if it looks like a SCREAMING_SNAKE code (so it cannot carry a national id or
/// other personal data into an error message), otherwise a fixed placeholder.
pub(crate) fn code_safe_to_show(code: &str) -> String {
    let looks_like_code = !code.is_empty()
        && code.len() <= MAX_ECHOED_CODE
        && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    if looks_like_code {
        code.to_owned()
    } else {
        "<not a code>".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_length_names_the_rule() {
        let err = DomainError::WrongLength {
            expected: 9,
            actual: 8,
        };
        assert_eq!(err.to_string(), "must be exactly 9 digits, got 8");
    }

    #[test]
    fn messages_state_the_rule() {
        assert_eq!(
            DomainError::NotDigits.to_string(),
            "must contain only digits"
        );
        assert_eq!(
            DomainError::CheckDigit.to_string(),
            "check digit does not match (mod 11)"
        );
        assert_eq!(
            DomainError::SyntheticNotAllowed.to_string(),
            "synthetic test numbers are not accepted here"
        );
        assert_eq!(
            DomainError::InvalidDateRange.to_string(),
            "from must not be after to"
        );
        assert_eq!(DomainError::Empty.to_string(), "must not be empty");
        assert_eq!(
            DomainError::NotPositive.to_string(),
            "must be greater than zero"
        );
        assert_eq!(
            DomainError::TooLong { max: 200 }.to_string(),
            "must be at most 200 characters"
        );
    }

    #[test]
    fn code_like_input_is_echoed() {
        assert_eq!(code_safe_to_show("YOGA"), "YOGA");
        assert_eq!(code_safe_to_show("SOME_CODE"), "SOME_CODE");
    }

    #[test]
    fn digits_and_other_text_are_never_echoed() {
        assert_eq!(code_safe_to_show("01017012345"), "<not a code>");
        assert_eq!(code_safe_to_show("yoga"), "<not a code>");
        assert_eq!(code_safe_to_show(""), "<not a code>");
        assert_eq!(code_safe_to_show(&"A".repeat(65)), "<not a code>");
    }
}
