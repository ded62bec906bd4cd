//! Paying approved claims through NAV's payment system, which lies outside this system and sits
//! behind [`PaymentPort`]. The approval commits first; then the payment is handed over, keyed
//! `<claim id>/<attempt>` so the payment system pays an attempt once however often it is
//! handed over. Its answer — or an outcome reported later through RecordPaymentOutcome — is
//! recorded in a second unit of work and published (PaymentCompleted / PaymentFailed). A worker
//! hands over again every payment left PENDING without an answer (a crash, an unreachable
//! payment system).

use ekb_domain::oslo_date;
use ekb_platform::clock::Clock;
use std::{sync::Arc, time::Duration};

use ekb_platform::{
    audit::AuditActor,
    messaging::{Db, UnitOfWork},
    payment::{PaymentInstruction, PaymentOutcome, PaymentPort},
};
use ekb_proto::v1;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::{
    commands::{MAX_DETAIL, Outcome},
    model::{ClaimRow, payment_status},
    published::{self, subject},
    store,
    trail::{self, Entry},
};

/// The payment system as refunds uses it.
#[derive(Debug, Clone)]
pub struct Payments {
    db: Db,
    port: Arc<dyn PaymentPort>,
    clock: Arc<dyn Clock>,
}

impl Payments {
    /// Payments through `port` over the service's database.
    pub fn new(db: Db, port: Arc<dyn PaymentPort>, clock: Arc<dyn Clock>) -> Self {
        Payments { db, port, clock }
    }

    /// Hands the current attempt of `claim` (APPROVED, payment PENDING, committed) to the
    /// payment system and records its answer. An unreachable payment system leaves the payment
    /// PENDING for the worker.
    pub async fn hand_over(&self, claim: &ClaimRow) -> anyhow::Result<()> {
        let instruction = PaymentInstruction {
            payment_key: claim.payment_key(),
            case_id: claim.case_id,
            payee_organisation_number: claim.employer_organisation_number.clone(),
            amount_ore: claim.payout_amount_ore.unwrap_or_default(),
            reference: format!("refusjonskrav {}", claim.claim_id),
        };
        let answer = self.port.pay(instruction).await;
        let now = self.clock.now();
        let mut work = self.db.begin().await?;
        let Some(mut current) = store::find_claim(work.db(), claim.claim_id, true).await? else {
            return Ok(());
        };
        if current.payment_attempt != claim.payment_attempt
            || current.payment_status.as_deref() != Some(payment_status::PENDING)
        {
            return Ok(());
        }
        store::mark_payment_sent(work.db(), current.claim_id, current.payment_attempt, now).await?;
        current.payment_sent_at = current.payment_sent_at.or(Some(now));
        let outcome = match answer {
            Ok(PaymentOutcome::Paid { payment_reference }) => Outcome::Paid {
                reference: payment_reference,
                paid_date: oslo_date(now),
            },
            Ok(PaymentOutcome::Failed { reason }) => Outcome::Failed {
                reason: v1::RefundPaymentFailureReason::Rejected,
                detail: reason.chars().take(MAX_DETAIL).collect(),
            },
            Ok(PaymentOutcome::Accepted) => {
                work.commit().await?;
                return Ok(());
            }
            Err(unavailable) => {
                work.commit().await?;
                tracing::warn!(
                    claim_id = %claim.claim_id,
                    attempt = claim.payment_attempt,
                    error = %unavailable,
                    "payment system unavailable; the payment worker hands it over again"
                );
                return Ok(());
            }
        };
        apply_outcome(
            &mut work,
            &mut current,
            &outcome,
            now,
            &AuditActor::service(),
            "PaymentSystem",
        )
        .await?;
        work.commit().await?;
        Ok(())
    }

    /// Hands over again every PENDING payment not handed over for `resend_after`; returns how
    /// many. Rows are claimed with SKIP LOCKED, so replicas share the work.
    pub async fn resend_unanswered(&self, resend_after: time::Duration) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let mut work = self.db.begin().await?;
        let due = store::unanswered_payments(work.db(), now - resend_after, 50).await?;
        for claim in &due {
            sqlx::query("UPDATE claims SET payment_handed_at = $2 WHERE claim_id = $1")
                .bind(claim.claim_id)
                .bind(now)
                .execute(work.db())
                .await?;
        }
        work.commit().await?;
        for claim in &due {
            self.hand_over(claim).await?;
        }
        Ok(due.len())
    }

    /// The worker: resends unanswered payments every `interval` until cancelled.
    pub async fn run(
        self,
        interval: Duration,
        resend_after: time::Duration,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
            if let Err(error) = self.resend_unanswered(resend_after).await {
                tracing::warn!(error = %error, "resending unanswered payments failed; next run retries");
            }
        }
    }
}

/// Records `outcome` for `claim`'s current attempt (PENDING), publishes it and audits it.
pub async fn apply_outcome(
    work: &mut UnitOfWork,
    claim: &mut ClaimRow,
    outcome: &Outcome,
    now: OffsetDateTime,
    actor: &AuditActor,
    action: &str,
) -> anyhow::Result<()> {
    claim.payment_outcome_at = Some(now);
    let event_subject = subject(claim.case_id, claim.claim_id);
    match outcome {
        Outcome::Paid {
            reference,
            paid_date,
        } => {
            claim.payment_status = Some(payment_status::PAID.to_owned());
            claim.payment_reference = reference.clone();
            claim.paid_date = Some(*paid_date);
            store::update_claim(work.db(), claim).await?;
            store::mark_grant_ended(work.db(), claim.grant_id, now).await?;
            work.publish(&event_subject, &published::payment_completed(claim, now))
                .await?;
        }
        Outcome::Failed { reason, detail } => {
            claim.payment_status = Some(payment_status::FAILED.to_owned());
            claim.failure_reason = Some(reason.as_str_name().to_owned());
            claim.failure_detail = detail.clone();
            store::update_claim(work.db(), claim).await?;
            work.publish(
                &event_subject,
                &published::payment_failed(claim, *reason, now),
            )
            .await?;
        }
    }
    let entry = Entry::of_claim(claim, v1::AuditEntryKind::Decision, action);
    let purpose = if action == "PaymentSystem" {
        v1::AccessPurpose::System
    } else {
        v1::AccessPurpose::CaseProcessing
    };
    let at = work.now();
    trail::record(work.db(), entry, actor, purpose, at).await?;
    tracing::info!(
        claim_id = %claim.claim_id,
        attempt = claim.payment_attempt,
        status = claim.payment_status.as_deref().unwrap_or_default(),
        "payment outcome recorded"
    );
    Ok(())
}
