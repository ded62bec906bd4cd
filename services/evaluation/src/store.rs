//! The read model's SQL (migrations/100): a fact row per event, stored once whatever order
//! events arrive in (`ON CONFLICT DO NOTHING` on case, kind and subject), the registry's
//! agreements as their newest version, and the loads the figures are folded from.

use std::collections::{BTreeMap, HashMap};

use futures::TryStreamExt;
use sqlx::PgConnection;
use time::{Date, Month};
use uuid::Uuid;

use crate::{
    case_facts::{CapacityUse, CaseFacts},
    fold::fold_case,
};

/// What a fact is about: the names stored in `case_facts.kind`.
pub mod kind {
    /// CaseRouted: county, flow, reason, the day it was opened.
    pub const CASE_ROUTED: &str = "CASE_ROUTED";
    /// CaseFlowChanged: reason and source, per change (subject: its sequence).
    pub const FLOW_CHANGED: &str = "FLOW_CHANGED";
    /// ApplicationSubmitted (subject: the application).
    pub const APPLICATION_SUBMITTED: &str = "APPLICATION_SUBMITTED";
    /// GrantRequested (subject: the grant; parent: the application).
    pub const GRANT_REQUESTED: &str = "GRANT_REQUESTED";
    /// GrantApproved: decision day, amount, max rate (subject: the grant).
    pub const GRANT_APPROVED: &str = "GRANT_APPROVED";
    /// ApplicationRejected: reason, day (subject: the application).
    pub const APPLICATION_REJECTED: &str = "APPLICATION_REJECTED";
    /// ApplicationWithdrawn (subject: the application).
    pub const APPLICATION_WITHDRAWN: &str = "APPLICATION_WITHDRAWN";
    /// GrantCancellationRequested: by the employer or NAV (subject: grant and request time).
    pub const CANCELLATION_REQUESTED: &str = "CANCELLATION_REQUESTED";
    /// GrantCancelled (subject: the grant).
    pub const GRANT_CANCELLED: &str = "GRANT_CANCELLED";
    /// RefundClaimSubmitted: submitted day, assistance start, late (subject: the claim).
    pub const CLAIM_SUBMITTED: &str = "CLAIM_SUBMITTED";
    /// RefundApproved (subject: the claim).
    pub const REFUND_APPROVED: &str = "REFUND_APPROVED";
    /// RefundRejected (subject: the claim).
    pub const REFUND_REJECTED: &str = "REFUND_REJECTED";
    /// GrantExpired (subject: the grant).
    pub const GRANT_EXPIRED: &str = "GRANT_EXPIRED";
    /// RefundDeadlineExtended (subject: grant and extension time).
    pub const DEADLINE_EXTENDED: &str = "DEADLINE_EXTENDED";
    /// PaymentCompleted (subject: the claim).
    pub const REFUND_PAID: &str = "REFUND_PAID";
    /// A payment attempt after the first: a caseworker's RetryPayment (subject: claim and
    /// attempt).
    pub const PAYMENT_RETRIED: &str = "PAYMENT_RETRIED";
    /// OrderRequested: a follow-up or a caseworker's PlaceOrder (subject: the order).
    pub const ORDER_REQUESTED: &str = "ORDER_REQUESTED";
    /// OrderPlaced: day and amount (subject: the order).
    pub const ORDER_PLACED: &str = "ORDER_PLACED";
    /// OrderAccepted: day and agreement (subject: the order).
    pub const ORDER_ACCEPTED: &str = "ORDER_ACCEPTED";
    /// OrderDeclined (subject: the order).
    pub const ORDER_DECLINED: &str = "ORDER_DECLINED";
    /// OrderStarted: the expert's first day (subject: the order).
    pub const ORDER_STARTED: &str = "ORDER_STARTED";
    /// OrderCompleted (subject: the order).
    pub const ORDER_COMPLETED: &str = "ORDER_COMPLETED";
    /// OrderCancelled: reason (subject: the order).
    pub const ORDER_CANCELLED: &str = "ORDER_CANCELLED";
    /// OrderAborted (subject: the order).
    pub const ORDER_ABORTED: &str = "ORDER_ABORTED";
    /// InvoiceApproved (subject: the invoice).
    pub const INVOICE_APPROVED: &str = "INVOICE_APPROVED";
    /// InvoiceRejected: reason (subject: the invoice).
    pub const INVOICE_REJECTED: &str = "INVOICE_REJECTED";
    /// FundsDisbursed: amount (subject: the claim or invoice paid).
    pub const DISBURSED: &str = "DISBURSED";
    /// FundsReleased: amount (subject: reservation and cause).
    pub const RELEASED: &str = "RELEASED";
}

/// One fact an event established about a case, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Fact {
    /// Fingerprint of the case.
    pub case_key: String,
    /// What happened ([`kind`]).
    pub kind: String,
    /// Fingerprint of what it happened to within the case, or another de-duplicating key.
    pub subject: String,
    /// Fingerprint of the application a grant belongs to.
    pub parent: String,
    /// County code (CASE_ROUTED).
    pub county_code: String,
    /// A contract enum's value name.
    pub code: String,
    /// A second code.
    pub detail: String,
    /// The fact's day.
    pub on_date: Option<Date>,
    /// A second day (CLAIM_SUBMITTED: the assistance's first day).
    pub second_date: Option<Date>,
    /// An amount in øre.
    pub amount_ore: Option<i64>,
    /// A second amount in øre (GRANT_APPROVED: the max rate).
    pub limit_ore: Option<i64>,
    /// A yes/no the fact carries.
    pub flag: bool,
    /// The framework agreement (ORDER_ACCEPTED).
    pub agreement_id: Option<Uuid>,
}

impl Fact {
    /// A fact of `kind` about case `case_key` and `subject`, the rest empty.
    pub fn new(case_key: String, kind: &str, subject: String) -> Self {
        Fact {
            case_key,
            kind: kind.to_owned(),
            subject,
            ..Fact::default()
        }
    }
}

/// Stores `fact` unless the same (case, kind, subject) is stored already: a repeated event, or
/// a re-sent copy with a new event id, adds nothing.
pub async fn record(connection: &mut PgConnection, fact: &Fact) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO case_facts (case_key, kind, subject, parent, county_code, code, detail, \
           on_date, second_date, amount_ore, limit_ore, flag, agreement_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (case_key, kind, subject) DO NOTHING",
    )
    .bind(&fact.case_key)
    .bind(&fact.kind)
    .bind(&fact.subject)
    .bind(&fact.parent)
    .bind(&fact.county_code)
    .bind(&fact.code)
    .bind(&fact.detail)
    .bind(fact.on_date)
    .bind(fact.second_date)
    .bind(fact.amount_ore)
    .bind(fact.limit_ore)
    .bind(fact.flag)
    .bind(fact.agreement_id)
    .execute(connection)
    .await?;
    Ok(())
}

/// An agreement as the registry last described it: what its capacity figures need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementRow {
    /// Its registry id.
    pub agreement_id: Uuid,
    /// The county it serves.
    pub county_code: String,
    /// Orders it takes per month.
    pub monthly_capacity: i32,
    /// Its first day.
    pub covered_from: Date,
    /// Its last day; `None` when it was ended before it started.
    pub covered_to: Option<Date>,
    /// The registry's version.
    pub version: i64,
}

/// Stores `agreement` unless a newer version is stored already.
pub async fn upsert_agreement(
    connection: &mut PgConnection,
    agreement: &AgreementRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agreements (agreement_id, county_code, monthly_capacity, covered_from, \
           covered_to, version) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (agreement_id) DO UPDATE SET county_code = EXCLUDED.county_code, \
           monthly_capacity = EXCLUDED.monthly_capacity, covered_from = EXCLUDED.covered_from, \
           covered_to = EXCLUDED.covered_to, version = EXCLUDED.version, updated_at = now() \
         WHERE agreements.version < EXCLUDED.version",
    )
    .bind(agreement.agreement_id)
    .bind(&agreement.county_code)
    .bind(agreement.monthly_capacity)
    .bind(agreement.covered_from)
    .bind(agreement.covered_to)
    .bind(agreement.version)
    .execute(connection)
    .await?;
    Ok(())
}

/// The last day of the month `month` starts.
pub fn month_end(month: Date) -> Date {
    let (year, next) = match month.month() {
        Month::December => (month.year() + 1, Month::January),
        other => (month.year(), other.next()),
    };
    Date::from_calendar_date(year, next, 1)
        .ok()
        .and_then(Date::previous_day)
        .unwrap_or(month)
}

/// The same day a year earlier (28 February for 29 February).
pub fn a_year_before(day: Date) -> Date {
    day.replace_year(day.year() - 1)
        .or_else(|_| Date::from_calendar_date(day.year() - 1, day.month(), 28))
        .unwrap_or(day)
}

/// Every case opened from `from` (a month's first day) to the end of month `to`, and the year
/// before `from` (for the year-earlier comparison), folded from its facts. Cases whose
/// CaseRouted has not arrived are not counted yet: their cohort is unknown. The facts are
/// streamed and folded one case at a time: a national year holds some 140,000 of them, and
/// holding them all at once took the service to 89 MiB.
pub async fn load_cases(
    connection: &mut PgConnection,
    from: Date,
    to: Date,
) -> Result<Vec<CaseFacts>, sqlx::Error> {
    let mut facts = sqlx::query_as::<_, Fact>(
        "SELECT case_key, kind, subject, parent, county_code, code, detail, on_date, \
           second_date, amount_ore, limit_ore, flag, agreement_id \
         FROM case_facts WHERE case_key IN ( \
           SELECT case_key FROM case_facts \
           WHERE kind = 'CASE_ROUTED' AND on_date BETWEEN $1 AND $2) \
         ORDER BY case_key, kind, subject",
    )
    .bind(a_year_before(from))
    .bind(month_end(to))
    .fetch(connection);
    let mut cases = Vec::new();
    let mut one_case: Vec<Fact> = Vec::new();
    while let Some(fact) = facts.try_next().await? {
        if one_case
            .last()
            .is_some_and(|last| last.case_key != fact.case_key)
        {
            cases.extend(fold_case(&one_case));
            one_case.clear();
        }
        one_case.push(fact);
    }
    cases.extend(fold_case(&one_case));
    Ok(cases)
}

#[derive(sqlx::FromRow)]
struct AcceptedRow {
    agreement_id: Uuid,
    month: Date,
    accepted: i64,
}

#[derive(sqlx::FromRow)]
struct CapacityRow {
    agreement_id: Uuid,
    county_code: String,
    monthly_capacity: i32,
    covered_from: Date,
    covered_to: Option<Date>,
}

/// Capacity use per agreement and month from `from` to the end of month `to`: every month an
/// agreement covered at least one day of, with the orders counted against it that month as
/// pilot-ordering counts them (accepted, not cancelled, in the month the order was placed).
/// Orders under an agreement the registry's events have not described yet are counted once
/// they have.
pub async fn load_capacity(
    connection: &mut PgConnection,
    from: Date,
    to: Date,
) -> Result<Vec<CapacityUse>, sqlx::Error> {
    let last = month_end(to);
    let agreements: Vec<CapacityRow> = sqlx::query_as(
        "SELECT agreement_id, county_code, monthly_capacity, covered_from, covered_to \
         FROM agreements WHERE covered_to IS NOT NULL AND covered_from <= $2 AND covered_to >= $1 \
         ORDER BY agreement_id",
    )
    .bind(from)
    .bind(last)
    .fetch_all(&mut *connection)
    .await?;
    // Pilot-ordering's own rule (selection::month_use): an order counts against the month it
    // was placed in, unless it was declined, cancelled or expired unanswered. Once an order's
    // events are in, that is: accepted and not cancelled, in its placement's month.
    let accepted: Vec<AcceptedRow> = sqlx::query_as(
        "SELECT accepted.agreement_id, date_trunc('month', placed.on_date)::date AS month, \
                count(*) AS accepted \
         FROM case_facts accepted \
         JOIN case_facts placed ON placed.case_key = accepted.case_key \
           AND placed.subject = accepted.subject AND placed.kind = 'ORDER_PLACED' \
         WHERE accepted.kind = 'ORDER_ACCEPTED' AND accepted.agreement_id IS NOT NULL \
           AND placed.on_date BETWEEN $1 AND $2 \
           AND NOT EXISTS (SELECT 1 FROM case_facts cancelled \
                           WHERE cancelled.case_key = accepted.case_key \
                             AND cancelled.subject = accepted.subject \
                             AND cancelled.kind = 'ORDER_CANCELLED') \
         GROUP BY 1, 2",
    )
    .bind(from)
    .bind(last)
    .fetch_all(connection)
    .await?;
    let accepted: HashMap<(Uuid, Date), i64> = accepted
        .into_iter()
        .map(|row| ((row.agreement_id, row.month), row.accepted))
        .collect();
    let mut uses = BTreeMap::new();
    for agreement in agreements {
        let Some(covered_to) = agreement.covered_to else {
            continue;
        };
        let mut month = ekb_domain::month_start(agreement.covered_from.max(from));
        let end = covered_to.min(last);
        while month <= end {
            let used = accepted
                .get(&(agreement.agreement_id, month))
                .copied()
                .unwrap_or(0);
            uses.insert(
                (agreement.agreement_id, month),
                CapacityUse {
                    agreement: agreement.agreement_id.to_string(),
                    county: agreement.county_code.clone(),
                    month,
                    capacity: u32::try_from(agreement.monthly_capacity).unwrap_or(0),
                    used: u32::try_from(used).unwrap_or(u32::MAX),
                },
            );
            month = month_end(month).next_day().unwrap_or(Date::MAX);
        }
    }
    Ok(uses.into_values().collect())
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn month_ends_and_years_before() {
        assert_eq!(month_end(date!(2024 - 02 - 01)), date!(2024 - 02 - 29));
        assert_eq!(month_end(date!(2025 - 12 - 01)), date!(2025 - 12 - 31));
        assert_eq!(a_year_before(date!(2026 - 03 - 01)), date!(2025 - 03 - 01));
        assert_eq!(a_year_before(date!(2024 - 02 - 29)), date!(2023 - 02 - 28));
    }
}
