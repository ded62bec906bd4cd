//! The application events refunds applies (applications_events.proto): GrantApproved opens a
//! claimable grant; GrantCancellationRequested is accepted for an unused grant and refused
//! otherwise (refunds is the one place that knows whether a grant is used); GrantCancelled
//! confirms a cancellation. The cancellation rules are [`Grant`]'s decisions, applied with
//! `change::apply_in` in the consumer's unit of work with the inbox row, so a redelivered event
//! is applied once; a repeat with a new event id changes nothing either. Content refunds cannot
//! use is dead-lettered with the reason ([`EventFields`] names the event, field and rule).

use ekb_domain::OrganisationNumber;
use ekb_platform::{
    change,
    messaging::{EventFields, HandlerError, Handles, UnitOfWork},
};
use ekb_proto::{
    convert::competence_area_from_wire,
    v1::{self, EventEnvelope},
};
use sqlx::types::Text;

use crate::{
    codes::GrantStatus,
    grant::Grant,
    model::GrantRow,
    store,
    trail::{self, Entry},
};

/// Refunds' event handlers (they share nothing: the time is the unit of work's).
#[derive(Debug, Clone, Copy, Default)]
pub struct RefundsEvents;

/// The grant GrantApproved describes, checked.
pub fn grant_from_event(event: &v1::GrantApproved) -> Result<GrantRow, HandlerError> {
    let fields = EventFields::of(event);
    let organisation =
        OrganisationNumber::parse(&event.employer_organisation_number).map_err(|_| {
            fields.refuse(
                "employer_organisation_number",
                "must be an organisation number",
            )
        })?;
    let county = fields.county("county_code", &event.county_code)?;
    let granted = fields.case_amount("granted_amount_ore", event.granted_amount_ore)?;
    let granted_at = fields.instant("granted_at", event.granted_at.as_ref())?;
    let competence_area = competence_area_from_wire(event.competence_area)
        .ok()
        .map(Text);
    let deadline = fields.date("refund_deadline_date", &event.refund_deadline_date)?;
    Ok(GrantRow {
        grant_id: fields.uuid("grant_id", &event.grant_id)?,
        application_id: fields.uuid("application_id", &event.application_id)?,
        case_id: fields.uuid("case_id", &event.case_id)?,
        employer_organisation_number: organisation.as_str().to_owned(),
        county_code: county.to_string(),
        employee_pseudonym: event.employee_pseudonym.clone(),
        granted_amount_ore: granted.ore(),
        grant_date: fields.date("grant_date", &event.grant_date)?,
        application_submitted_date: fields
            .optional_date("submitted_date", &event.submitted_date)?,
        planned_start_date: fields
            .optional_date("planned_start_date", &event.planned_start_date)?,
        case_opened_date: fields.optional_date("case_opened_date", &event.case_opened_date)?,
        original_deadline: deadline,
        refund_deadline: deadline,
        granted_at,
        competence_area,
        expert: event
            .expert
            .as_ref()
            .map(prost::Message::encode_to_vec)
            .unwrap_or_default(),
        status: GrantStatus::Active,
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
        let grant_id = EventFields::of(&event).uuid("grant_id", &event.grant_id)?;
        let now = work.now();
        change::apply_in::<Grant, _>(work, now, &grant_id, |grant, now| {
            grant.answer_cancellation(event.requested_at, now)
        })
        .await?;
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
        let grant_id = EventFields::of(&event).uuid("grant_id", &event.grant_id)?;
        let now = work.now();
        change::apply_in::<Grant, _>(work, now, &grant_id, |grant, now| {
            grant.confirm_cancelled(now)
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approved() -> v1::GrantApproved {
        v1::GrantApproved {
            grant_id: uuid::Uuid::now_v7().to_string(),
            application_id: uuid::Uuid::now_v7().to_string(),
            case_id: uuid::Uuid::now_v7().to_string(),
            employer_organisation_number: "974760673".to_owned(),
            county_code: "34".to_owned(),
            granted_amount_ore: 1_000_000,
            grant_date: "2027-01-04".to_owned(),
            refund_deadline_date: "2027-06-30".to_owned(),
            granted_at: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    fn refusal(event: &v1::GrantApproved) -> String {
        match grant_from_event(event) {
            Err(HandlerError::Permanent(reason)) => reason,
            other => panic!("not a permanent refusal: {other:?}"),
        }
    }

    #[test]
    fn a_grant_approved_with_a_bad_field_is_refused_naming_event_and_field() {
        let grant = grant_from_event(&approved()).expect("a good event");
        assert_eq!(grant.status, GrantStatus::Active);
        assert_eq!(grant.competence_area, None, "UNSPECIFIED is no area");
        let area = v1::GrantApproved {
            competence_area: v1::CompetenceArea::ConflictHandling as i32,
            ..approved()
        };
        assert_eq!(
            grant_from_event(&area)
                .expect("a good event")
                .competence_area,
            Some(Text(ekb_domain::CompetenceArea::ConflictHandling))
        );
        assert_eq!(grant.original_deadline, grant.refund_deadline);
        let bad_id = v1::GrantApproved {
            grant_id: "01017012345".to_owned(),
            ..approved()
        };
        assert_eq!(refusal(&bad_id), "GrantApproved.grant_id must be a UUID");
        let no_time = v1::GrantApproved {
            granted_at: None,
            ..approved()
        };
        assert_eq!(refusal(&no_time), "GrantApproved.granted_at is required");
        let not_an_organisation = v1::GrantApproved {
            employer_organisation_number: "123".to_owned(),
            ..approved()
        };
        assert_eq!(
            refusal(&not_an_organisation),
            "GrantApproved.employer_organisation_number must be an organisation number"
        );
        let zero = v1::GrantApproved {
            granted_amount_ore: 0,
            ..approved()
        };
        assert!(refusal(&zero).starts_with("GrantApproved.granted_amount_ore "));
    }
}
