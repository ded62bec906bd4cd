//! Secondary suppression: hides cells until no sum has exactly one hidden member. Greedy, one cell
//! (with the cells sharing its basis) at a time: the candidate that closes the most exposed sums
//! while opening the fewest new ones, so that a small cell in the pilot county does not cascade
//! through every county of the month. Counts per sum are kept up to date as cells are hidden, so
//! each step looks only at the sums currently exposed.

use std::{
    cmp::Reverse,
    collections::{BTreeSet, HashMap},
};

use super::{Group, hide};
use crate::table::{Cell, Suppression};

/// Hides the mates of every hidden cell and then a second member of every exposed sum.
pub(super) fn protect(cells: &mut [Cell], groups: &[Group]) {
    let mut state = State::new(cells, groups);
    for index in 0..state.cells.len() {
        if state.cells[index].suppressed.is_some() {
            state.hide_with_mates(index);
        }
    }
    while let Some(choice) = state.best_candidate() {
        state.hide_with_mates(choice);
    }
}

struct State<'a> {
    cells: &'a mut [Cell],
    /// The sums: every member, the total first.
    sums: Vec<Vec<usize>>,
    /// Per cell, the sums it is a member of.
    sums_of: Vec<Vec<usize>>,
    /// Per cell, the other cells sharing its basis.
    mates: Vec<Vec<usize>>,
    /// Per sum, its hidden members.
    hidden: Vec<usize>,
    /// The sums with exactly one hidden member.
    exposed: BTreeSet<usize>,
}

impl<'a> State<'a> {
    fn new(cells: &'a mut [Cell], groups: &[Group]) -> Self {
        let mut sums = Vec::new();
        let mut sums_of = vec![Vec::new(); cells.len()];
        let mut mates = vec![Vec::new(); cells.len()];
        for group in groups {
            match group {
                Group::Sum { total, parts } => {
                    let members: Vec<usize> = std::iter::once(*total)
                        .chain(parts.iter().copied())
                        .collect();
                    for member in &members {
                        sums_of[*member].push(sums.len());
                    }
                    sums.push(members);
                }
                Group::SameBasis(members) => {
                    for member in members {
                        mates[*member]
                            .extend(members.iter().copied().filter(|other| other != member));
                    }
                }
            }
        }
        let hidden: Vec<usize> = sums
            .iter()
            .map(|members| {
                members
                    .iter()
                    .filter(|index| cells[**index].suppressed.is_some())
                    .count()
            })
            .collect();
        let exposed = (0..sums.len()).filter(|sum| hidden[*sum] == 1).collect();
        Self {
            cells,
            sums,
            sums_of,
            mates,
            hidden,
            exposed,
        }
    }

    /// Hides `index` (if it is not hidden yet) and the published cells sharing its basis,
    /// keeping the counts.
    fn hide_with_mates(&mut self, index: usize) {
        for cell in std::iter::once(index).chain(self.mates[index].clone()) {
            if self.cells[cell].suppressed.is_some() {
                continue;
            }
            hide(&mut self.cells[cell], Suppression::Secondary);
            for sum in &self.sums_of[cell] {
                self.hidden[*sum] += 1;
                if self.hidden[*sum] == 1 {
                    self.exposed.insert(*sum);
                } else {
                    self.exposed.remove(sum);
                }
            }
        }
    }

    /// The members of an exposed sum that may be hidden: its published members with cases, or,
    /// when it has none, any published member (a published zero is often a structural zero
    /// everybody knows, so hiding it protects nothing).
    fn candidates(&self, sum: usize) -> Vec<usize> {
        let open: Vec<usize> = self.sums[sum]
            .iter()
            .copied()
            .filter(|index| self.cells[*index].suppressed.is_none())
            .collect();
        let with_cases: Vec<usize> = open
            .iter()
            .copied()
            .filter(|index| self.cells[*index].cases.is_some_and(|n| n > 0))
            .collect();
        if with_cases.is_empty() {
            open
        } else {
            with_cases
        }
    }

    /// Exposed sums hiding `index` (and its mates) would close, minus the sums it would expose.
    fn benefit(&self, index: usize) -> i64 {
        let mut added: HashMap<usize, usize> = HashMap::new();
        for cell in std::iter::once(index).chain(self.mates[index].iter().copied()) {
            if self.cells[cell].suppressed.is_none() {
                for sum in &self.sums_of[cell] {
                    *added.entry(*sum).or_default() += 1;
                }
            }
        }
        added
            .into_iter()
            .map(
                |(sum, added)| match (self.hidden[sum], self.hidden[sum] + added) {
                    (1, _) => 1,
                    (0, 1) => -1,
                    _ => 0,
                },
            )
            .sum()
    }

    /// The next cell to hide: the most benefit, then the fewest cases, then the first in the
    /// table; `None` when no sum is exposed.
    fn best_candidate(&self) -> Option<usize> {
        let mut candidates: Vec<usize> = self
            .exposed
            .iter()
            .flat_map(|sum| self.candidates(*sum))
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        candidates.into_iter().max_by_key(|index| {
            (
                self.benefit(*index),
                Reverse(self.cells[*index].cases),
                Reverse(*index),
            )
        })
    }
}
