//! The evaluation report: one self-contained HTML document (inline CSS, inline SVG, no script, no
//! external URL) that an evaluator can open offline, mail or archive with the figures it shows.
//! It is drawn from the same suppressed cells the gRPC answer and the CSV carry, so it cannot show
//! more than they do; a suppressed figure reads "⋯ suppressed", never 0.
//!
//! Contents: monthly uptake in the pilot county against the other counties (and a year earlier
//! where the data reaches back), days to expert start per flow (median, p75, p90), NAV and
//! employer steps per case per flow, pilot fallbacks per reason, capacity use per agreement, and a
//! short table per county.

#[cfg(test)]
mod browser_tests;
mod chart;
mod html;
mod tables;

use std::{collections::HashMap, fmt::Write as _};

use time::Date;

use self::{
    chart::{Chart, Kind, Point, Series},
    html::escape,
};
use crate::{
    case_facts::Flow,
    cohorts::{self, Period, TableContext},
    csv_export,
    table::{Cell, CountyScope, FlowScope},
};

/// The document's title (and first heading).
pub const TITLE: &str = "Evaluation of the § 9a pilot: tilskudd til ekspertbistand";

/// The report for `cells` as one HTML document with no external assets.
pub fn render(cells: &[Cell], period: &Period, context: &TableContext) -> String {
    let index = Index::new(cells);
    let months = period.months();
    let pilot = CountyScope::County(context.pilot_county.clone());

    let mut body = String::new();
    let _ = write!(
        body,
        "<header><h1>{title}</h1><p>Cases opened from {from} to {to}, by the month they were opened \
         in. Pilot county: {pilot}. Employees: {source}, as of {as_of}.</p>\
         <p class=\"note\">Figures computed from fewer than {min} cases are suppressed \
         (<span class=\"suppressed\">⋯ suppressed</span>), and so are a few others, so that no total \
         can reveal them (docs/adr/0034). The CSV export holds every figure of the table; the \
         figures are defined in docs/evaluation.md.</p></header>",
        title = escape(TITLE),
        from = escape(&csv_export::month(period.from)),
        to = escape(&csv_export::month(period.to)),
        pilot = escape(&context.pilot_county),
        source = escape(&context.employees.source),
        as_of = escape(&context.employees.as_of.to_string()),
        min = context.min_cases,
    );

    let categories: Vec<String> = months
        .iter()
        .map(|month| csv_export::month(*month))
        .collect();
    let charts = [
        uptake_chart(&index, &months, &pilot, &context.pilot_county),
        days_chart(&index, &months),
        steps_chart(
            &index,
            &months,
            "nav_steps",
            "NAV steps per case",
            cohorts::NAV_STEPS_PER_CASE,
        ),
        steps_chart(
            &index,
            &months,
            "employer_steps",
            "Employer steps per case",
            cohorts::EMPLOYER_STEPS_PER_CASE,
        ),
        fallback_chart(&index, &months),
        capacity_chart(cells, &index, &months),
    ];
    body.push_str("<section><h2>Charts</h2>");
    for (id, title, unit, series, kind) in charts {
        let chart = Chart {
            id,
            title,
            unit,
            categories: categories.clone(),
            series,
            kind,
        };
        body.push_str(&chart.render());
    }
    body.push_str("</section>");

    body.push_str(&tables::county_tables(&index, cells, &months, context));

    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        title = escape(TITLE),
    )
}

const STYLE: &str = "\
body{font-family:'DejaVu Sans',Arial,sans-serif;margin:2em auto;max-width:1000px;color:#222;line-height:1.4}\
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}\
.note{color:#555;font-size:.9em}\
figure.chart{margin:1.5em 0}figcaption{font-weight:bold;margin-bottom:.3em}.unit{font-weight:normal;color:#666}\
svg{width:100%;height:auto;background:#fff}\
svg .grid{stroke:#e5e5e5}svg .axis{stroke:#888}svg .tick{font-size:11px;fill:#555}\
svg .line{fill:none;stroke-width:2}svg rect.suppressed{fill:#fff;stroke:#888;stroke-width:1.5}\
ul.legend{list-style:none;padding:0;margin:.3em 0;font-size:.85em}ul.legend li{display:inline-block;margin-right:1.2em}\
.swatch{display:inline-block;width:18px;height:0;border-top:3px solid;vertical-align:middle;margin-right:.4em}\
.swatch.dashed{border-top-style:dashed}\
.swatch.suppressed-key{width:8px;height:8px;border:1.5px solid #888;transform:rotate(45deg)}\
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}\
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}th{background:#f3f3f3}\
tbody th{white-space:nowrap}\
td.suppressed,span.suppressed{color:#888;font-style:italic}td.none{color:#aaa}";

/// The cells by their coordinates, for the charts and tables to look up.
pub(crate) struct Index<'a> {
    cells: HashMap<(&'a CountyScope, FlowScope, Date, Option<&'a str>, &'a str), &'a Cell>,
}

impl<'a> Index<'a> {
    fn new(cells: &'a [Cell]) -> Self {
        let cells = cells
            .iter()
            .map(|cell| {
                (
                    (
                        &cell.county,
                        cell.flow,
                        cell.month,
                        cell.agreement.as_deref(),
                        cell.figure,
                    ),
                    cell,
                )
            })
            .collect();
        Self { cells }
    }

    /// The cell, if the table has it.
    fn get(
        &self,
        county: &CountyScope,
        flow: FlowScope,
        month: Date,
        agreement: Option<&str>,
        figure: &str,
    ) -> Option<&'a Cell> {
        self.cells
            .get(&(county, flow, month, agreement, figure))
            .copied()
    }

    /// The cell as a chart point, its value multiplied by `scale`.
    fn point(
        &self,
        county: &CountyScope,
        flow: FlowScope,
        month: Date,
        agreement: Option<&str>,
        figure: &str,
        scale: f64,
    ) -> Point {
        match self.get(county, flow, month, agreement, figure) {
            None => Point::Missing,
            Some(cell) => match (cell.suppressed, cell.value) {
                (Some(why), _) => Point::Suppressed(why),
                (None, Some(value)) => Point::Value(value * scale),
                (None, None) => Point::Missing,
            },
        }
    }

    /// A series of one figure over `months`.
    fn series(
        &self,
        name: String,
        months: &[Date],
        county: &CountyScope,
        flow: FlowScope,
        figure: &str,
    ) -> Series {
        let points = months
            .iter()
            .map(|month| self.point(county, flow, *month, None, figure, 1.0))
            .collect();
        Series {
            name,
            points,
            dashed: false,
        }
    }
}

type ChartParts = (&'static str, String, String, Vec<Series>, Kind);

const REGULAR: FlowScope = FlowScope::Flow(Flow::Regular);
const PILOT: FlowScope = FlowScope::Flow(Flow::Pilot);

fn uptake_chart(
    index: &Index,
    months: &[Date],
    pilot: &CountyScope,
    pilot_county: &str,
) -> ChartParts {
    let others = CountyScope::OtherCounties;
    let mut series = vec![
        index.series(
            format!("County {pilot_county}"),
            months,
            pilot,
            FlowScope::All,
            cohorts::UPTAKE_PER_10000_EMPLOYEES,
        ),
        index.series(
            "Other counties".to_owned(),
            months,
            &others,
            FlowScope::All,
            cohorts::UPTAKE_PER_10000_EMPLOYEES,
        ),
    ];
    for (name, county) in [
        (format!("County {pilot_county}, a year earlier"), pilot),
        ("Other counties, a year earlier".to_owned(), &others),
    ] {
        let earlier = index.series(
            name,
            months,
            county,
            FlowScope::All,
            cohorts::UPTAKE_PER_10000_EMPLOYEES_YEAR_EARLIER,
        );
        if earlier.points.iter().any(|point| *point != Point::Missing) {
            series.push(Series {
                dashed: true,
                ..earlier
            });
        }
    }
    (
        "uptake",
        format!("Monthly uptake: county {pilot_county} against the other counties"),
        "cases opened per 10,000 employees".to_owned(),
        series,
        Kind::Line,
    )
}

fn days_chart(index: &Index, months: &[Date]) -> ChartParts {
    let mut series = Vec::new();
    for (flow, flow_name) in [(REGULAR, "Regular"), (PILOT, "Pilot")] {
        for (figure, statistic) in [
            (cohorts::DAYS_TO_EXPERT_START_MEDIAN, "median"),
            (cohorts::DAYS_TO_EXPERT_START_P75, "p75"),
            (cohorts::DAYS_TO_EXPERT_START_P90, "p90"),
        ] {
            series.push(index.series(
                format!("{flow_name} {statistic}"),
                months,
                &CountyScope::All,
                flow,
                figure,
            ));
        }
    }
    (
        "days_to_expert_start",
        "Days from case opened to expert start, per flow".to_owned(),
        "days".to_owned(),
        series,
        Kind::Bars,
    )
}

fn steps_chart(
    index: &Index,
    months: &[Date],
    id: &'static str,
    title: &str,
    figure: &str,
) -> ChartParts {
    let series = [(REGULAR, "Regular"), (PILOT, "Pilot")]
        .into_iter()
        .map(|(flow, name)| index.series(name.to_owned(), months, &CountyScope::All, flow, figure))
        .collect();
    (
        id,
        format!("{title}, per flow"),
        "steps per case".to_owned(),
        series,
        Kind::Bars,
    )
}

fn fallback_chart(index: &Index, months: &[Date]) -> ChartParts {
    let series = [
        (
            cohorts::PILOT_FALLBACK_NO_SUPPLIER_AVAILABLE,
            "No supplier available",
        ),
        (cohorts::PILOT_FALLBACK_AGREEMENTS_FULL, "Agreements full"),
        (cohorts::PILOT_FALLBACK_AGREEMENT_ENDED, "Agreement ended"),
        (
            cohorts::PILOT_FALLBACK_EMPLOYER_CHOSE_OWN_EXPERT,
            "Employer chose own expert",
        ),
    ]
    .into_iter()
    .map(|(figure, name)| index.series(name.to_owned(), months, &CountyScope::All, PILOT, figure))
    .collect();
    (
        "fallbacks",
        "Pilot cases handed to the regular flow, per reason".to_owned(),
        "cases".to_owned(),
        series,
        Kind::Bars,
    )
}

fn capacity_chart(cells: &[Cell], index: &Index, months: &[Date]) -> ChartParts {
    let mut agreements: Vec<(&CountyScope, &str)> = cells
        .iter()
        .filter(|cell| {
            cell.figure == cohorts::CAPACITY_SHARE_USED
                || cell.figure == cohorts::CAPACITY_ORDERS_USED
        })
        .filter_map(|cell| {
            cell.agreement
                .as_deref()
                .map(|agreement| (&cell.county, agreement))
        })
        .collect();
    agreements.sort();
    agreements.dedup();
    let series = agreements
        .into_iter()
        .map(|(county, agreement)| {
            let points = months
                .iter()
                .map(|month| {
                    index.point(
                        county,
                        PILOT,
                        *month,
                        Some(agreement),
                        cohorts::CAPACITY_SHARE_USED,
                        100.0,
                    )
                })
                .collect();
            Series {
                name: format!("Agreement {agreement}"),
                points,
                dashed: false,
            }
        })
        .collect();
    (
        "capacity",
        "Capacity use per framework agreement".to_owned(),
        "% of the month's orders used".to_owned(),
        series,
        Kind::Bars,
    )
}
