//! The suppression rule on small hand-made tables: each test tries the subtraction a reader
//! would try and shows it no longer works.

use time::macros::date;

use super::*;
use crate::{
    case_facts::Flow,
    cohorts::{
        self, CASES_OPENED, NAV_STEPS_PER_CASE, PILOT_ACCEPTED, ROUTED_EMPLOYER_CHOSE_OWN_EXPERT,
        ROUTED_PILOT_ELIGIBLE,
    },
};

const REGULAR: FlowScope = FlowScope::Flow(Flow::Regular);
const PILOT: FlowScope = FlowScope::Flow(Flow::Pilot);

fn county(code: &str) -> CountyScope {
    CountyScope::County(code.to_owned())
}

fn cell(county: CountyScope, flow: FlowScope, figure: &'static str, cases: u32) -> Cell {
    Cell {
        county,
        flow,
        month: date!(2025 - 03 - 01),
        agreement: None,
        figure,
        value: Some(f64::from(cases)),
        cases: Some(cases),
        suppressed: None,
    }
}

fn find<'a>(cells: &'a [Cell], county: &CountyScope, flow: FlowScope, figure: &str) -> &'a Cell {
    cells
        .iter()
        .find(|cell| cell.county == *county && cell.flow == flow && cell.figure == figure)
        .expect("the cell is in the table")
}

/// What a reader gets by subtracting the published parts from a published total, if both the
/// total and every other part are published.
fn subtract(total: &Cell, others: &[&Cell]) -> Option<f64> {
    let mut value = total.value?;
    for part in others {
        value -= part.value?;
    }
    Some(value)
}

fn protection() -> Protection {
    cohorts::protection("34")
}

#[test]
fn a_lone_small_cell_forces_a_secondary_so_the_total_cannot_reveal_it() {
    let mut cells = vec![
        cell(county("34"), REGULAR, CASES_OPENED, 3),
        cell(county("34"), PILOT, CASES_OPENED, 12),
        cell(county("34"), FlowScope::All, CASES_OPENED, 15),
    ];
    // Before: the total minus the pilot gives the regular flow's 3.
    assert_eq!(subtract(&cells[2], &[&cells[1]]), Some(3.0));

    let before = cells.clone();
    suppress(&mut cells, 5, &protection());

    let regular = find(&cells, &county("34"), REGULAR, CASES_OPENED);
    let pilot = find(&cells, &county("34"), PILOT, CASES_OPENED);
    let total = find(&cells, &county("34"), FlowScope::All, CASES_OPENED);
    assert_eq!(
        (regular.value, regular.cases, regular.suppressed),
        (None, None, Some(Suppression::Primary))
    );
    assert_eq!(
        (pilot.value, pilot.cases, pilot.suppressed),
        (None, None, Some(Suppression::Secondary))
    );
    assert_eq!(
        total.value,
        Some(15.0),
        "the total itself is safe to publish"
    );
    assert_eq!(
        subtract(total, &[pilot]),
        None,
        "the total no longer reveals the regular flow"
    );
    assert_eq!(subtract(total, &[regular]), None, "nor the pilot flow");
    assert!(revealing_groups(&before, &cells, &protection()).is_empty());
}

#[test]
fn zero_is_published_and_the_threshold_is_strict() {
    let mut cells = vec![
        cell(county("03"), REGULAR, CASES_OPENED, 0),
        cell(county("11"), REGULAR, CASES_OPENED, 4),
        cell(county("15"), REGULAR, CASES_OPENED, 5),
    ];
    suppress(&mut cells, 5, &protection());
    assert_eq!(cells[0].value, Some(0.0));
    assert_eq!(cells[0].suppressed, None);
    assert_eq!(cells[1].suppressed, Some(Suppression::Primary));
    assert_eq!(cells[2].value, Some(5.0));
    assert_eq!(cells[2].suppressed, None);
}

#[test]
fn when_the_only_other_part_is_a_zero_the_total_is_hidden() {
    // Outside the pilot county the pilot flow is zero by construction: hiding it protects
    // nothing, so the total goes.
    let mut cells = vec![
        cell(county("03"), REGULAR, CASES_OPENED, 2),
        cell(county("03"), PILOT, CASES_OPENED, 0),
        cell(county("03"), FlowScope::All, CASES_OPENED, 2),
    ];
    suppress(&mut cells, 5, &protection());
    assert_eq!(cells[1].value, Some(0.0), "the zero stays");
    // The total is primary-suppressed itself (2 cases); a larger total would be secondary.
    assert!(cells[2].suppressed.is_some());

    let mut cells = vec![
        cell(county("03"), REGULAR, NAV_STEPS_PER_CASE, 2),
        cell(county("03"), PILOT, NAV_STEPS_PER_CASE, 0),
        cell(county("03"), FlowScope::All, NAV_STEPS_PER_CASE, 9),
    ];
    suppress(&mut cells, 5, &protection());
    assert_eq!(cells[2].suppressed, Some(Suppression::Secondary));
    assert_eq!(cells[1].suppressed, None);
}

#[test]
fn the_pilot_county_cannot_be_read_off_all_minus_the_other_counties() {
    let mut cells = vec![
        cell(county("03"), FlowScope::All, CASES_OPENED, 10),
        cell(county("34"), FlowScope::All, CASES_OPENED, 3),
        cell(county("46"), FlowScope::All, CASES_OPENED, 20),
        cell(CountyScope::OtherCounties, FlowScope::All, CASES_OPENED, 30),
        cell(CountyScope::All, FlowScope::All, CASES_OPENED, 33),
    ];
    let before = cells.clone();
    suppress(&mut cells, 5, &protection());

    let all = find(&cells, &CountyScope::All, FlowScope::All, CASES_OPENED);
    let others = find(
        &cells,
        &CountyScope::OtherCounties,
        FlowScope::All,
        CASES_OPENED,
    );
    let county_03 = find(&cells, &county("03"), FlowScope::All, CASES_OPENED);
    let county_46 = find(&cells, &county("46"), FlowScope::All, CASES_OPENED);
    assert_eq!(
        find(&cells, &county("34"), FlowScope::All, CASES_OPENED).suppressed,
        Some(Suppression::Primary)
    );
    assert_eq!(
        subtract(all, &[others]),
        None,
        "All − OtherCounties no longer gives county 34"
    );
    assert_eq!(
        subtract(all, &[county_03, county_46]),
        None,
        "nor All − the other counties"
    );
    let revealing = revealing_groups(&before, &cells, &protection());
    assert!(revealing.is_empty(), "{revealing:?}");
}

#[test]
fn figure_sums_and_shared_bases_are_protected() {
    let mut cells = vec![
        cell(county("34"), PILOT, CASES_OPENED, 14),
        cell(county("34"), PILOT, ROUTED_PILOT_ELIGIBLE, 12),
        cell(county("34"), PILOT, ROUTED_EMPLOYER_CHOSE_OWN_EXPERT, 2),
        cell(county("34"), PILOT, NAV_STEPS_PER_CASE, 14),
    ];
    suppress(&mut cells, 5, &protection());

    assert_eq!(cells[2].suppressed, Some(Suppression::Primary));
    assert_eq!(
        subtract(&cells[0], &[&cells[1]]),
        None,
        "opened − pilot eligible no longer gives the 2"
    );
    // Hiding the smallest other part (12) leaves the total; nothing shares its basis hidden.
    assert_eq!(cells[1].suppressed, Some(Suppression::Secondary));
    assert_eq!(cells[0].value, Some(14.0));
    assert_eq!(cells[3].value, Some(14.0));

    // When a count is hidden as a secondary, a figure publishing the same case count goes with
    // it; one computed from other cases does not.
    let mut nav_steps = cell(county("34"), PILOT, NAV_STEPS_PER_CASE, 12);
    nav_steps.value = Some(2.5);
    let mut cells = vec![
        cell(county("34"), REGULAR, CASES_OPENED, 3),
        cell(county("34"), PILOT, CASES_OPENED, 12),
        cell(county("34"), FlowScope::All, CASES_OPENED, 15),
        nav_steps,
        cell(county("34"), PILOT, PILOT_ACCEPTED, 12),
    ];
    let before = cells.clone();
    suppress(&mut cells, 5, &protection());
    assert_eq!(cells[1].suppressed, Some(Suppression::Secondary));
    assert_eq!(
        (cells[3].value, cells[3].cases),
        (None, None),
        "its case count would give the 12 away"
    );
    assert_eq!(cells[3].suppressed, Some(Suppression::Secondary));
    assert_eq!(
        cells[4].value,
        Some(12.0),
        "another basis, though the same count"
    );
    assert!(revealing_groups(&before, &cells, &protection()).is_empty());
}

#[test]
fn a_flow_cannot_be_read_off_its_routing_reason() {
    // The pilot flow's cases are the cases routed as pilot-eligible: hiding one hides the other.
    let mut cells = vec![
        cell(county("34"), PILOT, CASES_OPENED, 7),
        cell(county("34"), FlowScope::All, ROUTED_PILOT_ELIGIBLE, 7),
    ];
    cells[1].value = None;
    cells[1].cases = None;
    cells[1].suppressed = Some(Suppression::Secondary);
    suppress(&mut cells, 5, &protection());
    assert_eq!(cells[0].suppressed, Some(Suppression::Secondary));
    assert_eq!(cells[0].value, None);
}
