//! Usage of a budget year, from the ledger: reserved, disbursed and released per county, flow
//! and Europe/Oslo month of the entry, with distinct cases, denied requests, paid cases, cost per
//! case and the share of the appropriation used; and the same per county, per flow, per month
//! and in total (one query, `GROUPING SETS`). This is the figure "about 18 % of the
//! appropriation used, large differences between counties" is told with.

use ekb_domain::Flow;
use ekb_platform::ApiError;
use ekb_proto::{convert::flow_to_wire, v1};
use sqlx::PgConnection;

use crate::{commands::GetUsage, rules::basis_points};

#[derive(sqlx::FromRow)]
struct UsageRow {
    grouping: i32,
    county_code: Option<String>,
    flow: Option<String>,
    month: Option<String>,
    cases: i64,
    reserved_ore: i64,
    disbursed_ore: i64,
    released_ore: i64,
    denied_requests: i64,
    paid_cases: i64,
}

/// Which grouping set a row belongs to (`GROUPING(county_code, flow, month)`: a set bit is a
/// column summed over).
const BY_COUNTY_FLOW_MONTH: i32 = 0b000;
const BY_COUNTY: i32 = 0b011;
const BY_FLOW: i32 = 0b101;
const BY_MONTH: i32 = 0b110;
const TOTAL: i32 = 0b111;

const USAGE_SQL: &str = "\
WITH facts AS (
    SELECT county_code, flow, booked_month AS month, movement, amount_ore, case_id
    FROM ledger_entries
    WHERE budget_year = $1
      AND ($2::text IS NULL OR county_code = $2)
      AND ($3::text IS NULL OR flow = $3)
      AND ($4::text IS NULL OR booked_month = $4)
      AND ($5::int IS NULL OR (chapter = $5 AND post = $6::int))
    UNION ALL
    SELECT county_code, flow, answered_month, 'DENIED', 0, case_id
    FROM reservations
    WHERE status = 'DENIED' AND budget_year = $1
      AND ($2::text IS NULL OR county_code = $2)
      AND ($3::text IS NULL OR flow = $3)
      AND ($4::text IS NULL OR answered_month = $4)
      AND ($5::int IS NULL OR (chapter = $5 AND post = $6::int))
)
SELECT GROUPING(county_code, flow, month) AS grouping, county_code, flow, month,
    count(DISTINCT case_id) FILTER (WHERE movement = 'RESERVE') AS cases,
    COALESCE(sum(amount_ore) FILTER (WHERE movement = 'RESERVE'), 0)::bigint AS reserved_ore,
    COALESCE(sum(amount_ore) FILTER (WHERE movement = 'DISBURSE'), 0)::bigint AS disbursed_ore,
    COALESCE(sum(amount_ore) FILTER (WHERE movement = 'RELEASE'), 0)::bigint AS released_ore,
    count(*) FILTER (WHERE movement = 'DENIED') AS denied_requests,
    count(DISTINCT case_id) FILTER (WHERE movement = 'DISBURSE') AS paid_cases
FROM facts
GROUP BY GROUPING SETS ((county_code, flow, month), (county_code), (flow), (month), ())";

/// The figures of one bucket, from its sums and the selection's appropriation.
fn figures(row: &UsageRow, appropriated_ore: i64) -> v1::UsageFigures {
    let used_ore = row.reserved_ore - row.released_ore;
    v1::UsageFigures {
        cases: row.cases,
        reserved_ore: row.reserved_ore,
        disbursed_ore: row.disbursed_ore,
        released_ore: row.released_ore,
        denied_requests: row.denied_requests,
        paid_cases: row.paid_cases,
        cost_per_case_ore: if row.paid_cases > 0 {
            row.disbursed_ore / row.paid_cases
        } else {
            0
        },
        used_ore,
        used_basis_points: basis_points(used_ore, appropriated_ore),
    }
}

fn flow_of(row: &UsageRow) -> Result<v1::Flow, ApiError> {
    let code = row.flow.as_deref().unwrap_or_default();
    Flow::parse_code(code).map(flow_to_wire).map_err(|_| {
        ApiError::internal(anyhow::anyhow!(
            "a ledger entry has the unreadable flow {code:?}"
        ))
    })
}

/// Usage of the year and selection `query`.
pub async fn usage(
    connection: &mut PgConnection,
    query: &GetUsage,
) -> Result<v1::GetUsageResponse, ApiError> {
    let (chapter, post) = query.account.map_or((None, None), |account| {
        (Some(account.chapter()), Some(account.post()))
    });
    let appropriated_ore: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(appropriated_ore), 0)::bigint FROM appropriations \
         WHERE budget_year = $1 AND ($2::int IS NULL OR (chapter = $2 AND post = $3::int))",
    )
    .bind(query.budget_year)
    .bind(chapter)
    .bind(post)
    .fetch_one(&mut *connection)
    .await?;
    let rows: Vec<UsageRow> = sqlx::query_as(USAGE_SQL)
        .bind(query.budget_year)
        .bind(query.county.as_deref())
        .bind(query.flow.map(|flow| flow.code()))
        .bind(query.month.as_deref())
        .bind(chapter)
        .bind(post)
        .fetch_all(connection)
        .await?;

    let mut response = v1::GetUsageResponse {
        total: Some(v1::UsageFigures::default()),
        appropriated_ore,
        ..Default::default()
    };
    for row in &rows {
        let figures = Some(figures(row, appropriated_ore));
        let county_code = row.county_code.clone().unwrap_or_default();
        let month = row.month.clone().unwrap_or_default();
        match row.grouping {
            BY_COUNTY_FLOW_MONTH => response.rows.push(v1::UsageRow {
                county_code,
                flow: flow_of(row)? as i32,
                month,
                figures,
            }),
            BY_COUNTY => response.by_county.push(v1::CountyUsage {
                county_code,
                figures,
            }),
            BY_FLOW => response.by_flow.push(v1::FlowUsage {
                flow: flow_of(row)? as i32,
                figures,
            }),
            BY_MONTH => response.by_month.push(v1::MonthUsage { month, figures }),
            TOTAL => response.total = figures,
            other => {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "usage query returned grouping {other}"
                )));
            }
        }
    }
    response.rows.sort_by(|a, b| {
        (&a.county_code, a.flow, &a.month).cmp(&(&b.county_code, b.flow, &b.month))
    });
    response
        .by_county
        .sort_by(|a, b| a.county_code.cmp(&b.county_code));
    response.by_flow.sort_by_key(|usage| usage.flow);
    response.by_month.sort_by(|a, b| a.month.cmp(&b.month));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_derive_used_share_and_cost_per_case() {
        let row = UsageRow {
            grouping: TOTAL,
            county_code: None,
            flow: None,
            month: None,
            cases: 3,
            reserved_ore: 9_000,
            disbursed_ore: 5_000,
            released_ore: 1_000,
            denied_requests: 1,
            paid_cases: 2,
        };
        let figures = figures(&row, 40_000);
        assert_eq!(figures.used_ore, 8_000);
        assert_eq!(figures.used_basis_points, 2_000);
        assert_eq!(figures.cost_per_case_ore, 2_500);
        let unpaid = UsageRow {
            paid_cases: 0,
            ..row
        };
        assert_eq!(super::figures(&unpaid, 0).cost_per_case_ore, 0);
        assert_eq!(super::figures(&unpaid, 0).used_basis_points, 0);
    }
}
