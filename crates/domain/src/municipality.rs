//! Municipality numbers (kommunenummer) and county codes (fylkesnummer).
//!
//! Routing needs the county of the employer's business unit, and the county is the first two
//! digits of its 4-digit municipality number. Parsing checks only the format: historic and
//! future codes exist, so whether a county is current is a separate question
//! ([`CountyCode::name`]), and so is whether a number is a municipality at a date
//! ([`MunicipalityNumber::check_exists_on`], against a [`MunicipalityStructure`]).

mod structure_2020;
mod structure_2024;

use std::fmt;
use std::str::FromStr;

use time::Date;
use time::macros::date;

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

    /// Returns the number if it is a municipality in the structure in force on `date`
    /// ([`MunicipalityStructure::in_force_on`]); otherwise an error naming that date and
    /// structure. `9999` is never a municipality, nor is a code from another structure (`3001`
    /// after 2023, `3101` before 2024).
    pub fn check_exists_on(self, date: Date) -> Result<Self, DomainError> {
        let structure = MunicipalityStructure::in_force_on(date);
        if structure.contains(&self) {
            Ok(self)
        } else {
            Err(DomainError::NotInMunicipalityStructure { date, structure })
        }
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

/// One of the municipality structures (kommuneinndelinger) kept as data, each the list of
/// municipality numbers in force from a reform's first day; the data and its source are in
/// `municipality/structure_*.rs`. Displays as the year it took effect, e.g. `2024`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum MunicipalityStructure {
    /// In force from 1 January 2020 to 31 December 2023: 356 municipalities in 11 counties.
    Y2020,
    /// In force from 1 January 2024: 357 municipalities in 15 counties.
    Y2024,
}

impl MunicipalityStructure {
    /// The structure in force on `date`: [`Self::Y2024`] from 2024-01-01, [`Self::Y2020`]
    /// before. Dates before 2020 also get [`Self::Y2020`]: the scheme's cases start after the
    /// 2019 regulation, and the 2020 structure is the oldest one kept.
    pub fn in_force_on(date: Date) -> MunicipalityStructure {
        if date >= Self::Y2024.valid_from() {
            Self::Y2024
        } else {
            Self::Y2020
        }
    }

    /// The first day the structure was in force.
    pub fn valid_from(&self) -> Date {
        match self {
            Self::Y2020 => date!(2020 - 01 - 01),
            Self::Y2024 => date!(2024 - 01 - 01),
        }
    }

    /// The municipality's name in this structure, or `None` if the number is not one of its
    /// municipalities.
    pub fn name(&self, number: &MunicipalityNumber) -> Option<&'static str> {
        let table = self.municipalities();
        table
            .binary_search_by(|(code, _)| (*code).cmp(number.as_str()))
            .ok()
            .map(|index| table[index].1)
    }

    /// True if the number is one of this structure's municipalities.
    pub fn contains(&self, number: &MunicipalityNumber) -> bool {
        self.name(number).is_some()
    }

    /// The structure's counties, in code order: the first two digits of its municipalities.
    pub fn counties(&self) -> impl Iterator<Item = CountyCode> {
        let codes = match self {
            Self::Y2020 => structure_2020::COUNTIES,
            Self::Y2024 => structure_2024::COUNTIES,
        };
        codes.iter().filter_map(|code| CountyCode::parse(code).ok())
    }

    /// The structure's municipalities in `county`, in code order (a simulation spreads its
    /// cases over them).
    pub fn municipalities_in(&self, county: CountyCode) -> Vec<MunicipalityNumber> {
        self.municipalities()
            .iter()
            .filter(|(code, _)| code.starts_with(county.as_str()))
            .filter_map(|(code, _)| MunicipalityNumber::parse(code).ok())
            .collect()
    }

    /// `(code, name)` for every municipality, sorted by code.
    fn municipalities(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Y2020 => structure_2020::MUNICIPALITIES,
            Self::Y2024 => structure_2024::MUNICIPALITIES,
        }
    }
}

impl fmt::Display for MunicipalityStructure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.valid_from().year())
    }
}

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
    fn every_2024_county_has_its_municipalities_and_only_them() {
        let structure = MunicipalityStructure::Y2024;
        let mut total = 0;
        for county in CountyCode::all_2024() {
            let municipalities = structure.municipalities_in(county);
            assert!(!municipalities.is_empty(), "{county}");
            assert!(municipalities.iter().all(|m| m.county() == county));
            total += municipalities.len();
        }
        assert_eq!(total, 357);
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

    const STRUCTURES: [MunicipalityStructure; 2] =
        [MunicipalityStructure::Y2020, MunicipalityStructure::Y2024];

    fn number(code: &str) -> MunicipalityNumber {
        MunicipalityNumber::parse(code).expect("well-formed")
    }

    /// How many municipalities each county has, in county order.
    fn count_per_county(structure: MunicipalityStructure) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for (code, _) in structure.municipalities() {
            let county = number(code).county().to_string();
            match counts.last_mut() {
                Some((last, n)) if *last == county => *n += 1,
                _ => counts.push((county, 1)),
            }
        }
        counts
    }

    fn expected(counts: &[(&str, usize)]) -> Vec<(String, usize)> {
        counts.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
    }

    #[test]
    fn structures_have_ssbs_counts() {
        assert_eq!(MunicipalityStructure::Y2020.municipalities().len(), 356);
        assert_eq!(MunicipalityStructure::Y2024.municipalities().len(), 357);
        assert_eq!(MunicipalityStructure::Y2020.counties().count(), 11);
        assert_eq!(MunicipalityStructure::Y2024.counties().count(), 15);
    }

    #[test]
    fn structures_have_ssbs_counts_per_county() {
        assert_eq!(
            count_per_county(MunicipalityStructure::Y2020),
            expected(&[
                ("03", 1),
                ("11", 23),
                ("15", 26),
                ("18", 41),
                ("30", 51),
                ("34", 46),
                ("38", 23),
                ("42", 25),
                ("46", 43),
                ("50", 38),
                ("54", 39),
            ])
        );
        assert_eq!(
            count_per_county(MunicipalityStructure::Y2024),
            expected(&[
                ("03", 1),
                ("11", 23),
                ("15", 27),
                ("18", 41),
                ("31", 12),
                ("32", 21),
                ("33", 18),
                ("34", 46),
                ("39", 6),
                ("40", 17),
                ("42", 25),
                ("46", 43),
                ("50", 38),
                ("55", 21),
                ("56", 18),
            ])
        );
    }

    #[test]
    fn tables_are_sorted_well_formed_and_without_duplicates() {
        for structure in STRUCTURES {
            let table = structure.municipalities();
            assert!(
                table.windows(2).all(|pair| pair[0].0 < pair[1].0),
                "{structure} table must be strictly sorted by code"
            );
            for (code, name) in table {
                assert!(MunicipalityNumber::parse(code).is_ok(), "{code}");
                assert!(!name.is_empty() && name.trim() == *name, "{code} {name:?}");
            }
            let counties: Vec<CountyCode> = structure.counties().collect();
            assert!(counties.windows(2).all(|pair| pair[0] < pair[1]));
        }
    }

    #[test]
    fn every_municipality_lies_in_one_of_its_structures_counties_and_every_county_is_used() {
        for structure in STRUCTURES {
            let counties: Vec<CountyCode> = structure.counties().collect();
            for (code, _) in structure.municipalities() {
                assert!(
                    counties.contains(&number(code).county()),
                    "{code} in the {structure} structure"
                );
            }
            for county in &counties {
                assert!(
                    structure
                        .municipalities()
                        .iter()
                        .any(|(code, _)| number(code).county() == *county),
                    "county {county} of the {structure} structure has no municipality"
                );
            }
        }
        // The 2024 counties are the ones CountyCode names.
        assert!(
            MunicipalityStructure::Y2024
                .counties()
                .eq(CountyCode::all_2024())
        );
    }

    #[test]
    fn membership_follows_the_reforms() {
        let (y2020, y2024) = (MunicipalityStructure::Y2020, MunicipalityStructure::Y2024);
        // Hamar kept its number.
        assert_eq!(y2020.name(&number("3403")), Some("Hamar"));
        assert_eq!(y2024.name(&number("3403")), Some("Hamar"));
        // Halden was 3001 in Viken, and is 3101 in Østfold.
        assert_eq!(y2020.name(&number("3001")), Some("Halden"));
        assert!(!y2024.contains(&number("3001")));
        assert!(!y2020.contains(&number("3101")));
        assert_eq!(y2024.name(&number("3101")), Some("Halden"));
        // Haram was re-established out of Ålesund, which moved from 1507 to 1508.
        assert_eq!(y2020.name(&number("1507")), Some("Ålesund"));
        assert!(!y2020.contains(&number("1508")));
        assert!(!y2020.contains(&number("1580")));
        assert!(!y2024.contains(&number("1507")));
        assert_eq!(y2024.name(&number("1508")), Some("Ålesund"));
        assert_eq!(y2024.name(&number("1580")), Some("Haram"));
        // Not municipalities: SSB's "unknown" bucket, and a gap in Innlandet's numbers.
        for code in ["9999", "3499", "0000", "0101"] {
            for structure in STRUCTURES {
                assert!(!structure.contains(&number(code)), "{code} {structure}");
                assert_eq!(structure.name(&number(code)), None);
            }
        }
    }

    #[test]
    fn the_structure_changes_on_new_years_day_2024() {
        let on = MunicipalityStructure::in_force_on;
        assert_eq!(
            MunicipalityStructure::Y2020.valid_from(),
            date!(2020 - 01 - 01)
        );
        assert_eq!(
            MunicipalityStructure::Y2024.valid_from(),
            date!(2024 - 01 - 01)
        );
        assert_eq!(on(date!(2023 - 12 - 31)), MunicipalityStructure::Y2020);
        assert_eq!(on(date!(2024 - 01 - 01)), MunicipalityStructure::Y2024);
        assert_eq!(on(date!(2020 - 01 - 01)), MunicipalityStructure::Y2020);
        assert_eq!(on(date!(2099 - 06 - 30)), MunicipalityStructure::Y2024);
        // Older dates get the oldest structure kept.
        assert_eq!(on(date!(2019 - 12 - 31)), MunicipalityStructure::Y2020);
    }

    #[test]
    fn check_exists_on_uses_the_structure_in_force_on_the_date() {
        let halden_2020 = number("3001");
        let halden_2024 = number("3101");
        assert_eq!(
            halden_2020.check_exists_on(date!(2023 - 12 - 31)),
            Ok(halden_2020)
        );
        assert_eq!(
            halden_2024.check_exists_on(date!(2024 - 01 - 01)),
            Ok(halden_2024)
        );
        assert_eq!(
            halden_2020.check_exists_on(date!(2024 - 01 - 01)),
            Err(DomainError::NotInMunicipalityStructure {
                date: date!(2024 - 01 - 01),
                structure: MunicipalityStructure::Y2024,
            })
        );
        assert!(halden_2024.check_exists_on(date!(2023 - 12 - 31)).is_err());
        assert!(
            number("3403")
                .check_exists_on(date!(2022 - 03 - 01))
                .is_ok()
        );
        assert!(
            number("3403")
                .check_exists_on(date!(2025 - 03 - 01))
                .is_ok()
        );
        assert!(
            number("9999")
                .check_exists_on(date!(2025 - 03 - 01))
                .is_err()
        );
        assert!(
            number("9999")
                .check_exists_on(date!(2021 - 03 - 01))
                .is_err()
        );
    }

    #[test]
    fn the_error_states_the_rule_with_date_and_structure() {
        let err = number("9999")
            .check_exists_on(date!(2024 - 05 - 02))
            .expect_err("not a municipality");
        assert_eq!(
            err.to_string(),
            "must be a municipality in the structure in force on 2024-05-02 (the 2024 structure)"
        );
        let err = number("3101")
            .check_exists_on(date!(2021 - 02 - 03))
            .expect_err("not yet a municipality");
        assert_eq!(
            err.to_string(),
            "must be a municipality in the structure in force on 2021-02-03 (the 2020 structure)"
        );
        assert_eq!(MunicipalityStructure::Y2020.to_string(), "2020");
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
