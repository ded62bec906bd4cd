//! Choosing the agreement an order goes to (pilot_ordering.proto, "Choosing the agreement").
//!
//! The candidates are the agreements that cover the case's county and competence area, are
//! active on the order date and have not already failed this case. They are tried in rank order
//! (ranking, then lower price, then lower reference by bytes — [`rank_order`], a pure function
//! with a property test); the first whose calendar month still has capacity wins. Capacity is
//! checked under a row lock on the agreement's month row (`agreement_months`), taken in that
//! same rank order by every transaction, so concurrent orders queue instead of overbooking, and
//! cannot deadlock on each other.

use std::cmp::Ordering;

use ekb_domain::CompetenceArea;
use sqlx::{AssertSqlSafe, PgConnection};
use time::Date;
use uuid::Uuid;

use ekb_proto::v1;

use crate::codes::{OrderAbortReason, OrderCancellationReason, OrderExpiryReason, OrderStatus};

/// An agreement from the read model, as the choice needs it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Agreement {
    /// Id.
    pub agreement_id: Uuid,
    /// NAV's reference.
    pub agreement_reference: String,
    /// Supplier.
    pub supplier_organisation_number: String,
    /// Supplier name.
    pub supplier_name: String,
    /// Price per assignment.
    pub price_ore: i64,
    /// Ranking (1 first).
    pub ranking: i32,
    /// Orders per calendar month.
    pub monthly_capacity: i32,
}

/// The order in which candidates are tried: ranking, then price, then reference (bytes).
pub fn rank_order(a: &Agreement, b: &Agreement) -> Ordering {
    a.ranking
        .cmp(&b.ranking)
        .then(a.price_ore.cmp(&b.price_ore))
        .then(
            a.agreement_reference
                .as_bytes()
                .cmp(b.agreement_reference.as_bytes()),
        )
        .then(a.agreement_id.cmp(&b.agreement_id))
}

/// The first of `candidates` (in [`rank_order`]) whose use is below its capacity; `used`
/// gives an agreement's use this month.
pub fn first_with_capacity(
    candidates: &[Agreement],
    used: impl Fn(&Agreement) -> i64,
) -> Option<&Agreement> {
    let mut sorted: Vec<&Agreement> = candidates.iter().collect();
    sorted.sort_by(|a, b| rank_order(a, b));
    sorted
        .into_iter()
        .find(|agreement| used(agreement) < i64::from(agreement.monthly_capacity))
}

/// Why no agreement could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCandidate {
    /// No agreement covering the case is active on the date.
    NoActiveAgreement,
    /// Every active one has failed this case already.
    AllTried,
    /// Untried ones exist but their month is full.
    AgreementsFull,
}

impl NoCandidate {
    /// PlaceOrder's refusal reason.
    pub fn reason(self) -> &'static str {
        match self {
            NoCandidate::NoActiveAgreement => "NO_ACTIVE_AGREEMENT",
            NoCandidate::AllTried => "NO_SUPPLIER_AVAILABLE",
            NoCandidate::AgreementsFull => "AGREEMENTS_FULL",
        }
    }

    /// The reason a fallback to the regular flow carries.
    pub fn fallback_reason(self) -> v1::FlowChangeReason {
        match self {
            NoCandidate::NoActiveAgreement => v1::FlowChangeReason::AgreementEnded,
            NoCandidate::AllTried => v1::FlowChangeReason::NoSupplierAvailable,
            NoCandidate::AgreementsFull => v1::FlowChangeReason::AgreementsFull,
        }
    }

    /// What a person reads.
    pub fn message(self) -> &'static str {
        match self {
            NoCandidate::NoActiveAgreement => {
                "no active framework agreement covers the case's county and competence area today"
            }
            NoCandidate::AllTried => {
                "every active agreement for the case has already declined or not answered it"
            }
            NoCandidate::AgreementsFull => {
                "the agreements not yet tried for the case have no capacity left this month"
            }
        }
    }
}

/// SQL: agreement `a` is active on date `$3`.
const ACTIVE_ON: &str =
    "a.valid_from <= $3 AND a.valid_to >= $3 AND (a.ended_on IS NULL OR a.ended_on >= $3)";

/// Active agreements covering county `county` and area `area` on `date`.
pub async fn active_agreements(
    db: &mut PgConnection,
    county: &str,
    area: CompetenceArea,
    date: Date,
) -> Result<Vec<Agreement>, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT a.agreement_id, a.agreement_reference, a.supplier_organisation_number, \
         a.supplier_name, a.price_ore, a.ranking, a.monthly_capacity FROM agreements a \
         WHERE a.county_code = $1 AND $2 = ANY(a.competence_areas) AND {ACTIVE_ON}"
    )))
    .bind(county)
    .bind(area.code())
    .bind(date)
    .fetch_all(db)
    .await
}

/// Whether any agreement (active or not, on any date) for county `county` and area `area` has
/// reached this service. When none has, a PILOT case's order meets a read model that lags the
/// registry (routing saw the agreement that made the case PILOT): "not arrived yet", not "none".
pub async fn knows_any_agreement(
    db: &mut PgConnection,
    county: &str,
    area: CompetenceArea,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM agreements WHERE county_code = $1 \
         AND $2 = ANY(competence_areas))",
    )
    .bind(county)
    .bind(area.code())
    .fetch_one(db)
    .await
}

/// The agreements that have already failed case `case_id`: an order under them was declined,
/// expired before the expert started, aborted for the expert or the supplier, or cancelled
/// because the agreement ended.
pub async fn failed_for_case(
    db: &mut PgConnection,
    case_id: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT agreement_id FROM orders WHERE case_id = $1 AND ( \
           status = $2 \
           OR (status = $3 AND expiry_reason IN ($4, $5)) \
           OR abort_reason IN ($6, $7) \
           OR (status = $8 AND cancellation_reason = $9))",
    )
    .bind(case_id)
    .bind(OrderStatus::Declined)
    .bind(OrderStatus::Expired)
    .bind(OrderExpiryReason::SupplierDidNotAnswer)
    .bind(OrderExpiryReason::NotStartedInTime)
    .bind(OrderAbortReason::ExpertUnavailable)
    .bind(OrderAbortReason::SupplierBreach)
    .bind(OrderStatus::Cancelled)
    .bind(OrderCancellationReason::AgreementEnded)
    .fetch_all(db)
    .await
}

/// Locks the month row of `agreement_id` for `month` (creating it), so the month's use can be
/// counted and an order added without a concurrent order slipping in between.
pub async fn lock_month(
    db: &mut PgConnection,
    agreement_id: Uuid,
    month: Date,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agreement_months (agreement_id, month) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(agreement_id)
    .bind(month)
    .execute(&mut *db)
    .await?;
    sqlx::query("SELECT 1 FROM agreement_months WHERE agreement_id = $1 AND month = $2 FOR UPDATE")
        .bind(agreement_id)
        .bind(month)
        .execute(db)
        .await?;
    Ok(())
}

/// The orders counted against `agreement_id`'s capacity in `month`: all requested that month
/// except DECLINED, CANCELLED and those that expired unanswered.
pub async fn month_use(
    db: &mut PgConnection,
    agreement_id: Uuid,
    month: Date,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE agreement_id = $1 AND usage_month = $2 \
         AND status NOT IN ($3, $4) AND NOT (status = $5 AND expiry_reason = $6)",
    )
    .bind(agreement_id)
    .bind(month)
    .bind(OrderStatus::Declined)
    .bind(OrderStatus::Cancelled)
    .bind(OrderStatus::Expired)
    .bind(OrderExpiryReason::SupplierDidNotAnswer)
    .fetch_one(db)
    .await
}

/// What an order is wanted for: a case (county, area), on a date, counting capacity in a
/// month; `also_failed` is an agreement to treat as having failed the case (the order ending
/// now, not yet saved as ended).
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The case.
    pub case_id: Uuid,
    /// Its county.
    pub county: &'a str,
    /// Its competence area.
    pub area: CompetenceArea,
    /// The order date.
    pub date: Date,
    /// The month whose capacity is counted.
    pub month: Date,
    /// An agreement that failed the case and is not yet saved as such.
    pub also_failed: Option<Uuid>,
}

/// Chooses the agreement for a new order as `wanted`. On success the chosen agreement's month
/// row stays locked until the transaction ends: insert the order before committing.
pub async fn choose(
    db: &mut PgConnection,
    wanted: &Wanted<'_>,
) -> Result<Result<Agreement, NoCandidate>, sqlx::Error> {
    let active = active_agreements(db, wanted.county, wanted.area, wanted.date).await?;
    if active.is_empty() {
        return Ok(Err(NoCandidate::NoActiveAgreement));
    }
    let mut failed = failed_for_case(db, wanted.case_id).await?;
    failed.extend(wanted.also_failed);
    let mut untried: Vec<Agreement> = active
        .into_iter()
        .filter(|agreement| !failed.contains(&agreement.agreement_id))
        .collect();
    if untried.is_empty() {
        return Ok(Err(NoCandidate::AllTried));
    }
    untried.sort_by(rank_order);
    for agreement in untried {
        lock_month(db, agreement.agreement_id, wanted.month).await?;
        let used = month_use(db, agreement.agreement_id, wanted.month).await?;
        if used < i64::from(agreement.monthly_capacity) {
            return Ok(Ok(agreement));
        }
    }
    Ok(Err(NoCandidate::AgreementsFull))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn agreement(n: u8, ranking: i32, price_ore: i64, reference: &str, capacity: i32) -> Agreement {
        Agreement {
            agreement_id: Uuid::from_bytes([n; 16]),
            agreement_reference: reference.to_owned(),
            supplier_organisation_number: "923609016".to_owned(),
            supplier_name: "S".to_owned(),
            price_ore,
            ranking,
            monthly_capacity: capacity,
        }
    }

    #[test]
    fn ties_go_to_the_lower_price_then_the_lower_reference() {
        let candidates = [
            agreement(1, 1, 500, "RA-B", 5),
            agreement(2, 1, 400, "RA-C", 5),
            agreement(3, 1, 400, "RA-A", 5),
            agreement(4, 2, 100, "RA-0", 5),
        ];
        let chosen = first_with_capacity(&candidates, |_| 0).expect("one");
        assert_eq!(chosen.agreement_reference, "RA-A");
        let chosen =
            first_with_capacity(&candidates, |a| if a.ranking == 1 { 5 } else { 0 }).expect("one");
        assert_eq!(chosen.agreement_reference, "RA-0");
        assert!(first_with_capacity(&candidates, |_| 5).is_none());
    }

    proptest! {
        #[test]
        fn the_choice_is_the_best_ranked_cheapest_lowest_reference_with_capacity(
            specs in proptest::collection::vec(
                (1i32..4, 1i64..5, "[A-C]{1,2}", 1i32..3, 0i64..4), 1..8)
        ) {
            let candidates: Vec<Agreement> = specs
                .iter()
                .enumerate()
                .map(|(n, (ranking, price, reference, capacity, _))| {
                    agreement(u8::try_from(n).unwrap_or(0), *ranking, *price, reference, *capacity)
                })
                .collect();
            let used = |a: &Agreement| {
                let index = candidates.iter().position(|c| c == a).unwrap_or(0);
                specs[index].4
            };
            let chosen = first_with_capacity(&candidates, used);
            let with_capacity: Vec<&Agreement> = candidates
                .iter()
                .filter(|a| used(a) < i64::from(a.monthly_capacity))
                .collect();
            match chosen {
                None => prop_assert!(with_capacity.is_empty()),
                Some(chosen) => {
                    prop_assert!(used(chosen) < i64::from(chosen.monthly_capacity));
                    for other in with_capacity {
                        let key = |a: &Agreement| (a.ranking, a.price_ore, a.agreement_reference.clone().into_bytes());
                        prop_assert!(key(chosen) <= key(other));
                    }
                }
            }
        }
    }
}
