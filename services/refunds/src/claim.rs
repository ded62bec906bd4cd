//! A refund claim as its decisions see it — the claim, every recommendation on it and the grant
//! it is against — and the rules of each change to it: a caseworker recommends, another person
//! decides (four eyes), the payment system answers or reports an outcome, a caseworker retries a
//! failed payment.
//!
//! Each rule is a method returning a [`Decision`]. The methods are pure — no database, and "now"
//! is an argument — so they are unit-tested without one (`claim/tests.rs`), and every handler
//! that leads to the same change calls the same method through `change::apply` (the store loads
//! and saves a [`Claim`]). A repeat of a change that already took effect is
//! [`Decision::Unchanged`]: the caller gets the claim as it is and nothing is written.

use ekb_domain::{FourEyes, oslo_date};
use ekb_platform::{
    ApiError,
    audit::AuditActor,
    auth::Caller,
    change::{Audit, Decision, Effects},
    payment::PaymentOutcome,
};
use ekb_proto::v1;
use time::OffsetDateTime;

use crate::{
    codes::{
        ClaimStatus, FailureReason, GrantStatus, PaymentStatus, ReductionReason, RejectionReason,
    },
    commands::{Decide, MAX_DETAIL, Outcome, Recommend, Recommendation, RecordOutcome},
    model::{ClaimRow, GrantRow, RecommendationRow},
    published::{self, subject},
};

#[cfg(test)]
mod tests;

/// The contract's reason when a decider recommended on the claim they decide (four eyes).
pub const DECIDER_IS_RECOMMENDER: &str = "DECIDER_IS_RECOMMENDER";

/// A claim with its recommendations and its grant, as stored.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The claim.
    pub row: ClaimRow,
    /// Its recommendations, oldest (version 1) first.
    pub recommendations: Vec<RecommendationRow>,
    /// The grant it is against.
    pub grant: GrantRow,
}

impl Claim {
    /// The contract's view of the claim.
    pub fn to_wire(&self) -> v1::RefundClaim {
        self.row.to_wire(&self.recommendations)
    }

    /// The caller recommends approving or rejecting the SUBMITTED claim (a new recommendation
    /// version). The same recommendation again by the same caseworker is a repeat.
    pub fn recommend(
        &mut self,
        caller: &Caller,
        command: &Recommend,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        if let Recommendation::Approve {
            payout_ore,
            reduction_reason,
            ..
        } = &command.recommendation
        {
            check_payout(self.row.payable_amount_ore, *payout_ore, *reduction_reason)?;
        }
        let by = caller.subject.as_str();
        if self.row.status == ClaimStatus::Recommended
            && self
                .recommendations
                .last()
                .is_some_and(|last| same_recommendation(last, command, by))
        {
            return Ok(Decision::Unchanged);
        }
        self.require_status(ClaimStatus::Submitted, "CLAIM_NOT_SUBMITTED")?;
        let version = i32::try_from(self.recommendations.len()).unwrap_or(i32::MAX - 1) + 1;
        let mut row = RecommendationRow {
            claim_id: self.row.claim_id,
            version,
            approve: false,
            payout_ore: None,
            reduction_reason: None,
            reduction_explanation: String::new(),
            rejection_reason: None,
            rejection_explanation: String::new(),
            note: command.note.clone(),
            recommended_by: by.to_owned(),
            recommended_at: now,
            returned_by: String::new(),
            returned_at: None,
            return_note: String::new(),
        };
        match &command.recommendation {
            Recommendation::Approve {
                payout_ore,
                reduction_reason,
                explanation,
            } => {
                row.approve = true;
                row.payout_ore = Some(*payout_ore);
                row.reduction_reason = *reduction_reason;
                row.reduction_explanation = explanation.clone();
            }
            Recommendation::Reject {
                reason,
                explanation,
            } => {
                if *reason == RejectionReason::LateClaim && !self.row.late {
                    return Err(ApiError::refused(
                        "CLAIM_NOT_LATE",
                        "LATE_CLAIM is only for a claim submitted after the deadline",
                    ));
                }
                row.rejection_reason = Some(*reason);
                row.rejection_explanation = explanation.clone();
            }
        }
        self.recommendations.push(row);
        self.row.status = ClaimStatus::Recommended;
        Ok(self
            .by_nav_employee(caller, "RecommendRefundDecision")
            .changed())
    }

    /// The caller decides the RECOMMENDED claim on recommendation `command.version`: confirm
    /// (the claim is approved — RefundApproved, the grant settled, the payment pending — or
    /// rejected — RefundRejected, the grant open again) or return it to the caseworker. Nobody
    /// who recommended on the claim may decide it. The same verdict again by the same decider
    /// is a repeat; `grace_days` dates the last claim day a rejection announces.
    pub fn decide(
        &mut self,
        caller: &Caller,
        command: &Decide,
        grace_days: i64,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        let by = caller.subject.as_str();
        if self.repeats(command, by) {
            return Ok(Decision::Unchanged);
        }
        self.require_status(ClaimStatus::Recommended, "CLAIM_NOT_RECOMMENDED")?;
        let current_version = self.recommendations.last().map_or(0, |row| row.version);
        if current_version != command.version {
            return Err(ApiError::refused(
                "RECOMMENDATION_CHANGED",
                format!("the current recommendation is version {current_version}"),
            ));
        }
        FourEyes::prepared_by(self.recommendations.iter().map(|row| &row.recommended_by))
            .require_second_person(by)
            .map_err(|_| ApiError::PermissionDenied {
                reason: DECIDER_IS_RECOMMENDER,
                message: "a decider may not decide a claim they recommended on (four eyes)"
                    .to_owned(),
            })?;
        let Some(current) = self.recommendations.last_mut() else {
            return Err(ApiError::internal(anyhow::anyhow!(
                "a recommended claim without a recommendation"
            )));
        };
        if command.verdict == v1::DeciderVerdict::Return {
            current.returned_by = by.to_owned();
            current.returned_at = Some(now);
            current.return_note = command.note.clone();
            self.row.status = ClaimStatus::Submitted;
            return Ok(self.by_nav_employee(caller, "DecideRefundClaim").changed());
        }
        let current = current.clone();
        self.row.decided_at = Some(now);
        self.row.decided_by = by.to_owned();
        self.row.recommended_by = current.recommended_by;
        let event_subject = subject(self.row.case_id, self.row.claim_id);
        let effects = self.by_nav_employee(caller, "DecideRefundClaim");
        let effects = if current.approve {
            self.row.status = ClaimStatus::Approved;
            self.row.payout_amount_ore = current.payout_ore;
            self.row.payout_reduction_reason = current.reduction_reason;
            self.row.payout_reduction_explanation = current.reduction_explanation;
            self.row.payment_status = Some(PaymentStatus::Pending);
            self.row.payment_attempt = 1;
            self.grant.status = GrantStatus::Settled;
            effects.publishing(
                event_subject,
                &published::refund_approved(&self.row, &self.grant, now),
            )
        } else {
            let Some(reason) = current.rejection_reason else {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "a recommendation to reject without a reason"
                )));
            };
            self.row.status = ClaimStatus::Rejected;
            self.row.rejection_reason = Some(reason);
            self.row.rejection_explanation = current.rejection_explanation;
            self.grant.status = GrantStatus::Active;
            self.grant.had_rejected_claim = true;
            let last_claim_date = self.grant.last_claim_date(grace_days);
            effects.publishing(
                event_subject,
                &published::refund_rejected(&self.row, &self.grant, reason, now, last_claim_date),
            )
        };
        Ok(effects.changed())
    }

    /// The payment system reports `command.outcome` of the current attempt of the APPROVED
    /// claim. The outcome already recorded, reported again, is a repeat; another is a conflict.
    pub fn record_outcome(
        &mut self,
        caller: &Caller,
        command: &RecordOutcome,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        self.require_status(ClaimStatus::Approved, "CLAIM_NOT_APPROVED")?;
        if command.attempt != self.row.payment_attempt {
            return Err(ApiError::refused(
                "NOT_CURRENT_ATTEMPT",
                format!(
                    "the current payment attempt is {}",
                    self.row.payment_attempt
                ),
            ));
        }
        if let Some(recorded) = self.recorded_outcome() {
            if recorded == command.outcome {
                return Ok(Decision::Unchanged);
            }
            return Err(ApiError::refused(
                "PAYMENT_OUTCOME_CONFLICT",
                "another outcome is already recorded for this attempt",
            ));
        }
        let audit = self.audit(
            "RecordPaymentOutcome",
            AuditActor::system_client(caller),
            v1::AccessPurpose::CaseProcessing,
        );
        Ok(self.settle(&command.outcome, audit, now))
    }

    /// The payment system's `answer` to handing over `attempt` (`None`: it could not be
    /// reached). The hand-over is marked; a payment or a failure is recorded as the outcome,
    /// an acceptance leaves the outcome to RecordPaymentOutcome. An answer for an attempt that
    /// is no longer the current pending one changes nothing.
    pub fn payment_answered(
        &mut self,
        attempt: i32,
        answer: Option<&PaymentOutcome>,
        now: OffsetDateTime,
    ) -> Decision {
        if self.row.payment_attempt != attempt
            || self.row.payment_status != Some(PaymentStatus::Pending)
        {
            return Decision::Unchanged;
        }
        self.row.payment_sent_at = self.row.payment_sent_at.or(Some(now));
        self.row.payment_handed_at = Some(now);
        let outcome = match answer {
            Some(PaymentOutcome::Paid { payment_reference }) => Outcome::Paid {
                reference: payment_reference.clone(),
                paid_date: oslo_date(now),
            },
            Some(PaymentOutcome::Failed { reason }) => Outcome::Failed {
                reason: FailureReason::Rejected,
                detail: reason.chars().take(MAX_DETAIL).collect(),
            },
            Some(PaymentOutcome::Accepted) | None => return Effects::new().changed(),
        };
        let audit = self.audit(
            "PaymentSystem",
            AuditActor::service(),
            v1::AccessPurpose::System,
        );
        self.settle(&outcome, audit, now)
    }

    /// The caller starts the next attempt of a FAILED payment (PENDING, to be handed over
    /// again). The retry is audited as a change, not a decision.
    pub fn retry_payment(&mut self, caller: &Caller) -> Result<Decision, ApiError> {
        if self.row.payment_status != Some(PaymentStatus::Failed) {
            return Err(ApiError::refused(
                "PAYMENT_NOT_FAILED",
                "only a failed payment can be retried",
            ));
        }
        self.row.payment_attempt += 1;
        self.row.payment_status = Some(PaymentStatus::Pending);
        self.row.failure_reason = None;
        self.row.failure_detail = String::new();
        self.row.payment_sent_at = None;
        self.row.payment_outcome_at = None;
        self.row.payment_handed_at = None;
        Ok(Effects::new()
            .audited_change(self.audit(
                "RetryPayment",
                AuditActor::nav_employee(caller),
                v1::AccessPurpose::CaseProcessing,
            ))
            .changed())
    }

    /// Records `outcome` of the current attempt with its event (PaymentCompleted: the grant has
    /// ended; PaymentFailed) and `audit`.
    fn settle(&mut self, outcome: &Outcome, audit: Audit, now: OffsetDateTime) -> Decision {
        self.row.payment_outcome_at = Some(now);
        let event_subject = subject(self.row.case_id, self.row.claim_id);
        let effects = Effects::new().audited(audit);
        let effects = match outcome {
            Outcome::Paid {
                reference,
                paid_date,
            } => {
                self.row.payment_status = Some(PaymentStatus::Paid);
                self.row.payment_reference = reference.clone();
                self.row.paid_date = Some(*paid_date);
                self.grant.ended_at = self.grant.ended_at.or(Some(now));
                effects.publishing(event_subject, &published::payment_completed(&self.row, now))
            }
            Outcome::Failed { reason, detail } => {
                self.row.payment_status = Some(PaymentStatus::Failed);
                self.row.failure_reason = Some(*reason);
                self.row.failure_detail = detail.clone();
                effects.publishing(
                    event_subject,
                    &published::payment_failed(&self.row, *reason, now),
                )
            }
        };
        effects.changed()
    }

    /// The outcome recorded for the current attempt, if any.
    fn recorded_outcome(&self) -> Option<Outcome> {
        match self.row.payment_status? {
            PaymentStatus::Paid => Some(Outcome::Paid {
                reference: self.row.payment_reference.clone(),
                paid_date: self.row.paid_date?,
            }),
            PaymentStatus::Failed => Some(Outcome::Failed {
                reason: self.row.failure_reason?,
                detail: self.row.failure_detail.clone(),
            }),
            PaymentStatus::Pending => None,
        }
    }

    /// Whether `command` by `by` is a verdict that already took effect.
    fn repeats(&self, command: &Decide, by: &str) -> bool {
        let current = self.recommendations.last();
        match command.verdict {
            v1::DeciderVerdict::Confirm => {
                matches!(
                    self.row.status,
                    ClaimStatus::Approved | ClaimStatus::Rejected
                ) && self.row.decided_by == by
                    && command.version == current.map_or(0, |row| row.version)
            }
            _ => {
                self.row.status == ClaimStatus::Submitted
                    && current.is_some_and(|row| {
                        row.version == command.version
                            && row.returned_by == by
                            && row.return_note == command.note
                    })
            }
        }
    }

    /// Refuses with `reason` ("the claim is <status>") unless the claim is `expected`.
    fn require_status(&self, expected: ClaimStatus, reason: &'static str) -> Result<(), ApiError> {
        if self.row.status == expected {
            return Ok(());
        }
        Err(ApiError::refused(
            reason,
            format!("the claim is {}", self.row.status.to_wire().as_str_name()),
        ))
    }

    /// The audit entry of `action` on this claim.
    fn audit(&self, action: &'static str, actor: AuditActor, purpose: v1::AccessPurpose) -> Audit {
        Audit {
            case_id: self.row.case_id,
            subject_id: self.row.claim_id,
            action,
            actor,
            purpose,
        }
    }

    /// The effects of `action`, audited as the calling NAV employee's decision for case
    /// processing.
    fn by_nav_employee(&self, caller: &Caller, action: &'static str) -> Effects {
        Effects::new().audited(self.audit(
            action,
            AuditActor::nav_employee(caller),
            v1::AccessPurpose::CaseProcessing,
        ))
    }
}

/// An approval's payout against the payable amount: at most it, and below it only with a
/// reduction reason (and with one only below it).
fn check_payout(
    payable: i64,
    payout_ore: i64,
    reduction_reason: Option<ReductionReason>,
) -> Result<(), ApiError> {
    let reduced = reduction_reason.is_some();
    if payout_ore > payable {
        return Err(ApiError::invalid(
            "approval.payout.ore",
            format!("must not exceed the payable amount {payable} øre (min of invoice and grant)"),
        ));
    }
    if payout_ore < payable && !reduced {
        return Err(ApiError::invalid(
            "approval.reduction_reason",
            "is required when the payout is below the payable amount",
        ));
    }
    if payout_ore == payable && reduced {
        return Err(ApiError::invalid(
            "approval.reduction_reason",
            "must be UNSPECIFIED when the payout is the payable amount",
        ));
    }
    Ok(())
}

/// Whether `row` (not returned) is `command` by `by`.
fn same_recommendation(row: &RecommendationRow, command: &Recommend, by: &str) -> bool {
    let same_kind = match &command.recommendation {
        Recommendation::Approve {
            payout_ore,
            reduction_reason,
            explanation,
        } => {
            row.approve
                && row.payout_ore == Some(*payout_ore)
                && row.reduction_reason == *reduction_reason
                && &row.reduction_explanation == explanation
        }
        Recommendation::Reject {
            reason,
            explanation,
        } => {
            !row.approve
                && row.rejection_reason == Some(*reason)
                && &row.rejection_explanation == explanation
        }
    };
    same_kind && row.note == command.note && row.recommended_by == by && row.returned_at.is_none()
}
