//! The ExpertRegistryService RPCs, as plain async functions over [`RegistryApi`]. Every change
//! is stored together with its event (carrying the full state and version, for read models) in
//! one unit of work.

use ekb_platform::{
    ApiError, change,
    grpc::Call,
    messaging::{Db, EventSubject},
};
use ekb_proto::v1::{self, expert_registry_service_server::ExpertRegistryService};
use uuid::Uuid;

use crate::{
    ExpertRegistry,
    agreement_store::{self, StoredAgreement},
    commands::{
        ById, EndAgreement, FindAgreements, RegisterAgreement, RegisterExpert, UpdateAgreement,
        UpdateExpert,
    },
    expert_store,
};

ekb_platform::grpc_handlers! {
    ExpertRegistry => RegistryApi: ExpertRegistryService {
        register_expert(v1::RegisterExpertRequest) -> v1::RegisterExpertResponse = register_expert;
        update_expert(v1::UpdateExpertRequest) -> v1::UpdateExpertResponse = update_expert;
        get_expert(v1::GetExpertRequest) -> v1::GetExpertResponse = get_expert;
        register_agreement(v1::RegisterAgreementRequest) -> v1::RegisterAgreementResponse = register_agreement;
        update_agreement(v1::UpdateAgreementRequest) -> v1::UpdateAgreementResponse = update_agreement;
        end_agreement(v1::EndAgreementRequest) -> v1::EndAgreementResponse = end_agreement;
        get_agreement(v1::GetAgreementRequest) -> v1::GetAgreementResponse = get_agreement;
        find_agreements(v1::FindAgreementsRequest) -> v1::FindAgreementsResponse = find_agreements;
    }
}

/// What the registry's handlers work with.
#[derive(Debug, Clone)]
pub struct RegistryApi {
    db: Db,
}

impl RegistryApi {
    /// Handlers over the service's database.
    pub fn new(db: Db) -> Self {
        RegistryApi { db }
    }
}

fn unknown_expert(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no expert {id}"))
}

fn unknown_agreement(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no agreement {id}"))
}

async fn register_expert(
    api: &RegistryApi,
    _call: Call,
    request: v1::RegisterExpertRequest,
) -> Result<v1::RegisterExpertResponse, ApiError> {
    let RegisterExpert { details } = request.try_into()?;
    let mut work = api.db.begin().await?;
    let now = work.now();
    let expert = expert_store::insert(work.db(), &details, now)
        .await?
        .to_wire();
    let event = v1::ExpertRegistered {
        expert: Some(expert.clone()),
    };
    work.publish(&EventSubject::aggregate(&expert.expert_id), &event)
        .await?;
    work.commit().await?;
    tracing::info!(expert_id = %expert.expert_id, "expert registered");
    Ok(v1::RegisterExpertResponse {
        expert: Some(expert),
    })
}

async fn update_expert(
    api: &RegistryApi,
    _call: Call,
    request: v1::UpdateExpertRequest,
) -> Result<v1::UpdateExpertResponse, ApiError> {
    let UpdateExpert { expert_id, details } = request.try_into()?;
    let mut work = api.db.begin().await?;
    let now = work.now();
    let expert = expert_store::update(work.db(), expert_id, &details, now)
        .await?
        .ok_or_else(|| unknown_expert(expert_id))?
        .to_wire();
    let event = v1::ExpertUpdated {
        expert: Some(expert.clone()),
    };
    work.publish(&EventSubject::aggregate(&expert.expert_id), &event)
        .await?;
    work.commit().await?;
    Ok(v1::UpdateExpertResponse {
        expert: Some(expert),
    })
}

async fn get_expert(
    api: &RegistryApi,
    _call: Call,
    request: v1::GetExpertRequest,
) -> Result<v1::GetExpertResponse, ApiError> {
    let ById(expert_id) = request.try_into()?;
    let expert = expert_store::find(&mut *api.db.read().await?, expert_id)
        .await?
        .ok_or_else(|| unknown_expert(expert_id))?;
    Ok(v1::GetExpertResponse {
        expert: Some(expert.to_wire()),
    })
}

async fn register_agreement(
    api: &RegistryApi,
    _call: Call,
    request: v1::RegisterAgreementRequest,
) -> Result<v1::RegisterAgreementResponse, ApiError> {
    let agreement: RegisterAgreement = request.try_into()?;
    let mut work = api.db.begin().await?;
    let now = work.now();
    let stored = agreement_store::insert(work.db(), &agreement, now)
        .await?
        .to_wire();
    let event = v1::AgreementActivated {
        agreement: Some(stored.clone()),
    };
    work.publish(&EventSubject::aggregate(&stored.agreement_id), &event)
        .await?;
    work.commit().await?;
    tracing::info!(
        agreement_id = %stored.agreement_id,
        county = %stored.county_code,
        "framework agreement registered"
    );
    Ok(v1::RegisterAgreementResponse {
        agreement: Some(stored),
    })
}

async fn update_agreement(
    api: &RegistryApi,
    _call: Call,
    request: v1::UpdateAgreementRequest,
) -> Result<v1::UpdateAgreementResponse, ApiError> {
    let UpdateAgreement {
        agreement_id,
        terms,
    } = request.try_into()?;
    let changed = change::apply(
        &api.db,
        &agreement_id,
        |agreement: &mut StoredAgreement, _| agreement.change_terms(terms),
    )
    .await?;
    let stored = changed.record.to_wire();
    Ok(v1::UpdateAgreementResponse {
        agreement: Some(stored),
    })
}

async fn end_agreement(
    api: &RegistryApi,
    _call: Call,
    request: v1::EndAgreementRequest,
) -> Result<v1::EndAgreementResponse, ApiError> {
    let EndAgreement {
        agreement_id,
        end_date,
        reason,
    } = request.try_into()?;
    let changed = change::apply(
        &api.db,
        &agreement_id,
        |agreement: &mut StoredAgreement, _| agreement.end(end_date, reason),
    )
    .await?;
    let stored = changed.record.to_wire();
    tracing::info!(agreement_id = %stored.agreement_id, "framework agreement ended");
    Ok(v1::EndAgreementResponse {
        agreement: Some(stored),
    })
}

async fn get_agreement(
    api: &RegistryApi,
    _call: Call,
    request: v1::GetAgreementRequest,
) -> Result<v1::GetAgreementResponse, ApiError> {
    let ById(agreement_id) = request.try_into()?;
    let agreement = agreement_store::find(&mut *api.db.read().await?, agreement_id)
        .await?
        .ok_or_else(|| unknown_agreement(agreement_id))?;
    Ok(v1::GetAgreementResponse {
        agreement: Some(agreement.to_wire()),
    })
}

async fn find_agreements(
    api: &RegistryApi,
    _call: Call,
    request: v1::FindAgreementsRequest,
) -> Result<v1::FindAgreementsResponse, ApiError> {
    let FindAgreements { county, area, date } = request.try_into()?;
    let agreements =
        agreement_store::find_covering(&mut *api.db.read().await?, &county, area, date).await?;
    Ok(v1::FindAgreementsResponse {
        agreements: agreements
            .iter()
            .map(|agreement| agreement.to_wire())
            .collect(),
    })
}
