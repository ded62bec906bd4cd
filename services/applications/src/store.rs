//! Applications' SQL. An application is stored as one document — the contract's `Application`
//! message, prost-encoded, which never holds a fødselsnummer — beside the columns its lists,
//! jobs and the one-live-application rule need, all derived from the document on every save
//! (so they cannot drift). The fødselsnummer lives only in `fodselsnummer_sealed`, encrypted.

use ekb_platform::{
    ApiError,
    audit::{self, AuditActor, AuditEvent},
    change,
    messaging::UnitOfWork,
};
use ekb_proto::v1;
use prost::Message as _;
use sqlx::{PgConnection, Row as _};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    codes::{ApplicationStatus, Flow},
    model,
};

/// A case as routing announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The case id.
    pub case_id: Uuid,
    /// The flow routing sent it to (REGULAR or PILOT).
    pub flow: v1::Flow,
    /// County code.
    pub county_code: String,
    /// The employer.
    pub employer_organisation_number: String,
    /// When the case was opened.
    pub opened_at: OffsetDateTime,
}

/// Records (or refreshes) a case from CaseRouted at `now`; a later CaseFlowChanged's flow is
/// kept.
pub async fn upsert_routed_case(
    db: &mut PgConnection,
    case: &Case,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cases (case_id, flow, county_code, employer_organisation_number, opened_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (case_id) DO UPDATE SET \
         county_code = EXCLUDED.county_code, \
         employer_organisation_number = EXCLUDED.employer_organisation_number, \
         opened_at = EXCLUDED.opened_at, \
         flow = CASE WHEN cases.flow_sequence > 0 THEN cases.flow ELSE EXCLUDED.flow END, \
         updated_at = EXCLUDED.updated_at",
    )
    .bind(case.case_id)
    .bind(flow_code(case.flow))
    .bind(&case.county_code)
    .bind(&case.employer_organisation_number)
    .bind(case.opened_at)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Applies a flow change with `sequence` at `now` (older or repeated changes are ignored);
/// creates the case if CaseRouted has not arrived yet.
pub async fn change_flow(
    db: &mut PgConnection,
    case: &Case,
    sequence: i32,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO cases (case_id, flow, county_code, employer_organisation_number, opened_at, \
         flow_sequence, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (case_id) DO UPDATE SET flow = EXCLUDED.flow, \
         flow_sequence = EXCLUDED.flow_sequence, updated_at = EXCLUDED.updated_at \
         WHERE cases.flow_sequence < EXCLUDED.flow_sequence",
    )
    .bind(case.case_id)
    .bind(flow_code(case.flow))
    .bind(&case.county_code)
    .bind(&case.employer_organisation_number)
    .bind(case.opened_at)
    .bind(sequence)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// The `cases.flow` code of `flow` (None for UNSPECIFIED, which the column refuses).
fn flow_code(flow: v1::Flow) -> Option<&'static str> {
    Flow::from_wire(flow as i32).map(Flow::code)
}

/// The flow a `cases.flow` code names.
fn flow_of_code(code: &str) -> Result<v1::Flow, sqlx::Error> {
    Flow::parse_code(code).map(Flow::to_wire).ok_or_else(|| {
        sqlx::Error::Decode(format!("cases.flow {code:?} is not a flow code").into())
    })
}

/// The `applications.status` code of `application` (None for a document without a status,
/// which the column refuses).
fn status_code(application: &v1::Application) -> Option<&'static str> {
    ApplicationStatus::from_wire(application.status).map(ApplicationStatus::code)
}

/// The case, if it has arrived.
pub async fn find_case(db: &mut PgConnection, case_id: Uuid) -> Result<Option<Case>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT case_id, flow, county_code, employer_organisation_number, opened_at FROM cases \
         WHERE case_id = $1",
    )
    .bind(case_id)
    .fetch_optional(db)
    .await?;
    row.map(|row| {
        Ok(Case {
            case_id: row.try_get("case_id")?,
            flow: flow_of_code(row.try_get("flow")?)?,
            county_code: row.try_get("county_code")?,
            employer_organisation_number: row.try_get("employer_organisation_number")?,
            opened_at: row.try_get("opened_at")?,
        })
    })
    .transpose()
}

/// An application as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The document.
    pub application: v1::Application,
    /// The sealed fødselsnummer (None once erased).
    pub fodselsnummer_sealed: Option<String>,
    /// When an unanswered GrantRequested is next re-sent.
    pub resend_at: Option<OffsetDateTime>,
    /// The wait after that resend, in seconds.
    pub resend_interval_seconds: Option<i64>,
    /// When it entered its status.
    pub status_changed_at: OffsetDateTime,
    /// Keyset position.
    pub sequence: i64,
}

impl Stored {
    /// The application id.
    pub fn id(&self) -> Uuid {
        Uuid::parse_str(&self.application.application_id).unwrap_or_default()
    }

    /// The case id.
    pub fn case_id(&self) -> Uuid {
        Uuid::parse_str(&self.application.case_id).unwrap_or_default()
    }

    /// The employer.
    pub fn employer(&self) -> &str {
        self.application
            .details
            .as_ref()
            .map_or("", |details| details.employer_organisation_number.as_str())
    }

    /// Records in the audit trail, on `db` (inside the unit of work of the change), that
    /// `actor` read or changed this application (`kind`) by `action`, for `purpose`.
    pub async fn audit(
        &self,
        db: &mut PgConnection,
        kind: v1::AuditEntryKind,
        action: &str,
        actor: &AuditActor,
        purpose: v1::AccessPurpose,
        at: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        let event = AuditEvent {
            case_id: self.case_id(),
            subject_id: self.id(),
            kind,
            action,
            actor,
            purpose,
            at,
        };
        audit::record(db, &event).await?;
        Ok(())
    }

    /// Records on `db` a change the service itself made on `action` (an event or a job) at `at`.
    pub async fn audit_service_change(
        &self,
        db: &mut PgConnection,
        action: &str,
        at: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        let service = AuditActor::service();
        self.audit(
            db,
            v1::AuditEntryKind::Change,
            action,
            &service,
            v1::AccessPurpose::System,
            at,
        )
        .await
    }
}

impl change::Record for Stored {
    type Key = Uuid;

    async fn load_locked(work: &mut UnitOfWork, id: &Uuid) -> Result<Self, ApiError> {
        load(work.db(), *id, true)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("application {id} is not known")))
    }

    /// Saves the application as changed at its `updated_at` (the decision's now), recording its
    /// current grant id when the decision minted one.
    async fn save(&self, work: &mut UnitOfWork) -> Result<(), ApiError> {
        let changed_at = model::instant(self.application.updated_at.as_ref());
        save(work.db(), self, changed_at).await?;
        if let Some(grant_id) = current_grant_id(&self.application) {
            record_grant_id(work.db(), grant_id, self.id(), changed_at).await?;
        }
        Ok(())
    }
}

fn current_grant_id(application: &v1::Application) -> Option<Uuid> {
    application
        .grant
        .as_ref()
        .and_then(|grant| Uuid::parse_str(&grant.grant_id).ok())
}

/// Inserts a new application.
pub async fn insert(
    db: &mut PgConnection,
    stored: &Stored,
    request_id: Uuid,
    request_digest: &str,
) -> Result<(), sqlx::Error> {
    let application = &stored.application;
    sqlx::query(
        "INSERT INTO applications (application_id, request_id, request_digest, case_id, \
         employer_organisation_number, county_code, status, live, submitted_at, \
         status_changed_at, fodselsnummer_sealed, document) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, true, $8, $8, $9, $10)",
    )
    .bind(stored.id())
    .bind(request_id)
    .bind(request_digest)
    .bind(stored.case_id())
    .bind(stored.employer())
    .bind(&application.county_code)
    .bind(status_code(application))
    .bind(model::instant(application.submitted_at.as_ref()))
    .bind(&stored.fodselsnummer_sealed)
    .bind(application.encode_to_vec())
    .execute(db)
    .await?;
    Ok(())
}

/// Saves the document and the columns derived from it; `now` stamps a status change and the
/// end of the case.
pub async fn save(
    db: &mut PgConnection,
    stored: &Stored,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let application = &stored.application;
    let grant_id = current_grant_id(application);
    sqlx::query(
        "UPDATE applications SET status = $2, live = $3, \
         status_changed_at = CASE WHEN status <> $2 THEN $4 ELSE status_changed_at END, \
         current_grant_id = $5, \
         ended_at = CASE WHEN $6 THEN COALESCE(ended_at, $4) ELSE NULL END, \
         resend_at = $7, resend_interval_seconds = $8, fodselsnummer_sealed = $9, \
         personal_data_erased_at = $10, document = $11 WHERE application_id = $1",
    )
    .bind(stored.id())
    .bind(status_code(application))
    .bind(model::is_live(application))
    .bind(now)
    .bind(grant_id)
    .bind(model::has_ended(application))
    .bind(stored.resend_at)
    .bind(stored.resend_interval_seconds)
    .bind(&stored.fodselsnummer_sealed)
    .bind(
        application
            .personal_data_erased_at
            .as_ref()
            .map(|at| model::instant(Some(at))),
    )
    .bind(application.encode_to_vec())
    .execute(db)
    .await?;
    Ok(())
}

/// A SELECT of a stored application's columns followed by `$rest`, as one literal.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT document, fodselsnummer_sealed, resend_at, resend_interval_seconds, \
             status_changed_at, sequence ",
            $rest
        )
    };
}

fn stored(row: &sqlx::postgres::PgRow) -> Result<Stored, sqlx::Error> {
    let bytes: Vec<u8> = row.try_get("document")?;
    let application = v1::Application::decode(bytes.as_slice())
        .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
    Ok(Stored {
        application,
        fodselsnummer_sealed: row.try_get("fodselsnummer_sealed")?,
        resend_at: row.try_get("resend_at")?,
        resend_interval_seconds: row.try_get("resend_interval_seconds")?,
        status_changed_at: row.try_get("status_changed_at")?,
        sequence: row.try_get("sequence")?,
    })
}

/// The application `id`, locked for update when `lock`.
pub async fn load(
    db: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<Stored>, sqlx::Error> {
    let sql = if lock {
        select!("FROM applications WHERE application_id = $1 FOR UPDATE")
    } else {
        select!("FROM applications WHERE application_id = $1")
    };
    let row = sqlx::query(sql).bind(id).fetch_optional(db).await?;
    row.as_ref().map(stored).transpose()
}

/// The application created by `request_id`, with the digest of that request.
pub async fn find_by_request(
    db: &mut PgConnection,
    request_id: Uuid,
) -> Result<Option<(Stored, String)>, sqlx::Error> {
    let sql = select!(", request_digest FROM applications WHERE request_id = $1");
    let row = sqlx::query(sql).bind(request_id).fetch_optional(db).await?;
    row.map(|row| Ok((stored(&row)?, row.try_get("request_digest")?)))
        .transpose()
}

/// Whether the case has a live application.
pub async fn has_live(db: &mut PgConnection, case_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM applications WHERE case_id = $1 AND live)")
        .bind(case_id)
        .fetch_one(db)
        .await
}

/// Records grant id `grant_id` of `application_id`, minted at `at` (a grant id already recorded
/// keeps its time), so budget's and refunds' answers find their application.
async fn record_grant_id(
    db: &mut PgConnection,
    grant_id: Uuid,
    application_id: Uuid,
    at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO grant_ids (grant_id, application_id, minted_at) VALUES ($1, $2, $3) \
         ON CONFLICT (grant_id) DO NOTHING",
    )
    .bind(grant_id)
    .bind(application_id)
    .bind(at)
    .execute(db)
    .await?;
    Ok(())
}

/// The application grant id `grant_id` was minted for, if it was minted here.
pub async fn application_of_grant(
    db: &mut PgConnection,
    grant_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT application_id FROM grant_ids WHERE grant_id = $1")
        .bind(grant_id)
        .fetch_optional(db)
        .await
}

/// Every application of a case, oldest first.
pub async fn list_for_case(
    db: &mut PgConnection,
    case_id: Uuid,
) -> Result<Vec<Stored>, sqlx::Error> {
    let sql = select!("FROM applications WHERE case_id = $1 ORDER BY sequence");
    let rows = sqlx::query(sql).bind(case_id).fetch_all(db).await?;
    rows.iter().map(stored).collect()
}

/// A page of one employer's applications, newest first (rows before `before`).
pub async fn list_for_employer(
    db: &mut PgConnection,
    employer: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    let sql = select!(
        "FROM applications WHERE employer_organisation_number = $1 \
         AND sequence < $2 ORDER BY sequence DESC LIMIT $3"
    );
    let rows = sqlx::query(sql)
        .bind(employer)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter().map(stored).collect()
}

/// A page of the work list: by status code and county (empty filter: all), oldest first.
pub async fn list_work(
    db: &mut PgConnection,
    statuses: &[&str],
    counties: &[String],
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    let sql = select!(
        "FROM applications WHERE (cardinality($1::text[]) = 0 OR status = ANY($1)) \
         AND (cardinality($2::text[]) = 0 OR county_code = ANY($2)) AND sequence > $3 \
         ORDER BY sequence LIMIT $4"
    );
    let rows = sqlx::query(sql)
        .bind(statuses)
        .bind(counties)
        .bind(after.unwrap_or(0))
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter().map(stored).collect()
}

/// Ids of applications whose unanswered funds request is due for a resend at `now`, locked
/// (skipping rows another replica holds).
pub async fn due_resends(
    db: &mut PgConnection,
    now: OffsetDateTime,
    limit: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    let sql = select!(
        "FROM applications WHERE resend_at IS NOT NULL AND resend_at <= $1 \
         ORDER BY resend_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    );
    let rows = sqlx::query(sql).bind(now).bind(limit).fetch_all(db).await?;
    rows.iter().map(stored).collect()
}

/// Applications whose case ended at or before `ended_by` and still hold personal data, locked
/// (skipping rows another replica holds).
pub async fn due_erasures(
    db: &mut PgConnection,
    ended_by: OffsetDateTime,
    limit: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    let sql = select!(
        "FROM applications WHERE personal_data_erased_at IS NULL \
         AND ended_at IS NOT NULL AND ended_at <= $1 \
         ORDER BY ended_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    );
    let rows = sqlx::query(sql)
        .bind(ended_by)
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter().map(stored).collect()
}

/// Deletes the records (application, grant ids, audit trail) of cases that ended here at or
/// before `ended_by` and whose personal data is erased; returns how many.
pub async fn delete_expired_records(
    db: &mut PgConnection,
    ended_by: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT application_id FROM applications WHERE personal_data_erased_at IS NOT NULL \
         AND ended_at IS NOT NULL AND ended_at <= $1 \
         ORDER BY ended_at LIMIT 100 FOR UPDATE SKIP LOCKED",
    )
    .bind(ended_by)
    .fetch_all(&mut *db)
    .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    sqlx::query("DELETE FROM audit_entries WHERE subject_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *db)
        .await?;
    sqlx::query("DELETE FROM grant_ids WHERE application_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *db)
        .await?;
    let deleted = sqlx::query("DELETE FROM applications WHERE application_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *db)
        .await?;
    Ok(deleted.rows_affected())
}
