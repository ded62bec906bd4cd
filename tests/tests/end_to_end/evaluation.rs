//! The evaluation with every service running as its own process over the broker: a known set of
//! cases is driven through both flows with the walks and steps the flow tests use — regular:
//! one paid on time (`make run`'s walk), one claimed late and paid, one withdrawn; pilot: one
//! completed and paid (`make run`'s walk), one declined by the first supplier and accepted by
//! the next, one declined by both and handed to the regular flow, where the employer then
//! applies. The evaluation reads them from the topics; its cohort table (threshold 1 in the
//! whole-system stack, so every figure shows) must equal, cell for cell, the figures this test
//! computes by hand from what the walks did ([`Walked`], ADR 0033's definitions).
//!
//! Then the read model is rebuilt from the topics: a second evaluation process on an empty
//! database of its own, in a consumer group of its own (`consumer.group_suffix`), reads every
//! topic from the start and must answer the same table; a third, with the default threshold
//! (5), must hide the same figures as small cells (ADR 0034).

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use ekb_proto::v1::{
    self, CompetenceArea, Flow, OrderStatus, evaluation_service_client::EvaluationServiceClient,
};
use ekb_testkit::{
    catalog,
    postgres::fresh_database,
    scenarios::{
        Narrator, Step,
        pilot::{self, INVOICE_DISCOUNT_ORE, PilotCase, PilotOutcome},
        regular::{self, GRANTED_ORE, INVOICED_ORE, RegularCase},
        requests,
    },
    services::{ServiceProcess, TestSettings, with_bearer},
};
use ekb_tests::{
    EMPLOYER_ORGNR, HAMAR, INNLANDET, case_facts,
    ledger::set_appropriation,
    people::{oslo_today, parse_iso, synthetic_fodselsnummer, today},
    system::SystemStack,
    test_log_dir,
};
use time::{Date, OffsetDateTime};
use tonic::transport::Channel;

use super::{
    pilot_flow::{TestAgreement, register, submit_after_fallback, suppliers},
    regular_flow::{
        LATE_DAYS, claimable_grant_for, grace_days, move_refund_deadline, open_regular_case,
        submit_application,
    },
};

/// Fifty million kroner, in øre.
const PLENTY_ORE: i64 = 5_000_000_000;
/// How long the evaluation may take to show what the walks did (or a rebuild to catch up).
const FIGURES_TIMEOUT: Duration = Duration::from_secs(120);
/// The evaluation's default threshold (`evaluation.min_cases`).
const DEFAULT_MIN_CASES: u32 = 5;
/// Employees of county 34 and of all 15 counties in the evaluation's default statistic
/// (services/evaluation/src/config.rs, SSB table 11933, 4th quarter 2023, rounded).
const EMPLOYEES_34: f64 = 185_000.0;
const EMPLOYEES_ALL: f64 = 2_907_000.0;
/// The framework area of the pilot cases, and the two agreements' prices and capacity.
const AREA: CompetenceArea = CompetenceArea::SickLeaveFollowUp;
const FIRST_PRICE_ORE: i64 = 2_400_000;
const SECOND_PRICE_ORE: i64 = 2_150_000;
const MONTHLY_CAPACITY: i32 = 5;

/// A walk's narrator that only listens: the flow tests check the steps; here only the figures
/// count.
struct Quiet;

impl Narrator for Quiet {
    async fn step(&mut self, _step: Step<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// What the walks did to one case, written down by hand as ADR 0033 defines each fact.
#[derive(Debug, Clone)]
struct Walked {
    /// The flow routing first chose.
    pilot: bool,
    /// The figure of its routing reason (`routed_…`).
    routed: &'static str,
    /// The Europe/Oslo day routing opened it (its cohort is this month).
    opened: Date,
    orders_placed: u32,
    orders_declined: u32,
    accepted: bool,
    completed: bool,
    /// The figure of its fallback reason (`pilot_fallback_…`).
    fallback: Option<&'static str>,
    submitted: bool,
    granted: bool,
    withdrawn: bool,
    /// Its first claim: `Some(late)`.
    claim_late: Option<bool>,
    refund_paid: bool,
    decided_or_ordered: Option<Date>,
    expert_started: Option<Date>,
    nav_steps: u32,
    employer_steps: u32,
    committed_ore: i64,
    disbursed_ore: i64,
    released_ore: i64,
    max_allowed_ore: Option<i64>,
}

impl Walked {
    fn new(pilot: bool, routed: &'static str, opened: Date) -> Self {
        Walked {
            pilot,
            routed,
            opened,
            orders_placed: 0,
            orders_declined: 0,
            accepted: false,
            completed: false,
            fallback: None,
            submitted: false,
            granted: false,
            withdrawn: false,
            claim_late: None,
            refund_paid: false,
            decided_or_ordered: None,
            expert_started: None,
            nav_steps: 0,
            employer_steps: 0,
            committed_ore: 0,
            disbursed_ore: 0,
            released_ore: 0,
            max_allowed_ore: None,
        }
    }
}

/// A cell's place: county scope (`34`, `other_counties`, `all`), flow scope (`regular`,
/// `pilot`, `all`), month, agreement and figure.
type Key = (String, String, String, String, String);
/// A published value and its case count.
type Figure = (f64, u32);

fn key(county: &str, flow: &str, month: Date, agreement: &str, figure: &str) -> Key {
    (
        county.to_owned(),
        flow.to_owned(),
        month_text(month),
        agreement.to_owned(),
        figure.to_owned(),
    )
}

fn month_text(day: Date) -> String {
    format!("{:04}-{:02}", day.year(), u8::from(day.month()))
}

fn first_of_month(day: Date) -> Date {
    day.replace_day(1).unwrap_or(day)
}

/// The `p`-th quantile by linear interpolation between closest ranks (type 7, docs/evaluation.md).
fn quantile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (sorted.len() - 1) as f64 * p;
    let (below, above) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[below] + (sorted[above] - sorted[below]) * (rank - below as f64)
}

/// The figures of one group of cases (one county scope × flow scope × month), by their
/// definitions in docs/evaluation.md; a figure with no basis is left out.
fn group_figures(cases: &[&Walked], flow: &str, employees: f64) -> Vec<(&'static str, Figure)> {
    let mut out: Vec<(&'static str, Figure)> = Vec::new();
    let n = cases.len() as u32;
    let count = |keep: &dyn Fn(&Walked) -> bool| {
        let counted = cases.iter().filter(|case| keep(case)).count() as u32;
        (f64::from(counted), counted)
    };
    out.push(("cases_opened", (f64::from(n), n)));
    if flow == "all" {
        for reason in [
            "routed_pilot_eligible",
            "routed_outside_pilot_county",
            "routed_outside_pilot_period",
            "routed_employer_chose_own_expert",
            "routed_no_agreement_for_area",
        ] {
            out.push((reason, count(&|case| case.routed == reason)));
        }
    }
    if flow == "pilot" {
        let ordered: Vec<&&Walked> = cases.iter().filter(|case| case.orders_placed > 0).collect();
        let orders: u32 = ordered.iter().map(|case| case.orders_placed).sum();
        let declines: u32 = ordered.iter().map(|case| case.orders_declined).sum();
        let ordered_n = ordered.len() as u32;
        out.push(("pilot_cases_ordered", (f64::from(ordered_n), ordered_n)));
        out.push(("pilot_orders_placed", (f64::from(orders), ordered_n)));
        out.push((
            "pilot_cases_declined",
            count(&|case| case.orders_declined > 0),
        ));
        if ordered_n > 0 {
            out.push((
                "pilot_declines_per_ordered_case",
                (f64::from(declines) / f64::from(ordered_n), ordered_n),
            ));
        }
        out.push(("pilot_accepted", count(&|case| case.accepted)));
        out.push(("pilot_aborted", (0.0, 0)));
        out.push(("pilot_completed", count(&|case| case.completed)));
        out.push(("pilot_fallbacks", count(&|case| case.fallback.is_some())));
        for reason in [
            "pilot_fallback_no_supplier_available",
            "pilot_fallback_agreements_full",
            "pilot_fallback_agreement_ended",
            "pilot_fallback_employer_chose_own_expert",
        ] {
            out.push((reason, count(&|case| case.fallback == Some(reason))));
        }
    }
    out.push((
        "regular_applications_submitted",
        count(&|case| case.submitted),
    ));
    out.push(("regular_granted", count(&|case| case.granted)));
    out.push(("regular_withdrawn", count(&|case| case.withdrawn)));
    out.push((
        "regular_claims_on_time",
        count(&|case| case.claim_late == Some(false)),
    ));
    out.push((
        "regular_claims_late",
        count(&|case| case.claim_late == Some(true)),
    ));
    out.push(("regular_refunds_paid", count(&|case| case.refund_paid)));
    for (name, day) in [
        (
            "days_to_expert_start",
            (|case: &Walked| case.expert_started) as fn(&Walked) -> Option<Date>,
        ),
        ("days_to_decision_or_order", |case: &Walked| {
            case.decided_or_ordered
        }),
    ] {
        let days: Vec<f64> = cases
            .iter()
            .filter_map(|case| day(case).map(|day| (day - case.opened).whole_days() as f64))
            .collect();
        if !days.is_empty() {
            let basis = days.len() as u32;
            for (suffix, p) in [("median", 0.5), ("p75", 0.75), ("p90", 0.9)] {
                let figure: &'static str = match (name, suffix) {
                    ("days_to_expert_start", "median") => "days_to_expert_start_median",
                    ("days_to_expert_start", "p75") => "days_to_expert_start_p75",
                    ("days_to_expert_start", _) => "days_to_expert_start_p90",
                    (_, "median") => "days_to_decision_or_order_median",
                    (_, "p75") => "days_to_decision_or_order_p75",
                    _ => "days_to_decision_or_order_p90",
                };
                out.push((figure, (quantile(&days, p), basis)));
            }
        }
    }
    if n > 0 {
        let nav: u32 = cases.iter().map(|case| case.nav_steps).sum();
        let employer: u32 = cases.iter().map(|case| case.employer_steps).sum();
        out.push(("nav_steps_per_case", (f64::from(nav) / f64::from(n), n)));
        out.push((
            "employer_steps_per_case",
            (f64::from(employer) / f64::from(n), n),
        ));
    }
    let sum = |amount: fn(&Walked) -> i64| {
        let total: i64 = cases.iter().map(|case| amount(case)).sum();
        let contributors = cases.iter().filter(|case| amount(case) != 0).count() as u32;
        (total as f64, contributors)
    };
    out.push(("money_committed_ore", sum(|case| case.committed_ore)));
    out.push(("money_disbursed_ore", sum(|case| case.disbursed_ore)));
    out.push(("money_released_ore", sum(|case| case.released_ore)));
    let completed = count(&|case| case.completed || case.refund_paid);
    out.push(("cases_completed", completed));
    if completed.1 > 0 {
        let disbursed: i64 = cases.iter().map(|case| case.disbursed_ore).sum();
        out.push((
            "cost_per_completed_case_ore",
            (disbursed as f64 / completed.0, completed.1),
        ));
    }
    let known: Vec<&&Walked> = cases
        .iter()
        .filter(|case| case.max_allowed_ore.is_some())
        .collect();
    if !known.is_empty() {
        let committed: i64 = known.iter().map(|case| case.committed_ore).sum();
        let allowed: i64 = known.iter().filter_map(|case| case.max_allowed_ore).sum();
        out.push((
            "share_of_max_rate",
            (committed as f64 / allowed as f64, known.len() as u32),
        ));
    }
    out.push((
        "uptake_per_10000_employees",
        (f64::from(n) * 10_000.0 / employees, n),
    ));
    out
}

/// The whole table this test expects for `months`: every cell with a value or a case count (all
/// other cells must be zeros of no case), for the cases `walked` (all in county 34) and
/// `agreements` (id, orders accepted per month).
fn expected_table(
    walked: &[Walked],
    agreements: &[(String, BTreeMap<Date, u32>)],
    months: &[Date],
) -> BTreeMap<Key, Figure> {
    let mut table = BTreeMap::new();
    for &month in months {
        for (county, employees) in [(INNLANDET, EMPLOYEES_34), ("all", EMPLOYEES_ALL)] {
            for flow in ["regular", "pilot", "all"] {
                let cases: Vec<&Walked> = walked
                    .iter()
                    .filter(|case| first_of_month(case.opened) == month)
                    .filter(|case| match flow {
                        "regular" => !case.pilot,
                        "pilot" => case.pilot,
                        _ => true,
                    })
                    .collect();
                for (figure, value) in group_figures(&cases, flow, employees) {
                    table.insert(key(county, flow, month, "", figure), value);
                }
            }
        }
        for (agreement, accepted) in agreements {
            let used = accepted.get(&month).copied().unwrap_or(0);
            let available = f64::from(MONTHLY_CAPACITY);
            for (figure, value) in [
                ("capacity_orders_available", (available, 0)),
                ("capacity_orders_used", (f64::from(used), used)),
                ("capacity_share_used", (f64::from(used) / available, used)),
            ] {
                table.insert(key(INNLANDET, "pilot", month, agreement, figure), value);
            }
        }
    }
    table.retain(|_, (value, cases)| *value != 0.0 || *cases != 0);
    table
}

/// A cell's key as this test writes it.
fn cell_key(cell: &v1::CohortCell) -> Key {
    use v1::{county_scope::Scope as County, flow_scope::Scope as Flows};
    let county = match cell.county.as_ref().and_then(|scope| scope.scope.clone()) {
        Some(County::CountyCode(code)) => code,
        Some(County::OtherCounties(_)) => "other_counties".to_owned(),
        Some(County::AllCounties(_)) => "all".to_owned(),
        None => "?".to_owned(),
    };
    let flow = match cell.flow.as_ref().and_then(|scope| scope.scope) {
        Some(Flows::Flow(flow)) if flow == Flow::Regular as i32 => "regular",
        Some(Flows::Flow(flow)) if flow == Flow::Pilot as i32 => "pilot",
        Some(Flows::AllFlows(_)) => "all",
        _ => "?",
    };
    (
        county,
        flow.to_owned(),
        cell.month.clone(),
        cell.agreement_id.clone(),
        cell.figure.clone(),
    )
}

fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Every difference between `cells` and `expected`: expected cells missing, suppressed or with
/// another value or case count, and cells with a value or case count the test does not expect.
fn mismatches(cells: &[v1::CohortCell], expected: &BTreeMap<Key, Figure>) -> Vec<String> {
    let mut found = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for cell in cells {
        let key = cell_key(cell);
        seen.insert(key.clone());
        let shown = (cell.value, cell.cases);
        let suppressed = cell.suppression != v1::Suppression::Unspecified as i32;
        match expected.get(&key) {
            Some(&(value, cases)) => {
                let equal = !suppressed
                    && shown.0.is_some_and(|shown| same(shown, value))
                    && shown.1 == Some(cases);
                if !equal {
                    found.push(format!(
                        "{key:?}: expected {value} from {cases} cases, got {shown:?}{}",
                        if suppressed { " (suppressed)" } else { "" }
                    ));
                }
            }
            None => {
                let zero = !suppressed
                    && shown.0.is_none_or(|value| value == 0.0)
                    && shown.1.is_none_or(|cases| cases == 0);
                if !zero {
                    found.push(format!(
                        "{key:?}: unexpected cell {shown:?}{}",
                        if suppressed { " (suppressed)" } else { "" }
                    ));
                }
            }
        }
    }
    for (key, (value, cases)) in expected {
        if !seen.contains(key) {
            found.push(format!(
                "{key:?}: expected {value} from {cases} cases, no such cell"
            ));
        }
    }
    found
}

/// An evaluation client for the process at `url`.
async fn evaluation_client(url: String) -> anyhow::Result<EvaluationServiceClient<Channel>> {
    Ok(EvaluationServiceClient::new(
        Channel::from_shared(url)?.connect().await?,
    ))
}

/// The cohort table of `from`..`to` from the evaluation at `url`.
async fn cohort_table(
    url: &str,
    token: &str,
    from: Date,
    to: Date,
) -> anyhow::Result<v1::GetCohortTableResponse> {
    let request = v1::GetCohortTableRequest {
        from_month: month_text(from),
        to_month: month_text(to),
    };
    Ok(evaluation_client(url.to_owned())
        .await?
        .get_cohort_table(with_bearer(request, token))
        .await?
        .into_inner())
}

/// Polls the evaluation at `url` until `problems` finds nothing in its table, for at most
/// [`FIGURES_TIMEOUT`]; fails listing what was still wrong. Returns the table.
async fn table_when(
    url: &str,
    token: &str,
    months: &[Date],
    what: &str,
    problems: impl Fn(&v1::GetCohortTableResponse) -> Vec<String>,
) -> anyhow::Result<v1::GetCohortTableResponse> {
    let (from, to) = (
        *months.first().context("no month")?,
        *months.last().context("no month")?,
    );
    let deadline = tokio::time::Instant::now() + FIGURES_TIMEOUT;
    loop {
        let table = cohort_table(url, token, from, to).await?;
        let found = problems(&table);
        if found.is_empty() {
            return Ok(table);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "{what}: after {FIGURES_TIMEOUT:?}, {} differences:\n  {}",
                found.len(),
                found.join("\n  ")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Starts one more evaluation process on this stack's broker and topics, on an empty database of
/// its own and in consumer group `<prefix>.evaluation.<group_suffix>` (so it reads every topic
/// from the start), with the catalog's settings and `extra` on top.
async fn another_evaluation(
    stack: &SystemStack,
    group_suffix: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<ServiceProcess> {
    let entry = catalog::entry("evaluation").context("evaluation is not in the catalog")?;
    let database = fresh_database(&format!(
        "e2e_evaluation_{}",
        group_suffix.replace('-', "_")
    ))
    .await?;
    let settings = entry
        .dev_settings
        .iter()
        .chain(entry.test_settings)
        .copied()
        .chain([("consumer.group_suffix", group_suffix)])
        .chain(extra.iter().copied())
        .fold(
            TestSettings::new(
                &database.url,
                stack.broker.bootstrap_servers(),
                &stack.topic_prefix,
            )
            .with_auth(&stack.issuer)
            .with("telemetry.log_format", "json"),
            |settings, (key, value)| settings.with(key, value),
        );
    let mut process = ServiceProcess::spawn("evaluation", &settings, &test_log_dir())?;
    process
        .wait_until_serving(Duration::from_secs(90))
        .await
        .with_context(|| format!("the {group_suffix} evaluation"))?;
    Ok(process)
}

/// The day routing opened case `case_id` (CaseRouted's `opened_at`, Europe/Oslo), read back
/// from the broker: the platform clock's, not this test's.
async fn opened_on(stack: &SystemStack, case_id: &str) -> anyhow::Result<Date> {
    let routed = stack
        .events
        .wait_for(|event: &v1::CaseRouted| event.case_id == case_id)
        .await?;
    oslo_day(routed.opened_at.as_ref())
}

fn oslo_day(at: Option<&prost_types::Timestamp>) -> anyhow::Result<Date> {
    let at = at.context("no timestamp")?;
    Ok(ekb_domain::oslo_date(OffsetDateTime::from_unix_timestamp(
        at.seconds,
    )?))
}

/// The day budget's reservation made order `order_id` PLACED (OrderPlaced's `placed_at`).
async fn placed_on(stack: &SystemStack, order_id: &str) -> anyhow::Result<Date> {
    let placed = stack
        .events
        .wait_for(|event: &v1::OrderPlaced| event.order_id == order_id)
        .await?;
    oslo_day(placed.placed_at.as_ref())
}

/// Grant `grant_id`'s decision day and the max rate it froze, from GrantApproved.
async fn grant_decision(stack: &SystemStack, grant_id: &str) -> anyhow::Result<(Date, i64)> {
    let approved = stack
        .events
        .wait_for(|event: &v1::GrantApproved| event.grant_id == grant_id)
        .await?;
    Ok((parse_iso(&approved.decision_date)?, approved.max_rate_ore))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evaluation_shows_what_both_flows_did_and_a_rebuild_from_the_topics_shows_the_same()
-> anyhow::Result<()> {
    let stack = SystemStack::start("e2e_evaluation").await?;
    set_appropriation(&stack, PLENTY_ORE).await?;
    let clients = stack.clients().await?;
    let people = stack.people();
    let caseworker = people.caseworker();
    let decider = people.decider();
    let employer = people.employer(&[EMPLOYER_ORGNR]);
    let employees: Vec<String> = (0..6)
        .map(|nth| synthetic_fodselsnummer(3, 3, 83, nth))
        .collect();
    let today_text = today();
    let today = parse_iso(&today_text)?;
    let own_expert = "routed_employer_chose_own_expert";
    let mut walked = Vec::new();

    // Regular, paid on time: `make run`'s walk. Decision (2 NAV steps: recommendation and
    // decision), claim decision (2); application and claim (2 employer steps); the expert
    // started on the claim's assistance start (today).
    let paid = regular::walk(
        &clients,
        &people,
        RegularCase {
            employee: &employees[0],
            today: &today_text,
        },
        &mut Quiet,
    )
    .await?;
    let (decided, max_rate) = grant_decision(&stack, paid.grant_id()).await?;
    anyhow::ensure!(max_rate > 0, "the grant froze no max rate");
    walked.push(Walked {
        submitted: true,
        granted: true,
        claim_late: Some(false),
        refund_paid: paid.payment.status() == v1::RefundPaymentStatus::Paid,
        decided_or_ordered: Some(decided),
        expert_started: Some(today),
        nav_steps: 4,
        employer_steps: 2,
        committed_ore: GRANTED_ORE,
        disbursed_ore: INVOICED_ORE,
        released_ore: GRANTED_ORE - INVOICED_ORE,
        max_allowed_ore: Some(max_rate),
        ..Walked::new(
            false,
            own_expert,
            opened_on(&stack, &paid.case.case_id).await?,
        )
    });
    assert!(walked[0].refund_paid, "{:?}", paid.payment);

    // Regular, claimed late: the grant's deadline moved LATE_DAYS back (within the grace days),
    // claimed, approved by four eyes, paid.
    let (application, grant) = claimable_grant_for(&stack, &employees[1]).await?;
    anyhow::ensure!(grace_days(&grant)? > LATE_DAYS, "{grant:?}");
    move_refund_deadline(
        &stack,
        &grant.grant_id,
        oslo_today() - time::Duration::days(LATE_DAYS),
    )
    .await?;
    let late = regular::submit_claim(&clients, &people, &grant.grant_id, &today_text).await?;
    assert!(late.late, "{late:?}");
    let recommended = regular::recommend_refund(
        &clients,
        &caseworker,
        requests::refund_approval(&late.claim_id, INVOICED_ORE),
    )
    .await?;
    regular::decide_refund(
        &clients,
        &decider,
        requests::refund_verdict(&recommended, v1::DeciderVerdict::Confirm, ""),
    )
    .await?;
    stack
        .events
        .wait_for(|event: &v1::PaymentCompleted| event.claim_id == late.claim_id)
        .await?;
    let (decided, max_rate) = grant_decision(&stack, &grant.grant_id).await?;
    walked.push(Walked {
        submitted: true,
        granted: true,
        claim_late: Some(true),
        refund_paid: true,
        decided_or_ordered: Some(decided),
        expert_started: Some(today),
        nav_steps: 4,
        employer_steps: 2,
        committed_ore: GRANTED_ORE,
        disbursed_ore: INVOICED_ORE,
        released_ore: GRANTED_ORE - INVOICED_ORE,
        max_allowed_ore: Some(max_rate),
        ..Walked::new(
            false,
            own_expert,
            opened_on(&stack, &application.case_id).await?,
        )
    });

    // Regular, withdrawn by the employer before any review: two forms (application and
    // withdrawal), no NAV step, no money.
    let case = open_regular_case(&stack).await?;
    let submitted = submit_application(&stack, &case.case_id, &employees[2]).await?;
    let withdrawn = stack
        .applications()
        .await?
        .withdraw_application(with_bearer(
            v1::WithdrawApplicationRequest {
                application_id: submitted.application_id.clone(),
                reason: "Arbeidstakeren er tilbake i full jobb.".to_owned(),
            },
            &employer,
        ))
        .await?
        .into_inner()
        .application
        .unwrap_or_default();
    assert_eq!(withdrawn.status(), v1::ApplicationStatus::Withdrawn);
    walked.push(Walked {
        submitted: true,
        withdrawn: true,
        employer_steps: 2,
        ..Walked::new(false, own_expert, opened_on(&stack, &case.case_id).await?)
    });

    // Two framework agreements in Innlandet: A (rank 1) and B (rank 2), five orders a month each.
    let [first, second, _] = suppliers()?;
    register(
        &stack,
        &[
            TestAgreement {
                reference: "RA-E2E-EVAL-001",
                supplier: first.clone(),
                ranking: 1,
                price_ore: FIRST_PRICE_ORE,
                monthly_capacity: MONTHLY_CAPACITY,
                areas: &[AREA],
            },
            TestAgreement {
                reference: "RA-E2E-EVAL-002",
                supplier: second.clone(),
                ranking: 2,
                price_ore: SECOND_PRICE_ORE,
                monthly_capacity: MONTHLY_CAPACITY,
                areas: &[AREA],
            },
        ],
    )
    .await?;
    let ranked = pilot::suppliers_by_rank(&clients, &people, INNLANDET, AREA, &today_text).await?;
    let agreement_id = |reference: &str| {
        ranked
            .iter()
            .find(|agreement| agreement.agreement_reference == reference)
            .map(|agreement| agreement.agreement_id.clone())
            .with_context(|| format!("{reference} is not found by FindAgreements"))
    };
    let (first_id, second_id) = (
        agreement_id("RA-E2E-EVAL-001")?,
        agreement_id("RA-E2E-EVAL-002")?,
    );
    let mut accepted: BTreeMap<String, BTreeMap<Date, u32>> = BTreeMap::new();
    let mut accept = |agreement: &str, day: Date| {
        *accepted
            .entry(agreement.to_owned())
            .or_default()
            .entry(first_of_month(day))
            .or_default() += 1;
    };

    // Pilot, completed and paid: `make run`'s walk, with A. PlaceOrder, expert started,
    // completed (3 NAV steps), the invoice attested and approved (2); the invoice is the price
    // less the walk's discount, which is released.
    let outcome = pilot::walk(
        &clients,
        &people,
        PilotCase::hamar(AREA, &employees[3], &today_text),
        &mut Quiet,
    )
    .await?;
    let PilotOutcome::Paid(completed) = outcome else {
        anyhow::bail!("the pilot walk ended early: {outcome:?}");
    };
    assert_eq!(completed.order.agreement_reference, "RA-E2E-EVAL-001");
    assert_eq!(
        completed.invoice.payment_status(),
        v1::InvoicePaymentStatus::Paid
    );
    accept(&first_id, today);
    walked.push(Walked {
        orders_placed: 1,
        accepted: true,
        completed: true,
        decided_or_ordered: Some(placed_on(&stack, &completed.order.order_id).await?),
        expert_started: Some(today),
        nav_steps: 5,
        committed_ore: FIRST_PRICE_ORE,
        disbursed_ore: FIRST_PRICE_ORE - INVOICE_DISCOUNT_ORE,
        released_ore: INVOICE_DISCOUNT_ORE,
        ..Walked::new(
            true,
            "routed_pilot_eligible",
            opened_on(&stack, &completed.case.case_id).await?,
        )
    });

    // Pilot, declined by A and accepted by B: two orders (the follow-up is the service's, so one
    // NAV step), A's reservation released, B's price committed.
    let declined_then_accepted = stack
        .open_routed_case(case_facts(HAMAR, Some(AREA), &today_text), Flow::Pilot)
        .await?;
    let (first_order, next_order) = declined_by_first(
        &stack,
        &declined_then_accepted.case_id,
        &employees[4],
        &first,
    )
    .await?;
    pilot::answer_order(
        &clients,
        &people.supplier(&second),
        requests::supplier_answer(&next_order, v1::SupplierResponse::Accepted, &today_text),
    )
    .await?;
    accept(&second_id, today);
    walked.push(Walked {
        orders_placed: 2,
        orders_declined: 1,
        accepted: true,
        decided_or_ordered: Some(placed_on(&stack, &first_order).await?),
        nav_steps: 1,
        committed_ore: SECOND_PRICE_ORE,
        released_ore: FIRST_PRICE_ORE,
        ..Walked::new(
            true,
            "routed_pilot_eligible",
            opened_on(&stack, &declined_then_accepted.case_id).await?,
        )
    });

    // Pilot, declined by both: nobody is left, pilot-ordering hands the case to the regular flow
    // (NO_SUPPLIER_AVAILABLE; the service's, no NAV step), both reservations are released, and
    // the employer applies there (one form, counted in the pilot's cohort).
    let fell_back = stack
        .open_routed_case(case_facts(HAMAR, Some(AREA), &today_text), Flow::Pilot)
        .await?;
    let (first_order, next_order) =
        declined_by_first(&stack, &fell_back.case_id, &employees[5], &first).await?;
    pilot::answer_order(
        &clients,
        &people.supplier(&second),
        requests::supplier_answer(&next_order, v1::SupplierResponse::Declined, &today_text),
    )
    .await?;
    let changed = stack
        .events
        .wait_for(|event: &v1::CaseFlowChanged| event.case_id == fell_back.case_id)
        .await?;
    assert_eq!(changed.reason(), v1::FlowChangeReason::NoSupplierAvailable);
    submit_after_fallback(&stack, &fell_back.case_id, &employees[5]).await?;
    walked.push(Walked {
        orders_placed: 2,
        orders_declined: 2,
        fallback: Some("pilot_fallback_no_supplier_available"),
        submitted: true,
        decided_or_ordered: Some(placed_on(&stack, &first_order).await?),
        nav_steps: 1,
        employer_steps: 1,
        released_ore: FIRST_PRICE_ORE + SECOND_PRICE_ORE,
        ..Walked::new(
            true,
            "routed_pilot_eligible",
            opened_on(&stack, &fell_back.case_id).await?,
        )
    });

    // The cohort months (from the platform's clock) and the months orders were accepted in.
    let mut months: Vec<Date> = walked
        .iter()
        .map(|case| first_of_month(case.opened))
        .chain([first_of_month(today)])
        .collect();
    months.sort();
    months.dedup();
    let (from, to) = (months[0], months[months.len() - 1]);
    let mut months = Vec::new();
    let mut month = from;
    while month <= to {
        months.push(month);
        month = first_of_month(month + time::Duration::days(32));
    }
    let agreements: Vec<(String, BTreeMap<Date, u32>)> = [first_id, second_id]
        .into_iter()
        .map(|id| {
            let used = accepted.get(&id).cloned().unwrap_or_default();
            (id, used)
        })
        .collect();
    let expected = expected_table(&walked, &agreements, &months);

    // The evaluation of the stack (threshold 1) shows exactly those figures.
    let reader = people.nav("Z990009", &["evaluation-reader"]);
    let evaluation_url = stack.service("evaluation")?.url();
    let exact = table_when(
        &evaluation_url,
        &reader,
        &months,
        "the evaluation's table against the figures computed here",
        |table| mismatches(&table.cells, &expected),
    )
    .await?;
    assert_eq!(exact.min_cases, 1);
    assert_eq!(exact.pilot_county, INNLANDET);

    // Rebuilt from the topics: an empty database, a consumer group of its own, from the start.
    // And the default threshold on the same cases, in a third.
    let rebuilt = another_evaluation(&stack, "rebuild", &[]).await?;
    let default_threshold = DEFAULT_MIN_CASES.to_string();
    let suppressing = another_evaluation(
        &stack,
        "default-threshold",
        &[("evaluation.min_cases", default_threshold.as_str())],
    )
    .await?;
    table_when(
        &rebuilt.url(),
        &reader,
        &months,
        "the rebuilt evaluation's table against the first one's",
        |table| {
            if table.cells == exact.cells {
                Vec::new()
            } else {
                differences(&exact.cells, &table.cells)
            }
        },
    )
    .await?;

    // With the default threshold every figure from 1 to 4 cases is hidden (primary), anything
    // else hidden is secondary, and whatever is shown is the exact figure.
    let suppressed = table_when(
        &suppressing.url(),
        &reader,
        &months,
        "the default threshold's table against the exact one",
        |table| suppressed_differences(&exact.cells, &table.cells),
    )
    .await?;
    assert_eq!(suppressed.min_cases, DEFAULT_MIN_CASES);
    let pilot_opened = suppressed
        .cells
        .iter()
        .find(|cell| {
            cell_key(cell)
                == key(
                    INNLANDET,
                    "pilot",
                    first_of_month(today),
                    "",
                    "cases_opened",
                )
        })
        .context("no cases_opened cell for county 34's pilot")?;
    assert_eq!(
        (
            pilot_opened.suppression,
            pilot_opened.value,
            pilot_opened.cases
        ),
        (v1::Suppression::Primary as i32, None, None),
        "three pilot cases are a small cell"
    );
    Ok(())
}

/// For the open pilot case `case_id`: the caseworker orders (from `first`, the supplier ranked
/// first), `first` declines once the order is PLACED, and the service's follow-up order to the
/// next supplier becomes PLACED; returns the first order's id and the follow-up's.
async fn declined_by_first(
    stack: &SystemStack,
    case_id: &str,
    employee: &str,
    first: &str,
) -> anyhow::Result<(String, String)> {
    let clients = stack.clients().await?;
    let people = stack.people();
    let caseworker = people.caseworker();
    let order = pilot::place_order(&clients, &caseworker, case_id, employee).await?;
    assert_eq!(order.supplier_organisation_number, first);
    pilot::order_in(&clients, &caseworker, &order.order_id, OrderStatus::Placed).await?;
    pilot::answer_order(
        &clients,
        &people.supplier(first),
        requests::supplier_answer(&order.order_id, v1::SupplierResponse::Declined, &today()),
    )
    .await?;
    let declined = stack
        .events
        .wait_for(|event: &v1::OrderDeclined| event.order_id == order.order_id)
        .await?;
    anyhow::ensure!(
        !declined.next_order_id.is_empty(),
        "no next supplier after {declined:?}"
    );
    pilot::order_in(
        &clients,
        &caseworker,
        &declined.next_order_id,
        OrderStatus::Placed,
    )
    .await?;
    Ok((order.order_id, declined.next_order_id))
}

/// The cells in which `b` differs from `a`, by key.
fn differences(a: &[v1::CohortCell], b: &[v1::CohortCell]) -> Vec<String> {
    let index = |cells: &[v1::CohortCell]| -> BTreeMap<Key, v1::CohortCell> {
        cells
            .iter()
            .map(|cell| (cell_key(cell), cell.clone()))
            .collect()
    };
    let (a, b) = (index(a), index(b));
    let mut found = Vec::new();
    for (key, cell) in &a {
        match b.get(key) {
            Some(other) if other == cell => {}
            Some(other) => found.push(format!(
                "{key:?}: {:?}/{:?} vs {:?}/{:?}",
                cell.value, cell.cases, other.value, other.cases
            )),
            None => found.push(format!("{key:?}: missing")),
        }
    }
    for key in b.keys().filter(|key| !a.contains_key(*key)) {
        found.push(format!("{key:?}: not in the first table"));
    }
    if found.is_empty() {
        found.push("the same cells in another order".to_owned());
    }
    found
}

/// How `suppressed` (default threshold) departs from the rule against `exact` (threshold 1):
/// a cell of 1 to 4 cases must be hidden as primary; a hidden cell of 0 or 5+ cases must be
/// secondary; a shown cell must equal the exact one.
fn suppressed_differences(exact: &[v1::CohortCell], suppressed: &[v1::CohortCell]) -> Vec<String> {
    let shown: BTreeMap<Key, &v1::CohortCell> = suppressed
        .iter()
        .map(|cell| (cell_key(cell), cell))
        .collect();
    let mut found = Vec::new();
    if exact.len() != suppressed.len() {
        found.push(format!(
            "{} cells, the exact table has {}",
            suppressed.len(),
            exact.len()
        ));
    }
    for cell in exact {
        let key = cell_key(cell);
        let Some(other) = shown.get(&key) else {
            found.push(format!("{key:?}: missing"));
            continue;
        };
        let small = cell
            .cases
            .is_some_and(|cases| (1..DEFAULT_MIN_CASES).contains(&cases));
        let primary = v1::Suppression::Primary as i32;
        let secondary = v1::Suppression::Secondary as i32;
        let right = if small {
            other.suppression == primary && other.value.is_none() && other.cases.is_none()
        } else if other.suppression == secondary {
            other.value.is_none() && other.cases.is_none()
        } else {
            other.suppression == v1::Suppression::Unspecified as i32
                && other.value == cell.value
                && other.cases == cell.cases
        };
        if !right {
            found.push(format!(
                "{key:?}: exactly {:?} from {:?} cases, shown {:?}/{:?} suppression {}",
                cell.value, cell.cases, other.value, other.cases, other.suppression
            ));
        }
    }
    found
}
