//! When each step of a regular case happens, and what it costs: the small choices a case makes
//! on its way, drawn from the case's own seed so the same seed gives the same year.
//!
//! Why here and pure: the delays are what makes a path the one planned — a claim one day after
//! the deadline is a late claim, one day before it an on-time one — so every choice is made
//! against the dates the services gave the grant (grant date, deadline, last claim date) and
//! is tested to stay inside them, without a running system.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use time::{Date, Duration};

/// The max rate in force from 2024 in applications' default rate table (gross øre). A grant is
/// never above it; the simulated years are 2024 or later.
pub const MAX_RATE_ORE: i64 = 2_400_000;

/// Days from the case opened to the employer's application.
pub const APPLY_AFTER: (i64, i64) = (0, 5);
/// Days from the application to the caseworker's review and recommendation.
pub const REVIEW_AFTER: (i64, i64) = (1, 10);
/// Days from the recommendation to the decider's decision.
pub const DECIDE_AFTER: (i64, i64) = (0, 4);
/// Days from the application to the planned start of the assistance.
pub const PLANNED_START_AFTER: (i64, i64) = (14, 45);
/// Days the assistance lasts.
pub const ASSISTANCE_DAYS: (i64, i64) = (7, 60);
/// Days from the end of the assistance to the employer's claim.
pub const CLAIM_AFTER_END: (i64, i64) = (1, 30);
/// Days from a claim to the caseworker's recommendation on it.
pub const CLAIM_REVIEW_AFTER: (i64, i64) = (1, 14);
/// Days from an approval to the payment system's answer.
pub const PAY_AFTER: (i64, i64) = (0, 3);
/// Days from a failed payment to the caseworker's retry.
pub const RETRY_AFTER: (i64, i64) = (2, 14);
/// Days from the application to the employer's withdrawal.
pub const WITHDRAW_AFTER: (i64, i64) = (1, 10);
/// Days from the grant to the employer's cancellation.
pub const CANCEL_AFTER: (i64, i64) = (7, 90);
/// Days from a funds denial to the decider making it final.
pub const FINAL_AFTER_DENIAL: (i64, i64) = (1, 5);
/// Days after the deadline a late claim comes (never after the last claim date).
pub const LATE_BY: (i64, i64) = (1, 30);
/// Days before the original deadline the caseworker extends it.
pub const EXTEND_BEFORE_DEADLINE: (i64, i64) = (1, 30);
/// Days an extension adds: well inside refunds' default limit (`refunds.max_deadline_extension`,
/// 180 days after the original deadline).
pub const EXTEND_BY: (i64, i64) = (30, 90);
/// Estimated cost of the assistance in whole kroner (may exceed the max rate).
pub const ESTIMATE_KRONER: (i64, i64) = (8_000, 30_000);
/// The invoice as a per cent of the grant (above 100: the payout is capped at the grant).
pub const INVOICE_PERCENT: (i64, i64) = (60, 115);

/// A case's own random source, from its plan's seed.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A number of days in `range` (both ends included).
pub fn days(rng: &mut impl Rng, range: (i64, i64)) -> i64 {
    rng.random_range(range.0..=range.1)
}

/// The money of one case, gross øre.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amounts {
    /// What the employer estimates.
    pub estimated_ore: i64,
    /// What is recommended and granted: the estimate, at most the max rate.
    pub granted_ore: i64,
    /// What the expert's invoice comes to.
    pub invoiced_ore: i64,
}

impl Amounts {
    /// What a claim of this invoice pays out unreduced: min(invoice, grant).
    pub fn payout_ore(&self) -> i64 {
        self.invoiced_ore.min(self.granted_ore)
    }
}

/// The case's amounts: an estimate in whole kroner, the grant capped at [`MAX_RATE_ORE`], an
/// invoice around the grant.
pub fn amounts(rng: &mut impl Rng) -> Amounts {
    let estimated_ore = rng.random_range(ESTIMATE_KRONER.0..=ESTIMATE_KRONER.1) * 100;
    let granted_ore = estimated_ore.min(MAX_RATE_ORE);
    let percent = rng.random_range(INVOICE_PERCENT.0..=INVOICE_PERCENT.1);
    let invoiced_ore = (granted_ore * percent / 100 / 100).max(1) * 100;
    Amounts {
        estimated_ore,
        granted_ore,
        invoiced_ore,
    }
}

/// The dates of a grant that a claim's timing depends on, as the services set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantDates {
    /// The grant date: the assistance must not start before it.
    pub grant_date: Date,
    /// The planned first day of the assistance (from the application).
    pub planned_start: Date,
    /// The refund deadline (inclusive).
    pub deadline: Date,
    /// The last day a (late) claim is accepted at all; the grant expires the day after.
    pub last_claim_date: Date,
}

impl GrantDates {
    /// The first day the assistance can start: the planned start, not before the grant date.
    pub fn assistance_start(&self) -> Date {
        self.planned_start.max(self.grant_date)
    }

    /// The day the grant expires unclaimed (the day after the last claim date).
    pub fn expires_on(&self) -> Date {
        self.last_claim_date + Duration::days(1)
    }
}

/// When the employer's claim comes, relative to the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimTiming {
    /// On or before the deadline.
    OnTime,
    /// After the deadline, on or before the last claim date.
    Late,
    /// After the original deadline, on or before a deadline the caseworker extended first.
    AfterExtension,
}

/// A claim's dates: the assistance, the invoice, the claim and (for [`ClaimTiming::AfterExtension`])
/// the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimPlan {
    /// First day of the assistance (not before the grant date).
    pub assistance_start: Date,
    /// Last day of the assistance (not after the claim).
    pub assistance_end: Date,
    /// The invoice's date (not after the claim).
    pub invoice_date: Date,
    /// The day the employer claims.
    pub claim_on: Date,
    /// The day the caseworker extends the deadline, and the new deadline.
    pub extension: Option<(Date, Date)>,
}

/// Plans a claim of `timing` against a grant with `dates`, made on `today` (the grant's day or
/// later). Refused when the grant's dates leave no room for it (a late claim with no grace
/// period, say): the path could not be the one planned.
pub fn claim_plan(
    rng: &mut impl Rng,
    timing: ClaimTiming,
    dates: &GrantDates,
    today: Date,
) -> Result<ClaimPlan, String> {
    let start = dates.assistance_start().max(today);
    let deadline = dates.deadline;
    let length = Duration::days(days(rng, ASSISTANCE_DAYS));
    match timing {
        ClaimTiming::OnTime => {
            if start > deadline {
                return Err(format!(
                    "the assistance cannot start ({start}) before the deadline ({deadline})"
                ));
            }
            let end = (start + length).min(deadline);
            let claim_on = (end + Duration::days(days(rng, CLAIM_AFTER_END))).min(deadline);
            Ok(ClaimPlan {
                assistance_start: start,
                assistance_end: end,
                invoice_date: end,
                claim_on,
                extension: None,
            })
        }
        ClaimTiming::Late => {
            if dates.last_claim_date <= deadline {
                return Err(format!(
                    "no late claim is accepted after the deadline ({deadline})"
                ));
            }
            let earliest = (deadline + Duration::days(1)).max(today);
            let claim_on = (deadline + Duration::days(days(rng, LATE_BY)))
                .max(earliest)
                .min(dates.last_claim_date);
            if claim_on < earliest {
                return Err(format!(
                    "the last claim date ({}) has passed",
                    dates.last_claim_date
                ));
            }
            let start = start.min(claim_on);
            let end = (start + length).min(claim_on);
            Ok(ClaimPlan {
                assistance_start: start,
                assistance_end: end,
                invoice_date: end,
                claim_on,
                extension: None,
            })
        }
        ClaimTiming::AfterExtension => {
            if today >= deadline {
                return Err(format!(
                    "the deadline ({deadline}) leaves no day to extend it before it passes"
                ));
            }
            let extend_on = (deadline - Duration::days(days(rng, EXTEND_BEFORE_DEADLINE)))
                .max(today)
                .min(deadline - Duration::days(1));
            let extra = days(rng, EXTEND_BY);
            let new_deadline = deadline + Duration::days(extra);
            let claim_on = deadline + Duration::days(rng.random_range(1..=extra));
            // The assistance was delayed: it ends shortly before the claim.
            let start = start.min(claim_on);
            let end = (claim_on - Duration::days(days(rng, (0, 14)))).max(start);
            Ok(ClaimPlan {
                assistance_start: start,
                assistance_end: end,
                invoice_date: end,
                claim_on,
                extension: Some((extend_on, new_deadline)),
            })
        }
    }
}

/// The day the employer cancels an unused grant: some weeks after the grant, before the
/// deadline (so the grant is still open and unclaimed).
pub fn cancel_on(rng: &mut impl Rng, dates: &GrantDates, today: Date) -> Date {
    (dates.grant_date + Duration::days(days(rng, CANCEL_AFTER)))
        .min(dates.deadline)
        .max(today)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn dates() -> GrantDates {
        GrantDates {
            grant_date: date!(2027 - 03 - 10),
            planned_start: date!(2027 - 03 - 20),
            deadline: date!(2027 - 09 - 20),
            last_claim_date: date!(2027 - 12 - 19),
        }
    }

    fn check(plan: &ClaimPlan, dates: &GrantDates) {
        assert!(plan.assistance_start >= dates.grant_date, "{plan:?}");
        assert!(plan.assistance_start <= plan.assistance_end, "{plan:?}");
        assert!(plan.invoice_date <= plan.claim_on, "{plan:?}");
        assert!(plan.assistance_end <= plan.claim_on, "{plan:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_choices() {
        let (mut a, mut b) = (rng(7), rng(7));
        assert_eq!(amounts(&mut a), amounts(&mut b));
        let today = date!(2027 - 03 - 10);
        assert_eq!(
            claim_plan(&mut a, ClaimTiming::Late, &dates(), today),
            claim_plan(&mut b, ClaimTiming::Late, &dates(), today)
        );
    }

    #[test]
    fn amounts_stay_within_the_max_rate_and_the_estimate() {
        let mut rng = rng(1);
        for _ in 0..10_000 {
            let amounts = amounts(&mut rng);
            assert!(amounts.granted_ore <= MAX_RATE_ORE);
            assert!(amounts.granted_ore <= amounts.estimated_ore);
            assert!(amounts.invoiced_ore > 0);
            assert!(amounts.payout_ore() <= amounts.granted_ore);
            assert_eq!(amounts.invoiced_ore % 100, 0, "whole kroner");
        }
    }

    #[test]
    fn an_on_time_claim_is_never_after_the_deadline() {
        let mut rng = rng(2);
        let dates = dates();
        for _ in 0..10_000 {
            let plan = claim_plan(&mut rng, ClaimTiming::OnTime, &dates, dates.grant_date)
                .expect("room for a claim");
            check(&plan, &dates);
            assert!(plan.claim_on <= dates.deadline);
            assert!(plan.extension.is_none());
        }
        // A grant decided after its planned start: the assistance starts on the grant date.
        let late_grant = GrantDates {
            grant_date: date!(2027 - 04 - 01),
            ..dates
        };
        let plan = claim_plan(
            &mut rng,
            ClaimTiming::OnTime,
            &late_grant,
            late_grant.grant_date,
        )
        .expect("room");
        assert!(plan.assistance_start >= late_grant.grant_date);
    }

    #[test]
    fn a_late_claim_is_after_the_deadline_and_before_the_grant_expires() {
        let mut rng = rng(3);
        let dates = dates();
        for _ in 0..10_000 {
            let plan = claim_plan(&mut rng, ClaimTiming::Late, &dates, dates.grant_date)
                .expect("room for a late claim");
            check(&plan, &dates);
            assert!(plan.claim_on > dates.deadline);
            assert!(plan.claim_on <= dates.last_claim_date);
        }
        let short_grace = GrantDates {
            last_claim_date: dates.deadline + Duration::days(2),
            ..dates
        };
        for _ in 0..1000 {
            let plan = claim_plan(&mut rng, ClaimTiming::Late, &short_grace, dates.grant_date)
                .expect("two days of grace");
            assert!(plan.claim_on <= short_grace.last_claim_date);
        }
        let no_grace = GrantDates {
            last_claim_date: dates.deadline,
            ..dates
        };
        assert!(claim_plan(&mut rng, ClaimTiming::Late, &no_grace, dates.grant_date).is_err());
    }

    #[test]
    fn a_claim_after_an_extension_is_late_only_for_the_original_deadline() {
        let mut rng = rng(4);
        let dates = dates();
        for _ in 0..10_000 {
            let plan = claim_plan(
                &mut rng,
                ClaimTiming::AfterExtension,
                &dates,
                dates.grant_date,
            )
            .expect("room for an extension");
            check(&plan, &dates);
            let (extend_on, new_deadline) = plan.extension.expect("an extension");
            assert!(extend_on >= dates.grant_date && extend_on < dates.deadline);
            assert!(new_deadline > dates.deadline);
            assert!(
                new_deadline <= dates.deadline + Duration::days(180),
                "refunds' limit"
            );
            assert!(plan.claim_on > dates.deadline && plan.claim_on <= new_deadline);
        }
        assert!(
            claim_plan(
                &mut rng,
                ClaimTiming::AfterExtension,
                &dates,
                dates.deadline
            )
            .is_err()
        );
    }

    #[test]
    fn a_cancellation_comes_while_the_grant_is_open() {
        let mut rng = rng(5);
        let dates = dates();
        for _ in 0..1000 {
            let day = cancel_on(&mut rng, &dates, dates.grant_date);
            assert!(day > dates.grant_date && day <= dates.deadline);
        }
        assert_eq!(dates.expires_on(), date!(2027 - 12 - 20));
    }
}
