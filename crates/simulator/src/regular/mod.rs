//! The regular grant flow's paths, as the simulator carries them out: the employer applies and
//! claims, the caseworker (first pair of eyes) reviews and recommends, the decider (second pair)
//! decides, and the simulator is NAV's payment system — all through the public contracts, on
//! the days the case's own seed chooses ([`schedule`]).
//!
//! Why a path is planned but observed: the services decide, not the plan. At the end of every
//! case the task reads applications, refunds and budget and names the path their states make
//! ([`observe::classify`]); the summary compares it with the plan, and a case whose states fit
//! no path fails with what it found.
//!
//! Lack of funds is the appropriation's to decide. The simulation has one appropriation per
//! budget year, sized so that it runs out late in the year, so:
//! - a case planned on any granting path whose grant budget refuses (FundsDenied) ends there:
//!   the decider makes the denial final (RejectForLackOfFunds), nothing is claimed, and the
//!   case is observed as `lack_of_funds`;
//! - a case planned as `lack_of_funds` whose grant budget reserves after all goes on as `paid`
//!   and is observed as `paid`.
//!
//! A grant whose budget year has no appropriation yet waits (budget holds the request PENDING):
//! the case waits a simulated day at a time until one is set.
//!
//! The timing stays inside refunds' rules so that a path really is the one planned: an on-time
//! claim comes on or before the deadline the services set, a late one after it and on or before
//! the last claim date, a claim after an extension between the original and the extended
//! deadline; an expiring grant is left until the day after its last claim date, when refunds'
//! expiry job releases it. The payment system's outcome is reported through
//! RecordPaymentOutcome, so refunds must not answer payments itself
//! (`payment.fake_outcome = "deferred"`).

pub mod observe;
pub mod requests;
pub mod schedule;
pub mod steps;

use anyhow::Context;
use ekb_proto::v1::{self, ClaimableGrantStatus, CompetenceArea};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use time::Duration;

use self::{
    schedule::{Amounts, ClaimTiming, days},
    steps::Funds,
};
use crate::{
    plan::{CaseMoney, CaseOutcome, CasePlan, Path},
    timeline::Sim,
};

/// A path through the regular grant flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegularPath {
    /// Granted, claimed on time, approved, paid.
    Paid,
    /// The decider confirms a recommendation to reject (a condition is not met).
    Rejected,
    /// The employer withdraws the application before it is decided.
    Withdrawn,
    /// Budget denies the grant's money (FundsDenied); the decider makes the denial final.
    LackOfFunds,
    /// Granted; the employer cancels the unused grant and budget releases the money.
    Cancelled,
    /// Granted; claimed after the deadline (flagged late), approved and paid.
    LatePaid,
    /// Granted; claimed after the deadline, rejected for lateness; the grant then expires.
    LateRejected,
    /// Granted; never claimed; refunds' expiry job expires it after the last claim date.
    Expired,
    /// Granted; the caseworker extends the deadline; claimed after the original deadline, on
    /// time for the new one; approved and paid.
    Extended,
    /// Granted, claimed on time, approved; the payment system reports the payment FAILED, the
    /// caseworker retries, the next attempt is paid.
    PaymentRetried,
}

impl RegularPath {
    /// Every path, in the summary's order.
    pub const ALL: &[RegularPath] = &[
        RegularPath::Paid,
        RegularPath::Rejected,
        RegularPath::Withdrawn,
        RegularPath::LackOfFunds,
        RegularPath::Cancelled,
        RegularPath::LatePaid,
        RegularPath::LateRejected,
        RegularPath::Expired,
        RegularPath::Extended,
        RegularPath::PaymentRetried,
    ];

    /// The path's name in the summary and the mix configuration.
    pub fn name(self) -> &'static str {
        match self {
            RegularPath::Paid => "paid",
            RegularPath::Rejected => "rejected",
            RegularPath::Withdrawn => "withdrawn",
            RegularPath::LackOfFunds => "lack_of_funds",
            RegularPath::Cancelled => "cancelled",
            RegularPath::LatePaid => "late_paid",
            RegularPath::LateRejected => "late_rejected",
            RegularPath::Expired => "expired",
            RegularPath::Extended => "extended",
            RegularPath::PaymentRetried => "payment_retried",
        }
    }

    /// The path's share of regular cases in a national year (relative weights summing to 1):
    /// most cases are granted, claimed on time and paid. Lack of funds is planned only as a
    /// small share: whether it happens is the appropriation's to decide (see the module doc).
    pub fn weight_default(self) -> f64 {
        match self {
            RegularPath::Paid => 0.62,
            RegularPath::Rejected => 0.08,
            RegularPath::Withdrawn => 0.05,
            RegularPath::LackOfFunds => 0.03,
            RegularPath::Cancelled => 0.04,
            RegularPath::LatePaid => 0.04,
            RegularPath::LateRejected => 0.02,
            RegularPath::Expired => 0.05,
            RegularPath::Extended => 0.04,
            RegularPath::PaymentRetried => 0.03,
        }
    }

    /// Whether the path asks budget for the grant's money (and so may meet lack of funds).
    pub fn is_granted(self) -> bool {
        !matches!(self, RegularPath::Rejected | RegularPath::Withdrawn)
    }
}

/// The settings the services need for the regular paths, as (service, key, value): the
/// simulator is NAV's payment system and reports every refund payment's outcome through
/// RecordPaymentOutcome, so refunds' fake payment system must accept each payment and leave
/// the outcome to that call instead of paying at once.
pub const SETTINGS: &[(&str, &str, &str)] = &[("refunds", "payment.fake_outcome", "deferred")];

/// What `plan` on `path` would reserve in budget if its grant were granted: the granted amount
/// its seed chooses ([`schedule::amounts`], the first choice a walk makes), or 0 for a path
/// that never asks for money.
pub fn reserved_if_granted(plan: &CasePlan, path: RegularPath) -> i64 {
    if !path.is_granted() {
        return 0;
    }
    schedule::amounts(&mut schedule::rng(plan.seed)).granted_ore
}

/// Where a regular walk ended: the path the services' states make, and the money.
#[derive(Debug, Clone)]
pub struct Walked {
    /// The application.
    pub application_id: String,
    /// The path the services' states make.
    pub observed: RegularPath,
    /// The money the case moved (budget's reservation, and what the simulator paid).
    pub money: CaseMoney,
}

/// Carries out `case` on regular `path`: waits for its opening day, opens it at routing (its own
/// expert, or an area routing sends to the regular flow), walks the path and reads where the
/// services say it ended.
pub async fn run(sim: &Sim, case: &CasePlan, path: RegularPath) -> anyhow::Result<CaseOutcome> {
    sim.on(case.opened_on).await;
    let outcome = async {
        let opened = steps::open_case(sim, case, v1::Flow::Regular).await?;
        let walked = walk(sim, case, &opened.case_id, path).await?;
        Ok::<_, anyhow::Error>(CaseOutcome {
            number: case.number,
            planned: case.path,
            observed: Path::Regular(walked.observed),
            case_id: opened.case_id,
            fell_back: false,
            money: walked.money,
        })
    };
    outcome
        .await
        .with_context(|| format!("case {} (regular.{})", case.number, path.name()))
}

/// Walks `path` on `case_id`, a case routing holds as REGULAR (opened so, or fallen back from
/// the pilot), from the employer's application on; returns the observed end. The employer
/// applies a few days after today.
pub async fn walk(
    sim: &Sim,
    case: &CasePlan,
    case_id: &str,
    path: RegularPath,
) -> anyhow::Result<Walked> {
    let mut rng = schedule::rng(case.seed);
    let amounts = schedule::amounts(&mut rng);
    let area = case.area.unwrap_or_else(|| own_expert_area(&mut rng));

    sim.after_days(days(&mut rng, schedule::APPLY_AFTER)).await;
    let planned_start = sim.today() + Duration::days(days(&mut rng, schedule::PLANNED_START_AFTER));
    let submitted = steps::submit_application(
        sim,
        case,
        case_id,
        area,
        planned_start,
        amounts.estimated_ore,
    )
    .await?;
    let application_id = submitted.application_id;

    let paid_ore = match path {
        RegularPath::Withdrawn => {
            sim.after_days(days(&mut rng, schedule::WITHDRAW_AFTER))
                .await;
            if rng.random_bool(0.5) {
                steps::start_review(sim, &application_id).await?;
            }
            steps::withdraw(sim, case, &application_id).await?;
            0
        }
        RegularPath::Rejected => {
            sim.after_days(days(&mut rng, schedule::REVIEW_AFTER)).await;
            let recommended = steps::recommend_rejection(sim, &application_id).await?;
            sim.after_days(days(&mut rng, schedule::DECIDE_AFTER)).await;
            steps::decide(sim, &recommended).await?;
            0
        }
        granted => grant_and_follow(sim, case, &application_id, granted, amounts, &mut rng).await?,
    };

    let (observed, observation) = observe::settled(sim, &application_id).await?;
    Ok(Walked {
        application_id,
        observed,
        money: observation.money(paid_ore),
    })
}

/// An area for an employer with its own expert (the application names one either way).
fn own_expert_area(rng: &mut ChaCha8Rng) -> CompetenceArea {
    use crate::pilot::agreements::AREAS;
    AREAS[rng.random_range(0..AREAS.len())]
}

/// Reviews and decides a grant of `amounts` on `application_id`, then follows `path` from
/// budget's answer; returns the øre the simulator paid as the payment system.
async fn grant_and_follow(
    sim: &Sim,
    case: &CasePlan,
    application_id: &str,
    path: RegularPath,
    amounts: Amounts,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<i64> {
    sim.after_days(days(rng, schedule::REVIEW_AFTER)).await;
    let recommended = steps::recommend_grant(sim, application_id, amounts.granted_ore).await?;
    sim.after_days(days(rng, schedule::DECIDE_AFTER)).await;
    steps::decide(sim, &recommended).await?;
    let granted = match steps::funds_answer(sim, application_id).await? {
        Funds::Denied(_) => {
            sim.after_days(days(rng, schedule::FINAL_AFTER_DENIAL))
                .await;
            steps::reject_for_lack_of_funds(sim, application_id).await?;
            return Ok(0);
        }
        Funds::Granted(granted) => granted,
    };
    let grant_id = granted.grant.clone().unwrap_or_default().grant_id;
    let dates = steps::grant_dates(sim, &granted).await?;
    let mut claim = |timing| {
        schedule::claim_plan(rng, timing, &dates, sim.today())
            .map_err(|room| anyhow::anyhow!("no room for a {timing:?} claim: {room}"))
    };
    match path {
        RegularPath::Paid | RegularPath::LackOfFunds => {
            let plan = claim(ClaimTiming::OnTime)?;
            claim_and_pay(sim, case, &grant_id, amounts, &plan, false, rng).await
        }
        RegularPath::PaymentRetried => {
            let plan = claim(ClaimTiming::OnTime)?;
            claim_and_pay(sim, case, &grant_id, amounts, &plan, true, rng).await
        }
        RegularPath::LatePaid => {
            let plan = claim(ClaimTiming::Late)?;
            claim_and_pay(sim, case, &grant_id, amounts, &plan, false, rng).await
        }
        RegularPath::Extended => {
            let plan = claim(ClaimTiming::AfterExtension)?;
            if let Some((extend_on, new_deadline)) = plan.extension {
                sim.on(extend_on).await;
                steps::extend_deadline(sim, &grant_id, new_deadline).await?;
            }
            claim_and_pay(sim, case, &grant_id, amounts, &plan, false, rng).await
        }
        RegularPath::LateRejected => {
            let plan = claim(ClaimTiming::Late)?;
            let submitted = submit(sim, case, &grant_id, amounts, &plan).await?;
            sim.after_days(days(rng, schedule::CLAIM_REVIEW_AFTER))
                .await;
            steps::refuse_late_claim(sim, &submitted).await?;
            steps::expired(sim, &grant_id, dates.expires_on()).await?;
            Ok(0)
        }
        RegularPath::Expired => {
            steps::expired(sim, &grant_id, dates.expires_on()).await?;
            Ok(0)
        }
        RegularPath::Cancelled => {
            sim.on(schedule::cancel_on(rng, &dates, sim.today())).await;
            steps::cancel_grant(sim, case, application_id).await?;
            steps::grant_in(sim, &grant_id, ClaimableGrantStatus::Cancelled).await?;
            Ok(0)
        }
        RegularPath::Rejected | RegularPath::Withdrawn => Ok(0),
    }
}

/// On the plan's claim day, `case`'s employer claims the invoice of `amounts` against
/// `grant_id`; returns the claim SUBMITTED.
async fn submit(
    sim: &Sim,
    case: &CasePlan,
    grant_id: &str,
    amounts: Amounts,
    plan: &schedule::ClaimPlan,
) -> anyhow::Result<v1::RefundClaim> {
    sim.on(plan.claim_on).await;
    let request = requests::claim(case, grant_id, amounts.invoiced_ore, plan);
    steps::submit_claim(sim, case, request).await
}

/// Claims on the plan's day, has the claim approved by two people some days later, and pays
/// it as the payment system a few days after that — failing the first attempt and paying the
/// caseworker's retry when `fail_first`; returns the øre paid.
async fn claim_and_pay(
    sim: &Sim,
    case: &CasePlan,
    grant_id: &str,
    amounts: Amounts,
    plan: &schedule::ClaimPlan,
    fail_first: bool,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<i64> {
    let submitted = submit(sim, case, grant_id, amounts, plan).await?;
    sim.after_days(days(rng, schedule::CLAIM_REVIEW_AFTER))
        .await;
    let approved = steps::approve_claim(sim, &submitted).await?;
    sim.after_days(days(rng, schedule::PAY_AFTER)).await;
    if fail_first {
        steps::record_failed(sim, &approved.claim_id).await?;
        sim.after_days(days(rng, schedule::RETRY_AFTER)).await;
        steps::retry_payment(sim, &approved.claim_id).await?;
    }
    let paid = steps::record_paid(sim, &approved.claim_id).await?;
    Ok(paid.payout_amount.unwrap_or_default().ore)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_snake_case_and_distinct() {
        let mut names: Vec<&str> = RegularPath::ALL.iter().map(|path| path.name()).collect();
        for name in &names {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RegularPath::ALL.len());
    }

    #[test]
    fn the_default_mix_sums_to_one_and_is_mostly_paid() {
        let total: f64 = RegularPath::ALL
            .iter()
            .map(|path| path.weight_default())
            .sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        assert!(
            RegularPath::ALL
                .iter()
                .all(|path| path.weight_default() > 0.0)
        );
        assert!(RegularPath::Paid.weight_default() > 0.5);
    }

    #[test]
    fn what_a_plan_would_reserve_is_what_its_walk_grants() {
        let plan = CasePlan {
            number: 1,
            county: "46".to_owned(),
            municipality: "4601".to_owned(),
            opened_on: time::macros::date!(2027 - 03 - 01),
            employee: "a synthetic employee".to_owned(),
            employer: "889640782".to_owned(),
            area: None,
            path: Path::Regular(RegularPath::Paid),
            seed: 42,
        };
        let granted = schedule::amounts(&mut schedule::rng(42)).granted_ore;
        assert_eq!(reserved_if_granted(&plan, RegularPath::Paid), granted);
        assert_eq!(
            reserved_if_granted(&plan, RegularPath::LackOfFunds),
            granted
        );
        assert_eq!(reserved_if_granted(&plan, RegularPath::Rejected), 0);
        assert_eq!(reserved_if_granted(&plan, RegularPath::Withdrawn), 0);
    }
}
