//! A PILOT case's fallback to the regular flow (ADR 0022), asked for by a caseworker
//! (SendToRegularFlow) or by pilot-ordering (PilotFallbackRequested). Either way one unit of work
//! locks the case, records the change beside it and publishes CaseFlowChanged; the case keeps its
//! id, its opened-at and its routing decision, so it is never opened or counted twice. PILOT →
//! REGULAR is the only change there is.

use ekb_domain::Flow;
use ekb_platform::{
    ApiError,
    messaging::{EventSubject, UnitOfWork},
};
use ekb_proto::{
    convert::{flow_to_wire, timestamp_to_wire},
    v1,
};
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::case_store::{self, StoredCase};

/// `changed_by` of the changes pilot-ordering asks for.
const PILOT_ORDERING: &str = "pilot-ordering";
/// The prefix of every FlowChangeReason name in the contract; stored codes go without it.
const REASON_PREFIX: &str = "FLOW_CHANGE_REASON_";
/// The prefix of every FlowChangeSource name in the contract.
const SOURCE_PREFIX: &str = "FLOW_CHANGE_SOURCE_";

/// Who changed a case's flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedBy {
    /// A caseworker, by NAV ident (the token's subject).
    Caseworker(String),
    /// Pilot-ordering, by the event id of its PilotFallbackRequested.
    PilotOrdering(Uuid),
}

impl ChangedBy {
    fn source(&self) -> v1::FlowChangeSource {
        match self {
            ChangedBy::Caseworker(_) => v1::FlowChangeSource::Caseworker,
            ChangedBy::PilotOrdering(_) => v1::FlowChangeSource::PilotOrdering,
        }
    }

    fn ident(&self) -> &str {
        match self {
            ChangedBy::Caseworker(ident) => ident,
            ChangedBy::PilotOrdering(_) => PILOT_ORDERING,
        }
    }

    fn fallback_event_id(&self) -> Option<Uuid> {
        match self {
            ChangedBy::Caseworker(_) => None,
            ChangedBy::PilotOrdering(event_id) => Some(*event_id),
        }
    }

    /// The code the source is stored under (`CASEWORKER`, `PILOT_ORDERING`).
    fn source_code(&self) -> &'static str {
        strip(self.source().as_str_name(), SOURCE_PREFIX)
    }

    /// Who a stored change names; `None` if the row is inconsistent.
    fn stored(source: &str, ident: String, fallback_event_id: Option<Uuid>) -> Option<Self> {
        let source = v1::FlowChangeSource::from_str_name(&format!("{SOURCE_PREFIX}{source}"))?;
        match (source, fallback_event_id) {
            (v1::FlowChangeSource::Caseworker, None) => Some(ChangedBy::Caseworker(ident)),
            (v1::FlowChangeSource::PilotOrdering, Some(event_id)) if ident == PILOT_ORDERING => {
                Some(ChangedBy::PilotOrdering(event_id))
            }
            _ => None,
        }
    }
}

fn strip(name: &'static str, prefix: &str) -> &'static str {
    name.strip_prefix(prefix).unwrap_or(name)
}

/// The code a reason is stored under: its contract name without the prefix
/// (`NO_SUPPLIER_AVAILABLE`).
pub fn reason_code(reason: v1::FlowChangeReason) -> &'static str {
    strip(reason.as_str_name(), REASON_PREFIX)
}

/// The reason stored under `code`; `None` for UNSPECIFIED and unknown codes.
pub fn parse_reason(code: &str) -> Option<v1::FlowChangeReason> {
    v1::FlowChangeReason::from_str_name(&format!("{REASON_PREFIX}{code}"))
        .filter(|reason| *reason != v1::FlowChangeReason::Unspecified)
}

/// One recorded change of a case's flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowChange {
    /// 1 for the case's first change.
    pub sequence: i32,
    /// The flow before.
    pub from: Flow,
    /// The flow after.
    pub to: Flow,
    /// Why.
    pub reason: v1::FlowChangeReason,
    /// Who.
    pub by: ChangedBy,
    /// The caseworker's note (never published).
    pub note: String,
    /// When it was recorded.
    pub changed_at: OffsetDateTime,
}

impl FlowChange {
    /// The contract's flow change.
    pub fn to_wire(&self) -> v1::FlowChange {
        v1::FlowChange {
            sequence: self.sequence,
            from_flow: flow_to_wire(self.from) as i32,
            to_flow: flow_to_wire(self.to) as i32,
            reason: self.reason as i32,
            source: self.by.source() as i32,
            changed_by: self.by.ident().to_owned(),
            note: self.note.clone(),
            changed_at: Some(timestamp_to_wire(self.changed_at)),
        }
    }
}

/// A request to move a case to the regular flow.
#[derive(Debug, Clone)]
pub struct ToRegularFlow {
    /// The case.
    pub case_id: Uuid,
    /// Why.
    pub reason: v1::FlowChangeReason,
    /// The caseworker's note; empty from pilot-ordering.
    pub note: String,
    /// Who asks.
    pub by: ChangedBy,
    /// When (the service clock's now).
    pub at: OffsetDateTime,
}

/// Why a case was not moved.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Routing has no such case.
    #[error("routing has no case {0}")]
    UnknownCase(Uuid),
    /// The case follows the regular flow already (routed there, or moved there before).
    #[error("case {0} follows the regular flow already")]
    AlreadyRegular(Uuid),
    /// An expert started on one of the case's pilot orders; only pilot-ordering may still move it.
    #[error("an expert started on a pilot order of case {0} on {1}")]
    ExpertStarted(Uuid, Date),
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            Refusal::UnknownCase(_) => ApiError::NotFound(message),
            Refusal::AlreadyRegular(_) => ApiError::refused("CASE_ALREADY_REGULAR", message),
            Refusal::ExpertStarted(..) => ApiError::refused("PILOT_EXPERT_STARTED", message),
        }
    }
}

/// Moves the case of `change` to the regular flow inside `work`: records the change, sets the
/// case's current flow and publishes CaseFlowChanged. Returns the case as it is now, or why
/// nothing changed (then nothing is written or published).
pub async fn to_regular(
    work: &mut UnitOfWork,
    change: &ToRegularFlow,
) -> Result<Result<StoredCase, Refusal>, ApiError> {
    let Some(mut case) = case_store::lock(work.db(), change.case_id).await? else {
        return Ok(Err(Refusal::UnknownCase(change.case_id)));
    };
    if case.current_flow == Flow::Regular {
        return Ok(Err(Refusal::AlreadyRegular(case.case_id)));
    }
    if let (ChangedBy::Caseworker(_), Some(started)) = (&change.by, case.pilot_expert_started) {
        return Ok(Err(Refusal::ExpertStarted(case.case_id, started)));
    }
    let recorded = FlowChange {
        sequence: case.flow_changes.last().map_or(1, |last| last.sequence + 1),
        from: case.current_flow,
        to: Flow::Regular,
        reason: change.reason,
        by: change.by.clone(),
        note: change.note.clone(),
        changed_at: change.at,
    };
    insert(work.db(), case.case_id, &recorded).await?;
    case_store::set_current_flow(work.db(), case.case_id, recorded.to).await?;
    case.current_flow = recorded.to;
    let event = changed_event(&case, &recorded);
    work.publish(&EventSubject::case(case.case_id.to_string()), &event)
        .await?;
    tracing::info!(
        case_id = %case.case_id,
        reason = reason_code(recorded.reason),
        changed_by = recorded.by.ident(),
        "case moved from the pilot to the regular flow"
    );
    metrics::counter!(
        "ekb_routing_flow_changes_total",
        "reason" => reason_code(recorded.reason),
        "source" => recorded.by.source_code()
    )
    .increment(1);
    case.flow_changes.push(recorded);
    Ok(Ok(case))
}

/// The CaseFlowChanged event of `change` on `case`.
fn changed_event(case: &StoredCase, change: &FlowChange) -> v1::CaseFlowChanged {
    let wire = change.to_wire();
    v1::CaseFlowChanged {
        case_id: case.case_id.to_string(),
        from_flow: wire.from_flow,
        to_flow: wire.to_flow,
        reason: wire.reason,
        source: wire.source,
        changed_by: wire.changed_by,
        sequence: wire.sequence,
        county_code: case.facts.municipality.county().as_str().to_owned(),
        employer_organisation_number: case.facts.employer.to_string(),
        opened_at: Some(timestamp_to_wire(case.opened_at)),
        changed_at: wire.changed_at,
        fallback_event_id: change
            .by
            .fallback_event_id()
            .map(|id| id.to_string())
            .unwrap_or_default(),
    }
}

async fn insert(
    connection: &mut PgConnection,
    case_id: Uuid,
    change: &FlowChange,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO case_flow_changes (case_id, sequence, from_flow, to_flow, reason, source, \
           changed_by, note, fallback_event_id, changed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(case_id)
    .bind(change.sequence)
    .bind(change.from.code())
    .bind(change.to.code())
    .bind(reason_code(change.reason))
    .bind(change.by.source_code())
    .bind(change.by.ident())
    .bind(&change.note)
    .bind(change.by.fallback_event_id())
    .bind(change.changed_at)
    .execute(connection)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    sequence: i32,
    from_flow: String,
    to_flow: String,
    reason: String,
    source: String,
    changed_by: String,
    note: String,
    fallback_event_id: Option<Uuid>,
    changed_at: OffsetDateTime,
}

/// The flow changes of `case_id`, oldest first.
pub async fn list(
    connection: &mut PgConnection,
    case_id: Uuid,
) -> Result<Vec<FlowChange>, ApiError> {
    let rows: Vec<ChangeRow> = sqlx::query_as(
        "SELECT sequence, from_flow, to_flow, reason, source, changed_by, note, \
           fallback_event_id, changed_at \
         FROM case_flow_changes WHERE case_id = $1 ORDER BY sequence",
    )
    .bind(case_id)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            let sequence = row.sequence;
            row.parse().ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!(
                    "flow change {sequence} of case {case_id} is unreadable"
                ))
            })
        })
        .collect()
}

impl ChangeRow {
    fn parse(self) -> Option<FlowChange> {
        Some(FlowChange {
            sequence: self.sequence,
            from: Flow::parse_code(&self.from_flow).ok()?,
            to: Flow::parse_code(&self.to_flow).ok()?,
            reason: parse_reason(&self.reason)?,
            by: ChangedBy::stored(&self.source, self.changed_by, self.fallback_event_id)?,
            note: self.note,
            changed_at: self.changed_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_stored_without_their_prefix_and_read_back() {
        for reason in [
            v1::FlowChangeReason::NoSupplierAvailable,
            v1::FlowChangeReason::AgreementsFull,
            v1::FlowChangeReason::AgreementEnded,
            v1::FlowChangeReason::EmployerChoseOwnExpert,
            v1::FlowChangeReason::CaseworkerDecision,
        ] {
            let code = reason_code(reason);
            assert!(!code.starts_with("FLOW_CHANGE"), "{code}");
            assert_eq!(parse_reason(code), Some(reason));
        }
        assert_eq!(
            reason_code(v1::FlowChangeReason::NoSupplierAvailable),
            "NO_SUPPLIER_AVAILABLE"
        );
        assert_eq!(parse_reason("UNSPECIFIED"), None);
        assert_eq!(parse_reason("NO_SUCH_REASON"), None);
    }

    #[test]
    fn who_changed_a_flow_survives_storage_and_inconsistent_rows_are_refused() {
        let caseworker = ChangedBy::Caseworker("Z990001".to_owned());
        let event_id = Uuid::now_v7();
        let service = ChangedBy::PilotOrdering(event_id);
        for by in [caseworker, service] {
            let stored = ChangedBy::stored(
                by.source_code(),
                by.ident().to_owned(),
                by.fallback_event_id(),
            );
            assert_eq!(stored, Some(by));
        }
        assert_eq!(
            ChangedBy::stored("CASEWORKER", "Z1".to_owned(), Some(event_id)),
            None
        );
        assert_eq!(
            ChangedBy::stored("PILOT_ORDERING", "Z1".to_owned(), Some(event_id)),
            None
        );
        assert_eq!(
            ChangedBy::stored("PILOT_ORDERING", PILOT_ORDERING.to_owned(), None),
            None
        );
        assert_eq!(ChangedBy::stored("SOMEONE", "Z1".to_owned(), None), None);
    }
}
