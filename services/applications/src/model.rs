//! The small domain rules an application's life follows, over the contract's own `Application`
//! message (the stored document): the gross amount, the refund deadline rule, which states are live or ended, and the conversions between the wire's
//! timestamps and `time`.

use ekb_domain::CalendarMonths;
use ekb_proto::v1::{self, ApplicationStatus as Status, GrantStatus};
use time::{Date, Duration, OffsetDateTime};

/// The refund deadline: the later of the planned start date and the grant date, plus `months`
/// calendar months (clamped to the month's last day).
pub fn refund_deadline(planned_start: Date, grant_date: Date, months: CalendarMonths) -> Date {
    months.after(planned_start.max(grant_date))
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_refund_deadline_counts_calendar_months_from_the_later_date() {
        let six = CalendarMonths::new(6);
        assert_eq!(
            refund_deadline(date!(2026 - 12 - 10), date!(2026 - 12 - 01), six),
            date!(2027 - 06 - 10)
        );
        assert_eq!(
            refund_deadline(date!(2026 - 11 - 01), date!(2026 - 12 - 01), six),
            date!(2027 - 06 - 01)
        );
        assert_eq!(
            refund_deadline(date!(2026 - 08 - 31), date!(2026 - 08 - 01), six),
            date!(2027 - 02 - 28),
            "clamped to the month's last day"
        );
    }
}
