//! NAV's payment system, as the services that pay (refunds, pilot-ordering) see it: a port.
//!
//! The payment system lies outside this system, so it sits behind [`PaymentPort`]. A service
//! calls it after the approval committed, keyed by a payment key that is the same on every
//! retry of one attempt (the claim or invoice id and the attempt number), so a repeated call
//! never pays twice. The outcome is either the call's answer or arrives later (the payment
//! system reports it through the service's RecordPaymentOutcome RPC). The only implementation
//! today is [`RecordingPaymentPort`], a fake for tests and `make run` whose behaviour is set by
//! configuration (`payment.fake_outcome`); a real adapter implements the same trait.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;
use serde::Deserialize;
use uuid::Uuid;

/// One payment to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentInstruction {
    /// Idempotency key: the same for every retry of one attempt (`<claim or invoice id>/<n>`).
    pub payment_key: String,
    /// The case, for NAV's accounting.
    pub case_id: Uuid,
    /// Who is paid: the employer (refunds) or the supplier (pilot invoices).
    pub payee_organisation_number: String,
    /// The amount, in øre (gross).
    pub amount_ore: i64,
    /// What the payee sees on the payment (claim or invoice reference).
    pub reference: String,
}

/// What the payment system answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Paid; the payment system's reference.
    Paid {
        /// The payment system's reference for the payment.
        payment_reference: String,
    },
    /// Refused or failed; why.
    Failed {
        /// The payment system's reason.
        reason: String,
    },
    /// Accepted for processing; the outcome comes later through RecordPaymentOutcome.
    Accepted,
}

/// The payment system could not be reached or answered nonsense; the call may be retried with
/// the same key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment system unavailable: {0}")]
pub struct PaymentUnavailable(pub String);

/// NAV's payment system.
pub trait PaymentPort: Send + Sync + fmt::Debug {
    /// Pays `instruction` once per payment key; a repeated key answers as the first call did.
    fn pay(
        &self,
        instruction: PaymentInstruction,
    ) -> BoxFuture<'_, Result<PaymentOutcome, PaymentUnavailable>>;
}

/// The `[payment]` section of every service that hands payments to NAV's payment system
/// (refunds, pilot-ordering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct PaymentSection {
    /// How the fake payment system answers (tests and `make run`).
    pub fake_outcome: FakeOutcome,
    /// A payment handed over this long ago without an answer is handed over again, with the
    /// same payment key, e.g. `"5m"`.
    #[serde(with = "humantime_serde")]
    pub resend_after: std::time::Duration,
}

/// How the fake payment system answers (`payment.fake_outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FakeOutcome {
    /// Pays at once.
    #[default]
    Paid,
    /// Accepts, and leaves the outcome to a RecordPaymentOutcome call.
    Deferred,
    /// Refuses every payment (`account closed`).
    Failed,
}

/// A fake payment system that records what it was asked to pay and answers as configured.
/// Used by tests and `make run` (NAV's payment system lies outside this system).
#[derive(Debug, Clone, Default)]
pub struct RecordingPaymentPort {
    outcome: FakeOutcome,
    paid: Arc<Mutex<HashMap<String, (PaymentInstruction, PaymentOutcome)>>>,
}

impl RecordingPaymentPort {
    /// A fake answering `outcome`.
    pub fn new(outcome: FakeOutcome) -> Self {
        RecordingPaymentPort {
            outcome,
            paid: Arc::default(),
        }
    }

    /// Every distinct instruction received (one per payment key), in no particular order.
    pub fn instructions(&self) -> Vec<PaymentInstruction> {
        self.paid
            .lock()
            .map(|paid| {
                paid.values()
                    .map(|(instruction, _)| instruction.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl PaymentPort for RecordingPaymentPort {
    fn pay(
        &self,
        instruction: PaymentInstruction,
    ) -> BoxFuture<'_, Result<PaymentOutcome, PaymentUnavailable>> {
        Box::pin(async move {
            let mut paid = self
                .paid
                .lock()
                .map_err(|_| PaymentUnavailable("fake payment system poisoned".to_owned()))?;
            if let Some((_, outcome)) = paid.get(&instruction.payment_key) {
                return Ok(outcome.clone());
            }
            let outcome = match self.outcome {
                FakeOutcome::Paid => PaymentOutcome::Paid {
                    payment_reference: format!("FAKE-{}", Uuid::now_v7().simple()),
                },
                FakeOutcome::Deferred => PaymentOutcome::Accepted,
                FakeOutcome::Failed => PaymentOutcome::Failed {
                    reason: "account closed".to_owned(),
                },
            };
            paid.insert(
                instruction.payment_key.clone(),
                (instruction, outcome.clone()),
            );
            Ok(outcome)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instruction(key: &str) -> PaymentInstruction {
        PaymentInstruction {
            payment_key: key.to_owned(),
            case_id: Uuid::now_v7(),
            payee_organisation_number: "974760673".to_owned(),
            amount_ore: 100_000,
            reference: "claim".to_owned(),
        }
    }

    #[tokio::test]
    async fn a_repeated_key_pays_once_and_answers_the_same() {
        let port = RecordingPaymentPort::new(FakeOutcome::Paid);
        let first = port.pay(instruction("c/1")).await.expect("answer");
        let again = port.pay(instruction("c/1")).await.expect("answer");
        assert_eq!(first, again);
        assert!(matches!(first, PaymentOutcome::Paid { .. }));
        port.pay(instruction("c/2")).await.expect("answer");
        assert_eq!(port.instructions().len(), 2);
    }

    #[tokio::test]
    async fn the_configured_outcome_is_answered() {
        let failed = RecordingPaymentPort::new(FakeOutcome::Failed);
        assert!(matches!(
            failed.pay(instruction("x/1")).await,
            Ok(PaymentOutcome::Failed { .. })
        ));
        let deferred = RecordingPaymentPort::new(FakeOutcome::Deferred);
        assert_eq!(
            deferred.pay(instruction("x/1")).await,
            Ok(PaymentOutcome::Accepted)
        );
    }
}
