//! What every flow test checks at its end, whatever path it took: budget's ledger keeps every
//! øre (each finished reservation was disbursed or released to the last øre, the balances agree
//! with the entries, the year's usage adds up), and no fødselsnummer of the run appears in any
//! event on any topic or in any service's log.

use ekb_proto::v1::{self, CommitmentKind, ReservationStatus};

use ekb_testkit::{scenarios::both_flows, services::with_bearer};

use crate::{people::budget_year, system::SystemStack};

/// The scheme's account (chapter 2650 post 76), which both flows charge by default.
pub const SCHEME_ACCOUNT: v1::BudgetAccount = v1::BudgetAccount {
    chapter: 2650,
    post: 76,
};

/// Sets this year's appropriation on the scheme's account to `ore`.
pub async fn set_appropriation(stack: &SystemStack, ore: i64) -> anyhow::Result<v1::Appropriation> {
    let response = stack
        .budget()
        .await?
        .set_appropriation(with_bearer(
            v1::SetAppropriationRequest {
                budget_year: budget_year(),
                account: Some(SCHEME_ACCOUNT),
                appropriated_ore: ore,
                threshold_percents: Vec::new(),
                note: "end-to-end test".to_owned(),
            },
            &stack.people().system(),
        ))
        .await?
        .into_inner();
    response
        .appropriation
        .ok_or_else(|| anyhow::anyhow!("SetAppropriation answered without the appropriation"))
}

/// Waits until budget's reservation for `id` is in `status`, and returns it.
pub async fn reservation_in(
    stack: &SystemStack,
    kind: CommitmentKind,
    id: &str,
    status: ReservationStatus,
) -> anyhow::Result<v1::Reservation> {
    let token = stack.people().system();
    both_flows::reservation_in(&stack.clients().await?, &token, kind, id, status).await
}

/// Waits until budget's reservation for `id` is in `status` (SETTLED or RELEASED), asserts that
/// it is finished and balanced with `disbursed_ore` disbursed (see [`assert_finished`]), and
/// returns it for the test's own checks.
pub async fn finished_reservation(
    stack: &SystemStack,
    kind: CommitmentKind,
    id: &str,
    status: ReservationStatus,
    disbursed_ore: i64,
) -> anyhow::Result<v1::Reservation> {
    let found = reservation_in(stack, kind, id, status).await?;
    assert_finished(&found, disbursed_ore);
    Ok(found)
}

/// Asserts that reservation `found` is finished and balanced: nothing outstanding, and what was
/// reserved was disbursed (`disbursed_ore`) or released, to the øre.
pub fn assert_finished(found: &v1::Reservation, disbursed_ore: i64) {
    assert_eq!(found.outstanding_ore, 0, "{found:?}");
    assert_eq!(found.disbursed_ore, disbursed_ore, "{found:?}");
    assert_eq!(
        found.reserved_ore,
        found.disbursed_ore + found.released_ore,
        "reserved = disbursed + released: {found:?}"
    );
}

/// Asserts that budget's ledger for this year keeps every øre: Reconcile finds no difference;
/// every reservation that is SETTLED or RELEASED has nothing outstanding and was disbursed or
/// released in full; the year's usage (GetUsage) has reserved = disbursed + released +
/// outstanding; and the appropriation's figures agree with the entries.
pub async fn assert_money_kept(stack: &SystemStack) -> anyhow::Result<()> {
    let year = budget_year();
    let token = stack.people().system();
    let mut budget = stack.budget().await?;
    let reconciled = budget
        .reconcile(with_bearer(
            v1::ReconcileRequest { budget_year: year },
            &token,
        ))
        .await?
        .into_inner();
    assert!(
        reconciled.consistent,
        "Reconcile found differences: {:?}",
        reconciled.differences
    );
    let reservations = budget
        .list_reservations(with_bearer(
            v1::ListReservationsRequest {
                budget_year: year,
                page_size: 500,
                ..v1::ListReservationsRequest::default()
            },
            &token,
        ))
        .await?
        .into_inner()
        .reservations;
    let mut outstanding = 0;
    for found in &reservations {
        match found.status() {
            ReservationStatus::Settled | ReservationStatus::Released => {
                assert_finished(found, found.disbursed_ore);
            }
            ReservationStatus::Denied | ReservationStatus::Pending => {
                assert_eq!(found.reserved_ore, 0, "{found:?}");
            }
            _ => outstanding += found.outstanding_ore,
        }
    }
    let usage = budget
        .get_usage(with_bearer(
            v1::GetUsageRequest {
                budget_year: year,
                ..v1::GetUsageRequest::default()
            },
            &token,
        ))
        .await?
        .into_inner()
        .total
        .unwrap_or_default();
    assert_eq!(
        usage.reserved_ore,
        usage.disbursed_ore + usage.released_ore + outstanding,
        "GetUsage: reserved = disbursed + released + outstanding ({usage:?})"
    );
    for balance in &reconciled.balances {
        assert_eq!(
            balance.outstanding_ore,
            balance.reserved_ore - balance.disbursed_ore - balance.released_ore,
            "{balance:?}"
        );
    }
    Ok(())
}

/// Asserts that none of `numbers` (the run's fødselsnumre) appears in any message on any topic
/// of the stack (key or payload, which holds the envelope and the event) or in any line any
/// service logged. Returns how many messages were scanned.
pub fn assert_no_fodselsnummer(stack: &SystemStack, numbers: &[&str]) -> usize {
    let records = stack.events.all();
    for record in &records {
        for number in numbers {
            let needle = number.as_bytes();
            let found = |haystack: &[u8]| {
                haystack
                    .windows(needle.len())
                    .any(|window| window == needle)
            };
            assert!(
                !found(&record.payload) && !found(&record.key),
                "a fødselsnummer appears in a message on {} ({:?})",
                record.topic,
                record
                    .envelope
                    .as_ref()
                    .map(|envelope| &envelope.event_type)
            );
        }
    }
    for (service, log) in stack.logs() {
        for number in numbers {
            let line = log.lines().find(|line| line.contains(number));
            assert!(
                line.is_none(),
                "a fødselsnummer appears in {service}'s log: {}",
                line.unwrap_or_default().replace(number, "<fnr>")
            );
        }
    }
    records.len()
}
