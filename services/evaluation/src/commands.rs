//! The evaluation's one request, parsed: the period of cohorts a table covers. Every broken rule
//! is a field violation, so one INVALID_ARGUMENT names all of them (the field and the rule).

use ekb_platform::{ApiError, Violations};
use ekb_proto::v1;
use time::{Date, Month};

use crate::cohorts::Period;

/// A month as the contract writes it, `YYYY-MM`; `None` if it is not one (years 2000–2100).
pub fn parse_month(text: &str) -> Option<Date> {
    let (year, month) = text.split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    if !year
        .bytes()
        .chain(month.bytes())
        .all(|byte| byte.is_ascii_digit())
    {
        return None;
    }
    let year: i32 = year.parse().ok()?;
    let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
    if !(2000..=2100).contains(&year) {
        return None;
    }
    Date::from_calendar_date(year, month, 1).ok()
}

/// Months from `from` to `to`, both included (1 when they are the same month).
pub fn months_spanned(from: Date, to: Date) -> i32 {
    (to.year() - from.year()) * 12 + i32::from(u8::from(to.month()))
        - i32::from(u8::from(from.month()))
        + 1
}

/// Parses the period of `request`: both months `YYYY-MM`, `to_month` not before `from_month`,
/// and at most `max_months` months.
pub fn period(request: &v1::GetCohortTableRequest, max_months: u32) -> Result<Period, ApiError> {
    let mut check = Violations::new();
    let month = |check: &mut Violations, field: &str, text: &str| {
        let parsed = parse_month(text.trim());
        if parsed.is_none() {
            check.add(field, "must be a month, YYYY-MM (years 2000–2100)");
        }
        parsed
    };
    let from = month(&mut check, "from_month", &request.from_month);
    let to = month(&mut check, "to_month", &request.to_month);
    if let (Some(from), Some(to)) = (from, to) {
        let span = months_spanned(from, to);
        if span < 1 {
            check.add("to_month", "must not be before from_month");
        } else if span > i32::try_from(max_months).unwrap_or(i32::MAX) {
            check.add(
                "to_month",
                format!("must be at most {max_months} months after from_month, both included"),
            );
        }
    }
    check.finish_with(|| {
        Some(Period {
            from: from?,
            to: to?,
        })
    })
}

#[cfg(test)]
mod tests {
    use ekb_testkit::status::violated_fields;
    use time::macros::date;

    use super::*;

    fn request(from: &str, to: &str) -> v1::GetCohortTableRequest {
        v1::GetCohortTableRequest {
            from_month: from.to_owned(),
            to_month: to.to_owned(),
        }
    }

    #[test]
    fn months_parse_as_their_first_day() {
        assert_eq!(parse_month("2026-03"), Some(date!(2026 - 03 - 01)));
        for bad in [
            "2026-3",
            "2026-13",
            "2026-00",
            "26-03",
            "2026/03",
            "1999-12",
            "",
            "2026-03-01",
        ] {
            assert_eq!(parse_month(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_period_is_ordered_and_bounded() {
        let period = period(&request("2025-11", "2026-02"), 36).expect("valid");
        assert_eq!(
            (period.from, period.to),
            (date!(2025 - 11 - 01), date!(2026 - 02 - 01))
        );
        assert_eq!(months_spanned(period.from, period.to), 4);
        assert!(
            super::period(&request("2024-01", "2026-12"), 36).is_ok(),
            "36 months"
        );
        for (from, to, field) in [
            ("2026-13", "2026-12", "from_month"),
            ("2026-01", "soon", "to_month"),
            ("2026-02", "2026-01", "to_month"),
            ("2024-01", "2027-01", "to_month"),
        ] {
            let status =
                tonic::Status::from(super::period(&request(from, to), 36).expect_err("bad"));
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert_eq!(violated_fields(&status), [field], "{from}..{to}");
        }
    }
}
