//! The evaluation's figures against the simulator's own model, and its headline for the summary.
//!
//! Why: the evaluation (ADR 0033) is built from the events alone, without personal data, and the
//! pilot is judged by it. The simulator knows what it did to every case — which month and county
//! it opened it in, which flow routing chose, whether it fell back, whether the appropriation
//! ran out on it — so after the year has settled the evaluation's cohort table for the year
//! (GetCohortTable, small cells suppressed: ADR 0034) must say the same wherever a figure is
//! published:
//!
//! - `cases_opened`, per county scope (a county, the other counties, all), flow scope and cohort
//!   month, is the number of cases the simulator opened there;
//! - `pilot_fallbacks` is the number of pilot cases that left the pilot (routing holds them
//!   REGULAR at their end, [`CaseOutcome::fell_back`]);
//! - the regular flow's `regular_rejected_lack_of_funds` is the number of regular cases whose
//!   observed path is `regular.lack_of_funds`;
//! - the pilot flow's `employer_steps_per_case` is 0 where no case fell back (the pilot asks the
//!   employer for no form), and where some did, at least one form per fallback (each applies
//!   in the regular flow);
//! - the national monthly `cases_opened` cells of the months cases were opened in exist.
//!
//! A case whose task failed (no outcome) may or may not have got that far, so it widens the
//! expected count to a range instead of being guessed. [`read`] asks the service, [`judge`]
//! compares (pure), [`headline`] sums the year up for the summary.

use std::{collections::BTreeMap, fmt};

use anyhow::Context;
use ekb_devstack::table::{self, Align};
use ekb_domain::CountyCode;
use ekb_proto::v1::{
    CohortCell, Flow, GetCohortTableRequest, GetCohortTableResponse, Suppression, county_scope,
    evaluation_service_client::EvaluationServiceClient, flow_scope,
};
use ekb_testkit::{
    scenarios::{clients::channel, waits::answer},
    services::{ServiceProcess, with_bearer},
};

use super::Violation;
use crate::{
    plan::{CaseOutcome, CasePlan, Path},
    regular::RegularPath,
    timeline::{Caller, Sim},
};

/// The invariant's name.
pub const EVALUATION_AGREES: &str = "evaluation figures = the simulation";

/// `cases_opened`.
const CASES_OPENED: &str = "cases_opened";
/// `pilot_fallbacks`.
const PILOT_FALLBACKS: &str = "pilot_fallbacks";
/// `regular_granted`.
const REGULAR_GRANTED: &str = "regular_granted";
/// `regular_rejected_lack_of_funds`.
const LACK_OF_FUNDS: &str = "regular_rejected_lack_of_funds";
/// `days_to_expert_start_median`.
const DAYS_TO_START: &str = "days_to_expert_start_median";
/// `nav_steps_per_case`.
const NAV_STEPS: &str = "nav_steps_per_case";
/// `employer_steps_per_case`.
const EMPLOYER_STEPS: &str = "employer_steps_per_case";

/// The evaluation's name (its catalog entry).
pub const EVALUATION: &str = "evaluation";

/// The evaluation's cohort table of `year` (its twelve cohort months), asked of the evaluation
/// among `services` as the NAV system.
pub async fn read(
    services: &[ServiceProcess],
    sim: &Sim,
    year: i32,
) -> anyhow::Result<GetCohortTableResponse> {
    let mut evaluation = EvaluationServiceClient::new(channel(services, EVALUATION).await?);
    let request = with_bearer(
        GetCohortTableRequest {
            from_month: format!("{year:04}-01"),
            to_month: format!("{year:04}-12"),
        },
        &sim.token(&Caller::System),
    );
    answer("GetCohortTable", evaluation.get_cohort_table(request).await)
        .context("reading the evaluation's cohort table")
}

/// One case as the simulator's model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCase {
    /// The cohort month, `YYYY-MM` (the simulated day it was opened on).
    pub month: String,
    /// Its county code.
    pub county: String,
    /// The flow routing chose for it.
    pub flow: Flow,
    /// What its task saw at its end; `None` when the task failed (how far it got is unknown).
    pub seen: Option<Seen>,
}

/// What a finished case showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// It left the pilot for the regular flow.
    pub fell_back: bool,
    /// A regular case observed on `regular.lack_of_funds`.
    pub lack_of_funds: bool,
}

/// The model's cases: every plan, with what its task saw if it finished.
pub fn model(plans: &[CasePlan], outcomes: &[CaseOutcome]) -> Vec<ModelCase> {
    let seen: BTreeMap<u32, &CaseOutcome> = outcomes
        .iter()
        .map(|outcome| (outcome.number, outcome))
        .collect();
    plans
        .iter()
        .map(|plan| ModelCase {
            month: format!(
                "{:04}-{:02}",
                plan.opened_on.year(),
                u8::from(plan.opened_on.month())
            ),
            county: plan.county.clone(),
            flow: match plan.path {
                Path::Regular(_) => Flow::Regular,
                Path::Pilot(_) => Flow::Pilot,
            },
            seen: seen.get(&plan.number).map(|outcome| Seen {
                fell_back: outcome.fell_back,
                lack_of_funds: outcome.observed == Path::Regular(RegularPath::LackOfFunds),
            }),
        })
        .collect()
}

/// Which counties a cell covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Counties {
    One(String),
    Others,
    All,
}

/// Which cases a cell covers: counties, flow (`None`: both), month.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    counties: Counties,
    flow: Option<Flow>,
    month: String,
}

impl Scope {
    fn of(cell: &CohortCell) -> Option<Scope> {
        let counties = match cell.county.as_ref()?.scope.as_ref()? {
            county_scope::Scope::CountyCode(code) => Counties::One(code.clone()),
            county_scope::Scope::OtherCounties(_) => Counties::Others,
            county_scope::Scope::AllCounties(_) => Counties::All,
        };
        let flow = match cell.flow.as_ref()?.scope.as_ref()? {
            flow_scope::Scope::Flow(flow) => Some(Flow::try_from(*flow).ok()?),
            flow_scope::Scope::AllFlows(_) => None,
        };
        Some(Scope {
            counties,
            flow,
            month: cell.month.clone(),
        })
    }

    fn covers(&self, case: &ModelCase, pilot_county: &str) -> bool {
        let county = match &self.counties {
            Counties::One(code) => case.county == *code,
            Counties::Others => case.county != pilot_county,
            Counties::All => true,
        };
        county && self.flow.is_none_or(|flow| flow == case.flow) && self.month == case.month
    }

    fn name(&self, pilot_county: &str) -> String {
        let counties = match &self.counties {
            Counties::One(code) if code == pilot_county => format!("county {code} (pilot)"),
            Counties::One(code) => format!("county {code}"),
            Counties::Others => "other counties".to_owned(),
            Counties::All => "all counties".to_owned(),
        };
        let flow = match self.flow {
            Some(Flow::Pilot) => "PILOT",
            Some(_) => "REGULAR",
            None => "both flows",
        };
        format!("{} {counties} {flow}", self.month)
    }
}

/// How many of the model's cases in a scope have a property: those known to, and at most that
/// many more (cases whose task failed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Expected {
    known: u64,
    unknown: u64,
}

impl Expected {
    fn count(
        cases: &[&ModelCase],
        has: impl Fn(&Seen) -> bool,
        could: impl Fn(&ModelCase) -> bool,
    ) -> Self {
        let mut expected = Expected::default();
        for case in cases {
            match &case.seen {
                Some(seen) if has(seen) => expected.known += 1,
                Some(_) => {}
                None if could(case) => expected.unknown += 1,
                None => {}
            }
        }
        expected
    }

    fn admits(self, value: f64) -> bool {
        value >= self.known as f64 - 1e-9 && value <= (self.known + self.unknown) as f64 + 1e-9
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unknown == 0 {
            write!(f, "{}", self.known)
        } else {
            write!(f, "{}..{}", self.known, self.known + self.unknown)
        }
    }
}

/// How many published cells [`judge`] compares with the model (the figures it checks, in the
/// flows it checks them for).
pub fn comparable(table: &GetCohortTableResponse) -> usize {
    table
        .cells
        .iter()
        .filter(|cell| {
            cell.agreement_id.is_empty()
                && cell.value.is_some()
                && cell.suppression() == Suppression::Unspecified
        })
        .filter(|cell| {
            let flow = Scope::of(cell).and_then(|scope| scope.flow);
            match cell.figure.as_str() {
                CASES_OPENED | PILOT_FALLBACKS => true,
                LACK_OF_FUNDS => flow == Some(Flow::Regular),
                EMPLOYER_STEPS => flow == Some(Flow::Pilot),
                _ => false,
            }
        })
        .count()
}

/// Compares every published cell the model can speak to with the model's `cases`.
pub fn judge(table: &GetCohortTableResponse, cases: &[ModelCase]) -> Vec<Violation> {
    let pilot_county = table.pilot_county.as_str();
    let mut violations = Vec::new();
    let mut national_months: Vec<&str> = Vec::new();
    for cell in &table.cells {
        if !cell.agreement_id.is_empty() {
            continue;
        }
        let Some(scope) = Scope::of(cell) else {
            violations.push(Violation::new(
                EVALUATION_AGREES,
                format!(
                    "{} {}: a cell without county or flow",
                    cell.month, cell.figure
                ),
            ));
            continue;
        };
        if cell.figure == CASES_OPENED && scope.counties == Counties::All && scope.flow.is_none() {
            national_months.push(&cell.month);
        }
        let Some(value) = cell
            .value
            .filter(|_| cell.suppression() == Suppression::Unspecified)
        else {
            continue;
        };
        let within: Vec<&ModelCase> = cases
            .iter()
            .filter(|case| scope.covers(case, pilot_county))
            .collect();
        let pilot = |case: &ModelCase| case.flow == Flow::Pilot;
        let regular = |case: &ModelCase| case.flow == Flow::Regular;
        let mut differs = |what: &str, expected: &dyn fmt::Display| {
            violations.push(Violation::new(
                EVALUATION_AGREES,
                format!(
                    "{} {}: the evaluation says {value}, {what} {expected}",
                    scope.name(pilot_county),
                    cell.figure
                ),
            ));
        };
        match (cell.figure.as_str(), scope.flow) {
            (CASES_OPENED, _) => {
                let expected = Expected::count(&within, |_| true, |_| true);
                if !expected.admits(value) {
                    differs("the simulation opened", &expected);
                }
            }
            (PILOT_FALLBACKS, _) => {
                let expected = Expected::count(&within, |seen| seen.fell_back, pilot);
                if !expected.admits(value) {
                    differs("cases that fell back in the simulation:", &expected);
                }
            }
            (LACK_OF_FUNDS, Some(Flow::Regular)) => {
                let expected = Expected::count(&within, |seen| seen.lack_of_funds, regular);
                if !expected.admits(value) {
                    differs("cases observed on regular.lack_of_funds:", &expected);
                }
            }
            (EMPLOYER_STEPS, Some(Flow::Pilot)) => {
                let fallbacks = Expected::count(&within, |seen| seen.fell_back, pilot);
                let forms = value * f64::from(cell.cases.unwrap_or_default());
                if fallbacks.known + fallbacks.unknown == 0 && value != 0.0 {
                    differs(
                        "but no case fell back, so the employer sent no form: expected",
                        &0,
                    );
                } else if forms + 1e-6 < fallbacks.known as f64 {
                    differs(
                        "fewer forms than cases that fell back (each applies):",
                        &fallbacks,
                    );
                }
            }
            _ => {}
        }
    }
    let mut opened_months: Vec<&str> = cases.iter().map(|case| case.month.as_str()).collect();
    opened_months.sort_unstable();
    opened_months.dedup();
    for month in opened_months {
        if !national_months.contains(&month) {
            violations.push(Violation::new(
                EVALUATION_AGREES,
                format!(
                    "{month}: the simulation opened cases, the evaluation has no national \
                     cases_opened cell"
                ),
            ));
        }
    }
    violations
}

/// One headline figure for the year, from the monthly cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figure {
    /// Months published.
    pub months: u32,
    /// Months suppressed.
    pub suppressed: u32,
    /// Counts: the sum of the published months. Means: weighted by the published case counts.
    /// Medians: the lowest and highest monthly median.
    pub value: Value,
}

/// A headline figure's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Value {
    /// No month published the figure.
    #[default]
    None,
    /// A sum over the months.
    Sum(f64),
    /// A mean over the months' cases.
    Mean {
        /// The sum of value × cases over the months.
        total: f64,
        /// The cases over the months.
        cases: u64,
    },
    /// The range of the monthly values.
    Range {
        /// The lowest.
        low: f64,
        /// The highest.
        high: f64,
    },
}

/// How a figure is summed up over the months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Over {
    Sum,
    Mean,
    Range,
}

/// The headline rows: label, figure, how it is summed up over the year, which flows have it.
const ROWS: &[(&str, &str, Over, &[Flow])] = &[
    (
        "Cases opened",
        CASES_OPENED,
        Over::Sum,
        &[Flow::Regular, Flow::Pilot],
    ),
    (
        "Pilot fallbacks",
        PILOT_FALLBACKS,
        Over::Sum,
        &[Flow::Pilot],
    ),
    (
        "Regular: granted",
        REGULAR_GRANTED,
        Over::Sum,
        &[Flow::Regular, Flow::Pilot],
    ),
    (
        "Regular: rejected, lack of funds",
        LACK_OF_FUNDS,
        Over::Sum,
        &[Flow::Regular, Flow::Pilot],
    ),
    (
        "Days to expert start, monthly medians",
        DAYS_TO_START,
        Over::Range,
        &[Flow::Regular, Flow::Pilot],
    ),
    (
        "NAV steps per case",
        NAV_STEPS,
        Over::Mean,
        &[Flow::Regular, Flow::Pilot],
    ),
    (
        "Employer steps per case",
        EMPLOYER_STEPS,
        Over::Mean,
        &[Flow::Regular, Flow::Pilot],
    ),
];

/// The columns: county scope × flow.
const COLUMNS: [(HeadlineCounties, Flow); 5] = [
    (HeadlineCounties::All, Flow::Regular),
    (HeadlineCounties::All, Flow::Pilot),
    (HeadlineCounties::Pilot, Flow::Regular),
    (HeadlineCounties::Pilot, Flow::Pilot),
    (HeadlineCounties::Others, Flow::Regular),
];

/// The county scopes of the headline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadlineCounties {
    All,
    Pilot,
    Others,
}

/// The evaluation's year in a few figures: national, the pilot county and the other counties,
/// per flow (the pilot runs in its county only, so the other counties have no pilot column).
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    /// The year.
    pub year: i32,
    /// The pilot county.
    pub pilot_county: String,
    /// The suppression threshold.
    pub min_cases: u32,
    /// Column titles.
    pub columns: Vec<String>,
    /// Per row: its label and one figure per column (`None`: the flow has no such figure).
    pub rows: Vec<(&'static str, Vec<Option<Figure>>)>,
    /// Published cells compared with the simulation ([`comparable`]).
    pub checked: usize,
    /// The national monthly totals (`cases_opened`, all counties, both flows): (published,
    /// all).
    pub national_totals: (usize, usize),
}

/// The headline of `table`, the evaluation's table of `year`.
pub fn headline(table: &GetCohortTableResponse, year: i32) -> Headline {
    let pilot_county = table.pilot_county.clone();
    let columns = COLUMNS
        .iter()
        .map(|(counties, flow)| {
            let counties = match counties {
                HeadlineCounties::All => "national".to_owned(),
                HeadlineCounties::Pilot => pilot_county.clone(),
                HeadlineCounties::Others => "other counties".to_owned(),
            };
            let flow = if *flow == Flow::Pilot {
                "PILOT"
            } else {
                "REGULAR"
            };
            format!("{flow} {counties}")
        })
        .collect();
    let rows = ROWS
        .iter()
        .map(|(label, figure, over, flows)| {
            let figures = COLUMNS
                .iter()
                .map(|(counties, flow)| {
                    flows
                        .contains(flow)
                        .then(|| year_figure(table, figure, *counties, *flow, *over))
                })
                .collect();
            (*label, figures)
        })
        .collect();
    Headline {
        year,
        pilot_county,
        min_cases: table.min_cases,
        columns,
        rows,
        checked: comparable(table),
        national_totals: national_totals(table),
    }
}

/// The national monthly totals of `table`: (published, all).
fn national_totals(table: &GetCohortTableResponse) -> (usize, usize) {
    let totals: Vec<&CohortCell> = table
        .cells
        .iter()
        .filter(|cell| {
            cell.figure == CASES_OPENED
                && Scope::of(cell)
                    .is_some_and(|scope| scope.counties == Counties::All && scope.flow.is_none())
        })
        .collect();
    let published = totals
        .iter()
        .filter(|cell| cell.suppression() == Suppression::Unspecified)
        .count();
    (published, totals.len())
}

/// `figure` for one county scope and flow, summed up over the table's months.
fn year_figure(
    table: &GetCohortTableResponse,
    figure: &str,
    counties: HeadlineCounties,
    flow: Flow,
    over: Over,
) -> Figure {
    let mut summed = Figure::default();
    for cell in &table.cells {
        let Some(scope) = Scope::of(cell) else {
            continue;
        };
        let in_scope = match (&scope.counties, counties) {
            (Counties::All, HeadlineCounties::All)
            | (Counties::Others, HeadlineCounties::Others) => true,
            (Counties::One(code), HeadlineCounties::Pilot) => *code == table.pilot_county,
            _ => false,
        };
        if cell.figure != figure
            || !cell.agreement_id.is_empty()
            || !in_scope
            || scope.flow != Some(flow)
        {
            continue;
        }
        let Some(value) = cell
            .value
            .filter(|_| cell.suppression() == Suppression::Unspecified)
        else {
            summed.suppressed += 1;
            continue;
        };
        summed.months += 1;
        let cases = u64::from(cell.cases.unwrap_or_default());
        summed.value = match (over, summed.value) {
            (Over::Sum, Value::Sum(sum)) => Value::Sum(sum + value),
            (Over::Sum, _) => Value::Sum(value),
            (Over::Mean, Value::Mean { total, cases: n }) => Value::Mean {
                total: total + value * cases as f64,
                cases: n + cases,
            },
            (Over::Mean, _) => Value::Mean {
                total: value * cases as f64,
                cases,
            },
            (Over::Range, Value::Range { low, high }) => Value::Range {
                low: low.min(value),
                high: high.max(value),
            },
            (Over::Range, _) => Value::Range {
                low: value,
                high: value,
            },
        };
    }
    summed
}

/// How a headline figure is written: `1234`, `4.52`, `12–19`; `+3 supp.` for months
/// suppressed; `supp.` when every month was.
fn written(figure: &Figure) -> String {
    let value = match figure.value {
        Value::None => String::new(),
        Value::Sum(sum) => format!("{sum:.0}"),
        Value::Mean { cases: 0, .. } => "0".to_owned(),
        Value::Mean { total, cases } => format!("{:.2}", total / cases as f64),
        Value::Range { low, high } if low == high => format!("{low}"),
        Value::Range { low, high } => format!("{low}–{high}"),
    };
    match (figure.months, figure.suppressed) {
        (0, 0) => "–".to_owned(),
        (0, _) => "suppressed".to_owned(),
        (_, 0) => value,
        (_, months) => format!("{value} (+{months} mo. supp.)"),
    }
}

impl fmt::Display for Headline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Evaluation {} (GetCohortTable, the year's 12 cohort months summed up; figures from \
             fewer than {} cases suppressed, ADR 0034):",
            self.year, self.min_cases
        )?;
        let mut header = ["FIGURE"; 6];
        for (slot, title) in header.iter_mut().skip(1).zip(&self.columns) {
            *slot = title.as_str();
        }
        let mut align = [Align::Right; 6];
        align[0] = Align::Left;
        let rows: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|(label, figures)| {
                std::array::from_fn(|index| match index {
                    0 => (*label).to_owned(),
                    _ => figures
                        .get(index - 1)
                        .and_then(Option::as_ref)
                        .map_or_else(|| "–".to_owned(), written),
                })
            })
            .collect();
        writeln!(f, "{}", table::aligned(header, align, &rows))?;
        writeln!(
            f,
            "  Sums and means over the months published; \"(+n mo. supp.)\": n months hidden \
             (fewer than {} cases, or giving such a figure away); pilot county {} {}.",
            self.min_cases,
            self.pilot_county,
            CountyCode::parse(&self.pilot_county)
                .ok()
                .and_then(|county| county.name())
                .unwrap_or("")
        )?;
        writeln!(
            f,
            "  {} published cells (cases opened, fallbacks, lack of funds, the pilot's employer \
             steps; every county scope, flow and month) checked against the simulation: \
             invariant \"{EVALUATION_AGREES}\"; national monthly totals (both flows) \
             published: {} of {}.",
            self.checked, self.national_totals.0, self.national_totals.1
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(
        counties: Counties,
        flow: Option<Flow>,
        month: &str,
        figure: &str,
        value: Option<f64>,
        cases: u32,
    ) -> CohortCell {
        CohortCell {
            county: Some(ekb_proto::v1::CountyScope {
                scope: Some(match counties {
                    Counties::One(code) => county_scope::Scope::CountyCode(code),
                    Counties::Others => county_scope::Scope::OtherCounties(true),
                    Counties::All => county_scope::Scope::AllCounties(true),
                }),
            }),
            flow: Some(ekb_proto::v1::FlowScope {
                scope: Some(match flow {
                    Some(flow) => flow_scope::Scope::Flow(flow as i32),
                    None => flow_scope::Scope::AllFlows(true),
                }),
            }),
            month: month.to_owned(),
            figure: figure.to_owned(),
            value,
            cases: value.map(|_| cases),
            suppression: if value.is_some() {
                Suppression::Unspecified as i32
            } else {
                Suppression::Primary as i32
            },
            ..CohortCell::default()
        }
    }

    fn case(month: &str, county: &str, flow: Flow, seen: Option<Seen>) -> ModelCase {
        ModelCase {
            month: month.to_owned(),
            county: county.to_owned(),
            flow,
            seen,
        }
    }

    const PLAIN: Option<Seen> = Some(Seen {
        fell_back: false,
        lack_of_funds: false,
    });
    const FELL_BACK: Option<Seen> = Some(Seen {
        fell_back: true,
        lack_of_funds: false,
    });
    const NO_FUNDS: Option<Seen> = Some(Seen {
        fell_back: false,
        lack_of_funds: true,
    });

    fn table(cells: Vec<CohortCell>) -> GetCohortTableResponse {
        GetCohortTableResponse {
            cells,
            min_cases: 5,
            pilot_county: "34".to_owned(),
            ..GetCohortTableResponse::default()
        }
    }

    fn year() -> Vec<ModelCase> {
        let mut cases = Vec::new();
        for _ in 0..6 {
            cases.push(case("2027-03", "03", Flow::Regular, PLAIN));
        }
        cases.push(case("2027-03", "03", Flow::Regular, NO_FUNDS));
        for _ in 0..5 {
            cases.push(case("2027-03", "34", Flow::Pilot, PLAIN));
        }
        cases.push(case("2027-03", "34", Flow::Pilot, FELL_BACK));
        cases.push(case("2027-04", "34", Flow::Pilot, PLAIN));
        cases
    }

    #[test]
    fn published_cells_that_agree_with_the_model_pass() {
        let cells = vec![
            cell(Counties::All, None, "2027-03", CASES_OPENED, Some(13.0), 13),
            cell(Counties::All, None, "2027-04", CASES_OPENED, None, 0),
            cell(
                Counties::Others,
                Some(Flow::Regular),
                "2027-03",
                CASES_OPENED,
                Some(7.0),
                7,
            ),
            cell(
                Counties::One("34".into()),
                Some(Flow::Pilot),
                "2027-03",
                CASES_OPENED,
                Some(6.0),
                6,
            ),
            cell(
                Counties::One("34".into()),
                Some(Flow::Pilot),
                "2027-03",
                PILOT_FALLBACKS,
                Some(1.0),
                6,
            ),
            cell(
                Counties::All,
                Some(Flow::Regular),
                "2027-03",
                LACK_OF_FUNDS,
                Some(1.0),
                1,
            ),
            cell(
                Counties::One("34".into()),
                Some(Flow::Pilot),
                "2027-03",
                EMPLOYER_STEPS,
                Some(2.0 / 6.0),
                6,
            ),
            cell(
                Counties::One("34".into()),
                Some(Flow::Pilot),
                "2027-04",
                EMPLOYER_STEPS,
                Some(0.0),
                5,
            ),
        ];
        assert_eq!(judge(&table(cells), &year()), Vec::new());
    }

    #[test]
    fn a_published_cell_that_differs_is_a_violation_naming_the_cell() {
        let cells = vec![
            cell(Counties::All, None, "2027-03", CASES_OPENED, Some(12.0), 12),
            cell(
                Counties::One("34".into()),
                Some(Flow::Pilot),
                "2027-03",
                PILOT_FALLBACKS,
                Some(0.0),
                6,
            ),
            cell(
                Counties::All,
                Some(Flow::Regular),
                "2027-03",
                LACK_OF_FUNDS,
                Some(2.0),
                2,
            ),
            cell(
                Counties::One("34".into()),
                Some(Flow::Pilot),
                "2027-04",
                EMPLOYER_STEPS,
                Some(0.2),
                5,
            ),
            cell(
                Counties::One("34".into()),
                Some(Flow::Pilot),
                "2027-03",
                EMPLOYER_STEPS,
                Some(0.0),
                6,
            ),
        ];
        let violations = judge(&table(cells), &year());
        let details: Vec<&str> = violations.iter().map(|v| v.detail.as_str()).collect();
        assert_eq!(violations.len(), 6, "{details:#?}");
        assert!(violations.iter().all(|v| v.invariant == EVALUATION_AGREES));
        assert!(
            details.contains(
                &"2027-03 all counties both flows cases_opened: the evaluation says 12, the \
                  simulation opened 13"
            ),
            "{details:#?}"
        );
        assert!(
            details.contains(
                &"2027-04: the simulation opened cases, the evaluation has no national \
                  cases_opened cell"
            ),
            "{details:#?}"
        );
        assert!(
            details
                .iter()
                .any(|d| d.contains("county 34 (pilot) PILOT pilot_fallbacks"))
        );
    }

    #[test]
    fn a_failed_case_widens_the_expected_count() {
        let mut cases = year();
        cases.push(case("2027-03", "03", Flow::Regular, None));
        let cells = |opened: f64| {
            vec![
                cell(
                    Counties::All,
                    None,
                    "2027-03",
                    CASES_OPENED,
                    Some(opened),
                    13,
                ),
                cell(Counties::All, None, "2027-04", CASES_OPENED, Some(1.0), 1),
            ]
        };
        assert!(judge(&table(cells(13.0)), &cases).is_empty());
        assert!(judge(&table(cells(14.0)), &cases).is_empty());
        let violations = judge(&table(cells(15.0)), &cases);
        assert_eq!(violations.len(), 1);
        assert!(
            violations[0]
                .detail
                .ends_with("the simulation opened 13..14")
        );
    }

    #[test]
    fn the_headline_sums_months_weighs_means_and_counts_suppressed_months() {
        let pilot = Counties::One("34".into());
        let cells = vec![
            cell(
                pilot.clone(),
                Some(Flow::Pilot),
                "2027-03",
                CASES_OPENED,
                Some(6.0),
                6,
            ),
            cell(
                pilot.clone(),
                Some(Flow::Pilot),
                "2027-04",
                CASES_OPENED,
                None,
                0,
            ),
            cell(
                pilot.clone(),
                Some(Flow::Pilot),
                "2027-05",
                CASES_OPENED,
                Some(10.0),
                10,
            ),
            cell(
                pilot.clone(),
                Some(Flow::Pilot),
                "2027-03",
                NAV_STEPS,
                Some(6.0),
                6,
            ),
            cell(
                pilot.clone(),
                Some(Flow::Pilot),
                "2027-05",
                NAV_STEPS,
                Some(7.0),
                10,
            ),
            cell(
                pilot.clone(),
                Some(Flow::Pilot),
                "2027-03",
                DAYS_TO_START,
                Some(12.0),
                6,
            ),
            cell(
                pilot,
                Some(Flow::Pilot),
                "2027-05",
                DAYS_TO_START,
                Some(15.5),
                10,
            ),
        ];
        let headline = headline(&table(cells), 2027);
        let pilot_column = 3;
        let figure = |row: usize| {
            headline.rows[row].1[pilot_column]
                .as_ref()
                .map(written)
                .unwrap_or_default()
        };
        assert_eq!(headline.columns[pilot_column], "PILOT 34");
        assert_eq!(figure(0), "16 (+1 mo. supp.)");
        assert_eq!(figure(4), "12–15.5");
        assert_eq!(figure(5), "6.62");
        assert_eq!(figure(1), "–");
        assert!(
            headline.rows[1].1[0].is_none(),
            "no fallbacks in the regular flow"
        );
        let text = headline.to_string();
        assert!(text.contains("REGULAR other counties"), "{text}");
    }
}
