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
use ekb_platform::messaging::{
    EventFields, HandlerError, Handles, UnitOfWork, parts::AgreementState,
};
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

/// What one event says about its case: the [`Fact`] it is stored as, read from the event's
/// fields (`fields` names them in errors) and fingerprinted under `facts`' key. An event type
/// implements only this; the one [`Handles`] below records the fact for all of them.
trait IntoFact: Name + Send + 'static {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError>;
}

/// Every event type with an [`IntoFact`]: its fact, stored once. The payment and agreement
/// events and `FundsReleased` do not implement it and keep their own handlers (below).
impl<E: IntoFact> Handles<E> for EvaluationEvents {
    async fn handle(
        &self,
        work: &mut UnitOfWork,
        event: E,
        _envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let fact = event.fact(self, EventFields::of(&event))?;
        record(work, fact).await
    }
}

// Routing: the flow a case opened in, and each change of it.
impl IntoFact for v1::CaseRouted {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            county_code: fields
                .county("county_code", &self.county_code)?
                .as_str()
                .to_owned(),
            code: code::<v1::Flow>(fields, "flow", self.flow)?,
            detail: code::<v1::RoutingReason>(fields, "reason", self.reason)?,
            on_date: Some(oslo_date(
                fields.instant("opened_at", self.opened_at.as_ref())?,
            )),
            ..facts.fact(fields, &self.case_id, kind::CASE_ROUTED, "", "")?
        })
    }
}

impl IntoFact for v1::CaseFlowChanged {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        let mut fact = Fact {
            code: code::<v1::FlowChangeReason>(fields, "reason", self.reason)?,
            detail: code::<v1::FlowChangeSource>(fields, "source", self.source)?,
            on_date: Some(oslo_date(
                fields.instant("changed_at", self.changed_at.as_ref())?,
            )),
            ..facts.fact(fields, &self.case_id, kind::FLOW_CHANGED, "", "")?
        };
        // The sequence is the change's key on its case, and orders the changes.
        fact.subject = self.sequence.max(1).to_string();
        Ok(fact)
    }
}

// Applications and grants.
impl IntoFact for v1::ApplicationSubmitted {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            on_date: Some(fields.date("submitted_date", &self.submitted_date)?),
            ..facts.fact(
                fields,
                &self.case_id,
                kind::APPLICATION_SUBMITTED,
                "application",
                &self.application_id,
            )?
        })
    }
}

impl IntoFact for v1::GrantRequested {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            parent: facts.key.of("application", &self.application_id),
            on_date: Some(oslo_date(
                fields.instant("requested_at", self.requested_at.as_ref())?,
            )),
            amount_ore: Some(self.amount_ore),
            ..facts.fact(
                fields,
                &self.case_id,
                kind::GRANT_REQUESTED,
                "grant",
                &self.grant_id,
            )?
        })
    }
}

impl IntoFact for v1::GrantApproved {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            on_date: Some(fields.date("decision_date", &self.decision_date)?),
            amount_ore: Some(
                fields
                    .case_amount("granted_amount_ore", self.granted_amount_ore)?
                    .ore(),
            ),
            limit_ore: (self.max_rate_ore > 0).then_some(self.max_rate_ore),
            ..facts.fact(
                fields,
                &self.case_id,
                kind::GRANT_APPROVED,
                "grant",
                &self.grant_id,
            )?
        })
    }
}

impl IntoFact for v1::ApplicationRejected {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            code: code::<v1::ApplicationRejectionReason>(fields, "reason", self.reason)?,
            on_date: Some(oslo_date(
                fields.instant("rejected_at", self.rejected_at.as_ref())?,
            )),
            ..facts.fact(
                fields,
                &self.case_id,
                kind::APPLICATION_REJECTED,
                "application",
                &self.application_id,
            )?
        })
    }
}

impl IntoFact for v1::GrantCancellationRequested {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        // A repeat of the request carries the same `requested_at`: grant and time identify it.
        let at = fields.instant("requested_at", self.requested_at.as_ref())?;
        let request = format!("{}@{}", self.grant_id, at.unix_timestamp_nanos());
        Ok(Fact {
            flag: self.requested_by_employer,
            ..facts.fact(
                fields,
                &self.case_id,
                kind::CANCELLATION_REQUESTED,
                "cancellation",
                &request,
            )?
        })
    }
}

impl IntoFact for v1::GrantCancelled {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            flag: self.requested_by_employer,
            ..facts.fact(
                fields,
                &self.case_id,
                kind::GRANT_CANCELLED,
                "grant",
                &self.grant_id,
            )?
        })
    }
}

// Refund claims and their deadlines.
impl IntoFact for v1::RefundClaimSubmitted {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            on_date: Some(fields.date("submitted_date", &self.submitted_date)?),
            second_date: Some(fields.date("assistance_start_date", &self.assistance_start_date)?),
            flag: self.late,
            ..facts.fact(
                fields,
                &self.case_id,
                kind::CLAIM_SUBMITTED,
                "claim",
                &self.claim_id,
            )?
        })
    }
}

impl IntoFact for v1::RefundApproved {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            on_date: Some(oslo_date(
                fields.instant("approved_at", self.approved_at.as_ref())?,
            )),
            ..facts.fact(
                fields,
                &self.case_id,
                kind::REFUND_APPROVED,
                "claim",
                &self.claim_id,
            )?
        })
    }
}

impl IntoFact for v1::RefundDeadlineExtended {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        let extension = format!("{}@{}", self.grant_id, self.new_deadline_date);
        facts.fact(
            fields,
            &self.case_id,
            kind::DEADLINE_EXTENDED,
            "extension",
            &extension,
        )
    }
}

// Orders.
impl IntoFact for v1::OrderRequested {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            // A follow-up order is placed by the service; the first by a caseworker.
            flag: !self.previous_order_id.is_empty(),
            ..facts.fact(
                fields,
                &self.case_id,
                kind::ORDER_REQUESTED,
                "order",
                &self.order_id,
            )?
        })
    }
}

impl IntoFact for v1::OrderPlaced {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            on_date: Some(oslo_date(
                fields.instant("placed_at", self.placed_at.as_ref())?,
            )),
            amount_ore: Some(fields.case_amount("amount_ore", self.amount_ore)?.ore()),
            ..facts.fact(
                fields,
                &self.case_id,
                kind::ORDER_PLACED,
                "order",
                &self.order_id,
            )?
        })
    }
}

impl IntoFact for v1::OrderAccepted {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            on_date: Some(fields.date("accepted_date", &self.accepted_date)?),
            agreement_id: Some(fields.uuid("agreement_id", &self.agreement_id)?),
            ..facts.fact(
                fields,
                &self.case_id,
                kind::ORDER_ACCEPTED,
                "order",
                &self.order_id,
            )?
        })
    }
}

impl IntoFact for v1::OrderStarted {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            on_date: Some(fields.date("started_date", &self.started_date)?),
            ..facts.fact(
                fields,
                &self.case_id,
                kind::ORDER_STARTED,
                "order",
                &self.order_id,
            )?
        })
    }
}

impl IntoFact for v1::OrderCompleted {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            on_date: Some(fields.date("completed_date", &self.completed_date)?),
            ..facts.fact(
                fields,
                &self.case_id,
                kind::ORDER_COMPLETED,
                "order",
                &self.order_id,
            )?
        })
    }
}

impl IntoFact for v1::OrderCancelled {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            code: code::<v1::OrderCancellationReason>(fields, "reason", self.reason)?,
            ..facts.fact(
                fields,
                &self.case_id,
                kind::ORDER_CANCELLED,
                "order",
                &self.order_id,
            )?
        })
    }
}

// Invoices and the budget's disbursements.
impl IntoFact for v1::InvoiceRejected {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        Ok(Fact {
            code: code::<v1::InvoiceRejectionReason>(fields, "reason", self.reason)?,
            ..facts.fact(
                fields,
                &self.case_id,
                kind::INVOICE_REJECTED,
                "invoice",
                &self.invoice_id,
            )?
        })
    }
}

impl IntoFact for v1::FundsDisbursed {
    fn fact(&self, facts: &EvaluationEvents, fields: EventFields) -> Result<Fact, HandlerError> {
        let source = fields.required("source", self.source.as_ref())?;
        // One disbursement per reservation and paid claim or invoice.
        let disbursement = format!("{}/{}", self.reservation_id, source.source_id);
        Ok(Fact {
            amount_ore: Some(fields.case_amount("amount_ore", self.amount_ore)?.ore()),
            ..facts.fact(
                fields,
                &self.case_id,
                kind::DISBURSED,
                "disbursement",
                &disbursement,
            )?
        })
    }
}

/// Events whose fact is only its kind and the fingerprint of one id field:
/// `event => kind, what the id names, id field`.
macro_rules! plain_facts {
    ($($event:ty => $kind:ident, $what:literal, $id:ident;)+) => {
        $(impl IntoFact for $event {
            fn fact(
                &self,
                facts: &EvaluationEvents,
                fields: EventFields,
            ) -> Result<Fact, HandlerError> {
                facts.fact(fields, &self.case_id, kind::$kind, $what, &self.$id)
            }
        })+
    };
}

plain_facts! {
    // An application withdrawn; a grant expired.
    v1::ApplicationWithdrawn => APPLICATION_WITHDRAWN, "application", application_id;
    v1::GrantExpired => GRANT_EXPIRED, "grant", grant_id;
    // A refund claim rejected.
    v1::RefundRejected => REFUND_REJECTED, "claim", claim_id;
    // An order declined or aborted.
    v1::OrderDeclined => ORDER_DECLINED, "order", order_id;
    v1::OrderAborted => ORDER_ABORTED, "order", order_id;
    // An invoice approved.
    v1::InvoiceApproved => INVOICE_APPROVED, "invoice", invoice_id;
}

// Payments record a retry besides (or instead of) their fact, a release is keyed by its
// envelope, and the agreement events upsert agreements: their own handlers.
ekb_platform::handle_with!(EvaluationEvents, payment_completed: v1::PaymentCompleted);
ekb_platform::handle_with!(EvaluationEvents, payment_failed: v1::PaymentFailed);
ekb_platform::handle_with!(EvaluationEvents, funds_released: v1::FundsReleased);
ekb_platform::handle_with!(
    EvaluationEvents,
    agreement: v1::AgreementActivated,
    v1::AgreementUpdated,
    v1::AgreementEnded,
);

impl EvaluationEvents {
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
