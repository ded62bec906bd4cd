//! Reconcile: recomputes every balance of a budget year from the ledger entries and compares
//! it with the balances kept beside them, per appropriation and per reservation, and checks the
//! rules the entries must obey (nothing outstanding below zero, a reservation's status matching
//! its entries, every entry carrying its reservation's facts). There must never be a
//! difference; the comparison itself is plain functions, tested without a database.

use ekb_platform::ApiError;
use ekb_proto::v1;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    ledger,
    model::{Status, account_to_wire},
    rules::Balance,
};

/// Sums of ledger entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct Sums {
    /// Sum of reserve entries.
    pub reserved_ore: i64,
    /// Sum of disburse entries.
    pub disbursed_ore: i64,
    /// Sum of release entries.
    pub released_ore: i64,
    /// Number of entries.
    pub entries: i64,
}

impl Sums {
    fn outstanding_ore(&self) -> i64 {
        self.reserved_ore - self.disbursed_ore - self.released_ore
    }
}

/// One difference, for the response.
fn difference(
    subject: &str,
    figure: &str,
    recorded_ore: i64,
    recomputed_ore: i64,
    detail: &str,
) -> v1::BalanceDifference {
    v1::BalanceDifference {
        subject: subject.to_owned(),
        figure: figure.to_owned(),
        recorded_ore,
        recomputed_ore,
        detail: detail.to_owned(),
    }
}

/// Differences between the three balances kept and the sums of the entries.
fn compare_sums(subject: &str, kept: (i64, i64, i64), sums: &Sums) -> Vec<v1::BalanceDifference> {
    [
        ("reserved_ore", kept.0, sums.reserved_ore),
        ("disbursed_ore", kept.1, sums.disbursed_ore),
        ("released_ore", kept.2, sums.released_ore),
    ]
    .into_iter()
    .filter(|(_, recorded, recomputed)| recorded != recomputed)
    .map(|(figure, recorded, recomputed)| {
        difference(
            subject,
            figure,
            recorded,
            recomputed,
            "the balance kept differs from the entries",
        )
    })
    .collect()
}

/// More disbursed and released than reserved, if the entries say so.
fn negative_outstanding(
    subject: &str,
    kept_outstanding_ore: i64,
    sums: &Sums,
) -> Option<v1::BalanceDifference> {
    (sums.outstanding_ore() < 0).then(|| {
        difference(
            subject,
            "outstanding_ore (negative)",
            kept_outstanding_ore,
            sums.outstanding_ore(),
            "more disbursed and released than reserved",
        )
    })
}

/// What is wrong with an appropriation's balances, given its entries' sums.
pub fn appropriation_differences(
    subject: &str,
    kept: &Balance,
    sums: &Sums,
) -> Vec<v1::BalanceDifference> {
    let mut found = compare_sums(
        subject,
        (kept.reserved_ore, kept.disbursed_ore, kept.released_ore),
        sums,
    );
    found.extend(negative_outstanding(subject, kept.outstanding_ore(), sums));
    let available = kept.appropriated_ore - (sums.reserved_ore - sums.released_ore);
    if available < 0 {
        found.push(difference(
            subject,
            "available_ore (negative)",
            kept.available_ore(),
            available,
            "more committed than appropriated",
        ));
    }
    found
}

/// A reservation's balances kept beside the ledger, and its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptReservation {
    /// Status.
    pub status: Status,
    /// Reserved, kept.
    pub reserved_ore: i64,
    /// Disbursed, kept.
    pub disbursed_ore: i64,
    /// Released, kept.
    pub released_ore: i64,
}

/// What is wrong with a reservation's balances and status, given its entries' sums.
pub fn reservation_differences(
    subject: &str,
    kept: &KeptReservation,
    sums: &Sums,
) -> Vec<v1::BalanceDifference> {
    let mut found = compare_sums(
        subject,
        (kept.reserved_ore, kept.disbursed_ore, kept.released_ore),
        sums,
    );
    let outstanding = sums.outstanding_ore();
    let status_fits = match kept.status {
        Status::Pending | Status::Denied => sums.entries == 0,
        Status::Reserved => outstanding > 0 && sums.disbursed_ore == 0 && sums.released_ore == 0,
        Status::Settled => sums.disbursed_ore > 0 && outstanding == 0,
        Status::Released => sums.disbursed_ore == 0 && outstanding == 0,
    };
    found.extend(negative_outstanding(
        subject,
        kept.reserved_ore - kept.disbursed_ore - kept.released_ore,
        sums,
    ));
    if !status_fits {
        found.push(difference(
            subject,
            "status",
            0,
            outstanding,
            &format!(
                "status {} does not fit its entries (reserved {}, disbursed {}, released {})",
                kept.status.code(),
                sums.reserved_ore,
                sums.disbursed_ore,
                sums.released_ore
            ),
        ));
    }
    found
}

#[derive(sqlx::FromRow)]
struct AccountSums {
    chapter: i32,
    post: i32,
    #[sqlx(flatten)]
    sums: Sums,
}

#[derive(sqlx::FromRow)]
struct ReservationSums {
    reservation_id: Uuid,
    status: String,
    kept_reserved_ore: i64,
    kept_disbursed_ore: i64,
    kept_released_ore: i64,
    #[sqlx(flatten)]
    sums: Sums,
}

/// The columns of [`Sums`] over ledger entries, as a literal so queries stay static SQL.
macro_rules! sums_columns {
    () => {
        "COALESCE(sum(amount_ore) FILTER (WHERE movement = 'RESERVE'), 0)::bigint AS reserved_ore, \
         COALESCE(sum(amount_ore) FILTER (WHERE movement = 'DISBURSE'), 0)::bigint AS disbursed_ore, \
         COALESCE(sum(amount_ore) FILTER (WHERE movement = 'RELEASE'), 0)::bigint AS released_ore, \
         count(*) AS entries"
    };
}

/// Reconciles budget year `year`.
pub async fn reconcile(
    connection: &mut PgConnection,
    year: i32,
) -> Result<v1::ReconcileResponse, ApiError> {
    let appropriations = ledger::appropriations_of_year(&mut *connection, year).await?;
    let account_sums: Vec<AccountSums> = sqlx::query_as(concat!(
        "SELECT chapter, post, ",
        sums_columns!(),
        " FROM ledger_entries WHERE budget_year = $1 GROUP BY chapter, post"
    ))
    .bind(year)
    .fetch_all(&mut *connection)
    .await?;
    let reservation_sums: Vec<ReservationSums> = sqlx::query_as(concat!(
        "SELECT r.reservation_id, r.status, r.reserved_ore AS kept_reserved_ore, \
           r.disbursed_ore AS kept_disbursed_ore, r.released_ore AS kept_released_ore, \
           COALESCE(e.reserved_ore, 0)::bigint AS reserved_ore, \
           COALESCE(e.disbursed_ore, 0)::bigint AS disbursed_ore, \
           COALESCE(e.released_ore, 0)::bigint AS released_ore, \
           COALESCE(e.entries, 0)::bigint AS entries \
         FROM reservations r LEFT JOIN (SELECT reservation_id, ",
        sums_columns!(),
        " FROM ledger_entries GROUP BY reservation_id) e USING (reservation_id) \
         WHERE r.budget_year = $1 ORDER BY r.sequence"
    ))
    .bind(year)
    .fetch_all(&mut *connection)
    .await?;
    let strays: Vec<(i64, Uuid)> = sqlx::query_as(
        "SELECT e.entry_id, e.reservation_id FROM ledger_entries e \
         JOIN reservations r USING (reservation_id) \
         WHERE (e.budget_year = $1 OR r.budget_year = $1) \
           AND (e.commitment_kind, e.commitment_id, e.case_id, e.county_code, e.flow, \
                e.budget_year, e.chapter, e.post) \
           IS DISTINCT FROM (r.commitment_kind, r.commitment_id, r.case_id, r.county_code, \
                r.flow, r.budget_year, r.chapter, r.post) \
         ORDER BY e.entry_id",
    )
    .bind(year)
    .fetch_all(connection)
    .await?;

    let mut differences = Vec::new();
    let mut balances = Vec::new();
    for appropriation in &appropriations {
        let account = appropriation.account;
        let sums = account_sums
            .iter()
            .find(|found| (found.chapter, found.post) == (account.chapter(), account.post()))
            .map(|found| found.sums)
            .unwrap_or_default();
        let subject = format!("appropriation {year} {account}");
        differences.extend(appropriation_differences(
            &subject,
            &appropriation.balance,
            &sums,
        ));
        let recomputed = Balance {
            appropriated_ore: appropriation.balance.appropriated_ore,
            reserved_ore: sums.reserved_ore,
            disbursed_ore: sums.disbursed_ore,
            released_ore: sums.released_ore,
        };
        balances.push(v1::LedgerBalance {
            budget_year: year,
            account: Some(account_to_wire(account.chapter(), account.post())),
            appropriated_ore: recomputed.appropriated_ore,
            reserved_ore: recomputed.reserved_ore,
            disbursed_ore: recomputed.disbursed_ore,
            released_ore: recomputed.released_ore,
            outstanding_ore: recomputed.outstanding_ore(),
            available_ore: recomputed.available_ore(),
            entries: sums.entries,
        });
    }
    for orphan in account_sums.iter().filter(|found| {
        !appropriations.iter().any(|appropriation| {
            (
                appropriation.account.chapter(),
                appropriation.account.post(),
            ) == (found.chapter, found.post)
        })
    }) {
        differences.push(difference(
            &format!("account {year} {}.{}", orphan.chapter, orphan.post),
            "reserved_ore",
            0,
            orphan.sums.reserved_ore,
            "ledger entries on an account with no appropriation",
        ));
    }
    for row in &reservation_sums {
        let subject = format!("reservation {}", row.reservation_id);
        let status = Status::parse_code(&row.status).ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "reservation {} has the unreadable status {:?}",
                row.reservation_id,
                row.status
            ))
        })?;
        let kept = KeptReservation {
            status,
            reserved_ore: row.kept_reserved_ore,
            disbursed_ore: row.kept_disbursed_ore,
            released_ore: row.kept_released_ore,
        };
        differences.extend(reservation_differences(&subject, &kept, &row.sums));
    }
    for (entry_id, reservation_id) in &strays {
        differences.push(difference(
            &format!("reservation {reservation_id}"),
            "entry",
            *entry_id,
            *entry_id,
            &format!("ledger entry {entry_id} does not carry its reservation's facts"),
        ));
    }
    let entries_checked = account_sums.iter().map(|found| found.sums.entries).sum();
    Ok(v1::ReconcileResponse {
        budget_year: year,
        consistent: differences.is_empty(),
        balances,
        differences,
        reservations_checked: i64::try_from(reservation_sums.len()).unwrap_or(i64::MAX),
        entries_checked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(reserved: i64, disbursed: i64, released: i64, entries: i64) -> Sums {
        Sums {
            reserved_ore: reserved,
            disbursed_ore: disbursed,
            released_ore: released,
            entries,
        }
    }

    fn kept(status: Status, reserved: i64, disbursed: i64, released: i64) -> KeptReservation {
        KeptReservation {
            status,
            reserved_ore: reserved,
            disbursed_ore: disbursed,
            released_ore: released,
        }
    }

    fn figures(found: &[v1::BalanceDifference]) -> Vec<&str> {
        found
            .iter()
            .map(|difference| difference.figure.as_str())
            .collect()
    }

    #[test]
    fn balances_that_match_their_entries_reconcile() {
        let balance = Balance {
            appropriated_ore: 100,
            reserved_ore: 60,
            disbursed_ore: 20,
            released_ore: 10,
        };
        assert!(appropriation_differences("a", &balance, &sums(60, 20, 10, 4)).is_empty());
        assert!(
            reservation_differences(
                "r",
                &kept(Status::Settled, 60, 50, 10),
                &sums(60, 50, 10, 3)
            )
            .is_empty()
        );
        assert!(
            reservation_differences("r", &kept(Status::Reserved, 60, 0, 0), &sums(60, 0, 0, 1))
                .is_empty()
        );
        assert!(
            reservation_differences("r", &kept(Status::Released, 60, 0, 60), &sums(60, 0, 60, 2))
                .is_empty()
        );
        assert!(
            reservation_differences("r", &kept(Status::Denied, 0, 0, 0), &Sums::default())
                .is_empty()
        );
        assert!(
            reservation_differences("r", &kept(Status::Released, 0, 0, 0), &Sums::default())
                .is_empty()
        );
    }

    #[test]
    fn a_balance_off_by_one_ore_is_reported_with_both_figures() {
        let balance = Balance {
            appropriated_ore: 100,
            reserved_ore: 60,
            disbursed_ore: 21,
            released_ore: 10,
        };
        let found =
            appropriation_differences("appropriation 2026 2650.76", &balance, &sums(60, 20, 10, 4));
        assert_eq!(figures(&found), ["disbursed_ore"]);
        assert_eq!((found[0].recorded_ore, found[0].recomputed_ore), (21, 20));
    }

    #[test]
    fn broken_ledger_rules_are_reported() {
        let overdrawn = Balance {
            appropriated_ore: 50,
            reserved_ore: 60,
            disbursed_ore: 0,
            released_ore: 0,
        };
        assert_eq!(
            figures(&appropriation_differences(
                "a",
                &overdrawn,
                &sums(60, 0, 0, 1)
            )),
            ["available_ore (negative)"]
        );
        let too_much = kept(Status::Settled, 10, 20, 0);
        assert_eq!(
            figures(&reservation_differences(
                "r",
                &too_much,
                &sums(10, 20, 0, 2)
            )),
            ["outstanding_ore (negative)", "status"]
        );
        // A RESERVED reservation with its money gone, a DENIED one with entries.
        assert_eq!(
            figures(&reservation_differences(
                "r",
                &kept(Status::Reserved, 10, 0, 10),
                &sums(10, 0, 10, 2)
            )),
            ["status"]
        );
        assert_eq!(
            figures(&reservation_differences(
                "r",
                &kept(Status::Denied, 0, 0, 0),
                &sums(10, 0, 0, 1)
            )),
            ["reserved_ore", "status"]
        );
    }
}
