//! The EvaluationService RPCs, as plain async functions over [`EvaluationApi`]. All three read:
//! the cases of the period (and the year before it) are folded from the read model, the cohort
//! table is computed and suppressed (`cohorts`), and the cells are answered as they are, as CSV
//! or as the HTML report.

use ekb_platform::{ApiError, grpc::Call, messaging::Db};
use ekb_proto::{convert::date_to_wire, v1};

use crate::{
    Evaluation,
    case_facts::Flow,
    cohorts::{self, Period, TableContext},
    commands,
    config::EvaluationPolicy,
    csv_export, report, store,
    table::{Cell, CountyScope, FlowScope, Suppression},
};

ekb_platform::grpc_handlers! {
    Evaluation => EvaluationApi: v1::evaluation_service_server::EvaluationService {
        get_cohort_table(v1::GetCohortTableRequest) -> v1::GetCohortTableResponse = get_cohort_table;
        export_cohort_table_csv(v1::GetCohortTableRequest) -> v1::ExportCohortTableCsvResponse = export_cohort_table_csv;
        get_report(v1::GetCohortTableRequest) -> v1::GetReportResponse = get_report;
    }
}

/// What the evaluation's handlers work with.
#[derive(Debug, Clone)]
pub struct EvaluationApi {
    db: Db,
    policy: EvaluationPolicy,
}

impl EvaluationApi {
    /// Handlers over the service's database, applying `policy`.
    pub fn new(db: Db, policy: EvaluationPolicy) -> Self {
        EvaluationApi { db, policy }
    }

    /// What a table needs besides the cases.
    fn context(&self) -> TableContext {
        TableContext {
            pilot_county: self.policy.pilot_county.clone(),
            employees: self.policy.employees.clone(),
            min_cases: self.policy.min_cases,
        }
    }

    /// The suppressed cells of the period `request` asks for.
    async fn cells(
        &self,
        request: &v1::GetCohortTableRequest,
    ) -> Result<(Vec<Cell>, Period), ApiError> {
        let period = commands::period(request, self.policy.max_months)?;
        let mut connection = self.db.read().await?;
        let cases = store::load_cases(&mut connection, period.from, period.to).await?;
        let capacity = store::load_capacity(&mut connection, period.from, period.to).await?;
        let cells = cohorts::cells(&cases, &capacity, &period, &self.context());
        Ok((cells, period))
    }
}

async fn get_cohort_table(
    api: &EvaluationApi,
    _call: Call,
    request: v1::GetCohortTableRequest,
) -> Result<v1::GetCohortTableResponse, ApiError> {
    let (cells, _) = api.cells(&request).await?;
    Ok(v1::GetCohortTableResponse {
        cells: cells.iter().map(cell_to_wire).collect(),
        min_cases: api.policy.min_cases,
        pilot_county: api.policy.pilot_county.clone(),
        employees_source: api.policy.employees.source.clone(),
        employees_as_of: date_to_wire(api.policy.employees.as_of),
    })
}

async fn export_cohort_table_csv(
    api: &EvaluationApi,
    _call: Call,
    request: v1::GetCohortTableRequest,
) -> Result<v1::ExportCohortTableCsvResponse, ApiError> {
    let (cells, _) = api.cells(&request).await?;
    Ok(v1::ExportCohortTableCsvResponse {
        csv: csv_export::to_csv(&cells),
    })
}

async fn get_report(
    api: &EvaluationApi,
    _call: Call,
    request: v1::GetCohortTableRequest,
) -> Result<v1::GetReportResponse, ApiError> {
    let (cells, period) = api.cells(&request).await?;
    Ok(v1::GetReportResponse {
        html: report::render(&cells, &period, &api.context()),
    })
}

/// A month as the contract writes it, `YYYY-MM`.
pub fn month_to_wire(month: time::Date) -> String {
    format!("{:04}-{:02}", month.year(), u8::from(month.month()))
}

/// One cell as the contract carries it.
pub fn cell_to_wire(cell: &Cell) -> v1::CohortCell {
    use v1::{county_scope::Scope as County, flow_scope::Scope as Flows};
    let county = match &cell.county {
        CountyScope::County(code) => County::CountyCode(code.clone()),
        CountyScope::OtherCounties => County::OtherCounties(true),
        CountyScope::All => County::AllCounties(true),
    };
    let flow = match cell.flow {
        FlowScope::Flow(Flow::Regular) => Flows::Flow(v1::Flow::Regular as i32),
        FlowScope::Flow(Flow::Pilot) => Flows::Flow(v1::Flow::Pilot as i32),
        FlowScope::All => Flows::AllFlows(true),
    };
    let suppression = match cell.suppressed {
        None => v1::Suppression::Unspecified,
        Some(Suppression::Primary) => v1::Suppression::Primary,
        Some(Suppression::Secondary) => v1::Suppression::Secondary,
    };
    v1::CohortCell {
        county: Some(v1::CountyScope {
            scope: Some(county),
        }),
        flow: Some(v1::FlowScope { scope: Some(flow) }),
        month: month_to_wire(cell.month),
        agreement_id: cell.agreement.clone().unwrap_or_default(),
        figure: cell.figure.to_owned(),
        value: cell.value,
        cases: cell.cases,
        suppression: suppression as i32,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn cells_keep_their_scope_month_and_suppression_on_the_wire() {
        let shown = Cell {
            county: CountyScope::County("34".to_owned()),
            flow: FlowScope::Flow(Flow::Pilot),
            month: date!(2026 - 03 - 01),
            agreement: Some("0190b1a2-3c4d-7e5f-8a9b-0c1d2e3f4a5b".to_owned()),
            figure: "cases_opened",
            value: Some(7.0),
            cases: Some(7),
            suppressed: None,
        };
        let wire = cell_to_wire(&shown);
        assert_eq!(wire.month, "2026-03");
        assert_eq!(
            wire.county.and_then(|scope| scope.scope),
            Some(v1::county_scope::Scope::CountyCode("34".to_owned()))
        );
        assert_eq!(
            wire.flow.and_then(|scope| scope.scope),
            Some(v1::flow_scope::Scope::Flow(v1::Flow::Pilot as i32))
        );
        assert_eq!((wire.value, wire.cases), (Some(7.0), Some(7)));
        assert_eq!(wire.suppression, v1::Suppression::Unspecified as i32);
        assert_eq!(wire.agreement_id, "0190b1a2-3c4d-7e5f-8a9b-0c1d2e3f4a5b");

        let hidden = Cell {
            county: CountyScope::OtherCounties,
            flow: FlowScope::All,
            value: None,
            cases: None,
            suppressed: Some(Suppression::Secondary),
            agreement: None,
            ..shown
        };
        let wire = cell_to_wire(&hidden);
        assert_eq!((wire.value, wire.cases), (None, None));
        assert_eq!(wire.suppression, v1::Suppression::Secondary as i32);
        assert_eq!(
            wire.county.and_then(|scope| scope.scope),
            Some(v1::county_scope::Scope::OtherCounties(true))
        );
        assert_eq!(wire.agreement_id, "");
    }
}
