//! The cohort table: every figure the § 9a pilot's evaluation asks for (issue 20), per county ×
//! flow × month the cases were opened in, computed from the cases' facts at query time and
//! suppressed before it leaves (docs/adr/0034). A case belongs to the cohort of the month it was
//! opened in, whatever happened later, so a figure for a month changes only while its cases are
//! still running, never because later cases arrive.
//!
//! # Scopes
//! Every figure is computed for each county (`CountyScope::County`, every county that has cases
//! or an employee count, and always the pilot's), for `OtherCounties` (every county but the
//! pilot's: the comparison group) and `All`; and for each flow routing first chose
//! (`FlowScope::Flow`) and `FlowScope::All`. A pilot case that fell back stays in the pilot's
//! cohort; its regular outcomes count under the pilot flow. Figures marked *pilot only* exist
//! for `Flow(Pilot)` alone; the routing reasons for `FlowScope::All` alone (the reason decides
//! the flow, so per flow they would repeat `cases_opened` or be zero).
//!
//! # Figures
//! `cases` is the number of cases a figure is computed from (its basis): for a count, the cases
//! counted; for a sum of money or orders, the cases contributing a non-zero amount (a sum from one
//! contributor is that contributor's amount); for a mean, share or percentile, the cases it is
//! taken over. A figure with an empty basis (a median of nothing) has no cell.
//!
//! | name | meaning | unit | basis (`cases`) |
//! |---|---|---|---|
//! | `cases_opened` | cases opened | cases | the cases |
//! | `routed_pilot_eligible`, `routed_outside_pilot_county`, `routed_outside_pilot_period`, `routed_employer_chose_own_expert`, `routed_no_agreement_for_area` | both flows only: cases by routing reason; they add up to `cases_opened` | cases | the cases counted |
//! | `pilot_cases_ordered` | pilot only: cases with at least one order placed | cases | the cases counted |
//! | `pilot_orders_placed` | pilot only: orders placed, one per supplier tried | orders | cases ordered |
//! | `pilot_cases_declined` | pilot only: cases with at least one declined order | cases | the cases counted |
//! | `pilot_declines_per_ordered_case` | pilot only: mean declined orders per ordered case: how far down the ranks a case went (0 = the first supplier took it) | orders per case | cases ordered |
//! | `pilot_accepted`, `pilot_aborted`, `pilot_completed` | pilot only: cases with an accepted, aborted, completed order | cases | the cases counted |
//! | `pilot_fallbacks` | pilot only: cases handed to the regular flow | cases | the cases counted |
//! | `pilot_fallback_no_supplier_available`, `pilot_fallback_agreements_full`, `pilot_fallback_agreement_ended`, `pilot_fallback_employer_chose_own_expert` | pilot only: fallbacks by reason; they add up to `pilot_fallbacks` | cases | the cases counted |
//! | `regular_applications_submitted`, `regular_granted`, `regular_rejected` (any reason), `regular_rejected_lack_of_funds`, `regular_withdrawn`, `regular_cancelled`, `regular_grants_expired_unused`, `regular_claims_on_time`, `regular_claims_late`, `regular_refunds_paid` | cases with that regular-flow outcome | cases | the cases counted |
//! | `days_to_expert_start_median`, `_p75`, `_p90` | days from opened to the expert's start | days | cases with a start |
//! | `days_to_decision_or_order_median`, `_p75`, `_p90` | days from opened to the first decision (regular) or first order (pilot) | days | cases decided or ordered |
//! | `nav_steps_per_case` | mean state-changing NAV caseworker/decider actions per case | steps per case | the cases |
//! | `employer_steps_per_case` | mean forms the employer sent per case (application, claim) | forms per case | the cases |
//! | `money_committed_ore` | granted (regular) plus ordered (pilot) | øre | cases with a non-zero amount |
//! | `money_disbursed_ore` | paid out: refunds and paid invoices | øre | cases with a non-zero amount |
//! | `money_released_ore` | reserved and given back | øre | cases with a non-zero amount |
//! | `cases_completed` | pilot order completed or regular refund paid | cases | the cases counted |
//! | `cost_per_completed_case_ore` | all the cohort's disbursements (aborted orders' partial invoices included) divided by its completed cases | øre per case | completed cases |
//! | `share_of_max_rate` | committed divided by the most the regulation allowed (frozen max rate × hours), summed over the cases where that is known | fraction | cases with a known max |
//! | `uptake_per_10000_employees` | cases opened × 10,000 / employees (the configured statistic); for `OtherCounties` and `All`, cases of and employees summed over the counties that have an employee count | cases per 10,000 employees | cases counted |
//! | `uptake_per_10000_employees_year_earlier` | the same for the same month a year earlier, with the same employee counts; only when the cases reach back that far (the earliest case was opened in or before that month) | cases per 10,000 employees | cases counted |
//! | `capacity_orders_available` | pilot only, per agreement and the month orders were placed in: orders the agreement may take | orders | 0 (contract terms, no case) |
//! | `capacity_orders_used` | pilot only, per agreement and month: orders counted against it as pilot-ordering counts them (accepted, not cancelled, by the month placed) | orders | the orders (one case each) |
//! | `capacity_share_used` | pilot only, per agreement and month: used divided by available | fraction | the orders |
//!
//! Percentiles interpolate between closest ranks (R's and NumPy's default, type 7).

mod catalog;
mod compute;
mod stats;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::{BTreeMap, BTreeSet};

use time::{Date, Month};

pub use catalog::*;

use crate::{
    case_facts::{CapacityUse, CaseFacts, Flow},
    employees::EmployeeCounts,
    suppression::{self, Protection},
    table::{Cell, CountyScope, FlowScope},
};

/// The months a table covers: cohorts opened from `from` to `to`, both the first day of a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// The first month.
    pub from: Date,
    /// The last month.
    pub to: Date,
}

/// Why a period was refused; the message names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodError {
    /// The field at fault (`from` or `to`).
    pub field: &'static str,
    /// The rule it breaks.
    pub rule: &'static str,
}

impl std::fmt::Display for PeriodError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

impl std::error::Error for PeriodError {}

/// The most months one table may span: a table is computed per request, and ten years of months
/// is far beyond any evaluation period.
pub const MAX_MONTHS: usize = 120;

impl Period {
    /// A period from the month of `from` to the month of `to`, both included.
    pub fn new(from: Date, to: Date) -> Result<Self, PeriodError> {
        if from.day() != 1 {
            return Err(PeriodError {
                field: "from",
                rule: "must be the first day of a month",
            });
        }
        if to.day() != 1 {
            return Err(PeriodError {
                field: "to",
                rule: "must be the first day of a month",
            });
        }
        if to < from {
            return Err(PeriodError {
                field: "to",
                rule: "must not be before from",
            });
        }
        let period = Self { from, to };
        if period.months().len() > MAX_MONTHS {
            return Err(PeriodError {
                field: "to",
                rule: "must be at most 120 months after from",
            });
        }
        Ok(period)
    }

    /// The first day of every month from `from` to `to`, in order.
    pub fn months(&self) -> Vec<Date> {
        let mut months = Vec::new();
        let mut month = first_of_month(self.from);
        let last = first_of_month(self.to);
        while month <= last {
            months.push(month);
            month = add_months(month, 1);
        }
        months
    }
}

/// What a table needs besides the cases.
#[derive(Debug, Clone)]
pub struct TableContext {
    /// The pilot's county code ("34").
    pub pilot_county: String,
    /// Employees per county, for uptake.
    pub employees: EmployeeCounts,
    /// Figures computed from fewer cases than this are suppressed (5).
    pub min_cases: u32,
}

/// Every cell of the table for `period`, suppressed. `cases` may hold cases opened up to a year
/// before `period` (for the year-earlier comparison) and after it (they are ignored).
pub fn cells(
    cases: &[CaseFacts],
    capacity: &[CapacityUse],
    period: &Period,
    context: &TableContext,
) -> Vec<Cell> {
    let mut cells = unsuppressed_cells(cases, capacity, period, context);
    suppression::suppress(
        &mut cells,
        context.min_cases,
        &protection(&context.pilot_county),
    );
    cells
}

/// The groups the suppression protects for this table's figures (docs/adr/0034).
pub fn protection(pilot_county: &str) -> Protection {
    Protection {
        pilot_county: pilot_county.to_owned(),
        figure_sums: FIGURE_SUMS
            .iter()
            .map(|(total, parts)| (*total, parts.to_vec()))
            .collect(),
        flow_sums: FLOW_REASONS
            .iter()
            .map(|(flow, parts)| (FlowScope::Flow(*flow), CASES_OPENED, parts.to_vec()))
            .collect(),
        basis: catalog::basis,
    }
}

/// Every cell of the table for `period` before suppression: for tests and for checks against a
/// model (the simulator's); never send these out of the service.
pub fn unsuppressed_cells(
    cases: &[CaseFacts],
    capacity: &[CapacityUse],
    period: &Period,
    context: &TableContext,
) -> Vec<Cell> {
    let months = period.months();
    let Some(&first) = months.first() else {
        return Vec::new();
    };
    let earliest_data = cases
        .iter()
        .map(|case| first_of_month(case.opened_on))
        .min();

    let mut by_county_month: BTreeMap<(&str, Date), Vec<&CaseFacts>> = BTreeMap::new();
    for case in cases {
        let month = first_of_month(case.opened_on);
        if month >= add_months(first, -12) {
            by_county_month
                .entry((case.county.as_str(), month))
                .or_default()
                .push(case);
        }
    }
    let mut counties: BTreeSet<&str> = cases.iter().map(|case| case.county.as_str()).collect();
    counties.extend(context.employees.per_county.keys().map(String::as_str));
    counties.insert(context.pilot_county.as_str());

    let mut scopes: Vec<(CountyScope, Vec<&str>)> = counties
        .iter()
        .map(|county| (CountyScope::County((*county).to_owned()), vec![*county]))
        .collect();
    let others = counties
        .iter()
        .copied()
        .filter(|county| *county != context.pilot_county)
        .collect();
    scopes.push((CountyScope::OtherCounties, others));
    scopes.push((CountyScope::All, counties.iter().copied().collect()));

    let group = |members: &[&str], flow: FlowScope, month: Date| -> Vec<&CaseFacts> {
        members
            .iter()
            .filter_map(|county| by_county_month.get(&(*county, month)))
            .flatten()
            .copied()
            .filter(|case| flow == FlowScope::All || flow == FlowScope::Flow(case.flow))
            .collect()
    };

    let mut cells = Vec::new();
    for &month in &months {
        for (county, members) in &scopes {
            for flow in [
                FlowScope::Flow(Flow::Regular),
                FlowScope::Flow(Flow::Pilot),
                FlowScope::All,
            ] {
                let cell = |figure, value, cases| Cell {
                    county: county.clone(),
                    flow,
                    month,
                    agreement: None,
                    figure,
                    value: Some(value),
                    cases: Some(cases),
                    suppressed: None,
                };
                let cohort = group(members, flow, month);
                for value in compute::cohort_values(&cohort, flow) {
                    cells.push(cell(value.figure, value.value, value.cases));
                }
                let employees = &context.employees;
                if let Some((value, cases)) = uptake(&cohort, members, employees) {
                    cells.push(cell(UPTAKE_PER_10000_EMPLOYEES, value, cases));
                }
                let year_earlier = add_months(month, -12);
                if earliest_data.is_some_and(|earliest| earliest <= year_earlier) {
                    let cohort = group(members, flow, year_earlier);
                    if let Some((value, cases)) = uptake(&cohort, members, employees) {
                        cells.push(cell(UPTAKE_PER_10000_EMPLOYEES_YEAR_EARLIER, value, cases));
                    }
                }
            }
        }
    }
    cells.extend(capacity_cells(capacity, &months));
    cells
}

/// Cases per 10,000 employees over the `members` counties that have an employee count, and the
/// number of cases counted; `None` when none of them has one.
fn uptake(
    cohort: &[&CaseFacts],
    members: &[&str],
    employees: &EmployeeCounts,
) -> Option<(f64, u32)> {
    let counted: Vec<&str> = members
        .iter()
        .copied()
        .filter(|county| employees.per_county.contains_key(*county))
        .collect();
    let total: u64 = counted
        .iter()
        .map(|county| u64::from(employees.per_county[*county]))
        .sum();
    if total == 0 {
        return None;
    }
    let cases = cohort
        .iter()
        .filter(|case| counted.contains(&case.county.as_str()))
        .count();
    let cases = u32::try_from(cases).unwrap_or(u32::MAX);
    Some((f64::from(cases) * 10_000.0 / total as f64, cases))
}

/// Capacity use per agreement and month (the month orders were placed in), for the months of
/// the period; several rows for one agreement and month are added up.
fn capacity_cells(capacity: &[CapacityUse], months: &[Date]) -> Vec<Cell> {
    let mut per_agreement: BTreeMap<(&str, &str, Date), (u32, u32)> = BTreeMap::new();
    for row in capacity {
        let month = first_of_month(row.month);
        if months.contains(&month) {
            let entry = per_agreement
                .entry((&row.county, &row.agreement, month))
                .or_default();
            entry.0 = entry.0.saturating_add(row.capacity);
            entry.1 = entry.1.saturating_add(row.used);
        }
    }
    let mut cells = Vec::new();
    for ((county, agreement, month), (available, used)) in per_agreement {
        let cell = |figure, value, cases| Cell {
            county: CountyScope::County(county.to_owned()),
            flow: FlowScope::Flow(Flow::Pilot),
            month,
            agreement: Some(agreement.to_owned()),
            figure,
            value: Some(value),
            cases: Some(cases),
            suppressed: None,
        };
        cells.push(cell(CAPACITY_ORDERS_AVAILABLE, f64::from(available), 0));
        cells.push(cell(CAPACITY_ORDERS_USED, f64::from(used), used));
        if available > 0 {
            cells.push(cell(
                CAPACITY_SHARE_USED,
                f64::from(used) / f64::from(available),
                used,
            ));
        }
    }
    cells
}

/// The first day of `day`'s month.
pub fn first_of_month(day: Date) -> Date {
    day.replace_day(1).unwrap_or(day)
}

/// The first day of the month `months` after (or before, if negative) `month`'s.
pub fn add_months(month: Date, months: i32) -> Date {
    let index = month.year() * 12 + i32::from(u8::from(month.month())) - 1 + months;
    let (year, month_number) = (index.div_euclid(12), index.rem_euclid(12) + 1);
    let month_number = u8::try_from(month_number).unwrap_or(1);
    Month::try_from(month_number)
        .ok()
        .and_then(|m| Date::from_calendar_date(year, m, 1).ok())
        .unwrap_or(month)
}

#[cfg(test)]
mod tests;
