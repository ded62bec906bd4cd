//! Municipality numbers (kommunenummer) and county codes (fylkesnummer).
//!
//! Routing needs the county of the employer's business unit, and the county is the first two
//! digits of its 4-digit municipality number. Parsing checks only the format: historic and
//! future codes exist, so whether a county is current is a separate question
//! ([`CountyCode::name`]).

use std::fmt;
use std::str::FromStr;

use crate::DomainError;
use crate::digits;

/// A 4-digit municipality number, e.g. `3403` (Hamar). Serializes as its digit string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct MunicipalityNumber([u8; 4]);

impl MunicipalityNumber {
    /// Parses exactly 4 digits. Whitespace is not trimmed.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        digits::parse_fixed::<4>(input).map(Self)
    }

    /// The four digits.
    pub fn as_str(&self) -> &str {
        digits::as_str(&self.0)
    }

    /// The county the municipality belongs to: its first two digits.
    pub fn county(&self) -> CountyCode {
        CountyCode([self.0[0], self.0[1]])
    }
}

impl fmt::Display for MunicipalityNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MunicipalityNumber {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

crate::serde_str::serde_via_str!(MunicipalityNumber);

/// A 2-digit county code, e.g. `34` (Innlandet). Serializes as its digit string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct CountyCode([u8; 2]);

/// County names in the county structure in force from 1 January 2024.
const COUNTIES_2024: [(&str, &str); 15] = [
    ("03", "Oslo"),
    ("11", "Rogaland"),
    ("15", "Møre og Romsdal"),
    ("18", "Nordland"),
    ("31", "Østfold"),
    ("32", "Akershus"),
    ("33", "Buskerud"),
    ("34", "Innlandet"),
    ("39", "Vestfold"),
    ("40", "Telemark"),
    ("42", "Agder"),
    ("46", "Vestland"),
    ("50", "Trøndelag"),
    ("55", "Troms"),
    ("56", "Finnmark"),
];

impl CountyCode {
    /// Innlandet (34), the county of the § 9a pilot.
    pub const INNLANDET: CountyCode = CountyCode(*b"34");

    /// Parses exactly 2 digits. Unknown (historic) codes are accepted; see [`Self::name`].
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        digits::parse_fixed::<2>(input).map(Self)
    }

    /// The two digits.
    pub fn as_str(&self) -> &str {
        digits::as_str(&self.0)
    }

    /// The county's name in the 2024 county structure, or `None` for other codes.
    pub fn name(&self) -> Option<&'static str> {
        COUNTIES_2024
            .iter()
            .find(|(code, _)| *code == self.as_str())
            .map(|(_, name)| *name)
    }

    /// Every county of the 2024 county structure, in code order.
    pub fn all_2024() -> impl Iterator<Item = CountyCode> {
        COUNTIES_2024
            .iter()
            .filter_map(|(code, _)| CountyCode::parse(code).ok())
    }
}

impl fmt::Display for CountyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CountyCode {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

crate::serde_str::serde_via_str!(CountyCode);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde_str::testing;

    #[test]
    fn municipality_parses_four_digits_and_knows_its_county() {
        let hamar = MunicipalityNumber::parse("3403").expect("valid");
        assert_eq!(hamar.as_str(), "3403");
        assert_eq!(hamar.to_string(), "3403");
        assert_eq!(hamar.county(), CountyCode::INNLANDET);
        let oslo: MunicipalityNumber = "0301".parse().expect("valid");
        assert_eq!(oslo.county().as_str(), "03");
    }

    #[test]
    fn municipality_rejects_bad_format() {
        assert_eq!(
            MunicipalityNumber::parse("301"),
            Err(DomainError::WrongLength {
                expected: 4,
                actual: 3
            })
        );
        assert_eq!(
            MunicipalityNumber::parse("03011"),
            Err(DomainError::WrongLength {
                expected: 4,
                actual: 5
            })
        );
        assert_eq!(
            MunicipalityNumber::parse("03 1"),
            Err(DomainError::NotDigits)
        );
        assert_eq!(
            MunicipalityNumber::parse("0301 "),
            Err(DomainError::NotDigits)
        );
        assert_eq!(MunicipalityNumber::parse(""), Err(DomainError::Empty));
    }

    #[test]
    fn county_parses_two_digits_including_historic_codes() {
        assert_eq!(CountyCode::parse("34"), Ok(CountyCode::INNLANDET));
        let hedmark = CountyCode::parse("04").expect("historic code is well-formed");
        assert_eq!(hedmark.name(), None);
        assert_eq!(
            CountyCode::parse("3"),
            Err(DomainError::WrongLength {
                expected: 2,
                actual: 1
            })
        );
        assert_eq!(CountyCode::parse("3a"), Err(DomainError::NotDigits));
        assert_eq!(CountyCode::parse(""), Err(DomainError::Empty));
    }

    #[test]
    fn county_names_follow_the_2024_structure() {
        let name = |code: &str| CountyCode::parse(code).expect("valid").name();
        assert_eq!(name("03"), Some("Oslo"));
        assert_eq!(name("34"), Some("Innlandet"));
        assert_eq!(name("15"), Some("Møre og Romsdal"));
        assert_eq!(name("31"), Some("Østfold"));
        assert_eq!(name("50"), Some("Trøndelag"));
        assert_eq!(name("56"), Some("Finnmark"));
        // 2020-2023 merged counties are gone.
        assert_eq!(name("30"), None);
        assert_eq!(name("38"), None);
        assert_eq!(name("54"), None);
        assert_eq!(name("00"), None);
        assert_eq!(CountyCode::all_2024().count(), 15);
        assert!(CountyCode::all_2024().all(|c| c.name().is_some()));
    }

    #[test]
    fn county_display_and_serde_use_the_digits() {
        assert_eq!(CountyCode::INNLANDET.to_string(), "34");
        let parsed: CountyCode = testing::from_str("34").expect("valid");
        assert_eq!(parsed, CountyCode::INNLANDET);
        assert!(testing::from_str::<CountyCode>("340").is_err());
        let parsed: MunicipalityNumber = testing::from_str("3403").expect("valid");
        assert_eq!(parsed.as_str(), "3403");
    }
}
