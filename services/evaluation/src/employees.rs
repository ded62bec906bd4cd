//! Employees per county: the denominator of uptake. Dated configuration with its source, since
//! the figures change every year and an evaluator must be able to say which ones were used.

use std::collections::BTreeMap;

use serde::Deserialize;
use time::Date;

/// Employees per county from one published statistic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EmployeeCounts {
    /// Where the figures come from (table and publisher, e.g. SSB's register-based employment
    /// statistics, table 13470).
    pub source: String,
    /// The date the figures describe.
    pub as_of: Date,
    /// Employees per county code (2024 structure).
    pub per_county: BTreeMap<String, u32>,
}
