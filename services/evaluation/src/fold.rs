//! One case's facts folded into what the figures count ([`CaseFacts`]). Pure, and independent
//! of the order the facts are given in: every field is a count of distinct facts, a "was there
//! one", a sum, or the earliest day, so the figures are the same whatever order the events
//! arrived in. The definitions (docs/adr/0033):
//!
//! - **NAV steps**, the state-changing actions of NAV's caseworkers and deciders the events
//!   show: a four-eyes decision on an application (recommendation and decision) 2; each further
//!   funds request after a denial (RequestFundsAgain) 1; making a funds denial final
//!   (RejectForLackOfFunds) 1; a cancellation NAV asked for 1; a refund claim's four-eyes
//!   decision 2; a deadline extension 1; a payment retry 1; a pilot caseworker's PlaceOrder 1
//!   (follow-up orders are placed by the service: 0); recording the expert's start 1 and the
//!   completion 1; a cancellation or abort by a caseworker 1 (cancellations by the service —
//!   funds denied, case left the pilot, agreement ended — 0); an invoice's approval (attest and
//!   approve) 2; an invoice rejection 1 (PRICE_ABOVE_AGREEMENT, by the service, 0); sending a
//!   case to the regular flow 1. Automatic outcomes (funds denied, expiry, sweeps) count 0.
//! - **Employer steps**, the forms the employer sent: an application 1, a refund claim 1 each,
//!   a withdrawal 1, a cancellation request 1. The pilot asks for none.

use std::collections::BTreeSet;

use crate::{
    case_facts::{
        CaseFacts, CaseMoney, ClaimTiming, FallbackReason, Flow, PilotFacts, RegularFacts,
        RoutingReason,
    },
    store::{Fact, kind},
};

/// Order cancellations a caseworker makes (CancelOrder); the others are the service's own.
const CASEWORKER_CANCELLATIONS: &[&str] = &[
    "ORDER_CANCELLATION_REASON_EMPLOYER_WITHDREW",
    "ORDER_CANCELLATION_REASON_NO_LONGER_NEEDED",
    "ORDER_CANCELLATION_REASON_OTHER",
];

/// The case `facts` describe (all of one case), or `None` while its CaseRouted has not arrived.
pub fn fold_case(facts: &[Fact]) -> Option<CaseFacts> {
    let routed = facts.iter().find(|fact| fact.kind == kind::CASE_ROUTED)?;
    let of = |name: &'static str| facts.iter().filter(move |fact| fact.kind == name);
    let any = |name: &'static str| of(name).next().is_some();
    let count = |name: &'static str| u32::try_from(of(name).count()).unwrap_or(u32::MAX);
    let earliest = |names: &[&str]| {
        facts
            .iter()
            .filter(|fact| names.contains(&fact.kind.as_str()))
            .filter_map(|fact| fact.on_date)
            .min()
    };
    let sum = |name: &'static str| of(name).filter_map(|fact| fact.amount_ore).sum::<i64>();

    let fallback = of(kind::FLOW_CHANGED)
        .min_by_key(|fact| fact.subject.parse::<i64>().unwrap_or(i64::MAX))
        .map(|fact| fallback_reason(&fact.code));

    let accepted_orders: BTreeSet<&str> = of(kind::ORDER_ACCEPTED)
        .map(|fact| fact.subject.as_str())
        .collect();
    let ordered_ore: i64 = of(kind::ORDER_PLACED)
        .filter(|fact| accepted_orders.contains(fact.subject.as_str()))
        .filter_map(|fact| fact.amount_ore)
        .sum();

    let first_claim = of(kind::CLAIM_SUBMITTED).min_by_key(|fact| (fact.on_date, &fact.subject));
    let expert_started_on = of(kind::ORDER_STARTED)
        .filter_map(|fact| fact.on_date)
        .chain(of(kind::CLAIM_SUBMITTED).filter_map(|fact| fact.second_date))
        .min();

    Some(CaseFacts {
        county: routed.county_code.clone(),
        opened_on: routed.on_date?,
        flow: if routed.code == "FLOW_PILOT" {
            Flow::Pilot
        } else {
            Flow::Regular
        },
        routing_reason: routing_reason(&routed.detail),
        fallback,
        pilot: PilotFacts {
            orders_placed: count(kind::ORDER_PLACED),
            orders_declined: count(kind::ORDER_DECLINED),
            accepted: !accepted_orders.is_empty(),
            aborted: any(kind::ORDER_ABORTED),
            completed: any(kind::ORDER_COMPLETED),
        },
        regular: RegularFacts {
            application_submitted: any(kind::APPLICATION_SUBMITTED),
            granted: any(kind::GRANT_APPROVED),
            rejected: any(kind::APPLICATION_REJECTED),
            rejected_for_lack_of_funds: of(kind::APPLICATION_REJECTED)
                .any(|fact| fact.code == "APPLICATION_REJECTION_REASON_FUNDS_DENIED"),
            withdrawn: any(kind::APPLICATION_WITHDRAWN),
            cancelled: any(kind::GRANT_CANCELLED),
            grant_expired: any(kind::GRANT_EXPIRED),
            claim: first_claim.map(|claim| {
                if claim.flag {
                    ClaimTiming::Late
                } else {
                    ClaimTiming::OnTime
                }
            }),
            refund_paid: any(kind::REFUND_PAID),
        },
        decided_or_ordered_on: earliest(&[
            kind::GRANT_APPROVED,
            kind::APPLICATION_REJECTED,
            kind::ORDER_PLACED,
        ]),
        expert_started_on,
        nav_steps: nav_steps(facts),
        employer_steps: employer_steps(facts),
        money: CaseMoney {
            committed_ore: sum(kind::GRANT_APPROVED) + ordered_ore,
            disbursed_ore: sum(kind::DISBURSED),
            released_ore: sum(kind::RELEASED),
            max_allowed_ore: of(kind::GRANT_APPROVED)
                .filter_map(|fact| fact.limit_ore)
                .max(),
        },
    })
}

/// NAV's state-changing actions on the case (module docs).
pub fn nav_steps(facts: &[Fact]) -> u32 {
    let grants: BTreeSet<&str> = facts
        .iter()
        .filter(|fact| fact.kind == kind::GRANT_REQUESTED)
        .map(|fact| fact.subject.as_str())
        .collect();
    let decided_applications: BTreeSet<&str> = facts
        .iter()
        .filter(|fact| fact.kind == kind::GRANT_REQUESTED)
        .map(|fact| fact.parent.as_str())
        .collect();
    // The first grant of an application is its four-eyes decision (2: recommendation and
    // decision); each later one is a caseworker's RequestFundsAgain (1).
    let grant_steps = grants.len() + decided_applications.len();
    let other_steps: usize = facts
        .iter()
        .map(|fact| match fact.kind.as_str() {
            kind::APPLICATION_REJECTED
                if fact.code == "APPLICATION_REJECTION_REASON_FUNDS_DENIED" =>
            {
                1
            }
            kind::APPLICATION_REJECTED | kind::REFUND_APPROVED | kind::REFUND_REJECTED => 2,
            kind::INVOICE_APPROVED => 2,
            kind::CANCELLATION_REQUESTED => usize::from(!fact.flag),
            kind::ORDER_REQUESTED => usize::from(!fact.flag),
            kind::ORDER_CANCELLED => {
                usize::from(CASEWORKER_CANCELLATIONS.contains(&fact.code.as_str()))
            }
            kind::INVOICE_REJECTED => {
                usize::from(fact.code != "INVOICE_REJECTION_REASON_PRICE_ABOVE_AGREEMENT")
            }
            kind::FLOW_CHANGED => usize::from(fact.detail == "FLOW_CHANGE_SOURCE_CASEWORKER"),
            kind::DEADLINE_EXTENDED
            | kind::PAYMENT_RETRIED
            | kind::ORDER_STARTED
            | kind::ORDER_COMPLETED
            | kind::ORDER_ABORTED => 1,
            _ => 0,
        })
        .sum();
    u32::try_from(grant_steps + other_steps).unwrap_or(u32::MAX)
}

/// The forms the employer sent for the case (module docs).
pub fn employer_steps(facts: &[Fact]) -> u32 {
    let steps = facts
        .iter()
        .filter(|fact| match fact.kind.as_str() {
            kind::APPLICATION_SUBMITTED | kind::CLAIM_SUBMITTED | kind::APPLICATION_WITHDRAWN => {
                true
            }
            kind::CANCELLATION_REQUESTED => fact.flag,
            _ => false,
        })
        .count();
    u32::try_from(steps).unwrap_or(u32::MAX)
}

/// The routing reason a stored `RoutingReason` value name stands for.
fn routing_reason(code: &str) -> RoutingReason {
    match code {
        "ROUTING_REASON_OUTSIDE_PILOT_COUNTY" => RoutingReason::OutsidePilotCounty,
        "ROUTING_REASON_OUTSIDE_PILOT_PERIOD" => RoutingReason::OutsidePilotPeriod,
        "ROUTING_REASON_EMPLOYER_CHOSE_OWN_EXPERT" => RoutingReason::EmployerChoseOwnExpert,
        "ROUTING_REASON_NO_AGREEMENT_FOR_AREA" => RoutingReason::NoAgreementForArea,
        _ => RoutingReason::PilotEligible,
    }
}

/// The fallback reason a stored `FlowChangeReason` value name stands for.
fn fallback_reason(code: &str) -> FallbackReason {
    match code {
        "FLOW_CHANGE_REASON_NO_SUPPLIER_AVAILABLE" => FallbackReason::NoSupplierAvailable,
        "FLOW_CHANGE_REASON_AGREEMENTS_FULL" => FallbackReason::AgreementsFull,
        "FLOW_CHANGE_REASON_AGREEMENT_ENDED" => FallbackReason::AgreementEnded,
        "FLOW_CHANGE_REASON_EMPLOYER_CHOSE_OWN_EXPERT" => FallbackReason::EmployerChoseOwnExpert,
        _ => FallbackReason::CaseworkerDecision,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn fact(kind: &str, subject: &str) -> Fact {
        Fact::new("case".to_owned(), kind, subject.to_owned())
    }

    fn routed(flow: &str, reason: &str) -> Fact {
        Fact {
            county_code: "34".to_owned(),
            code: flow.to_owned(),
            detail: reason.to_owned(),
            on_date: Some(date!(2026 - 03 - 02)),
            ..fact(kind::CASE_ROUTED, "")
        }
    }

    /// A regular case: applied, decided after one funds denial, claimed late, paid.
    fn regular_case() -> Vec<Fact> {
        vec![
            routed("FLOW_REGULAR", "ROUTING_REASON_EMPLOYER_CHOSE_OWN_EXPERT"),
            fact(kind::APPLICATION_SUBMITTED, "a"),
            Fact {
                parent: "a".to_owned(),
                ..fact(kind::GRANT_REQUESTED, "g1")
            },
            Fact {
                parent: "a".to_owned(),
                ..fact(kind::GRANT_REQUESTED, "g2")
            },
            Fact {
                on_date: Some(date!(2026 - 03 - 20)),
                amount_ore: Some(2_000_000),
                limit_ore: Some(2_400_000),
                ..fact(kind::GRANT_APPROVED, "g2")
            },
            fact(kind::DEADLINE_EXTENDED, "e"),
            Fact {
                on_date: Some(date!(2026 - 10 - 01)),
                second_date: Some(date!(2026 - 04 - 07)),
                flag: true,
                ..fact(kind::CLAIM_SUBMITTED, "c1")
            },
            fact(kind::REFUND_APPROVED, "c1"),
            fact(kind::REFUND_PAID, "c1"),
            fact(kind::PAYMENT_RETRIED, "c1:2"),
            Fact {
                amount_ore: Some(1_500_000),
                ..fact(kind::DISBURSED, "c1")
            },
            Fact {
                amount_ore: Some(500_000),
                ..fact(kind::RELEASED, "r")
            },
        ]
    }

    #[test]
    fn a_regular_case_counts_its_decisions_claim_steps_and_money() {
        let case = fold_case(&regular_case()).expect("routed");
        assert_eq!((case.flow, case.county.as_str()), (Flow::Regular, "34"));
        assert_eq!(case.routing_reason, RoutingReason::EmployerChoseOwnExpert);
        assert_eq!(case.opened_on, date!(2026 - 03 - 02));
        assert!(case.regular.application_submitted && case.regular.granted);
        assert!(!case.regular.rejected && case.regular.refund_paid);
        assert_eq!(case.regular.claim, Some(ClaimTiming::Late));
        assert_eq!(case.decided_or_ordered_on, Some(date!(2026 - 03 - 20)));
        assert_eq!(case.expert_started_on, Some(date!(2026 - 04 - 07)));
        // Decision 2 + funds asked again 1 + extension 1 + refund decision 2 + retry 1.
        assert_eq!(case.nav_steps, 7);
        // Application and claim.
        assert_eq!(case.employer_steps, 2);
        assert_eq!(
            case.money,
            CaseMoney {
                committed_ore: 2_000_000,
                disbursed_ore: 1_500_000,
                released_ore: 500_000,
                max_allowed_ore: Some(2_400_000),
            }
        );
        assert_eq!(case.fallback, None);
    }

    #[test]
    fn the_order_of_the_facts_does_not_matter() {
        let mut facts = regular_case();
        let expected = fold_case(&facts);
        facts.reverse();
        assert_eq!(fold_case(&facts), expected);
        facts.rotate_left(5);
        assert_eq!(fold_case(&facts), expected);
    }

    #[test]
    fn without_case_routed_a_case_has_no_cohort_yet() {
        let facts: Vec<Fact> = regular_case().into_iter().skip(1).collect();
        assert_eq!(fold_case(&facts), None);
    }

    #[test]
    fn a_pilot_case_that_fell_back_counts_both_flows_steps_and_the_accepted_orders_money() {
        let facts = vec![
            routed("FLOW_PILOT", "ROUTING_REASON_PILOT_ELIGIBLE"),
            fact(kind::ORDER_REQUESTED, "o1"),
            Fact {
                flag: true,
                ..fact(kind::ORDER_REQUESTED, "o2")
            },
            Fact {
                on_date: Some(date!(2026 - 03 - 04)),
                amount_ore: Some(900_000),
                ..fact(kind::ORDER_PLACED, "o1")
            },
            fact(kind::ORDER_DECLINED, "o1"),
            Fact {
                on_date: Some(date!(2026 - 03 - 12)),
                amount_ore: Some(800_000),
                ..fact(kind::ORDER_PLACED, "o2")
            },
            fact(kind::ORDER_ACCEPTED, "o2"),
            Fact {
                code: "ORDER_CANCELLATION_REASON_CASE_LEFT_PILOT".to_owned(),
                ..fact(kind::ORDER_CANCELLED, "o2")
            },
            Fact {
                code: "FLOW_CHANGE_REASON_CASEWORKER_DECISION".to_owned(),
                detail: "FLOW_CHANGE_SOURCE_CASEWORKER".to_owned(),
                ..fact(kind::FLOW_CHANGED, "1")
            },
            fact(kind::APPLICATION_SUBMITTED, "a"),
            Fact {
                code: "APPLICATION_REJECTION_REASON_CONDITIONS_NOT_MET".to_owned(),
                on_date: Some(date!(2026 - 04 - 01)),
                ..fact(kind::APPLICATION_REJECTED, "a")
            },
        ];
        let case = fold_case(&facts).expect("routed");
        assert_eq!(case.flow, Flow::Pilot, "the flow routing first chose");
        assert_eq!(case.fallback, Some(FallbackReason::CaseworkerDecision));
        assert_eq!(
            case.pilot,
            PilotFacts {
                orders_placed: 2,
                orders_declined: 1,
                accepted: true,
                aborted: false,
                completed: false,
            }
        );
        assert!(case.regular.rejected && !case.regular.rejected_for_lack_of_funds);
        assert_eq!(case.decided_or_ordered_on, Some(date!(2026 - 03 - 04)));
        assert_eq!(case.expert_started_on, None);
        // PlaceOrder 1 (the follow-up 0, the service's cancellation 0) + sent to the regular
        // flow 1 + the rejection's four eyes 2.
        assert_eq!(case.nav_steps, 4);
        assert_eq!(case.employer_steps, 1);
        assert_eq!(case.money.committed_ore, 800_000, "the accepted order only");
        assert_eq!(case.money.max_allowed_ore, None);
    }

    #[test]
    fn service_made_outcomes_are_no_nav_steps() {
        let facts = vec![
            routed("FLOW_REGULAR", "ROUTING_REASON_OUTSIDE_PILOT_COUNTY"),
            Fact {
                code: "APPLICATION_REJECTION_REASON_FUNDS_DENIED".to_owned(),
                ..fact(kind::APPLICATION_REJECTED, "a")
            },
            Fact {
                code: "INVOICE_REJECTION_REASON_PRICE_ABOVE_AGREEMENT".to_owned(),
                ..fact(kind::INVOICE_REJECTED, "i")
            },
            Fact {
                flag: true,
                ..fact(kind::CANCELLATION_REQUESTED, "x")
            },
            fact(kind::GRANT_EXPIRED, "g"),
        ];
        let case = fold_case(&facts).expect("routed");
        assert!(case.regular.rejected_for_lack_of_funds && case.regular.grant_expired);
        // Only the decider making the funds denial final.
        assert_eq!(case.nav_steps, 1);
        // The employer's cancellation request.
        assert_eq!(case.employer_steps, 1);
    }
}
