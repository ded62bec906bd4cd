//! Budget's side of the money saga (docs/budget-ledger-and-saga.md): it answers funds requests
//! (FundsReserved, FundsDenied, or PENDING until the year's appropriation is set), books
//! releases and disbursements as ledger entries, and announces thresholds. Each event is applied
//! in the consumer's unit of work, which already holds its inbox row, so a redelivery changes
//! nothing; a repeat (same content, new event id) gets the first answer again. A failure that
//! retrying cannot mend (a repeat with other content, a disbursement larger than what is
//! outstanding) is permanent: the event goes to budget's dead-letter topic with the reason.

use std::sync::Arc;

use ekb_platform::clock::SharedClock;
use ekb_platform::{
    ApiError,
    messaging::{EventFields, EventSubject, HandlerError, UnitOfWork},
};
use ekb_proto::v1::{self, EventEnvelope};
use uuid::Uuid;

use crate::{
    config::BudgetPolicy,
    ledger::{self, Answer, Lock, Recorded},
    model::{
        BookingTime, DeniedReason, Movement, ReleaseCause, Status, StoredAppropriation,
        StoredReservation,
    },
    requests::{DisbursesFunds, FundsRequest, ReleasesFunds, RequestsFunds},
    rules::{Balance, newly_crossed},
};

/// Requests answered, by outcome.
const REQUESTS: &str = "ekb_budget_requests_total";
/// Releases booked, by cause.
const RELEASES: &str = "ekb_budget_releases_total";
/// Disbursements booked, by source.
const DISBURSEMENTS: &str = "ekb_budget_disbursements_total";

/// What budget's event handlers work with.
#[derive(Debug, Clone)]
pub struct BudgetState {
    policy: Arc<BudgetPolicy>,
    clock: SharedClock,
}

impl BudgetState {
    /// Handlers applying `policy`, booking at `clock`'s time.
    pub fn new(policy: Arc<BudgetPolicy>, clock: SharedClock) -> Self {
        BudgetState { policy, clock }
    }
}

ekb_platform::handle_with!(BudgetState, request_funds: v1::GrantRequested, v1::OrderRequested);
ekb_platform::handle_with!(
    BudgetState,
    release: v1::ApplicationWithdrawn,
    v1::ApplicationRejected,
    v1::GrantCancelled,
    v1::GrantExpired,
    v1::OrderDeclined,
    v1::OrderCancelled,
    v1::OrderExpired,
);
ekb_platform::handle_with!(BudgetState, disburse: v1::RefundApproved, v1::InvoiceApproved);

/// The id of the event being applied, and the time its entries are booked at.
fn booking(
    envelope: &EventEnvelope,
    clock: &dyn ekb_platform::clock::Clock,
) -> Result<(Uuid, BookingTime), HandlerError> {
    let event_id = EventFields::named("EventEnvelope").uuid("event_id", &envelope.event_id)?;
    Ok((event_id, BookingTime::now(clock)))
}

/// The subject of an event about `reservation`: keyed by its case.
fn subject(reservation: &StoredReservation) -> EventSubject {
    EventSubject {
        case_id: Some(reservation.request.case_id.to_string()),
        aggregate_id: reservation.reservation_id.to_string(),
    }
}

impl BudgetState {
    async fn request_funds<E: RequestsFunds>(
        &self,
        work: &mut UnitOfWork,
        event: &E,
        envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let request = event.funds_request()?;
        let (event_id, now) = booking(envelope, self.clock.as_ref())?;
        if let Some(first) =
            ledger::find_reservation(work.db(), request.commitment, Lock::None).await?
        {
            return repeat(work, &request, &first).await;
        }
        let problem =
            match ledger::resolve_parked_release(work.db(), request.commitment, &now).await? {
                Some(cause) => Some(format!(
                    "the commitment was released ({}) before budget received its request",
                    cause.code()
                )),
                None => request.problem(&self.policy),
            };
        let account = match (problem, request.account()) {
            (None, Some(account)) => account,
            (problem, _) => {
                let problem = problem.unwrap_or_else(|| "the account is out of range".to_owned());
                return deny_invalid(work, &request, &problem, event_id, &now).await;
            }
        };
        ledger::lock_year_and_account(work.db(), request.budget_year, account).await?;
        let appropriation =
            ledger::find_appropriation(work.db(), request.budget_year, account, Lock::ForUpdate)
                .await?;
        let recorded = match &appropriation {
            Some(appropriation) => {
                Recorded::Answered(decide(&appropriation.balance, request.amount_ore))
            }
            None => Recorded::Pending,
        };
        let Some(reservation) =
            ledger::insert_reservation(work.db(), &request, recorded, event_id, &now).await?
        else {
            return repeat_of_twin(work, &request).await;
        };
        let Some(mut appropriation) = appropriation else {
            tracing::info!(
                reservation_id = %reservation.reservation_id,
                commitment = %request.commitment,
                budget_year = request.budget_year,
                account = %account,
                "no appropriation yet: the request waits as PENDING"
            );
            metrics::counter!(REQUESTS, "outcome" => "pending").increment(1);
            return Ok(());
        };
        book_answer(
            work,
            &mut appropriation.balance,
            reservation,
            event_id,
            &now,
        )
        .await?;
        announce_thresholds(work, &mut appropriation, &now).await?;
        Ok(())
    }

    async fn release<E: ReleasesFunds>(
        &self,
        work: &mut UnitOfWork,
        event: &E,
        envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let Some(release) = event.release()? else {
            return Ok(());
        };
        let (event_id, now) = booking(envelope, self.clock.as_ref())?;
        let Some(reservation) =
            ledger::find_reservation(work.db(), release.commitment, Lock::ForUpdate).await?
        else {
            let parked = ledger::park_release(
                work.db(),
                release.commitment,
                release.case_id,
                release.cause,
                event_id,
                &now,
            )
            .await?;
            tracing::warn!(
                commitment = %release.commitment,
                cause = release.cause.code(),
                parked,
                "release before budget received the commitment's request: kept; the request \
                 will be denied"
            );
            return Ok(());
        };
        same_case(&reservation, release.case_id, E::NAME)?;
        match reservation.status {
            Status::Pending => {
                ledger::close_reservation(
                    work.db(),
                    reservation.reservation_id,
                    Status::Released,
                    Some(release.cause),
                    &now,
                )
                .await?;
                tracing::info!(
                    reservation_id = %reservation.reservation_id,
                    cause = release.cause.code(),
                    "pending request withdrawn; nothing was reserved"
                );
            }
            Status::Reserved if reservation.outstanding_ore() > 0 => {
                let amount = reservation.outstanding_ore();
                let reservation = ledger::post(
                    work.db(),
                    &reservation,
                    Movement::Release(release.cause),
                    amount,
                    event_id,
                    &now,
                )
                .await?;
                let reservation = ledger::close_reservation(
                    work.db(),
                    reservation.reservation_id,
                    Status::Released,
                    Some(release.cause),
                    &now,
                )
                .await?;
                let event = reservation.released_event(amount, release.cause, now.at);
                work.publish(&subject(&reservation), &event).await?;
                tracing::info!(
                    reservation_id = %reservation.reservation_id,
                    cause = release.cause.code(),
                    amount_ore = amount,
                    "funds released"
                );
                metrics::counter!(RELEASES, "cause" => release.cause.code()).increment(1);
            }
            status => tracing::info!(
                reservation_id = %reservation.reservation_id,
                status = status.code(),
                "nothing outstanding to release"
            ),
        }
        Ok(())
    }

    async fn disburse<E: DisbursesFunds>(
        &self,
        work: &mut UnitOfWork,
        event: &E,
        envelope: &EventEnvelope,
    ) -> Result<(), HandlerError> {
        let disbursement = event.disbursement()?;
        let (event_id, now) = booking(envelope, self.clock.as_ref())?;
        let commitment = disbursement.commitment;
        let reservation = ledger::find_reservation(work.db(), commitment, Lock::ForUpdate)
            .await?
            .ok_or_else(|| {
                HandlerError::Permanent(format!(
                    "{} of {} øre for {commitment}, which has no reservation",
                    E::NAME,
                    disbursement.amount_ore
                ))
            })?;
        same_case(&reservation, disbursement.case_id, E::NAME)?;
        if let Some((paid_from, amount)) =
            ledger::disbursement_of(work.db(), disbursement.source).await?
        {
            if paid_from == reservation.reservation_id && amount == disbursement.amount_ore {
                tracing::info!(source_id = %disbursement.source.id, "claim or invoice disbursed already; repeat ignored");
                return Ok(());
            }
            return Err(HandlerError::Permanent(format!(
                "{} {} was disbursed before with other content ({amount} øre from reservation \
                 {paid_from}; now {} øre for {commitment})",
                disbursement.source.kind.code(),
                disbursement.source.id,
                disbursement.amount_ore
            )));
        }
        let outstanding = reservation.outstanding_ore();
        if reservation.status != Status::Reserved {
            return Err(HandlerError::Permanent(format!(
                "{} for {commitment}, whose reservation is {} with nothing reserved to disburse",
                E::NAME,
                reservation.status.code()
            )));
        }
        if disbursement.amount_ore > outstanding {
            return Err(HandlerError::Permanent(format!(
                "disbursement of {} øre is larger than the outstanding reservation of {outstanding} \
                 øre for {commitment}; not booked",
                disbursement.amount_ore
            )));
        }
        let source = disbursement.source;
        let reservation = ledger::post(
            work.db(),
            &reservation,
            Movement::Disburse(source),
            disbursement.amount_ore,
            event_id,
            &now,
        )
        .await?;
        let remainder = reservation.outstanding_ore();
        let cause = (remainder > 0).then_some(ReleaseCause::SettlementRemainder);
        let reservation = match cause {
            Some(cause) => {
                ledger::post(
                    work.db(),
                    &reservation,
                    Movement::Release(cause),
                    remainder,
                    event_id,
                    &now,
                )
                .await?
            }
            None => reservation,
        };
        let reservation = ledger::close_reservation(
            work.db(),
            reservation.reservation_id,
            Status::Settled,
            cause,
            &now,
        )
        .await?;
        let disbursed = reservation.disbursed_event(disbursement.amount_ore, source, now.at);
        work.publish(&subject(&reservation), &disbursed).await?;
        if let Some(cause) = cause {
            let released = reservation.released_event(remainder, cause, now.at);
            work.publish(&subject(&reservation), &released).await?;
        }
        tracing::info!(
            reservation_id = %reservation.reservation_id,
            amount_ore = disbursement.amount_ore,
            remainder_ore = remainder,
            "funds disbursed; reservation settled"
        );
        metrics::counter!(DISBURSEMENTS, "source" => source.kind.code()).increment(1);
        Ok(())
    }
}

/// Refuses an event about `reservation` that names another case.
fn same_case(
    reservation: &StoredReservation,
    case_id: Uuid,
    event: &str,
) -> Result<(), HandlerError> {
    if reservation.request.case_id == case_id {
        return Ok(());
    }
    Err(HandlerError::Permanent(format!(
        "{event} names case {case_id}, but {} belongs to case {}",
        reservation.request.commitment, reservation.request.case_id
    )))
}

/// Denies a request budget cannot honour as stated (INVALID_REQUEST), so its saga ends.
async fn deny_invalid(
    work: &mut UnitOfWork,
    request: &FundsRequest,
    problem: &str,
    event_id: Uuid,
    now: &BookingTime,
) -> Result<(), HandlerError> {
    let recorded = Recorded::Answered(Answer::Denied(DeniedReason::InvalidRequest, 0));
    let Some(denied) =
        ledger::insert_reservation(work.db(), request, recorded, event_id, now).await?
    else {
        return repeat_of_twin(work, request).await;
    };
    if let Some(event) = denied.denied_event() {
        work.publish(&subject(&denied), &event).await?;
    }
    tracing::warn!(
        reservation_id = %denied.reservation_id,
        commitment = %request.commitment,
        problem,
        "funds request denied as invalid"
    );
    metrics::counter!(REQUESTS, "outcome" => "invalid").increment(1);
    Ok(())
}

/// The answer to a request whose twin was recorded by another unit of work meanwhile.
async fn repeat_of_twin(work: &mut UnitOfWork, request: &FundsRequest) -> Result<(), HandlerError> {
    let first = ledger::find_reservation(work.db(), request.commitment, Lock::None)
        .await?
        .ok_or_else(|| {
            HandlerError::Transient(anyhow::anyhow!(
                "the reservation of {} vanished",
                request.commitment
            ))
        })?;
    repeat(work, request, &first).await
}

/// A request for a commitment budget has a request for already: the same content gets the
/// first answer again (nothing while it is PENDING); other content is a producer's bug.
async fn repeat(
    work: &mut UnitOfWork,
    request: &FundsRequest,
    first: &StoredReservation,
) -> Result<(), HandlerError> {
    let differences = request.differences(&first.request);
    if !differences.is_empty() {
        return Err(HandlerError::Permanent(format!(
            "{} was requested before with other content: {}",
            request.commitment,
            differences.join("; ")
        )));
    }
    if let Some(event) = first.reserved_event() {
        work.publish(&subject(first), &event).await?;
    } else if let Some(event) = first.denied_event() {
        work.publish(&subject(first), &event).await?;
    }
    tracing::info!(
        reservation_id = %first.reservation_id,
        status = first.status.code(),
        "repeated funds request: the first answer stands"
    );
    metrics::counter!(REQUESTS, "outcome" => "repeat").increment(1);
    Ok(())
}

/// Budget's answer to a request for `amount_ore` from an appropriation whose figures (locked)
/// are `balance`: reserved if it fits, else denied with what is available.
pub(crate) fn decide(balance: &Balance, amount_ore: i64) -> Answer {
    if balance.fits(amount_ore) {
        Answer::Reserved
    } else {
        Answer::Denied(DeniedReason::InsufficientFunds, balance.available_ore())
    }
}

/// Answers PENDING request `pending` from an appropriation whose figures (locked) are
/// `balance`: records and books the answer, publishes it and updates `balance`.
pub(crate) async fn answer_pending(
    work: &mut UnitOfWork,
    balance: &mut Balance,
    pending: &StoredReservation,
    now: &BookingTime,
) -> Result<(), ApiError> {
    let answer = decide(balance, pending.request.amount_ore);
    let answered =
        ledger::answer_reservation(work.db(), pending.reservation_id, answer, now).await?;
    book_answer(work, balance, answered, pending.request_event_id, now).await
}

/// Books a recorded answer: posts the reserve entry of a reservation (and adds it to
/// `balance`), and publishes FundsReserved or FundsDenied.
async fn book_answer(
    work: &mut UnitOfWork,
    balance: &mut Balance,
    answered: StoredReservation,
    event_id: Uuid,
    now: &BookingTime,
) -> Result<(), ApiError> {
    let amount = answered.request.amount_ore;
    if answered.status == Status::Reserved {
        let reserved = ledger::post(
            work.db(),
            &answered,
            Movement::Reserve,
            amount,
            event_id,
            now,
        )
        .await?;
        balance.reserved_ore += amount;
        if let Some(event) = reserved.reserved_event() {
            work.publish(&subject(&reserved), &event).await?;
        }
        tracing::info!(
            reservation_id = %reserved.reservation_id,
            commitment = %reserved.request.commitment,
            county = %reserved.request.county_code,
            amount_ore = amount,
            "funds reserved"
        );
        metrics::counter!(REQUESTS, "outcome" => "reserved").increment(1);
    } else if let Some(event) = answered.denied_event() {
        work.publish(&subject(&answered), &event).await?;
        tracing::info!(
            reservation_id = %answered.reservation_id,
            commitment = %answered.request.commitment,
            requested_ore = amount,
            available_ore = event.available_ore,
            "funds denied: insufficient funds"
        );
        metrics::counter!(REQUESTS, "outcome" => "denied").increment(1);
    }
    Ok(())
}

/// Publishes ThresholdCrossed for every level of `appropriation` that its current figures (as
/// the caller keeps them) pass and that was not announced yet, and records them as announced.
pub(crate) async fn announce_thresholds(
    work: &mut UnitOfWork,
    appropriation: &mut StoredAppropriation,
    now: &BookingTime,
) -> Result<(), ApiError> {
    let crossed = newly_crossed(
        &appropriation.thresholds,
        &appropriation.crossed,
        &appropriation.balance,
    );
    if crossed.is_empty() {
        return Ok(());
    }
    appropriation.crossed.extend(&crossed);
    appropriation.crossed.sort_unstable();
    let id = appropriation.appropriation_id;
    ledger::set_crossed(work.db(), id, &appropriation.crossed).await?;
    let subject = EventSubject::aggregate(id.to_string());
    for level in crossed {
        work.publish(&subject, &appropriation.threshold_event(level, now.at))
            .await?;
        tracing::warn!(
            appropriation_id = %id,
            budget_year = appropriation.budget_year,
            account = %appropriation.account,
            threshold_percent = level,
            used_basis_points = appropriation.balance.used_basis_points(),
            "usage threshold crossed"
        );
    }
    Ok(())
}
