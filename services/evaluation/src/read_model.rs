//! The evaluation's event handlers: each event of a domain topic that carries a figure is turned
//! into one [`Fact`] about its case and stored once (docs/adr/0033). Nothing is decided here and
//! nothing depends on what arrived before, so events may come in any order across topics and
//! twice; the figures are folded from the facts when a table is asked for (`fold`).
//!
//! What an event carries that the evaluation must not keep is dropped here: organisation
//! numbers, pseudonyms, names, amounts of no figure. Ids of cases, applications, grants, claims,
//! orders and invoices are kept only as keyed fingerprints ([`CaseKey`]); agreements by their
//! registry id.

use ekb_domain::oslo_date;
use ekb_platform::messaging::{EventFields, HandlerError, UnitOfWork, parts::AgreementState};
use ekb_proto::{
    events::CarriesAgreement,
    v1::{self, EventEnvelope},
};
use prost::Name;

use crate::{
    fingerprint::CaseKey,
    store::{self, AgreementRow, Fact, kind},
};

/// The state the consumer's handlers share: the fingerprint key.
#[derive(Debug, Clone)]
pub struct EvaluationEvents {
    key: CaseKey,
}

impl EvaluationEvents {
    /// Handlers that fingerprint ids under `key`.
    pub fn new(key: CaseKey) -> Self {
        EvaluationEvents { key }
    }

    /// A fact of `kind` about the case `case_id` names, its subject the fingerprint of `id` (a
    /// `what`: grant, order…); `id` empty for a fact a case has once.
    fn fact(
        &self,
        fields: EventFields,
        case_id: &str,
        kind: &str,
        what: &str,
        id: &str,
    ) -> Result<Fact, HandlerError> {
        let case = fields.uuid("case_id", case_id)?;
        let subject = if id.is_empty() {
            String::new()
        } else {
            self.key.of(what, id)
        };
        Ok(Fact::new(self.key.case(&case.to_string()), kind, subject))
    }
}

/// The value name of a contract enum, e.g. `FLOW_PILOT`; an unknown value is a permanent error.
fn code<E>(fields: EventFields, field: &str, value: i32) -> Result<String, HandlerError>
where
    E: TryFrom<i32> + Copy + Into<CodeName>,
{
    let known: E = fields.enumeration(field, value)?;
    Ok(known.into().0.to_owned())
}

/// A contract enum's value name.
struct CodeName(&'static str);

macro_rules! code_names {
    ($($enum:ty),+ $(,)?) => {
        $(impl From<$enum> for CodeName {
            fn from(value: $enum) -> Self {
                CodeName(value.as_str_name())
            }
        })+
    };
}

code_names!(
    v1::Flow,
    v1::RoutingReason,
    v1::FlowChangeReason,
    v1::FlowChangeSource,
    v1::ApplicationRejectionReason,
    v1::OrderCancellationReason,
    v1::InvoiceRejectionReason,
);

async fn record(work: &mut UnitOfWork, fact: Fact) -> Result<(), HandlerError> {
    store::record(work.db(), &fact).await?;
    Ok(())
}

ekb_platform::handle_with!(EvaluationEvents, case_routed: v1::CaseRouted);
ekb_platform::handle_with!(EvaluationEvents, flow_changed: v1::CaseFlowChanged);
ekb_platform::handle_with!(EvaluationEvents, application_submitted: v1::ApplicationSubmitted);
ekb_platform::handle_with!(EvaluationEvents, grant_requested: v1::GrantRequested);
ekb_platform::handle_with!(EvaluationEvents, grant_approved: v1::GrantApproved);
ekb_platform::handle_with!(EvaluationEvents, application_rejected: v1::ApplicationRejected);
ekb_platform::handle_with!(EvaluationEvents, application_withdrawn: v1::ApplicationWithdrawn);
ekb_platform::handle_with!(EvaluationEvents, cancellation_requested: v1::GrantCancellationRequested);
ekb_platform::handle_with!(EvaluationEvents, grant_cancelled: v1::GrantCancelled);
ekb_platform::handle_with!(EvaluationEvents, claim_submitted: v1::RefundClaimSubmitted);
ekb_platform::handle_with!(EvaluationEvents, refund_approved: v1::RefundApproved);
ekb_platform::handle_with!(EvaluationEvents, refund_rejected: v1::RefundRejected);
ekb_platform::handle_with!(EvaluationEvents, grant_expired: v1::GrantExpired);
ekb_platform::handle_with!(EvaluationEvents, deadline_extended: v1::RefundDeadlineExtended);
ekb_platform::handle_with!(EvaluationEvents, payment_completed: v1::PaymentCompleted);
ekb_platform::handle_with!(EvaluationEvents, payment_failed: v1::PaymentFailed);
ekb_platform::handle_with!(EvaluationEvents, order_requested: v1::OrderRequested);
ekb_platform::handle_with!(EvaluationEvents, order_placed: v1::OrderPlaced);
ekb_platform::handle_with!(EvaluationEvents, order_accepted: v1::OrderAccepted);
ekb_platform::handle_with!(EvaluationEvents, order_declined: v1::OrderDeclined);
ekb_platform::handle_with!(EvaluationEvents, order_started: v1::OrderStarted);
ekb_platform::handle_with!(EvaluationEvents, order_completed: v1::OrderCompleted);
ekb_platform::handle_with!(EvaluationEvents, order_cancelled: v1::OrderCancelled);
ekb_platform::handle_with!(EvaluationEvents, order_aborted: v1::OrderAborted);
ekb_platform::handle_with!(EvaluationEvents, invoice_approved: v1::InvoiceApproved);
ekb_platform::handle_with!(EvaluationEvents, invoice_rejected: v1::InvoiceRejected);
ekb_platform::handle_with!(EvaluationEvents, funds_disbursed: v1::FundsDisbursed);
ekb_platform::handle_with!(EvaluationEvents, funds_released: v1::FundsReleased);
ekb_platform::handle_with!(
    EvaluationEvents,
    agreement: v1::AgreementActivated,
    v1::AgreementUpdated,
    v1::AgreementEnded,
);

impl EvaluationEvents {
    async fn case_routed(
        &self,
        work: &mut UnitOfWork,
        event: &v1::CaseRouted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            county_code: fields
                .county("county_code", &event.county_code)?
                .as_str()
                .to_owned(),
            code: code::<v1::Flow>(fields, "flow", event.flow)?,
            detail: code::<v1::RoutingReason>(fields, "reason", event.reason)?,
            on_date: Some(oslo_date(
                fields.instant("opened_at", event.opened_at.as_ref())?,
            )),
            ..self.fact(fields, &event.case_id, kind::CASE_ROUTED, "", "")?
        };
        record(work, fact).await
    }

    async fn flow_changed(
        &self,
        work: &mut UnitOfWork,
        event: &v1::CaseFlowChanged,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let mut fact = Fact {
            code: code::<v1::FlowChangeReason>(fields, "reason", event.reason)?,
            detail: code::<v1::FlowChangeSource>(fields, "source", event.source)?,
            on_date: Some(oslo_date(
                fields.instant("changed_at", event.changed_at.as_ref())?,
            )),
            ..self.fact(fields, &event.case_id, kind::FLOW_CHANGED, "", "")?
        };
        // The sequence is the change's key on its case, and orders the changes.
        fact.subject = event.sequence.max(1).to_string();
        record(work, fact).await
    }

    async fn application_submitted(
        &self,
        work: &mut UnitOfWork,
        event: &v1::ApplicationSubmitted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            on_date: Some(fields.date("submitted_date", &event.submitted_date)?),
            ..self.fact(
                fields,
                &event.case_id,
                kind::APPLICATION_SUBMITTED,
                "application",
                &event.application_id,
            )?
        };
        record(work, fact).await
    }

    async fn grant_requested(
        &self,
        work: &mut UnitOfWork,
        event: &v1::GrantRequested,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            parent: self.key.of("application", &event.application_id),
            on_date: Some(oslo_date(
                fields.instant("requested_at", event.requested_at.as_ref())?,
            )),
            amount_ore: Some(event.amount_ore),
            ..self.fact(
                fields,
                &event.case_id,
                kind::GRANT_REQUESTED,
                "grant",
                &event.grant_id,
            )?
        };
        record(work, fact).await
    }

    async fn grant_approved(
        &self,
        work: &mut UnitOfWork,
        event: &v1::GrantApproved,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            on_date: Some(fields.date("decision_date", &event.decision_date)?),
            amount_ore: Some(
                fields
                    .case_amount("granted_amount_ore", event.granted_amount_ore)?
                    .ore(),
            ),
            limit_ore: (event.max_rate_ore > 0).then_some(event.max_rate_ore),
            ..self.fact(
                fields,
                &event.case_id,
                kind::GRANT_APPROVED,
                "grant",
                &event.grant_id,
            )?
        };
        record(work, fact).await
    }

    async fn application_rejected(
        &self,
        work: &mut UnitOfWork,
        event: &v1::ApplicationRejected,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            code: code::<v1::ApplicationRejectionReason>(fields, "reason", event.reason)?,
            on_date: Some(oslo_date(
                fields.instant("rejected_at", event.rejected_at.as_ref())?,
            )),
            ..self.fact(
                fields,
                &event.case_id,
                kind::APPLICATION_REJECTED,
                "application",
                &event.application_id,
            )?
        };
        record(work, fact).await
    }

    async fn application_withdrawn(
        &self,
        work: &mut UnitOfWork,
        event: &v1::ApplicationWithdrawn,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = self.fact(
            fields,
            &event.case_id,
            kind::APPLICATION_WITHDRAWN,
            "application",
            &event.application_id,
        )?;
        record(work, fact).await
    }

    async fn cancellation_requested(
        &self,
        work: &mut UnitOfWork,
        event: &v1::GrantCancellationRequested,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        // A repeat of the request carries the same `requested_at`: grant and time identify it.
        let at = fields.instant("requested_at", event.requested_at.as_ref())?;
        let request = format!("{}@{}", event.grant_id, at.unix_timestamp_nanos());
        let fact = Fact {
            flag: event.requested_by_employer,
            ..self.fact(
                fields,
                &event.case_id,
                kind::CANCELLATION_REQUESTED,
                "cancellation",
                &request,
            )?
        };
        record(work, fact).await
    }

    async fn grant_cancelled(
        &self,
        work: &mut UnitOfWork,
        event: &v1::GrantCancelled,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            flag: event.requested_by_employer,
            ..self.fact(
                fields,
                &event.case_id,
                kind::GRANT_CANCELLED,
                "grant",
                &event.grant_id,
            )?
        };
        record(work, fact).await
    }

    async fn claim_submitted(
        &self,
        work: &mut UnitOfWork,
        event: &v1::RefundClaimSubmitted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            on_date: Some(fields.date("submitted_date", &event.submitted_date)?),
            second_date: Some(fields.date("assistance_start_date", &event.assistance_start_date)?),
            flag: event.late,
            ..self.fact(
                fields,
                &event.case_id,
                kind::CLAIM_SUBMITTED,
                "claim",
                &event.claim_id,
            )?
        };
        record(work, fact).await
    }

    async fn refund_approved(
        &self,
        work: &mut UnitOfWork,
        event: &v1::RefundApproved,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            on_date: Some(oslo_date(
                fields.instant("approved_at", event.approved_at.as_ref())?,
            )),
            ..self.fact(
                fields,
                &event.case_id,
                kind::REFUND_APPROVED,
                "claim",
                &event.claim_id,
            )?
        };
        record(work, fact).await
    }

    async fn refund_rejected(
        &self,
        work: &mut UnitOfWork,
        event: &v1::RefundRejected,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = self.fact(
            fields,
            &event.case_id,
            kind::REFUND_REJECTED,
            "claim",
            &event.claim_id,
        )?;
        record(work, fact).await
    }

    async fn grant_expired(
        &self,
        work: &mut UnitOfWork,
        event: &v1::GrantExpired,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = self.fact(
            fields,
            &event.case_id,
            kind::GRANT_EXPIRED,
            "grant",
            &event.grant_id,
        )?;
        record(work, fact).await
    }

    async fn deadline_extended(
        &self,
        work: &mut UnitOfWork,
        event: &v1::RefundDeadlineExtended,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let extension = format!("{}@{}", event.grant_id, event.new_deadline_date);
        let fact = self.fact(
            fields,
            &event.case_id,
            kind::DEADLINE_EXTENDED,
            "extension",
            &extension,
        )?;
        record(work, fact).await
    }

    async fn payment_completed(
        &self,
        work: &mut UnitOfWork,
        event: &v1::PaymentCompleted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        self.payment_attempt(work, fields, &event.case_id, &event.claim_id, event.attempt)
            .await?;
        let fact = self.fact(
            fields,
            &event.case_id,
            kind::REFUND_PAID,
            "claim",
            &event.claim_id,
        )?;
        record(work, fact).await
    }

    async fn payment_failed(
        &self,
        work: &mut UnitOfWork,
        event: &v1::PaymentFailed,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        self.payment_attempt(work, fields, &event.case_id, &event.claim_id, event.attempt)
            .await
    }

    /// An attempt after the first was started by a caseworker (RetryPayment).
    async fn payment_attempt(
        &self,
        work: &mut UnitOfWork,
        fields: EventFields,
        case_id: &str,
        claim_id: &str,
        attempt: i32,
    ) -> Result<(), HandlerError> {
        if attempt < 2 {
            return Ok(());
        }
        let retry = format!("{claim_id}#{attempt}");
        let fact = self.fact(fields, case_id, kind::PAYMENT_RETRIED, "payment", &retry)?;
        record(work, fact).await
    }

    async fn order_requested(
        &self,
        work: &mut UnitOfWork,
        event: &v1::OrderRequested,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            // A follow-up order is placed by the service; the first by a caseworker.
            flag: !event.previous_order_id.is_empty(),
            ..self.fact(
                fields,
                &event.case_id,
                kind::ORDER_REQUESTED,
                "order",
                &event.order_id,
            )?
        };
        record(work, fact).await
    }

    async fn order_placed(
        &self,
        work: &mut UnitOfWork,
        event: &v1::OrderPlaced,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            on_date: Some(oslo_date(
                fields.instant("placed_at", event.placed_at.as_ref())?,
            )),
            amount_ore: Some(fields.case_amount("amount_ore", event.amount_ore)?.ore()),
            ..self.fact(
                fields,
                &event.case_id,
                kind::ORDER_PLACED,
                "order",
                &event.order_id,
            )?
        };
        record(work, fact).await
    }

    async fn order_accepted(
        &self,
        work: &mut UnitOfWork,
        event: &v1::OrderAccepted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            on_date: Some(fields.date("accepted_date", &event.accepted_date)?),
            agreement_id: Some(fields.uuid("agreement_id", &event.agreement_id)?),
            ..self.fact(
                fields,
                &event.case_id,
                kind::ORDER_ACCEPTED,
                "order",
                &event.order_id,
            )?
        };
        record(work, fact).await
    }

    async fn order_declined(
        &self,
        work: &mut UnitOfWork,
        event: &v1::OrderDeclined,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = self.fact(
            fields,
            &event.case_id,
            kind::ORDER_DECLINED,
            "order",
            &event.order_id,
        )?;
        record(work, fact).await
    }

    async fn order_started(
        &self,
        work: &mut UnitOfWork,
        event: &v1::OrderStarted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            on_date: Some(fields.date("started_date", &event.started_date)?),
            ..self.fact(
                fields,
                &event.case_id,
                kind::ORDER_STARTED,
                "order",
                &event.order_id,
            )?
        };
        record(work, fact).await
    }

    async fn order_completed(
        &self,
        work: &mut UnitOfWork,
        event: &v1::OrderCompleted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            on_date: Some(fields.date("completed_date", &event.completed_date)?),
            ..self.fact(
                fields,
                &event.case_id,
                kind::ORDER_COMPLETED,
                "order",
                &event.order_id,
            )?
        };
        record(work, fact).await
    }

    async fn order_cancelled(
        &self,
        work: &mut UnitOfWork,
        event: &v1::OrderCancelled,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            code: code::<v1::OrderCancellationReason>(fields, "reason", event.reason)?,
            ..self.fact(
                fields,
                &event.case_id,
                kind::ORDER_CANCELLED,
                "order",
                &event.order_id,
            )?
        };
        record(work, fact).await
    }

    async fn order_aborted(
        &self,
        work: &mut UnitOfWork,
        event: &v1::OrderAborted,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = self.fact(
            fields,
            &event.case_id,
            kind::ORDER_ABORTED,
            "order",
            &event.order_id,
        )?;
        record(work, fact).await
    }

    async fn invoice_approved(
        &self,
        work: &mut UnitOfWork,
        event: &v1::InvoiceApproved,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = self.fact(
            fields,
            &event.case_id,
            kind::INVOICE_APPROVED,
            "invoice",
            &event.invoice_id,
        )?;
        record(work, fact).await
    }

    async fn invoice_rejected(
        &self,
        work: &mut UnitOfWork,
        event: &v1::InvoiceRejected,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let fact = Fact {
            code: code::<v1::InvoiceRejectionReason>(fields, "reason", event.reason)?,
            ..self.fact(
                fields,
                &event.case_id,
                kind::INVOICE_REJECTED,
                "invoice",
                &event.invoice_id,
            )?
        };
        record(work, fact).await
    }

    async fn funds_disbursed(
        &self,
        work: &mut UnitOfWork,
        event: &v1::FundsDisbursed,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        let source = fields.required("source", event.source.as_ref())?;
        // One disbursement per reservation and paid claim or invoice.
        let disbursement = format!("{}/{}", event.reservation_id, source.source_id);
        let fact = Fact {
            amount_ore: Some(fields.case_amount("amount_ore", event.amount_ore)?.ore()),
            ..self.fact(
                fields,
                &event.case_id,
                kind::DISBURSED,
                "disbursement",
                &disbursement,
            )?
        };
        record(work, fact).await
    }

    async fn funds_released(
        &self,
        work: &mut UnitOfWork,
        event: &v1::FundsReleased,
        envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fields = EventFields::of(event);
        // Budget publishes each release once; its event id (the same on every redelivery and
        // in a rebuild) tells two releases of one reservation apart.
        let release = format!("{}/{}", event.reservation_id, envelope.event_id);
        let fact = Fact {
            amount_ore: Some(fields.case_amount("amount_ore", event.amount_ore)?.ore()),
            ..self.fact(fields, &event.case_id, kind::RELEASED, "release", &release)?
        };
        record(work, fact).await
    }

    /// Applies the agreement state any of the registry's agreement events carries.
    async fn agreement<E: CarriesAgreement + Name>(
        &self,
        work: &mut UnitOfWork,
        event: &E,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let agreement = AgreementState::read(event)?;
        let covered = agreement.covered();
        let row = AgreementRow {
            agreement_id: agreement.agreement_id,
            county_code: agreement.county.as_str().to_owned(),
            monthly_capacity: agreement.monthly_capacity,
            covered_from: agreement.valid_from,
            covered_to: covered.map(|range| range.to()),
            version: agreement.version,
        };
        store::upsert_agreement(work.db(), &row).await?;
        Ok(())
    }
}
