//! The figures' names, units and bases in one place, so that the computation, the suppression
//! rules (which figures share a basis or add up to another) and the report's labels cannot drift
//! apart. The meaning of each figure is documented in the `cohorts` module.

/// `cases_opened`: cases opened in the cohort.
pub const CASES_OPENED: &str = "cases_opened";
/// `routed_pilot_eligible`: cases routed to the pilot.
pub const ROUTED_PILOT_ELIGIBLE: &str = "routed_pilot_eligible";
/// `routed_outside_pilot_county`: regular because the county is not a pilot county.
pub const ROUTED_OUTSIDE_PILOT_COUNTY: &str = "routed_outside_pilot_county";
/// `routed_outside_pilot_period`: regular because the date lies outside every pilot period.
pub const ROUTED_OUTSIDE_PILOT_PERIOD: &str = "routed_outside_pilot_period";
/// `routed_employer_chose_own_expert`: regular because the employer chose its own expert.
pub const ROUTED_EMPLOYER_CHOSE_OWN_EXPERT: &str = "routed_employer_chose_own_expert";
/// `routed_no_agreement_for_area`: regular because no agreement covers the area.
pub const ROUTED_NO_AGREEMENT_FOR_AREA: &str = "routed_no_agreement_for_area";

/// `pilot_cases_ordered`: pilot cases with at least one order placed.
pub const PILOT_CASES_ORDERED: &str = "pilot_cases_ordered";
/// `pilot_orders_placed`: orders placed, one per supplier tried.
pub const PILOT_ORDERS_PLACED: &str = "pilot_orders_placed";
/// `pilot_cases_declined`: pilot cases with at least one declined order.
pub const PILOT_CASES_DECLINED: &str = "pilot_cases_declined";
/// `pilot_declines_per_ordered_case`: mean declined orders per ordered case.
pub const PILOT_DECLINES_PER_ORDERED_CASE: &str = "pilot_declines_per_ordered_case";
/// `pilot_accepted`: pilot cases with an accepted order.
pub const PILOT_ACCEPTED: &str = "pilot_accepted";
/// `pilot_aborted`: pilot cases whose accepted order was aborted.
pub const PILOT_ABORTED: &str = "pilot_aborted";
/// `pilot_completed`: pilot cases whose order was completed.
pub const PILOT_COMPLETED: &str = "pilot_completed";
/// `pilot_fallbacks`: pilot cases handed to the regular flow, any reason.
pub const PILOT_FALLBACKS: &str = "pilot_fallbacks";
/// `pilot_fallback_no_supplier_available`: fallbacks because every supplier failed the case.
pub const PILOT_FALLBACK_NO_SUPPLIER_AVAILABLE: &str = "pilot_fallback_no_supplier_available";
/// `pilot_fallback_agreements_full`: fallbacks because the agreements had no capacity left.
pub const PILOT_FALLBACK_AGREEMENTS_FULL: &str = "pilot_fallback_agreements_full";
/// `pilot_fallback_agreement_ended`: fallbacks because no agreement covers the case any more.
pub const PILOT_FALLBACK_AGREEMENT_ENDED: &str = "pilot_fallback_agreement_ended";
/// `pilot_fallback_employer_chose_own_expert`: fallbacks because the employer now wants its own.
pub const PILOT_FALLBACK_EMPLOYER_CHOSE_OWN_EXPERT: &str =
    "pilot_fallback_employer_chose_own_expert";

/// `regular_applications_submitted`: cases with an application.
pub const REGULAR_APPLICATIONS_SUBMITTED: &str = "regular_applications_submitted";
/// `regular_granted`: cases with an approved grant.
pub const REGULAR_GRANTED: &str = "regular_granted";
/// `regular_rejected`: cases whose application was rejected, for any reason.
pub const REGULAR_REJECTED: &str = "regular_rejected";
/// `regular_rejected_lack_of_funds`: of those, rejected for lack of funds.
pub const REGULAR_REJECTED_LACK_OF_FUNDS: &str = "regular_rejected_lack_of_funds";
/// `regular_withdrawn`: applications the employer withdrew.
pub const REGULAR_WITHDRAWN: &str = "regular_withdrawn";
/// `regular_cancelled`: grants cancelled.
pub const REGULAR_CANCELLED: &str = "regular_cancelled";
/// `regular_grants_expired_unused`: grants that expired without a refund claim.
pub const REGULAR_GRANTS_EXPIRED_UNUSED: &str = "regular_grants_expired_unused";
/// `regular_claims_on_time`: refund claims on or before the deadline.
pub const REGULAR_CLAIMS_ON_TIME: &str = "regular_claims_on_time";
/// `regular_claims_late`: refund claims after the deadline.
pub const REGULAR_CLAIMS_LATE: &str = "regular_claims_late";
/// `regular_refunds_paid`: refunds paid.
pub const REGULAR_REFUNDS_PAID: &str = "regular_refunds_paid";

/// `days_to_expert_start_median`: median days from opened to expert start.
pub const DAYS_TO_EXPERT_START_MEDIAN: &str = "days_to_expert_start_median";
/// `days_to_expert_start_p75`: 75th percentile of the same.
pub const DAYS_TO_EXPERT_START_P75: &str = "days_to_expert_start_p75";
/// `days_to_expert_start_p90`: 90th percentile of the same.
pub const DAYS_TO_EXPERT_START_P90: &str = "days_to_expert_start_p90";
/// `days_to_decision_or_order_median`: median days from opened to the decision or first order.
pub const DAYS_TO_DECISION_OR_ORDER_MEDIAN: &str = "days_to_decision_or_order_median";
/// `days_to_decision_or_order_p75`: 75th percentile of the same.
pub const DAYS_TO_DECISION_OR_ORDER_P75: &str = "days_to_decision_or_order_p75";
/// `days_to_decision_or_order_p90`: 90th percentile of the same.
pub const DAYS_TO_DECISION_OR_ORDER_P90: &str = "days_to_decision_or_order_p90";

/// `nav_steps_per_case`: mean state-changing NAV actions per case.
pub const NAV_STEPS_PER_CASE: &str = "nav_steps_per_case";
/// `employer_steps_per_case`: mean forms the employer sent per case.
pub const EMPLOYER_STEPS_PER_CASE: &str = "employer_steps_per_case";

/// `money_committed_ore`: granted plus ordered, in øre.
pub const MONEY_COMMITTED_ORE: &str = "money_committed_ore";
/// `money_disbursed_ore`: paid out, in øre.
pub const MONEY_DISBURSED_ORE: &str = "money_disbursed_ore";
/// `money_released_ore`: reserved and given back, in øre.
pub const MONEY_RELEASED_ORE: &str = "money_released_ore";
/// `cases_completed`: pilot orders completed plus regular refunds paid.
pub const CASES_COMPLETED: &str = "cases_completed";
/// `cost_per_completed_case_ore`: disbursed divided by completed cases, in øre.
pub const COST_PER_COMPLETED_CASE_ORE: &str = "cost_per_completed_case_ore";
/// `share_of_max_rate`: committed divided by the most the regulation allowed.
pub const SHARE_OF_MAX_RATE: &str = "share_of_max_rate";

/// `uptake_per_10000_employees`: cases opened per 10,000 employees.
pub const UPTAKE_PER_10000_EMPLOYEES: &str = "uptake_per_10000_employees";
/// `uptake_per_10000_employees_year_earlier`: the same for the month a year earlier.
pub const UPTAKE_PER_10000_EMPLOYEES_YEAR_EARLIER: &str = "uptake_per_10000_employees_year_earlier";

/// `capacity_orders_available`: orders an agreement may take in the month.
pub const CAPACITY_ORDERS_AVAILABLE: &str = "capacity_orders_available";
/// `capacity_orders_used`: orders counted against the agreement in the month (accepted, not
/// cancelled, in the month the order was placed: pilot-ordering's rule).
pub const CAPACITY_ORDERS_USED: &str = "capacity_orders_used";
/// `capacity_share_used`: used divided by available.
pub const CAPACITY_SHARE_USED: &str = "capacity_share_used";

/// What a figure's value counts or measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A number of cases.
    Cases,
    /// A number of orders.
    Orders,
    /// Days (a percentile of a distribution of whole days).
    Days,
    /// A mean number of actions or forms per case.
    PerCase,
    /// Money in øre (1/100 krone).
    Ore,
    /// A fraction between 0 and 1 (or above, for a committed amount above the max).
    Share,
    /// Cases per 10,000 employees.
    Per10000Employees,
}

/// One figure of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FigureDef {
    /// The stable snake_case name a cell carries.
    pub name: &'static str,
    /// A short human label for the report.
    pub label: &'static str,
    /// The value's unit.
    pub unit: Unit,
    /// The set of cases the `cases` column counts. Figures of the same cell key with the same
    /// basis publish the same case count, so suppressing one suppresses them all (docs/adr/0034).
    pub basis: &'static str,
    /// The flow scopes that have a cell of it.
    pub flows: Flows,
}

/// Which flow scopes a figure is computed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flows {
    /// Each flow and both flows.
    Every,
    /// The pilot flow only: the regular flow has no orders, capacity or fallbacks.
    Pilot,
    /// Both flows together only: a routing reason decides the flow, so per flow it would only
    /// repeat `cases_opened` or be zero.
    Both,
}

const fn def(
    name: &'static str,
    label: &'static str,
    unit: Unit,
    basis: &'static str,
) -> FigureDef {
    FigureDef {
        name,
        label,
        unit,
        basis,
        flows: Flows::Every,
    }
}

const fn pilot(
    name: &'static str,
    label: &'static str,
    unit: Unit,
    basis: &'static str,
) -> FigureDef {
    FigureDef {
        name,
        label,
        unit,
        basis,
        flows: Flows::Pilot,
    }
}

const fn both(
    name: &'static str,
    label: &'static str,
    unit: Unit,
    basis: &'static str,
) -> FigureDef {
    FigureDef {
        name,
        label,
        unit,
        basis,
        flows: Flows::Both,
    }
}

/// Every figure, in the order the table lists them.
pub const FIGURES: &[FigureDef] = &[
    def(CASES_OPENED, "Cases opened", Unit::Cases, "opened"),
    both(
        ROUTED_PILOT_ELIGIBLE,
        "Routed: pilot eligible",
        Unit::Cases,
        ROUTED_PILOT_ELIGIBLE,
    ),
    both(
        ROUTED_OUTSIDE_PILOT_COUNTY,
        "Routed: outside pilot county",
        Unit::Cases,
        ROUTED_OUTSIDE_PILOT_COUNTY,
    ),
    both(
        ROUTED_OUTSIDE_PILOT_PERIOD,
        "Routed: outside pilot period",
        Unit::Cases,
        ROUTED_OUTSIDE_PILOT_PERIOD,
    ),
    both(
        ROUTED_EMPLOYER_CHOSE_OWN_EXPERT,
        "Routed: employer chose own expert",
        Unit::Cases,
        ROUTED_EMPLOYER_CHOSE_OWN_EXPERT,
    ),
    both(
        ROUTED_NO_AGREEMENT_FOR_AREA,
        "Routed: no agreement for area",
        Unit::Cases,
        ROUTED_NO_AGREEMENT_FOR_AREA,
    ),
    pilot(
        PILOT_CASES_ORDERED,
        "Pilot: cases ordered",
        Unit::Cases,
        "ordered",
    ),
    pilot(
        PILOT_ORDERS_PLACED,
        "Pilot: orders placed",
        Unit::Orders,
        "ordered",
    ),
    pilot(
        PILOT_CASES_DECLINED,
        "Pilot: cases with a decline",
        Unit::Cases,
        PILOT_CASES_DECLINED,
    ),
    pilot(
        PILOT_DECLINES_PER_ORDERED_CASE,
        "Pilot: declines per ordered case",
        Unit::PerCase,
        "ordered",
    ),
    pilot(
        PILOT_ACCEPTED,
        "Pilot: accepted",
        Unit::Cases,
        PILOT_ACCEPTED,
    ),
    pilot(PILOT_ABORTED, "Pilot: aborted", Unit::Cases, PILOT_ABORTED),
    pilot(
        PILOT_COMPLETED,
        "Pilot: completed",
        Unit::Cases,
        PILOT_COMPLETED,
    ),
    pilot(
        PILOT_FALLBACKS,
        "Pilot: fallbacks",
        Unit::Cases,
        PILOT_FALLBACKS,
    ),
    pilot(
        PILOT_FALLBACK_NO_SUPPLIER_AVAILABLE,
        "Fallback: no supplier available",
        Unit::Cases,
        PILOT_FALLBACK_NO_SUPPLIER_AVAILABLE,
    ),
    pilot(
        PILOT_FALLBACK_AGREEMENTS_FULL,
        "Fallback: agreements full",
        Unit::Cases,
        PILOT_FALLBACK_AGREEMENTS_FULL,
    ),
    pilot(
        PILOT_FALLBACK_AGREEMENT_ENDED,
        "Fallback: agreement ended",
        Unit::Cases,
        PILOT_FALLBACK_AGREEMENT_ENDED,
    ),
    pilot(
        PILOT_FALLBACK_EMPLOYER_CHOSE_OWN_EXPERT,
        "Fallback: employer chose own expert",
        Unit::Cases,
        PILOT_FALLBACK_EMPLOYER_CHOSE_OWN_EXPERT,
    ),
    def(
        REGULAR_APPLICATIONS_SUBMITTED,
        "Regular: applications submitted",
        Unit::Cases,
        REGULAR_APPLICATIONS_SUBMITTED,
    ),
    def(
        REGULAR_GRANTED,
        "Regular: granted",
        Unit::Cases,
        REGULAR_GRANTED,
    ),
    def(
        REGULAR_REJECTED,
        "Regular: rejected",
        Unit::Cases,
        REGULAR_REJECTED,
    ),
    def(
        REGULAR_REJECTED_LACK_OF_FUNDS,
        "Regular: rejected for lack of funds",
        Unit::Cases,
        REGULAR_REJECTED_LACK_OF_FUNDS,
    ),
    def(
        REGULAR_WITHDRAWN,
        "Regular: withdrawn",
        Unit::Cases,
        REGULAR_WITHDRAWN,
    ),
    def(
        REGULAR_CANCELLED,
        "Regular: cancelled",
        Unit::Cases,
        REGULAR_CANCELLED,
    ),
    def(
        REGULAR_GRANTS_EXPIRED_UNUSED,
        "Regular: grants expired unused",
        Unit::Cases,
        REGULAR_GRANTS_EXPIRED_UNUSED,
    ),
    def(
        REGULAR_CLAIMS_ON_TIME,
        "Regular: claims on time",
        Unit::Cases,
        REGULAR_CLAIMS_ON_TIME,
    ),
    def(
        REGULAR_CLAIMS_LATE,
        "Regular: claims late",
        Unit::Cases,
        REGULAR_CLAIMS_LATE,
    ),
    def(
        REGULAR_REFUNDS_PAID,
        "Regular: refunds paid",
        Unit::Cases,
        REGULAR_REFUNDS_PAID,
    ),
    def(
        DAYS_TO_EXPERT_START_MEDIAN,
        "Days to expert start (median)",
        Unit::Days,
        "expert_started",
    ),
    def(
        DAYS_TO_EXPERT_START_P75,
        "Days to expert start (p75)",
        Unit::Days,
        "expert_started",
    ),
    def(
        DAYS_TO_EXPERT_START_P90,
        "Days to expert start (p90)",
        Unit::Days,
        "expert_started",
    ),
    def(
        DAYS_TO_DECISION_OR_ORDER_MEDIAN,
        "Days to decision or order (median)",
        Unit::Days,
        "decided_or_ordered",
    ),
    def(
        DAYS_TO_DECISION_OR_ORDER_P75,
        "Days to decision or order (p75)",
        Unit::Days,
        "decided_or_ordered",
    ),
    def(
        DAYS_TO_DECISION_OR_ORDER_P90,
        "Days to decision or order (p90)",
        Unit::Days,
        "decided_or_ordered",
    ),
    def(
        NAV_STEPS_PER_CASE,
        "NAV steps per case",
        Unit::PerCase,
        "opened",
    ),
    def(
        EMPLOYER_STEPS_PER_CASE,
        "Employer steps per case",
        Unit::PerCase,
        "opened",
    ),
    def(
        MONEY_COMMITTED_ORE,
        "Committed",
        Unit::Ore,
        MONEY_COMMITTED_ORE,
    ),
    def(
        MONEY_DISBURSED_ORE,
        "Disbursed",
        Unit::Ore,
        MONEY_DISBURSED_ORE,
    ),
    def(
        MONEY_RELEASED_ORE,
        "Released",
        Unit::Ore,
        MONEY_RELEASED_ORE,
    ),
    def(CASES_COMPLETED, "Cases completed", Unit::Cases, "completed"),
    def(
        COST_PER_COMPLETED_CASE_ORE,
        "Cost per completed case",
        Unit::Ore,
        "completed",
    ),
    def(
        SHARE_OF_MAX_RATE,
        "Share of the max rate",
        Unit::Share,
        SHARE_OF_MAX_RATE,
    ),
    def(
        UPTAKE_PER_10000_EMPLOYEES,
        "Cases per 10,000 employees",
        Unit::Per10000Employees,
        "opened",
    ),
    def(
        UPTAKE_PER_10000_EMPLOYEES_YEAR_EARLIER,
        "Cases per 10,000 employees, a year earlier",
        Unit::Per10000Employees,
        UPTAKE_PER_10000_EMPLOYEES_YEAR_EARLIER,
    ),
    pilot(
        CAPACITY_ORDERS_AVAILABLE,
        "Capacity: orders available",
        Unit::Orders,
        CAPACITY_ORDERS_AVAILABLE,
    ),
    pilot(
        CAPACITY_ORDERS_USED,
        "Capacity: orders used",
        Unit::Orders,
        "capacity_used",
    ),
    pilot(
        CAPACITY_SHARE_USED,
        "Capacity: share used",
        Unit::Share,
        "capacity_used",
    ),
];

/// Totals that are the sum of other figures of the same county × flow × month: publishing the
/// total and all but one part would reveal that part (docs/adr/0034).
pub const FIGURE_SUMS: &[(&str, &[&str])] = &[
    (
        CASES_OPENED,
        &[
            ROUTED_PILOT_ELIGIBLE,
            ROUTED_OUTSIDE_PILOT_COUNTY,
            ROUTED_OUTSIDE_PILOT_PERIOD,
            ROUTED_EMPLOYER_CHOSE_OWN_EXPERT,
            ROUTED_NO_AGREEMENT_FOR_AREA,
        ],
    ),
    (
        PILOT_FALLBACKS,
        &[
            PILOT_FALLBACK_NO_SUPPLIER_AVAILABLE,
            PILOT_FALLBACK_AGREEMENTS_FULL,
            PILOT_FALLBACK_AGREEMENT_ENDED,
            PILOT_FALLBACK_EMPLOYER_CHOSE_OWN_EXPERT,
        ],
    ),
];

/// A flow's `cases_opened` is the sum of these routing-reason figures of both flows together
/// (the reason decides the flow), another equation suppression must respect.
pub const FLOW_REASONS: &[(crate::case_facts::Flow, &[&str])] = &[
    (crate::case_facts::Flow::Pilot, &[ROUTED_PILOT_ELIGIBLE]),
    (
        crate::case_facts::Flow::Regular,
        &[
            ROUTED_OUTSIDE_PILOT_COUNTY,
            ROUTED_OUTSIDE_PILOT_PERIOD,
            ROUTED_EMPLOYER_CHOSE_OWN_EXPERT,
            ROUTED_NO_AGREEMENT_FOR_AREA,
        ],
    ),
];

/// The figure called `name`, if there is one.
pub fn figure(name: &str) -> Option<&'static FigureDef> {
    FIGURES.iter().find(|figure| figure.name == name)
}

/// The basis of the figure called `name`; an unknown name is its own basis.
pub fn basis(name: &'static str) -> &'static str {
    figure(name).map_or(name, |figure| figure.basis)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_sums_name_known_figures() {
        let mut seen = HashSet::new();
        for figure in FIGURES {
            assert!(seen.insert(figure.name), "{} listed twice", figure.name);
            assert!(
                figure
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{} is not snake_case",
                figure.name
            );
        }
        for (total, parts) in FIGURE_SUMS {
            assert!(figure(total).is_some(), "{total} unknown");
            for part in *parts {
                assert!(figure(part).is_some(), "{part} unknown");
            }
        }
        assert_eq!(basis(NAV_STEPS_PER_CASE), basis(CASES_OPENED));
        assert_eq!(basis("not_a_figure"), "not_a_figure");
    }
}
