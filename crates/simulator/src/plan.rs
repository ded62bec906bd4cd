//! What the simulator's model says will happen to one case — the plan a case task carries out —
//! and what the task saw happen ([`CaseOutcome`]), which the summary and the invariants compare.
//!
//! A plan is made from the seed before anything runs ([`crate::population`]), so the same seed
//! gives the same year: the same cases, on the same days, on the same paths.

use ekb_proto::v1::CompetenceArea;
use time::Date;

use crate::{pilot::PilotPath, regular::RegularPath};

/// One synthetic case: who, where, when it opens, and the path it is meant to take.
#[derive(Debug, Clone)]
pub struct CasePlan {
    /// 1-based, stable for a seed; names the case in messages (never the employee).
    pub number: u32,
    /// County number (2024 structure), e.g. `"34"`.
    pub county: String,
    /// Municipality number in that county, e.g. `"3403"`.
    pub municipality: String,
    /// The simulated day the case is opened.
    pub opened_on: Date,
    /// The employee's fødselsnummer (synthetic: month + 80; only ever sent to the services).
    pub employee: String,
    /// The employer's organisation number (valid check digit).
    pub employer: String,
    /// The framework area the employer chose, or `None` for the employer's own expert.
    pub area: Option<CompetenceArea>,
    /// The path the model says the case takes.
    pub path: Path,
    /// A seed of the case's own for the small choices on its way (amounts, which rank declines).
    pub seed: u64,
}

/// The path of a case through one flow (or, for a pilot fallback, from one flow to the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Path {
    /// A case the regular grant flow carries.
    Regular(RegularPath),
    /// A case the § 9a pilot flow carries (possibly handing it back to the regular flow).
    Pilot(PilotPath),
}

impl Path {
    /// The path's name in the summary and in `--mix` configuration, e.g. `regular.paid`.
    pub fn name(self) -> String {
        match self {
            Path::Regular(path) => format!("regular.{}", path.name()),
            Path::Pilot(path) => format!("pilot.{}", path.name()),
        }
    }
}

/// The money one case moved, as the case task saw it through the contracts. The invariants
/// compare the sums with budget's ledger and the payment system's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseMoney {
    /// Budget's commitment the case reserved under: (kind, grant id or order id), if any.
    pub commitment: Option<(ekb_proto::v1::CommitmentKind, String)>,
    /// Øre reserved for the case (0 when nothing was reserved).
    pub reserved_ore: i64,
    /// Øre disbursed (paid out to the employer or on the supplier's invoice).
    pub disbursed_ore: i64,
    /// Øre released back to the appropriation.
    pub released_ore: i64,
    /// Øre the payment system (the simulator) recorded as paid for the case.
    pub paid_ore: i64,
}

/// What a case task saw at the end of its case.
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    /// The case's plan number.
    pub number: u32,
    /// The path the model meant.
    pub planned: Path,
    /// The path the services' own states show, read at the end of the case.
    pub observed: Path,
    /// The case id routing gave.
    pub case_id: String,
    /// True when the case left the pilot for the regular flow (routing holds it REGULAR at its
    /// end after opening it PILOT): a fallback, whatever its reason.
    pub fell_back: bool,
    /// The money the case moved.
    pub money: CaseMoney,
}
