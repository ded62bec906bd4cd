//! The service's background work, both driven by an injectable clock so tests can move time:
//! - the sweep ([`sweep`], hourly by default): orders unanswered past `supplier_answer`
//!   (expire and move to the next supplier), accepted orders not started within `start`,
//!   completed or aborted orders past their invoice deadline with nothing invoiced (expire:
//!   budget releases), agreements whose validity ran out while orders were open, and PILOT
//!   cases no active agreement covers any more (fallback). Each order is its own unit of work,
//!   and each step finds only what is still to do, so a sweep can be repeated or interrupted.
//! - the dispatcher ([`dispatch`], every second by default): sends PLACED orders not yet sent
//!   to their supplier, and hands over payments approved but not answered.
//!
//! Both run on `ekb_platform::jobs::every` (lib.rs), with the service clock's now.

use ekb_domain::oslo_date;
use ekb_platform::{change, messaging::Db, payment::PaymentPort};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    codes::OrderStatus,
    config::OrderingPolicy,
    model::Order,
    ordering, payments, store,
    store::EndingKey,
    suppliers::SupplierNotifier,
    transitions::{Ending, OverdueExpiry},
};

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Orders expired.
    pub expired: usize,
    /// Agreements found stopped with open orders.
    pub agreements_stopped: usize,
}

/// Runs every step of the sweep as of `now`.
pub async fn sweep(
    db: &Db,
    policy: &OrderingPolicy,
    now: OffsetDateTime,
) -> anyhow::Result<SweepReport> {
    let today = oslo_date(now);
    let mut report = SweepReport::default();
    // Each order expires in a unit of work of its own.
    let account = ordering::account(policy);
    let unanswered = {
        let mut connection = db.read().await?;
        store::orders_overdue(
            &mut connection,
            OrderStatus::Placed,
            policy.supplier_answer_days,
            today,
        )
        .await?
    };
    for order_id in unanswered {
        let mut work = db.begin().await?;
        let key = EndingKey { order_id, on: now };
        let applied = change::apply_in::<Ending, _>(&mut work, now, &key, |ending, now| {
            Ok(ending.expire_unanswered(&account, now))
        })
        .await?;
        if applied.changed {
            work.commit().await?;
            report.expired += 1;
        }
    }
    let (not_started, not_invoiced) = {
        let mut connection = db.read().await?;
        (
            store::orders_overdue(
                &mut connection,
                OrderStatus::Accepted,
                policy.start_days,
                today,
            )
            .await?,
            store::orders_not_invoiced(&mut connection, today).await?,
        )
    };
    for (ids, overdue) in [
        (not_started, OverdueExpiry::NotStarted),
        (not_invoiced, OverdueExpiry::NotInvoiced),
    ] {
        report.expired += expire_each(db, ids, overdue, now).await?;
    }
    let stopped = store::stopped_agreements_with_open_orders(&mut *db.read().await?, today).await?;
    for agreement_id in stopped {
        let mut work = db.begin().await?;
        ordering::agreement_stopped(&mut work, policy, agreement_id, now).await?;
        work.commit().await?;
        report.agreements_stopped += 1;
    }
    let mut work = db.begin().await?;
    ordering::fall_back_uncovered(&mut work, None, now).await?;
    work.commit().await?;
    Ok(report)
}

/// Expires each of `ids` still `overdue` at `now`, each in a unit of work of its own; returns
/// how many expired.
async fn expire_each(
    db: &Db,
    ids: Vec<Uuid>,
    overdue: OverdueExpiry,
    now: OffsetDateTime,
) -> anyhow::Result<usize> {
    let mut count = 0;
    for order_id in ids {
        let mut work = db.begin().await?;
        let applied = change::apply_in::<Order, _>(&mut work, now, &order_id, |order, now| {
            Ok(order.expire(overdue, now))
        })
        .await?;
        if applied.changed {
            work.commit().await?;
            count += 1;
        }
    }
    Ok(count)
}

/// Sends the PLACED orders not yet sent; returns how many were sent.
pub async fn send_placed_orders(
    db: &Db,
    notifier: &dyn SupplierNotifier,
    now: OffsetDateTime,
) -> anyhow::Result<usize> {
    let orders = store::orders_to_send(&mut *db.read().await?).await?;
    let mut sent = 0;
    for order in orders {
        let order_id = order.order_id;
        match notifier.send(order).await {
            Ok(()) => {
                store::note_supplier_notified(&mut *db.read().await?, order_id, now).await?;
                sent += 1;
            }
            Err(error) => {
                tracing::warn!(%order_id, error = %error, "sending the order failed; will retry");
            }
        }
    }
    Ok(sent)
}

/// One round of the dispatcher at `now`: orders to suppliers, unanswered payments.
pub async fn dispatch(
    db: &Db,
    policy: &OrderingPolicy,
    notifier: &dyn SupplierNotifier,
    payment: &dyn PaymentPort,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    send_placed_orders(db, notifier, now).await?;
    for invoice_id in payments::unanswered(db, now, policy.payment_resend_after).await? {
        if let Err(error) = payments::pay(db, payment, invoice_id).await {
            tracing::warn!(%invoice_id, error = %error, "payment hand-over failed; will retry");
        }
    }
    Ok(())
}
