//! The application events refunds applies (applications_events.proto): GrantApproved opens a
//! claimable grant; GrantCancellationRequested is accepted for an unused grant and refused
//! otherwise (refunds is the one place that knows whether a grant is used); GrantCancelled
//! confirms a cancellation. Each runs in the consumer's unit of work with the inbox row, so a
//! redelivered event is applied once; a repeat with a new event id changes nothing either.
//! Content refunds cannot use is dead-lettered with the reason.

use ekb_domain::{CountyCode, OrganisationNumber, parse_iso_date};
use ekb_platform::clock::Clock;
use ekb_platform::messaging::{HandlerError, Handles, UnitOfWork};
use ekb_proto::{
    convert::timestamp_to_wire,
    v1::{self, EventEnvelope},
};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::{
    model::{GrantRow, grant_status},
    published::subject,
    store,
    trail::{self, Entry},
};

/// What refunds' event handlers share.
#[derive(Debug, Clone)]
pub struct RefundsEvents {
    clock: std::sync::Arc<dyn Clock>,
}

impl RefundsEvents {
    /// Handlers reading the time from `clock`.
    pub fn new(clock: std::sync::Arc<dyn Clock>) -> Self {
        RefundsEvents { clock }
    }
}

fn refuse(field: &str, rule: &str) -> HandlerError {
    HandlerError::Permanent(format!("{field} {rule}"))
}

fn uuid(field: &str, text: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(text).map_err(|_| refuse(field, "must be a UUID"))
}

fn date(field: &str, text: &str) -> Result<Date, HandlerError> {
    parse_iso_date(text).map_err(|_| refuse(field, "must be a date YYYY-MM-DD"))
}

fn optional_date(field: &str, text: &str) -> Result<Option<Date>, HandlerError> {
    if text.is_empty() {
        Ok(None)
    } else {
        date(field, text).map(Some)
    }
}

/// The grant `grant_id` names, locked for the unit of work; an id refunds has no GrantApproved
/// for is refused for good.
async fn known_grant(work: &mut UnitOfWork, grant_id: &str) -> Result<GrantRow, HandlerError> {
    let grant_id = uuid("grant_id", grant_id)?;
    store::find_grant(work.db(), grant_id, true)
        .await?
        .ok_or_else(|| {
            HandlerError::Permanent(format!(
                "grant {grant_id} is unknown to refunds (no GrantApproved)"
            ))
        })
}

/// Cancels `grant` at `now` and audits it as the service's `kind` of change for `action`.
async fn cancel(
    work: &mut UnitOfWork,
    grant: &GrantRow,
    now: OffsetDateTime,
    kind: v1::AuditEntryKind,
    action: &str,
) -> Result<(), HandlerError> {
    store::set_grant_status(
        work.db(),
        grant.grant_id,
        grant_status::CANCELLED,
        Some(now),
    )
    .await?;
    let at = work.now();
    trail::by_service(work.db(), Entry::of_grant(grant, kind, action), at).await?;
    Ok(())
}

fn instant(at: Option<&prost_types::Timestamp>) -> Option<OffsetDateTime> {
    at.and_then(|at| {
        OffsetDateTime::from_unix_timestamp(at.seconds)
            .ok()
            .map(|time| time + time::Duration::nanoseconds(i64::from(at.nanos)))
    })
}

/// The grant GrantApproved describes, checked.
pub fn grant_from_event(event: &v1::GrantApproved) -> Result<GrantRow, HandlerError> {
    let organisation =
        OrganisationNumber::parse(&event.employer_organisation_number).map_err(|_| {
            refuse(
                "employer_organisation_number",
                "must be an organisation number",
            )
        })?;
    let county = CountyCode::parse(&event.county_code)
        .map_err(|_| refuse("county_code", "must be a county code"))?;
    if let Err(error) = ekb_domain::Money::from_ore(event.granted_amount_ore).require_case_amount()
    {
        return Err(refuse("granted_amount_ore", &error.to_string()));
    }
    let granted_at =
        instant(event.granted_at.as_ref()).ok_or_else(|| refuse("granted_at", "is required"))?;
    let competence_area = v1::CompetenceArea::try_from(event.competence_area)
        .unwrap_or_default()
        .as_str_name()
        .to_owned();
    let deadline = date("refund_deadline_date", &event.refund_deadline_date)?;
    Ok(GrantRow {
        grant_id: uuid("grant_id", &event.grant_id)?,
        application_id: uuid("application_id", &event.application_id)?,
        case_id: uuid("case_id", &event.case_id)?,
        employer_organisation_number: organisation.as_str().to_owned(),
        county_code: county.to_string(),
        employee_pseudonym: event.employee_pseudonym.clone(),
        granted_amount_ore: event.granted_amount_ore,
        grant_date: date("grant_date", &event.grant_date)?,
        application_submitted_date: optional_date("submitted_date", &event.submitted_date)?,
        planned_start_date: optional_date("planned_start_date", &event.planned_start_date)?,
        case_opened_date: optional_date("case_opened_date", &event.case_opened_date)?,
        original_deadline: deadline,
        refund_deadline: deadline,
        granted_at,
        competence_area,
        expert: event
            .expert
            .as_ref()
            .map(prost::Message::encode_to_vec)
            .unwrap_or_default(),
        status: grant_status::ACTIVE.to_owned(),
        expired_at: None,
        cancelled_at: None,
        had_rejected_claim: false,
        ended_at: None,
    })
}

impl Handles<v1::GrantApproved> for RefundsEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::GrantApproved,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let grant = grant_from_event(&event)?;
        if store::insert_grant(work.db(), &grant).await? {
            let entry = Entry::of_grant(&grant, v1::AuditEntryKind::Change, "GrantApproved");
            let now = work.now();
            trail::by_service(work.db(), entry, now).await?;
            tracing::info!(grant_id = %grant.grant_id, "grant open for refund claims");
        }
        Ok(())
    }
}

impl Handles<v1::GrantCancellationRequested> for RefundsEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::GrantCancellationRequested,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let grant = known_grant(work, &event.grant_id).await?;
        let grant_id = grant.grant_id;
        let now = self.clock.now();
        let event_subject = subject(grant.case_id, grant.grant_id);
        let refusal = match grant.status() {
            v1::ClaimableGrantStatus::Active | v1::ClaimableGrantStatus::Cancelled => None,
            v1::ClaimableGrantStatus::ClaimPending => {
                Some(v1::GrantCancellationRefusalReason::ClaimPending)
            }
            v1::ClaimableGrantStatus::Settled => {
                Some(v1::GrantCancellationRefusalReason::GrantSettled)
            }
            v1::ClaimableGrantStatus::Expired => {
                Some(v1::GrantCancellationRefusalReason::GrantExpired)
            }
            v1::ClaimableGrantStatus::Unspecified => {
                return Err(HandlerError::Permanent(format!(
                    "grant {grant_id} has an unknown status"
                )));
            }
        };
        match refusal {
            None => {
                if grant.status() == v1::ClaimableGrantStatus::Active {
                    cancel(
                        work,
                        &grant,
                        now,
                        v1::AuditEntryKind::Decision,
                        "GrantCancellationRequested",
                    )
                    .await?;
                }
                let accepted = v1::GrantCancellationAccepted {
                    grant_id: grant_id.to_string(),
                    application_id: grant.application_id.to_string(),
                    case_id: grant.case_id.to_string(),
                    county_code: grant.county_code.clone(),
                    requested_at: event.requested_at,
                    had_rejected_claim: grant.had_rejected_claim,
                    accepted_at: Some(timestamp_to_wire(grant.cancelled_at.unwrap_or(now))),
                };
                work.publish(&event_subject, &accepted).await?;
            }
            Some(reason) => {
                let refused = v1::GrantCancellationRefused {
                    grant_id: grant_id.to_string(),
                    application_id: grant.application_id.to_string(),
                    case_id: grant.case_id.to_string(),
                    county_code: grant.county_code.clone(),
                    requested_at: event.requested_at,
                    reason: reason as i32,
                    grant_status: grant.status() as i32,
                    refused_at: Some(timestamp_to_wire(now)),
                };
                work.publish(&event_subject, &refused).await?;
            }
        }
        Ok(())
    }
}

impl Handles<v1::GrantCancelled> for RefundsEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: v1::GrantCancelled,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let grant = known_grant(work, &event.grant_id).await?;
        let grant_id = grant.grant_id;
        match grant.status() {
            v1::ClaimableGrantStatus::Cancelled => Ok(()),
            v1::ClaimableGrantStatus::Active => {
                // Applications cancelled it without asking first: no claim can come any more.
                let now = self.clock.now();
                cancel(
                    work,
                    &grant,
                    now,
                    v1::AuditEntryKind::Change,
                    "GrantCancelled",
                )
                .await?;
                Ok(())
            }
            status => Err(HandlerError::Permanent(format!(
                "grant {grant_id} was cancelled in applications but is {} in refunds",
                status.as_str_name()
            ))),
        }
    }
}
