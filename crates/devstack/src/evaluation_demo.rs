//! The part of `make run` about the evaluation, after the walks through both flows: this
//! month's cohort table (GetCohortTable) as a short table — per flow, county 34 against the
//! other counties, a handful of headline figures — and how to get the whole of it.
//!
//! Why it is mostly "suppressed": a run opens eight cases (the six sample cases and the two
//! walks), and figures from fewer than 5 cases are suppressed to protect the people behind
//! them, as are figures that would give a suppressed one away (docs/adr/0034). The table shows
//! that rule working, and says so; the figures themselves are for `make simulate`'s volume.
//!
//! The evaluation reads every domain topic into its own read model (ADR 0033), so it sees the
//! walks a moment after they end. The demo waits, bounded, until the table shows what the walks
//! that reached payment did (a case completed in that flow in county 34) and has stopped
//! changing; if that takes too long it prints what there is, with a note, and serves anyway.
//! Data is kept between runs, so the month's cohorts hold every run of the month.

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use anyhow::Context;
use ekb_domain::Money;
use ekb_platform::clock::Clock;
use ekb_proto::v1::{
    self, CohortCell, Flow, GetCohortTableResponse, Suppression, county_scope,
    evaluation_service_client::EvaluationServiceClient, flow_scope,
};
use ekb_testkit::{scenarios::clients::channel, services::ServiceProcess};
use tonic::transport::Channel;

use crate::{
    sample_cases::flow_name,
    table::{self, Align},
};

/// The evaluation's name (its catalog entry and binary).
pub const EVALUATION: &str = "evaluation";

/// How long the evaluation may take to show the walks (it consumes their events).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(20);
/// The table has caught up when it has not changed for this long (and shows the walks).
const QUIET: Duration = Duration::from_millis(1500);
/// How often the table is asked for while waiting.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// A figure of the short table: its name (`services/evaluation/src/cohorts/catalog.rs`), per
/// flow where the two flows name it differently, and how its value is written.
struct Headline {
    label: &'static str,
    regular: &'static str,
    pilot: &'static str,
    format: Format,
}

/// How a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// A count: `3`.
    Count,
    /// Days: `12` or `12.5`.
    Days,
    /// A mean per case: `4.50`.
    PerCase,
    /// Øre, written as kroner: `18 000,00 kr`.
    Ore,
}

/// The headline figures, in the order printed. An empty name: the flow has no such figure.
const HEADLINES: &[Headline] = &[
    Headline {
        label: "Cases opened",
        regular: "cases_opened",
        pilot: "cases_opened",
        format: Format::Count,
    },
    Headline {
        label: "Granted (regular) / accepted (pilot)",
        regular: "regular_granted",
        pilot: "pilot_accepted",
        format: Format::Count,
    },
    Headline {
        label: "Fallbacks to the regular flow",
        regular: "",
        pilot: "pilot_fallbacks",
        format: Format::Count,
    },
    Headline {
        label: "Days to expert start, median",
        regular: "days_to_expert_start_median",
        pilot: "days_to_expert_start_median",
        format: Format::Days,
    },
    Headline {
        label: "NAV steps per case",
        regular: "nav_steps_per_case",
        pilot: "nav_steps_per_case",
        format: Format::PerCase,
    },
    Headline {
        label: "Employer steps per case",
        regular: "employer_steps_per_case",
        pilot: "employer_steps_per_case",
        format: Format::PerCase,
    },
    Headline {
        label: "Cost per completed case",
        regular: "cost_per_completed_case_ore",
        pilot: "cost_per_completed_case_ore",
        format: Format::Ore,
    },
];

/// The figure that shows a walk reached payment: a completed case in that flow.
const COMPLETED: &str = "cases_completed";

/// Which counties a column covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counties {
    /// The pilot's county.
    Pilot,
    /// Every other county.
    Others,
}

/// One column of the short table: a flow in the pilot county or in the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Column {
    flow: Flow,
    counties: Counties,
}

/// The columns, before those with no cases are left out.
const COLUMNS: [Column; 4] = [
    Column {
        flow: Flow::Regular,
        counties: Counties::Pilot,
    },
    Column {
        flow: Flow::Regular,
        counties: Counties::Others,
    },
    Column {
        flow: Flow::Pilot,
        counties: Counties::Pilot,
    },
    Column {
        flow: Flow::Pilot,
        counties: Counties::Others,
    },
];

/// Which walks reached payment (their cases completed), so the wait knows what to look for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Walked {
    /// The regular walk's refund was paid.
    pub regular_paid: bool,
    /// The pilot walk's invoice was paid.
    pub pilot_paid: bool,
}

/// This month in Europe/Oslo by `clock`, `YYYY-MM`: the cohort of the cases this run opened.
pub fn month_now(clock: &dyn Clock) -> String {
    let today = ekb_domain::oslo_date(clock.now());
    format!("{:04}-{:02}", today.year(), u8::from(today.month()))
}

/// Waits (bounded) until the evaluation shows `walked`, then prints this month's short table.
/// Does nothing when the evaluation does not run in this stack.
pub async fn run(
    services: &[ServiceProcess],
    clock: &dyn Clock,
    walked: Walked,
) -> anyhow::Result<()> {
    let Some(service) = services.iter().find(|service| service.name == EVALUATION) else {
        return Ok(());
    };
    let mut evaluation = EvaluationServiceClient::new(channel(services, EVALUATION).await?);
    let month = month_now(clock);
    println!(
        "\nEvaluation {month}, the cohort of cases opened this month (GetCohortTable; every \
         run's cases of the month, the sample cases' too):"
    );
    let (response, caught_up) = wait_for_walks(&mut evaluation, &month, walked).await?;
    print!("{}", describe(&response, &month, caught_up, service));
    Ok(())
}

/// The month's table once it shows `walked` and has been quiet for [`QUIET`], or as it is after
/// [`CATCH_UP_TIMEOUT`] (then `false`).
async fn wait_for_walks(
    evaluation: &mut EvaluationServiceClient<Channel>,
    month: &str,
    walked: Walked,
) -> anyhow::Result<(GetCohortTableResponse, bool)> {
    let started = Instant::now();
    let mut last = table_of(evaluation, month).await?;
    let mut quiet_since = Instant::now();
    loop {
        if shows(&last, walked) && quiet_since.elapsed() >= QUIET {
            return Ok((last, true));
        }
        if started.elapsed() >= CATCH_UP_TIMEOUT {
            return Ok((last, false));
        }
        tokio::time::sleep(POLL_EVERY).await;
        let now = table_of(evaluation, month).await?;
        if now != last {
            quiet_since = Instant::now();
            last = now;
        }
    }
}

/// GetCohortTable for `month` alone.
async fn table_of(
    evaluation: &mut EvaluationServiceClient<Channel>,
    month: &str,
) -> anyhow::Result<GetCohortTableResponse> {
    Ok(evaluation
        .get_cohort_table(v1::GetCohortTableRequest {
            from_month: month.to_owned(),
            to_month: month.to_owned(),
        })
        .await
        .context("GetCohortTable")?
        .into_inner())
}

/// Whether `table` shows the walks of `walked` that reached payment: in the pilot county, a
/// cell of completed cases in that flow that is not a published zero (the walks' cases are
/// there; suppressed or not, the cell is no longer empty).
fn shows(table: &GetCohortTableResponse, walked: Walked) -> bool {
    let completed = |flow: Flow| {
        let column = Column {
            flow,
            counties: Counties::Pilot,
        };
        cell(table, column, COMPLETED)
            .is_some_and(|cell| cell.suppression() != Suppression::Unspecified || value(cell) > 0.0)
    };
    (!walked.regular_paid || completed(Flow::Regular))
        && (!walked.pilot_paid || completed(Flow::Pilot))
}

/// The value of a published cell (0 when unset).
fn value(cell: &CohortCell) -> f64 {
    cell.value.unwrap_or_default()
}

/// The cell of `figure` for `column` (this month's only; no agreement).
fn cell<'a>(
    table: &'a GetCohortTableResponse,
    column: Column,
    figure: &str,
) -> Option<&'a CohortCell> {
    table.cells.iter().find(|cell| {
        cell.figure == figure
            && cell.agreement_id.is_empty()
            && flow_of(cell) == Some(column.flow)
            && counties_of(cell, &table.pilot_county) == Some(column.counties)
    })
}

/// The one flow a cell covers (`None` for both flows).
fn flow_of(cell: &CohortCell) -> Option<Flow> {
    match cell.flow.as_ref()?.scope.as_ref()? {
        flow_scope::Scope::Flow(flow) => Flow::try_from(*flow).ok(),
        flow_scope::Scope::AllFlows(_) => None,
    }
}

/// Whether a cell covers the pilot county or the other counties (`None` for another single
/// county or the whole country).
fn counties_of(cell: &CohortCell, pilot_county: &str) -> Option<Counties> {
    match cell.county.as_ref()?.scope.as_ref()? {
        county_scope::Scope::CountyCode(code) if code == pilot_county => Some(Counties::Pilot),
        county_scope::Scope::OtherCounties(true) => Some(Counties::Others),
        _ => None,
    }
}

/// What one cell shows: its value, "suppressed (<5)" (too few cases), "suppressed (2nd)"
/// (hidden so that a total does not give a suppressed one away), or "–" (no such cell: the
/// flow has no such figure, or nothing to take a median or cost of).
fn shown(cell: Option<&CohortCell>, format: Format, min_cases: u32) -> String {
    let Some(cell) = cell else {
        return "–".to_owned();
    };
    match cell.suppression() {
        Suppression::Primary => return format!("suppressed (<{min_cases})"),
        Suppression::Secondary => return "suppressed (2nd)".to_owned(),
        Suppression::Unspecified => {}
    }
    let Some(value) = cell.value else {
        return "–".to_owned();
    };
    match format {
        Format::Count => format!("{value:.0}"),
        Format::Days if value.fract() == 0.0 => format!("{value:.0}"),
        Format::Days => format!("{value:.1}"),
        Format::PerCase => format!("{value:.2}"),
        Format::Ore => Money::from_ore(value.round() as i64).to_string(),
    }
}

/// The column's title: `REGULAR 34`, `PILOT other counties`.
fn title(column: Column, pilot_county: &str) -> String {
    let counties = match column.counties {
        Counties::Pilot => pilot_county.to_owned(),
        Counties::Others => "other counties".to_owned(),
    };
    format!("{} {counties}", flow_name(column.flow))
}

/// The short table, the note on suppression and how to get everything (the lines printed,
/// each ending in a newline). `service` is the running evaluation, for the grpcurl lines.
fn describe(
    table: &GetCohortTableResponse,
    month: &str,
    caught_up: bool,
    service: &ServiceProcess,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason only.
    if !caught_up {
        let _ = writeln!(
            out,
            "  Note: after {CATCH_UP_TIMEOUT:?} the evaluation did not yet show the walks' \
             cases (it reads the topics, see its log); the table is as it stood then."
        );
    }
    // A column with no cases at all (the pilot outside its county) is left out; one whose
    // count is suppressed stays.
    let columns: Vec<Column> = COLUMNS
        .into_iter()
        .filter(|column| {
            cell(table, *column, "cases_opened").is_some_and(|cell| {
                cell.suppression() != Suppression::Unspecified || value(cell) > 0.0
            })
        })
        .collect();
    if columns.is_empty() {
        let _ = writeln!(
            out,
            "  No cases opened in {month} yet, as far as the evaluation has seen."
        );
    } else {
        out.push_str(&render(table, &columns));
        out.push('\n');
    }
    let min_cases = table.min_cases;
    let _ = writeln!(
        out,
        "  Figures from fewer than {min_cases} cases are suppressed to protect the people behind \
         them, and so is a figure that would give a suppressed one away (\"2nd\") \
         (docs/adr/0034); at make run's volume (8 cases a run) most are. \"–\": no such figure \
         for the flow, or no case to take it from."
    );
    let request = format!(r#"{{"from_month":"{month}","to_month":"{month}"}}"#);
    let _ = writeln!(
        out,
        "  Every figure, county and month (docs/evaluation.md), as CSV or an HTML report \
         (role evaluation-reader; auth is off here):"
    );
    for (method, field, file) in [
        ("ExportCohortTableCsv", "csv", "cohorts.csv"),
        ("GetReport", "html", "report.html"),
    ] {
        let _ = writeln!(
            out,
            "    grpcurl -plaintext -d '{request}' {} ekspertbistand.v1.EvaluationService/{method} \
             | jq -r .{field} > {file}",
            service.grpc_addr
        );
    }
    let _ = writeln!(
        out,
        "    or, while this serves: make evaluation-report ARGS=\"--from {month} --to {month} \
         --csv target/cohorts.csv\""
    );
    out
}

/// The headline rows for `columns`, lined up with the shared table helper.
fn render(table: &GetCohortTableResponse, columns: &[Column]) -> String {
    let titles: Vec<String> = columns
        .iter()
        .map(|column| title(*column, &table.pilot_county))
        .collect();
    let rows: Vec<Vec<String>> = HEADLINES
        .iter()
        .map(|headline| {
            let mut row = vec![headline.label.to_owned()];
            for column in columns {
                let figure = match column.flow {
                    Flow::Pilot => headline.pilot,
                    _ => headline.regular,
                };
                let found = (!figure.is_empty())
                    .then(|| cell(table, *column, figure))
                    .flatten();
                row.push(shown(found, headline.format, table.min_cases));
            }
            row
        })
        .collect();
    // The shared helper takes a fixed number of columns: up to four flows × counties.
    match columns.len() {
        1 => aligned::<2>(&titles, &rows),
        2 => aligned::<3>(&titles, &rows),
        3 => aligned::<4>(&titles, &rows),
        _ => aligned::<5>(&titles, &rows),
    }
}

/// [`table::aligned`] with `N - 1` value columns after the figure's label.
fn aligned<const N: usize>(titles: &[String], rows: &[Vec<String>]) -> String {
    let mut header = ["FIGURE"; N];
    for (slot, title) in header.iter_mut().skip(1).zip(titles) {
        *slot = title.as_str();
    }
    let mut align = [Align::Right; N];
    align[0] = Align::Left;
    let cells: Vec<[String; N]> = rows
        .iter()
        .map(|row| std::array::from_fn(|index| row.get(index).cloned().unwrap_or_default()))
        .collect();
    table::aligned(header, align, &cells)
}

#[cfg(test)]
mod tests {
    use ekb_testkit::catalog;
    use time::macros::datetime;

    use super::*;

    fn scope(counties: Option<&str>) -> v1::CountyScope {
        v1::CountyScope {
            scope: Some(match counties {
                Some(code) => county_scope::Scope::CountyCode(code.to_owned()),
                None => county_scope::Scope::OtherCounties(true),
            }),
        }
    }

    fn published(counties: Option<&str>, flow: Flow, figure: &str, value: f64) -> CohortCell {
        CohortCell {
            county: Some(scope(counties)),
            flow: Some(v1::FlowScope {
                scope: Some(flow_scope::Scope::Flow(flow as i32)),
            }),
            month: "2026-12".to_owned(),
            figure: figure.to_owned(),
            value: Some(value),
            cases: Some(value as u32),
            ..CohortCell::default()
        }
    }

    fn suppressed(
        counties: Option<&str>,
        flow: Flow,
        figure: &str,
        why: Suppression,
    ) -> CohortCell {
        CohortCell {
            value: None,
            cases: None,
            suppression: why as i32,
            ..published(counties, flow, figure, 0.0)
        }
    }

    fn table(cells: Vec<CohortCell>) -> GetCohortTableResponse {
        GetCohortTableResponse {
            cells,
            min_cases: 5,
            pilot_county: "34".to_owned(),
            ..GetCohortTableResponse::default()
        }
    }

    #[test]
    fn the_evaluation_is_in_the_catalog() {
        assert!(catalog::entry(EVALUATION).is_some());
    }

    #[test]
    fn the_month_is_norway_s() {
        let clock = ekb_platform::clock::OffsetClock::starting_at(datetime!(2026-12-31 23:30 UTC));
        assert_eq!(month_now(&clock), "2027-01");
    }

    #[test]
    fn cells_show_values_suppression_or_nothing() {
        let count = published(Some("34"), Flow::Regular, "cases_opened", 12.0);
        assert_eq!(shown(Some(&count), Format::Count, 5), "12");
        let median = published(Some("34"), Flow::Regular, "x", 12.5);
        assert_eq!(shown(Some(&median), Format::Days, 5), "12.5");
        assert_eq!(shown(Some(&median), Format::PerCase, 5), "12.50");
        let cost = published(Some("34"), Flow::Regular, "x", 1_800_000.0);
        assert_eq!(shown(Some(&cost), Format::Ore, 5), "18 000,00 kr");
        let primary = suppressed(Some("34"), Flow::Pilot, "x", Suppression::Primary);
        assert_eq!(shown(Some(&primary), Format::Count, 5), "suppressed (<5)");
        let secondary = suppressed(Some("34"), Flow::Pilot, "x", Suppression::Secondary);
        assert_eq!(
            shown(Some(&secondary), Format::Count, 5),
            "suppressed (2nd)"
        );
        assert_eq!(shown(None, Format::Count, 5), "–");
    }

    #[test]
    fn the_walks_show_once_their_completed_cells_are_no_published_zero() {
        let both = Walked {
            regular_paid: true,
            pilot_paid: true,
        };
        let before = table(vec![
            published(Some("34"), Flow::Regular, COMPLETED, 0.0),
            published(Some("34"), Flow::Pilot, COMPLETED, 0.0),
        ]);
        assert!(!shows(&before, both));
        assert!(shows(&before, Walked::default()));
        let after = table(vec![
            suppressed(Some("34"), Flow::Regular, COMPLETED, Suppression::Primary),
            published(None, Flow::Regular, COMPLETED, 0.0),
            published(Some("34"), Flow::Pilot, COMPLETED, 7.0),
        ]);
        assert!(shows(&after, both));
    }

    #[test]
    fn the_short_table_leaves_out_empty_columns_and_says_why_cells_are_hidden() {
        let response = table(vec![
            published(Some("34"), Flow::Regular, "cases_opened", 6.0),
            suppressed(None, Flow::Regular, "cases_opened", Suppression::Primary),
            suppressed(
                Some("34"),
                Flow::Pilot,
                "cases_opened",
                Suppression::Primary,
            ),
            published(None, Flow::Pilot, "cases_opened", 0.0),
            published(Some("34"), Flow::Regular, "nav_steps_per_case", 1.5),
            suppressed(
                Some("34"),
                Flow::Pilot,
                "pilot_fallbacks",
                Suppression::Secondary,
            ),
        ]);
        let columns: Vec<Column> = COLUMNS
            .into_iter()
            .filter(|column| {
                cell(&response, *column, "cases_opened").is_some_and(|cell| {
                    cell.suppression() != Suppression::Unspecified || value(cell) > 0.0
                })
            })
            .collect();
        assert_eq!(columns.len(), 3);
        let text = render(&response, &columns);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + HEADLINES.len(), "{text}");
        assert!(
            lines[0].contains("REGULAR 34")
                && lines[0].contains("REGULAR other counties")
                && lines[0].contains("PILOT 34")
                && !lines[0].contains("PILOT other"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("  Cases opened")
                && lines[1].contains(" 6 ")
                && lines[1].ends_with("suppressed (<5)"),
            "{text}"
        );
        let fallbacks = lines
            .iter()
            .find(|line| line.contains("Fallbacks"))
            .expect("a fallback row");
        assert!(fallbacks.ends_with("suppressed (2nd)"), "{text}");
        assert!(fallbacks.contains('–'), "{text}");
        let steps = lines
            .iter()
            .find(|line| line.contains("NAV steps"))
            .expect("a NAV steps row");
        assert!(steps.contains("1.50"), "{text}");
    }
}
