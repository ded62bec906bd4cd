//! What the services say happened to a regular case, and which path that is.
//!
//! Why not echo the plan: the summary compares the model's paths with the services' states, and
//! the invariants need every case in the state its path leads to. So at the end of a case the
//! task reads applications (the application and applications' view of the grant), refunds (its
//! view of the grant, with the claims and their payments) and budget (the reservation), and
//! [`classify`] names the path those states make — or says what is not settled yet, or what
//! does not fit any path. The services learn of each other by events, so [`settled`] reads until
//! they agree (the simulated day stands still meanwhile).

use std::time::Duration;

use anyhow::bail;
use ekb_proto::v1::{
    self, ApplicationRejectionReason, ApplicationStatus, ClaimableGrantStatus, GrantStatus,
    RefundClaimStatus, RefundPaymentStatus, RefundRejectionReason, ReservationStatus,
};
use ekb_testkit::scenarios::{both_flows::reservation, regular::application, waits::STEP_TIMEOUT};

use super::{RegularPath, steps};
use crate::{
    plan::CaseMoney,
    timeline::{Caller, Sim},
};

/// How often the end of a case is read again while the services catch up.
const POLL: Duration = Duration::from_millis(200);

/// The states of one regular case in the three services that hold them.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The application, as applications holds it.
    pub application: v1::Application,
    /// Refunds' view of the grant and its claims; `None` without a grant or before refunds
    /// knows it.
    pub refunds: Option<v1::GetClaimableGrantResponse>,
    /// Budget's reservation for the grant; `None` without a grant id or before budget has it.
    pub reservation: Option<v1::Reservation>,
}

impl Observation {
    /// The grant id the application's money was last requested under, if any.
    pub fn grant_id(&self) -> Option<&str> {
        self.application
            .grant
            .as_ref()
            .map(|grant| grant.grant_id.as_str())
            .filter(|id| !id.is_empty())
    }

    /// The money the case moved, from budget's reservation, with `paid_ore` as the payment
    /// system (the simulator) recorded it.
    pub fn money(&self, paid_ore: i64) -> CaseMoney {
        let reservation = self.reservation.clone().unwrap_or_default();
        CaseMoney {
            commitment: self
                .grant_id()
                .map(|id| (v1::CommitmentKind::Grant, id.to_owned())),
            reserved_ore: reservation.reserved_ore,
            disbursed_ore: reservation.disbursed_ore,
            released_ore: reservation.released_ore,
            paid_ore,
        }
    }
}

/// Reads the case's states once: application `application_id`, refunds' view of its grant and
/// budget's reservation.
pub async fn read(sim: &Sim, application_id: &str) -> anyhow::Result<Observation> {
    let token = sim.token(&Caller::Caseworker);
    let application = application(&sim.clients, &token, application_id).await?;
    let mut observation = Observation {
        application,
        ..Observation::default()
    };
    if let Some(grant_id) = observation.grant_id().map(str::to_owned) {
        observation.refunds = steps::claimable_grant(sim, &grant_id).await?;
        observation.reservation =
            reservation(&sim.clients, &token, v1::CommitmentKind::Grant, &grant_id).await?;
    }
    Ok(observation)
}

/// Reads the case until its states name a path ([`classify`]), for at most the testkit's step
/// timeout; then fails with what was not settled.
pub async fn settled(
    sim: &Sim,
    application_id: &str,
) -> anyhow::Result<(RegularPath, Observation)> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let observation = read(sim, application_id).await?;
        match classify(&observation) {
            Ok(path) => return Ok((path, observation)),
            Err(unsettled) if tokio::time::Instant::now() >= deadline => {
                bail!("the services did not settle within {STEP_TIMEOUT:?}: {unsettled}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// The path the states in `observation` make, or what is not settled (or fits no path). Names
/// states only: an observation carries no fødselsnummer, but the text goes into errors.
pub fn classify(observation: &Observation) -> Result<RegularPath, String> {
    let application = &observation.application;
    let reservation = observation
        .reservation
        .as_ref()
        .map(v1::Reservation::status);
    let rejection = application
        .rejection
        .as_ref()
        .map(v1::ApplicationRejection::reason);
    match application.status() {
        ApplicationStatus::Withdrawn => {
            expect_reservation(reservation, &[None, Some(ReservationStatus::Released)])?;
            Ok(RegularPath::Withdrawn)
        }
        ApplicationStatus::FundsDenied => {
            expect_reservation(reservation, &[Some(ReservationStatus::Denied)])?;
            Ok(RegularPath::LackOfFunds)
        }
        ApplicationStatus::Rejected
            if rejection == Some(ApplicationRejectionReason::FundsDenied) =>
        {
            expect_reservation(reservation, &[Some(ReservationStatus::Denied)])?;
            Ok(RegularPath::LackOfFunds)
        }
        ApplicationStatus::Rejected => {
            expect_reservation(reservation, &[None])?;
            Ok(RegularPath::Rejected)
        }
        ApplicationStatus::Granted => granted(observation),
        other => Err(format!(
            "the application is still {}",
            name(other.as_str_name())
        )),
    }
}

/// The path of a GRANTED application, from the grant's end in refunds.
fn granted(observation: &Observation) -> Result<RegularPath, String> {
    let Some(refunds) = &observation.refunds else {
        return Err("refunds does not know the grant yet".to_owned());
    };
    let grant = refunds.grant.clone().unwrap_or_default();
    let in_refunds = grant.status();
    let in_applications = observation
        .application
        .grant
        .as_ref()
        .map_or(GrantStatus::Unspecified, v1::Grant::status);
    if same_grant_status(in_refunds) != in_applications {
        return Err(format!(
            "refunds holds the grant {}, applications {}",
            name(in_refunds.as_str_name()),
            name(in_applications.as_str_name())
        ));
    }
    let reservation = observation
        .reservation
        .as_ref()
        .map(v1::Reservation::status);
    let claims = &refunds.claims;
    match in_refunds {
        ClaimableGrantStatus::Cancelled => {
            expect_reservation(reservation, &[Some(ReservationStatus::Released)])?;
            Ok(RegularPath::Cancelled)
        }
        ClaimableGrantStatus::Expired => {
            expect_reservation(reservation, &[Some(ReservationStatus::Released)])?;
            let refused_late = claims.iter().any(|claim| {
                claim.status() == RefundClaimStatus::Rejected
                    && claim.rejection.as_ref().is_some_and(|rejection| {
                        rejection.reason() == RefundRejectionReason::LateClaim
                    })
            });
            Ok(if refused_late {
                RegularPath::LateRejected
            } else {
                RegularPath::Expired
            })
        }
        ClaimableGrantStatus::Settled => {
            let Some(approved) = claims
                .iter()
                .find(|claim| claim.status() == RefundClaimStatus::Approved)
            else {
                return Err("the grant is settled without an approved claim".to_owned());
            };
            let payment = approved.payment.clone().unwrap_or_default();
            if payment.status() != RefundPaymentStatus::Paid {
                return Err(format!(
                    "the approved claim's payment is {} (attempt {})",
                    name(payment.status().as_str_name()),
                    payment.attempt
                ));
            }
            expect_reservation(reservation, &[Some(ReservationStatus::Settled)])?;
            let extended_then_claimed = !grant.deadline_extensions.is_empty()
                && approved.submitted_date > grant.original_refund_deadline_date;
            Ok(if payment.attempt > 1 {
                RegularPath::PaymentRetried
            } else if approved.late {
                RegularPath::LatePaid
            } else if extended_then_claimed {
                RegularPath::Extended
            } else {
                RegularPath::Paid
            })
        }
        other => Err(format!("the grant is still {}", name(other.as_str_name()))),
    }
}

/// Applications' name for the grant status refunds holds.
fn same_grant_status(status: ClaimableGrantStatus) -> GrantStatus {
    match status {
        ClaimableGrantStatus::Unspecified => GrantStatus::Unspecified,
        ClaimableGrantStatus::Active => GrantStatus::Active,
        ClaimableGrantStatus::ClaimPending => GrantStatus::ClaimPending,
        ClaimableGrantStatus::Settled => GrantStatus::Settled,
        ClaimableGrantStatus::Expired => GrantStatus::Expired,
        ClaimableGrantStatus::Cancelled => GrantStatus::Cancelled,
    }
}

/// Fails unless budget's reservation status is one of `expected` (`None`: no reservation).
fn expect_reservation(
    found: Option<ReservationStatus>,
    expected: &[Option<ReservationStatus>],
) -> Result<(), String> {
    if expected.contains(&found) {
        return Ok(());
    }
    Err(format!(
        "budget's reservation is {}",
        found.map_or("absent", |status| name(status.as_str_name()))
    ))
}

/// An enum value's name without its type prefix: `GRANT_STATUS_ACTIVE` → `ACTIVE`.
fn name(full: &str) -> &str {
    const PREFIXES: &[&str] = &[
        "APPLICATION_STATUS_",
        "CLAIMABLE_GRANT_STATUS_",
        "GRANT_STATUS_",
        "RESERVATION_STATUS_",
        "REFUND_PAYMENT_STATUS_",
    ];
    PREFIXES
        .iter()
        .find_map(|prefix| full.strip_prefix(prefix))
        .unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn application(status: ApplicationStatus, grant: Option<GrantStatus>) -> v1::Application {
        let mut application = v1::Application {
            grant: grant.map(|status| v1::Grant {
                grant_id: "g".to_owned(),
                status: status as i32,
                ..v1::Grant::default()
            }),
            ..v1::Application::default()
        };
        application.set_status(status);
        application
    }

    fn reservation(status: ReservationStatus) -> Option<v1::Reservation> {
        let mut reservation = v1::Reservation {
            reserved_ore: 1_000_000,
            disbursed_ore: 800_000,
            released_ore: 200_000,
            ..v1::Reservation::default()
        };
        reservation.set_status(status);
        Some(reservation)
    }

    fn claim(status: RefundClaimStatus) -> v1::RefundClaim {
        let mut claim = v1::RefundClaim {
            submitted_date: "2027-06-01".to_owned(),
            ..v1::RefundClaim::default()
        };
        claim.set_status(status);
        claim
    }

    fn paid(attempt: i32) -> Option<v1::RefundPayment> {
        let mut payment = v1::RefundPayment {
            attempt,
            ..v1::RefundPayment::default()
        };
        payment.set_status(RefundPaymentStatus::Paid);
        Some(payment)
    }

    fn refunds(
        status: ClaimableGrantStatus,
        claims: Vec<v1::RefundClaim>,
    ) -> Option<v1::GetClaimableGrantResponse> {
        let mut grant = v1::ClaimableGrant {
            original_refund_deadline_date: "2027-07-01".to_owned(),
            ..v1::ClaimableGrant::default()
        };
        grant.set_status(status);
        Some(v1::GetClaimableGrantResponse {
            grant: Some(grant),
            claims,
        })
    }

    fn settled_with(claim: v1::RefundClaim) -> Observation {
        Observation {
            application: application(ApplicationStatus::Granted, Some(GrantStatus::Settled)),
            refunds: refunds(ClaimableGrantStatus::Settled, vec![claim]),
            reservation: reservation(ReservationStatus::Settled),
        }
    }

    #[test]
    fn a_settled_grant_paid_on_the_first_attempt_is_paid() {
        let mut claim = claim(RefundClaimStatus::Approved);
        claim.payment = paid(1);
        let observation = settled_with(claim.clone());
        assert_eq!(classify(&observation), Ok(RegularPath::Paid));
        assert_eq!(
            observation.money(800_000),
            CaseMoney {
                commitment: Some((v1::CommitmentKind::Grant, "g".to_owned())),
                reserved_ore: 1_000_000,
                disbursed_ore: 800_000,
                released_ore: 200_000,
                paid_ore: 800_000,
            }
        );
        claim.payment = paid(2);
        assert_eq!(
            classify(&settled_with(claim.clone())),
            Ok(RegularPath::PaymentRetried)
        );
        claim.payment = paid(1);
        claim.late = true;
        assert_eq!(
            classify(&settled_with(claim.clone())),
            Ok(RegularPath::LatePaid)
        );
        claim.late = false;
        claim.submitted_date = "2027-07-20".to_owned();
        let mut extended = settled_with(claim);
        if let Some(grant) = extended
            .refunds
            .as_mut()
            .and_then(|found| found.grant.as_mut())
        {
            grant
                .deadline_extensions
                .push(v1::RefundDeadlineExtension::default());
        }
        assert_eq!(classify(&extended), Ok(RegularPath::Extended));
    }

    #[test]
    fn a_payment_not_yet_paid_or_a_reservation_not_yet_settled_is_unsettled() {
        let mut pending = claim(RefundClaimStatus::Approved);
        pending.payment = Some(v1::RefundPayment {
            status: RefundPaymentStatus::Failed as i32,
            attempt: 1,
            ..v1::RefundPayment::default()
        });
        let error = classify(&settled_with(pending)).expect_err("not paid");
        assert!(error.contains("FAILED"), "{error}");
        let mut approved = claim(RefundClaimStatus::Approved);
        approved.payment = paid(1);
        let mut observation = settled_with(approved);
        observation.reservation = reservation(ReservationStatus::Reserved);
        let error = classify(&observation).expect_err("budget has not disbursed");
        assert!(error.contains("RESERVED"), "{error}");
        observation.application =
            application(ApplicationStatus::Granted, Some(GrantStatus::ClaimPending));
        let error = classify(&observation).expect_err("applications lags");
        assert!(error.contains("CLAIM_PENDING"), "{error}");
    }

    #[test]
    fn expiry_cancellation_and_a_refused_late_claim() {
        let expired = Observation {
            application: application(ApplicationStatus::Granted, Some(GrantStatus::Expired)),
            refunds: refunds(ClaimableGrantStatus::Expired, vec![]),
            reservation: reservation(ReservationStatus::Released),
        };
        assert_eq!(classify(&expired), Ok(RegularPath::Expired));
        let mut refused = claim(RefundClaimStatus::Rejected);
        refused.late = true;
        refused.rejection = Some(v1::RefundRejection {
            reason: RefundRejectionReason::LateClaim as i32,
            explanation: String::new(),
        });
        let late_rejected = Observation {
            refunds: refunds(ClaimableGrantStatus::Expired, vec![refused]),
            ..expired.clone()
        };
        assert_eq!(classify(&late_rejected), Ok(RegularPath::LateRejected));
        let cancelled = Observation {
            application: application(ApplicationStatus::Granted, Some(GrantStatus::Cancelled)),
            refunds: refunds(ClaimableGrantStatus::Cancelled, vec![]),
            reservation: reservation(ReservationStatus::Released),
        };
        assert_eq!(classify(&cancelled), Ok(RegularPath::Cancelled));
        let still_open = Observation {
            application: application(ApplicationStatus::Granted, Some(GrantStatus::Active)),
            refunds: refunds(ClaimableGrantStatus::Active, vec![]),
            reservation: reservation(ReservationStatus::Reserved),
        };
        let error = classify(&still_open).expect_err("not ended");
        assert!(error.contains("still ACTIVE"), "{error}");
    }

    #[test]
    fn the_application_alone_names_rejection_withdrawal_and_lack_of_funds() {
        let rejected = Observation {
            application: application(ApplicationStatus::Rejected, None),
            ..Observation::default()
        };
        assert_eq!(classify(&rejected), Ok(RegularPath::Rejected));
        assert_eq!(rejected.money(0), CaseMoney::default());
        let withdrawn = Observation {
            application: application(ApplicationStatus::Withdrawn, None),
            ..Observation::default()
        };
        assert_eq!(classify(&withdrawn), Ok(RegularPath::Withdrawn));
        let mut denied = Observation {
            application: application(ApplicationStatus::Rejected, Some(GrantStatus::Unspecified)),
            reservation: reservation(ReservationStatus::Denied),
            ..Observation::default()
        };
        denied.application.rejection = Some(v1::ApplicationRejection {
            reason: ApplicationRejectionReason::FundsDenied as i32,
            ..v1::ApplicationRejection::default()
        });
        assert_eq!(classify(&denied), Ok(RegularPath::LackOfFunds));
        denied
            .application
            .set_status(ApplicationStatus::FundsDenied);
        assert_eq!(classify(&denied), Ok(RegularPath::LackOfFunds));
        let waiting = Observation {
            application: application(
                ApplicationStatus::GrantPendingFunds,
                Some(GrantStatus::Unspecified),
            ),
            ..Observation::default()
        };
        let error = classify(&waiting).expect_err("no answer yet");
        assert_eq!(error, "the application is still GRANT_PENDING_FUNDS");
    }
}
