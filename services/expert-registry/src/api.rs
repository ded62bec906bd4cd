//! The ExpertRegistryService RPCs. Every change is stored together with its event (carrying the
//! full state and version) in one transaction.

use ekb_domain::{CountyCode, OrganisationNumber, parse_iso_date};
use ekb_platform::{
    ApiError, Violations,
    error::validated,
    messaging::{EventSubject, Outbox},
};
use ekb_proto::{
    convert::competence_area_from_wire,
    v1::{self, expert_registry_service_server::ExpertRegistryService},
};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::{
    agreement_store::{self, NewAgreement},
    expert_store,
    validation::{
        MAX_NAME_CHARS, MAX_REASON_CHARS, check_agreement_reference, check_county, check_expert,
        check_name, check_terms, check_uuid,
    },
};

/// The gRPC service name, for health and roles.
pub const GRPC_NAME: &str = "ekspertbistand.v1.ExpertRegistryService";

const ADMIN: &str = "registry-admin";
const READER: &str = "registry-reader";

/// The role each RPC needs.
pub const RPC_ROLES: &[(&str, &str)] = &[
    ("RegisterExpert", ADMIN),
    ("UpdateExpert", ADMIN),
    ("GetExpert", READER),
    ("RegisterAgreement", ADMIN),
    ("UpdateAgreement", ADMIN),
    ("EndAgreement", ADMIN),
    ("GetAgreement", READER),
    ("FindAgreements", READER),
];

/// The registry's handlers.
#[derive(Debug, Clone)]
pub struct RegistryApi {
    pool: PgPool,
    outbox: Outbox,
}

fn unknown_agreement(id: uuid::Uuid) -> ApiError {
    ApiError::NotFound(format!("no agreement {id}"))
}

impl RegistryApi {
    /// Handlers over the service's pool and outbox.
    pub fn new(pool: PgPool, outbox: Outbox) -> Self {
        RegistryApi { pool, outbox }
    }

    async fn register_expert(
        &self,
        request: v1::RegisterExpertRequest,
    ) -> Result<v1::Expert, ApiError> {
        let mut violations = Violations::new();
        let expert = check_expert("details", request.details.as_ref(), &mut violations);
        violations.finish()?;
        let expert = validated(expert, "details")?;
        let mut tx = self.pool.begin().await?;
        let stored = expert_store::insert(&mut tx, &expert).await?;
        let event = v1::ExpertRegistered {
            expert: Some(stored.clone()),
        };
        self.outbox
            .record(&mut tx, &EventSubject::aggregate(&stored.expert_id), &event)
            .await?;
        tx.commit().await?;
        tracing::info!(expert_id = %stored.expert_id, "expert registered");
        Ok(stored)
    }

    async fn update_expert(
        &self,
        request: v1::UpdateExpertRequest,
    ) -> Result<v1::Expert, ApiError> {
        let mut violations = Violations::new();
        let expert_id = check_uuid("expert_id", &request.expert_id, &mut violations);
        let expert = check_expert("details", request.details.as_ref(), &mut violations);
        violations.finish()?;
        let (expert_id, expert) = (
            validated(expert_id, "expert_id")?,
            validated(expert, "details")?,
        );
        let mut tx = self.pool.begin().await?;
        let stored = expert_store::update(&mut tx, expert_id, &expert)
            .await
            .map_err(|error| match error {
                ApiError::AlreadyExists(_) => ApiError::AlreadyExists(
                    "another expert has this authorisation kind and reference".to_owned(),
                ),
                other => other,
            })?
            .ok_or_else(|| ApiError::NotFound(format!("no expert {expert_id}")))?;
        let event = v1::ExpertUpdated {
            expert: Some(stored.clone()),
        };
        self.outbox
            .record(&mut tx, &EventSubject::aggregate(&stored.expert_id), &event)
            .await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn register_agreement(
        &self,
        request: v1::RegisterAgreementRequest,
    ) -> Result<v1::Agreement, ApiError> {
        let mut violations = Violations::new();
        let reference = check_agreement_reference(
            "agreement_reference",
            &request.agreement_reference,
            &mut violations,
        );
        let supplier = violations.check(
            "supplier_organisation_number",
            OrganisationNumber::parse(&request.supplier_organisation_number),
        );
        let supplier_name = check_name(
            "supplier_name",
            &request.supplier_name,
            MAX_NAME_CHARS,
            &mut violations,
        );
        let county = check_county("county_code", &request.county_code, &mut violations);
        let terms = check_terms("terms", request.terms.as_ref(), &mut violations);
        violations.finish()?;
        let agreement = NewAgreement {
            reference: validated(reference, "agreement_reference")?,
            supplier: validated(supplier, "supplier_organisation_number")?,
            supplier_name: validated(supplier_name, "supplier_name")?,
            county: validated(county, "county_code")?,
            terms: validated(terms, "terms")?,
        };
        let mut tx = self.pool.begin().await?;
        let stored = agreement_store::insert(&mut tx, &agreement).await?;
        let event = v1::AgreementActivated {
            agreement: Some(stored.wire.clone()),
        };
        self.outbox
            .record(
                &mut tx,
                &EventSubject::aggregate(&stored.wire.agreement_id),
                &event,
            )
            .await?;
        tx.commit().await?;
        tracing::info!(
            agreement_id = %stored.wire.agreement_id,
            county = %stored.wire.county_code,
            "framework agreement registered"
        );
        Ok(stored.wire)
    }

    async fn update_agreement(
        &self,
        request: v1::UpdateAgreementRequest,
    ) -> Result<v1::Agreement, ApiError> {
        let mut violations = Violations::new();
        let agreement_id = check_uuid("agreement_id", &request.agreement_id, &mut violations);
        let terms = check_terms("terms", request.terms.as_ref(), &mut violations);
        violations.finish()?;
        let (agreement_id, terms) = (
            validated(agreement_id, "agreement_id")?,
            validated(terms, "terms")?,
        );
        let mut tx = self.pool.begin().await?;
        let current = agreement_store::find_for_update(&mut tx, agreement_id)
            .await?
            .ok_or_else(|| unknown_agreement(agreement_id))?;
        if current.ended_on.is_some() {
            return Err(ApiError::FailedPrecondition(
                "the agreement has ended; its terms cannot change".to_owned(),
            ));
        }
        let stored = agreement_store::update_terms(&mut tx, agreement_id, &terms).await?;
        let event = v1::AgreementUpdated {
            agreement: Some(stored.wire.clone()),
        };
        self.outbox
            .record(
                &mut tx,
                &EventSubject::aggregate(&stored.wire.agreement_id),
                &event,
            )
            .await?;
        tx.commit().await?;
        Ok(stored.wire)
    }

    async fn end_agreement(
        &self,
        request: v1::EndAgreementRequest,
    ) -> Result<v1::Agreement, ApiError> {
        let mut violations = Violations::new();
        let agreement_id = check_uuid("agreement_id", &request.agreement_id, &mut violations);
        let end_date = violations.check("end_date", parse_iso_date(&request.end_date));
        let reason = check_name("reason", &request.reason, MAX_REASON_CHARS, &mut violations);
        violations.finish()?;
        let (agreement_id, end_date, reason) = (
            validated(agreement_id, "agreement_id")?,
            validated(end_date, "end_date")?,
            validated(reason, "reason")?,
        );
        let mut tx = self.pool.begin().await?;
        let current = agreement_store::find_for_update(&mut tx, agreement_id)
            .await?
            .ok_or_else(|| unknown_agreement(agreement_id))?;
        if current.ended_on.is_some() {
            return Err(ApiError::FailedPrecondition(
                "the agreement has already ended".to_owned(),
            ));
        }
        if end_date < current.valid_from || end_date > current.valid_to {
            return Err(ApiError::invalid(
                "end_date",
                "must lie within the agreement's validity period",
            ));
        }
        let stored = agreement_store::end(&mut tx, agreement_id, end_date, &reason).await?;
        let event = v1::AgreementEnded {
            agreement: Some(stored.wire.clone()),
            reason,
        };
        self.outbox
            .record(
                &mut tx,
                &EventSubject::aggregate(&stored.wire.agreement_id),
                &event,
            )
            .await?;
        tx.commit().await?;
        tracing::info!(agreement_id = %stored.wire.agreement_id, "framework agreement ended");
        Ok(stored.wire)
    }

    async fn find_agreements(
        &self,
        request: v1::FindAgreementsRequest,
    ) -> Result<Vec<v1::Agreement>, ApiError> {
        let mut violations = Violations::new();
        let county = violations.check("county_code", CountyCode::parse(&request.county_code));
        let area = violations.check(
            "competence_area",
            competence_area_from_wire(request.competence_area),
        );
        let date = violations.check("on_date", parse_iso_date(&request.on_date));
        violations.finish()?;
        let mut connection = self.pool.acquire().await?;
        agreement_store::find_covering(
            &mut connection,
            &validated(county, "county_code")?,
            validated(area, "competence_area")?,
            validated(date, "on_date")?,
        )
        .await
    }
}

fn parse_id(field: &str, value: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(value).map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

#[tonic::async_trait]
impl ExpertRegistryService for RegistryApi {
    async fn register_expert(
        &self,
        request: Request<v1::RegisterExpertRequest>,
    ) -> Result<Response<v1::RegisterExpertResponse>, Status> {
        let expert = RegistryApi::register_expert(self, request.into_inner()).await?;
        Ok(Response::new(v1::RegisterExpertResponse {
            expert: Some(expert),
        }))
    }

    async fn update_expert(
        &self,
        request: Request<v1::UpdateExpertRequest>,
    ) -> Result<Response<v1::UpdateExpertResponse>, Status> {
        let expert = RegistryApi::update_expert(self, request.into_inner()).await?;
        Ok(Response::new(v1::UpdateExpertResponse {
            expert: Some(expert),
        }))
    }

    async fn get_expert(
        &self,
        request: Request<v1::GetExpertRequest>,
    ) -> Result<Response<v1::GetExpertResponse>, Status> {
        let expert_id = parse_id("expert_id", &request.get_ref().expert_id)?;
        let mut connection = self.pool.acquire().await.map_err(ApiError::from)?;
        let expert = expert_store::find(&mut connection, expert_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no expert {expert_id}")))?;
        Ok(Response::new(v1::GetExpertResponse {
            expert: Some(expert),
        }))
    }

    async fn register_agreement(
        &self,
        request: Request<v1::RegisterAgreementRequest>,
    ) -> Result<Response<v1::RegisterAgreementResponse>, Status> {
        let agreement = RegistryApi::register_agreement(self, request.into_inner()).await?;
        Ok(Response::new(v1::RegisterAgreementResponse {
            agreement: Some(agreement),
        }))
    }

    async fn update_agreement(
        &self,
        request: Request<v1::UpdateAgreementRequest>,
    ) -> Result<Response<v1::UpdateAgreementResponse>, Status> {
        let agreement = RegistryApi::update_agreement(self, request.into_inner()).await?;
        Ok(Response::new(v1::UpdateAgreementResponse {
            agreement: Some(agreement),
        }))
    }

    async fn end_agreement(
        &self,
        request: Request<v1::EndAgreementRequest>,
    ) -> Result<Response<v1::EndAgreementResponse>, Status> {
        let agreement = RegistryApi::end_agreement(self, request.into_inner()).await?;
        Ok(Response::new(v1::EndAgreementResponse {
            agreement: Some(agreement),
        }))
    }

    async fn get_agreement(
        &self,
        request: Request<v1::GetAgreementRequest>,
    ) -> Result<Response<v1::GetAgreementResponse>, Status> {
        let agreement_id = parse_id("agreement_id", &request.get_ref().agreement_id)?;
        let mut connection = self.pool.acquire().await.map_err(ApiError::from)?;
        let agreement = agreement_store::find(&mut connection, agreement_id)
            .await?
            .ok_or_else(|| unknown_agreement(agreement_id))?;
        Ok(Response::new(v1::GetAgreementResponse {
            agreement: Some(agreement.wire),
        }))
    }

    async fn find_agreements(
        &self,
        request: Request<v1::FindAgreementsRequest>,
    ) -> Result<Response<v1::FindAgreementsResponse>, Status> {
        let agreements = RegistryApi::find_agreements(self, request.into_inner()).await?;
        Ok(Response::new(v1::FindAgreementsResponse { agreements }))
    }
}
