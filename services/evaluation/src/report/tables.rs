//! The report's short table per county: one row per month with the headline figures, the pilot
//! county first, then the comparison group, the whole country and each other county.

use std::fmt::Write as _;

use time::Date;

use super::{
    Index, PILOT, REGULAR,
    html::{escape, number, suppressed_td},
};
use crate::{
    cohorts::{self, TableContext},
    csv_export,
    table::{Cell, CountyScope, FlowScope},
};

/// A column: its heading, the flow and figure it shows, how to print a value.
struct Column {
    heading: &'static str,
    flow: FlowScope,
    figure: &'static str,
    format: fn(f64) -> String,
}

const COLUMNS: [Column; 7] = [
    Column {
        heading: "Opened, regular",
        flow: REGULAR,
        figure: cohorts::CASES_OPENED,
        format: whole,
    },
    Column {
        heading: "Opened, pilot",
        flow: PILOT,
        figure: cohorts::CASES_OPENED,
        format: whole,
    },
    Column {
        heading: "Per 10,000 employees",
        flow: FlowScope::All,
        figure: cohorts::UPTAKE_PER_10000_EMPLOYEES,
        format: two_places,
    },
    Column {
        heading: "Days to expert start (median)",
        flow: FlowScope::All,
        figure: cohorts::DAYS_TO_EXPERT_START_MEDIAN,
        format: one_place,
    },
    Column {
        heading: "NAV steps per case",
        flow: FlowScope::All,
        figure: cohorts::NAV_STEPS_PER_CASE,
        format: one_place,
    },
    Column {
        heading: "Employer steps per case",
        flow: FlowScope::All,
        figure: cohorts::EMPLOYER_STEPS_PER_CASE,
        format: one_place,
    },
    Column {
        heading: "Cost per completed case (NOK)",
        flow: FlowScope::All,
        figure: cohorts::COST_PER_COMPLETED_CASE_ORE,
        format: kroner,
    },
];

fn whole(value: f64) -> String {
    number(value, 0)
}

fn one_place(value: f64) -> String {
    number(value, 1)
}

fn two_places(value: f64) -> String {
    number(value, 2)
}

fn kroner(ore: f64) -> String {
    number(ore / 100.0, 0)
}

/// A `<section>` with one table per county scope that has cells.
pub(super) fn county_tables(
    index: &Index,
    cells: &[Cell],
    months: &[Date],
    context: &TableContext,
) -> String {
    let pilot = CountyScope::County(context.pilot_county.clone());
    let mut scopes = vec![pilot.clone(), CountyScope::OtherCounties, CountyScope::All];
    let mut others: Vec<&CountyScope> = cells
        .iter()
        .map(|cell| &cell.county)
        .filter(|county| matches!(county, CountyScope::County(_)) && **county != pilot)
        .collect();
    others.sort();
    others.dedup();
    scopes.extend(others.into_iter().cloned());

    let mut out = String::from("<section><h2>Per county</h2>");
    for scope in scopes {
        let has_cells = months.iter().any(|month| {
            COLUMNS.iter().any(|column| {
                index
                    .get(&scope, column.flow, *month, None, column.figure)
                    .is_some()
            })
        });
        if !has_cells {
            continue;
        }
        let (heading, code) = match &scope {
            CountyScope::County(code) if scope == pilot => {
                (format!("County {code} (pilot)"), code.as_str())
            }
            CountyScope::County(code) => (format!("County {code}"), code.as_str()),
            CountyScope::OtherCounties => ("Other counties".to_owned(), "other_counties"),
            CountyScope::All => ("All counties".to_owned(), "all"),
        };
        let _ = write!(
            out,
            "<h3>{}</h3><table class=\"county\" data-county=\"{}\"><thead><tr><th>Month</th>",
            escape(&heading),
            escape(code)
        );
        for column in &COLUMNS {
            let _ = write!(out, "<th>{}</th>", escape(column.heading));
        }
        out.push_str("</tr></thead><tbody>");
        for month in months {
            let _ = write!(out, "<tr><th>{}</th>", escape(&csv_export::month(*month)));
            for column in &COLUMNS {
                let cell = index.get(&scope, column.flow, *month, None, column.figure);
                match cell.map(|cell| (cell.suppressed, cell.value)) {
                    Some((Some(why), _)) => out.push_str(&suppressed_td(why, context.min_cases)),
                    Some((None, Some(value))) => {
                        let _ = write!(out, "<td>{}</td>", escape(&(column.format)(value)));
                    }
                    _ => out.push_str(
                        "<td class=\"none\" title=\"no cases to compute it from\">–</td>",
                    ),
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
    out
}
