//! The small domain rules an application's life follows, over the contract's own `Application`
//! message (the stored document): the gross amount, the refund deadline rule, which states are live or ended, and the conversions between the wire's
//! timestamps and `time`.

use ekb_proto::v1::{self, ApplicationStatus as Status, GrantStatus};
use time::{Date, Duration, Month, OffsetDateTime};

/// `date` plus `months` calendar months, clamped to the last day of the target month.
pub fn add_months(date: Date, months: u32) -> Date {
    let total =
        i64::from(date.year()) * 12 + i64::from(u8::from(date.month()) - 1) + i64::from(months);
    let year = i32::try_from(total.div_euclid(12)).unwrap_or(date.year());
    let month = Month::try_from(u8::try_from(total.rem_euclid(12) + 1).unwrap_or(1))
        .unwrap_or(Month::January);
    let day = date.day().min(time::util::days_in_month(month, year));
    Date::from_calendar_date(year, month, day).unwrap_or(date)
}

/// The refund deadline: the later of the planned start date and the grant date, plus `months`.
pub fn refund_deadline(planned_start: Date, grant_date: Date, months: u32) -> Date {
    add_months(planned_start.max(grant_date), months)
}

/// An instant as the contract carries it.
pub fn stamp(at: OffsetDateTime) -> Option<prost_types::Timestamp> {
    Some(ekb_proto::convert::timestamp_to_wire(at))
}

/// A wire timestamp as an instant (the epoch when unset or out of range).
pub fn instant(stamp: Option<&prost_types::Timestamp>) -> OffsetDateTime {
    stamp
        .and_then(|stamp| {
            OffsetDateTime::from_unix_timestamp(stamp.seconds)
                .ok()
                .map(|at| at + Duration::nanoseconds(i64::from(stamp.nanos)))
        })
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A date as the contract carries it.
pub fn day(date: Date) -> String {
    ekb_proto::convert::date_to_wire(date)
}

/// The application's status.
pub fn status(application: &v1::Application) -> Status {
    Status::try_from(application.status).unwrap_or(Status::Unspecified)
}

/// The grant's status (UNSPECIFIED without a grant).
pub fn grant_status(application: &v1::Application) -> GrantStatus {
    application
        .grant
        .as_ref()
        .and_then(|grant| GrantStatus::try_from(grant.status).ok())
        .unwrap_or(GrantStatus::Unspecified)
}

/// Whether the case's help ended here: rejected, withdrawn, or a grant that settled, expired or
/// was cancelled. Starts the retention clock.
pub fn has_ended(application: &v1::Application) -> bool {
    matches!(status(application), Status::Rejected | Status::Withdrawn)
        || matches!(
            grant_status(application),
            GrantStatus::Settled | GrantStatus::Expired | GrantStatus::Cancelled
        )
}

/// Whether it is the case's live application (at most one per case): not rejected or
/// withdrawn, and not a grant that ended unused.
pub fn is_live(application: &v1::Application) -> bool {
    !matches!(status(application), Status::Rejected | Status::Withdrawn)
        && !matches!(
            grant_status(application),
            GrantStatus::Expired | GrantStatus::Cancelled
        )
}

/// The application's current funds request (the last one), if any.
pub fn current_request(application: &mut v1::Application) -> Option<&mut v1::GrantFundsRequest> {
    application
        .grant
        .as_mut()
        .and_then(|grant| grant.funds_requests.last_mut())
}

/// The stored status name, as the work list filters on it.
pub fn status_name(status: Status) -> &'static str {
    status.as_str_name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn months_are_added_clamped_to_the_month_end() {
        assert_eq!(add_months(date!(2026 - 08 - 31), 6), date!(2027 - 02 - 28));
        assert_eq!(add_months(date!(2026 - 01 - 15), 12), date!(2027 - 01 - 15));
        assert_eq!(
            refund_deadline(date!(2026 - 12 - 10), date!(2026 - 12 - 01), 6),
            date!(2027 - 06 - 10)
        );
        assert_eq!(
            refund_deadline(date!(2026 - 11 - 01), date!(2026 - 12 - 01), 6),
            date!(2027 - 06 - 01)
        );
    }
}
