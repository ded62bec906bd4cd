//! Budget's requests parsed into validated commands. Every broken rule is a field violation
//! (INVALID_ARGUMENT names the field and the rule; nothing is stored or published). Which
//! accounts exist is configuration, so parsing takes the [`BudgetPolicy`].

use ekb_domain::{CountyCode, Flow, Money};
use ekb_platform::{ApiError, Violations, validate::Page};
use ekb_proto::v1;
use uuid::Uuid;

use crate::{
    config::BudgetPolicy,
    model::{Commitment, CommitmentKind, Status},
    rules::{Account, budget_year_rule, is_budget_year, parse_month, threshold_levels},
};

/// Longest note on an appropriation.
pub const MAX_NOTE_CHARS: usize = 500;

/// The checks budget's requests share, on top of the platform's.
trait BudgetChecks {
    fn budget_year(&mut self, field: &str, year: i32) -> Option<i32>;
    fn account(
        &mut self,
        field: &str,
        account: Option<&v1::BudgetAccount>,
        policy: &BudgetPolicy,
    ) -> Option<Account>;
    fn optional_county(&mut self, field: &str, text: &str) -> Option<Option<String>>;
    fn optional_flow(&mut self, field: &str, flow: Option<i32>) -> Option<Option<Flow>>;
}

impl BudgetChecks for Violations {
    fn budget_year(&mut self, field: &str, year: i32) -> Option<i32> {
        if is_budget_year(year) {
            Some(year)
        } else {
            self.add(field, budget_year_rule());
            None
        }
    }

    fn account(
        &mut self,
        field: &str,
        account: Option<&v1::BudgetAccount>,
        policy: &BudgetPolicy,
    ) -> Option<Account> {
        let account = self.required(field, account)?;
        let mut in_range = true;
        if !(1..=9999).contains(&account.chapter) {
            self.add(&format!("{field}.chapter"), "must be from 1 to 9999");
            in_range = false;
        }
        if !(1..=99).contains(&account.post) {
            self.add(&format!("{field}.post"), "must be from 1 to 99");
            in_range = false;
        }
        let account = Account::new(account.chapter, account.post)
            .ok()
            .filter(|_| in_range)?;
        if !policy.knows(account) {
            self.add(
                field,
                format!(
                    "{account} is not a configured account (configured: {})",
                    policy.account_list()
                ),
            );
            return None;
        }
        Some(account)
    }

    fn optional_county(&mut self, field: &str, text: &str) -> Option<Option<String>> {
        if text.is_empty() {
            return Some(None);
        }
        self.check(field, CountyCode::parse(text))
            .map(|county| Some(county.as_str().to_owned()))
    }

    fn optional_flow(&mut self, field: &str, flow: Option<i32>) -> Option<Option<Flow>> {
        let Some(value) = flow else {
            return Some(None);
        };
        match self.enumeration::<v1::Flow>(field, value)? {
            v1::Flow::Regular => Some(Some(Flow::Regular)),
            v1::Flow::Pilot => Some(Some(Flow::Pilot)),
            v1::Flow::Unspecified => None,
        }
    }
}

/// SetAppropriation, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAppropriation {
    /// Budget year.
    pub budget_year: i32,
    /// Account.
    pub account: Account,
    /// Amount in øre, zero or more.
    pub appropriated_ore: i64,
    /// Alert levels, ascending; the configured default when the request names none.
    pub thresholds: Vec<i32>,
    /// Why, trimmed (may be empty).
    pub note: String,
}

impl SetAppropriation {
    /// Parses `request` under `policy`.
    pub fn parse(
        request: &v1::SetAppropriationRequest,
        policy: &BudgetPolicy,
    ) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let budget_year = check.budget_year("budget_year", request.budget_year);
        let account = check.account("account", request.account.as_ref(), policy);
        if request.appropriated_ore < 0 {
            check.add(
                "appropriated_ore",
                "must not be negative (whole øre, zero or more)",
            );
        }
        check.check(
            "appropriated_ore",
            Money::from_ore(request.appropriated_ore).require_at_most(Money::MAX_APPROPRIATION),
        );
        let thresholds = if request.threshold_percents.is_empty() {
            Some(policy.default_thresholds.clone())
        } else {
            check.check(
                "threshold_percents",
                threshold_levels(&request.threshold_percents)
                    .map_err(|error| format!("each level must be 1–100 and given once: {error}")),
            )
        };
        let note = check.optional_text("note", &request.note, MAX_NOTE_CHARS);
        check.finish_with(|| {
            Some(SetAppropriation {
                budget_year: budget_year?,
                account: account?,
                appropriated_ore: request.appropriated_ore,
                thresholds: thresholds?,
                note: note?,
            })
        })
    }
}

/// GetAppropriation, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetAppropriation {
    /// Budget year.
    pub budget_year: i32,
    /// Account.
    pub account: Account,
}

impl GetAppropriation {
    /// Parses `request` under `policy`.
    pub fn parse(
        request: &v1::GetAppropriationRequest,
        policy: &BudgetPolicy,
    ) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let budget_year = check.budget_year("budget_year", request.budget_year);
        let account = check.account("account", request.account.as_ref(), policy);
        check.finish_with(|| {
            Some(GetAppropriation {
                budget_year: budget_year?,
                account: account?,
            })
        })
    }
}

/// GetUsage, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetUsage {
    /// Budget year.
    pub budget_year: i32,
    /// Only this county.
    pub county: Option<String>,
    /// Only this flow.
    pub flow: Option<Flow>,
    /// Only this month, `YYYY-MM`.
    pub month: Option<String>,
    /// Only this account.
    pub account: Option<Account>,
}

impl GetUsage {
    /// Parses `request` under `policy`.
    pub fn parse(request: &v1::GetUsageRequest, policy: &BudgetPolicy) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let budget_year = check.budget_year("budget_year", request.budget_year);
        let county = check.optional_county("county_code", &request.county_code);
        let flow = check.optional_flow("flow", request.flow);
        let month = if request.month.is_empty() {
            Some(None)
        } else {
            check.check("month", parse_month(&request.month)).map(Some)
        };
        let account = match &request.account {
            None => Some(None),
            Some(account) => check.account("account", Some(account), policy).map(Some),
        };
        check.finish_with(|| {
            Some(GetUsage {
                budget_year: budget_year?,
                county: county?,
                flow: flow?,
                month: month?,
                account: account?,
            })
        })
    }
}

/// ListReservations, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListReservations {
    /// Budget year.
    pub budget_year: i32,
    /// Only this county.
    pub county: Option<String>,
    /// Only this flow.
    pub flow: Option<Flow>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only this case.
    pub case_id: Option<Uuid>,
    /// The page, newest first: `after` is the sequence number the previous page ended at.
    pub page: Page,
}

impl ListReservations {
    /// Parses `request`.
    pub fn parse(request: &v1::ListReservationsRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let budget_year = check.budget_year("budget_year", request.budget_year);
        let county = check.optional_county("county_code", &request.county_code);
        let flow = check.optional_flow("flow", request.flow);
        let status = match request.status {
            None => Some(None),
            Some(value) => check
                .enumeration::<v1::ReservationStatus>("status", value)
                .and_then(|wire| Status::from_wire(wire as i32))
                .map(Some),
        };
        let case_id = if request.case_id.is_empty() {
            Some(None)
        } else {
            check.uuid("case_id", &request.case_id).map(Some)
        };
        let filters = (budget_year, &county, flow, status, case_id);
        let page = check.page(request.page_size, &request.page_token, &filters);
        check.finish_with(|| {
            Some(ListReservations {
                budget_year: budget_year?,
                county: county?,
                flow: flow?,
                status: status?,
                case_id: case_id?,
                page: page?,
            })
        })
    }
}

/// GetReservation, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetReservation {
    /// The grant or order.
    pub commitment: Commitment,
}

impl TryFrom<v1::GetReservationRequest> for GetReservation {
    type Error = ApiError;

    fn try_from(request: v1::GetReservationRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let commitment = check.required("commitment", request.commitment.as_ref());
        let (kind, id) = match commitment {
            Some(commitment) => (
                check
                    .enumeration::<v1::CommitmentKind>("commitment.kind", commitment.kind)
                    .and_then(|wire| CommitmentKind::from_wire(wire as i32)),
                check.uuid("commitment.commitment_id", &commitment.commitment_id),
            ),
            None => (None, None),
        };
        check.finish_with(|| {
            Some(GetReservation {
                commitment: Commitment {
                    kind: kind?,
                    id: id?,
                },
            })
        })
    }
}

/// Reconcile, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconcile {
    /// Budget year.
    pub budget_year: i32,
}

impl TryFrom<v1::ReconcileRequest> for Reconcile {
    type Error = ApiError;

    fn try_from(request: v1::ReconcileRequest) -> Result<Self, ApiError> {
        let mut check = Violations::new();
        let budget_year = check.budget_year("budget_year", request.budget_year);
        check.finish_with(|| {
            Some(Reconcile {
                budget_year: budget_year?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BudgetPolicy {
        BudgetPolicy {
            accounts: vec![Account::SCHEME, Account::new(605, 1).expect("valid")],
            default_thresholds: vec![50, 75, 90, 100],
        }
    }

    fn scheme() -> Option<v1::BudgetAccount> {
        Some(v1::BudgetAccount {
            chapter: 2650,
            post: 76,
        })
    }

    fn fields<T: std::fmt::Debug>(result: Result<T, ApiError>) -> Vec<String> {
        match result {
            Err(ApiError::InvalidArgument(violations)) => violations
                .into_iter()
                .map(|violation| violation.field)
                .collect(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn set_appropriation_uses_the_configured_levels_when_none_are_given() {
        let request = v1::SetAppropriationRequest {
            budget_year: 2026,
            account: scheme(),
            appropriated_ore: 5_000_000_000,
            threshold_percents: vec![],
            note: "  Prop. 1 S (2025–2026) ".to_owned(),
        };
        let command = SetAppropriation::parse(&request, &policy()).expect("valid");
        assert_eq!(command.thresholds, [50, 75, 90, 100]);
        assert_eq!(command.note, "Prop. 1 S (2025–2026)");
        assert_eq!(command.account, Account::SCHEME);
    }

    #[test]
    fn set_appropriation_reports_every_broken_rule() {
        let request = v1::SetAppropriationRequest {
            budget_year: 1999,
            account: Some(v1::BudgetAccount {
                chapter: 0,
                post: 100,
            }),
            appropriated_ore: -1,
            threshold_percents: vec![50, 50],
            note: "x".repeat(501),
        };
        assert_eq!(
            fields(SetAppropriation::parse(&request, &policy())),
            [
                "budget_year",
                "account.chapter",
                "account.post",
                "appropriated_ore",
                "threshold_percents",
                "note"
            ]
        );
        let unknown = v1::SetAppropriationRequest {
            budget_year: 2026,
            account: Some(v1::BudgetAccount {
                chapter: 2650,
                post: 77,
            }),
            ..Default::default()
        };
        assert_eq!(
            fields(SetAppropriation::parse(&unknown, &policy())),
            ["account"]
        );
        let missing = v1::SetAppropriationRequest {
            budget_year: 2026,
            ..Default::default()
        };
        assert_eq!(
            fields(SetAppropriation::parse(&missing, &policy())),
            ["account"]
        );
    }

    #[test]
    fn usage_filters_are_optional_but_checked() {
        let all = GetUsage::parse(
            &v1::GetUsageRequest {
                budget_year: 2026,
                ..Default::default()
            },
            &policy(),
        )
        .expect("valid");
        assert_eq!(
            (all.county, all.flow, all.month, all.account),
            (None, None, None, None)
        );
        let bad = v1::GetUsageRequest {
            budget_year: 0,
            county_code: "3".to_owned(),
            flow: Some(0),
            month: "2026-13".to_owned(),
            account: Some(v1::BudgetAccount {
                chapter: 1,
                post: 1,
            }),
        };
        assert_eq!(
            fields(GetUsage::parse(&bad, &policy())),
            ["budget_year", "county_code", "flow", "month", "account"]
        );
    }

    #[test]
    fn listing_checks_its_filters_and_page() {
        let bad = v1::ListReservationsRequest {
            budget_year: 2026,
            county_code: "034".to_owned(),
            flow: Some(9),
            status: Some(0),
            case_id: "case".to_owned(),
            page_size: 501,
            page_token: "42".to_owned(),
        };
        assert_eq!(
            fields(ListReservations::parse(&bad)),
            [
                "county_code",
                "flow",
                "status",
                "case_id",
                "page_size",
                "page_token"
            ]
        );
        let pending = v1::ListReservationsRequest {
            budget_year: 2026,
            status: Some(v1::ReservationStatus::Pending as i32),
            ..Default::default()
        };
        let first = ListReservations::parse(&pending).expect("valid");
        assert_eq!(first.status, Some(Status::Pending));
        assert_eq!(first.page.size, Page::DEFAULT_SIZE);
        let token = first.page.token_after(7);
        let next = ListReservations::parse(&v1::ListReservationsRequest {
            page_token: token.clone(),
            ..pending.clone()
        })
        .expect("valid");
        assert_eq!(next.page.after, Some(7));
        assert_eq!(
            fields(ListReservations::parse(&v1::ListReservationsRequest {
                page_token: token,
                status: Some(v1::ReservationStatus::Reserved as i32),
                ..pending
            })),
            ["page_token"],
            "a token is bound to its filters"
        );
    }

    #[test]
    fn a_commitment_needs_a_kind_and_a_uuid() {
        assert_eq!(
            fields(GetReservation::try_from(v1::GetReservationRequest {
                commitment: None
            })),
            ["commitment"]
        );
        assert_eq!(
            fields(GetReservation::try_from(v1::GetReservationRequest {
                commitment: Some(v1::Commitment {
                    kind: 0,
                    commitment_id: String::new()
                })
            })),
            ["commitment.kind", "commitment.commitment_id"]
        );
        assert_eq!(
            fields(Reconcile::try_from(v1::ReconcileRequest {
                budget_year: 2101
            })),
            ["budget_year"]
        );
    }
}
