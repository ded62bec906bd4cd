//! The report in a real browser: Debian's Chromium, headless, loads the document from a file and
//! dumps the DOM it built. Checked: it rendered (the title is there), every chart has data points
//! (SVG marks), and a suppressed cell shows as suppressed. Chromium is installed by
//! `scripts/ensure-chromium.sh`; without it the test fails and says so, it does not skip.
//! Set `EKB_REPORT_KEEP=1` to keep the HTML file (its path is printed) for a look or a
//! screenshot.

use std::{
    collections::BTreeMap,
    fs::File,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use time::macros::date;

use super::*;
use crate::{
    case_facts::{CapacityUse, FallbackReason, RoutingReason},
    cohorts::testing::{pilot_case, regular_case},
    employees::EmployeeCounts,
};

fn context() -> TableContext {
    TableContext {
        pilot_county: "34".to_owned(),
        employees: EmployeeCounts {
            source: "SSB, register-based employment statistics, table 13470".to_owned(),
            as_of: date!(2024 - 11 - 01),
            per_county: BTreeMap::from([
                ("03".to_owned(), 420_000),
                ("34".to_owned(), 180_000),
                ("46".to_owned(), 330_000),
            ]),
        },
        min_cases: 5,
    }
}

/// Three months of cases: the pilot county's regular flow has 3 cases in February, which must
/// show as suppressed; everything else has enough cases to be published.
fn facts() -> (Vec<crate::case_facts::CaseFacts>, Vec<CapacityUse>) {
    let mut cases = Vec::new();
    for (month, extra) in [
        (date!(2025 - 01 - 01), 0),
        (date!(2025 - 02 - 01), 2),
        (date!(2025 - 03 - 01), 4),
    ] {
        let fallbacks = if extra == 4 { 10 } else { 6 };
        for i in 0..(20 + extra) {
            let opened = month + time::Duration::days(i % 20);
            let mut case = pilot_case("34", opened);
            case.pilot.orders_placed = 1 + (i as u32 % 3);
            case.pilot.orders_declined = i as u32 % 3;
            case.fallback = (i < fallbacks).then_some(if i < 5 || extra != 4 {
                FallbackReason::AgreementsFull
            } else {
                FallbackReason::NoSupplierAvailable
            });
            case.pilot.accepted = case.fallback.is_none();
            case.pilot.completed = case.pilot.accepted && i % 7 != 0;
            case.decided_or_ordered_on = Some(opened + time::Duration::days(2));
            case.expert_started_on = case
                .pilot
                .accepted
                .then(|| opened + time::Duration::days(8 + i));
            case.nav_steps = 2;
            case.money.committed_ore = 2_500_000;
            case.money.disbursed_ore = if case.pilot.completed { 2_400_000 } else { 0 };
            cases.push(case);
        }
        for (county, n) in [
            ("03", 30),
            ("46", 20),
            ("34", if extra == 2 { 3 } else { 9 }),
        ] {
            for i in 0..n {
                let opened = month + time::Duration::days(i % 25);
                let mut case = regular_case(county, opened);
                if county == "34" {
                    case.routing_reason = RoutingReason::EmployerChoseOwnExpert;
                }
                case.regular.application_submitted = true;
                case.regular.granted = i % 4 != 0;
                case.regular.refund_paid = i % 4 != 0;
                case.decided_or_ordered_on = Some(opened + time::Duration::days(12));
                case.expert_started_on = case
                    .regular
                    .granted
                    .then(|| opened + time::Duration::days(20 + i % 30));
                case.nav_steps = 5;
                case.employer_steps = 2;
                case.money.committed_ore = 3_000_000;
                case.money.disbursed_ore = if case.regular.refund_paid {
                    2_800_000
                } else {
                    0
                };
                cases.push(case);
            }
        }
    }
    let capacity = [
        date!(2025 - 01 - 01),
        date!(2025 - 02 - 01),
        date!(2025 - 03 - 01),
    ]
    .into_iter()
    .enumerate()
    .flat_map(|(i, month)| {
        let used = 5 + i as u32;
        [("agr-0193", 10, used), ("agr-0207", 8, used + 1)].map(|(agreement, capacity, used)| {
            CapacityUse {
                agreement: agreement.to_owned(),
                county: "34".to_owned(),
                month,
                capacity,
                used,
            }
        })
    })
    .collect();
    (cases, capacity)
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("EKB_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "no Chromium at {} (set EKB_CHROMIUM or run scripts/ensure-chromium.sh to install Debian's chromium)",
        path.display()
    );
    path
}

/// Runs headless Chromium on `page` with `args`, its standard output into `out`; fails after a
/// minute.
fn run_chromium(page: &std::path::Path, args: &[&str], out: &std::path::Path) {
    let profile = std::env::temp_dir().join(format!("ekb-chromium-profile-{}", std::process::id()));
    let mut child = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(File::create(out).expect("create the output file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_dir_all(&profile);
    assert!(status.success(), "chromium failed: {status}");
}

#[test]
fn the_report_renders_in_chromium_with_data_in_every_chart_and_a_suppressed_cell() {
    let (cases, capacity) = facts();
    let period = Period::new(date!(2025 - 01 - 01), date!(2025 - 03 - 01)).expect("period");
    let context = context();
    let cells = cohorts::cells(&cases, &capacity, &period, &context);
    let suppressed_february = cells
        .iter()
        .find(|cell| {
            cell.county == CountyScope::County("34".into())
                && cell.flow == REGULAR
                && cell.month == date!(2025 - 02 - 01)
                && cell.figure == cohorts::CASES_OPENED
        })
        .expect("the cell");
    assert!(
        suppressed_february.suppressed.is_some(),
        "the test's facts hold a suppressed cell"
    );
    let html = render(&cells, &period, &context);

    let stamp = format!(
        "{}-{}",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    );
    let page = std::env::temp_dir().join(format!("ekb-evaluation-report-{stamp}.html"));
    let dom_file = std::env::temp_dir().join(format!("ekb-evaluation-report-{stamp}.dom"));
    std::fs::write(&page, &html).expect("write the report");
    run_chromium(&page, &["--dump-dom"], &dom_file);
    let dom = std::fs::read_to_string(&dom_file).expect("read the DOM");
    let _ = std::fs::remove_file(&dom_file);
    if std::env::var_os("EKB_REPORT_KEEP").is_some() {
        println!("report kept at {}", page.display());
    } else {
        let _ = std::fs::remove_file(&page);
    }

    assert!(
        dom.contains(&format!("<title>{TITLE}</title>")),
        "the browser built the document: {:.300}",
        dom
    );
    assert!(dom.contains("<h1>"), "the body rendered");

    let charts: Vec<&str> = dom.split("<figure class=\"chart\"").skip(1).collect();
    assert_eq!(charts.len(), 6, "six charts");
    for chart in charts {
        let chart = chart
            .split("</figure>")
            .next()
            .expect("the figure's content");
        let id = attribute(chart, "data-chart");
        let points: usize = attribute(chart, "data-points").parse().expect("a count");
        let marks = chart.matches("class=\"mark\"").count();
        assert!(
            points > 0 && marks == points,
            "chart {id}: {points} points, {marks} marks"
        );
    }

    let pilot_table = dom
        .split("<table class=\"county\" data-county=\"34\">")
        .nth(1)
        .and_then(|table| table.split("</table>").next())
        .expect("the pilot county's table");
    let february = pilot_table
        .split("<tr><th>2025-02</th>")
        .nth(1)
        .expect("February's row");
    let first_cell = february
        .split("</td>")
        .next()
        .expect("the regular flow's cell");
    assert!(
        first_cell.contains("class=\"suppressed\"") && first_cell.contains("suppressed (&lt;5)"),
        "February's 3 regular cases show as suppressed, not as a number: {first_cell}"
    );
    assert!(!first_cell.contains(">3<") && !first_cell.contains(">0<"));
}

fn attribute<'a>(element: &'a str, name: &str) -> &'a str {
    element
        .split(&format!("{name}=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {name} attribute"))
}

#[test]
fn the_report_refers_to_nothing_outside_itself() {
    let (cases, capacity) = facts();
    let period = Period::new(date!(2025 - 01 - 01), date!(2025 - 03 - 01)).expect("period");
    let html = render(
        &cohorts::cells(&cases, &capacity, &period, &context()),
        &period,
        &context(),
    );
    for external in [
        "http:", "https:", "src=", "href=", "<script", "@import", "url(",
    ] {
        assert!(!html.contains(external), "the report contains {external}");
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
}

#[test]
fn text_from_the_table_is_escaped() {
    let period = Period::new(date!(2025 - 01 - 01), date!(2025 - 01 - 01)).expect("period");
    let mut context = context();
    context.employees.source = "<script>alert(1)</script>".to_owned();
    let capacity = [CapacityUse {
        agreement: "<b>x</b>".to_owned(),
        county: "34".to_owned(),
        month: date!(2025 - 01 - 01),
        capacity: 10,
        used: 6,
    }];
    let html = render(
        &cohorts::cells(&[], &capacity, &period, &context),
        &period,
        &context,
    );
    assert!(!html.contains("<script>") && !html.contains("<b>x</b>"));
    assert!(html.contains("&lt;script&gt;") && html.contains("Agreement &lt;b&gt;x&lt;/b&gt;"));
}
