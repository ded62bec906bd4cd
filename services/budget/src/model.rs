//! Budget's vocabulary: commitments, reservation statuses, denial reasons, release causes,
//! ledger movements and disbursement sources, each with the code it is stored under and its
//! contract value; and the stored appropriation and reservation with their wire forms and the
//! events that report them.

use ekb_domain::Flow;
use ekb_proto::{
    convert::{flow_to_wire, timestamp_to_wire},
    v1,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    requests::FundsRequest,
    rules::{Account, Balance},
};

ekb_domain::coded_enum! {
    /// What money is reserved for.
    CommitmentKind => v1::CommitmentKind {
        /// A grant (tilsagn) in the regular flow.
        Grant = "GRANT",
        /// A call-off order (avrop) in the § 9a pilot.
        PilotOrder = "PILOT_ORDER",
    }
}

ekb_domain::coded_enum! {
    /// Where a reservation is.
    Status => v1::ReservationStatus {
        /// Waiting for the year's appropriation.
        Pending = "PENDING",
        /// Money reserved and outstanding.
        Reserved = "RESERVED",
        /// Disbursed, the remainder released.
        Settled = "SETTLED",
        /// Released without a disbursement (or a pending request withdrawn).
        Released = "RELEASED",
        /// Denied; nothing reserved.
        Denied = "DENIED",
    }
}

ekb_domain::coded_enum! {
    /// Why a request was denied.
    DeniedReason => v1::FundsDeniedReason {
        /// Less is available than requested.
        InsufficientFunds = "INSUFFICIENT_FUNDS",
        /// The request cannot be honoured as stated.
        InvalidRequest = "INVALID_REQUEST",
    }
}

ekb_domain::coded_enum! {
    /// Why reserved money was released.
    ReleaseCause => v1::ReleaseCause {
        /// GrantExpired.
        GrantExpired = "GRANT_EXPIRED",
        /// ApplicationWithdrawn.
        ApplicationWithdrawn = "APPLICATION_WITHDRAWN",
        /// ApplicationRejected.
        ApplicationRejected = "APPLICATION_REJECTED",
        /// OrderDeclined.
        OrderDeclined = "ORDER_DECLINED",
        /// OrderCancelled.
        OrderCancelled = "ORDER_CANCELLED",
        /// What a disbursement left of the reservation.
        SettlementRemainder = "SETTLEMENT_REMAINDER",
        /// GrantCancelled.
        GrantCancelled = "GRANT_CANCELLED",
        /// OrderExpired.
        OrderExpired = "ORDER_EXPIRED",
    }
}

ekb_domain::coded_enum! {
    /// What a disbursement pays.
    SourceKind => v1::DisbursementSourceKind {
        /// An approved refund claim (regular flow).
        RefundClaim = "REFUND_CLAIM",
        /// An approved supplier invoice (pilot flow).
        SupplierInvoice = "SUPPLIER_INVOICE",
    }
}

/// How money moves in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// Money reserved for a commitment.
    Reserve,
    /// Reserved money given back to the appropriation.
    Release(ReleaseCause),
    /// Reserved money paid out.
    Disburse(Source),
}

impl Movement {
    /// The code stored in `ledger_entries.movement`.
    pub const fn code(self) -> &'static str {
        match self {
            Movement::Reserve => "RESERVE",
            Movement::Release(_) => "RELEASE",
            Movement::Disburse(_) => "DISBURSE",
        }
    }
}

impl CommitmentKind {
    /// The flow a commitment of this kind is reported under.
    pub const fn flow(self) -> Flow {
        match self {
            CommitmentKind::Grant => Flow::Regular,
            CommitmentKind::PilotOrder => Flow::Pilot,
        }
    }
}

/// A grant or an order: budget's idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Commitment {
    /// Grant or order.
    pub kind: CommitmentKind,
    /// The grant id or order id.
    pub id: Uuid,
}

impl Commitment {
    /// The contract's commitment.
    pub fn to_wire(self) -> v1::Commitment {
        v1::Commitment {
            kind: self.kind.to_wire() as i32,
            commitment_id: self.id.to_string(),
        }
    }
}

impl std::fmt::Display for Commitment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.code(), self.id)
    }
}

/// The approved claim or invoice a disbursement pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Claim or invoice.
    pub kind: SourceKind,
    /// The claim id or invoice id.
    pub id: Uuid,
}

impl Source {
    /// The contract's source.
    pub fn to_wire(self) -> v1::DisbursementSource {
        v1::DisbursementSource {
            kind: self.kind.to_wire() as i32,
            source_id: self.id.to_string(),
        }
    }
}

/// The instant a unit of work books at, and the Europe/Oslo month it is reported under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingTime {
    /// The instant, cut to microseconds (PostgreSQL's precision).
    pub at: OffsetDateTime,
    /// `YYYY-MM` in Europe/Oslo.
    pub month: String,
}

impl BookingTime {
    /// The current instant of `clock` (already cut to microseconds, as PostgreSQL stores it).
    pub fn now(clock: &dyn ekb_platform::clock::Clock) -> Self {
        let at = clock.now();
        BookingTime {
            month: crate::rules::oslo_month(at),
            at,
        }
    }
}

/// The contract's account.
pub fn account_to_wire(chapter: i32, post: i32) -> v1::BudgetAccount {
    v1::BudgetAccount { chapter, post }
}

/// A stored appropriation with its balances.
#[derive(Debug, Clone)]
pub struct StoredAppropriation {
    /// Id (the Kafka key of ThresholdCrossed).
    pub appropriation_id: Uuid,
    /// Budget year.
    pub budget_year: i32,
    /// Account.
    pub account: Account,
    /// Appropriated amount and the sums of its entries.
    pub balance: Balance,
    /// Alert levels, ascending.
    pub thresholds: Vec<i32>,
    /// Levels announced, ascending.
    pub crossed: Vec<i32>,
    /// Why it was last set.
    pub note: String,
    /// Grows by one per change.
    pub version: i64,
    /// When it was last set.
    pub updated_at: OffsetDateTime,
}

impl StoredAppropriation {
    /// The contract's appropriation with its current figures.
    pub fn to_wire(&self) -> v1::Appropriation {
        let balance = &self.balance;
        v1::Appropriation {
            appropriation_id: self.appropriation_id.to_string(),
            budget_year: self.budget_year,
            account: Some(account_to_wire(self.account.chapter(), self.account.post())),
            appropriated_ore: balance.appropriated_ore,
            threshold_percents: self.thresholds.clone(),
            crossed_threshold_percents: self.crossed.clone(),
            outstanding_ore: balance.outstanding_ore(),
            disbursed_ore: balance.disbursed_ore,
            released_ore: balance.released_ore,
            committed_ore: balance.committed_ore(),
            available_ore: balance.available_ore(),
            used_basis_points: balance.used_basis_points(),
            version: self.version,
            updated_at: Some(timestamp_to_wire(self.updated_at)),
        }
    }

    /// ThresholdCrossed for `level`, at `at`.
    pub fn threshold_event(&self, level: i32, at: OffsetDateTime) -> v1::ThresholdCrossed {
        v1::ThresholdCrossed {
            appropriation_id: self.appropriation_id.to_string(),
            budget_year: self.budget_year,
            account: Some(account_to_wire(self.account.chapter(), self.account.post())),
            threshold_percent: level,
            appropriated_ore: self.balance.appropriated_ore,
            committed_ore: self.balance.committed_ore(),
            used_basis_points: self.balance.used_basis_points(),
            crossed_at: Some(timestamp_to_wire(at)),
        }
    }
}

/// A stored reservation: the request for one commitment and what became of it.
#[derive(Debug, Clone)]
pub struct StoredReservation {
    /// Id.
    pub reservation_id: Uuid,
    /// Order of arrival.
    pub sequence: i64,
    /// What was requested: commitment, case, county, year, account and amount.
    pub request: FundsRequest,
    /// Status.
    pub status: Status,
    /// Amount reserved (sum of its reserve entries).
    pub reserved_ore: i64,
    /// Disbursed from it (sum of its disburse entries).
    pub disbursed_ore: i64,
    /// Released from it (sum of its release entries).
    pub released_ore: i64,
    /// Why it was denied.
    pub denied_reason: Option<DeniedReason>,
    /// What was available when it was denied.
    pub available_when_denied_ore: Option<i64>,
    /// Why it was released.
    pub release_cause: Option<ReleaseCause>,
    /// The event that asked for it.
    pub request_event_id: Uuid,
    /// When budget received the request.
    pub created_at: OffsetDateTime,
    /// When budget answered it.
    pub answered_at: Option<OffsetDateTime>,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

impl StoredReservation {
    /// Reserved and neither disbursed nor released.
    pub fn outstanding_ore(&self) -> i64 {
        self.reserved_ore - self.disbursed_ore - self.released_ore
    }

    /// The flow it is reported under.
    pub fn flow(&self) -> Flow {
        self.request.commitment.kind.flow()
    }

    fn account_wire(&self) -> Option<v1::BudgetAccount> {
        Some(account_to_wire(self.request.chapter, self.request.post))
    }

    /// The contract's reservation.
    pub fn to_wire(&self) -> v1::Reservation {
        v1::Reservation {
            reservation_id: self.reservation_id.to_string(),
            commitment: Some(self.request.commitment.to_wire()),
            case_id: self.request.case_id.to_string(),
            county_code: self.request.county_code.clone(),
            flow: flow_to_wire(self.flow()) as i32,
            budget_year: self.request.budget_year,
            account: self.account_wire(),
            status: self.status.to_wire() as i32,
            requested_ore: self.request.amount_ore,
            reserved_ore: self.reserved_ore,
            disbursed_ore: self.disbursed_ore,
            released_ore: self.released_ore,
            outstanding_ore: self.outstanding_ore(),
            denied_reason: self
                .denied_reason
                .map_or(0, |reason| reason.to_wire() as i32),
            created_at: Some(timestamp_to_wire(self.created_at)),
            updated_at: Some(timestamp_to_wire(self.updated_at)),
            answered_at: self.answered_at.map(timestamp_to_wire),
            release_cause: self.release_cause.map_or(0, |cause| cause.to_wire() as i32),
        }
    }

    /// The answer FundsReserved, as first published (`None` unless money was reserved).
    pub fn reserved_event(&self) -> Option<v1::FundsReserved> {
        (self.reserved_ore > 0).then(|| v1::FundsReserved {
            reservation_id: self.reservation_id.to_string(),
            commitment: Some(self.request.commitment.to_wire()),
            case_id: self.request.case_id.to_string(),
            county_code: self.request.county_code.clone(),
            flow: flow_to_wire(self.flow()) as i32,
            budget_year: self.request.budget_year,
            account: self.account_wire(),
            amount_ore: self.reserved_ore,
            reserved_at: self.answered_at.map(timestamp_to_wire),
        })
    }

    /// The answer FundsDenied, as first published (`None` unless it was denied).
    pub fn denied_event(&self) -> Option<v1::FundsDenied> {
        let reason = self.denied_reason?;
        Some(v1::FundsDenied {
            commitment: Some(self.request.commitment.to_wire()),
            case_id: self.request.case_id.to_string(),
            county_code: self.request.county_code.clone(),
            flow: flow_to_wire(self.flow()) as i32,
            budget_year: self.request.budget_year,
            account: self.account_wire(),
            requested_ore: self.request.amount_ore,
            available_ore: self.available_when_denied_ore.unwrap_or_default(),
            reason: reason.to_wire() as i32,
            denied_at: self.answered_at.map(timestamp_to_wire),
        })
    }

    /// FundsReleased of `amount_ore` for `cause`, at `at`.
    pub fn released_event(
        &self,
        amount_ore: i64,
        cause: ReleaseCause,
        at: OffsetDateTime,
    ) -> v1::FundsReleased {
        v1::FundsReleased {
            reservation_id: self.reservation_id.to_string(),
            commitment: Some(self.request.commitment.to_wire()),
            case_id: self.request.case_id.to_string(),
            county_code: self.request.county_code.clone(),
            flow: flow_to_wire(self.flow()) as i32,
            budget_year: self.request.budget_year,
            account: self.account_wire(),
            amount_ore,
            cause: cause.to_wire() as i32,
            released_at: Some(timestamp_to_wire(at)),
        }
    }

    /// FundsDisbursed of `amount_ore` paying `source`, at `at`.
    pub fn disbursed_event(
        &self,
        amount_ore: i64,
        source: Source,
        at: OffsetDateTime,
    ) -> v1::FundsDisbursed {
        v1::FundsDisbursed {
            reservation_id: self.reservation_id.to_string(),
            commitment: Some(self.request.commitment.to_wire()),
            case_id: self.request.case_id.to_string(),
            county_code: self.request.county_code.clone(),
            flow: flow_to_wire(self.flow()) as i32,
            budget_year: self.request.budget_year,
            account: self.account_wire(),
            amount_ore,
            source: Some(source.to_wire()),
            disbursed_at: Some(timestamp_to_wire(at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_and_wire_value_round_trips() {
        for kind in CommitmentKind::ALL {
            assert_eq!(CommitmentKind::parse_code(kind.code()), Some(*kind));
            assert_eq!(
                CommitmentKind::from_wire(kind.to_wire() as i32),
                Some(*kind)
            );
        }
        for status in Status::ALL {
            assert_eq!(Status::parse_code(status.code()), Some(*status));
            assert_eq!(Status::from_wire(status.to_wire() as i32), Some(*status));
        }
        for cause in ReleaseCause::ALL {
            assert_eq!(ReleaseCause::parse_code(cause.code()), Some(*cause));
            assert_eq!(
                ReleaseCause::from_wire(cause.to_wire() as i32),
                Some(*cause)
            );
        }
        for reason in DeniedReason::ALL {
            assert_eq!(DeniedReason::parse_code(reason.code()), Some(*reason));
        }
        for kind in SourceKind::ALL {
            assert_eq!(SourceKind::parse_code(kind.code()), Some(*kind));
        }
        assert_eq!(Status::from_wire(0), None, "UNSPECIFIED is no status");
        assert_eq!(Status::from_wire(99), None);
        assert_eq!(CommitmentKind::parse_code("grant"), None);
    }

    #[test]
    fn the_flow_follows_the_commitment_kind() {
        assert_eq!(CommitmentKind::Grant.flow(), Flow::Regular);
        assert_eq!(CommitmentKind::PilotOrder.flow(), Flow::Pilot);
    }

    #[test]
    fn booking_time_follows_the_clock_and_has_its_oslo_month() {
        let now = BookingTime::now(&ekb_platform::clock::SystemClock);
        assert_eq!(now.at.nanosecond() % 1_000, 0);
        assert_eq!(now.month, crate::rules::oslo_month(now.at));
        // 23:30 UTC on 31 December is already January in Oslo.
        let clock =
            ekb_platform::clock::ManualClock::new(time::macros::datetime!(2026-12-31 23:30 UTC));
        let booked = BookingTime::now(&clock);
        assert_eq!(booked.at, time::macros::datetime!(2026-12-31 23:30 UTC));
        assert_eq!(booked.month, "2027-01");
    }
}
