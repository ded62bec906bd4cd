//! The small choices of one pilot case — how many days each step takes, how much is invoiced,
//! which rank accepts — drawn once from the case's own seed.
//!
//! Why all at once and up front: what a case does must depend only on its seed, not on how
//! far its walk got or in what order other cases' tasks ran, so that a fault seed replays the
//! same year. Drawing every value in a fixed order before the walk starts makes that true even
//! when a path ends early (a fallback, a denial), and makes the draws a pure function to test.
//!
//! The delays stay inside the services' deadlines with room to spare (answer within 7 days,
//! start within 30, invoice within 90: pilot-ordering's defaults), so a path only misses a
//! deadline where it means to.

use ekb_proto::v1::OrderAbortReason;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How many supplier answers are drawn: more than any area has ranks.
pub const ANSWERS: usize = 8;

/// The days and amounts of one pilot case.
#[derive(Debug, Clone, PartialEq)]
pub struct Pace {
    /// Days from the case opening to the caseworker's order.
    pub order_after: i64,
    /// Days each supplier takes to answer an order, in order (fewer than the 7 allowed).
    pub answer_after: [i64; ANSWERS],
    /// On the declined path: how many suppliers decline before one accepts (capped at runtime
    /// so that one is left to accept).
    pub declines: usize,
    /// Days from acceptance to the expert's start (fewer than the 30 allowed).
    pub start_after: i64,
    /// Days the expert works before the report is delivered.
    pub work_days: i64,
    /// On the aborted path: days from the start to the abort.
    pub abort_after: i64,
    /// On the aborted path: why.
    pub abort_reason: OrderAbortReason,
    /// On the aborted path: the share of the price invoiced for the work done, in per cent.
    pub partial_percent: i64,
    /// Days from completion (or abort) to the invoice.
    pub invoice_after: i64,
    /// Whether a completed order is invoiced at the full price (else a little below it).
    pub full_price: bool,
    /// When invoiced below the price: how far below, in per cent.
    pub below_percent: i64,
    /// On the invoice-above-price path: how far above the price, in per cent.
    pub above_percent: i64,
    /// Days from a rejected invoice to the corrected one.
    pub correction_after: i64,
    /// Days from the invoice to the caseworker's attestation.
    pub attest_after: i64,
    /// Days from attestation to the decider's approval.
    pub approve_after: i64,
    /// Days from approval to the payment system's answer.
    pub pay_after: i64,
    /// When every agreement is full this month: whether the caseworker waits for next month's
    /// capacity (else the case is sent to the regular flow at once).
    pub wait_for_capacity: bool,
}

impl Pace {
    /// The case's pace, from its seed.
    pub fn draw(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut answer_after = [0; ANSWERS];
        for days in &mut answer_after {
            *days = rng.random_range(1..=3);
        }
        let abort_reasons = [
            OrderAbortReason::EmployeeWithdrew,
            OrderAbortReason::EmployerWithdrew,
            OrderAbortReason::ExpertUnavailable,
        ];
        Pace {
            order_after: rng.random_range(0..=2),
            answer_after,
            declines: rng.random_range(1..=2),
            start_after: rng.random_range(2..=20),
            work_days: rng.random_range(5..=40),
            abort_after: rng.random_range(1..=10),
            abort_reason: abort_reasons[rng.random_range(0..abort_reasons.len())],
            partial_percent: rng.random_range(20..=70),
            invoice_after: rng.random_range(1..=14),
            full_price: rng.random_bool(0.75),
            below_percent: rng.random_range(1..=15),
            above_percent: rng.random_range(5..=25),
            correction_after: rng.random_range(1..=7),
            attest_after: rng.random_range(1..=5),
            approve_after: rng.random_range(1..=3),
            pay_after: rng.random_range(1..=3),
            wait_for_capacity: rng.random_bool(0.5),
        }
    }

    /// Days the `n`th supplier answer takes (0-based; the last draw repeats).
    pub fn answer_days(&self, n: usize) -> i64 {
        self.answer_after[n.min(ANSWERS - 1)]
    }

    /// What a completed order of `price_ore` is invoiced at: the price, or a little below.
    pub fn completed_invoice(&self, price_ore: i64) -> i64 {
        if self.full_price {
            price_ore
        } else {
            share(price_ore, 100 - self.below_percent)
        }
    }

    /// What an aborted order of `price_ore` is invoiced at: the work done, a part of the price.
    pub fn partial_invoice(&self, price_ore: i64) -> i64 {
        share(price_ore, self.partial_percent)
    }

    /// The first, too high, invoice of the invoice-above-price path for `price_ore`.
    pub fn above_price_invoice(&self, price_ore: i64) -> i64 {
        share(price_ore, 100 + self.above_percent).max(price_ore + 1)
    }
}

/// `percent` per cent of `ore`, rounded down to whole kroner, at least one krone.
fn share(ore: i64, percent: i64) -> i64 {
    (ore.saturating_mul(percent) / 100 / 100 * 100).max(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_pace_and_another_seed_another() {
        assert_eq!(Pace::draw(7), Pace::draw(7));
        let differs = (0..20).any(|seed| Pace::draw(seed) != Pace::draw(7));
        assert!(differs);
    }

    #[test]
    fn delays_stay_inside_the_services_deadlines() {
        for seed in 0..500 {
            let pace = Pace::draw(seed);
            assert!(
                pace.answer_after.iter().all(|days| (1..7).contains(days)),
                "{seed}"
            );
            assert!((1..30).contains(&pace.start_after), "{seed}");
            assert!(pace.invoice_after + pace.correction_after < 90, "{seed}");
            assert!((1..=2).contains(&pace.declines), "{seed}");
        }
    }

    #[test]
    fn invoices_keep_to_their_side_of_the_price() {
        let price = 2_400_000;
        for seed in 0..200 {
            let pace = Pace::draw(seed);
            let completed = pace.completed_invoice(price);
            assert!((1..=price).contains(&completed), "{seed}: {completed}");
            let partial = pace.partial_invoice(price);
            assert!((1..price).contains(&partial), "{seed}: {partial}");
            assert!(pace.above_price_invoice(price) > price, "{seed}");
            assert_eq!(completed % 100, 0, "whole kroner");
        }
        assert_eq!(share(1, 50), 100, "at least one krone");
    }
}
