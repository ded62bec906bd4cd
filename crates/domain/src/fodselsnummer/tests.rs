//! Tests for fødselsnummer parsing, masking and pseudonyms. Valid numbers are built with the
//! module's own `check_digits`, which is itself checked against independently computed vectors.

use proptest::prelude::*;

use super::*;

/// Independently computed valid numbers (digits, synthetic?, D-number?).
const VALID: [(&str, bool, bool); 8] = [
    ("15019012317", false, false), // 15.01.90
    ("31019012312", false, false), // day 31
    ("31129012350", false, false), // 31.12
    ("55019012300", false, true),  // D-number
    ("15419012561", true, false),  // month + 40 (Dolly)
    ("15819012382", true, false),  // month + 80 (Tenor)
    ("15929012310", true, false),  // month 92 = December + 80
    ("71529012327", true, true),   // D-number with month + 40
];

fn key(byte: u8) -> PseudonymKey {
    PseudonymKey::new(&[byte; 32]).expect("32-byte key")
}

fn values(text: &str) -> Vec<u8> {
    text.bytes().map(|b| b - b'0').collect()
}

/// Appends the check digits to nine digits; `None` when no valid number exists.
fn complete(first9: &str) -> Option<String> {
    let (k1, k2) = check_digits(&values(first9))?;
    Some(format!("{first9}{k1}{k2}"))
}

#[test]
fn check_digits_match_known_vectors() {
    for (number, _, _) in VALID {
        assert_eq!(complete(&number[..9]).as_deref(), Some(number));
    }
}

#[test]
fn check_digits_reject_remainder_ten() {
    // k1 would be 10 for 150190124, k2 would be 10 for 150190126.
    assert_eq!(check_digits(&values("150190124")), None);
    assert_eq!(check_digits(&values("150190126")), None);
}

#[test]
fn check_digits_reject_bad_input() {
    assert_eq!(check_digits(&values("15019012")), None);
    assert_eq!(check_digits(&[1, 5, 0, 1, 9, 0, 1, 2, 10]), None);
}

#[test]
fn accepts_valid_numbers_under_accept() {
    for (number, synthetic, d_number) in VALID {
        let fnr = Fodselsnummer::parse(number, SyntheticPolicy::Accept).expect(number);
        assert_eq!(fnr.expose_digits(), number);
        assert_eq!(fnr.is_synthetic(), synthetic, "{number}");
        assert_eq!(fnr.is_d_number(), d_number, "{number}");
    }
}

#[test]
fn reject_policy_accepts_real_and_refuses_synthetic() {
    for (number, synthetic, _) in VALID {
        let result = Fodselsnummer::parse(number, SyntheticPolicy::Reject);
        if synthetic {
            assert_eq!(result, Err(DomainError::SyntheticNotAllowed), "{number}");
        } else {
            assert!(result.is_ok(), "{number}");
        }
    }
}

#[test]
fn default_policy_is_reject() {
    assert_eq!(SyntheticPolicy::default(), SyntheticPolicy::Reject);
}

#[test]
fn rejects_wrong_check_digits() {
    assert_eq!(
        Fodselsnummer::parse("15019012318", SyntheticPolicy::Accept),
        Err(DomainError::CheckDigit)
    );
    assert_eq!(
        Fodselsnummer::parse("15019012327", SyntheticPolicy::Accept),
        Err(DomainError::CheckDigit)
    );
    // No check digits exist for these nine digits.
    for tail in 0..100 {
        let number = format!("150190124{tail:02}");
        assert_eq!(
            Fodselsnummer::parse(&number, SyntheticPolicy::Accept),
            Err(DomainError::CheckDigit)
        );
    }
}

/// The first valid number (by individual number) with this `DDMMYY` date part.
fn first_with_date(ddmmyy: &str) -> String {
    (0..1000)
        .find_map(|individual| complete(&format!("{ddmmyy}{individual:03}")))
        .expect("some individual number has valid check digits")
}

#[test]
fn rejects_implausible_dates() {
    for ddmmyy in [
        "000190", // day 0
        "320190", // day 32
        "400190", // day 40 (neither ordinary nor D-number)
        "720190", // D-number day 32
        "150090", // month 0
        "151390", // month 13
        "154090", // month 40 (0 + 40)
        "155390", // month 53 (past the + 40 range)
        "158090", // month 80 (0 + 80)
        "159390", // month 93 (past the + 80 range)
        "156090", // month 60
    ] {
        let number = first_with_date(ddmmyy);
        assert_eq!(
            Fodselsnummer::parse(&number, SyntheticPolicy::Accept),
            Err(DomainError::InvalidBirthDate),
            "{ddmmyy}"
        );
    }
}

#[test]
fn accepts_date_boundaries() {
    for ddmmyy in [
        "010190", "311290", "410190", "711290", "014190", "315290", "018190", "319290",
    ] {
        let number = first_with_date(ddmmyy);
        assert!(
            Fodselsnummer::parse(&number, SyntheticPolicy::Accept).is_ok(),
            "{ddmmyy}"
        );
    }
}

#[test]
fn rejects_format_errors() {
    let policy = SyntheticPolicy::Accept;
    assert_eq!(
        Fodselsnummer::parse("1501901231", policy),
        Err(DomainError::WrongLength {
            expected: 11,
            actual: 10
        })
    );
    assert_eq!(
        Fodselsnummer::parse("150190123170", policy),
        Err(DomainError::WrongLength {
            expected: 11,
            actual: 12
        })
    );
    assert_eq!(
        Fodselsnummer::parse("150190 12317", policy),
        Err(DomainError::NotDigits)
    );
    assert_eq!(
        Fodselsnummer::parse(" 15019012317", policy),
        Err(DomainError::NotDigits)
    );
    assert_eq!(Fodselsnummer::parse("", policy), Err(DomainError::Empty));
}

#[test]
fn debug_and_display_are_masked() {
    let fnr = Fodselsnummer::parse("15019012317", SyntheticPolicy::Reject).expect("valid");
    assert_eq!(format!("{fnr:?}"), "***********");
    assert_eq!(fnr.to_string(), "***********");
    assert_eq!(format!("{:?}", Some(&fnr)), "Some(***********)");
}

#[test]
fn error_messages_never_contain_the_digits() {
    let inputs = [
        "15019012318",
        "15019012317",
        "15419012561",
        "150190123170",
        "1501901231x",
    ];
    for input in inputs {
        if let Err(err) = Fodselsnummer::parse(input, SyntheticPolicy::Reject) {
            let text = format!("{err} {err:?}");
            assert!(!text.contains(&input[..6]), "{text}");
        }
    }
}

#[test]
fn pseudonym_is_lowercase_hex_sha256() {
    let fnr = Fodselsnummer::parse("15019012317", SyntheticPolicy::Reject).expect("valid");
    let pseudonym = fnr.pseudonym(&key(1));
    assert_eq!(pseudonym.len(), 64);
    assert!(
        pseudonym
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
}

#[test]
fn pseudonym_matches_reference_hmac() {
    // HMAC-SHA256 with key 0x0b * 32 over "15019012317", computed with Python's hmac module.
    let key = PseudonymKey::new(&[0x0b; 32]).expect("valid");
    let fnr = Fodselsnummer::parse("15019012317", SyntheticPolicy::Reject).expect("valid");
    assert_eq!(fnr.pseudonym(&key), EXPECTED_HMAC);
}

const EXPECTED_HMAC: &str = "4346e1c5816437772902820bedcfb42657e00e33067a6fc49b832bab9aca2f5a";

/// Strategy: a valid number (any date-part variant, any individual number) as a String.
fn valid_number() -> impl Strategy<Value = String> {
    (
        1u8..=31,
        1u8..=12,
        0u8..=99,
        0u16..=999,
        any::<bool>(),
        0u8..3,
    )
        .prop_filter_map(
            "no valid check digits",
            |(day, month, year, individual, d_number, month_offset)| {
                let day = if d_number { day + 40 } else { day };
                let month = month + [0, 40, 80][usize::from(month_offset)];
                complete(&format!("{day:02}{month:02}{year:02}{individual:03}"))
            },
        )
}

proptest! {
    #[test]
    fn generated_numbers_parse(number in valid_number()) {
        let fnr = Fodselsnummer::parse(&number, SyntheticPolicy::Accept);
        prop_assert!(fnr.is_ok());
    }

    #[test]
    fn any_single_digit_change_is_detected(
        number in valid_number(),
        position in 0usize..11,
        delta in 1u8..=9,
    ) {
        let mut bytes = number.into_bytes();
        bytes[position] = b'0' + (bytes[position] - b'0' + delta) % 10;
        let changed = String::from_utf8(bytes).expect("ascii");
        prop_assert!(Fodselsnummer::parse(&changed, SyntheticPolicy::Accept).is_err());
    }

    #[test]
    fn debug_and_display_never_show_digits(number in valid_number()) {
        let fnr = Fodselsnummer::parse(&number, SyntheticPolicy::Accept).expect("valid");
        for shown in [format!("{fnr:?}"), fnr.to_string(), format!("{fnr:#?}")] {
            prop_assert!(!shown.bytes().any(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn pseudonym_is_deterministic_and_key_dependent(
        number in valid_number(),
        a in any::<u8>(),
        b in any::<u8>(),
    ) {
        prop_assume!(a != b);
        let fnr = Fodselsnummer::parse(&number, SyntheticPolicy::Accept).expect("valid");
        prop_assert_eq!(fnr.pseudonym(&key(a)), fnr.pseudonym(&key(a)));
        prop_assert_ne!(fnr.pseudonym(&key(a)), fnr.pseudonym(&key(b)));
        prop_assert!(!fnr.pseudonym(&key(a)).contains(&number));
    }

    #[test]
    fn pseudonym_differs_between_people(first in valid_number(), second in valid_number()) {
        prop_assume!(first != second);
        let k = key(9);
        let a = Fodselsnummer::parse(&first, SyntheticPolicy::Accept).expect("valid");
        let b = Fodselsnummer::parse(&second, SyntheticPolicy::Accept).expect("valid");
        prop_assert_ne!(a.pseudonym(&k), b.pseudonym(&k));
    }
}
