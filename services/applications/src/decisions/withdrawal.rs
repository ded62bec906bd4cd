//! The employer withdraws an application it no longer wants, at any point before it is granted
//! or rejected. A funds request still waiting is withdrawn with it (budget releases on
//! ApplicationWithdrawn, which carries the current grant id).

use ekb_platform::{
    ApiError,
    change::{Decision, Effects},
};
use ekb_proto::v1::{self, ApplicationStatus as Status};
use time::OffsetDateTime;

use super::refused;
use crate::{
    events,
    model::{self, stamp},
    store::Stored,
};

impl Stored {
    /// WithdrawApplication by `by` with `reason`: WITHDRAWN (ALREADY_GRANTED, ALREADY_REJECTED,
    /// ALREADY_WITHDRAWN otherwise; the same withdrawal again changes nothing); publishes
    /// ApplicationWithdrawn.
    pub fn withdraw(
        &mut self,
        by: &str,
        reason: String,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        let application = &mut self.application;
        let previous = model::status(application);
        match previous {
            Status::Granted => return Err(refused("ALREADY_GRANTED", application)),
            Status::Rejected => return Err(refused("ALREADY_REJECTED", application)),
            Status::Withdrawn => {
                let same = application.withdrawal.as_ref().is_some_and(|withdrawal| {
                    withdrawal.withdrawn_by == by && withdrawal.reason == reason
                });
                if same {
                    return Ok(Decision::Unchanged);
                }
                return Err(refused("ALREADY_WITHDRAWN", application));
            }
            _ => {}
        }
        if let Some(request) = model::current_request(application)
            && request.outcome == v1::FundsRequestOutcome::Pending as i32
        {
            request.outcome = v1::FundsRequestOutcome::Withdrawn as i32;
            request.answered_at = stamp(now);
        }
        application.withdrawal = Some(v1::ApplicationWithdrawal {
            reason,
            withdrawn_at: stamp(now),
            withdrawn_by: by.to_owned(),
        });
        application.status = Status::Withdrawn as i32;
        self.resend_at = None;
        self.resend_interval_seconds = None;
        let effects = Effects::new().publishing(
            events::of_application(&self.application),
            &events::withdrawn(&self.application, previous),
        );
        Ok(self.changed(now, effects))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::fixtures::{
        NOW, events, granted, is_changed, pending_funds, reason, submitted,
    };

    #[test]
    fn a_withdrawal_withdraws_the_waiting_funds_request_and_is_repeatable() {
        let (mut stored, _) = pending_funds();
        let withdrawn = stored
            .withdraw("portal-user-1", "no longer needed".to_owned(), NOW)
            .expect("withdrawn");
        assert_eq!(events(&withdrawn), ["ApplicationWithdrawn"]);
        assert_eq!(stored.application.status(), Status::Withdrawn);
        let request = stored
            .application
            .grant
            .as_ref()
            .and_then(|grant| grant.funds_requests.last())
            .cloned()
            .unwrap_or_default();
        assert_eq!(request.outcome(), v1::FundsRequestOutcome::Withdrawn);
        assert_eq!(stored.resend_at, None);
        let repeat = stored.withdraw("portal-user-1", "no longer needed".to_owned(), NOW);
        assert!(!is_changed(&repeat.expect("repeat")));
        let other = stored.withdraw("portal-user-1", "another reason".to_owned(), NOW);
        assert_eq!(reason(other.expect_err("withdrawn")), "ALREADY_WITHDRAWN");
    }

    #[test]
    fn a_granted_or_rejected_application_is_not_withdrawn() {
        let (mut stored, _) = granted();
        let refused = stored.withdraw("portal-user-1", String::new(), NOW);
        assert_eq!(reason(refused.expect_err("granted")), "ALREADY_GRANTED");
        let mut rejected = submitted();
        rejected.application.status = Status::Rejected as i32;
        let refused = rejected.withdraw("portal-user-1", String::new(), NOW);
        assert_eq!(reason(refused.expect_err("rejected")), "ALREADY_REJECTED");
    }
}
