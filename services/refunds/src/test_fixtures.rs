//! What the claim's and the grant's unit tests start from, written once: a NAV person by ident,
//! and a grant of 1 000 000 øre granted 2027-01-04 with its refund deadline 2027-06-30.

use ekb_platform::auth::{Caller, Organisations};
use time::macros::{date, datetime};
use uuid::Uuid;

use crate::{codes::GrantStatus, model::GrantRow};

/// A NAV employee `subject` (roles are checked at the gateway, not by the decisions).
pub fn person(subject: &str) -> Caller {
    Caller {
        subject: subject.to_owned(),
        client_id: None,
        roles: Vec::new(),
        organisations: Organisations::Listed(Vec::new()),
    }
}

/// A grant in `status`: 1 000 000 øre, granted 2027-01-04, refund deadline 2027-06-30.
pub fn grant_row(status: GrantStatus) -> GrantRow {
    GrantRow {
        grant_id: Uuid::now_v7(),
        application_id: Uuid::now_v7(),
        case_id: Uuid::now_v7(),
        employer_organisation_number: "974760673".to_owned(),
        county_code: "34".to_owned(),
        employee_pseudonym: String::new(),
        granted_amount_ore: 1_000_000,
        grant_date: date!(2027 - 01 - 04),
        application_submitted_date: None,
        planned_start_date: None,
        case_opened_date: None,
        original_deadline: date!(2027 - 06 - 30),
        refund_deadline: date!(2027 - 06 - 30),
        granted_at: datetime!(2027-01-04 09:00 UTC),
        competence_area: None,
        expert: Vec::new(),
        status,
        expired_at: None,
        cancelled_at: None,
        had_rejected_claim: false,
        ended_at: None,
    }
}
