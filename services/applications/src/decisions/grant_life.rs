//! A grant's life after budget reserved its money (`Grant.status`, ADR 0021 §3). Refunds owns
//! the claim, so its events move the grant: a claim submitted (CLAIM_PENDING), rejected (back
//! to ACTIVE), approved (SETTLED), the deadline passed (EXPIRED) or extended. Cancelling a grant
//! asks refunds first (CANCELLATION_REQUESTED); refunds accepts (CANCELLED, and budget releases
//! the money on GrantCancelled) or refuses because a claim got there first.

use ekb_platform::{
    ApiError,
    change::{Decision, Effects},
};
use ekb_proto::v1::{
    self, ApplicationStatus as Status, GrantCancellationRefusalReason as Refusal, GrantStatus,
};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::{
    commands::Cancel,
    events,
    model::{self, day, stamp},
    store::Stored,
};

impl Stored {
    /// CancelGrant by `by` (`by_employer` if the employer's representative): an ACTIVE grant
    /// becomes CANCELLATION_REQUESTED and GrantCancellationRequested asks refunds. Refused with
    /// NOT_GRANTED, GRANT_HAS_CLAIM, GRANT_SETTLED, GRANT_EXPIRED, GRANT_CANCELLED or
    /// CANCELLATION_PENDING; the same request again changes nothing.
    pub fn cancel_grant(
        &mut self,
        by: &str,
        command: &Cancel,
        by_employer: bool,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        self.require(Status::Granted, "NOT_GRANTED")?;
        let application = &mut self.application;
        let refusal = match model::grant_status(application) {
            GrantStatus::Active => None,
            GrantStatus::ClaimPending => Some("GRANT_HAS_CLAIM"),
            GrantStatus::Settled => Some("GRANT_SETTLED"),
            GrantStatus::Expired => Some("GRANT_EXPIRED"),
            GrantStatus::Cancelled => Some("GRANT_CANCELLED"),
            GrantStatus::CancellationRequested | GrantStatus::Unspecified => {
                let same = application
                    .grant
                    .as_ref()
                    .and_then(|grant| grant.cancellation.as_ref())
                    .is_some_and(|cancellation| {
                        cancellation.reason == command.reason as i32
                            && cancellation.explanation == command.explanation
                            && cancellation.requested_by == by
                    });
                if same {
                    return Ok(Decision::Unchanged);
                }
                Some("CANCELLATION_PENDING")
            }
        };
        if let Some(reason) = refusal {
            return Err(ApiError::refused(
                reason,
                format!(
                    "the grant of application {} cannot be cancelled now",
                    application.application_id
                ),
            ));
        }
        let grant = application.grant.get_or_insert_with(Default::default);
        grant.cancellation = Some(v1::GrantCancellation {
            reason: command.reason as i32,
            explanation: command.explanation.clone(),
            requested_by: by.to_owned(),
            requested_by_employer: by_employer,
            requested_at: stamp(now),
            ..Default::default()
        });
        grant.status = GrantStatus::CancellationRequested as i32;
        let effects = Effects::new().publishing(
            events::of_current_grant(application),
            &events::cancellation_requested(application),
        );
        Ok(self.changed(now, effects))
    }

    /// Whether `grant_id` is the current grant and is in one of `states`.
    fn current_grant_in(&self, grant_id: Uuid, states: &[GrantStatus]) -> bool {
        self.is_current_grant(grant_id) && states.contains(&model::grant_status(&self.application))
    }

    /// Refunds' GrantCancellationAccepted on `grant_id`: CANCELLED; publishes GrantCancelled.
    pub fn cancellation_accepted(&mut self, grant_id: Uuid, now: OffsetDateTime) -> Decision {
        if !self.current_grant_in(grant_id, &[GrantStatus::CancellationRequested]) {
            return Decision::Unchanged;
        }
        if let Some(grant) = self.application.grant.as_mut() {
            grant.status = GrantStatus::Cancelled as i32;
            if let Some(cancellation) = grant.cancellation.as_mut() {
                cancellation.cancelled_at = stamp(now);
            }
        }
        let effects = Effects::new().publishing(
            events::of_current_grant(&self.application),
            &events::cancelled(&self.application),
        );
        self.changed(now, effects)
    }

    /// Refunds' GrantCancellationRefused on `grant_id` for `refusal`: the grant takes the state
    /// refunds found (CLAIM_PENDING, SETTLED or EXPIRED).
    pub fn cancellation_refused(
        &mut self,
        grant_id: Uuid,
        refusal: Refusal,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        let to = match refusal {
            Refusal::ClaimPending => GrantStatus::ClaimPending,
            Refusal::GrantSettled => GrantStatus::Settled,
            Refusal::GrantExpired => GrantStatus::Expired,
            Refusal::Unspecified => {
                return Err(ApiError::refused(
                    "REFUSAL_REASON_UNSPECIFIED",
                    "a cancellation refusal names its reason",
                ));
            }
        };
        if !self.current_grant_in(grant_id, &[GrantStatus::CancellationRequested]) {
            return Ok(Decision::Unchanged);
        }
        if let Some(grant) = self.application.grant.as_mut() {
            grant.status = to as i32;
            if let Some(cancellation) = grant.cancellation.as_mut() {
                cancellation.refusal_reason = refusal as i32;
                cancellation.refused_at = stamp(now);
            }
        }
        Ok(self.changed(now, Effects::new()))
    }

    /// A refunds event on `grant_id` that moves the grant from one of `from` to `to`; nothing
    /// when the grant is elsewhere (a redelivery, or an older grant id).
    pub fn move_grant(
        &mut self,
        grant_id: Uuid,
        from: &[GrantStatus],
        to: GrantStatus,
        now: OffsetDateTime,
    ) -> Decision {
        if !self.current_grant_in(grant_id, from) {
            return Decision::Unchanged;
        }
        if let Some(grant) = self.application.grant.as_mut() {
            grant.status = to as i32;
        }
        self.changed(now, Effects::new())
    }

    /// Refunds' RefundDeadlineExtended on `grant_id`: the grant's refund deadline becomes
    /// `deadline`.
    pub fn extend_refund_deadline(
        &mut self,
        grant_id: Uuid,
        deadline: Date,
        now: OffsetDateTime,
    ) -> Decision {
        if !self.is_current_grant(grant_id) {
            return Decision::Unchanged;
        }
        let deadline = day(deadline);
        match self.application.grant.as_mut() {
            Some(grant) if grant.refund_deadline_date != deadline => {
                grant.refund_deadline_date = deadline;
                self.changed(now, Effects::new())
            }
            _ => Decision::Unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::fixtures::{NOW, events, granted, is_changed, pending_funds, reason};
    use time::macros::date;

    fn cancel(reason: v1::GrantCancellationReason) -> Cancel {
        Cancel {
            application_id: Uuid::nil(),
            reason,
            explanation: String::new(),
        }
    }

    #[test]
    fn an_active_grant_s_cancellation_is_requested_once_and_accepted_once() {
        let (mut stored, grant_id) = granted();
        let request = cancel(v1::GrantCancellationReason::EmployerRequest);
        let requested = stored
            .cancel_grant("portal-user-1", &request, true, NOW)
            .expect("requested");
        assert_eq!(events(&requested), ["GrantCancellationRequested"]);
        assert_eq!(
            model::grant_status(&stored.application),
            GrantStatus::CancellationRequested
        );
        let repeat = stored.cancel_grant("portal-user-1", &request, true, NOW);
        assert!(!is_changed(&repeat.expect("repeat")));
        let other = stored.cancel_grant("cw-1", &request, false, NOW);
        assert_eq!(reason(other.expect_err("pending")), "CANCELLATION_PENDING");

        let accepted = stored.cancellation_accepted(grant_id, NOW);
        assert_eq!(events(&accepted), ["GrantCancelled"]);
        assert_eq!(
            model::grant_status(&stored.application),
            GrantStatus::Cancelled
        );
        assert!(!is_changed(&stored.cancellation_accepted(grant_id, NOW)));
        assert!(model::has_ended(&stored.application));
    }

    #[test]
    fn a_grant_with_a_claim_or_not_granted_is_not_cancelled() {
        let (mut pending, _) = pending_funds();
        let request = cancel(v1::GrantCancellationReason::EmployerRequest);
        let refused = pending.cancel_grant("portal-user-1", &request, true, NOW);
        assert_eq!(reason(refused.expect_err("not granted")), "NOT_GRANTED");
        let (mut stored, grant_id) = granted();
        let claimed = stored.move_grant(
            grant_id,
            &[GrantStatus::Active],
            GrantStatus::ClaimPending,
            NOW,
        );
        assert!(is_changed(&claimed));
        let refused = stored.cancel_grant("portal-user-1", &request, true, NOW);
        assert_eq!(reason(refused.expect_err("claim")), "GRANT_HAS_CLAIM");
    }

    #[test]
    fn a_refused_cancellation_leaves_the_grant_as_refunds_found_it() {
        let (mut stored, grant_id) = granted();
        let request = cancel(v1::GrantCancellationReason::EmployerRequest);
        stored
            .cancel_grant("portal-user-1", &request, true, NOW)
            .expect("requested");
        let refused = stored
            .cancellation_refused(grant_id, Refusal::ClaimPending, NOW)
            .expect("applied");
        assert!(is_changed(&refused));
        assert_eq!(
            model::grant_status(&stored.application),
            GrantStatus::ClaimPending
        );
        let again = stored.cancellation_refused(grant_id, Refusal::ClaimPending, NOW);
        assert!(!is_changed(&again.expect("redelivered")));
        let unspecified = stored.cancellation_refused(grant_id, Refusal::Unspecified, NOW);
        assert!(unspecified.is_err());
    }

    #[test]
    fn refunds_events_move_only_the_current_grant_from_the_states_they_name() {
        let (mut stored, grant_id) = granted();
        let settled = [GrantStatus::Active, GrantStatus::ClaimPending];
        assert!(!is_changed(&stored.move_grant(
            Uuid::now_v7(),
            &settled,
            GrantStatus::Settled,
            NOW
        )));
        assert!(is_changed(&stored.move_grant(
            grant_id,
            &settled,
            GrantStatus::Settled,
            NOW
        )));
        assert!(!is_changed(&stored.move_grant(
            grant_id,
            &settled,
            GrantStatus::Settled,
            NOW
        )));
        assert!(model::has_ended(&stored.application));
    }

    #[test]
    fn an_extended_deadline_is_taken_once() {
        let (mut stored, grant_id) = granted();
        let later = date!(2027 - 09 - 30);
        assert!(is_changed(
            &stored.extend_refund_deadline(grant_id, later, NOW)
        ));
        let grant = stored.application.grant.clone().unwrap_or_default();
        assert_eq!(grant.refund_deadline_date, "2027-09-30");
        assert!(!is_changed(
            &stored.extend_refund_deadline(grant_id, later, NOW)
        ));
        assert!(!is_changed(&stored.extend_refund_deadline(
            Uuid::now_v7(),
            later,
            NOW
        )));
    }
}
