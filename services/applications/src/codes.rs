//! The enums applications stores, under the one storage rule (ADR 0028): a short UPPER_SNAKE
//! code in a `TEXT` column whose CHECK constraint lists the codes, converted by
//! [`ekb_domain::coded_enum!`]. Each type is named after the contract enum it is carried as on
//! the wire, with the same variants. The application itself is one document (the contract's
//! `Application`); these are the columns beside it that lists filter on and the read model of
//! routing's cases.
//!
//! - [`ApplicationStatus`]: `applications.status` (migration 101 rewrote the full contract
//!   names stored before, `APPLICATION_STATUS_SUBMITTED`, to these codes and added the CHECK);
//! - [`Flow`]: `cases.flow` (short codes with a CHECK since migration 100).

use ekb_proto::v1;

ekb_domain::coded_enum! {
    /// Where an application is (`applications.status`).
    ApplicationStatus => v1::ApplicationStatus {
        /// Submitted; no caseworker has taken it yet.
        Submitted = "SUBMITTED",
        /// Caseworkers are assessing it.
        UnderReview = "UNDER_REVIEW",
        /// A decision is recommended; a decider's verdict is awaited.
        Recommended = "RECOMMENDED",
        /// Confirmed as a grant; budget's answer is awaited.
        GrantPendingFunds = "GRANT_PENDING_FUNDS",
        /// Budget reserved the money; the grant is final.
        Granted = "GRANTED",
        /// Budget denied the funds; not final.
        FundsDenied = "FUNDS_DENIED",
        /// Rejected.
        Rejected = "REJECTED",
        /// Withdrawn by the employer.
        Withdrawn = "WITHDRAWN",
    }
}

ekb_domain::coded_enum! {
    /// The flow routing sent a case to (`cases.flow`).
    Flow => v1::Flow {
        /// The regular grant flow: this service's.
        Regular = "REGULAR",
        /// The § 9a pilot flow.
        Pilot = "PILOT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The migration whose CHECK constraint lists the status codes.
    const STATUS_CHECK: &str = include_str!("../migrations/101_application_status_is_a_code.sql");

    #[test]
    fn every_contract_value_has_a_code_the_check_allows_and_unspecified_has_none() {
        for status in ApplicationStatus::ALL {
            assert_eq!(
                ApplicationStatus::from_wire(status.to_wire() as i32),
                Some(*status)
            );
            assert_eq!(ApplicationStatus::parse_code(status.code()), Some(*status));
            let quoted = format!("'{}'", status.code());
            assert!(
                STATUS_CHECK.contains(&quoted),
                "{quoted} is not in the CHECK"
            );
        }
        assert!((1..=8).all(|n| ApplicationStatus::from_wire(n).is_some()));
        assert!((1..=2).all(|n| Flow::from_wire(n).is_some()));
        assert_eq!(ApplicationStatus::from_wire(0), None);
        assert_eq!(Flow::from_wire(0), None);
        assert_eq!(Flow::Pilot.code(), "PILOT");
    }
}
