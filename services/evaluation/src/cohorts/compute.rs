//! The figures of one group of cases (one county scope × flow scope × cohort month), before
//! suppression. Kept apart from the grouping so each figure's definition reads as one line.

use crate::{
    case_facts::{CaseFacts, ClaimTiming, FallbackReason, Flow, RoutingReason},
    table::FlowScope,
};

use super::{catalog::*, stats};

/// One figure's value and the number of cases it is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The figure's name.
    pub figure: &'static str,
    /// Its value.
    pub value: f64,
    /// The cases it is computed from (see the module docs of `cohorts` for each basis).
    pub cases: u32,
}

/// Collects values; a figure with no basis (a mean over no cases) is left out.
#[derive(Default)]
struct Values(Vec<Value>);

impl Values {
    fn push(&mut self, figure: &'static str, value: Option<f64>, cases: u32) {
        if let Some(value) = value {
            self.0.push(Value {
                figure,
                value,
                cases,
            });
        }
    }

    /// A count: the value is the number of cases that match, and so is the basis.
    fn count<'a>(&mut self, figure: &'static str, cases: impl Iterator<Item = &'a CaseFacts>) {
        let n = count(cases);
        self.push(figure, Some(f64::from(n)), n);
    }

    /// A sum in øre: the basis is the cases contributing a non-zero amount.
    fn sum(&mut self, figure: &'static str, cases: &[&CaseFacts], amount: fn(&CaseFacts) -> i64) {
        let total: i64 = cases.iter().map(|case| amount(case)).sum();
        let contributors = count(cases.iter().copied().filter(|case| amount(case) != 0));
        self.push(figure, Some(total as f64), contributors);
    }

    /// Median, p75 and p90 of `days`.
    fn days(&mut self, figures: [&'static str; 3], mut days: Vec<f64>) {
        let n = len(&days);
        for (figure, p) in figures.into_iter().zip([0.5, 0.75, 0.9]) {
            self.push(figure, stats::quantile(&mut days, p), n);
        }
    }
}

fn count<'a>(cases: impl Iterator<Item = &'a CaseFacts>) -> u32 {
    u32::try_from(cases.count()).unwrap_or(u32::MAX)
}

fn len<T>(items: &[T]) -> u32 {
    u32::try_from(items.len()).unwrap_or(u32::MAX)
}

/// Every cohort figure of `cases` (all of one county scope, flow scope and month) that `flow`
/// has (see `Flows`).
pub fn cohort_values(cases: &[&CaseFacts], flow: FlowScope) -> Vec<Value> {
    let mut values = Values::default();
    let all = || cases.iter().copied();

    values.count(CASES_OPENED, all());
    if flow == FlowScope::All {
        routing_values(&mut values, cases);
    }
    if flow == FlowScope::Flow(Flow::Pilot) {
        pilot_values(&mut values, cases);
    }
    regular_values(&mut values, cases);

    values.days(
        [
            DAYS_TO_EXPERT_START_MEDIAN,
            DAYS_TO_EXPERT_START_P75,
            DAYS_TO_EXPERT_START_P90,
        ],
        all()
            .filter_map(|case| days_since_opened(case, case.expert_started_on))
            .collect(),
    );
    values.days(
        [
            DAYS_TO_DECISION_OR_ORDER_MEDIAN,
            DAYS_TO_DECISION_OR_ORDER_P75,
            DAYS_TO_DECISION_OR_ORDER_P90,
        ],
        all()
            .filter_map(|case| days_since_opened(case, case.decided_or_ordered_on))
            .collect(),
    );

    let n = len(cases);
    let nav_steps: u32 = all().map(|case| case.nav_steps).sum();
    let employer_steps: u32 = all().map(|case| case.employer_steps).sum();
    values.push(NAV_STEPS_PER_CASE, stats::ratio(f64::from(nav_steps), n), n);
    values.push(
        EMPLOYER_STEPS_PER_CASE,
        stats::ratio(f64::from(employer_steps), n),
        n,
    );

    money_values(&mut values, cases);
    values.0
}

fn routing_values(values: &mut Values, cases: &[&CaseFacts]) {
    let all = || cases.iter().copied();
    for (figure, reason) in [
        (ROUTED_PILOT_ELIGIBLE, RoutingReason::PilotEligible),
        (
            ROUTED_OUTSIDE_PILOT_COUNTY,
            RoutingReason::OutsidePilotCounty,
        ),
        (
            ROUTED_OUTSIDE_PILOT_PERIOD,
            RoutingReason::OutsidePilotPeriod,
        ),
        (
            ROUTED_EMPLOYER_CHOSE_OWN_EXPERT,
            RoutingReason::EmployerChoseOwnExpert,
        ),
        (
            ROUTED_NO_AGREEMENT_FOR_AREA,
            RoutingReason::NoAgreementForArea,
        ),
    ] {
        values.count(figure, all().filter(|case| case.routing_reason == reason));
    }
}

fn pilot_values(values: &mut Values, cases: &[&CaseFacts]) {
    let all = || cases.iter().copied();
    let ordered: Vec<&CaseFacts> = all().filter(|case| case.pilot.orders_placed > 0).collect();
    let orders: u32 = ordered.iter().map(|case| case.pilot.orders_placed).sum();
    let declines: u32 = ordered.iter().map(|case| case.pilot.orders_declined).sum();
    values.count(PILOT_CASES_ORDERED, ordered.iter().copied());
    values.push(PILOT_ORDERS_PLACED, Some(f64::from(orders)), len(&ordered));
    values.count(
        PILOT_CASES_DECLINED,
        all().filter(|case| case.pilot.orders_declined > 0),
    );
    values.push(
        PILOT_DECLINES_PER_ORDERED_CASE,
        stats::ratio(f64::from(declines), len(&ordered)),
        len(&ordered),
    );
    values.count(PILOT_ACCEPTED, all().filter(|case| case.pilot.accepted));
    values.count(PILOT_ABORTED, all().filter(|case| case.pilot.aborted));
    values.count(PILOT_COMPLETED, all().filter(|case| case.pilot.completed));
    values.count(
        PILOT_FALLBACKS,
        all().filter(|case| case.fallback.is_some()),
    );
    for (figure, reason) in [
        (
            PILOT_FALLBACK_NO_SUPPLIER_AVAILABLE,
            FallbackReason::NoSupplierAvailable,
        ),
        (
            PILOT_FALLBACK_AGREEMENTS_FULL,
            FallbackReason::AgreementsFull,
        ),
        (
            PILOT_FALLBACK_AGREEMENT_ENDED,
            FallbackReason::AgreementEnded,
        ),
        (
            PILOT_FALLBACK_EMPLOYER_CHOSE_OWN_EXPERT,
            FallbackReason::EmployerChoseOwnExpert,
        ),
    ] {
        values.count(figure, all().filter(|case| case.fallback == Some(reason)));
    }
}

fn regular_values(values: &mut Values, cases: &[&CaseFacts]) {
    let all = || cases.iter().copied().map(|case| (case, &case.regular));
    let mut count = |figure, keep: fn(&crate::case_facts::RegularFacts) -> bool| {
        values.count(
            figure,
            all()
                .filter(|(_, regular)| keep(regular))
                .map(|(case, _)| case),
        );
    };
    count(REGULAR_APPLICATIONS_SUBMITTED, |r| r.application_submitted);
    count(REGULAR_GRANTED, |r| r.granted);
    count(REGULAR_REJECTED, |r| r.rejected);
    count(REGULAR_REJECTED_LACK_OF_FUNDS, |r| {
        r.rejected_for_lack_of_funds
    });
    count(REGULAR_WITHDRAWN, |r| r.withdrawn);
    count(REGULAR_CANCELLED, |r| r.cancelled);
    count(REGULAR_GRANTS_EXPIRED_UNUSED, |r| r.grant_expired);
    count(REGULAR_CLAIMS_ON_TIME, |r| {
        r.claim == Some(ClaimTiming::OnTime)
    });
    count(REGULAR_CLAIMS_LATE, |r| r.claim == Some(ClaimTiming::Late));
    count(REGULAR_REFUNDS_PAID, |r| r.refund_paid);
}

fn money_values(values: &mut Values, cases: &[&CaseFacts]) {
    values.sum(MONEY_COMMITTED_ORE, cases, |case| case.money.committed_ore);
    values.sum(MONEY_DISBURSED_ORE, cases, |case| case.money.disbursed_ore);
    values.sum(MONEY_RELEASED_ORE, cases, |case| case.money.released_ore);

    let completed = count(cases.iter().copied().filter(|case| is_completed(case)));
    let disbursed: i64 = cases.iter().map(|case| case.money.disbursed_ore).sum();
    values.push(CASES_COMPLETED, Some(f64::from(completed)), completed);
    values.push(
        COST_PER_COMPLETED_CASE_ORE,
        stats::ratio(disbursed as f64, completed),
        completed,
    );

    let known: Vec<(i64, i64)> = cases
        .iter()
        .filter_map(|case| match case.money.max_allowed_ore {
            Some(max) if max > 0 => Some((case.money.committed_ore, max)),
            _ => None,
        })
        .collect();
    let committed: i64 = known.iter().map(|(committed, _)| committed).sum();
    let allowed: i64 = known.iter().map(|(_, max)| max).sum();
    values.push(
        SHARE_OF_MAX_RATE,
        (allowed > 0).then(|| committed as f64 / allowed as f64),
        len(&known),
    );
}

/// A case is completed when its pilot order was completed or its regular refund was paid.
pub fn is_completed(case: &CaseFacts) -> bool {
    case.pilot.completed || case.regular.refund_paid
}

fn days_since_opened(case: &CaseFacts, day: Option<time::Date>) -> Option<f64> {
    day.map(|day| (day - case.opened_on).whole_days() as f64)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::cohorts::testing::{pilot_case, regular_case};

    fn value(values: &[Value], figure: &str) -> Option<(f64, u32)> {
        values
            .iter()
            .find(|value| value.figure == figure)
            .map(|value| (value.value, value.cases))
    }

    #[test]
    fn counts_means_percentiles_and_money_follow_their_definitions() {
        let mut cases = Vec::new();
        for (i, days) in [3_i64, 5, 9, 20].into_iter().enumerate() {
            let mut case = pilot_case("34", date!(2025 - 01 - 10));
            case.pilot.orders_placed = 1 + i as u32;
            case.pilot.orders_declined = i as u32;
            case.pilot.accepted = true;
            case.pilot.completed = i < 3;
            case.expert_started_on = Some(date!(2025 - 01 - 10) + time::Duration::days(days));
            case.nav_steps = 2;
            case.money.committed_ore = 100_000;
            case.money.disbursed_ore = if i < 3 { 90_000 } else { 0 };
            case.money.max_allowed_ore = (i < 2).then_some(200_000);
            cases.push(case);
        }
        let mut fell_back = pilot_case("34", date!(2025 - 01 - 11));
        fell_back.fallback = Some(FallbackReason::AgreementsFull);
        fell_back.regular.application_submitted = true;
        fell_back.employer_steps = 1;
        cases.push(fell_back);
        let refs: Vec<&CaseFacts> = cases.iter().collect();

        let values = cohort_values(&refs, FlowScope::Flow(Flow::Pilot));

        assert_eq!(value(&values, CASES_OPENED), Some((5.0, 5)));
        assert_eq!(
            value(&values, ROUTED_PILOT_ELIGIBLE),
            None,
            "routing reasons only for both flows"
        );
        assert_eq!(value(&values, PILOT_CASES_ORDERED), Some((4.0, 4)));
        assert_eq!(value(&values, PILOT_ORDERS_PLACED), Some((10.0, 4)));
        assert_eq!(value(&values, PILOT_CASES_DECLINED), Some((3.0, 3)));
        assert_eq!(
            value(&values, PILOT_DECLINES_PER_ORDERED_CASE),
            Some((1.5, 4))
        );
        assert_eq!(value(&values, PILOT_COMPLETED), Some((3.0, 3)));
        assert_eq!(value(&values, PILOT_FALLBACKS), Some((1.0, 1)));
        assert_eq!(
            value(&values, PILOT_FALLBACK_AGREEMENTS_FULL),
            Some((1.0, 1))
        );
        assert_eq!(
            value(&values, PILOT_FALLBACK_AGREEMENT_ENDED),
            Some((0.0, 0))
        );
        assert_eq!(
            value(&values, REGULAR_APPLICATIONS_SUBMITTED),
            Some((1.0, 1))
        );
        assert_eq!(value(&values, DAYS_TO_EXPERT_START_MEDIAN), Some((7.0, 4)));
        assert_eq!(value(&values, DAYS_TO_EXPERT_START_P75), Some((11.75, 4)));
        assert_eq!(
            value(&values, DAYS_TO_DECISION_OR_ORDER_MEDIAN),
            None,
            "no case decided"
        );
        assert_eq!(value(&values, NAV_STEPS_PER_CASE), Some((8.0 / 5.0, 5)));
        assert_eq!(
            value(&values, EMPLOYER_STEPS_PER_CASE),
            Some((1.0 / 5.0, 5))
        );
        assert_eq!(value(&values, MONEY_COMMITTED_ORE), Some((400_000.0, 4)));
        assert_eq!(value(&values, MONEY_DISBURSED_ORE), Some((270_000.0, 3)));
        assert_eq!(value(&values, MONEY_RELEASED_ORE), Some((0.0, 0)));
        assert_eq!(value(&values, CASES_COMPLETED), Some((3.0, 3)));
        assert_eq!(
            value(&values, COST_PER_COMPLETED_CASE_ORE),
            Some((90_000.0, 3))
        );
        assert_eq!(value(&values, SHARE_OF_MAX_RATE), Some((0.5, 2)));
    }

    #[test]
    fn both_flows_have_routing_reasons_but_no_pilot_figures_and_regular_outcomes_count() {
        let mut case = regular_case("03", date!(2025 - 02 - 01));
        case.regular.application_submitted = true;
        case.regular.rejected = true;
        case.regular.rejected_for_lack_of_funds = true;
        case.regular.claim = Some(ClaimTiming::Late);
        case.regular.refund_paid = true;
        case.money.disbursed_ore = 50_000;
        case.decided_or_ordered_on = Some(date!(2025 - 02 - 15));
        let values = cohort_values(&[&case], FlowScope::All);

        assert_eq!(value(&values, PILOT_ORDERS_PLACED), None);
        assert_eq!(value(&values, ROUTED_OUTSIDE_PILOT_COUNTY), Some((1.0, 1)));
        assert_eq!(value(&values, ROUTED_PILOT_ELIGIBLE), Some((0.0, 0)));
        assert_eq!(value(&values, REGULAR_REJECTED), Some((1.0, 1)));
        assert_eq!(
            value(&values, REGULAR_REJECTED_LACK_OF_FUNDS),
            Some((1.0, 1))
        );
        assert_eq!(value(&values, REGULAR_CLAIMS_LATE), Some((1.0, 1)));
        assert_eq!(value(&values, REGULAR_CLAIMS_ON_TIME), Some((0.0, 0)));
        assert_eq!(
            value(&values, DAYS_TO_DECISION_OR_ORDER_MEDIAN),
            Some((14.0, 1))
        );
        assert_eq!(
            value(&values, CASES_COMPLETED),
            Some((1.0, 1)),
            "a paid refund completes"
        );
        assert_eq!(
            value(&values, COST_PER_COMPLETED_CASE_ORE),
            Some((50_000.0, 1))
        );
        assert_eq!(value(&values, SHARE_OF_MAX_RATE), None, "no max known");
    }
}
