//! Generic request validators, written once for every service. A request is parsed with
//! `TryFrom<wire request>` into a validated command (nested messages through [`FromWire`]); each
//! field is checked through one of these
//! methods on [`Violations`], which records a field violation (dotted field path and the rule)
//! instead of stopping, so the caller learns about every broken rule at once:
//!
//! ```ignore
//! let mut check = Violations::new();
//! let case_id = check.uuid("case_id", &request.case_id);
//! let note = check.text("note", &request.note, 500);
//! check.finish_with(|| Some(Command { case_id: case_id?, note: note? }))
//! ```

use ekb_domain::{DateRange, Money, parse_iso_date, validate_name};
use time::Date;
use uuid::Uuid;

use crate::{ApiError, Violations};

/// A part of a request (a nested message) that checks itself into a domain value, adding a
/// violation per broken rule under `field` (e.g. `facts.case_date`).
pub trait FromWire<W>: Sized {
    /// The domain value of `wire`, found at `field`; `None` if a rule was broken.
    fn from_wire(field: &str, wire: &W, check: &mut Violations) -> Option<Self>;
}

impl Violations {
    /// A required nested message, checked by its [`FromWire`].
    pub fn part<T: FromWire<W>, W>(&mut self, field: &str, wire: Option<&W>) -> Option<T> {
        let wire = self.required(field, wire)?;
        T::from_wire(field, wire, self)
    }

    /// `Ok` with what `build` makes of the checked values if no rule was broken, else
    /// INVALID_ARGUMENT with every violation. `build` returns `None` only if a check and the
    /// command disagree (a bug, reported as INTERNAL, never a panic).
    pub fn finish_with<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, ApiError> {
        self.finish()?;
        build().ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "a request passed validation but a checked value is missing"
            ))
        })
    }

    /// A required message field.
    pub fn required<'a, T>(&mut self, field: &str, value: Option<&'a T>) -> Option<&'a T> {
        if value.is_none() {
            self.add(field, "is required");
        }
        value
    }

    /// A required UUID.
    pub fn uuid(&mut self, field: &str, text: &str) -> Option<Uuid> {
        self.check(field, Uuid::parse_str(text).map_err(|_| "must be a UUID"))
    }

    /// A required enum value: known in this contract version and not UNSPECIFIED (zero).
    pub fn enumeration<E: TryFrom<i32>>(&mut self, field: &str, value: i32) -> Option<E> {
        if value == 0 {
            self.add(field, "must be set (UNSPECIFIED is not allowed)");
            return None;
        }
        let known = E::try_from(value).ok();
        if known.is_none() {
            self.add(field, format!("unknown enum value {value}"));
        }
        known
    }

    /// A required calendar date, `YYYY-MM-DD`.
    pub fn date(&mut self, field: &str, text: &str) -> Option<Date> {
        self.check(field, parse_iso_date(text))
    }

    /// A required inclusive date range (`from_date`, `to_date`), `from` not after `to`.
    pub fn date_range(
        &mut self,
        field: &str,
        range: Option<&ekb_proto::v1::DateRange>,
    ) -> Option<DateRange> {
        let range = self.required(field, range)?;
        let from = self.date(&format!("{field}.from_date"), &range.from_date);
        let to = self.date(&format!("{field}.to_date"), &range.to_date);
        self.check(field, DateRange::new(from?, to?))
    }

    /// Required free text: trimmed, not blank, no control characters, at most `max_chars`.
    pub fn text(&mut self, field: &str, text: &str, max_chars: usize) -> Option<String> {
        self.check(field, validate_name(text, max_chars).map(str::to_owned))
    }

    /// Optional free text: empty is `Some("")`; otherwise as [`Self::text`].
    pub fn optional_text(&mut self, field: &str, text: &str, max_chars: usize) -> Option<String> {
        if text.trim().is_empty() {
            return Some(String::new());
        }
        self.text(field, text, max_chars)
    }

    /// A required amount in øre, greater than zero.
    pub fn positive_money(&mut self, field: &str, ore: i64) -> Option<Money> {
        self.check(field, Money::from_ore(ore).require_positive())
    }

    /// A required whole number, greater than zero.
    pub fn positive<N: Copy + PartialOrd + Default>(&mut self, field: &str, value: N) -> Option<N> {
        if value <= N::default() {
            self.add(field, "must be greater than zero");
            return None;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(violations: Violations) -> Vec<String> {
        match violations.finish() {
            Err(ApiError::InvalidArgument(found)) => {
                found.into_iter().map(|violation| violation.field).collect()
            }
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn every_broken_rule_is_collected_with_its_field() {
        let mut check = Violations::new();
        assert_eq!(check.uuid("id", "nope"), None);
        assert_eq!(
            check.enumeration::<ekb_proto::v1::CompetenceArea>("area", 0),
            None
        );
        assert_eq!(
            check.enumeration::<ekb_proto::v1::CompetenceArea>("area2", 99),
            None
        );
        assert_eq!(check.date("on", "2024-02-30"), None);
        assert_eq!(check.text("note", "   ", 10), None);
        assert_eq!(check.positive_money("amount", -1), None);
        assert_eq!(check.positive("count", 0), None);
        assert_eq!(check.date_range("period", None), None);
        assert_eq!(
            fields(check),
            [
                "id", "area", "area2", "on", "note", "amount", "count", "period"
            ]
        );
    }

    #[test]
    fn a_reversed_range_names_the_range() {
        let mut check = Violations::new();
        let range = ekb_proto::v1::DateRange {
            from_date: "2024-05-02".to_owned(),
            to_date: "2024-05-01".to_owned(),
        };
        assert_eq!(check.date_range("validity", Some(&range)), None);
        assert_eq!(fields(check), ["validity"]);
    }

    #[test]
    fn valid_values_build_the_command() {
        let mut check = Violations::new();
        let id = check.uuid("id", "0199aaaa-0000-7000-8000-000000000000");
        let note = check.optional_text("note", "  ", 10);
        let built = check.finish_with(|| Some((id?, note?))).expect("valid");
        assert_eq!(built.1, "");
    }

    #[test]
    fn a_missing_value_after_passing_checks_is_internal() {
        let check = Violations::new();
        let result: Result<(), _> = check.finish_with(|| None);
        assert!(matches!(result, Err(ApiError::Internal(_))));
    }
}
