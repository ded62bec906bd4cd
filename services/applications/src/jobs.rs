//! The service's jobs, each a function of "now" so tests move the clock instead of waiting
//! (`lib.rs` runs each with `ekb_platform::jobs::every`):
//! re-sending a GrantRequested budget has not answered (identical content, a new event id; the
//! wait doubles up to the configured maximum), erasing personal data `[retention]
//! personal_data` after the case ended here (the grant record stays), and deleting the record
//! `[retention] records` after (at least 10 years, § 5; the platform checks the minimum). They
//! lock the rows they work on with SKIP LOCKED, so two replicas running them at once never do
//! the same work twice.

use ekb_domain::CalendarMonths;
use ekb_platform::messaging::Db;
use ekb_proto::v1::{self, ApplicationStatus as Status};
use time::OffsetDateTime;

use crate::{
    config::Policy,
    events,
    model::{self, stamp},
    store,
};

/// Rows one pass takes at most.
const BATCH: i64 = 100;

/// Re-sends every funds request due at `now`; returns how many were re-sent.
pub async fn resend_due(db: &Db, policy: &Policy, now: OffsetDateTime) -> anyhow::Result<usize> {
    let mut work = db.begin().await?;
    let due = store::due_resends(work.db(), now, BATCH).await?;
    let mut sent = 0;
    for mut stored in due {
        let pending = model::status(&stored.application) == Status::GrantPendingFunds
            && stored
                .application
                .grant
                .as_ref()
                .and_then(|grant| grant.funds_requests.last())
                .is_some_and(|request| request.outcome == v1::FundsRequestOutcome::Pending as i32);
        if pending {
            let application = stored.application.clone();
            if let Some(request) = model::current_request(&mut stored.application) {
                let event = events::grant_requested(&application, request);
                events::publish_grant(&mut work, &application, &event).await?;
                request.last_sent_at = stamp(now);
                request.times_sent += 1;
                sent += 1;
            }
            let max = i64::try_from(policy.resend_max_interval.as_secs()).unwrap_or(i64::MAX);
            let next = stored
                .resend_interval_seconds
                .unwrap_or(max)
                .saturating_mul(2)
                .min(max);
            stored.resend_at = Some(now + time::Duration::seconds(next));
            stored.resend_interval_seconds = Some(next);
        } else {
            stored.resend_at = None;
            stored.resend_interval_seconds = None;
        }
        store::save(work.db(), &stored, now).await?;
    }
    work.commit().await?;
    Ok(sent)
}

/// Erases the personal data of every application whose case ended `retention.personal_data` or
/// longer before `now`; returns how many were erased. Keeps the grant record: amounts, rate,
/// dates, organisation numbers, decision, who recommended and decided, the pseudonym.
pub async fn erase_due(db: &Db, policy: &Policy, now: OffsetDateTime) -> anyhow::Result<usize> {
    let mut work = db.begin().await?;
    let ended_by = ago(policy.retention.personal_data, now);
    let due = store::due_erasures(work.db(), ended_by, BATCH).await?;
    let erased = due.len();
    for mut stored in due {
        erase(&mut stored.application);
        stored.application.personal_data_erased_at = stamp(now);
        stored.fodselsnummer_sealed = None;
        store::save(work.db(), &stored, now).await?;
        stored
            .audit_service_change(work.db(), "PersonalDataErased", now)
            .await?;
    }
    work.commit().await?;
    if erased > 0 {
        tracing::info!(erased, "personal data erased under the retention rule");
    }
    Ok(erased)
}

/// Deletes the records of cases that ended `retention.records` or more before `now` (§ 5 keeps
/// grant records at least 10 years; the trail goes with the record it describes); returns how
/// many.
pub async fn delete_expired_records(
    db: &Db,
    policy: &Policy,
    now: OffsetDateTime,
) -> anyhow::Result<u64> {
    let mut work = db.begin().await?;
    let ended_by = ago(policy.retention.records, now);
    let deleted = store::delete_expired_records(work.db(), ended_by).await?;
    work.commit().await?;
    if deleted > 0 {
        tracing::info!(deleted, "records deleted under the retention rule");
    }
    Ok(deleted)
}

/// The instant `months` calendar months before `now` (the same time of day, the date clamped
/// to the month's last day).
fn ago(months: CalendarMonths, now: OffsetDateTime) -> OffsetDateTime {
    now.replace_date(months.before(now.date()))
}

/// Empties every personal field and every free text of `application`.
fn erase(application: &mut v1::Application) {
    application.employee_name.clear();
    if let Some(details) = application.details.as_mut() {
        details.contact_person = None;
        details.problem_description.clear();
        details.accommodation_tried.clear();
        details.nav_contact_name.clear();
    }
    for condition in &mut application.conditions {
        condition.note.clear();
    }
    for recommendation in &mut application.recommendations {
        recommendation.note.clear();
        recommendation.return_note.clear();
        if let Some(v1::application_recommendation::Recommendation::Rejection(rejection)) =
            recommendation.recommendation.as_mut()
        {
            rejection.explanation.clear();
        }
    }
    if let Some(decision) = application.decision.as_mut() {
        for condition in &mut decision.conditions {
            condition.note.clear();
        }
    }
    if let Some(rejection) = application.rejection.as_mut() {
        rejection.explanation.clear();
    }
    if let Some(withdrawal) = application.withdrawal.as_mut() {
        withdrawal.reason.clear();
    }
    if let Some(cancellation) = application
        .grant
        .as_mut()
        .and_then(|grant| grant.cancellation.as_mut())
    {
        cancellation.explanation.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_retention_counts_calendar_months_back_at_the_same_time_of_day() {
        assert_eq!(
            ago(CalendarMonths::new(15), datetime!(2028-05-31 10:00 UTC)),
            datetime!(2027-02-28 10:00 UTC)
        );
        assert_eq!(
            ago(CalendarMonths::years(10), datetime!(2036-02-29 23:30 UTC)),
            datetime!(2026-02-28 23:30 UTC)
        );
    }
}
