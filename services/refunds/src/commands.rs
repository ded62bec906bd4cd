//! Requests parsed into validated commands. Every broken input rule is collected, so one
//! INVALID_ARGUMENT names all of them; rules that need the stored claim or grant (the payout
//! against the payable amount, the grant date) are checked in the handlers.

use ekb_domain::{CountyCode, OrganisationNumber};
use ekb_platform::{ApiError, Violations, validate::Page};
use ekb_proto::v1;
use time::Date;
use uuid::Uuid;

use crate::codes::{
    ClaimStatus, ExtensionReason, FailureReason, GrantStatus, PaymentStatus, ReductionReason,
    RejectionReason,
};

/// Longest free text (explanations, notes).
pub const MAX_TEXT: usize = 2000;
/// Longest payment failure detail.
pub const MAX_DETAIL: usize = 500;
/// Longest invoice or payment reference.
pub const MAX_REFERENCE: usize = 64;

/// Text required when `required`, optional otherwise; bounded either way.
fn text_if(
    check: &mut Violations,
    field: &str,
    text: &str,
    required: bool,
    max: usize,
) -> Option<String> {
    if required {
        check.text(field, text, max)
    } else {
        check.optional_text(field, text, max)
    }
}

/// A validated SubmitRefundClaim.
#[derive(Debug, Clone)]
pub struct SubmitClaim {
    /// Idempotency key.
    pub request_id: Uuid,
    /// The grant.
    pub grant_id: Uuid,
    /// The claiming employer.
    pub employer: OrganisationNumber,
    /// Invoice date.
    pub invoice_date: Date,
    /// Invoice reference.
    pub invoice_reference: String,
    /// Invoice document.
    pub invoice_document_id: Uuid,
    /// Expert's report document.
    pub expert_report_document_id: Uuid,
    /// Invoice total, gross øre.
    pub invoice_amount_ore: i64,
    /// First day of the assistance.
    pub start: Date,
    /// Last day of the assistance.
    pub end: Date,
}

impl SubmitClaim {
    /// Parses `request` as submitted on `today` (Europe/Oslo).
    pub fn parse(request: &v1::SubmitRefundClaimRequest, today: Date) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let request_id = check.uuid("request_id", &request.request_id);
        let grant_id = check.uuid("grant_id", &request.grant_id);
        let employer = check.organisation_number(
            "employer_organisation_number",
            &request.employer_organisation_number,
        );
        let invoice_date = check.date("invoice_date", &request.invoice_date);
        if invoice_date.is_some_and(|date| date > today) {
            check.add("invoice_date", "must not be after today");
        }
        let invoice_reference = check.text(
            "invoice_reference",
            &request.invoice_reference,
            MAX_REFERENCE,
        );
        let invoice_document_id = check.uuid("invoice_document_id", &request.invoice_document_id);
        let expert_report_document_id = check.uuid(
            "expert_report_document_id",
            &request.expert_report_document_id,
        );
        let invoice_amount_ore = check
            .gross_amount("invoice_amount", request.invoice_amount.as_ref())
            .map(|money| money.ore());
        let start = check.date("assistance_start_date", &request.assistance_start_date);
        let end = check.date("assistance_end_date", &request.assistance_end_date);
        if end.is_some_and(|end| end > today) {
            check.add("assistance_end_date", "must not be after today");
        }
        if let (Some(start), Some(end)) = (start, end)
            && start > end
        {
            check.add(
                "assistance_start_date",
                "must not be after assistance_end_date",
            );
        }
        check.finish_with(|| {
            Some(SubmitClaim {
                request_id: request_id?,
                grant_id: grant_id?,
                employer: employer?,
                invoice_date: invoice_date?,
                invoice_reference: invoice_reference?,
                invoice_document_id: invoice_document_id?,
                expert_report_document_id: expert_report_document_id?,
                invoice_amount_ore: invoice_amount_ore?,
                start: start?,
                end: end?,
            })
        })
    }
}

/// Why a NAV caller reads: required and one a caller may state.
pub fn read_purpose(check: &mut Violations, purpose: i32) -> Option<v1::AccessPurpose> {
    let purpose = check.enumeration::<v1::AccessPurpose>("purpose", purpose)?;
    match purpose {
        v1::AccessPurpose::EmployerSelfService | v1::AccessPurpose::System => {
            check.add("purpose", "is set by the service; state why you read");
            None
        }
        purpose => Some(purpose),
    }
}

/// What a caseworker recommends.
#[derive(Debug, Clone)]
pub enum Recommendation {
    /// Approve with this payout.
    Approve {
        /// Payout, gross øre.
        payout_ore: i64,
        /// Why the payout is below the payable amount; `None` for the full amount.
        reduction_reason: Option<ReductionReason>,
        /// Reduction explanation.
        explanation: String,
    },
    /// Reject.
    Reject {
        /// Why.
        reason: RejectionReason,
        /// Explanation.
        explanation: String,
    },
}

/// A validated RecommendRefundDecision.
#[derive(Debug, Clone)]
pub struct Recommend {
    /// The claim.
    pub claim_id: Uuid,
    /// The recommendation.
    pub recommendation: Recommendation,
    /// Note to the decider.
    pub note: String,
}

impl TryFrom<v1::RecommendRefundDecisionRequest> for Recommend {
    type Error = ApiError;

    fn try_from(request: v1::RecommendRefundDecisionRequest) -> Result<Self, ApiError> {
        use v1::recommend_refund_decision_request::Recommendation as Wire;
        let mut check = Violations::new();
        let claim_id = check.uuid("claim_id", &request.claim_id);
        let note = check.optional_text("note", &request.note, MAX_TEXT);
        let recommendation = match &request.recommendation {
            None => {
                check.add("recommendation", "approval or rejection is required");
                None
            }
            Some(Wire::Approval(approval)) => {
                let payout_ore = check
                    .gross_amount("approval.payout", approval.payout.as_ref())
                    .map(|money| money.ore());
                let reduction_reason = if approval.reduction_reason == 0 {
                    Some(None)
                } else {
                    check
                        .enumeration::<ReductionReason>(
                            "approval.reduction_reason",
                            approval.reduction_reason,
                        )
                        .map(Some)
                };
                let explanation = text_if(
                    &mut check,
                    "approval.reduction_explanation",
                    &approval.reduction_explanation,
                    matches!(reduction_reason, Some(Some(_))),
                    MAX_TEXT,
                );
                (|| {
                    Some(Recommendation::Approve {
                        payout_ore: payout_ore?,
                        reduction_reason: reduction_reason?,
                        explanation: explanation?,
                    })
                })()
            }
            Some(Wire::Rejection(rejection)) => {
                let reason =
                    check.enumeration::<RejectionReason>("rejection.reason", rejection.reason);
                let explanation = text_if(
                    &mut check,
                    "rejection.explanation",
                    &rejection.explanation,
                    reason == Some(RejectionReason::Other),
                    MAX_TEXT,
                );
                (|| {
                    Some(Recommendation::Reject {
                        reason: reason?,
                        explanation: explanation?,
                    })
                })()
            }
        };
        check.finish_with(|| {
            Some(Recommend {
                claim_id: claim_id?,
                recommendation: recommendation?,
                note: note?,
            })
        })
    }
}

/// A validated DecideRefundClaim.
#[derive(Debug, Clone)]
pub struct Decide {
    /// The claim.
    pub claim_id: Uuid,
    /// The version read.
    pub version: i32,
    /// Confirm or return.
    pub verdict: v1::DeciderVerdict,
    /// The decider's note.
    pub note: String,
}

impl TryFrom<v1::DecideRefundClaimRequest> for Decide {
    type Error = ApiError;

    fn try_from(request: v1::DecideRefundClaimRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let claim_id = check.uuid("claim_id", &request.claim_id);
        let version = check.positive("recommendation_version", request.recommendation_version);
        let verdict = check.enumeration::<v1::DeciderVerdict>("verdict", request.verdict);
        let note = text_if(
            &mut check,
            "note",
            &request.note,
            verdict == Some(v1::DeciderVerdict::Return),
            MAX_TEXT,
        );
        check.finish_with(|| {
            Some(Decide {
                claim_id: claim_id?,
                version: version?,
                verdict: verdict?,
                note: note?,
            })
        })
    }
}

/// A validated ExtendRefundDeadline.
#[derive(Debug, Clone)]
pub struct Extend {
    /// The grant.
    pub grant_id: Uuid,
    /// The new deadline.
    pub new_deadline: Date,
    /// Why.
    pub reason: ExtensionReason,
    /// Explanation.
    pub explanation: String,
}

impl TryFrom<v1::ExtendRefundDeadlineRequest> for Extend {
    type Error = ApiError;

    fn try_from(request: v1::ExtendRefundDeadlineRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let grant_id = check.uuid("grant_id", &request.grant_id);
        let new_deadline = check.date("new_deadline_date", &request.new_deadline_date);
        let reason = check.enumeration::<ExtensionReason>("reason", request.reason);
        let explanation = text_if(
            &mut check,
            "explanation",
            &request.explanation,
            reason == Some(ExtensionReason::Other),
            MAX_TEXT,
        );
        check.finish_with(|| {
            Some(Extend {
                grant_id: grant_id?,
                new_deadline: new_deadline?,
                reason: reason?,
                explanation: explanation?,
            })
        })
    }
}

/// A payment outcome as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Paid.
    Paid {
        /// The payment system's reference.
        reference: String,
        /// The day paid.
        paid_date: Date,
    },
    /// Failed.
    Failed {
        /// Why.
        reason: FailureReason,
        /// Detail.
        detail: String,
    },
}

/// A validated RecordPaymentOutcome.
#[derive(Debug, Clone)]
pub struct RecordOutcome {
    /// The claim.
    pub claim_id: Uuid,
    /// The attempt.
    pub attempt: i32,
    /// The outcome.
    pub outcome: Outcome,
}

impl TryFrom<v1::RecordPaymentOutcomeRequest> for RecordOutcome {
    type Error = ApiError;

    fn try_from(request: v1::RecordPaymentOutcomeRequest) -> Result<Self, ApiError> {
        use v1::record_payment_outcome_request::Outcome as Wire;
        let mut check = Violations::new();
        let claim_id = check.uuid("claim_id", &request.claim_id);
        let attempt = check.positive("attempt", request.attempt);
        let outcome = match &request.outcome {
            None => {
                check.add("outcome", "paid or failed is required");
                None
            }
            Some(Wire::Paid(paid)) => {
                let reference = check.text(
                    "paid.payment_reference",
                    &paid.payment_reference,
                    MAX_REFERENCE,
                );
                let paid_date = check.date("paid.paid_date", &paid.paid_date);
                (|| {
                    Some(Outcome::Paid {
                        reference: reference?,
                        paid_date: paid_date?,
                    })
                })()
            }
            Some(Wire::Failed(failed)) => {
                let reason = check.enumeration::<FailureReason>("failed.reason", failed.reason);
                let detail = check.optional_text("failed.detail", &failed.detail, MAX_DETAIL);
                (|| {
                    Some(Outcome::Failed {
                        reason: reason?,
                        detail: detail?,
                    })
                })()
            }
        };
        check.finish_with(|| {
            Some(RecordOutcome {
                claim_id: claim_id?,
                attempt: attempt?,
                outcome: outcome?,
            })
        })
    }
}

/// A validated RetryPayment.
#[derive(Debug, Clone)]
pub struct Retry {
    /// The claim.
    pub claim_id: Uuid,
    /// The caseworker's note.
    pub note: String,
}

impl TryFrom<v1::RetryPaymentRequest> for Retry {
    type Error = ApiError;

    fn try_from(request: v1::RetryPaymentRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let claim_id = check.uuid("claim_id", &request.claim_id);
        let note = check.optional_text("note", &request.note, MAX_TEXT);
        check.finish_with(|| {
            Some(Retry {
                claim_id: claim_id?,
                note: note?,
            })
        })
    }
}

/// A validated ListRefundClaims.
#[derive(Debug, Clone)]
pub struct ListClaims {
    /// Claim statuses; empty for all.
    pub statuses: Vec<ClaimStatus>,
    /// County codes; empty for all.
    pub county_codes: Vec<String>,
    /// Only late claims.
    pub late_only: bool,
    /// Payment statuses; empty for no filter.
    pub payment_statuses: Vec<PaymentStatus>,
    /// The page.
    pub page: Page,
}

/// A repeated enum field, each value checked as [`Violations::enumeration`] checks one.
fn enumerations<E: TryFrom<i32>>(check: &mut Violations, field: &str, values: &[i32]) -> Vec<E> {
    values
        .iter()
        .enumerate()
        .filter_map(|(index, value)| check.enumeration(&format!("{field}[{index}]"), *value))
        .collect()
}

fn county(check: &mut Violations, field: &str, code: &str) -> Option<String> {
    check
        .check(field, CountyCode::parse(code))
        .map(|code| code.to_string())
}

impl TryFrom<v1::ListRefundClaimsRequest> for ListClaims {
    type Error = ApiError;

    fn try_from(request: v1::ListRefundClaimsRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let statuses = enumerations(&mut check, "statuses", &request.statuses);
        let payment_statuses =
            enumerations(&mut check, "payment_statuses", &request.payment_statuses);
        let county_codes = request
            .county_codes
            .iter()
            .enumerate()
            .filter_map(|(index, code)| county(&mut check, &format!("county_codes[{index}]"), code))
            .collect::<Vec<_>>();
        let filters = (
            &statuses,
            &county_codes,
            request.late_only,
            &payment_statuses,
        );
        let page = check.page(request.page_size, &request.page_token, &filters);
        check.finish_with(|| {
            Some(ListClaims {
                statuses,
                county_codes,
                late_only: request.late_only,
                payment_statuses,
                page: page?,
            })
        })
    }
}

/// A validated ListGrantsForEmployer.
#[derive(Debug, Clone)]
pub struct ListGrants {
    /// The employer.
    pub employer: OrganisationNumber,
    /// Grant statuses; empty for all.
    pub statuses: Vec<GrantStatus>,
    /// The page (its token counts rows already returned).
    pub page: Page,
}

impl TryFrom<v1::ListGrantsForEmployerRequest> for ListGrants {
    type Error = ApiError;

    fn try_from(request: v1::ListGrantsForEmployerRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let employer = check.organisation_number(
            "employer_organisation_number",
            &request.employer_organisation_number,
        );
        let statuses = enumerations(&mut check, "statuses", &request.statuses);
        let page = check.page(
            request.page_size,
            &request.page_token,
            &(&employer, &statuses),
        );
        check.finish_with(|| {
            Some(ListGrants {
                employer: employer?,
                statuses,
                page: page?,
            })
        })
    }
}

/// A validated ListExpiringGrants.
#[derive(Debug, Clone)]
pub struct ListExpiring {
    /// Deadline on or before.
    pub date: Date,
    /// County filter.
    pub county_code: Option<String>,
    /// The page (its token counts rows already returned).
    pub page: Page,
}

impl TryFrom<v1::ListExpiringGrantsRequest> for ListExpiring {
    type Error = ApiError;

    fn try_from(request: v1::ListExpiringGrantsRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let date = check.date(
            "deadline_on_or_before_date",
            &request.deadline_on_or_before_date,
        );
        let county_code = if request.county_code.is_empty() {
            Some(None)
        } else {
            county(&mut check, "county_code", &request.county_code).map(Some)
        };
        let page = check.page(
            request.page_size,
            &request.page_token,
            &(&date, &county_code),
        );
        check.finish_with(|| {
            Some(ListExpiring {
                date: date?,
                county_code: county_code?,
                page: page?,
            })
        })
    }
}

/// The rows to skip for an offset-paged listing (its token holds the rows returned so far).
pub fn offset_of(page: &Page) -> i64 {
    page.after.unwrap_or(0)
}

/// Cuts `rows` of an offset-paged listing (fetched at `offset` with the page's fetch limit) to
/// the page, and returns the next page's token: [`Page::finish`] with a row's position in the
/// listing as its sequence, so the token holds the rows returned so far.
pub fn finish_offset_page<T>(page: &Page, offset: i64, rows: Vec<T>) -> (Vec<T>, String) {
    let positioned: Vec<(T, i64)> = rows.into_iter().zip(offset + 1..).collect();
    let (positioned, token) = page.finish(positioned, |(_, position)| *position);
    (positioned.into_iter().map(|(row, _)| row).collect(), token)
}
