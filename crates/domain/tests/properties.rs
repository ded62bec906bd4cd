//! Property tests for the public checksum and money rules, through the crate's public API.
//! (Fødselsnummer properties live beside its code, where the check-digit helper is visible.)

use ekb_domain::{DomainError, Money, OrganisationNumber, with_valid_check_digit};
use proptest::prelude::*;

const WEIGHTS: [u32; 8] = [3, 2, 7, 6, 5, 4, 3, 2];

fn remainder(first8: &str) -> u32 {
    first8
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum::<u32>()
        % 11
}

proptest! {
    #[test]
    fn completion_parses_unless_remainder_is_one(first8 in "[0-9]{8}") {
        match with_valid_check_digit(&first8) {
            Some(orgnr) => {
                prop_assert!(orgnr.as_str().starts_with(&first8));
                prop_assert_eq!(OrganisationNumber::parse(orgnr.as_str()), Ok(orgnr));
            }
            None => prop_assert_eq!(remainder(&first8), 1),
        }
    }

    #[test]
    fn exactly_one_check_digit_is_valid(first8 in "[0-9]{8}") {
        let valid = (0..=9)
            .filter(|d| OrganisationNumber::parse(&format!("{first8}{d}")).is_ok())
            .count();
        let expected = if remainder(&first8) == 1 { 0 } else { 1 };
        prop_assert_eq!(valid, expected);
    }

    #[test]
    fn any_single_digit_change_is_detected(
        first8 in "[0-9]{8}",
        position in 0usize..9,
        delta in 1u8..=9,
    ) {
        let Some(orgnr) = with_valid_check_digit(&first8) else {
            return Ok(());
        };
        let mut bytes = orgnr.as_str().as_bytes().to_vec();
        bytes[position] = b'0' + (bytes[position] - b'0' + delta) % 10;
        let changed = String::from_utf8(bytes).expect("ascii");
        prop_assert_eq!(OrganisationNumber::parse(&changed), Err(DomainError::CheckDigit));
    }

    #[test]
    fn arbitrary_text_never_panics(input in "\\PC{0,12}") {
        let _ = OrganisationNumber::parse(&input);
    }

    #[test]
    fn money_display_round_trips_the_digits(ore in any::<i64>()) {
        let shown = Money::from_ore(ore).to_string();
        prop_assert!(shown.ends_with(" kr"));
        let digits: String = shown.chars().filter(char::is_ascii_digit).collect();
        let magnitude = ore.unsigned_abs();
        prop_assert_eq!(digits, format!("{}{:02}", magnitude / 100, magnitude % 100));
        prop_assert_eq!(shown.starts_with('-'), ore < 0);
    }

    #[test]
    fn min_is_never_above_either(a in any::<i64>(), b in any::<i64>()) {
        let (a, b) = (Money::from_ore(a), Money::from_ore(b));
        let smaller = a.min(b);
        prop_assert!(smaller <= a && smaller <= b);
        prop_assert!(smaller == a || smaller == b);
    }
}
