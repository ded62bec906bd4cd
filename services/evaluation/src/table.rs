//! The evaluation's answer: one cell per county × flow × cohort month × figure, in long form so
//! that gRPC, the CSV export and the HTML report carry the same rows (docs/adr/0033). Small cells
//! are suppressed before a table leaves the service (docs/adr/0034).

use time::Date;

use crate::case_facts::Flow;

/// Which counties a cell covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CountyScope {
    /// One county, by code.
    County(String),
    /// Every county but the pilot's: the comparison group.
    OtherCounties,
    /// The whole country.
    All,
}

/// Which flows a cell covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowScope {
    /// One flow.
    Flow(Flow),
    /// Both flows.
    All,
}

/// Why a cell shows no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppression {
    /// Computed from fewer cases than the threshold.
    Primary,
    /// Hidden so that a total cannot reveal a primary-suppressed cell.
    Secondary,
}

/// One figure for one county × flow × month (and agreement, for capacity).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The counties it covers.
    pub county: CountyScope,
    /// The flows it covers.
    pub flow: FlowScope,
    /// The cohort month (the first day of the month cases were opened in); for capacity, the
    /// month orders were placed in.
    pub month: Date,
    /// The agreement, for per-agreement figures only.
    pub agreement: Option<String>,
    /// The figure's stable snake_case name (documented in docs/evaluation.md).
    pub figure: &'static str,
    /// The value, or `None` when suppressed.
    pub value: Option<f64>,
    /// The number of cases the value is computed from, or `None` when suppressed.
    pub cases: Option<u32>,
    /// Set when the cell is suppressed, and why.
    pub suppressed: Option<Suppression>,
}
