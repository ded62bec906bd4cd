//! The people and systems that call the flow services, each with a token from the local test
//! issuer (whose key protects nothing). Both flows are four-eyes, so the walks need two NAV
//! people: the caseworker (first pair of eyes: assesses, recommends, orders, attests) and the
//! decider (second pair: decides, approves). The employer's representative and a supplier act
//! for their organisations only; the payment system reports payments; "the system" is another
//! NAV system holding every role of every service (it opens cases and reads anything).

use crate::{catalog, issuer::TestIssuer};

/// The caseworker's NAV ident.
pub const CASEWORKER: &str = "Z990001";
/// The decider's NAV ident.
pub const DECIDER: &str = "Z990002";
/// The subject of the employer's representative in the employer portal.
pub const EMPLOYER_REPRESENTATIVE: &str = "portal-employer-rep";
/// The subject of the payment system.
pub const PAYMENT_SYSTEM: &str = "payment-system";
/// The subject of the NAV system holding every role.
pub const NAV_SYSTEM: &str = "nav-system";

/// The caseworker's roles: the first pair of eyes in both flows, and reading cases and budget.
const CASEWORKER_ROLES: &[&str] = &[
    "application-caseworker",
    "application-reader",
    "refund-caseworker",
    "refund-reader",
    "pilot-caseworker",
    "pilot-reader",
    "case-reader",
    "budget-reader",
];
/// The decider's roles: the second pair of eyes in both flows.
const DECIDER_ROLES: &[&str] = &[
    "application-decider",
    "application-reader",
    "refund-decider",
    "refund-reader",
    "pilot-approver",
    "pilot-reader",
];

/// The callers of a walk, with tokens signed by one issuer.
#[derive(Clone, Copy)]
pub struct People<'a> {
    issuer: &'a TestIssuer,
}

impl<'a> People<'a> {
    /// The callers whose tokens `issuer` signs.
    pub fn new(issuer: &'a TestIssuer) -> Self {
        People { issuer }
    }

    /// NAV person `subject` with `roles`.
    pub fn nav(&self, subject: &str, roles: &[&str]) -> String {
        self.issuer.token(subject, roles)
    }

    /// The caseworker ([`CASEWORKER`]).
    pub fn caseworker(&self) -> String {
        self.nav(CASEWORKER, CASEWORKER_ROLES)
    }

    /// The decider ([`DECIDER`]).
    pub fn decider(&self) -> String {
        self.nav(DECIDER, DECIDER_ROLES)
    }

    /// The caseworker holding the decider's roles as well: four eyes must still refuse them
    /// deciding what they recommended.
    pub fn caseworker_as_decider(&self) -> String {
        let roles: Vec<&str> = CASEWORKER_ROLES
            .iter()
            .chain(DECIDER_ROLES)
            .copied()
            .collect();
        self.nav(CASEWORKER, &roles)
    }

    /// The employer's representative, acting for `organisations`.
    pub fn employer(&self, organisations: &[&str]) -> String {
        self.issuer.token_for_organisations(
            EMPLOYER_REPRESENTATIVE,
            &["application-employer", "refund-employer"],
            organisations,
        )
    }

    /// Supplier `organisation`'s system.
    pub fn supplier(&self, organisation: &str) -> String {
        self.issuer.token_for_organisations(
            &format!("supplier-{organisation}"),
            &["pilot-supplier"],
            &[organisation],
        )
    }

    /// The payment system, which reports the outcome of refund and invoice payments.
    pub fn payment_system(&self) -> String {
        self.nav(
            PAYMENT_SYSTEM,
            &["refund-payment-system", "pilot-payment-system"],
        )
    }

    /// Another NAV system with every role of every service: opens cases, registers
    /// agreements, sets appropriations, reads anything.
    pub fn system(&self) -> String {
        self.nav(NAV_SYSTEM, &catalog::all_client_roles())
    }
}
