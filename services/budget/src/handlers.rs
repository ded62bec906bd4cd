//! The BudgetService RPCs, as plain async functions over [`BudgetApi`]. Only SetAppropriation
//! writes: it creates or changes an appropriation, answers the requests that waited for it and
//! announces thresholds, in one unit of work. Money moves only by events (see `saga`).

use std::sync::Arc;

use ekb_platform::{ApiError, grpc::Call, messaging::Db};
use ekb_proto::v1::{self, budget_service_server::BudgetService};

use crate::{
    Budget,
    commands::{
        GetAppropriation, GetReservation, GetUsage, ListReservations, Reconcile, SetAppropriation,
    },
    config::BudgetPolicy,
    ledger::{self, AppropriationTerms, Lock},
    model::BookingTime,
    reconcile, saga, usage,
};

ekb_platform::grpc_handlers! {
    Budget => BudgetApi: BudgetService {
        set_appropriation(v1::SetAppropriationRequest) -> v1::SetAppropriationResponse = set_appropriation;
        get_appropriation(v1::GetAppropriationRequest) -> v1::GetAppropriationResponse = get_appropriation;
        get_usage(v1::GetUsageRequest) -> v1::GetUsageResponse = get_usage;
        list_reservations(v1::ListReservationsRequest) -> v1::ListReservationsResponse = list_reservations;
        get_reservation(v1::GetReservationRequest) -> v1::GetReservationResponse = get_reservation;
        reconcile(v1::ReconcileRequest) -> v1::ReconcileResponse = reconcile_year;
    }
}

/// What budget's handlers work with.
#[derive(Debug, Clone)]
pub struct BudgetApi {
    db: Db,
    policy: Arc<BudgetPolicy>,
}

impl BudgetApi {
    /// Handlers over the service's database, applying `policy`.
    pub fn new(db: Db, policy: Arc<BudgetPolicy>) -> Self {
        BudgetApi { db, policy }
    }
}

/// SetAppropriation: creates or changes the appropriation; refuses to go below what is
/// committed; answers PENDING requests in request order; announces thresholds.
async fn set_appropriation(
    api: &BudgetApi,
    call: Call,
    request: v1::SetAppropriationRequest,
) -> Result<v1::SetAppropriationResponse, ApiError> {
    let command = SetAppropriation::parse(&request, &api.policy)?;
    let (year, account) = (command.budget_year, command.account);
    let now = BookingTime::now(api.db.clock().as_ref());
    let mut work = api.db.begin().await?;
    ledger::lock_year_and_account(work.db(), year, account).await?;
    let current = ledger::find_appropriation(work.db(), year, account, Lock::ForUpdate).await?;
    let terms = |crossed| AppropriationTerms {
        appropriated_ore: command.appropriated_ore,
        thresholds: &command.thresholds,
        crossed,
        note: &command.note,
    };
    let (appropriation, created, changed) = match current {
        None => {
            let created =
                ledger::insert_appropriation(work.db(), year, account, &terms(&[]), now.at).await?;
            ledger::record_change(work.db(), &created, None, &call.caller.subject).await?;
            (created, true, true)
        }
        Some(current) => {
            let committed = current.balance.committed_ore();
            if command.appropriated_ore < committed {
                return Err(ApiError::refused(
                    "BELOW_COMMITTED",
                    format!(
                        "{} øre is below the {committed} øre already committed on {year} {account} \
                         ({} outstanding + {} disbursed)",
                        command.appropriated_ore,
                        current.balance.outstanding_ore(),
                        current.balance.disbursed_ore
                    ),
                ));
            }
            let unchanged = current.balance.appropriated_ore == command.appropriated_ore
                && current.thresholds == command.thresholds
                && current.note == command.note;
            if unchanged {
                (current, false, false)
            } else {
                let after = crate::rules::Balance {
                    appropriated_ore: command.appropriated_ore,
                    ..current.balance
                };
                let crossed = crate::rules::still_crossed(
                    &command.thresholds,
                    &current.crossed,
                    &current.balance,
                    &after,
                );
                let updated = ledger::update_appropriation(
                    work.db(),
                    current.appropriation_id,
                    &terms(&crossed),
                    now.at,
                )
                .await?;
                let previous = Some(current.balance.appropriated_ore);
                ledger::record_change(work.db(), &updated, previous, &call.caller.subject).await?;
                (updated, false, true)
            }
        }
    };
    let pending = ledger::pending_reservations(work.db(), year, account).await?;
    let mut appropriation = appropriation;
    for request in &pending {
        saga::answer_pending(&mut work, &mut appropriation.balance, request, &now).await?;
    }
    if changed || !pending.is_empty() {
        saga::announce_thresholds(&mut work, &mut appropriation, &now).await?;
    }
    work.commit().await?;
    if changed {
        tracing::info!(
            appropriation_id = %appropriation.appropriation_id,
            budget_year = year,
            account = %account,
            appropriated_ore = appropriation.balance.appropriated_ore,
            version = appropriation.version,
            answered_pending = pending.len(),
            changed_by = %call.caller.subject,
            "appropriation set"
        );
    }
    Ok(v1::SetAppropriationResponse {
        appropriation: Some(appropriation.to_wire()),
        created,
    })
}

async fn get_appropriation(
    api: &BudgetApi,
    _call: Call,
    request: v1::GetAppropriationRequest,
) -> Result<v1::GetAppropriationResponse, ApiError> {
    let GetAppropriation {
        budget_year,
        account,
    } = GetAppropriation::parse(&request, &api.policy)?;
    let appropriation =
        ledger::find_appropriation(&mut *api.db.read().await?, budget_year, account, Lock::None)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "no appropriation is set for {budget_year} {account}"
                ))
            })?;
    Ok(v1::GetAppropriationResponse {
        appropriation: Some(appropriation.to_wire()),
    })
}

async fn get_usage(
    api: &BudgetApi,
    _call: Call,
    request: v1::GetUsageRequest,
) -> Result<v1::GetUsageResponse, ApiError> {
    let query = GetUsage::parse(&request, &api.policy)?;
    usage::usage(&mut *api.db.read().await?, &query).await
}

async fn list_reservations(
    api: &BudgetApi,
    _call: Call,
    request: v1::ListReservationsRequest,
) -> Result<v1::ListReservationsResponse, ApiError> {
    let query = ListReservations::parse(&request)?;
    let (page, next_page_token) =
        ledger::list_reservations(&mut *api.db.read().await?, &query).await?;
    Ok(v1::ListReservationsResponse {
        reservations: page
            .iter()
            .map(|reservation| reservation.to_wire())
            .collect(),
        next_page_token,
    })
}

async fn get_reservation(
    api: &BudgetApi,
    _call: Call,
    request: v1::GetReservationRequest,
) -> Result<v1::GetReservationResponse, ApiError> {
    let GetReservation { commitment } = request.try_into()?;
    let reservation = ledger::find_reservation(&mut *api.db.read().await?, commitment, Lock::None)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("budget has no request for {commitment}")))?;
    Ok(v1::GetReservationResponse {
        reservation: Some(reservation.to_wire()),
    })
}

async fn reconcile_year(
    api: &BudgetApi,
    _call: Call,
    request: v1::ReconcileRequest,
) -> Result<v1::ReconcileResponse, ApiError> {
    let Reconcile { budget_year } = request.try_into()?;
    let report = reconcile::reconcile(&mut *api.db.read().await?, budget_year).await?;
    if !report.consistent {
        tracing::error!(
            budget_year,
            differences = report.differences.len(),
            "the ledger does not reconcile"
        );
    }
    Ok(report)
}
