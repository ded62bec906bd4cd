//! The part of `make run` about budget, after the routing and registry demo: this year's
//! appropriation on the scheme's account (chapter 2650 post 76) set to the fixture's 50 MNOK
//! and printed with its figures, then the year's usage per county and per flow (GetUsage).
//!
//! Data is kept between runs, so the appropriation may be there already, as an earlier run left
//! it or as a developer changed it (SetAppropriation with grpcurl, say). The demo sets it only
//! when budget has none, so it never overwrites a figure somebody set, and reports what it
//! finds, with a note where that differs from the fixture; as in the routing demo, nothing it
//! finds makes it refuse to serve. Until applications and pilot-ordering run, nobody asks budget
//! for money, so the usage report is empty, and says so.

use anyhow::Context;
use ekb_domain::{CountyCode, Money};
use ekb_platform::clock::Clock;
use ekb_proto::v1::{
    self, BudgetAccount, UsageFigures, budget_service_client::BudgetServiceClient,
};
use ekb_testkit::scenarios::clients::channel;
use ekb_testkit::services::ServiceProcess;
use time::{Duration, OffsetDateTime, UtcOffset};
use tonic::{Code, transport::Channel};

use crate::{
    sample_cases::{FRESH_HINT, flow_name},
    table::{self, Align},
};

/// Budget's name (its catalog entry and binary).
pub const BUDGET: &str = "budget";
/// The services that ask budget for money (GrantRequested, OrderRequested).
const REQUESTERS: [&str; 2] = ["applications", "pilot-ordering"];

/// The account the fixture appropriates to: the scheme's, chapter 2650 post 76.
pub const ACCOUNT: BudgetAccount = BudgetAccount {
    chapter: 2650,
    post: 76,
};
/// The fixture's appropriation: 50 MNOK, in øre.
pub const APPROPRIATED_ORE: i64 = 5_000_000_000;
/// The note the fixture's SetAppropriation leaves in budget's audit trail.
pub const NOTE: &str = "make run fixture: 50 MNOK";

/// The budget year at `at`: the calendar year in Norway (Europe/Oslo). Around New Year Norway
/// is on CET, one hour ahead of UTC (summer time never reaches December or January), so one
/// hour ahead gives the right year at every instant.
pub fn budget_year_at(at: OffsetDateTime) -> i32 {
    (at.to_offset(UtcOffset::UTC) + Duration::hours(1)).year()
}

/// This year's budget year by `clock` ([`budget_year_at`] its now).
pub fn budget_year_now(clock: &dyn Clock) -> i32 {
    budget_year_at(clock.now())
}

/// `2650.76`.
pub fn account_label(account: &BudgetAccount) -> String {
    format!("{}.{:02}", account.chapter, account.post)
}

/// Sets (or finds) the appropriation and prints it, then prints the year's usage.
pub async fn run(services: &[ServiceProcess], clock: &dyn Clock) -> anyhow::Result<()> {
    let mut budget = BudgetServiceClient::new(channel(services, BUDGET).await?);
    let year = budget_year_now(clock);
    println!(
        "\nBudget {year}, account {} (SetAppropriation, GetUsage):",
        account_label(&ACCOUNT)
    );
    for line in appropriation(&mut budget, year).await? {
        println!("  {line}");
    }
    let running: Vec<&str> = services
        .iter()
        .map(|service| service.name.as_str())
        .collect();
    for line in usage(&mut budget, year, &running).await? {
        println!("  {line}");
    }
    Ok(())
}

/// The fixture's SetAppropriation for `year`: empty thresholds mean budget's configured alert
/// levels.
pub fn fixture_request(year: i32) -> v1::SetAppropriationRequest {
    v1::SetAppropriationRequest {
        budget_year: year,
        account: Some(ACCOUNT),
        appropriated_ore: APPROPRIATED_ORE,
        threshold_percents: Vec::new(),
        note: NOTE.to_owned(),
    }
}

/// Sets the fixture's appropriation for `year` unless budget has one, and describes what is
/// there now.
async fn appropriation(
    budget: &mut BudgetServiceClient<Channel>,
    year: i32,
) -> anyhow::Result<Vec<String>> {
    let found = budget
        .get_appropriation(v1::GetAppropriationRequest {
            budget_year: year,
            account: Some(ACCOUNT),
        })
        .await;
    let kept = match found {
        Ok(response) => response.into_inner().appropriation,
        Err(status) if status.code() == Code::NotFound => None,
        // The account is configuration, not data: budget started with other accounts.
        Err(status) if status.code() == Code::InvalidArgument => {
            return Ok(vec![format!(
                "Budget refuses the fixture's account {}: {} (is EKB__BUDGET__ACCOUNTS set in \
                 this shell?). No appropriation was set.",
                account_label(&ACCOUNT),
                status.message()
            )]);
        }
        Err(status) => return Err(status).context("GetAppropriation"),
    };
    let Some(kept) = kept else {
        let set = budget
            .set_appropriation(fixture_request(year))
            .await
            .context("SetAppropriation")?
            .into_inner()
            .appropriation
            .context("SetAppropriation answered without the appropriation")?;
        return Ok(vec![format!(
            "Appropriation set now (note \"{NOTE}\"): {}",
            figures(&set)
        )]);
    };
    let mut lines = vec![format!(
        "Appropriation kept from an earlier run (version {}): {}",
        kept.version,
        figures(&kept)
    )];
    if kept.appropriated_ore != APPROPRIATED_ORE {
        lines.push(format!(
            "It differs from the fixture's {}: it was set or changed by hand in an earlier run, \
             and is left as it is. {FRESH_HINT}",
            Money::from_ore(APPROPRIATED_ORE)
        ));
    }
    Ok(lines)
}

/// `appropriated 50 000 000,00 kr, committed 0,00 kr, available 50 000 000,00 kr, used 0,00 %
/// (alerts at 50, 75, 90, 100 %)`.
fn figures(appropriation: &v1::Appropriation) -> String {
    let levels: Vec<String> = appropriation
        .threshold_percents
        .iter()
        .map(i32::to_string)
        .collect();
    format!(
        "appropriated {}, committed {}, available {}, used {} (alerts at {} %)",
        Money::from_ore(appropriation.appropriated_ore),
        Money::from_ore(appropriation.committed_ore),
        Money::from_ore(appropriation.available_ore),
        percent(appropriation.used_basis_points),
        levels.join(", ")
    )
}

/// Basis points as a percentage with two decimals, Norwegian style like the amounts: `12,50 %`.
fn percent(basis_points: i32) -> String {
    let sign = if basis_points < 0 { "-" } else { "" };
    let magnitude = basis_points.unsigned_abs();
    format!("{sign}{},{:02} %", magnitude / 100, magnitude % 100)
}

/// The year's usage (every account): its total, then a table per county and per flow, or why
/// there is nothing to show yet. `running` names the services of this stack.
async fn usage(
    budget: &mut BudgetServiceClient<Channel>,
    year: i32,
    running: &[&str],
) -> anyhow::Result<Vec<String>> {
    let usage = budget
        .get_usage(v1::GetUsageRequest {
            budget_year: year,
            ..v1::GetUsageRequest::default()
        })
        .await
        .context("GetUsage")?
        .into_inner();
    let total = usage.total.unwrap_or_default();
    let mut lines = vec![format!(
        "Usage {year} (GetUsage, every account): appropriated {}, used {} = {} of it",
        Money::from_ore(usage.appropriated_ore),
        Money::from_ore(total.used_ore),
        percent(total.used_basis_points)
    )];
    if usage.by_county.is_empty() && usage.by_flow.is_empty() {
        lines.push(no_reservations_yet(running));
        return Ok(lines);
    }
    let by_county: Vec<(String, UsageFigures)> = usage
        .by_county
        .into_iter()
        .map(|county| {
            (
                county_label(&county.county_code),
                county.figures.unwrap_or_default(),
            )
        })
        .collect();
    let by_flow: Vec<(String, UsageFigures)> = usage
        .by_flow
        .into_iter()
        .map(|flow| {
            (
                flow_name(flow.flow()).to_owned(),
                flow.figures.unwrap_or_default(),
            )
        })
        .collect();
    for (title, rows) in [("COUNTY", by_county), ("FLOW", by_flow)] {
        lines.extend(figures_table(title, &rows).lines().map(str::to_owned));
    }
    Ok(lines)
}

/// Why the report is empty: nobody has asked for money, and which of the services that would
/// ask are not running.
fn no_reservations_yet(running: &[&str]) -> String {
    let missing: Vec<&str> = REQUESTERS
        .into_iter()
        .filter(|name| !running.contains(name))
        .collect();
    let why = match missing.as_slice() {
        [] => "and neither has asked yet".to_owned(),
        [one] => format!("and {one} does not run in this stack"),
        _ => "and neither runs in this stack".to_owned(),
    };
    format!(
        "No reservations yet: budget reserves money when applications asks for a grant \
         (GrantRequested) or pilot-ordering for an order (OrderRequested), {why}."
    )
}

/// `34 Innlandet`, or the code alone if the domain does not know it.
fn county_label(code: &str) -> String {
    match CountyCode::parse(code)
        .ok()
        .and_then(|county| county.name())
    {
        Some(name) => format!("{code} {name}"),
        None => code.to_owned(),
    }
}

/// One usage table: a row per county or flow with cases, reserved, disbursed and released.
fn figures_table(title: &str, rows: &[(String, UsageFigures)]) -> String {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|(label, figures)| {
            [
                label.clone(),
                figures.cases.to_string(),
                Money::from_ore(figures.reserved_ore).to_string(),
                Money::from_ore(figures.disbursed_ore).to_string(),
                Money::from_ore(figures.released_ore).to_string(),
            ]
        })
        .collect();
    table::aligned(
        [title, "CASES", "RESERVED", "DISBURSED", "RELEASED"],
        [
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use ekb_testkit::catalog;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn budget_is_in_the_catalog() {
        assert!(catalog::entry(BUDGET).is_some());
    }

    #[test]
    fn the_budget_year_is_norway_s_calendar_year() {
        assert_eq!(budget_year_at(datetime!(2026-12-31 22:59:59 UTC)), 2026);
        assert_eq!(budget_year_at(datetime!(2026-12-31 23:00:00 UTC)), 2027);
        assert_eq!(budget_year_at(datetime!(2027-01-01 00:30:00 +01:00)), 2027);
        assert_eq!(budget_year_at(datetime!(2026-07-01 12:00:00 UTC)), 2026);
    }

    #[test]
    fn amounts_and_shares_are_written_the_norwegian_way() {
        let appropriation = v1::Appropriation {
            appropriated_ore: APPROPRIATED_ORE,
            committed_ore: 125_000_000,
            available_ore: APPROPRIATED_ORE - 125_000_000,
            used_basis_points: 250,
            threshold_percents: vec![50, 75, 90, 100],
            ..v1::Appropriation::default()
        };
        assert_eq!(
            figures(&appropriation),
            "appropriated 50 000 000,00 kr, committed 1 250 000,00 kr, available \
             48 750 000,00 kr, used 2,50 % (alerts at 50, 75, 90, 100 %)"
        );
        assert_eq!(percent(0), "0,00 %");
        assert_eq!(percent(-5), "-0,05 %");
        assert_eq!(account_label(&ACCOUNT), "2650.76");
        assert_eq!(
            account_label(&BudgetAccount {
                chapter: 605,
                post: 1
            }),
            "605.01"
        );
    }

    #[test]
    fn an_empty_report_says_who_would_ask_for_money() {
        let text = no_reservations_yet(&["routing", "budget"]);
        assert!(
            text.starts_with("No reservations yet:")
                && text.ends_with("and neither runs in this stack."),
            "{text}"
        );
        let text = no_reservations_yet(&["applications", "budget"]);
        assert!(
            text.ends_with("and pilot-ordering does not run in this stack."),
            "{text}"
        );
        let text = no_reservations_yet(&["applications", "pilot-ordering", "budget"]);
        assert!(text.contains("neither has asked yet"), "{text}");
    }

    #[test]
    fn usage_tables_name_counties_and_line_up_amounts() {
        let figures = |cases, reserved_ore| UsageFigures {
            cases,
            reserved_ore,
            ..UsageFigures::default()
        };
        let text = figures_table(
            "COUNTY",
            &[
                (county_label("34"), figures(12, 28_800_000)),
                (county_label("99"), figures(1, 2_400_000)),
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("  34 Innlandet"), "{text}");
        assert!(lines[2].starts_with("  99 "), "{text}");
        let end = |line: &str, needle: &str| line.find(needle).map(|at| at + needle.len());
        assert_eq!(
            end(lines[1], "288 000,00 kr"),
            end(lines[2], "24 000,00 kr")
        );
    }
}
