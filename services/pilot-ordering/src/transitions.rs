//! The state changes of orders and invoices, as pure methods on the domain types: each checks
//! the rules of its step against the record as loaded, changes the record and says what the
//! change publishes and audits ([`change::Decision`]), or says that it already took effect
//! (`Unchanged`), or refuses with the contract's reason. No database here: the rules are unit
//! tested on their own, and the RPC and the event handler or job that lead to the same change
//! call the same method through `change::apply` / `change::apply_in`, which load, lock and
//! save the record (`store`).
//!
//! - [`answer`]: the supplier accepts or declines a placed order;
//! - [`work`]: funds reserved (placed), expert started, completed, aborted;
//! - [`ending`]: cancelled, expired, and what follows an order that ended before the supplier
//!   took it (the next supplier, or the fallback to the regular flow);
//! - [`invoice`]: submitted, attested, approved (four eyes), rejected;
//! - [`payment`]: the payment's outcome.
//!
//! [`change::Decision`]: ekb_platform::change::Decision

pub mod answer;
pub mod ending;
pub mod invoice;
pub mod payment;
pub mod work;

use ekb_platform::{audit::AuditActor, change::Audit, messaging::EventSubject};
use ekb_proto::v1::AccessPurpose;
use uuid::Uuid;

pub use ending::{Ending, FollowUp, OverdueExpiry, Successor, fallback_event};
pub use invoice::{InvoiceOfOrder, InvoicedOrder, SubmitKey};
pub use payment::Outcome;

use crate::model::Order;

/// The audit entry of `action` on `subject_id` (the order or one of its invoices) by `actor`:
/// purpose SYSTEM when the service itself acts, CASE_PROCESSING otherwise.
fn audit(order: &Order, subject_id: Uuid, action: &'static str, actor: &AuditActor) -> Audit {
    let purpose = if *actor == AuditActor::service() {
        AccessPurpose::System
    } else {
        AccessPurpose::CaseProcessing
    };
    Audit {
        case_id: order.case_id,
        subject_id,
        action,
        actor: actor.clone(),
        purpose,
    }
}

/// Events about an order are keyed by its case.
fn subject(order: &Order) -> EventSubject {
    EventSubject::case(order.case_id.to_string())
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! An order as the unit tests start from.

    use ekb_domain::CompetenceArea;
    use ekb_proto::v1;
    use sqlx::types::Text;
    use time::{OffsetDateTime, macros::datetime};
    use uuid::Uuid;

    use crate::{
        codes::OrderStatus,
        model::{Assignment, Order},
        selection::Agreement,
        store::Case,
    };

    /// The tests' now: 2027-03-10 12:00 UTC.
    pub const NOW: OffsetDateTime = datetime!(2027-03-10 12:00 UTC);

    /// A PILOT case opened a week before [`NOW`].
    pub fn case() -> Case {
        Case {
            case_id: Uuid::now_v7(),
            sequence: 1,
            county_code: "34".to_owned(),
            competence_area: Some(Text(CompetenceArea::WorkplaceRelations)),
            flow: "PILOT".to_owned(),
            opened_at: datetime!(2027-03-03 09:00 UTC),
        }
    }

    /// An agreement with capacity, ranked `ranking`.
    pub fn agreement(ranking: i32) -> Agreement {
        Agreement {
            agreement_id: Uuid::now_v7(),
            agreement_reference: format!("RA-{ranking}"),
            supplier_organisation_number: "923609016".to_owned(),
            supplier_name: "Supplier".to_owned(),
            price_ore: 2_400_000,
            ranking,
            monthly_capacity: 5,
        }
    }

    /// The account charged.
    pub fn account() -> v1::BudgetAccount {
        v1::BudgetAccount {
            chapter: 2650,
            post: 76,
        }
    }

    /// An order of a new case in `status`.
    pub fn order(status: OrderStatus) -> Order {
        let mut order = Order::requested(
            &case(),
            CompetenceArea::WorkplaceRelations,
            &agreement(1),
            &account(),
            Assignment {
                contact_name: "Kari".to_owned(),
                contact_phone: "12345678".to_owned(),
                contact_email: "kari@example.no".to_owned(),
                description: "Conflict handling".to_owned(),
                employee_pseudonym: "p".to_owned(),
            },
            None,
            datetime!(2027-03-03 10:00 UTC),
        );
        order.status = status;
        order
    }
}
