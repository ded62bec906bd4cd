//! Who calls the flow services in `make run`'s walk through both flows, and the little the two
//! walks share (opening the case, waiting for state that changes on events or for a service to
//! know what an event told it, budget's settlement, printing a numbered step, ending a walk that
//! could not finish with a note instead of a refusal to serve).
//!
//! Why a token issuer in a local run: both flows are four-eyes (the caseworker who recommends or
//! attests may not be the one who decides or approves), and with authentication off every
//! caller is the same `local` person, so no decision could ever be made. The launcher therefore
//! runs the flow services ([`FOUR_EYES_SERVICES`]) with authentication on, trusting a local
//! issuer (testkit's, whose key protects nothing), and the walks call them as the people they
//! name. Routing, the registry and budget stay open as before.

use ekb_platform::clock::Clock;
use std::{future::Future, time::Duration};

use anyhow::{Context, bail};
use ekb_domain::Money;
use ekb_proto::v1::{
    self, CommitmentKind, budget_service_client::BudgetServiceClient,
    routing_service_client::RoutingServiceClient,
};
use ekb_testkit::{
    catalog,
    fixtures::{EMPLOYER_ORGNR, open_case},
    issuer::TestIssuer,
    services::{ServiceProcess, with_bearer},
};
use tonic::transport::Channel;

use crate::sample_cases::flow_name;

/// The services that decide with four eyes, and so need to know who is calling even locally.
pub const FOUR_EYES_SERVICES: [&str; 3] = ["applications", "refunds", "pilot-ordering"];
/// The caseworker of the walks (first pair of eyes).
pub const CASEWORKER: &str = "Z990001";
/// The decider and approver of the walks (second pair of eyes).
pub const DECIDER: &str = "Z990002";
/// How long a walk waits for a step that happens through events.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the developer's token printed by `make run` is valid.
pub const DEVELOPER_TOKEN_HOURS: u64 = 12;

/// The callers of the walks, with tokens from the local issuer.
pub struct Callers<'a> {
    issuer: &'a TestIssuer,
}

impl<'a> Callers<'a> {
    /// Callers whose tokens `issuer` signs.
    pub fn new(issuer: &'a TestIssuer) -> Self {
        Callers { issuer }
    }

    /// The caseworker, with the caseworker and reader roles of both flows.
    pub fn caseworker(&self) -> String {
        self.issuer.token(
            CASEWORKER,
            &[
                "application-caseworker",
                "application-reader",
                "refund-caseworker",
                "refund-reader",
                "pilot-caseworker",
                "pilot-reader",
            ],
        )
    }

    /// The decider, who decides applications and claims and approves invoices.
    pub fn decider(&self) -> String {
        self.issuer.token(
            DECIDER,
            &[
                "application-decider",
                "refund-decider",
                "pilot-approver",
                "pilot-reader",
            ],
        )
    }

    /// The employer's representative, acting for `organisation`.
    pub fn employer(&self, organisation: &str) -> String {
        self.issuer.token_for_organisations(
            "make-run-employer",
            &["application-employer", "refund-employer"],
            &[organisation],
        )
    }

    /// Supplier `organisation`'s system.
    pub fn supplier(&self, organisation: &str) -> String {
        self.issuer.token_for_organisations(
            &format!("make-run-supplier-{organisation}"),
            &["pilot-supplier"],
            &[organisation],
        )
    }
}

/// A token with every role of every service, acting for `organisations`, valid for
/// [`DEVELOPER_TOKEN_HOURS`]: printed for the developer's own calls to the flow services.
pub fn developer_token(issuer: &TestIssuer, organisations: &[&str]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    issuer.sign(&serde_json::json!({
        "iss": ekb_testkit::issuer::TEST_ISSUER,
        "aud": ekb_testkit::issuer::TEST_AUDIENCE,
        "sub": "make-run-developer",
        "azp": "ekb-dev",
        "roles": catalog::all_client_roles(),
        "organisations": organisations,
        "iat": now,
        "exp": now + DEVELOPER_TOKEN_HOURS * 3600,
    }))
}

/// What `make run` prints for the developer's own calls to the four-eyes services: a token
/// with every role, acting for the fixture's employer and suppliers, and an example call.
pub fn token_instructions(issuer: &TestIssuer, services: &[ServiceProcess]) -> String {
    let mut organisations = vec![EMPLOYER_ORGNR.to_owned()];
    organisations.extend(crate::fixture::supplier_organisation_numbers());
    let listed: Vec<&str> = organisations.iter().map(String::as_str).collect();
    let token = developer_token(issuer, &listed);
    let mut out = format!(
        "{} need a token (valid {DEVELOPER_TOKEN_HOURS} h, every role, acting for {}):\n  \
         export EKB_TOKEN={token}\n",
        FOUR_EYES_SERVICES.join(", "),
        listed.join(", ")
    );
    // One example call per listing service that runs: (service, request body, method).
    let examples = [
        (
            "applications",
            r#"{"statuses":["APPLICATION_STATUS_GRANTED"],"county_codes":["34"]}"#,
            "ApplicationsService/ListApplications",
        ),
        (
            "pilot-ordering",
            r#"{"statuses":["ORDER_STATUS_COMPLETED"],"county_code":"34"}"#,
            "PilotOrderingService/ListOrders",
        ),
    ];
    for (name, body, method) in examples {
        if let Some(running) = services.iter().find(|service| service.name == name) {
            out.push_str(&format!(
                "  grpcurl -plaintext -H \"authorization: Bearer $EKB_TOKEN\" -d '{body}' {} \
                 ekspertbistand.v1.{method}\n",
                running.grpc_addr
            ));
        }
    }
    out
}

/// `message` with the bearer `token`.
pub fn as_caller<T>(message: T, token: &str) -> tonic::Request<T> {
    with_bearer(message, token)
}

/// Polls `check` until it returns `Some` (state that changes when an event arrives), failing
/// with `what` after a while.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{what} did not happen within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Calls `call` until it stops answering UNAVAILABLE (the service has not had the event it
/// needs yet: `what`), then returns what `pick` takes from the answer; any other refusal ends
/// the walk, named after `rpc`.
pub async fn when_known<R, T, F, Fut>(
    what: &str,
    rpc: &str,
    mut call: F,
    pick: impl Fn(R) -> Option<T>,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
{
    wait_for(what, || {
        let answer = call();
        let pick = &pick;
        async move {
            match answer.await {
                Ok(response) => Ok(pick(response.into_inner())),
                Err(status) if status.code() == tonic::Code::Unavailable => Ok(None),
                Err(status) => Err(anyhow::anyhow!("{rpc}: {}", refusal(&status))),
            }
        }
    })
    .await
}

/// Opens a case with `facts` and prints routing's decision as step 1, the case `described` (its
/// municipality and the expert chosen); returns the case.
pub async fn open_case_step(
    routing: &mut RoutingServiceClient<Channel>,
    facts: v1::CaseFacts,
    described: &str,
) -> anyhow::Result<v1::Case> {
    let case = routing
        .open_case(open_case(facts))
        .await
        .context("OpenCase")?
        .into_inner()
        .case
        .unwrap_or_default();
    let decision = case.decision.unwrap_or_default();
    step(
        1,
        format!(
            "OpenCase: case {} in {described} → {} ({})",
            case.case_id,
            flow_name(decision.flow()),
            decision
                .reason()
                .as_str_name()
                .trim_start_matches("ROUTING_REASON_")
        ),
    );
    Ok(case)
}

/// Waits until budget has settled the reservation of commitment `id` of `kind` (disbursed the
/// payout, released the rest), and prints it as step `number`.
pub async fn settled_step(
    budget: &BudgetServiceClient<Channel>,
    number: usize,
    kind: CommitmentKind,
    id: &str,
) -> anyhow::Result<()> {
    let settled = wait_for("budget to disburse and release (FundsDisbursed)", || {
        let mut budget = budget.clone();
        let id = id.to_owned();
        async move {
            let reservation = budget
                .get_reservation(v1::GetReservationRequest {
                    commitment: Some(v1::Commitment {
                        kind: kind as i32,
                        commitment_id: id,
                    }),
                })
                .await
                .map_err(|status| anyhow::anyhow!("GetReservation: {}", refusal(&status)))?
                .into_inner()
                .reservation
                .unwrap_or_default();
            Ok((reservation.status() == v1::ReservationStatus::Settled).then_some(reservation))
        }
    })
    .await?;
    step(
        number,
        format!(
            "Budget: reserved {} = disbursed {} (FundsDisbursed) + released {} \
             (FundsReleased, remainder); reservation SETTLED",
            Money::from_ore(settled.reserved_ore),
            Money::from_ore(settled.disbursed_ore),
            Money::from_ore(settled.released_ore)
        ),
    );
    Ok(())
}

/// Prints step `number` of a walk.
pub fn step(number: usize, text: impl AsRef<str>) {
    println!("  {number:>2}. {}", text.as_ref());
}

/// A gRPC refusal as one line: code, reason (`google.rpc.ErrorInfo`) and message.
pub fn refusal(status: &tonic::Status) -> String {
    use tonic_types::StatusExt as _;
    let reason = status
        .get_details_error_info()
        .map(|info| format!(" {}", info.reason))
        .unwrap_or_default();
    format!("{:?}{reason}: {}", status.code(), status.message())
}

/// How a walk that stopped early ends: a fault on a fresh run (nothing but this run's data, so
/// the system misbehaved), a note otherwise (data kept from earlier runs, say an appropriation
/// set low by hand or this month's capacity used up, can stop it; the system still serves).
pub fn stopped(flow: &str, error: anyhow::Error, fresh: bool) -> anyhow::Result<()> {
    if fresh {
        return Err(error.context(format!("the {flow} walk stopped on a fresh run")));
    }
    println!(
        "  The {flow} walk stopped: {error:#}\n  Data kept from earlier runs can cause this; \
         `scripts/run.sh --fresh` starts empty."
    );
    Ok(())
}

/// Today in Europe/Oslo, `YYYY-MM-DD`: the calendar the services' date rules use (summer time
/// from the last Sunday of March to the last Sunday of October, 01:00 UTC both).
pub fn oslo_today(clock: &dyn Clock) -> String {
    ekb_proto::convert::date_to_wire(ekb_domain::oslo_date(clock.now()))
}

/// A synthetic (Tenor: month + 80) fødselsnummer for the walks' employee: valid check digits,
/// never a real person's. The launcher lets the flow services accept synthetic numbers.
pub fn synthetic_fodselsnummer() -> String {
    ekb_testkit::people::synthetic_fodselsnummer("120885", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walks_employee_is_a_valid_synthetic_number() {
        let number = synthetic_fodselsnummer();
        let parsed = ekb_domain::Fodselsnummer::parse(&number, ekb_domain::SyntheticPolicy::Accept)
            .expect("valid check digits");
        assert!(parsed.is_synthetic());
    }

    #[test]
    fn today_in_oslo_is_a_date() {
        let today = oslo_today(&ekb_platform::clock::SystemClock);
        assert_eq!(today.len(), 10);
        assert!(ekb_domain::parse_iso_date(&today).is_ok(), "{today}");
    }

    #[test]
    fn only_the_four_eyes_services_get_authentication() {
        for name in FOUR_EYES_SERVICES {
            assert!(catalog::entry(name).is_some(), "{name}");
        }
    }
}
