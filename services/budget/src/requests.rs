//! The consumed events as budget reads them. Eleven event types come in three shapes: a funds
//! request (GrantRequested, OrderRequested), a release (ApplicationWithdrawn,
//! ApplicationRejected, GrantCancelled, GrantExpired, OrderDeclined, OrderCancelled,
//! OrderExpired) and a disbursement (RefundApproved, InvoiceApproved). Each type says here, once,
//! which commitment it names and with what cause or amount; the saga handles the shapes.
//!
//! An id that is not a UUID makes an event impossible to apply to any commitment: that is a
//! permanent failure (dead-letter topic, with the field named). A request whose ids are fine
//! but whose amount, year, account or county cannot be honoured is answered (INVALID_REQUEST),
//! so its saga terminates.

use ekb_domain::{CountyCode, Money};
use ekb_platform::messaging::{EventFields, HandlerError};
use ekb_proto::v1;
use prost::Name;
use uuid::Uuid;

use crate::{
    config::BudgetPolicy,
    model::{Commitment, CommitmentKind, ReleaseCause, Source, SourceKind},
    rules::{Account, FIRST_BUDGET_YEAR, LAST_BUDGET_YEAR, is_budget_year},
};

/// Longest id text quoted in a dead-letter reason.
const MAX_QUOTED: usize = 64;

fn quoted(value: &str) -> String {
    let cut: String = value.chars().take(MAX_QUOTED).collect();
    format!("{cut:?}")
}

/// A required id of event `event`, field `field`.
fn required_id(event: &'static str, field: &str, value: &str) -> Result<Uuid, HandlerError> {
    EventFields::named(event).uuid(field, value)
}

/// An id that may be empty (e.g. a withdrawal before any grant was minted).
fn optional_id(
    event: &'static str,
    field: &str,
    value: &str,
) -> Result<Option<Uuid>, HandlerError> {
    EventFields::named(event).optional_uuid(field, value)
}

/// A request to reserve money for a commitment, as its owner published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundsRequest {
    /// The grant or order.
    pub commitment: Commitment,
    /// The case.
    pub case_id: Uuid,
    /// County code, as given.
    pub county_code: String,
    /// Budget year, as given.
    pub budget_year: i32,
    /// Chapter, as given (0 when the account is missing).
    pub chapter: i32,
    /// Post, as given (0 when the account is missing).
    pub post: i32,
    /// Amount in øre, as given.
    pub amount_ore: i64,
}

impl FundsRequest {
    /// The account, if the chapter and post are in range.
    pub fn account(&self) -> Option<Account> {
        Account::new(self.chapter, self.post).ok()
    }

    /// Why budget cannot honour the request as stated (answered INVALID_REQUEST), if so.
    pub fn problem(&self, policy: &BudgetPolicy) -> Option<String> {
        let mut problems = Vec::new();
        if let Err(error) = Money::from_ore(self.amount_ore).require_case_amount() {
            problems.push(format!("amount_ore {}: {error}", self.amount_ore));
        }
        if !is_budget_year(self.budget_year) {
            problems.push(format!(
                "budget_year {} is outside {FIRST_BUDGET_YEAR}–{LAST_BUDGET_YEAR}",
                self.budget_year
            ));
        }
        match Account::new(self.chapter, self.post) {
            Err(error) => problems.push(format!("account {}.{}: {error}", self.chapter, self.post)),
            Ok(account) if !policy.knows(account) => problems.push(format!(
                "account {account} is not one of the configured accounts ({})",
                policy.account_list()
            )),
            Ok(_) => {}
        }
        if CountyCode::parse(&self.county_code).is_err() {
            problems.push(format!(
                "county_code {} is not a 2-digit county code",
                quoted(&self.county_code)
            ));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    /// How this request differs from `first`, an earlier one for the same commitment (empty:
    /// a repeat).
    pub fn differences(&self, first: &FundsRequest) -> Vec<String> {
        let mut differences = Vec::new();
        let mut compare = |what: &str, before: String, now: String| {
            if before != now {
                differences.push(format!("{what} {before} before, {now} now"));
            }
        };
        compare(
            "case_id",
            first.case_id.to_string(),
            self.case_id.to_string(),
        );
        compare(
            "county_code",
            quoted(&first.county_code),
            quoted(&self.county_code),
        );
        compare(
            "budget_year",
            first.budget_year.to_string(),
            self.budget_year.to_string(),
        );
        compare(
            "account",
            format!("{}.{}", first.chapter, first.post),
            format!("{}.{}", self.chapter, self.post),
        );
        compare(
            "amount_ore",
            first.amount_ore.to_string(),
            self.amount_ore.to_string(),
        );
        differences
    }
}

/// An event that asks budget to reserve money.
pub trait RequestsFunds: Name {
    /// The request it makes; `Permanent` if an id is not a UUID.
    fn funds_request(&self) -> Result<FundsRequest, HandlerError>;
}

/// How an event names its commitment and case.
struct Names<'a> {
    kind: CommitmentKind,
    id_field: &'static str,
    id: &'a str,
    case_id: &'a str,
}

impl Names<'_> {
    /// The commitment and case of event `event`; `Permanent` if an id is not a UUID.
    fn parse(&self, event: &'static str) -> Result<(Commitment, Uuid), HandlerError> {
        let commitment = Commitment {
            kind: self.kind,
            id: required_id(event, self.id_field, self.id)?,
        };
        Ok((commitment, required_id(event, "case_id", self.case_id)?))
    }
}

/// The parts of a funds request every requesting event has.
struct RequestParts<'a> {
    names: Names<'a>,
    county_code: &'a str,
    budget_year: i32,
    account: Option<&'a v1::BudgetAccount>,
    amount_ore: i64,
}

impl RequestParts<'_> {
    fn parse(self, event: &'static str) -> Result<FundsRequest, HandlerError> {
        let (chapter, post) = self
            .account
            .map_or((0, 0), |account| (account.chapter, account.post));
        let (commitment, case_id) = self.names.parse(event)?;
        Ok(FundsRequest {
            commitment,
            case_id,
            county_code: self.county_code.to_owned(),
            budget_year: self.budget_year,
            chapter,
            post,
            amount_ore: self.amount_ore,
        })
    }
}

impl RequestsFunds for v1::GrantRequested {
    fn funds_request(&self) -> Result<FundsRequest, HandlerError> {
        RequestParts {
            names: Names {
                kind: CommitmentKind::Grant,
                id_field: "grant_id",
                id: &self.grant_id,
                case_id: &self.case_id,
            },
            county_code: &self.county_code,
            budget_year: self.budget_year,
            account: self.account.as_ref(),
            amount_ore: self.amount_ore,
        }
        .parse(Self::NAME)
    }
}

impl RequestsFunds for v1::OrderRequested {
    fn funds_request(&self) -> Result<FundsRequest, HandlerError> {
        RequestParts {
            names: Names {
                kind: CommitmentKind::PilotOrder,
                id_field: "order_id",
                id: &self.order_id,
                case_id: &self.case_id,
            },
            county_code: &self.county_code,
            budget_year: self.budget_year,
            account: self.account.as_ref(),
            amount_ore: self.amount_ore,
        }
        .parse(Self::NAME)
    }
}

/// A request to release what a commitment has outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseRequest {
    /// The grant or order.
    pub commitment: Commitment,
    /// The case.
    pub case_id: Uuid,
    /// Why.
    pub cause: ReleaseCause,
}

/// An event that releases a commitment's outstanding money.
pub trait ReleasesFunds: Name {
    /// The release it asks for; `None` when it names no commitment (an application withdrawn or
    /// rejected before a grant id was minted); `Permanent` if an id is not a UUID.
    fn release(&self) -> Result<Option<ReleaseRequest>, HandlerError>;
}

/// Implements [`ReleasesFunds`] for events naming the commitment in field `$id` (`optional`
/// when the field may be empty) of kind `$kind`, released for `$cause`.
macro_rules! releases {
    ($($event:ty => $kind:ident $id:ident ($presence:ident), $cause:ident;)*) => {
        $(impl ReleasesFunds for $event {
            fn release(&self) -> Result<Option<ReleaseRequest>, HandlerError> {
                let id = releases!(@id $presence, Self::NAME, stringify!($id), &self.$id);
                let Some(id) = id else {
                    return Ok(None);
                };
                Ok(Some(ReleaseRequest {
                    commitment: Commitment { kind: CommitmentKind::$kind, id },
                    case_id: required_id(Self::NAME, "case_id", &self.case_id)?,
                    cause: ReleaseCause::$cause,
                }))
            }
        })*
    };
    (@id optional, $event:expr, $field:expr, $value:expr) => { optional_id($event, $field, $value)? };
    (@id required, $event:expr, $field:expr, $value:expr) => { Some(required_id($event, $field, $value)?) };
}

releases! {
    v1::ApplicationWithdrawn => Grant grant_id (optional), ApplicationWithdrawn;
    v1::ApplicationRejected => Grant grant_id (optional), ApplicationRejected;
    v1::GrantCancelled => Grant grant_id (required), GrantCancelled;
    v1::GrantExpired => Grant grant_id (required), GrantExpired;
    v1::OrderDeclined => PilotOrder order_id (required), OrderDeclined;
    v1::OrderCancelled => PilotOrder order_id (required), OrderCancelled;
    v1::OrderExpired => PilotOrder order_id (required), OrderExpired;
}

/// A request to pay an approved claim or invoice from a commitment's reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disbursement {
    /// The grant or order paid from.
    pub commitment: Commitment,
    /// The case.
    pub case_id: Uuid,
    /// The claim or invoice paid.
    pub source: Source,
    /// The payout in øre.
    pub amount_ore: i64,
}

/// An event that disburses money from a commitment's reservation.
pub trait DisbursesFunds: Name {
    /// The disbursement it asks for; `Permanent` if an id is not a UUID or the amount is not
    /// positive.
    fn disbursement(&self) -> Result<Disbursement, HandlerError>;
}

/// The parts of a disbursement every disbursing event has.
struct DisbursementParts<'a> {
    names: Names<'a>,
    source_kind: SourceKind,
    source_field: &'static str,
    source_id: &'a str,
    amount_field: &'static str,
    amount_ore: i64,
}

impl DisbursementParts<'_> {
    fn parse(self, event: &'static str) -> Result<Disbursement, HandlerError> {
        EventFields::named(event).case_amount(self.amount_field, self.amount_ore)?;
        let (commitment, case_id) = self.names.parse(event)?;
        Ok(Disbursement {
            commitment,
            case_id,
            source: Source {
                kind: self.source_kind,
                id: required_id(event, self.source_field, self.source_id)?,
            },
            amount_ore: self.amount_ore,
        })
    }
}

impl DisbursesFunds for v1::RefundApproved {
    fn disbursement(&self) -> Result<Disbursement, HandlerError> {
        DisbursementParts {
            names: Names {
                kind: CommitmentKind::Grant,
                id_field: "grant_id",
                id: &self.grant_id,
                case_id: &self.case_id,
            },
            source_kind: SourceKind::RefundClaim,
            source_field: "claim_id",
            source_id: &self.claim_id,
            amount_field: "payout_amount_ore",
            amount_ore: self.payout_amount_ore,
        }
        .parse(Self::NAME)
    }
}

impl DisbursesFunds for v1::InvoiceApproved {
    fn disbursement(&self) -> Result<Disbursement, HandlerError> {
        DisbursementParts {
            names: Names {
                kind: CommitmentKind::PilotOrder,
                id_field: "order_id",
                id: &self.order_id,
                case_id: &self.case_id,
            },
            source_kind: SourceKind::SupplierInvoice,
            source_field: "invoice_id",
            source_id: &self.invoice_id,
            amount_field: "amount_ore",
            amount_ore: self.amount_ore,
        }
        .parse(Self::NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BudgetPolicy {
        BudgetPolicy {
            accounts: vec![Account::SCHEME],
            default_thresholds: vec![50],
        }
    }

    fn grant_requested() -> v1::GrantRequested {
        v1::GrantRequested {
            grant_id: Uuid::now_v7().to_string(),
            case_id: Uuid::now_v7().to_string(),
            county_code: "34".to_owned(),
            amount_ore: 2_400_000,
            budget_year: 2026,
            account: Some(v1::BudgetAccount {
                chapter: 2650,
                post: 76,
            }),
            ..Default::default()
        }
    }

    fn permanent_reason<T: std::fmt::Debug>(result: Result<T, HandlerError>) -> String {
        match result {
            Err(HandlerError::Permanent(reason)) => reason,
            other => panic!("expected a permanent failure, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_request_has_no_problem() {
        let request = grant_requested().funds_request().expect("valid");
        assert_eq!(request.commitment.kind, CommitmentKind::Grant);
        assert_eq!(request.account(), Some(Account::SCHEME));
        assert_eq!(request.problem(&policy()), None);
    }

    #[test]
    fn every_problem_of_a_request_is_named() {
        let mut event = grant_requested();
        event.amount_ore = 0;
        event.budget_year = 1999;
        event.account = Some(v1::BudgetAccount {
            chapter: 605,
            post: 1,
        });
        event.county_code = "3".to_owned();
        let problem = event
            .funds_request()
            .expect("ids are fine")
            .problem(&policy())
            .expect("problems");
        for expected in [
            "amount_ore 0",
            "budget_year 1999",
            "account 605.01",
            "county_code \"3\"",
        ] {
            assert!(problem.contains(expected), "{problem}");
        }
        event.account = None;
        let problem = event.funds_request().expect("ids").problem(&policy());
        assert!(problem.is_some_and(|text| text.contains("account 0.0")));
    }

    #[test]
    fn an_id_that_is_not_a_uuid_is_permanent_and_names_the_field() {
        let mut event = grant_requested();
        event.grant_id = String::new();
        assert!(permanent_reason(event.funds_request()).contains("GrantRequested.grant_id"));
        let mut order = v1::OrderRequested {
            order_id: Uuid::now_v7().to_string(),
            case_id: "case-1".to_owned(),
            ..Default::default()
        };
        assert!(permanent_reason(order.funds_request()).contains("OrderRequested.case_id"));
        order.case_id = "x".repeat(500);
        assert!(
            !permanent_reason(order.funds_request()).contains("xxx"),
            "the value is not echoed"
        );
    }

    #[test]
    fn a_withdrawal_without_a_grant_releases_nothing() {
        let withdrawn = v1::ApplicationWithdrawn {
            case_id: Uuid::now_v7().to_string(),
            ..Default::default()
        };
        assert_eq!(withdrawn.release().expect("fine"), None);
        let expired = v1::GrantExpired {
            case_id: Uuid::now_v7().to_string(),
            ..Default::default()
        };
        assert!(permanent_reason(expired.release()).contains("GrantExpired.grant_id"));
    }

    #[test]
    fn each_release_names_its_commitment_kind_and_cause() {
        let id = Uuid::now_v7();
        let case_id = Uuid::now_v7().to_string();
        let expired = v1::OrderExpired {
            order_id: id.to_string(),
            case_id: case_id.clone(),
            ..Default::default()
        };
        let release = expired.release().expect("fine").expect("a release");
        assert_eq!(
            release.commitment,
            Commitment {
                kind: CommitmentKind::PilotOrder,
                id
            }
        );
        assert_eq!(release.cause, ReleaseCause::OrderExpired);
        let cancelled = v1::GrantCancelled {
            grant_id: id.to_string(),
            case_id,
            ..Default::default()
        };
        let release = cancelled.release().expect("fine").expect("a release");
        assert_eq!(release.commitment.kind, CommitmentKind::Grant);
        assert_eq!(release.cause, ReleaseCause::GrantCancelled);
    }

    #[test]
    fn a_disbursement_needs_a_positive_amount_and_a_source() {
        let approved = v1::RefundApproved {
            claim_id: Uuid::now_v7().to_string(),
            grant_id: Uuid::now_v7().to_string(),
            case_id: Uuid::now_v7().to_string(),
            payout_amount_ore: 1_000,
            ..Default::default()
        };
        let disbursement = approved.disbursement().expect("valid");
        assert_eq!(disbursement.source.kind, SourceKind::RefundClaim);
        let nothing = v1::RefundApproved {
            payout_amount_ore: 0,
            ..approved.clone()
        };
        assert!(
            permanent_reason(nothing.disbursement())
                .contains("RefundApproved.payout_amount_ore must be")
        );
        let invoice = v1::InvoiceApproved {
            invoice_id: "inv-1".to_owned(),
            order_id: Uuid::now_v7().to_string(),
            case_id: Uuid::now_v7().to_string(),
            amount_ore: 5,
            ..Default::default()
        };
        assert!(permanent_reason(invoice.disbursement()).contains("invoice_id"));
    }
}
