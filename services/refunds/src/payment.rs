//! Paying approved claims through NAV's payment system, which lies outside this system and sits
//! behind [`PaymentPort`]. The approval commits first; then the payment is handed over, keyed
//! `<claim id>/<attempt>` so the payment system pays an attempt once however often it is
//! handed over. Its answer — or an outcome reported later through RecordPaymentOutcome — is
//! recorded in a second unit of work and published (PaymentCompleted / PaymentFailed). A job
//! (`jobs::every`, started in lib.rs) hands over again every payment left PENDING without an
//! answer (a crash, an unreachable payment system).

use std::sync::Arc;

use ekb_platform::{
    ApiError, change,
    messaging::Db,
    payment::{PaymentInstruction, PaymentPort},
};
use time::OffsetDateTime;

use crate::{claim::Claim, codes::PaymentStatus, model::ClaimRow, store};

/// The payment system as refunds uses it.
#[derive(Debug, Clone)]
pub struct Payments {
    db: Db,
    port: Arc<dyn PaymentPort>,
}

impl Payments {
    /// Payments through `port` over the service's database.
    pub fn new(db: Db, port: Arc<dyn PaymentPort>) -> Self {
        Payments { db, port }
    }

    /// Hands the current attempt of `claim` (APPROVED, payment PENDING, committed) to the
    /// payment system and records its answer ([`Claim::payment_answered`]). An unreachable
    /// payment system leaves the payment PENDING for the worker.
    pub async fn hand_over(&self, claim: &ClaimRow) -> anyhow::Result<()> {
        let instruction = PaymentInstruction {
            payment_key: claim.payment_key(),
            case_id: claim.case_id,
            payee_organisation_number: claim.employer_organisation_number.clone(),
            amount_ore: claim.payout_amount_ore.unwrap_or_default(),
            reference: format!("refusjonskrav {}", claim.claim_id),
        };
        let answer = match self.port.pay(instruction).await {
            Ok(answer) => Some(answer),
            Err(unavailable) => {
                tracing::warn!(
                    claim_id = %claim.claim_id,
                    attempt = claim.payment_attempt,
                    error = %unavailable,
                    "payment system unavailable; the payment worker hands it over again"
                );
                None
            }
        };
        let attempt = claim.payment_attempt;
        let applied = change::apply::<Claim, _>(&self.db, &claim.claim_id, |current, now| {
            Ok(current.payment_answered(attempt, answer.as_ref(), now))
        })
        .await;
        match applied {
            Ok(applied) => {
                if applied.changed && applied.record.row.payment_outcome_at.is_some() {
                    log_outcome(&applied.record.row);
                }
                Ok(())
            }
            // Deleted by retention meanwhile: nothing to pay any more.
            Err(ApiError::NotFound(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Hands over again every PENDING payment not handed over for `resend_after` at `now`;
    /// returns how many. Rows are claimed with SKIP LOCKED, so replicas share the work.
    pub async fn resend_unanswered(
        &self,
        resend_after: time::Duration,
        now: OffsetDateTime,
    ) -> anyhow::Result<usize> {
        let mut work = self.db.begin().await?;
        let due = store::unanswered_payments(work.db(), now - resend_after, 50).await?;
        for claim in &due {
            store::mark_handed_over(work.db(), claim.claim_id, now).await?;
        }
        work.commit().await?;
        for claim in &due {
            self.hand_over(claim).await?;
        }
        Ok(due.len())
    }
}

/// Logs the payment outcome `claim` records.
pub fn log_outcome(claim: &ClaimRow) {
    tracing::info!(
        claim_id = %claim.claim_id,
        attempt = claim.payment_attempt,
        status = claim.payment_status.map_or("", PaymentStatus::code),
        "payment outcome recorded"
    );
}
