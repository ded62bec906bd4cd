//! The RefundsService RPCs, as plain async functions over [`RefundsApi`]. Every write is one
//! unit of work: the state change, its audit entry and its event commit together. A change to a
//! stored claim or grant reads parse → apply → answer: the rules are the decision methods of
//! [`Claim`] and [`Grant`], applied by `change::apply`. The payment of an approved claim is
//! handed to the payment system after that commit (`payment`).

use std::sync::Arc;

use ekb_domain::oslo_date;
use ekb_platform::{
    ApiError, Violations,
    audit::{self, AuditActor},
    auth::{Caller, ORGANISATION_NOT_REPRESENTED},
    change,
    grpc::Call,
    messaging::{Db, UnitOfWork},
    validate::Page,
};
use ekb_proto::v1::{self, refunds_service_server::RefundsService};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    CASEWORKER, DECIDER, EMPLOYER, READER, Refunds,
    claim::Claim,
    codes::{ClaimStatus, GrantStatus},
    commands::{
        Decide, Extend, ListClaims, ListExpiring, ListGrants, Recommend, RecordOutcome, Retry,
        SubmitClaim, finish_offset_page, offset_of, read_purpose,
    },
    config::Rules,
    grant::Grant,
    model::{ClaimRow, GrantRow},
    payment::{Payments, log_outcome},
    published::{self, subject},
    store,
    trail::{self, Entry},
};

ekb_platform::grpc_handlers! {
    Refunds => RefundsApi: RefundsService {
        submit_refund_claim(v1::SubmitRefundClaimRequest) -> v1::SubmitRefundClaimResponse = submit_refund_claim;
        get_refund_claim(v1::GetRefundClaimRequest) -> v1::GetRefundClaimResponse = get_refund_claim;
        get_claimable_grant(v1::GetClaimableGrantRequest) -> v1::GetClaimableGrantResponse = get_claimable_grant;
        list_grants_for_employer(v1::ListGrantsForEmployerRequest) -> v1::ListGrantsForEmployerResponse = list_grants_for_employer;
        list_refund_claims(v1::ListRefundClaimsRequest) -> v1::ListRefundClaimsResponse = list_refund_claims;
        list_expiring_grants(v1::ListExpiringGrantsRequest) -> v1::ListExpiringGrantsResponse = list_expiring_grants;
        recommend_refund_decision(v1::RecommendRefundDecisionRequest) -> v1::RecommendRefundDecisionResponse = recommend_refund_decision;
        decide_refund_claim(v1::DecideRefundClaimRequest) -> v1::DecideRefundClaimResponse = decide_refund_claim;
        extend_refund_deadline(v1::ExtendRefundDeadlineRequest) -> v1::ExtendRefundDeadlineResponse = extend_refund_deadline;
        record_payment_outcome(v1::RecordPaymentOutcomeRequest) -> v1::RecordPaymentOutcomeResponse = record_payment_outcome;
        retry_payment(v1::RetryPaymentRequest) -> v1::RetryPaymentResponse = retry_payment;
        list_audit_entries(v1::ListAuditEntriesRequest) -> v1::ListAuditEntriesResponse = list_audit_entries;
    }
}

/// What refunds' handlers work with.
#[derive(Debug, Clone)]
pub struct RefundsApi {
    db: Db,
    rules: Arc<Rules>,
    payments: Payments,
}

impl RefundsApi {
    /// Handlers over the service's database, applying `rules`, paying through `payments`.
    pub fn new(db: Db, rules: Arc<Rules>, payments: Payments) -> Self {
        RefundsApi {
            db,
            rules,
            payments,
        }
    }

    async fn grant_wire(
        &self,
        db: &mut PgConnection,
        grant: &GrantRow,
    ) -> Result<v1::ClaimableGrant, ApiError> {
        let extensions = store::extensions(db, grant.grant_id).await?;
        Ok(grant.to_wire(&extensions, self.rules.late_claim_grace_days))
    }

    /// The page of `rows` (fetched at `offset` with the page's fetch limit) as the contract's
    /// grants, and the next page's token.
    async fn grant_page(
        &self,
        db: &mut PgConnection,
        page: &Page,
        offset: i64,
        rows: Vec<GrantRow>,
    ) -> Result<(Vec<v1::ClaimableGrant>, String), ApiError> {
        let (rows, next_page_token) = finish_offset_page(page, offset, rows);
        let mut grants = Vec::with_capacity(rows.len());
        for grant in &rows {
            grants.push(self.grant_wire(db, grant).await?);
        }
        Ok((grants, next_page_token))
    }

    /// Hands an approved claim's payment over after commit, and returns the claim as it is then.
    async fn pay_and_reload(&self, claim: ClaimRow) -> Result<v1::RefundClaim, ApiError> {
        if let Err(error) = self.payments.hand_over(&claim).await {
            tracing::warn!(claim_id = %claim.claim_id, error = %error, "handing the payment over failed; the payment worker retries");
        }
        let mut db = self.db.read().await?;
        let claim = store::find_claim(&mut db, claim.claim_id, false)
            .await?
            .unwrap_or(claim);
        claim_wire(&mut db, &claim).await
    }
}

async fn claim_wire(db: &mut PgConnection, claim: &ClaimRow) -> Result<v1::RefundClaim, ApiError> {
    let recommendations = store::recommendations(db, claim.claim_id).await?;
    Ok(claim.to_wire(&recommendations))
}

/// The claim `claim_id`; NOT_FOUND when refunds has none.
async fn claim_or_not_found(db: &mut PgConnection, claim_id: Uuid) -> Result<ClaimRow, ApiError> {
    store::find_claim(db, claim_id, false)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no refund claim {claim_id}")))
}

/// The grant `grant_id`; NOT_FOUND when refunds does not know it.
async fn grant_or_not_found(db: &mut PgConnection, grant_id: Uuid) -> Result<GrantRow, ApiError> {
    store::find_grant(db, grant_id, false)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("refunds does not know grant {grant_id}")))
}

/// The grant a stored claim is against; every claim has one.
async fn grant_of_claim(db: &mut PgConnection, claim: &ClaimRow) -> Result<GrantRow, ApiError> {
    store::find_grant(db, claim.grant_id, false)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("claim without grant")))
}

/// Whether the caller is an employer's representative (and no NAV role).
fn is_employer(caller: &Caller) -> bool {
    caller.has_role(EMPLOYER) && !caller.has_any_role(&[CASEWORKER, DECIDER, READER])
}

fn not_grants_employer(organisation: &str) -> ApiError {
    ApiError::PermissionDenied {
        reason: ORGANISATION_NOT_REPRESENTED,
        message: format!("organisation {organisation} is not the employer of this grant"),
    }
}

async fn submit_refund_claim(
    api: &RefundsApi,
    call: Call,
    request: v1::SubmitRefundClaimRequest,
) -> Result<v1::SubmitRefundClaimResponse, ApiError> {
    let now = api.db.clock().now();
    let today = oslo_date(now);
    let command = SubmitClaim::parse(&request, today)?;
    let employer = command.employer.as_str().to_owned();
    call.caller.require_represents(&employer)?;
    let digest = ekb_platform::idempotency::fingerprint(&request);
    let mut work = api.db.begin().await?;
    // Copies of this request wait for the first; other claims on the grant see its answer.
    ekb_platform::idempotency::serialise(
        &mut work,
        &[
            format!("SubmitRefundClaim:{}", command.request_id),
            format!("grant:{}", command.grant_id),
        ],
    )
    .await?;
    if let Some(existing) = store::find_claim_by_request(work.db(), command.request_id).await? {
        if existing.request_digest != digest {
            return Err(ApiError::AlreadyExists(format!(
                "request {} was used for another claim",
                command.request_id
            )));
        }
        return Ok(v1::SubmitRefundClaimResponse {
            claim: Some(claim_wire(work.db(), &existing).await?),
            created: false,
        });
    }
    let grant = store::find_grant(work.db(), command.grant_id, true)
        .await?
        .ok_or_else(|| ApiError::not_arrived_yet(format!("grant {}", command.grant_id)))?;
    if grant.employer_organisation_number != employer {
        return Err(not_grants_employer(&employer));
    }
    if command.start < grant.grant_date {
        return Err(ApiError::invalid(
            "assistance_start_date",
            format!(
                "must not be before the grant date {} (§ 6)",
                ekb_proto::convert::date_to_wire(grant.grant_date)
            ),
        ));
    }
    let last_claim_date = grant.last_claim_date(api.rules.late_claim_grace_days);
    match grant.status {
        GrantStatus::Expired => {
            return Err(ApiError::refused("GRANT_EXPIRED", "the grant has expired"));
        }
        GrantStatus::Cancelled => {
            return Err(ApiError::refused(
                "GRANT_CANCELLED",
                "the grant was cancelled",
            ));
        }
        GrantStatus::ClaimPending | GrantStatus::Settled => {
            return Err(ApiError::refused(
                "CLAIM_EXISTS",
                "a claim against this grant is pending or approved",
            ));
        }
        _ if today > last_claim_date => {
            return Err(ApiError::refused(
                "GRANT_EXPIRED",
                format!(
                    "the last day to claim was {}",
                    ekb_proto::convert::date_to_wire(last_claim_date)
                ),
            ));
        }
        _ => {}
    }
    let claim = ClaimRow::submitted(&grant, command, digest, now, today);
    store::insert_claim(work.db(), &claim).await?;
    store::set_grant_status(work.db(), grant.grant_id, GrantStatus::ClaimPending).await?;
    work.publish(
        &subject(claim.case_id, claim.claim_id),
        &published::claim_submitted(&claim, &grant),
    )
    .await?;
    let entry = Entry::of_claim(&claim, v1::AuditEntryKind::Change, "SubmitRefundClaim");
    audit_caller(&mut work, &call.caller, None, entry, &employer).await?;
    work.commit().await?;
    tracing::info!(claim_id = %claim.claim_id, grant_id = %grant.grant_id, late = claim.late, "refund claim submitted");
    Ok(v1::SubmitRefundClaimResponse {
        claim: Some(claim.to_wire(&[])),
        created: true,
    })
}

/// What is read (`field` holds its id), by whom and why: an employer for its own organisation
/// (`None`), or a NAV caller with a purpose.
fn read_request(
    caller: &Caller,
    field: &str,
    id: &str,
    purpose: i32,
) -> Result<(Uuid, Option<v1::AccessPurpose>), ApiError> {
    let mut check = Violations::new();
    let id = check.uuid(field, id);
    let purpose = if is_employer(caller) {
        Some(None)
    } else {
        read_purpose(&mut check, purpose).map(Some)
    };
    check.finish_with(|| Some((id?, purpose?)))
}

/// Who `caller` is on the trail and why they act: an employer's representative acting for
/// `organisation` in self-service (`purpose` `None`), or a NAV employee for `purpose`.
fn caller_on_trail(
    caller: &Caller,
    purpose: Option<v1::AccessPurpose>,
    organisation: &str,
) -> (AuditActor, v1::AccessPurpose) {
    match purpose {
        None => (
            AuditActor::organisation(caller, organisation),
            v1::AccessPurpose::EmployerSelfService,
        ),
        Some(purpose) => (AuditActor::nav_employee(caller), purpose),
    }
}

/// Records `entry` as the caller's change, in `work` (see [`caller_on_trail`]).
async fn audit_caller(
    work: &mut UnitOfWork,
    caller: &Caller,
    purpose: Option<v1::AccessPurpose>,
    entry: Entry<'_>,
    organisation: &str,
) -> Result<(), ApiError> {
    let at = work.now();
    let (actor, purpose) = caller_on_trail(caller, purpose, organisation);
    trail::record(work.db(), entry, &actor, purpose, at).await?;
    Ok(())
}

/// Records the caller's read `entry` by the platform's one policy for reads
/// ([`audit::record_reads`]).
async fn record_read(
    api: &RefundsApi,
    caller: &Caller,
    purpose: Option<v1::AccessPurpose>,
    entry: Entry<'_>,
    organisation: &str,
) -> Result<(), ApiError> {
    let (actor, purpose) = caller_on_trail(caller, purpose, organisation);
    let read = audit::Read {
        case_id: entry.case_id,
        subject_id: entry.subject_id,
        action: entry.action,
        actor,
        purpose,
    };
    audit::record_reads(&api.db, &[read]).await
}

async fn get_refund_claim(
    api: &RefundsApi,
    call: Call,
    request: v1::GetRefundClaimRequest,
) -> Result<v1::GetRefundClaimResponse, ApiError> {
    let (claim_id, purpose) =
        read_request(&call.caller, "claim_id", &request.claim_id, request.purpose)?;
    let mut db = api.db.read().await?;
    let claim = claim_or_not_found(&mut db, claim_id).await?;
    if purpose.is_none() {
        call.caller
            .require_represents(&claim.employer_organisation_number)?;
    }
    let grant = grant_of_claim(&mut db, &claim).await?;
    let response = v1::GetRefundClaimResponse {
        claim: Some(claim_wire(&mut db, &claim).await?),
        grant: Some(api.grant_wire(&mut db, &grant).await?),
    };
    drop(db);
    let entry = Entry::of_claim(&claim, v1::AuditEntryKind::Read, "GetRefundClaim");
    record_read(
        api,
        &call.caller,
        purpose,
        entry,
        &claim.employer_organisation_number,
    )
    .await?;
    Ok(response)
}

async fn get_claimable_grant(
    api: &RefundsApi,
    call: Call,
    request: v1::GetClaimableGrantRequest,
) -> Result<v1::GetClaimableGrantResponse, ApiError> {
    let (grant_id, purpose) =
        read_request(&call.caller, "grant_id", &request.grant_id, request.purpose)?;
    let mut db = api.db.read().await?;
    let grant = grant_or_not_found(&mut db, grant_id).await?;
    if purpose.is_none() {
        call.caller
            .require_represents(&grant.employer_organisation_number)?;
    }
    let claims = store::claims_of_grant(&mut db, grant_id).await?;
    let mut wire_claims = Vec::with_capacity(claims.len());
    for claim in &claims {
        wire_claims.push(claim_wire(&mut db, claim).await?);
    }
    let response = v1::GetClaimableGrantResponse {
        grant: Some(api.grant_wire(&mut db, &grant).await?),
        claims: wire_claims,
    };
    drop(db);
    if !claims.is_empty() {
        let entry = Entry::of_grant(&grant, v1::AuditEntryKind::Read, "GetClaimableGrant");
        record_read(
            api,
            &call.caller,
            purpose,
            entry,
            &grant.employer_organisation_number,
        )
        .await?;
    }
    Ok(response)
}

async fn list_grants_for_employer(
    api: &RefundsApi,
    call: Call,
    request: v1::ListGrantsForEmployerRequest,
) -> Result<v1::ListGrantsForEmployerResponse, ApiError> {
    let query = ListGrants::try_from(request)?;
    call.caller.require_represents(query.employer.as_str())?;
    let mut db = api.db.read().await?;
    let offset = offset_of(&query.page);
    let rows = store::grants_of_employer(
        &mut db,
        query.employer.as_str(),
        &query.statuses,
        offset,
        query.page.fetch_limit(),
    )
    .await?;
    let (grants, next_page_token) = api.grant_page(&mut db, &query.page, offset, rows).await?;
    Ok(v1::ListGrantsForEmployerResponse {
        grants,
        next_page_token,
    })
}

async fn list_refund_claims(
    api: &RefundsApi,
    _call: Call,
    request: v1::ListRefundClaimsRequest,
) -> Result<v1::ListRefundClaimsResponse, ApiError> {
    let query = ListClaims::try_from(request)?;
    let mut db = api.db.read().await?;
    let rows = store::work_list(&mut db, &query).await?;
    let (rows, next_page_token) = query.page.finish(rows, |claim| claim.sequence);
    let mut claims = Vec::with_capacity(rows.len());
    for claim in &rows {
        let recommender = if claim.status == ClaimStatus::Recommended {
            store::recommendations(&mut db, claim.claim_id)
                .await?
                .last()
                .map(|last| last.recommended_by.clone())
        } else {
            None
        };
        claims.push(claim.summary(recommender.as_deref()));
    }
    Ok(v1::ListRefundClaimsResponse {
        claims,
        next_page_token,
    })
}

async fn list_expiring_grants(
    api: &RefundsApi,
    _call: Call,
    request: v1::ListExpiringGrantsRequest,
) -> Result<v1::ListExpiringGrantsResponse, ApiError> {
    let query = ListExpiring::try_from(request)?;
    let mut db = api.db.read().await?;
    let offset = offset_of(&query.page);
    let rows = store::expiring_grants(
        &mut db,
        query.date,
        query.county_code.as_deref(),
        offset,
        query.page.fetch_limit(),
    )
    .await?;
    let (grants, next_page_token) = api.grant_page(&mut db, &query.page, offset, rows).await?;
    Ok(v1::ListExpiringGrantsResponse {
        grants,
        next_page_token,
    })
}

async fn recommend_refund_decision(
    api: &RefundsApi,
    call: Call,
    request: v1::RecommendRefundDecisionRequest,
) -> Result<v1::RecommendRefundDecisionResponse, ApiError> {
    let command = Recommend::try_from(request)?;
    let applied = change::apply::<Claim, _>(&api.db, &command.claim_id, |claim, now| {
        claim.recommend(&call.caller, &command, now)
    })
    .await?;
    Ok(v1::RecommendRefundDecisionResponse {
        claim: Some(applied.record.to_wire()),
    })
}

async fn decide_refund_claim(
    api: &RefundsApi,
    call: Call,
    request: v1::DecideRefundClaimRequest,
) -> Result<v1::DecideRefundClaimResponse, ApiError> {
    let command = Decide::try_from(request)?;
    let grace_days = api.rules.late_claim_grace_days;
    let applied = change::apply::<Claim, _>(&api.db, &command.claim_id, |claim, now| {
        claim.decide(&call.caller, &command, grace_days, now)
    })
    .await?;
    let claim = applied.record;
    let approved = claim.row.status == ClaimStatus::Approved;
    if !applied.changed {
        return Ok(v1::DecideRefundClaimResponse {
            claim: Some(claim.to_wire()),
        });
    }
    tracing::info!(claim_id = %claim.row.claim_id, verdict = command.verdict.as_str_name(), approved, "refund claim decided");
    let claim = if approved {
        api.pay_and_reload(claim.row).await?
    } else {
        claim.to_wire()
    };
    Ok(v1::DecideRefundClaimResponse { claim: Some(claim) })
}

async fn extend_refund_deadline(
    api: &RefundsApi,
    call: Call,
    request: v1::ExtendRefundDeadlineRequest,
) -> Result<v1::ExtendRefundDeadlineResponse, ApiError> {
    let command = Extend::try_from(request)?;
    let rules = &api.rules;
    let applied = change::apply::<Grant, _>(&api.db, &command.grant_id, |grant, now| {
        grant.extend_deadline(
            &call.caller,
            &command,
            rules.max_deadline_extension_days,
            now,
        )
    })
    .await?;
    Ok(v1::ExtendRefundDeadlineResponse {
        grant: Some(applied.record.to_wire(rules.late_claim_grace_days)),
    })
}

async fn record_payment_outcome(
    api: &RefundsApi,
    call: Call,
    request: v1::RecordPaymentOutcomeRequest,
) -> Result<v1::RecordPaymentOutcomeResponse, ApiError> {
    let command = RecordOutcome::try_from(request)?;
    let applied = change::apply::<Claim, _>(&api.db, &command.claim_id, |claim, now| {
        claim.record_outcome(&call.caller, &command, now)
    })
    .await?;
    if applied.changed {
        log_outcome(&applied.record.row);
    }
    Ok(v1::RecordPaymentOutcomeResponse {
        claim: Some(applied.record.to_wire()),
    })
}

/// Starts the next payment attempt and hands it over.
async fn retry_payment(
    api: &RefundsApi,
    call: Call,
    request: v1::RetryPaymentRequest,
) -> Result<v1::RetryPaymentResponse, ApiError> {
    let command = Retry::try_from(request)?;
    let applied = change::apply::<Claim, _>(&api.db, &command.claim_id, |claim, _| {
        claim.retry_payment(&call.caller)
    })
    .await?;
    Ok(v1::RetryPaymentResponse {
        claim: Some(api.pay_and_reload(applied.record.row).await?),
    })
}

async fn list_audit_entries(
    api: &RefundsApi,
    call: Call,
    request: v1::ListAuditEntriesRequest,
) -> Result<v1::ListAuditEntriesResponse, ApiError> {
    audit::list_audit_entries(&api.db, &call.caller, &request).await
}
