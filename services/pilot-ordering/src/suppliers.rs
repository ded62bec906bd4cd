//! Sending a placed order to its supplier. Suppliers' systems lie outside this system, so they
//! sit behind the [`SupplierNotifier`] port; the only implementation is
//! [`RecordingSupplierNotifier`], a fake for tests and `make run`. An order is sent after the
//! commit that placed it, at least once and keyed by order id (the supplier's system must
//! tolerate a repeat): the dispatcher sends every PLACED order not yet sent and notes it.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;
use uuid::Uuid;

/// What a supplier receives: the order, without the employee's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierOrder {
    /// The order id (the supplier's idempotency key).
    pub order_id: Uuid,
    /// The supplier.
    pub supplier_organisation_number: String,
    /// The agreement's reference.
    pub agreement_reference: String,
    /// The fixed price in øre.
    pub price_ore: i64,
    /// What the supplier is asked to do.
    pub assignment_description: String,
    /// The employer's contact person: name, phone, e-mail.
    pub contact: (String, String, String),
}

/// The supplier could not be reached; the order is sent again later.
#[derive(Debug, Clone, thiserror::Error)]
#[error("supplier unreachable: {0}")]
pub struct SupplierUnreachable(pub String);

/// The suppliers' systems.
pub trait SupplierNotifier: Send + Sync + fmt::Debug {
    /// Sends `order` to its supplier; a repeat of the same order id must be harmless.
    fn send(&self, order: SupplierOrder) -> BoxFuture<'_, Result<(), SupplierUnreachable>>;
}

/// A fake that records what it was sent, once per order id.
#[derive(Debug, Clone, Default)]
pub struct RecordingSupplierNotifier {
    sent: Arc<Mutex<HashMap<Uuid, SupplierOrder>>>,
}

impl RecordingSupplierNotifier {
    /// Every distinct order received.
    pub fn sent(&self) -> Vec<SupplierOrder> {
        self.sent
            .lock()
            .map(|sent| sent.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl SupplierNotifier for RecordingSupplierNotifier {
    fn send(&self, order: SupplierOrder) -> BoxFuture<'_, Result<(), SupplierUnreachable>> {
        Box::pin(async move {
            let mut sent = self
                .sent
                .lock()
                .map_err(|_| SupplierUnreachable("fake notifier poisoned".to_owned()))?;
            tracing::info!(order_id = %order.order_id, supplier = %order.supplier_organisation_number, "order sent to supplier (fake)");
            sent.insert(order.order_id, order);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_repeat_is_recorded_once() {
        let notifier = RecordingSupplierNotifier::default();
        let order = SupplierOrder {
            order_id: Uuid::now_v7(),
            supplier_organisation_number: "923609016".to_owned(),
            agreement_reference: "RA-1".to_owned(),
            price_ore: 100,
            assignment_description: "x".to_owned(),
            contact: ("a".to_owned(), "12345678".to_owned(), "a@b".to_owned()),
        };
        notifier.send(order.clone()).await.expect("sent");
        notifier.send(order).await.expect("sent");
        assert_eq!(notifier.sent().len(), 1);
    }
}
