//! What both walks do the same way: open the case at routing, and read budget's reservation for
//! a commitment until budget has settled it (or, for the tests, reached any other status).

use anyhow::Context;
use ekb_proto::v1;

use super::{
    Clients, Narrator, People, Step,
    requests::get_reservation,
    waits::{answer, until},
};
use crate::services::with_bearer;

/// Opens a case with `facts` as the NAV system that takes in cases; returns it with routing's
/// decision.
pub async fn open_case(
    clients: &Clients,
    people: &People<'_>,
    facts: v1::CaseFacts,
) -> anyhow::Result<v1::Case> {
    let request = with_bearer(crate::fixtures::open_case(facts), &people.system());
    answer("OpenCase", clients.routing.clone().open_case(request).await)?
        .case
        .context("OpenCase answered without the case")
}

/// Budget's reservation (or pending or denied request) for commitment `id` of `kind`, read with
/// `token`; `None` while budget has not had the request (NOT_FOUND: the event is on its way).
pub async fn reservation(
    clients: &Clients,
    token: &str,
    kind: v1::CommitmentKind,
    id: &str,
) -> anyhow::Result<Option<v1::Reservation>> {
    let request = with_bearer(get_reservation(kind, id), token);
    match clients.budget.clone().get_reservation(request).await {
        Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
        answered => answer("GetReservation", answered)?
            .reservation
            .context("GetReservation answered without the reservation")
            .map(Some),
    }
}

/// Waits until budget's reservation for commitment `id` of `kind` is in `status`, and returns
/// it.
pub async fn reservation_in(
    clients: &Clients,
    token: &str,
    kind: v1::CommitmentKind,
    id: &str,
    status: v1::ReservationStatus,
) -> anyhow::Result<v1::Reservation> {
    let what = format!(
        "budget's reservation for {id} to be {}",
        status
            .as_str_name()
            .trim_start_matches("RESERVATION_STATUS_")
    );
    until(&what, || async {
        let found = reservation(clients, token, kind, id).await?;
        Ok(found.filter(|found| found.status() == status))
    })
    .await
}

/// Waits until budget's reservation for `id` is SETTLED (the money disbursed, the rest released)
/// and tells `narrator` ([`Step::Settled`]): the same last money step of both walks.
pub async fn settled(
    clients: &Clients,
    narrator: &mut impl Narrator,
    token: &str,
    kind: v1::CommitmentKind,
    id: &str,
) -> anyhow::Result<v1::Reservation> {
    let reservation =
        reservation_in(clients, token, kind, id, v1::ReservationStatus::Settled).await?;
    narrator
        .step(Step::Settled {
            reservation: &reservation,
        })
        .await?;
    Ok(reservation)
}
