//! The money saga with budget (ADR 0021): a confirmed grant asks for the money under a new grant
//! id (GrantRequested); budget's FundsReserved makes it GRANTED (GrantApproved, for refunds),
//! its FundsDenied FUNDS_DENIED (GrantFundsDenied). A denial is not final: the money is asked
//! for again under a new grant id, or a decider makes the rejection final. An answer for a
//! grant id that is not the application's current one, or when nothing waits for it, changes
//! nothing.

use ekb_domain::{Account, CalendarMonths, oslo_date};
use ekb_platform::{
    ApiError,
    change::{Decision, Effects},
};
use ekb_proto::convert::gross_to_wire;
use ekb_proto::v1::{self, ApplicationStatus as Status, GrantStatus};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    config::Policy,
    events,
    model::{self, day, stamp},
    store::Stored,
};

/// What a funds request is made on: the account charged and the wait before an unanswered
/// request is re-sent.
#[derive(Debug, Clone, Copy)]
pub struct FundsTerms {
    /// The account grants are charged to.
    pub account: Account,
    /// The first wait before a re-send.
    pub resend_after: std::time::Duration,
}

impl From<&Policy> for FundsTerms {
    fn from(policy: &Policy) -> Self {
        FundsTerms {
            account: policy.account,
            resend_after: policy.resend_after,
        }
    }
}

impl Stored {
    /// Starts a new funds request by `by` under a new grant id: GRANT_PENDING_FUNDS, re-sent
    /// after `terms.resend_after` until answered; publishes GrantRequested.
    pub(super) fn request_funds(
        &mut self,
        by: &str,
        terms: &FundsTerms,
        now: OffsetDateTime,
    ) -> Effects {
        let application = &mut self.application;
        let grant = application.grant.get_or_insert_with(Default::default);
        let request = v1::GrantFundsRequest {
            grant_id: Uuid::now_v7().to_string(),
            budget_year: oslo_date(now).year(),
            account: Some(v1::BudgetAccount {
                chapter: terms.account.chapter(),
                post: terms.account.post(),
            }),
            amount: grant.granted_amount,
            requested_at: stamp(now),
            last_sent_at: stamp(now),
            times_sent: 1,
            outcome: v1::FundsRequestOutcome::Pending as i32,
            requested_by: by.to_owned(),
            ..Default::default()
        };
        grant.grant_id = request.grant_id.clone();
        grant.budget_year = request.budget_year;
        grant.account = request.account;
        if grant.requested_at.is_none() {
            grant.requested_at = stamp(now);
        }
        grant.funds_requests.push(request.clone());
        application.status = Status::GrantPendingFunds as i32;
        application.rejection = None;
        let wait = terms.resend_after;
        self.resend_at = Some(now + wait);
        self.resend_interval_seconds = Some(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX));
        let application = &self.application;
        Effects::new().publishing(
            events::of_current_grant(application),
            &events::grant_requested(application, &request),
        )
    }

    /// RequestFundsAgain by `by`: FUNDS_DENIED → a new funds request (NOT_FUNDS_DENIED
    /// otherwise).
    pub fn request_funds_again(
        &mut self,
        by: &str,
        terms: &FundsTerms,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        self.require(Status::FundsDenied, "NOT_FUNDS_DENIED")?;
        let effects = self.request_funds(by, terms, now);
        Ok(self.changed(now, effects))
    }

    /// RejectForLackOfFunds by decider `by`: FUNDS_DENIED → REJECTED, final
    /// (NOT_FUNDS_DENIED otherwise); publishes ApplicationRejected.
    pub fn reject_for_lack_of_funds(
        &mut self,
        by: &str,
        explanation: String,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        self.require(Status::FundsDenied, "NOT_FUNDS_DENIED")?;
        let application = &mut self.application;
        let rejection = application.rejection.get_or_insert_with(Default::default);
        rejection.reason = v1::ApplicationRejectionReason::FundsDenied as i32;
        rejection.explanation = explanation;
        rejection.rejected_by = by.to_owned();
        rejection.is_final = true;
        application.status = Status::Rejected as i32;
        let effects = Effects::new().publishing(
            events::of_application(application),
            &events::rejected(application),
        );
        Ok(self.changed(now, effects))
    }

    /// Whether budget's answer on `grant_id` is for the funds request this application waits
    /// for.
    fn waits_for(&self, grant_id: Uuid) -> bool {
        self.is_current_grant(grant_id)
            && model::status(&self.application) == Status::GrantPendingFunds
    }

    /// Budget's FundsReserved on `grant_id` (`reservation_id`): GRANTED with the grant date and
    /// the refund deadline (`refund_deadline` after the later of the planned start and the
    /// grant date); publishes GrantApproved.
    pub fn funds_reserved(
        &mut self,
        grant_id: Uuid,
        reservation_id: String,
        refund_deadline: CalendarMonths,
        now: OffsetDateTime,
    ) -> Decision {
        if !self.waits_for(grant_id) {
            return Decision::Unchanged;
        }
        let grant_date = oslo_date(now);
        let application = &mut self.application;
        let planned = application
            .details
            .as_ref()
            .and_then(|details| ekb_domain::parse_iso_date(&details.planned_start_date).ok())
            .unwrap_or(grant_date);
        if let Some(request) = model::current_request(application) {
            request.outcome = v1::FundsRequestOutcome::Reserved as i32;
            request.answered_at = stamp(now);
        }
        let grant = application.grant.get_or_insert_with(Default::default);
        grant.reservation_id = reservation_id;
        grant.granted_at = stamp(now);
        grant.grant_date = day(grant_date);
        grant.refund_deadline_date =
            day(model::refund_deadline(planned, grant_date, refund_deadline));
        grant.status = GrantStatus::Active as i32;
        application.status = Status::Granted as i32;
        self.resend_at = None;
        self.resend_interval_seconds = None;
        let effects = Effects::new().publishing(
            events::of_current_grant(&self.application),
            &events::grant_approved(&self.application),
        );
        self.changed(now, effects)
    }

    /// Budget's FundsDenied on `grant_id` (`reason`, `available_ore` left): FUNDS_DENIED, not
    /// final; publishes GrantFundsDenied.
    pub fn funds_denied(
        &mut self,
        grant_id: Uuid,
        reason: i32,
        available_ore: i64,
        now: OffsetDateTime,
    ) -> Decision {
        if !self.waits_for(grant_id) {
            return Decision::Unchanged;
        }
        let application = &mut self.application;
        if let Some(request) = model::current_request(application) {
            request.outcome = v1::FundsRequestOutcome::Denied as i32;
            request.denied_reason = reason;
            request.available_when_denied = Some(gross_to_wire(available_ore));
            request.answered_at = stamp(now);
        }
        application.status = Status::FundsDenied as i32;
        application.rejection = Some(v1::ApplicationRejection {
            reason: v1::ApplicationRejectionReason::FundsDenied as i32,
            funds_denied_reason: reason,
            rejected_at: stamp(now),
            is_final: false,
            ..Default::default()
        });
        self.resend_at = None;
        self.resend_interval_seconds = None;
        let effects = Effects::new().publishing(
            events::of_current_grant(&self.application),
            &events::funds_denied(&self.application),
        );
        self.changed(now, effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::fixtures::{
        NOW, SIX_MONTHS, current_grant, events, granted, is_changed, pending_funds, reason, terms,
    };

    #[test]
    fn reserved_funds_grant_the_application_with_its_refund_deadline_once() {
        let (mut stored, grant_id) = pending_funds();
        let reserved = stored.funds_reserved(grant_id, "r-1".to_owned(), SIX_MONTHS, NOW);
        assert_eq!(events(&reserved), ["GrantApproved"]);
        let application = &stored.application;
        assert_eq!(application.status(), Status::Granted);
        let grant = application.grant.clone().unwrap_or_default();
        assert_eq!(grant.status(), GrantStatus::Active);
        assert_eq!(grant.grant_date, "2026-12-01");
        // The later of the planned start (10 January) and the grant date, plus 6 months.
        assert_eq!(grant.refund_deadline_date, "2027-07-10");
        assert_eq!(grant.reservation_id, "r-1");
        assert_eq!(stored.resend_at, None);
        // A redelivery, or an answer for another grant id, changes nothing.
        let again = stored.funds_reserved(grant_id, "r-1".to_owned(), SIX_MONTHS, NOW);
        assert!(!is_changed(&again));
        let (mut waiting, _) = pending_funds();
        let other = waiting.funds_reserved(Uuid::now_v7(), "r-2".to_owned(), SIX_MONTHS, NOW);
        assert!(!is_changed(&other));
        assert_eq!(waiting.application.status(), Status::GrantPendingFunds);
    }

    #[test]
    fn denied_funds_are_not_final_until_a_decider_says_so() {
        let (mut stored, grant_id) = pending_funds();
        let denied = stored.funds_denied(grant_id, 1, 500_000, NOW);
        assert_eq!(events(&denied), ["GrantFundsDenied"]);
        assert_eq!(stored.application.status(), Status::FundsDenied);
        assert!(
            !stored
                .application
                .rejection
                .clone()
                .unwrap_or_default()
                .is_final
        );
        assert!(!is_changed(&stored.funds_denied(grant_id, 1, 500_000, NOW)));

        let mut final_one = stored.clone();
        let rejected = final_one
            .reject_for_lack_of_funds("dec-1", "no money".to_owned(), NOW)
            .expect("rejected");
        assert_eq!(events(&rejected), ["ApplicationRejected"]);
        assert_eq!(final_one.application.status(), Status::Rejected);
        assert!(
            final_one
                .application
                .rejection
                .clone()
                .unwrap_or_default()
                .is_final
        );

        let asked = stored
            .request_funds_again("cw-1", &terms(), NOW)
            .expect("asked again");
        assert_eq!(events(&asked), ["GrantRequested"]);
        assert_eq!(stored.application.status(), Status::GrantPendingFunds);
        assert_ne!(current_grant(&stored), grant_id, "a new grant id");
        assert_eq!(stored.application.rejection, None);
        // The old grant id's answer is no longer waited for.
        assert!(!is_changed(&stored.funds_reserved(
            grant_id,
            "r".to_owned(),
            SIX_MONTHS,
            NOW
        )));
    }

    #[test]
    fn funds_are_asked_again_or_rejected_only_when_denied() {
        let (mut stored, _) = granted();
        let refused = stored.request_funds_again("cw-1", &terms(), NOW);
        assert_eq!(reason(refused.expect_err("granted")), "NOT_FUNDS_DENIED");
        let refused = stored.reject_for_lack_of_funds("dec-1", String::new(), NOW);
        assert_eq!(reason(refused.expect_err("granted")), "NOT_FUNDS_DENIED");
    }
}
