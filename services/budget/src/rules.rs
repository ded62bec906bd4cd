//! Budget's rules as plain functions, free of I/O: accounts, the figures of an appropriation
//! (committed, outstanding, available, share used), alert thresholds (when one is passed, which
//! stay passed after a change) and the Europe/Oslo month a ledger entry is reported under.
//! Money is whole øre in `i64`; products are taken in `i128`, so no figure overflows.

use time::OffsetDateTime;

/// Lowest budget year accepted.
pub const FIRST_BUDGET_YEAR: i32 = 2000;
/// Highest budget year accepted.
pub const LAST_BUDGET_YEAR: i32 = 2100;

/// Whether `year` is a budget year this service keeps accounts for.
pub fn is_budget_year(year: i32) -> bool {
    (FIRST_BUDGET_YEAR..=LAST_BUDGET_YEAR).contains(&year)
}

/// The rule a budget year breaks, in words for a field violation.
pub fn budget_year_rule() -> String {
    format!("must be a budget year from {FIRST_BUDGET_YEAR} to {LAST_BUDGET_YEAR}")
}

pub use ekb_domain::Account;

/// The figures of one appropriation, in øre: the amount appropriated and the sums of its ledger
/// entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    /// Appropriated.
    pub appropriated_ore: i64,
    /// Sum of reserve entries.
    pub reserved_ore: i64,
    /// Sum of disburse entries.
    pub disbursed_ore: i64,
    /// Sum of release entries.
    pub released_ore: i64,
}

impl Balance {
    /// Committed: reserved and not released (outstanding + disbursed).
    pub fn committed_ore(&self) -> i64 {
        self.reserved_ore - self.released_ore
    }

    /// Outstanding: reserved and neither disbursed nor released.
    pub fn outstanding_ore(&self) -> i64 {
        self.reserved_ore - self.disbursed_ore - self.released_ore
    }

    /// Available: appropriated − committed (never negative: lowering below committed is
    /// refused, and reserving more than is available is denied).
    pub fn available_ore(&self) -> i64 {
        self.appropriated_ore - self.committed_ore()
    }

    /// Whether `amount_ore` can be reserved now.
    pub fn fits(&self, amount_ore: i64) -> bool {
        amount_ore > 0 && amount_ore <= self.available_ore()
    }

    /// Committed as a share of appropriated, in basis points, rounded down.
    pub fn used_basis_points(&self) -> i32 {
        basis_points(self.committed_ore(), self.appropriated_ore)
    }
}

/// `part` as a share of `whole` in basis points (1/100 %), rounded towards zero; 0 when `whole`
/// is not positive.
pub fn basis_points(part: i64, whole: i64) -> i32 {
    if whole <= 0 {
        return 0;
    }
    let points = i128::from(part) * 10_000 / i128::from(whole);
    i32::try_from(points).unwrap_or(if points < 0 { i32::MIN } else { i32::MAX })
}

/// Why a list of threshold levels is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// A level is outside 1–100 percent.
    #[error("{0} is outside 1–100")]
    OutOfRange(i32),
    /// A level is given twice.
    #[error("{0} is given twice")]
    Repeated(i32),
}

/// The levels as a set, ascending: each 1–100 percent, none repeated.
pub fn threshold_levels(levels: &[i32]) -> Result<Vec<i32>, ThresholdError> {
    let mut sorted = Vec::with_capacity(levels.len());
    for &level in levels {
        if !(1..=100).contains(&level) {
            return Err(ThresholdError::OutOfRange(level));
        }
        if sorted.contains(&level) {
            return Err(ThresholdError::Repeated(level));
        }
        sorted.push(level);
    }
    sorted.sort_unstable();
    Ok(sorted)
}

/// Whether usage has reached `level` percent: committed ≥ level % of appropriated. Nothing is
/// passed while nothing is appropriated.
pub fn is_passed(level: i32, balance: &Balance) -> bool {
    balance.appropriated_ore > 0
        && i128::from(balance.committed_ore()) * 100
            >= i128::from(level) * i128::from(balance.appropriated_ore)
}

/// The levels passed now that were not passed before (each is announced once), ascending.
pub fn newly_crossed(levels: &[i32], crossed: &[i32], balance: &Balance) -> Vec<i32> {
    levels
        .iter()
        .copied()
        .filter(|level| !crossed.contains(level) && is_passed(*level, balance))
        .collect()
}

/// The levels that stay announced after SetAppropriation changes the levels to `levels` and
/// the amount from `before` to `after`: only levels still configured, and after a raise only
/// those still passed (the others are re-armed and fire again when usage reaches them).
pub fn still_crossed(
    levels: &[i32],
    crossed: &[i32],
    before: &Balance,
    after: &Balance,
) -> Vec<i32> {
    let raised = after.appropriated_ore > before.appropriated_ore;
    let mut kept: Vec<i32> = crossed
        .iter()
        .copied()
        .filter(|level| levels.contains(level) && (!raised || is_passed(*level, after)))
        .collect();
    kept.sort_unstable();
    kept
}

/// The calendar month, `YYYY-MM`, that `at` falls in in Norway (Europe/Oslo).
pub fn oslo_month(at: OffsetDateTime) -> String {
    let local = ekb_domain::oslo_date(at);
    format!("{:04}-{:02}", local.year(), u8::from(local.month()))
}

/// A month filter `YYYY-MM`, checked (month 01–12, year 2000–2100).
pub fn parse_month(text: &str) -> Result<String, &'static str> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 7
        && bytes[4] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(index, byte)| index == 4 || byte.is_ascii_digit());
    if !shaped {
        return Err("must be a month YYYY-MM");
    }
    let year: i32 = text[..4].parse().map_err(|_| "must be a month YYYY-MM")?;
    let month: u8 = text[5..].parse().map_err(|_| "must be a month YYYY-MM")?;
    if !(1..=12).contains(&month) || !(FIRST_BUDGET_YEAR..=LAST_BUDGET_YEAR + 1).contains(&year) {
        return Err("must be a month YYYY-MM from 2000-01");
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn balance(appropriated: i64, reserved: i64, disbursed: i64, released: i64) -> Balance {
        Balance {
            appropriated_ore: appropriated,
            reserved_ore: reserved,
            disbursed_ore: disbursed,
            released_ore: released,
        }
    }

    #[test]
    fn committed_outstanding_and_available_follow_the_entries() {
        // 100 appropriated; 60 reserved, of which 20 disbursed and 10 released.
        let figures = balance(100, 60, 20, 10);
        assert_eq!(figures.committed_ore(), 50);
        assert_eq!(figures.outstanding_ore(), 30);
        assert_eq!(figures.available_ore(), 50);
        assert!(figures.fits(50));
        assert!(!figures.fits(51));
        assert!(!figures.fits(0), "nothing to reserve is not a reservation");
        assert_eq!(figures.used_basis_points(), 5_000);
    }

    #[test]
    fn basis_points_round_towards_zero_and_never_overflow() {
        assert_eq!(basis_points(1, 3), 3_333);
        assert_eq!(basis_points(-1, 3), -3_333);
        assert_eq!(basis_points(5, 0), 0);
        assert_eq!(basis_points(i64::MAX, i64::MAX), 10_000);
        assert_eq!(basis_points(i64::MAX, 1), i32::MAX);
        // 18 % of a 50 MNOK appropriation, the 2021 story.
        assert_eq!(basis_points(900_000_000, 5_000_000_000), 1_800);
    }

    #[test]
    fn threshold_levels_are_a_sorted_set_of_percentages() {
        assert_eq!(
            threshold_levels(&[90, 50, 100, 75]),
            Ok(vec![50, 75, 90, 100])
        );
        assert_eq!(threshold_levels(&[]), Ok(vec![]));
        assert_eq!(threshold_levels(&[0]), Err(ThresholdError::OutOfRange(0)));
        assert_eq!(
            threshold_levels(&[101]),
            Err(ThresholdError::OutOfRange(101))
        );
        assert_eq!(
            threshold_levels(&[50, 50]),
            Err(ThresholdError::Repeated(50))
        );
    }

    #[test]
    fn a_level_is_crossed_once_when_usage_reaches_it() {
        let levels = [50, 75, 90, 100];
        assert_eq!(
            newly_crossed(&levels, &[], &balance(1_000, 499, 0, 0)),
            [] as [i32; 0]
        );
        assert_eq!(
            newly_crossed(&levels, &[], &balance(1_000, 500, 0, 0)),
            [50]
        );
        // A jump passes several at once; those announced already are not repeated.
        assert_eq!(
            newly_crossed(&levels, &[50], &balance(1_000, 950, 0, 0)),
            [75, 90]
        );
        // Disbursed money stays committed; released money does not.
        assert_eq!(
            newly_crossed(&levels, &[], &balance(1_000, 800, 800, 0)),
            [50, 75]
        );
        assert_eq!(
            newly_crossed(&levels, &[], &balance(1_000, 800, 0, 400)),
            [] as [i32; 0]
        );
        assert_eq!(
            newly_crossed(&levels, &[50, 75, 90], &balance(1_000, 1_000, 0, 0)),
            [100]
        );
        // Nothing appropriated: nothing is passed, whatever the arithmetic says.
        assert_eq!(
            newly_crossed(&levels, &[], &balance(0, 0, 0, 0)),
            [] as [i32; 0]
        );
        // Exact in i128 near the top of i64.
        let huge = balance(i64::MAX, i64::MAX / 2 + 1, 0, 0);
        assert_eq!(newly_crossed(&levels, &[], &huge), [50]);
    }

    #[test]
    fn a_raise_re_arms_the_levels_no_longer_passed_and_a_cut_keeps_them() {
        let levels = [50, 75, 90, 100];
        let before = balance(1_000, 950, 0, 0);
        // Raised to 1 500: 950 is 63 %, so 50 stays announced and 75 and 90 are re-armed.
        let raised = balance(1_500, 950, 0, 0);
        assert_eq!(
            still_crossed(&levels, &[50, 75, 90], &before, &raised),
            [50]
        );
        assert_eq!(newly_crossed(&levels, &[50], &raised), [] as [i32; 0]);
        // Lowered to 950: every level announced stays, and 100 is passed now.
        let lowered = balance(950, 950, 0, 0);
        let kept = still_crossed(&levels, &[50, 75, 90], &before, &lowered);
        assert_eq!(kept, [50, 75, 90]);
        assert_eq!(newly_crossed(&levels, &kept, &lowered), [100]);
        // Levels removed from the configuration are forgotten.
        assert_eq!(
            still_crossed(&[80], &[50, 75], &before, &before),
            [] as [i32; 0]
        );
    }

    #[test]
    fn months_are_norwegian_calendar_months() {
        // New Year: 23:30 UTC on 31 December is already January in Oslo (UTC+1).
        assert_eq!(oslo_month(datetime!(2025-12-31 22:59:59 UTC)), "2025-12");
        assert_eq!(oslo_month(datetime!(2025-12-31 23:00:00 UTC)), "2026-01");
        // Summer time (UTC+2): midnight of 1 July is 22:00 UTC on 30 June.
        assert_eq!(oslo_month(datetime!(2026-06-30 21:59:59 UTC)), "2026-06");
        assert_eq!(oslo_month(datetime!(2026-06-30 22:00:00 UTC)), "2026-07");
        // 31 March 2024 was the last Sunday of March: summer time from 01:00 UTC, so the
        // month ends at 22:00 UTC that evening.
        assert_eq!(oslo_month(datetime!(2024-03-31 21:59:59 UTC)), "2024-03");
        assert_eq!(oslo_month(datetime!(2024-03-31 22:00:00 UTC)), "2024-04");
        // 27 October 2024 was the last Sunday of October: winter time from 01:00 UTC, so
        // 31 October ends at 23:00 UTC.
        assert_eq!(oslo_month(datetime!(2024-10-31 22:30:00 UTC)), "2024-10");
        assert_eq!(oslo_month(datetime!(2024-10-31 23:00:00 UTC)), "2024-11");
        // The offset of the input does not matter, only the instant.
        assert_eq!(oslo_month(datetime!(2026-01-01 00:30:00 +01:00)), "2026-01");
    }

    #[test]
    fn month_filters_are_checked() {
        assert_eq!(parse_month("2026-03"), Ok("2026-03".to_owned()));
        for bad in [
            "2026-3", "2026-13", "2026-00", "26-03-01", "", "1999-12", "2026/03",
        ] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn budget_years_have_a_range() {
        assert!(is_budget_year(2026));
        assert!(!is_budget_year(1999));
        assert!(!is_budget_year(2101));
        assert!(budget_year_rule().contains("2000"));
    }
}
