//! Validation of free-text names (people, companies, experts) before they are stored.
//!
//! Names end up in letters, reports and logs; leading/trailing whitespace, control characters
//! and unbounded lengths break all three.

use crate::DomainError;

/// Returns `value` trimmed if it is non-empty, at most `max_chars` characters (Unicode scalar
/// values, counted after trimming) and free of control characters.
pub fn validate_name(value: &str, max_chars: usize) -> Result<&str, DomainError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(DomainError::Empty);
    }
    if trimmed.chars().any(char::is_control) {
        return Err(DomainError::ControlCharacter);
    }
    if trimmed.chars().count() > max_chars {
        return Err(DomainError::TooLong { max: max_chars });
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_trimmed_name() {
        assert_eq!(validate_name("  Kari Nordmann ", 100), Ok("Kari Nordmann"));
        assert_eq!(validate_name("Ærlig Østby-Å", 100), Ok("Ærlig Østby-Å"));
    }

    #[test]
    fn rejects_empty_and_blank() {
        assert_eq!(validate_name("", 10), Err(DomainError::Empty));
        assert_eq!(validate_name(" \t\n ", 10), Err(DomainError::Empty));
    }

    #[test]
    fn length_is_counted_in_characters_with_the_boundary_allowed() {
        assert_eq!(validate_name("ÆØÅ", 3), Ok("ÆØÅ"));
        assert_eq!(
            validate_name("ÆØÅæ", 3),
            Err(DomainError::TooLong { max: 3 })
        );
        assert_eq!(validate_name("  abc  ", 3), Ok("abc"));
    }

    #[test]
    fn rejects_control_characters_inside() {
        assert_eq!(
            validate_name("Kari\nNordmann", 100),
            Err(DomainError::ControlCharacter)
        );
        assert_eq!(
            validate_name("Kari\u{0}", 100),
            Err(DomainError::ControlCharacter)
        );
        assert_eq!(
            validate_name("Kari\u{7f}", 100),
            Err(DomainError::ControlCharacter)
        );
    }
}
