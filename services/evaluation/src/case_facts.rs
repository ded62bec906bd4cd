//! One case as the evaluation sees it: the facts its events established, whatever order they
//! arrived in. The read model stores these per case (keyed by a fingerprint of the case id, never
//! the id itself) and the figures are computed from them at query time, so an event arriving late
//! or twice cannot change a figure once all events are in (docs/adr/0033).
//!
//! Nothing here identifies a person or an employer: no fødselsnummer, pseudonym, name or
//! organisation number. Suppliers appear only as agreement references.

use time::Date;

/// The flow routing first chose for the case. A pilot case that later fell back to the regular
/// flow stays in the pilot's cohort (its fallback is one of the pilot's figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flow {
    /// Tilskudd til ekspertbistand: the employer applies and claims a refund.
    Regular,
    /// The § 9a pilot: NAV orders an expert under a framework agreement.
    Pilot,
}

/// Why routing chose the case's flow (the contract's `RoutingReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoutingReason {
    /// Pilot: county, period, employer choice and an active agreement all fit.
    PilotEligible,
    /// Regular: not a pilot county.
    OutsidePilotCounty,
    /// Regular: the case date lies outside every pilot period.
    OutsidePilotPeriod,
    /// Regular: the employer chose its own expert.
    EmployerChoseOwnExpert,
    /// Regular: no active agreement covers the chosen area in the county.
    NoAgreementForArea,
}

/// Why a pilot case was handed to the regular flow (the contract's `FlowChangeReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FallbackReason {
    /// Every supplier for the county and area failed the case.
    NoSupplierAvailable,
    /// The agreements not yet tried had no capacity left that month.
    AgreementsFull,
    /// No active agreement covers the case any more.
    AgreementEnded,
    /// The employer now prefers an expert of its own.
    EmployerChoseOwnExpert,
    /// A pilot caseworker sent the case to the regular flow for another reason.
    CaseworkerDecision,
}

/// Whether a refund claim came before the grant's refund deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimTiming {
    /// Submitted on or before the deadline.
    OnTime,
    /// Submitted after the deadline.
    Late,
}

/// What happened to a case in the pilot flow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PilotFacts {
    /// Orders placed for the case (one per supplier tried).
    pub orders_placed: u32,
    /// Orders declined by suppliers: how far down the ranks the case went.
    pub orders_declined: u32,
    /// An order was accepted.
    pub accepted: bool,
    /// An accepted order was aborted (partial invoice).
    pub aborted: bool,
    /// An order was completed.
    pub completed: bool,
}

/// What happened to a case in the regular flow (its own cases, and pilot cases after a fallback).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegularFacts {
    /// The employer submitted an application.
    pub application_submitted: bool,
    /// The grant was approved.
    pub granted: bool,
    /// The application was rejected (for any reason, lack of funds included).
    pub rejected: bool,
    /// The rejection was for lack of funds.
    pub rejected_for_lack_of_funds: bool,
    /// The employer withdrew the application.
    pub withdrawn: bool,
    /// The grant was cancelled.
    pub cancelled: bool,
    /// The grant expired without a refund claim.
    pub grant_expired: bool,
    /// The refund claim, if one was submitted, and whether on time.
    pub claim: Option<ClaimTiming>,
    /// The refund was paid.
    pub refund_paid: bool,
}

/// The money of one case, in øre.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseMoney {
    /// Granted (regular) plus ordered (pilot, the accepted order's amount).
    pub committed_ore: i64,
    /// Paid out: refunds and paid invoices.
    pub disbursed_ore: i64,
    /// Reserved and given back.
    pub released_ore: i64,
    /// The most the regulation allowed for the case: the max rate (a gross amount per grant,
    /// e.g. 24 000 kr from 2024) applications froze into the grant at the decision; `None`
    /// without an approved grant (the pilot has no max rate: it pays the agreement's price).
    pub max_allowed_ore: Option<i64>,
}

/// Everything the evaluation knows about one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFacts {
    /// The county code routing used (2024 structure, e.g. "34").
    pub county: String,
    /// The day the case was opened: its cohort is this month.
    pub opened_on: Date,
    /// The flow routing first chose.
    pub flow: Flow,
    /// Why routing chose it.
    pub routing_reason: RoutingReason,
    /// Set when a pilot case was handed to the regular flow.
    pub fallback: Option<FallbackReason>,
    /// The pilot flow's facts.
    pub pilot: PilotFacts,
    /// The regular flow's facts.
    pub regular: RegularFacts,
    /// The first decision on the application (regular) or the first order placed (pilot).
    pub decided_or_ordered_on: Option<Date>,
    /// The day the expert started (pilot: the order's start; regular: see docs/adr/0033).
    pub expert_started_on: Option<Date>,
    /// State-changing actions by NAV caseworkers and deciders on the case.
    pub nav_steps: u32,
    /// Forms the employer had to send (application, refund claim).
    pub employer_steps: u32,
    /// The case's money.
    pub money: CaseMoney,
}

/// How many orders one agreement took in one month against its capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityUse {
    /// The agreement's reference (its id in expert-registry; no supplier name or number).
    pub agreement: String,
    /// The county the agreement serves.
    pub county: String,
    /// The first day of the month.
    pub month: Date,
    /// Orders the agreement may take that month.
    pub capacity: u32,
    /// Orders counted against it that month, as pilot-ordering counts them: accepted and not
    /// cancelled, in the month the order was placed.
    pub used: u32,
}
