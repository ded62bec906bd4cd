//! Pilot-ordering's SQL, all of it: the case, agreement and expert read models, orders and
//! invoices (with the `change::Record` implementations that load and save them), the listings
//! and what the background jobs find due. Handlers, event handlers and jobs call these; none of
//! them writes SQL of its own. Every function runs on the connection it is given (a unit of
//! work's, or a read connection).

mod agreements;
mod cases;
mod due;
mod invoices;
mod listings;
mod orders;

pub use agreements::{
    AgreementState, stopped_agreements_with_open_orders, upsert_agreement, upsert_expert,
};
pub use cases::{
    Case, RoutedCase, find_case, insert_case, note_fallback, set_case_regular,
    uncovered_pilot_cases,
};
pub use due::{
    note_supplier_notified, orders_not_invoiced, orders_overdue, orders_to_send,
    payments_unanswered,
};
pub use invoices::{find_invoice, find_invoice_by_request, invoices_of, note_payment_handed};
pub use listings::{AwaitingRow, cases_awaiting_order, orders_page};
pub use orders::{
    EndingKey, HOLDING, find_order, find_order_by_request, insert_order, orders_of_agreement,
    orders_of_case,
};
