//! Test people and dates: synthetic fødselsnumre (valid check digits, month + 80 as
//! Skatteetaten's Tenor numbers, so they can never be a real person's) and today's date in
//! Europe/Oslo, the calendar the services' date rules use.

use time::{Date, OffsetDateTime};

/// A synthetic (Tenor: month + 80) fødselsnummer born on day `day` of month `month` in 19`yy`,
/// the `nth` valid one in individual-number order (so different `nth` give different people).
pub fn synthetic_fodselsnummer(day: u32, month: u32, yy: u32, nth: usize) -> String {
    let born = format!("{day:02}{month:02}{yy:02}");
    let mut individual = 0;
    for _ in 0..nth {
        let number = ekb_testkit::people::synthetic_fodselsnummer(&born, individual);
        individual = number[6..9].parse::<u32>().unwrap_or(individual) + 1;
    }
    ekb_testkit::people::synthetic_fodselsnummer(&born, individual)
}

/// Today in Europe/Oslo.
pub fn oslo_today() -> Date {
    ekb_domain::oslo_date(OffsetDateTime::now_utc())
}

/// `date` as `YYYY-MM-DD`.
pub fn iso(date: Date) -> String {
    ekb_proto::convert::date_to_wire(date)
}

/// The date a contract carries as `YYYY-MM-DD`.
pub fn parse_iso(text: &str) -> anyhow::Result<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, format)
        .map_err(|error| anyhow::anyhow!("not a YYYY-MM-DD date {text:?}: {error}"))
}

/// Today in Europe/Oslo as `YYYY-MM-DD`.
pub fn today() -> String {
    iso(oslo_today())
}

/// The budget year now: the calendar year in Europe/Oslo.
pub fn budget_year() -> i32 {
    oslo_today().year()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_dates_round_trip() {
        let today = oslo_today();
        assert_eq!(parse_iso(&iso(today)).expect("parses"), today);
        assert!(parse_iso("2026-13-01").is_err());
    }

    #[test]
    fn synthetic_numbers_pass_the_domain_check_only_as_synthetic() {
        let first = synthetic_fodselsnummer(15, 3, 85, 0);
        let second = synthetic_fodselsnummer(15, 3, 85, 1);
        assert_ne!(first, second);
        for number in [&first, &second] {
            let parsed =
                ekb_domain::Fodselsnummer::parse(number, ekb_domain::SyntheticPolicy::Accept)
                    .expect("valid");
            assert!(parsed.is_synthetic());
            assert!(
                ekb_domain::Fodselsnummer::parse(number, ekb_domain::SyntheticPolicy::Reject)
                    .is_err()
            );
        }
    }
}
