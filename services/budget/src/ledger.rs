//! How budget stores its books: appropriations, reservations (one per commitment), the
//! append-only ledger, parked releases and the appropriation audit trail. Every balance changes
//! in exactly one place, [`post`], in the statement that inserts the entry moving it. A stored
//! value this module cannot read is INTERNAL, never defaulted.

use ekb_platform::ApiError;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    model::{
        BookingTime, Commitment, CommitmentKind, DeniedReason, Movement, ReleaseCause, Source,
        Status, StoredAppropriation, StoredReservation,
    },
    requests::FundsRequest,
    rules::{Account, Balance},
};

/// Whether a read locks the row for the rest of the unit of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// `SELECT … FOR UPDATE`.
    ForUpdate,
    /// A plain read.
    None,
}

/// The static SQL of a `SELECT` made of `parts`, with `FOR UPDATE` when `lock` asks for it.
macro_rules! locking {
    ($lock:expr, $($parts:tt)*) => {
        match $lock {
            Lock::ForUpdate => concat!($($parts)*, " FOR UPDATE"),
            Lock::None => concat!($($parts)*),
        }
    };
}

fn corrupt(what: &str, id: impl std::fmt::Display, value: &str) -> ApiError {
    ApiError::internal(anyhow::anyhow!(
        "stored {what} of {id} cannot be read: {value:?}"
    ))
}

#[derive(sqlx::FromRow)]
struct AppropriationRow {
    appropriation_id: Uuid,
    budget_year: i32,
    chapter: i32,
    post: i32,
    appropriated_ore: i64,
    threshold_percents: Vec<i32>,
    crossed_threshold_percents: Vec<i32>,
    reserved_ore: i64,
    disbursed_ore: i64,
    released_ore: i64,
    note: String,
    version: i64,
    updated_at: OffsetDateTime,
}

macro_rules! appropriation_columns {
    () => {
        "appropriation_id, budget_year, chapter, post, appropriated_ore, threshold_percents, \
         crossed_threshold_percents, reserved_ore, disbursed_ore, released_ore, note, version, \
         updated_at"
    };
}

impl TryFrom<AppropriationRow> for StoredAppropriation {
    type Error = ApiError;

    fn try_from(row: AppropriationRow) -> Result<Self, ApiError> {
        let id = row.appropriation_id;
        let account = Account::new(row.chapter, row.post)
            .map_err(|_| corrupt("account", id, &format!("{}.{}", row.chapter, row.post)))?;
        Ok(StoredAppropriation {
            appropriation_id: id,
            budget_year: row.budget_year,
            account,
            balance: Balance {
                appropriated_ore: row.appropriated_ore,
                reserved_ore: row.reserved_ore,
                disbursed_ore: row.disbursed_ore,
                released_ore: row.released_ore,
            },
            thresholds: row.threshold_percents,
            crossed: row.crossed_threshold_percents,
            note: row.note,
            version: row.version,
            updated_at: row.updated_at,
        })
    }
}

/// A row of `reservations`, as read (columns: `reservation_columns!`).
#[derive(sqlx::FromRow)]
struct ReservationRow {
    reservation_id: Uuid,
    sequence: i64,
    commitment_kind: String,
    commitment_id: Uuid,
    case_id: Uuid,
    county_code: String,
    budget_year: i32,
    chapter: i32,
    post: i32,
    status: String,
    requested_ore: i64,
    reserved_ore: i64,
    disbursed_ore: i64,
    released_ore: i64,
    denied_reason: Option<String>,
    available_when_denied_ore: Option<i64>,
    release_cause: Option<String>,
    request_event_id: Uuid,
    created_at: OffsetDateTime,
    answered_at: Option<OffsetDateTime>,
    updated_at: OffsetDateTime,
}

/// The columns of [`ReservationRow`], as a literal so queries stay static SQL.
macro_rules! reservation_columns {
    () => {
        "reservation_id, sequence, commitment_kind, commitment_id, case_id, county_code, \
         budget_year, chapter, post, status, requested_ore, reserved_ore, disbursed_ore, \
         released_ore, denied_reason, available_when_denied_ore, release_cause, \
         request_event_id, created_at, answered_at, updated_at"
    };
}

impl TryFrom<ReservationRow> for StoredReservation {
    type Error = ApiError;

    fn try_from(row: ReservationRow) -> Result<Self, ApiError> {
        let id = row.reservation_id;
        let kind = CommitmentKind::parse_code(&row.commitment_kind)
            .ok_or_else(|| corrupt("commitment kind", id, &row.commitment_kind))?;
        let status =
            Status::parse_code(&row.status).ok_or_else(|| corrupt("status", id, &row.status))?;
        let denied_reason = row
            .denied_reason
            .map(|code| DeniedReason::parse_code(&code).ok_or_else(|| corrupt("denial", id, &code)))
            .transpose()?;
        let release_cause = row
            .release_cause
            .map(|code| {
                ReleaseCause::parse_code(&code).ok_or_else(|| corrupt("release cause", id, &code))
            })
            .transpose()?;
        Ok(StoredReservation {
            reservation_id: id,
            sequence: row.sequence,
            request: FundsRequest {
                commitment: Commitment {
                    kind,
                    id: row.commitment_id,
                },
                case_id: row.case_id,
                county_code: row.county_code,
                budget_year: row.budget_year,
                chapter: row.chapter,
                post: row.post,
                amount_ore: row.requested_ore,
            },
            status,
            reserved_ore: row.reserved_ore,
            disbursed_ore: row.disbursed_ore,
            released_ore: row.released_ore,
            denied_reason,
            available_when_denied_ore: row.available_when_denied_ore,
            release_cause,
            request_event_id: row.request_event_id,
            created_at: row.created_at,
            answered_at: row.answered_at,
            updated_at: row.updated_at,
        })
    }
}

/// Serialises every unit of work that reserves on, or creates, the appropriation of `year` and
/// `account`, until it ends. Row locks cannot do this while the appropriation does not exist:
/// without it, a request finding no appropriation could commit as PENDING just after the
/// SetAppropriation that creates it looked for pending requests, and wait for ever.
pub async fn lock_year_and_account(
    connection: &mut PgConnection,
    year: i32,
    account: Account,
) -> Result<(), ApiError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(year)
        .bind(account.chapter() * 100 + account.post())
        .execute(connection)
        .await?;
    Ok(())
}

/// The appropriation of `year` and `account`, if set.
pub async fn find_appropriation(
    connection: &mut PgConnection,
    year: i32,
    account: Account,
    lock: Lock,
) -> Result<Option<StoredAppropriation>, ApiError> {
    let sql = locking!(
        lock,
        "SELECT ",
        appropriation_columns!(),
        " FROM appropriations WHERE budget_year = $1 AND chapter = $2 AND post = $3"
    );
    let row: Option<AppropriationRow> = sqlx::query_as(sql)
        .bind(year)
        .bind(account.chapter())
        .bind(account.post())
        .fetch_optional(connection)
        .await?;
    row.map(StoredAppropriation::try_from).transpose()
}

/// The appropriations of `year` (all accounts), ordered by account.
pub async fn appropriations_of_year(
    connection: &mut PgConnection,
    year: i32,
) -> Result<Vec<StoredAppropriation>, ApiError> {
    let rows: Vec<AppropriationRow> = sqlx::query_as(concat!(
        "SELECT ",
        appropriation_columns!(),
        " FROM appropriations WHERE budget_year = $1 ORDER BY chapter, post"
    ))
    .bind(year)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(StoredAppropriation::try_from)
        .collect()
}

/// What SetAppropriation writes.
#[derive(Debug, Clone)]
pub struct AppropriationTerms<'a> {
    /// Amount appropriated.
    pub appropriated_ore: i64,
    /// Alert levels, ascending.
    pub thresholds: &'a [i32],
    /// Levels announced and still armed off.
    pub crossed: &'a [i32],
    /// Why.
    pub note: &'a str,
}

/// Creates the appropriation of `year` and `account` (version 1).
pub async fn insert_appropriation(
    connection: &mut PgConnection,
    year: i32,
    account: Account,
    terms: &AppropriationTerms<'_>,
    at: OffsetDateTime,
) -> Result<StoredAppropriation, ApiError> {
    let row: AppropriationRow = sqlx::query_as(concat!(
        "INSERT INTO appropriations (appropriation_id, budget_year, chapter, post, appropriated_ore, \
         threshold_percents, crossed_threshold_percents, note, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9) RETURNING ",
        appropriation_columns!()
    ))
    .bind(Uuid::now_v7())
    .bind(year)
    .bind(account.chapter())
    .bind(account.post())
    .bind(terms.appropriated_ore)
    .bind(terms.thresholds)
    .bind(terms.crossed)
    .bind(terms.note)
    .bind(at)
    .fetch_one(connection)
    .await?;
    row.try_into()
}

/// Changes the amount, levels and note of an appropriation and bumps its version.
pub async fn update_appropriation(
    connection: &mut PgConnection,
    appropriation_id: Uuid,
    terms: &AppropriationTerms<'_>,
    at: OffsetDateTime,
) -> Result<StoredAppropriation, ApiError> {
    let row: AppropriationRow = sqlx::query_as(concat!(
        "UPDATE appropriations SET appropriated_ore = $2, threshold_percents = $3, \
         crossed_threshold_percents = $4, note = $5, version = version + 1, updated_at = $6 \
         WHERE appropriation_id = $1 RETURNING ",
        appropriation_columns!()
    ))
    .bind(appropriation_id)
    .bind(terms.appropriated_ore)
    .bind(terms.thresholds)
    .bind(terms.crossed)
    .bind(terms.note)
    .bind(at)
    .fetch_one(connection)
    .await?;
    row.try_into()
}

/// Records a change of `appropriation` (as it is after the change) by `changed_by`.
pub async fn record_change(
    connection: &mut PgConnection,
    appropriation: &StoredAppropriation,
    previous_appropriated_ore: Option<i64>,
    changed_by: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO appropriation_changes (appropriation_id, version, previous_appropriated_ore, \
         appropriated_ore, threshold_percents, note, changed_by, changed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(appropriation.appropriation_id)
    .bind(appropriation.version)
    .bind(previous_appropriated_ore)
    .bind(appropriation.balance.appropriated_ore)
    .bind(&appropriation.thresholds)
    .bind(&appropriation.note)
    .bind(changed_by)
    .bind(appropriation.updated_at)
    .execute(connection)
    .await?;
    Ok(())
}

/// Records the levels announced so far.
pub async fn set_crossed(
    connection: &mut PgConnection,
    appropriation_id: Uuid,
    crossed: &[i32],
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE appropriations SET crossed_threshold_percents = $2 WHERE appropriation_id = $1",
    )
    .bind(appropriation_id)
    .bind(crossed)
    .execute(connection)
    .await?;
    Ok(())
}

/// The reservation of `commitment`, if budget has a request for it.
pub async fn find_reservation(
    connection: &mut PgConnection,
    commitment: Commitment,
    lock: Lock,
) -> Result<Option<StoredReservation>, ApiError> {
    let sql = locking!(
        lock,
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE commitment_kind = $1 AND commitment_id = $2"
    );
    let row: Option<ReservationRow> = sqlx::query_as(sql)
        .bind(commitment.kind.code())
        .bind(commitment.id)
        .fetch_optional(connection)
        .await?;
    row.map(StoredReservation::try_from).transpose()
}

/// How a new request is recorded.
#[derive(Debug, Clone, Copy)]
pub enum Recorded {
    /// Waiting for the year's appropriation.
    Pending,
    /// Answered on arrival (a reservation's entry is posted separately).
    Answered(Answer),
}

/// Records `request` (from event `event_id`) unless its commitment has a reservation already;
/// `None` then. When a twin is being recorded by a unit of work still in progress, the insert
/// waits for it, so a request not recorded has a visible twin afterwards.
pub async fn insert_reservation(
    connection: &mut PgConnection,
    request: &FundsRequest,
    recorded: Recorded,
    event_id: Uuid,
    now: &BookingTime,
) -> Result<Option<StoredReservation>, ApiError> {
    let (status, denied_reason, available, answered_at, answered_month) = match recorded {
        Recorded::Pending => (Status::Pending, None, None, None, None),
        Recorded::Answered(answer) => {
            let (status, reason, available) = answer.columns();
            (
                status,
                reason,
                available,
                Some(now.at),
                Some(now.month.as_str()),
            )
        }
    };
    let row: Option<ReservationRow> = sqlx::query_as(concat!(
        "INSERT INTO reservations (reservation_id, commitment_kind, commitment_id, case_id, \
         county_code, flow, budget_year, chapter, post, status, requested_ore, denied_reason, \
         available_when_denied_ore, request_event_id, created_at, answered_at, answered_month, \
         updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $15) \
         ON CONFLICT (commitment_kind, commitment_id) DO NOTHING RETURNING ",
        reservation_columns!()
    ))
    .bind(Uuid::now_v7())
    .bind(request.commitment.kind.code())
    .bind(request.commitment.id)
    .bind(request.case_id)
    .bind(&request.county_code)
    .bind(request.commitment.kind.flow().code())
    .bind(request.budget_year)
    .bind(request.chapter)
    .bind(request.post)
    .bind(status.code())
    .bind(request.amount_ore)
    .bind(denied_reason)
    .bind(available)
    .bind(event_id)
    .bind(now.at)
    .bind(answered_at)
    .bind(answered_month)
    .fetch_optional(connection)
    .await?;
    row.map(StoredReservation::try_from).transpose()
}

/// The PENDING requests of `year` and `account`, locked, in request order.
pub async fn pending_reservations(
    connection: &mut PgConnection,
    year: i32,
    account: Account,
) -> Result<Vec<StoredReservation>, ApiError> {
    let rows: Vec<ReservationRow> = sqlx::query_as(concat!(
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE status = 'PENDING' AND budget_year = $1 AND chapter = $2 \
          AND post = $3 ORDER BY sequence FOR UPDATE"
    ))
    .bind(year)
    .bind(account.chapter())
    .bind(account.post())
    .fetch_all(connection)
    .await?;
    rows.into_iter().map(StoredReservation::try_from).collect()
}

/// Budget's answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The money is reserved (its entry is posted separately).
    Reserved,
    /// Denied, with what was available.
    Denied(DeniedReason, i64),
}

impl Answer {
    /// Status, denial reason and available amount, as stored.
    fn columns(self) -> (Status, Option<&'static str>, Option<i64>) {
        match self {
            Answer::Reserved => (Status::Reserved, None, None),
            Answer::Denied(reason, available) => {
                (Status::Denied, Some(reason.code()), Some(available))
            }
        }
    }
}

/// Records the answer to PENDING reservation `reservation_id`.
pub async fn answer_reservation(
    connection: &mut PgConnection,
    reservation_id: Uuid,
    answer: Answer,
    now: &BookingTime,
) -> Result<StoredReservation, ApiError> {
    let (status, reason, available) = answer.columns();
    let row: ReservationRow = sqlx::query_as(concat!(
        "UPDATE reservations SET status = $2, denied_reason = $3, available_when_denied_ore = $4, \
         answered_at = $5, answered_month = $6, updated_at = $5 \
         WHERE reservation_id = $1 AND status = 'PENDING' RETURNING ",
        reservation_columns!()
    ))
    .bind(reservation_id)
    .bind(status.code())
    .bind(reason)
    .bind(available)
    .bind(now.at)
    .bind(&now.month)
    .fetch_one(connection)
    .await?;
    row.try_into()
}

/// Closes a reservation: RELEASED (released in full, or withdrawn while PENDING) or SETTLED
/// (disbursed; `cause` is set when a remainder was released).
pub async fn close_reservation(
    connection: &mut PgConnection,
    reservation_id: Uuid,
    status: Status,
    cause: Option<ReleaseCause>,
    now: &BookingTime,
) -> Result<StoredReservation, ApiError> {
    let row: ReservationRow = sqlx::query_as(concat!(
        "UPDATE reservations SET status = $2, release_cause = $3, updated_at = $4 \
         WHERE reservation_id = $1 RETURNING ",
        reservation_columns!()
    ))
    .bind(reservation_id)
    .bind(status.code())
    .bind(cause.map(ReleaseCause::code))
    .bind(now.at)
    .fetch_one(connection)
    .await?;
    row.try_into()
}

/// Books one movement of `amount_ore` on `reservation`: inserts the ledger entry (with copies
/// of the reservation's facts) and adds it to the reservation's and the appropriation's
/// balances, in one statement. The only place balances change. Returns the reservation after.
pub async fn post(
    connection: &mut PgConnection,
    reservation: &StoredReservation,
    movement: Movement,
    amount_ore: i64,
    event_id: Uuid,
    now: &BookingTime,
) -> Result<StoredReservation, ApiError> {
    let (cause, source) = match movement {
        Movement::Reserve => (None, None),
        Movement::Release(cause) => (Some(cause.code()), None),
        Movement::Disburse(source) => (None, Some(source)),
    };
    let row: Option<ReservationRow> = sqlx::query_as(concat!(
        "WITH entry AS ( \
           INSERT INTO ledger_entries (reservation_id, movement, amount_ore, commitment_kind, \
             commitment_id, case_id, county_code, flow, budget_year, chapter, post, release_cause, \
             disbursement_source_kind, disbursement_source_id, event_id, booked_at, booked_month) \
           SELECT r.reservation_id, $2::text, $3::bigint, r.commitment_kind, r.commitment_id, \
             r.case_id, r.county_code, r.flow, r.budget_year, r.chapter, r.post, $4, $5, $6, $7, \
             $8, $9 \
           FROM reservations r WHERE r.reservation_id = $1 \
           RETURNING reservation_id, budget_year, chapter, post), \
         appropriation AS ( \
           UPDATE appropriations a SET \
             reserved_ore = a.reserved_ore + CASE WHEN $2::text = 'RESERVE' THEN $3::bigint ELSE 0 END, \
             released_ore = a.released_ore + CASE WHEN $2::text = 'RELEASE' THEN $3::bigint ELSE 0 END, \
             disbursed_ore = a.disbursed_ore + CASE WHEN $2::text = 'DISBURSE' THEN $3::bigint ELSE 0 END \
           FROM entry e \
           WHERE a.budget_year = e.budget_year AND a.chapter = e.chapter AND a.post = e.post \
           RETURNING a.appropriation_id), \
         reservation AS ( \
           UPDATE reservations r SET \
             reserved_ore = r.reserved_ore + CASE WHEN $2::text = 'RESERVE' THEN $3::bigint ELSE 0 END, \
             released_ore = r.released_ore + CASE WHEN $2::text = 'RELEASE' THEN $3::bigint ELSE 0 END, \
             disbursed_ore = r.disbursed_ore + CASE WHEN $2::text = 'DISBURSE' THEN $3::bigint ELSE 0 END, \
             updated_at = $8 \
           FROM entry e WHERE r.reservation_id = e.reservation_id \
           RETURNING r.*) \
         SELECT ",
        reservation_columns!(),
        " FROM reservation WHERE (SELECT count(*) FROM appropriation) = 1"
    ))
    .bind(reservation.reservation_id)
    .bind(movement.code())
    .bind(amount_ore)
    .bind(cause)
    .bind(source.map(|source| source.kind.code()))
    .bind(source.map(|source| source.id))
    .bind(event_id)
    .bind(now.at)
    .bind(&now.month)
    .fetch_optional(connection)
    .await?;
    let row = row.ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "no appropriation {} {}.{} to book {} of reservation {} on",
            reservation.request.budget_year,
            reservation.request.chapter,
            reservation.request.post,
            movement.code(),
            reservation.reservation_id
        ))
    })?;
    row.try_into()
}

/// The reservation and amount a claim or invoice was disbursed from, if it was.
pub async fn disbursement_of(
    connection: &mut PgConnection,
    source: Source,
) -> Result<Option<(Uuid, i64)>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT reservation_id, amount_ore FROM ledger_entries \
         WHERE disbursement_source_kind = $1 AND disbursement_source_id = $2",
    )
    .bind(source.kind.code())
    .bind(source.id)
    .fetch_optional(connection)
    .await?)
}

/// Keeps a release that came before its commitment's request; whether it was new.
pub async fn park_release(
    connection: &mut PgConnection,
    commitment: Commitment,
    case_id: Uuid,
    cause: ReleaseCause,
    event_id: Uuid,
    now: &BookingTime,
) -> Result<bool, ApiError> {
    let inserted = sqlx::query(
        "INSERT INTO parked_releases (commitment_kind, commitment_id, case_id, release_cause, \
         event_id, parked_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(commitment.kind.code())
    .bind(commitment.id)
    .bind(case_id)
    .bind(cause.code())
    .bind(event_id)
    .bind(now.at)
    .execute(connection)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Resolves the release parked for `commitment`, if any, and returns its cause.
pub async fn resolve_parked_release(
    connection: &mut PgConnection,
    commitment: Commitment,
    now: &BookingTime,
) -> Result<Option<ReleaseCause>, ApiError> {
    let cause: Option<String> = sqlx::query_scalar(
        "UPDATE parked_releases SET resolved_at = $3 \
         WHERE commitment_kind = $1 AND commitment_id = $2 AND resolved_at IS NULL \
         RETURNING release_cause",
    )
    .bind(commitment.kind.code())
    .bind(commitment.id)
    .bind(now.at)
    .fetch_optional(connection)
    .await?;
    cause
        .map(|code| {
            ReleaseCause::parse_code(&code)
                .ok_or_else(|| corrupt("parked release cause", commitment, &code))
        })
        .transpose()
}

/// Converts rows read with `reservation_columns!`.
fn to_reservations(rows: Vec<ReservationRow>) -> Result<Vec<StoredReservation>, ApiError> {
    rows.into_iter().map(StoredReservation::try_from).collect()
}

/// One page of the reservations of a year matching `query`, newest first, and the next page's
/// token (empty at the end).
pub async fn list_reservations(
    connection: &mut PgConnection,
    query: &crate::commands::ListReservations,
) -> Result<(Vec<StoredReservation>, String), ApiError> {
    let rows: Vec<ReservationRow> = sqlx::query_as(concat!(
        "SELECT ",
        reservation_columns!(),
        " FROM reservations WHERE budget_year = $1 \
          AND ($2::text IS NULL OR county_code = $2) \
          AND ($3::text IS NULL OR flow = $3) \
          AND ($4::text IS NULL OR status = $4) \
          AND ($5::uuid IS NULL OR case_id = $5) \
          AND ($6::bigint IS NULL OR sequence < $6) \
          ORDER BY sequence DESC LIMIT $7"
    ))
    .bind(query.budget_year)
    .bind(query.county.as_deref())
    .bind(query.flow.map(|flow| flow.code()))
    .bind(query.status.map(Status::code))
    .bind(query.case_id)
    .bind(query.page.after)
    .bind(query.page.fetch_limit())
    .fetch_all(connection)
    .await?;
    let rows = to_reservations(rows)?;
    Ok(query.page.finish(rows, |reservation| reservation.sequence))
}
