//! The table's shape (scopes, months, agreements), uptake and its year-earlier comparison, and
//! that `cells` leaves no hidden cell computable.

use std::collections::BTreeMap;

use time::macros::date;

use super::{testing::*, *};
use crate::{suppression::revealing_groups, table::Suppression};

fn context() -> TableContext {
    TableContext {
        pilot_county: "34".to_owned(),
        employees: EmployeeCounts {
            source: "SSB 13470".to_owned(),
            as_of: date!(2024 - 11 - 01),
            per_county: BTreeMap::from([("34".to_owned(), 200_000), ("03".to_owned(), 400_000)]),
        },
        min_cases: 5,
    }
}

fn value<'a>(
    cells: &'a [Cell],
    county: CountyScope,
    flow: FlowScope,
    month: Date,
    figure: &str,
) -> Option<&'a Cell> {
    cells.iter().find(|cell| {
        cell.county == county && cell.flow == flow && cell.month == month && cell.figure == figure
    })
}

fn january() -> Period {
    Period::new(date!(2025 - 01 - 01), date!(2025 - 01 - 01)).expect("valid period")
}

#[test]
fn a_period_is_whole_months_in_order() {
    let period = Period::new(date!(2024 - 11 - 01), date!(2025 - 02 - 01)).expect("valid");
    assert_eq!(
        period.months(),
        vec![
            date!(2024 - 11 - 01),
            date!(2024 - 12 - 01),
            date!(2025 - 01 - 01),
            date!(2025 - 02 - 01)
        ]
    );
    let error = Period::new(date!(2025 - 01 - 02), date!(2025 - 02 - 01)).expect_err("mid-month");
    assert_eq!(error.to_string(), "from: must be the first day of a month");
    let error = Period::new(date!(2025 - 03 - 01), date!(2025 - 02 - 01)).expect_err("backwards");
    assert_eq!(error.field, "to");
    assert!(
        Period::new(date!(2015 - 01 - 01), date!(2025 - 01 - 01)).is_err(),
        "over 120 months"
    );
    assert_eq!(
        add_months(date!(2025 - 01 - 01), -12),
        date!(2024 - 01 - 01)
    );
    assert_eq!(add_months(date!(2025 - 01 - 01), -1), date!(2024 - 12 - 01));
    assert_eq!(add_months(date!(2024 - 12 - 01), 1), date!(2025 - 01 - 01));
}

#[test]
fn every_county_scope_and_flow_scope_gets_its_cells() {
    let mut cases = Vec::new();
    for day in 1..=6 {
        cases.push(pilot_case(
            "34",
            date!(2025 - 01 - 01).replace_day(day).expect("day"),
        ));
    }
    for day in 1..=8 {
        cases.push(regular_case(
            "03",
            date!(2025 - 01 - 01).replace_day(day).expect("day"),
        ));
    }
    cases.push(regular_case("03", date!(2025 - 02 - 01)));

    let cells = unsuppressed_cells(&cases, &[], &january(), &context());
    let jan = date!(2025 - 01 - 01);
    let opened =
        |county, flow| value(&cells, county, flow, jan, CASES_OPENED).and_then(|cell| cell.value);

    assert_eq!(
        opened(
            CountyScope::County("34".into()),
            FlowScope::Flow(Flow::Pilot)
        ),
        Some(6.0)
    );
    assert_eq!(
        opened(
            CountyScope::County("34".into()),
            FlowScope::Flow(Flow::Regular)
        ),
        Some(0.0)
    );
    assert_eq!(
        opened(CountyScope::County("03".into()), FlowScope::All),
        Some(8.0),
        "February ignored"
    );
    assert_eq!(
        opened(CountyScope::OtherCounties, FlowScope::All),
        Some(8.0)
    );
    assert_eq!(opened(CountyScope::All, FlowScope::All), Some(14.0));
    assert!(cells.iter().all(|cell| cell.month == jan));
    assert!(
        value(
            &cells,
            CountyScope::All,
            FlowScope::All,
            jan,
            PILOT_ORDERS_PLACED
        )
        .is_none(),
        "pilot-only figures have no both-flows cell"
    );
    assert!(
        value(
            &cells,
            CountyScope::All,
            FlowScope::Flow(Flow::Pilot),
            jan,
            PILOT_ORDERS_PLACED
        )
        .is_some()
    );
}

#[test]
fn uptake_divides_by_the_scopes_employees_and_compares_with_a_year_earlier() {
    let mut cases = Vec::new();
    for _ in 0..10 {
        cases.push(pilot_case("34", date!(2025 - 01 - 15)));
        cases.push(regular_case("03", date!(2025 - 01 - 15)));
    }
    // A county with no employee count: counted in cases_opened, not in uptake.
    cases.push(regular_case("99", date!(2025 - 01 - 15)));
    for _ in 0..4 {
        cases.push(pilot_case("34", date!(2024 - 01 - 20)));
    }
    let cells = unsuppressed_cells(&cases, &[], &january(), &context());
    let jan = date!(2025 - 01 - 01);
    let uptake = |county, figure| {
        value(&cells, county, FlowScope::All, jan, figure).map(|cell| (cell.value, cell.cases))
    };

    assert_eq!(
        uptake(CountyScope::County("34".into()), UPTAKE_PER_10000_EMPLOYEES),
        Some((Some(0.5), Some(10)))
    );
    assert_eq!(
        uptake(CountyScope::County("03".into()), UPTAKE_PER_10000_EMPLOYEES),
        Some((Some(0.25), Some(10)))
    );
    assert_eq!(
        uptake(CountyScope::County("99".into()), UPTAKE_PER_10000_EMPLOYEES),
        None
    );
    assert_eq!(
        uptake(CountyScope::OtherCounties, UPTAKE_PER_10000_EMPLOYEES),
        Some((Some(0.25), Some(10)))
    );
    let all = uptake(CountyScope::All, UPTAKE_PER_10000_EMPLOYEES).expect("all has uptake");
    assert_eq!(all.1, Some(20));
    assert!((all.0.expect("value") - 20.0 * 10_000.0 / 600_000.0).abs() < 1e-12);
    assert_eq!(
        uptake(
            CountyScope::County("34".into()),
            UPTAKE_PER_10000_EMPLOYEES_YEAR_EARLIER
        ),
        Some((Some(0.2), Some(4)))
    );
    assert_eq!(
        uptake(
            CountyScope::County("03".into()),
            UPTAKE_PER_10000_EMPLOYEES_YEAR_EARLIER
        ),
        Some((Some(0.0), Some(0))),
        "the data reaches back a year, so a zero is a zero"
    );

    // Without cases a year earlier, there is no comparison at all.
    let recent: Vec<CaseFacts> = cases
        .into_iter()
        .filter(|case| case.opened_on.year() == 2025)
        .collect();
    let cells = unsuppressed_cells(&recent, &[], &january(), &context());
    assert!(
        cells
            .iter()
            .all(|cell| cell.figure != UPTAKE_PER_10000_EMPLOYEES_YEAR_EARLIER)
    );
}

#[test]
fn capacity_is_per_agreement_and_month_within_the_period() {
    let use_of = |agreement: &str, month, capacity, used| CapacityUse {
        agreement: agreement.to_owned(),
        county: "34".to_owned(),
        month,
        capacity,
        used,
    };
    let capacity = [
        use_of("agr-1", date!(2025 - 01 - 01), 10, 6),
        use_of("agr-2", date!(2025 - 01 - 01), 0, 0),
        use_of("agr-1", date!(2025 - 02 - 01), 10, 9),
    ];
    let cells = unsuppressed_cells(&[], &capacity, &january(), &context());
    let of = |agreement: &str, figure: &str| {
        cells
            .iter()
            .find(|cell| cell.agreement.as_deref() == Some(agreement) && cell.figure == figure)
            .map(|cell| (cell.value, cell.cases, cell.month))
    };
    let jan = date!(2025 - 01 - 01);
    assert_eq!(
        of("agr-1", CAPACITY_ORDERS_AVAILABLE),
        Some((Some(10.0), Some(0), jan))
    );
    assert_eq!(
        of("agr-1", CAPACITY_ORDERS_USED),
        Some((Some(6.0), Some(6), jan))
    );
    assert_eq!(
        of("agr-1", CAPACITY_SHARE_USED),
        Some((Some(0.6), Some(6), jan))
    );
    assert_eq!(
        of("agr-2", CAPACITY_SHARE_USED),
        None,
        "no share of no capacity"
    );
    assert_eq!(
        cells.iter().filter(|cell| cell.agreement.is_some()).count(),
        5,
        "February left out"
    );
}

#[test]
fn the_suppressed_table_hides_small_cells_and_reveals_none() {
    let mut cases = Vec::new();
    for day in 1..=3 {
        let mut case = pilot_case("34", date!(2025 - 01 - 01).replace_day(day).expect("day"));
        case.nav_steps = 4;
        cases.push(case);
    }
    for day in 1..=20 {
        let mut case = regular_case("03", date!(2025 - 01 - 01).replace_day(day).expect("day"));
        case.nav_steps = 6;
        case.employer_steps = 2;
        cases.push(case);
    }
    for day in 1..=9 {
        cases.push(regular_case(
            "34",
            date!(2025 - 01 - 01).replace_day(day).expect("day"),
        ));
    }
    let context = context();
    let unsuppressed = unsuppressed_cells(&cases, &[], &january(), &context);
    let cells = cells(&cases, &[], &january(), &context);
    assert_eq!(
        unsuppressed.len(),
        cells.len(),
        "suppression hides cells, it does not drop them"
    );
    let jan = date!(2025 - 01 - 01);

    let pilot_opened = value(
        &cells,
        CountyScope::County("34".into()),
        FlowScope::Flow(Flow::Pilot),
        jan,
        CASES_OPENED,
    )
    .expect("cell");
    assert_eq!(pilot_opened.suppressed, Some(Suppression::Primary));
    assert_eq!((pilot_opened.value, pilot_opened.cases), (None, None));
    let steps = value(
        &cells,
        CountyScope::County("34".into()),
        FlowScope::Flow(Flow::Pilot),
        jan,
        NAV_STEPS_PER_CASE,
    )
    .expect("cell");
    assert_eq!(
        steps.value, None,
        "the pilot's 3 cases' steps are hidden too"
    );
    let regular = value(
        &cells,
        CountyScope::County("03".into()),
        FlowScope::Flow(Flow::Regular),
        jan,
        NAV_STEPS_PER_CASE,
    )
    .expect("cell");
    assert_eq!(regular.value, Some(6.0));
    assert!(
        cells
            .iter()
            .all(|cell| cell.suppressed.is_some() == cell.value.is_none())
    );
    let revealing = revealing_groups(&unsuppressed, &cells, &protection(&context.pilot_county));
    assert!(revealing.is_empty(), "{revealing:?}");
}

#[test]
fn a_year_of_many_counties_is_suppressed_without_revealing_anything_and_sparingly() {
    // A deterministic spread of cases: large counties, small counties and a pilot county whose
    // regular flow is small, so that primaries and secondaries occur in every month.
    let counties = [
        "03", "11", "15", "18", "31", "32", "33", "34", "39", "40", "42", "46", "50", "55", "56",
    ];
    let mut seed: u64 = 20;
    let mut next = move |bound: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % bound
    };
    let mut cases = Vec::new();
    for month in 1..=12_u8 {
        for (number, county) in counties.iter().enumerate() {
            let n = if number % 4 == 0 {
                2 + next(5)
            } else {
                10 + next(40)
            };
            for _ in 0..n {
                let day = 1 + next(28) as u8;
                let opened =
                    Date::from_calendar_date(2025, Month::try_from(month).expect("month"), day)
                        .expect("date");
                let mut case = if *county == "34" && next(5) > 0 {
                    pilot_case(county, opened)
                } else {
                    regular_case(county, opened)
                };
                case.nav_steps = next(8) as u32;
                case.expert_started_on =
                    (next(3) > 0).then(|| opened + time::Duration::days(5 + next(60) as i64));
                case.fallback = (case.flow == Flow::Pilot && next(6) == 0)
                    .then_some(crate::case_facts::FallbackReason::AgreementsFull);
                cases.push(case);
            }
        }
    }
    let period = Period::new(date!(2025 - 01 - 01), date!(2025 - 12 - 01)).expect("period");
    let mut context = context();
    context.employees.per_county = counties
        .iter()
        .map(|county| ((*county).to_owned(), 150_000))
        .collect();
    let unsuppressed = unsuppressed_cells(&cases, &[], &period, &context);
    let started = std::time::Instant::now();
    let cells = cells(&cases, &[], &period, &context);
    let elapsed = started.elapsed();

    let revealing = revealing_groups(&unsuppressed, &cells, &protection(&context.pilot_county));
    assert!(
        revealing.is_empty(),
        "{} groups reveal a hidden cell, e.g. {:?}",
        revealing.len(),
        revealing.first()
    );
    let primary = cells
        .iter()
        .filter(|cell| cell.suppressed == Some(Suppression::Primary))
        .count();
    let secondary = cells
        .iter()
        .filter(|cell| cell.suppressed == Some(Suppression::Secondary))
        .count();
    assert!(primary > 0 && secondary > 0);
    assert!(
        secondary < primary,
        "the secondary pattern stays smaller than the primary one"
    );
    for month in period.months() {
        let total = value(
            &cells,
            CountyScope::All,
            FlowScope::All,
            month,
            CASES_OPENED,
        )
        .expect("cell");
        assert!(
            total.value.is_some(),
            "{month}: the national total stays published"
        );
    }
    assert!(
        elapsed < std::time::Duration::from_secs(5),
        "suppression took {elapsed:?}"
    );
    println!(
        "{} cells, {primary} primary, {secondary} secondary, in {elapsed:?}",
        cells.len()
    );
}
