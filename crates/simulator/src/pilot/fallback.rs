//! A pilot case that left the pilot, carried on in the regular flow on the same case: the
//! employer applies, four eyes grant, budget reserves, the employer claims on time, four eyes
//! approve, the payment system pays (or budget denies the grant, late in the year).
//!
//! Why so short: the regular flow is helper R's ([`crate::regular::walk`]), written once for
//! both flows and able to start from a case that is already open. This file only does what is
//! particular to a case arriving from the pilot: the caseworker's SendToRegularFlow when the
//! pilot cannot serve it, and waiting for routing to show the case REGULAR before the employer
//! applies (applications learns of the change from routing's CaseFlowChanged).

use anyhow::Context;
use ekb_proto::v1;
use ekb_testkit::{
    scenarios::waits::{answer, until},
    services::with_bearer,
};

use crate::{
    plan::{CaseMoney, CasePlan},
    regular::{self, RegularPath},
    timeline::{Caller, Sim},
};

/// Case `case_id` as routing holds it now, read as the NAV system.
pub async fn routed(sim: &Sim, case_id: &str) -> anyhow::Result<v1::Case> {
    let request = with_bearer(
        v1::GetCaseRequest {
            case_id: case_id.to_owned(),
        },
        &sim.token(&Caller::System),
    );
    answer(
        "GetCase",
        sim.clients.routing.clone().get_case(request).await,
    )?
    .case
    .context("GetCase answered without the case")
}

/// The caseworker sends `case_id` to the regular flow for `reason` (routing's
/// SendToRegularFlow): the pilot could not serve it.
pub async fn send_to_regular(
    sim: &Sim,
    case_id: &str,
    reason: v1::FlowChangeReason,
) -> anyhow::Result<()> {
    let request = with_bearer(
        v1::SendToRegularFlowRequest {
            case_id: case_id.to_owned(),
            reason: reason as i32,
            note: "Piloten kunne ikke betjene saken; videre som vanlig søknad.".to_owned(),
        },
        &sim.token(&Caller::Caseworker),
    );
    answer(
        "SendToRegularFlow",
        sim.clients
            .routing
            .clone()
            .send_to_regular_flow(request)
            .await,
    )?;
    Ok(())
}

/// Carries `case` (`case_id`) on in the regular flow, once routing shows it REGULAR, as a
/// grant meant to be paid; returns the money the regular flow moved (its grant's reservation
/// and what the simulator paid out).
pub async fn carry_on(sim: &Sim, case: &CasePlan, case_id: &str) -> anyhow::Result<CaseMoney> {
    until(
        &format!("routing to show case {} REGULAR", case.number),
        || async {
            let found = routed(sim, case_id).await?;
            Ok((found.current_flow() == v1::Flow::Regular).then_some(()))
        },
    )
    .await?;
    let walked = regular::walk(sim, case, case_id, RegularPath::Paid)
        .await
        .with_context(|| format!("case {} in the regular flow after the pilot", case.number))?;
    Ok(walked.money)
}
