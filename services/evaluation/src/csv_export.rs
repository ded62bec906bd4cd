//! The table as CSV for the evaluators' own tools (R, a spreadsheet): one row per cell, the same
//! rows gRPC answers with, RFC 4180 (CRLF line ends, fields quoted when they hold a comma, a quote
//! or a line break, quotes doubled). Written out here rather than with a crate: it is a few lines
//! and the workspace has no CSV crate.
//!
//! Columns, in order:
//! - `county`: a county code ("34"), `other_counties` (every county but the pilot's) or `all`;
//! - `flow`: `regular`, `pilot` or `all`;
//! - `month`: the cohort month as `YYYY-MM` (for capacity, the month orders were placed in);
//! - `agreement`: the framework agreement's reference for per-agreement figures, else empty;
//! - `figure`: the figure's name (documented in the `cohorts` module and docs/evaluation.md);
//! - `value`: the value with a `.` decimal point and no thousands separator (money in øre),
//!   empty when suppressed;
//! - `cases`: the number of cases the value is computed from, empty when suppressed;
//! - `suppressed`: `primary` (fewer than the threshold of cases), `secondary` (hidden so that a
//!   total cannot reveal a primary one), or empty.

use std::fmt::Write as _;

use crate::{
    case_facts::Flow,
    table::{Cell, CountyScope, FlowScope, Suppression},
};

/// The header row's column names.
pub const COLUMNS: [&str; 8] = [
    "county",
    "flow",
    "month",
    "agreement",
    "figure",
    "value",
    "cases",
    "suppressed",
];

/// The cells as CSV with a header row.
pub fn to_csv(cells: &[Cell]) -> String {
    let mut out = String::new();
    write_row(&mut out, COLUMNS.iter().map(|column| (*column).to_owned()));
    for cell in cells {
        write_row(
            &mut out,
            [
                county(&cell.county).to_owned(),
                flow(cell.flow).to_owned(),
                month(cell.month),
                cell.agreement.clone().unwrap_or_default(),
                cell.figure.to_owned(),
                cell.value.map(number).unwrap_or_default(),
                cell.cases
                    .map(|cases| cases.to_string())
                    .unwrap_or_default(),
                suppressed(cell.suppressed).to_owned(),
            ],
        );
    }
    out
}

fn write_row(out: &mut String, fields: impl IntoIterator<Item = String>) {
    for (index, field) in fields.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&quote(&field));
    }
    out.push_str("\r\n");
}

/// The field as RFC 4180 wants it: quoted, with quotes doubled, when it holds a comma, a quote or
/// a line break; as it is otherwise.
pub fn quote(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// The county scope's CSV name.
pub fn county(scope: &CountyScope) -> &str {
    match scope {
        CountyScope::County(code) => code,
        CountyScope::OtherCounties => "other_counties",
        CountyScope::All => "all",
    }
}

/// The flow scope's CSV name.
pub fn flow(scope: FlowScope) -> &'static str {
    match scope {
        FlowScope::Flow(Flow::Regular) => "regular",
        FlowScope::Flow(Flow::Pilot) => "pilot",
        FlowScope::All => "all",
    }
}

/// The month as `YYYY-MM`.
pub fn month(month: time::Date) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:04}-{:02}", month.year(), u8::from(month.month()));
    out
}

/// The value with a `.` decimal point, the shortest text that reads back as the same number, never
/// an exponent; not-a-number and infinities (which no figure yields) as empty.
pub fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        String::new()
    }
}

fn suppressed(suppression: Option<Suppression>) -> &'static str {
    match suppression {
        None => "",
        Some(Suppression::Primary) => "primary",
        Some(Suppression::Secondary) => "secondary",
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn cell(county: CountyScope, value: Option<f64>, suppressed: Option<Suppression>) -> Cell {
        Cell {
            county,
            flow: FlowScope::Flow(Flow::Pilot),
            month: date!(2025 - 03 - 01),
            agreement: None,
            figure: "days_to_expert_start_median",
            value,
            cases: value.map(|_| 12),
            suppressed,
        }
    }

    #[test]
    fn one_row_per_cell_after_a_header_with_empty_values_for_suppressed_cells() {
        let mut agreement = cell(CountyScope::County("34".into()), Some(0.6), None);
        agreement.agreement = Some("agr \"north\", 2025".to_owned());
        agreement.figure = "capacity_share_used";
        let cells = [
            cell(CountyScope::County("34".into()), Some(12.5), None),
            cell(CountyScope::OtherCounties, None, Some(Suppression::Primary)),
            cell(CountyScope::All, None, Some(Suppression::Secondary)),
            agreement,
            cell(CountyScope::All, Some(123_456_789_000.0), None),
        ];
        let csv = to_csv(&cells);
        let rows: Vec<&str> = csv.split_terminator("\r\n").collect();
        assert_eq!(rows.len(), 6);
        assert!(csv.ends_with("\r\n") && !csv.contains("\r\n\r\n"));
        assert_eq!(
            rows[0],
            "county,flow,month,agreement,figure,value,cases,suppressed"
        );
        assert_eq!(
            rows[1],
            "34,pilot,2025-03,,days_to_expert_start_median,12.5,12,"
        );
        assert_eq!(
            rows[2],
            "other_counties,pilot,2025-03,,days_to_expert_start_median,,,primary"
        );
        assert_eq!(
            rows[3],
            "all,pilot,2025-03,,days_to_expert_start_median,,,secondary"
        );
        assert_eq!(
            rows[4],
            "34,pilot,2025-03,\"agr \"\"north\"\", 2025\",capacity_share_used,0.6,12,"
        );
        assert_eq!(
            rows[5],
            "all,pilot,2025-03,,days_to_expert_start_median,123456789000,12,"
        );
    }

    #[test]
    fn quoting_follows_rfc_4180() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(number(1e21), "1000000000000000000000", "no exponent");
        assert_eq!(number(f64::NAN), "");
    }
}
