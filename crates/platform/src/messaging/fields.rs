//! Reading the fields of a consumed event, written once for every service.
//!
//! An event whose field is not what its contract says (an id that is not a UUID, a date that is
//! not a date, a required part missing, an amount out of bounds) can never be applied, however
//! often it is retried: each reader here turns that into [`HandlerError::Permanent`], so the
//! consumer dead-letters the event at once with a reason that names the event type, the field and
//! the rule ("GrantApproved.grant_id must be a UUID"). The offending value is never echoed: a
//! misplaced fødselsnummer must not reach a dead-letter header or a log.
//!
//! ```ignore
//! let fields = EventFields::of(&event);
//! let case_id = fields.uuid("case_id", &event.case_id)?;
//! let amount = fields.case_amount("amount_ore", event.amount_ore)?;
//! ```

use ekb_domain::{CountyCode, Money, parse_iso_date};
use prost::Name;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::HandlerError;

/// The field readers of one consumed event type.
#[derive(Debug, Clone, Copy)]
pub struct EventFields {
    event: &'static str,
}

impl EventFields {
    /// The readers for an event of `event`'s type.
    pub fn of<E: Name>(_event: &E) -> Self {
        EventFields { event: E::NAME }
    }

    /// The readers for an event type named `event` (e.g. the envelope).
    pub fn named(event: &'static str) -> Self {
        EventFields { event }
    }

    /// The permanent error "`<Event>.<field> <rule>`".
    pub fn refuse(&self, field: &str, rule: impl std::fmt::Display) -> HandlerError {
        HandlerError::Permanent(format!("{}.{field} {rule}", self.event))
    }

    /// A required UUID.
    pub fn uuid(&self, field: &str, text: &str) -> Result<Uuid, HandlerError> {
        Uuid::parse_str(text).map_err(|_| self.refuse(field, "must be a UUID"))
    }

    /// A UUID that may be empty.
    pub fn optional_uuid(&self, field: &str, text: &str) -> Result<Option<Uuid>, HandlerError> {
        if text.is_empty() {
            return Ok(None);
        }
        self.uuid(field, text).map(Some)
    }

    /// A required date, `YYYY-MM-DD`.
    pub fn date(&self, field: &str, text: &str) -> Result<Date, HandlerError> {
        parse_iso_date(text).map_err(|_| self.refuse(field, "must be a date YYYY-MM-DD"))
    }

    /// A date that may be empty.
    pub fn optional_date(&self, field: &str, text: &str) -> Result<Option<Date>, HandlerError> {
        if text.is_empty() {
            return Ok(None);
        }
        self.date(field, text).map(Some)
    }

    /// A required timestamp, to the microsecond (what PostgreSQL stores).
    pub fn instant(
        &self,
        field: &str,
        at: Option<&prost_types::Timestamp>,
    ) -> Result<OffsetDateTime, HandlerError> {
        let at = self.required(field, at)?;
        let micros = u32::try_from(at.nanos)
            .ok()
            .map(|nanos| nanos / 1000 * 1000);
        OffsetDateTime::from_unix_timestamp(at.seconds)
            .ok()
            .zip(micros)
            .and_then(|(seconds, nanos)| seconds.replace_nanosecond(nanos).ok())
            .ok_or_else(|| self.refuse(field, "must be a timestamp in range"))
    }

    /// A required nested message.
    pub fn required<'a, T>(&self, field: &str, part: Option<&'a T>) -> Result<&'a T, HandlerError> {
        part.ok_or_else(|| self.refuse(field, "is required"))
    }

    /// A required enum value the contract knows (not 0, UNSPECIFIED).
    pub fn enumeration<T: TryFrom<i32>>(&self, field: &str, value: i32) -> Result<T, HandlerError> {
        if value == 0 {
            return Err(self.refuse(field, "must be set"));
        }
        T::try_from(value).map_err(|_| self.refuse(field, format!("has unknown value {value}")))
    }

    /// An amount about one case: above zero and at most [`Money::MAX_CASE_AMOUNT`].
    pub fn case_amount(&self, field: &str, ore: i64) -> Result<Money, HandlerError> {
        Money::from_ore(ore)
            .require_case_amount()
            .map_err(|rule| self.refuse(field, rule))
    }

    /// A county code: two digits.
    pub fn county(&self, field: &str, text: &str) -> Result<CountyCode, HandlerError> {
        CountyCode::parse(text).map_err(|rule| self.refuse(field, rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ekb_proto::v1;

    fn reason(error: HandlerError) -> String {
        match error {
            HandlerError::Permanent(reason) => reason,
            HandlerError::Transient(error) => panic!("not permanent: {error}"),
        }
    }

    #[test]
    fn a_bad_field_is_a_permanent_error_naming_event_field_and_rule_without_the_value() {
        let fields = EventFields::of(&v1::CaseRouted::default());
        let error = reason(
            fields
                .uuid("case_id", "01017012345")
                .expect_err("not a UUID"),
        );
        assert_eq!(error, "CaseRouted.case_id must be a UUID");
        assert!(!error.contains("01017012345"));
        assert_eq!(
            reason(
                fields
                    .date("planned_start", "2027-02-30")
                    .expect_err("no such day")
            ),
            "CaseRouted.planned_start must be a date YYYY-MM-DD"
        );
        assert_eq!(
            reason(
                fields
                    .required::<v1::Amount>("amount", None)
                    .expect_err("missing")
            ),
            "CaseRouted.amount is required"
        );
        assert!(
            reason(fields.case_amount("amount_ore", 0).expect_err("zero"))
                .starts_with("CaseRouted.amount_ore ")
        );
        assert!(fields.enumeration::<v1::Flow>("flow", 0).is_err());
        assert!(fields.enumeration::<v1::Flow>("flow", 99).is_err());
        assert!(fields.county("county_code", "3").is_err());
    }

    #[test]
    fn good_fields_are_read() {
        let fields = EventFields::named("Test");
        let id = Uuid::now_v7();
        assert_eq!(fields.uuid("id", &id.to_string()).ok(), Some(id));
        assert_eq!(fields.optional_uuid("id", "").ok(), Some(None));
        assert_eq!(fields.optional_date("on", "").ok(), Some(None));
        assert_eq!(
            fields
                .enumeration::<v1::Flow>("flow", v1::Flow::Pilot as i32)
                .ok(),
            Some(v1::Flow::Pilot)
        );
        let at = prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 123_456_789,
        };
        let read = fields.instant("at", Some(&at)).expect("instant");
        assert_eq!(read.unix_timestamp(), 1_800_000_000);
        assert_eq!(read.nanosecond(), 123_456_000);
        assert!(fields.instant("at", None).is_err());
    }
}
