//! Small-cell suppression (docs/adr/0034): no published figure may let anyone recognise a person
//! or an employer, so a figure computed from fewer than `min_cases` cases is hidden (primary),
//! and so is whatever would let a reader compute a hidden figure back from published ones
//! (secondary).
//!
//! - **Primary**: a cell whose basis holds 1 to `min_cases − 1` cases. A cell of 0 cases is
//!   published: it describes nobody, and hiding zeros would hide which flows and counties a
//!   figure structurally cannot have (the pilot outside its county).
//! - **Secondary**: the table holds additive groups — a total and the parts it is the sum of:
//!   the flows within a county scope (`FlowScope::All` = regular + pilot); the counties within
//!   `OtherCounties` and within `All`, and `All` = `OtherCounties` + the pilot county; a figure
//!   and the figures that add up to it (`cases_opened` = the routing reasons, `pilot_fallbacks` =
//!   the fallback reasons); a flow's `cases_opened` and the routing reasons that choose that
//!   flow (`routed_pilot_eligible` for the pilot). Means and percentiles are treated as additive too, since a mean times
//!   its published case count is a sum. Wherever exactly one member of a group is hidden, it
//!   could be computed by subtraction, so a second member is hidden. The second is chosen
//!   greedily among the group's published members with cases (a published zero is often a
//!   structural zero everybody knows, so hiding it protects nothing; it is taken only when there
//!   is nothing else): the one that closes the most exposed groups while exposing the fewest new
//!   ones (a national total often closes a county sum and a flow sum at once, where a county's
//!   cell would open its own county's sums), then the one with the fewest cases, then the first
//!   in the table. Figures of one cell key that share a basis and publish the same case count
//!   give each other away, so when one is hidden all are (uptake shares `cases_opened`'s basis,
//!   but counts only counties with an employee count, so it is linked only where its count is
//!   the same). This repeats until no group has exactly one hidden member.
//!
//! This is the classic small-cell rule with a greedy secondary pattern, not an optimal one: it
//! guarantees that no single equation of the table reveals a hidden cell; a reader combining
//! several equations could in some patterns narrow a hidden value to a range.
//!
//! Tables for different periods are suppressed independently, as a statistics office's
//! separate releases are.

use std::collections::{BTreeMap, HashMap};

use time::Date;

use crate::table::{Cell, CountyScope, FlowScope, Suppression};

/// The relations between figures that suppression must respect, besides the county and flow
/// totals every figure has.
#[derive(Debug, Clone)]
pub struct Protection {
    /// The pilot's county: `All` = `OtherCounties` + this county.
    pub pilot_county: String,
    /// Figures that are the sum of other figures of the same county, flow and month.
    pub figure_sums: Vec<(&'static str, Vec<&'static str>)>,
    /// A figure of one flow that is the sum of other figures of both flows together, in the same
    /// county and month (`cases_opened` of the pilot flow = `routed_pilot_eligible`).
    pub flow_sums: Vec<(FlowScope, &'static str, Vec<&'static str>)>,
    /// The basis of a figure: figures of one cell key with the same basis and case count are
    /// hidden together.
    pub basis: fn(&'static str) -> &'static str,
}

/// Hides every cell computed from 1 to `min_cases − 1` cases and then every cell that would let
/// a hidden one be computed from a total (see the module docs).
pub fn suppress(cells: &mut [Cell], min_cases: u32, protection: &Protection) {
    // The groups are found before anything is hidden: a shared basis is told by the case counts.
    let groups = groups(cells, protection);
    for cell in cells.iter_mut() {
        if cell.suppressed.is_none() && cell.cases.is_some_and(|n| n > 0 && n < min_cases) {
            hide(cell, Suppression::Primary);
        }
    }
    secondary::protect(cells, &groups);
}

fn hide(cell: &mut Cell, why: Suppression) {
    cell.value = None;
    cell.cases = None;
    cell.suppressed = Some(why);
}

/// A set of cells linked by an equation a reader could solve.
#[derive(Debug)]
enum Group {
    /// `total` is the sum of `parts`.
    Sum { total: usize, parts: Vec<usize> },
    /// The cells publish the same case count.
    SameBasis(Vec<usize>),
}

/// A cell's coordinates without one of them, to find the cells that differ only there.
type Key = (
    Option<CountyScope>,
    Option<FlowScope>,
    Date,
    Option<String>,
    Option<&'static str>,
);

fn groups(cells: &[Cell], protection: &Protection) -> Vec<Group> {
    let mut groups = Vec::new();
    let key = |cell: &Cell, county: bool, flow: bool, figure: bool| -> Key {
        (
            county.then(|| cell.county.clone()),
            flow.then_some(cell.flow),
            cell.month,
            cell.agreement.clone(),
            figure.then_some(cell.figure),
        )
    };

    // The flows within a county scope.
    for members in group_by(cells, |cell| key(cell, true, false, true)) {
        let total = members
            .iter()
            .copied()
            .find(|index| cells[*index].flow == FlowScope::All);
        let parts: Vec<usize> = members
            .iter()
            .copied()
            .filter(|index| cells[*index].flow != FlowScope::All)
            .collect();
        if let Some(total) = total
            && !parts.is_empty()
        {
            groups.push(Group::Sum { total, parts });
        }
    }

    // The counties within OtherCounties and All, and All = OtherCounties + the pilot county.
    for members in group_by(cells, |cell| key(cell, false, true, true)) {
        let find = |scope: &CountyScope| {
            members
                .iter()
                .copied()
                .find(|index| cells[*index].county == *scope)
        };
        let counties = |keep: &dyn Fn(&str) -> bool| -> Vec<usize> {
            members
                .iter()
                .copied()
                .filter(|index| matches!(&cells[*index].county, CountyScope::County(code) if keep(code)))
                .collect()
        };
        let others = find(&CountyScope::OtherCounties);
        let all = find(&CountyScope::All);
        let pilot = find(&CountyScope::County(protection.pilot_county.clone()));
        if let Some(total) = others {
            let parts = counties(&|code| code != protection.pilot_county);
            if !parts.is_empty() {
                groups.push(Group::Sum { total, parts });
            }
        }
        if let Some(total) = all {
            let parts = counties(&|_| true);
            if !parts.is_empty() {
                groups.push(Group::Sum { total, parts });
            }
            let parts: Vec<usize> = others.into_iter().chain(pilot).collect();
            if !parts.is_empty() {
                groups.push(Group::Sum { total, parts });
            }
        }
    }

    // A flow's figure that is a sum of figures of both flows.
    for members in group_by(cells, |cell| key(cell, true, false, false)) {
        for (flow, total, parts) in &protection.flow_sums {
            let total = members
                .iter()
                .copied()
                .find(|index| cells[*index].flow == *flow && cells[*index].figure == *total);
            let parts: Vec<usize> = members
                .iter()
                .copied()
                .filter(|index| {
                    cells[*index].flow == FlowScope::All && parts.contains(&cells[*index].figure)
                })
                .collect();
            if let Some(total) = total
                && !parts.is_empty()
            {
                groups.push(Group::Sum { total, parts });
            }
        }
    }

    // Figures that add up to another figure, and figures that share a basis.
    for members in group_by(cells, |cell| key(cell, true, true, false)) {
        let find = |figure: &str| {
            members
                .iter()
                .copied()
                .find(|index| cells[*index].figure == figure)
        };
        for (total, parts) in &protection.figure_sums {
            if let Some(total) = find(total) {
                let parts: Vec<usize> = parts.iter().filter_map(|part| find(part)).collect();
                if !parts.is_empty() {
                    groups.push(Group::Sum { total, parts });
                }
            }
        }
        let mut by_basis: BTreeMap<(&str, Option<u32>), Vec<usize>> = BTreeMap::new();
        for index in &members {
            let cell = &cells[*index];
            by_basis
                .entry(((protection.basis)(cell.figure), cell.cases))
                .or_default()
                .push(*index);
        }
        groups.extend(
            by_basis
                .into_values()
                .filter(|same| same.len() > 1)
                .map(Group::SameBasis),
        );
    }
    groups
}

/// The indices of `cells` grouped by `key`, each group in table order, groups in order of first
/// appearance (so the suppression is the same every time for the same table).
fn group_by(cells: &[Cell], key: impl Fn(&Cell) -> Key) -> Vec<Vec<usize>> {
    let mut position: HashMap<Key, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (index, cell) in cells.iter().enumerate() {
        let slot = *position.entry(key(cell)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[slot].push(index);
    }
    groups
}

mod secondary;

/// The groups of the `unsuppressed` table in which a hidden cell of `suppressed` (the same table
/// after `suppress`) could still be computed from published ones: a sum with exactly one hidden
/// member, a shared basis partly hidden. Described for a test's failure message.
#[cfg(test)]
pub(crate) fn revealing_groups(
    unsuppressed: &[Cell],
    suppressed: &[Cell],
    protection: &Protection,
) -> Vec<String> {
    let hidden = |index: &usize| suppressed[*index].suppressed.is_some();
    groups(unsuppressed, protection)
        .into_iter()
        .filter(|group| match group {
            Group::Sum { total, parts } => {
                usize::from(hidden(total)) + parts.iter().filter(|index| hidden(index)).count() == 1
            }
            Group::SameBasis(members) => members.iter().any(hidden) && !members.iter().all(hidden),
        })
        .map(|group| format!("{group:?}"))
        .collect()
}

#[cfg(test)]
mod tests;
