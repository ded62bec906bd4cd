//! Who calls the flow services in `make run`, and the little `make run`'s two walks share
//! beyond the scenario library (`ekb_testkit::scenarios`, which holds the people, requests,
//! waits and the walks themselves, shared with the end-to-end tests): the lines printed for the
//! steps both walks have, ending a walk that could not finish with a note instead of a refusal
//! to serve, today's date by the service clock, and the developer's own token.
//!
//! Why a token issuer in a local run: both flows are four-eyes (the caseworker who recommends or
//! attests may not be the one who decides or approves), and with authentication off every
//! caller is the same `local` person, so no decision could ever be made. The launcher therefore
//! runs the services whose catalog entry says `dev_auth` ([`authenticated_services`]) with
//! authentication on, trusting a local issuer (testkit's, whose key protects nothing), and the
//! walks call them as the people they name. Routing, the registry and budget stay open.

use ekb_domain::Money;
use ekb_platform::clock::Clock;
use ekb_proto::v1;
use ekb_testkit::{
    catalog::{self, SERVICES},
    fixtures::EMPLOYER_ORGNR,
    issuer::TestIssuer,
    services::ServiceProcess,
};

use crate::sample_cases::flow_name;

/// How long the developer's token printed by `make run` is valid.
pub const DEVELOPER_TOKEN_HOURS: u64 = 12;

/// The services that check tokens under `make run` (their catalog entry's `dev_auth`).
pub fn authenticated_services() -> Vec<&'static str> {
    SERVICES
        .iter()
        .filter(|service| service.dev_auth)
        .map(|service| service.name)
        .collect()
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

/// What `make run` prints for the developer's own calls to the services that check tokens: a
/// token with every role, acting for the fixture's employer and suppliers, and an example call.
pub fn token_instructions(issuer: &TestIssuer, services: &[ServiceProcess]) -> String {
    let mut organisations = vec![EMPLOYER_ORGNR.to_owned()];
    organisations.extend(crate::fixture::supplier_organisation_numbers());
    let listed: Vec<&str> = organisations.iter().map(String::as_str).collect();
    let token = developer_token(issuer, &listed);
    let mut out = format!(
        "{} need a token (valid {DEVELOPER_TOKEN_HOURS} h, every role, acting for {}):\n  \
         export EKB_TOKEN={token}\n",
        authenticated_services().join(", "),
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

/// Prints step `number` of a walk.
pub fn step(number: usize, text: impl AsRef<str>) {
    println!("  {number:>2}. {}", text.as_ref());
}

/// Step 1 of both walks: routing's decision on `case` in `place`.
pub fn case_opened(case: &v1::Case, place: &str) -> String {
    let decision = case.decision.unwrap_or_default();
    format!(
        "OpenCase: case {} in {place} → {} ({})",
        case.case_id,
        flow_name(decision.flow()),
        decision
            .reason()
            .as_str_name()
            .trim_start_matches("ROUTING_REASON_")
    )
}

/// Step 8 of both walks: budget settled `reservation`.
pub fn settled(reservation: &v1::Reservation) -> String {
    format!(
        "Budget: reserved {} = disbursed {} (FundsDisbursed) + released {} \
         (FundsReleased, remainder); reservation SETTLED",
        Money::from_ore(reservation.reserved_ore),
        Money::from_ore(reservation.disbursed_ore),
        Money::from_ore(reservation.released_ore)
    )
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
/// never a real person's. The flow services accept synthetic numbers under `make run` (their
/// catalog entries' `dev_settings`).
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
    fn the_flow_services_check_tokens_and_the_others_do_not() {
        assert_eq!(
            authenticated_services(),
            ["applications", "refunds", "pilot-ordering"]
        );
    }
}
