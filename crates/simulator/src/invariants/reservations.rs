//! Per reservation, reserved = disbursed + released once the system has settled; and every
//! case's money as its task saw it agrees with budget's reservations for that case.
//!
//! Why both: budget's own CHECK constraints keep a reservation from going negative, but not
//! from staying open — a grant whose expiry never reached budget keeps money committed that
//! nobody will ever pay out, and the appropriation runs out early. And budget can be
//! internally consistent while disagreeing with what the case went through (a refund booked
//! against the wrong reservation, a release that never came): only the case's own view shows
//! that.
//!
//! What is compared with a [`CaseOutcome`]: the sums over *every* reservation budget holds for
//! the case's id (a pilot case with a decline chain has one per order; one that fell back to
//! the regular flow has a grant besides), so [`CaseMoney`](crate::plan::CaseMoney) holds the
//! case's totals. A reservation still outstanding at the end is allowed only where the case's
//! outcome says the same money is still reserved (e.g. a grant whose refund deadline lies after
//! the simulated year); any other open one is a leak.

use std::collections::HashMap;

use ekb_proto::v1::{CommitmentKind, ListReservationsRequest, Reservation, ReservationStatus};

use super::{
    Violation,
    grpc::{retrying, system_token},
};
use crate::{plan::CaseOutcome, timeline::Sim};

/// A reservation's balances do not add up, or it is still open with nothing expecting that.
pub const RESERVATION_BALANCE: &str = "reservation balance";
/// A case's money as its task saw it differs from budget's reservations for the case.
pub const CASE_MONEY: &str = "case money agrees with budget";

/// Every reservation (and denied or pending request) budget holds for `years`.
pub async fn list(sim: &Sim, years: &[i32]) -> anyhow::Result<Vec<Reservation>> {
    let mut all = Vec::new();
    for &year in years {
        let mut page_token = String::new();
        loop {
            let token = system_token(sim);
            let request = ListReservationsRequest {
                budget_year: year,
                page_size: 500,
                page_token: page_token.clone(),
                ..Default::default()
            };
            let page = retrying("budget ListReservations", || {
                let mut budget = sim.clients.budget.clone();
                let request = ekb_testkit::services::with_bearer(request.clone(), &token);
                async move { budget.list_reservations(request).await }
            })
            .await?;
            all.extend(page.reservations);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
    }
    Ok(all)
}

/// A reservation's commitment as (kind, id), or `None` if budget gave none.
pub fn commitment_of(reservation: &Reservation) -> Option<(CommitmentKind, &str)> {
    let commitment = reservation.commitment.as_ref()?;
    let kind = CommitmentKind::try_from(commitment.kind).unwrap_or(CommitmentKind::Unspecified);
    Some((kind, commitment.commitment_id.as_str()))
}

/// The money figures summed over a case's reservations.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Totals {
    reserved: i64,
    disbursed: i64,
    released: i64,
    outstanding: i64,
}

/// Judges `reservations` on their own and against `outcomes`.
pub fn judge(reservations: &[Reservation], outcomes: &[CaseOutcome]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut by_case: HashMap<&str, Totals> = HashMap::new();
    let outcome_cases: HashMap<&str, &CaseOutcome> = outcomes
        .iter()
        .filter(|outcome| !outcome.case_id.is_empty())
        .map(|outcome| (outcome.case_id.as_str(), outcome))
        .collect();
    for reservation in reservations {
        violations.extend(balance_violations(reservation));
        let totals = by_case.entry(reservation.case_id.as_str()).or_default();
        totals.reserved += reservation.reserved_ore;
        totals.disbursed += reservation.disbursed_ore;
        totals.released += reservation.released_ore;
        totals.outstanding += reservation.outstanding_ore;
        if reservation.outstanding_ore > 0
            && !outcome_cases.contains_key(reservation.case_id.as_str())
        {
            violations.push(Violation::new(
                RESERVATION_BALANCE,
                format!(
                    "reservation {} ({}) of case {} is still {} with {} øre outstanding, and no \
                     case of the simulation expects it",
                    reservation.reservation_id,
                    describe_commitment(reservation),
                    reservation.case_id,
                    status_name(reservation.status),
                    reservation.outstanding_ore
                ),
            ));
        }
    }
    let by_commitment: HashMap<(CommitmentKind, &str), &Reservation> = reservations
        .iter()
        .filter_map(|reservation| commitment_of(reservation).map(|key| (key, reservation)))
        .collect();
    for outcome in outcomes {
        if outcome.case_id.is_empty() {
            continue;
        }
        let budget = by_case
            .get(outcome.case_id.as_str())
            .copied()
            .unwrap_or_default();
        let money = &outcome.money;
        let expected = Totals {
            reserved: money.reserved_ore,
            disbursed: money.disbursed_ore,
            released: money.released_ore,
            outstanding: money.reserved_ore - money.disbursed_ore - money.released_ore,
        };
        if budget != expected {
            violations.push(Violation::new(
                CASE_MONEY,
                format!(
                    "case #{} ({}): the case saw reserved {} / disbursed {} / released {} øre, \
                     budget holds reserved {} / disbursed {} / released {} / outstanding {} øre",
                    outcome.number,
                    outcome.case_id,
                    expected.reserved,
                    expected.disbursed,
                    expected.released,
                    budget.reserved,
                    budget.disbursed,
                    budget.released,
                    budget.outstanding
                ),
            ));
        }
        if let Some((kind, id)) = &money.commitment {
            match by_commitment.get(&(*kind, id.as_str())) {
                None => violations.push(Violation::new(
                    CASE_MONEY,
                    format!(
                        "case #{}: budget has no reservation for its {} {id}",
                        outcome.number,
                        kind.as_str_name()
                    ),
                )),
                Some(reservation) if reservation.case_id != outcome.case_id => {
                    violations.push(Violation::new(
                        CASE_MONEY,
                        format!(
                            "case #{}: budget books its {} {id} under case {}, not {}",
                            outcome.number,
                            kind.as_str_name(),
                            reservation.case_id,
                            outcome.case_id
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    violations
}

/// What is wrong with one reservation's own figures.
fn balance_violations(reservation: &Reservation) -> Vec<Violation> {
    let mut wrong = Vec::new();
    let status =
        ReservationStatus::try_from(reservation.status).unwrap_or(ReservationStatus::Unspecified);
    let (reserved, disbursed, released, outstanding) = (
        reservation.reserved_ore,
        reservation.disbursed_ore,
        reservation.released_ore,
        reservation.outstanding_ore,
    );
    if reserved != disbursed + released + outstanding || outstanding < 0 {
        wrong.push(format!(
            "reserved {reserved} ≠ disbursed {disbursed} + released {released} + outstanding \
             {outstanding} øre"
        ));
    }
    match status {
        ReservationStatus::Settled | ReservationStatus::Released | ReservationStatus::Denied
            if outstanding != 0 =>
        {
            wrong.push(format!(
                "{} but {outstanding} øre outstanding: reserved {reserved} ≠ disbursed \
                 {disbursed} + released {released}",
                status_name(reservation.status)
            ));
        }
        ReservationStatus::Settled if disbursed == 0 => {
            wrong.push("SETTLED without a disbursement".to_owned());
        }
        ReservationStatus::Released if disbursed != 0 => {
            wrong.push(format!("RELEASED after disbursing {disbursed} øre"));
        }
        ReservationStatus::Denied if reserved != 0 => {
            wrong.push(format!("DENIED with {reserved} øre reserved"));
        }
        ReservationStatus::Pending => {
            wrong.push("still PENDING: no appropriation answered it".to_owned());
        }
        ReservationStatus::Unspecified => wrong.push("no status".to_owned()),
        _ => {}
    }
    wrong
        .into_iter()
        .map(|what| {
            Violation::new(
                RESERVATION_BALANCE,
                format!(
                    "reservation {} ({}) of case {}: {what}",
                    reservation.reservation_id,
                    describe_commitment(reservation),
                    reservation.case_id
                ),
            )
        })
        .collect()
}

fn describe_commitment(reservation: &Reservation) -> String {
    match commitment_of(reservation) {
        Some((kind, id)) => format!("{} {id}", kind.as_str_name()),
        None => "no commitment".to_owned(),
    }
}

fn status_name(status: i32) -> &'static str {
    ReservationStatus::try_from(status)
        .unwrap_or(ReservationStatus::Unspecified)
        .as_str_name()
}

#[cfg(test)]
mod tests {
    use ekb_proto::v1::Commitment;

    use super::*;
    use crate::plan::{CaseMoney, Path};
    use crate::regular::RegularPath;

    fn reservation(
        case: &str,
        kind: CommitmentKind,
        id: &str,
        status: ReservationStatus,
        [reserved, disbursed, released]: [i64; 3],
    ) -> Reservation {
        Reservation {
            reservation_id: format!("r-{id}"),
            commitment: Some(Commitment {
                kind: kind as i32,
                commitment_id: id.to_owned(),
            }),
            case_id: case.to_owned(),
            status: status as i32,
            requested_ore: reserved,
            reserved_ore: reserved,
            disbursed_ore: disbursed,
            released_ore: released,
            outstanding_ore: reserved - disbursed - released,
            ..Default::default()
        }
    }

    fn outcome(
        case: &str,
        commitment: Option<(CommitmentKind, &str)>,
        [reserved, disbursed, released]: [i64; 3],
    ) -> CaseOutcome {
        let path = Path::Regular(any_regular_path());
        CaseOutcome {
            number: 7,
            planned: path,
            observed: path,
            case_id: case.to_owned(),
            fell_back: false,
            money: CaseMoney {
                commitment: commitment.map(|(kind, id)| (kind, id.to_owned())),
                reserved_ore: reserved,
                disbursed_ore: disbursed,
                released_ore: released,
                paid_ore: disbursed,
            },
        }
    }

    fn any_regular_path() -> RegularPath {
        crate::regular::RegularPath::ALL[0]
    }

    #[test]
    fn settled_and_released_reservations_that_add_up_and_agree_with_their_cases_pass() {
        let reservations = [
            reservation(
                "c1",
                CommitmentKind::Grant,
                "g1",
                ReservationStatus::Settled,
                [1000, 800, 200],
            ),
            reservation(
                "c2",
                CommitmentKind::PilotOrder,
                "o1",
                ReservationStatus::Released,
                [500, 0, 500],
            ),
            reservation(
                "c2",
                CommitmentKind::PilotOrder,
                "o2",
                ReservationStatus::Settled,
                [500, 500, 0],
            ),
            reservation(
                "c3",
                CommitmentKind::Grant,
                "g3",
                ReservationStatus::Denied,
                [0, 0, 0],
            ),
        ];
        let outcomes = [
            outcome("c1", Some((CommitmentKind::Grant, "g1")), [1000, 800, 200]),
            outcome(
                "c2",
                Some((CommitmentKind::PilotOrder, "o2")),
                [1000, 500, 500],
            ),
            outcome("c3", None, [0, 0, 0]),
        ];
        assert_eq!(judge(&reservations, &outcomes), vec![]);
    }

    #[test]
    fn an_open_reservation_no_case_expects_is_a_leak() {
        let reservations = [reservation(
            "c9",
            CommitmentKind::Grant,
            "g9",
            ReservationStatus::Reserved,
            [1000, 0, 0],
        )];
        let violations = judge(&reservations, &[]);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].invariant, RESERVATION_BALANCE);
        assert!(
            violations[0].detail.contains("1000 øre outstanding"),
            "{}",
            violations[0]
        );
    }

    #[test]
    fn an_open_reservation_its_case_expects_passes_but_a_different_amount_does_not() {
        let reservations = [reservation(
            "c1",
            CommitmentKind::Grant,
            "g1",
            ReservationStatus::Reserved,
            [1000, 0, 0],
        )];
        let expected = [outcome(
            "c1",
            Some((CommitmentKind::Grant, "g1")),
            [1000, 0, 0],
        )];
        assert_eq!(judge(&reservations, &expected), vec![]);
        let other = [outcome(
            "c1",
            Some((CommitmentKind::Grant, "g1")),
            [1000, 0, 1000],
        )];
        let violations = judge(&reservations, &other);
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].invariant, CASE_MONEY);
        assert!(
            violations[0].detail.starts_with("case #7"),
            "{}",
            violations[0]
        );
    }

    #[test]
    fn terminal_reservations_with_money_outstanding_or_broken_sums_are_violations() {
        let mut broken = reservation(
            "c1",
            CommitmentKind::Grant,
            "g1",
            ReservationStatus::Settled,
            [1000, 800, 0],
        );
        broken.outstanding_ore = 0; // says nothing is outstanding, but 200 øre are unaccounted for
        let pending = reservation(
            "c2",
            CommitmentKind::Grant,
            "g2",
            ReservationStatus::Pending,
            [0, 0, 0],
        );
        let released_after_paying = reservation(
            "c3",
            CommitmentKind::Grant,
            "g3",
            ReservationStatus::Released,
            [1000, 400, 600],
        );
        let violations = judge(&[broken, pending, released_after_paying], &[]);
        let details: Vec<&str> = violations.iter().map(|v| v.detail.as_str()).collect();
        assert_eq!(violations.len(), 3, "{details:#?}");
        assert!(details[0].contains("reserved 1000 ≠ disbursed 800 + released 0 + outstanding 0"));
        assert!(details[1].contains("PENDING"));
        assert!(details[2].contains("RELEASED after disbursing 400"));
    }

    #[test]
    fn a_case_whose_commitment_budget_does_not_know_is_a_violation() {
        let outcomes = [outcome(
            "c1",
            Some((CommitmentKind::Grant, "g1")),
            [0, 0, 0],
        )];
        let violations = judge(&[], &outcomes);
        assert_eq!(violations.len(), 1);
        assert!(
            violations[0]
                .detail
                .contains("no reservation for its COMMITMENT_KIND_GRANT g1")
        );
    }
}
