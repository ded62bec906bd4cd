//! Service tests of evaluation: the real service in-process on port 0, a fresh PostgreSQL
//! database and the broker process. It is fed only what its upstream services publish — the real
//! event types on their real topics, by testkit's `EventFeed` — in a scrambled order across
//! topics, some events twice and one re-sent under a new event id, and its read model, its
//! figures and its database are checked against what the events say, worked out by hand.

use std::{collections::HashMap, time::Duration};

use ekb_evaluation::{
    Evaluation,
    case_facts::{
        CapacityUse, CaseFacts, CaseMoney, ClaimTiming, FallbackReason, Flow, PilotFacts,
        RegularFacts, RoutingReason,
    },
    store,
};
use ekb_platform::messaging::EventSubject;
use ekb_proto::{
    convert::timestamp_to_wire,
    v1::{self, EventEnvelope},
};
use ekb_testkit::{
    issuer::TestIssuer,
    service_under_test::{ServiceUnderTest, eventually},
    services::with_bearer,
    status::violated_fields,
};
use prost::Name;
use sqlx::PgPool;
use time::{Date, OffsetDateTime, macros::date, macros::datetime};
use tonic::Code;

/// How long a test waits for the service to catch up.
const WAIT: Duration = Duration::from_secs(60);

type EvaluationClient =
    v1::evaluation_service_client::EvaluationServiceClient<tonic::transport::Channel>;

/// Organisation numbers and a pseudonym the events carry; none may reach the database.
const EMPLOYER: &str = "974760673";
const SUPPLIER_X: &str = "889640782";
const SUPPLIER_Y: &str = "987654325";
const PSEUDONYM: &str = "5f1c0d7e9a3b4c2d1e0f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d";

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn at(instant: OffsetDateTime) -> Option<prost_types::Timestamp> {
    Some(timestamp_to_wire(instant))
}

fn account() -> Option<v1::BudgetAccount> {
    Some(v1::BudgetAccount {
        chapter: 2650,
        post: 76,
    })
}

/// One event to publish: its producer, its case and its encoded envelope.
struct Published {
    producer: &'static str,
    subject: EventSubject,
    envelope: EventEnvelope,
}

/// Events built in the order they happened, published later in another order.
#[derive(Default)]
struct Script {
    events: Vec<Published>,
}

impl Script {
    fn add<M: prost::Message + Name>(&mut self, producer: &'static str, case_id: &str, event: M) {
        let subject = EventSubject::case(case_id);
        let envelope = ekb_platform::messaging::envelope::wrap(producer, &subject, &event);
        self.events.push(Published {
            producer,
            subject,
            envelope,
        });
    }
}

fn routed(
    case_id: &str,
    county: &str,
    flow: v1::Flow,
    reason: v1::RoutingReason,
) -> v1::CaseRouted {
    v1::CaseRouted {
        case_id: case_id.to_owned(),
        employer_organisation_number: EMPLOYER.to_owned(),
        municipality_number: if county == "34" { "3403" } else { "0301" }.to_owned(),
        county_code: county.to_owned(),
        expert_choice: None,
        case_date: "2026-03-02".to_owned(),
        flow: flow as i32,
        reason: reason as i32,
        opened_at: at(datetime!(2026-03-02 09:00 UTC)),
    }
}

fn order_placed(
    case_id: &str,
    order_id: &str,
    agreement: &str,
    supplier: &str,
    day: Date,
) -> v1::OrderPlaced {
    v1::OrderPlaced {
        order_id: order_id.to_owned(),
        case_id: case_id.to_owned(),
        county_code: "34".to_owned(),
        agreement_id: agreement.to_owned(),
        supplier_organisation_number: supplier.to_owned(),
        amount_ore: 800_000,
        reservation_id: id(),
        placed_at: at(day
            .with_hms(10, 0, 0)
            .map(|t| t.assume_utc())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)),
        employee_pseudonym: PSEUDONYM.to_owned(),
        competence_area: v1::CompetenceArea::ConflictHandling as i32,
    }
}

fn agreement(agreement_id: &str, supplier: &str, capacity: i32) -> v1::AgreementActivated {
    v1::AgreementActivated {
        agreement: Some(v1::Agreement {
            agreement_id: agreement_id.to_owned(),
            agreement_reference: format!("RA-2026-34-{capacity}"),
            supplier_organisation_number: supplier.to_owned(),
            supplier_name: "Leverandør AS".to_owned(),
            county_code: "34".to_owned(),
            terms: Some(v1::AgreementTerms {
                competence_areas: vec![v1::CompetenceArea::ConflictHandling as i32],
                price_per_assignment_ore: 800_000,
                ranking: 1,
                monthly_capacity: capacity,
                validity: Some(v1::DateRange {
                    from_date: "2026-01-01".to_owned(),
                    to_date: "2026-12-31".to_owned(),
                }),
            }),
            ended_on_date: String::new(),
            version: 1,
        }),
    }
}

/// The four cases of the scenario, by what tells them apart in their facts.
struct Cases {
    pilot_completed: String,
    pilot_fallback: String,
    regular_lack_of_funds: String,
    regular_paid_late: String,
    agreement_x: String,
    agreement_y: String,
}

/// The scenario's events, in the order they happened.
fn scenario() -> (Script, Cases) {
    let cases = Cases {
        pilot_completed: id(),
        pilot_fallback: id(),
        regular_lack_of_funds: id(),
        regular_paid_late: id(),
        agreement_x: id(),
        agreement_y: id(),
    };
    let mut s = Script::default();
    let (x, y) = (cases.agreement_x.clone(), cases.agreement_y.clone());
    s.add("expert-registry", &x, agreement(&x, SUPPLIER_X, 3));
    s.add("expert-registry", &y, agreement(&y, SUPPLIER_Y, 2));

    // A pilot case: the first supplier declines, the second takes it, starts, completes, is paid.
    let a = cases.pilot_completed.clone();
    let (o1, o2, invoice) = (id(), id(), id());
    s.add(
        "routing",
        &a,
        routed(&a, "34", v1::Flow::Pilot, v1::RoutingReason::PilotEligible),
    );
    s.add(
        "pilot-ordering",
        &a,
        v1::OrderRequested {
            order_id: o1.clone(),
            case_id: a.clone(),
            county_code: "34".into(),
            agreement_id: x.clone(),
            supplier_organisation_number: SUPPLIER_X.into(),
            amount_ore: 800_000,
            budget_year: 2026,
            account: account(),
            requested_at: at(datetime!(2026-03-03 10:00 UTC)),
            ..Default::default()
        },
    );
    s.add(
        "pilot-ordering",
        &a,
        order_placed(&a, &o1, &x, SUPPLIER_X, date!(2026 - 03 - 03)),
    );
    s.add(
        "pilot-ordering",
        &a,
        v1::OrderDeclined {
            order_id: o1.clone(),
            case_id: a.clone(),
            county_code: "34".into(),
            agreement_id: x.clone(),
            supplier_organisation_number: SUPPLIER_X.into(),
            amount_ore: 800_000,
            next_order_id: o2.clone(),
            declined_date: "2026-03-05".into(),
            declined_at: at(datetime!(2026-03-05 10:00 UTC)),
            ..Default::default()
        },
    );
    s.add(
        "budget",
        &a,
        v1::FundsReleased {
            reservation_id: id(),
            case_id: a.clone(),
            county_code: "34".into(),
            flow: v1::Flow::Pilot as i32,
            budget_year: 2026,
            account: account(),
            amount_ore: 800_000,
            cause: v1::ReleaseCause::OrderDeclined as i32,
            released_at: at(datetime!(2026-03-05 10:00 UTC)),
            ..Default::default()
        },
    );
    s.add(
        "pilot-ordering",
        &a,
        v1::OrderRequested {
            order_id: o2.clone(),
            case_id: a.clone(),
            county_code: "34".into(),
            agreement_id: y.clone(),
            supplier_organisation_number: SUPPLIER_Y.into(),
            amount_ore: 800_000,
            budget_year: 2026,
            account: account(),
            previous_order_id: o1.clone(),
            requested_at: at(datetime!(2026-03-05 10:00 UTC)),
            ..Default::default()
        },
    );
    s.add(
        "pilot-ordering",
        &a,
        order_placed(&a, &o2, &y, SUPPLIER_Y, date!(2026 - 03 - 05)),
    );
    s.add(
        "pilot-ordering",
        &a,
        v1::OrderAccepted {
            order_id: o2.clone(),
            case_id: a.clone(),
            county_code: "34".into(),
            agreement_id: y.clone(),
            accepted_date: "2026-03-06".into(),
            accepted_at: at(datetime!(2026-03-06 10:00 UTC)),
        },
    );
    s.add(
        "pilot-ordering",
        &a,
        v1::OrderStarted {
            order_id: o2.clone(),
            case_id: a.clone(),
            county_code: "34".into(),
            agreement_id: y.clone(),
            case_opened_date: "2026-03-02".into(),
            started_date: "2026-03-12".into(),
            days_from_case_opened_to_started: 10,
            recorded_at: at(datetime!(2026-03-12 10:00 UTC)),
            ..Default::default()
        },
    );
    s.add(
        "pilot-ordering",
        &a,
        v1::OrderCompleted {
            order_id: o2.clone(),
            case_id: a.clone(),
            county_code: "34".into(),
            agreement_id: y.clone(),
            started_date: "2026-03-12".into(),
            completed_date: "2026-04-20".into(),
            recorded_at: at(datetime!(2026-04-20 10:00 UTC)),
        },
    );
    s.add(
        "pilot-ordering",
        &a,
        v1::InvoiceApproved {
            invoice_id: invoice.clone(),
            order_id: o2.clone(),
            case_id: a.clone(),
            county_code: "34".into(),
            agreement_id: y.clone(),
            supplier_organisation_number: SUPPLIER_Y.into(),
            amount_ore: 700_000,
            order_amount_ore: 800_000,
            approved_at: at(datetime!(2026-05-02 10:00 UTC)),
        },
    );
    let reservation = id();
    s.add(
        "budget",
        &a,
        v1::FundsDisbursed {
            reservation_id: reservation.clone(),
            case_id: a.clone(),
            county_code: "34".into(),
            flow: v1::Flow::Pilot as i32,
            budget_year: 2026,
            account: account(),
            amount_ore: 700_000,
            source: Some(v1::DisbursementSource {
                kind: v1::DisbursementSourceKind::SupplierInvoice as i32,
                source_id: invoice.clone(),
            }),
            disbursed_at: at(datetime!(2026-05-02 10:00 UTC)),
            ..Default::default()
        },
    );
    s.add(
        "budget",
        &a,
        v1::FundsReleased {
            reservation_id: reservation,
            case_id: a.clone(),
            county_code: "34".into(),
            flow: v1::Flow::Pilot as i32,
            budget_year: 2026,
            account: account(),
            amount_ore: 100_000,
            cause: v1::ReleaseCause::SettlementRemainder as i32,
            released_at: at(datetime!(2026-05-02 10:00 UTC)),
            ..Default::default()
        },
    );

    // A pilot case no supplier takes: it falls back and is granted in the regular flow.
    let b = cases.pilot_fallback.clone();
    let (o3, app_b, grant_b) = (id(), id(), id());
    s.add(
        "routing",
        &b,
        routed(&b, "34", v1::Flow::Pilot, v1::RoutingReason::PilotEligible),
    );
    s.add(
        "pilot-ordering",
        &b,
        v1::OrderRequested {
            order_id: o3.clone(),
            case_id: b.clone(),
            county_code: "34".into(),
            agreement_id: x.clone(),
            supplier_organisation_number: SUPPLIER_X.into(),
            amount_ore: 800_000,
            budget_year: 2026,
            account: account(),
            requested_at: at(datetime!(2026-03-04 10:00 UTC)),
            ..Default::default()
        },
    );
    s.add(
        "pilot-ordering",
        &b,
        order_placed(&b, &o3, &x, SUPPLIER_X, date!(2026 - 03 - 04)),
    );
    s.add(
        "pilot-ordering",
        &b,
        v1::OrderDeclined {
            order_id: o3.clone(),
            case_id: b.clone(),
            county_code: "34".into(),
            agreement_id: x.clone(),
            supplier_organisation_number: SUPPLIER_X.into(),
            amount_ore: 800_000,
            declined_date: "2026-03-06".into(),
            declined_at: at(datetime!(2026-03-06 10:00 UTC)),
            fallback_reason: v1::FlowChangeReason::NoSupplierAvailable as i32,
            ..Default::default()
        },
    );
    s.add(
        "routing",
        &b,
        v1::CaseFlowChanged {
            case_id: b.clone(),
            from_flow: v1::Flow::Pilot as i32,
            to_flow: v1::Flow::Regular as i32,
            reason: v1::FlowChangeReason::NoSupplierAvailable as i32,
            source: v1::FlowChangeSource::PilotOrdering as i32,
            changed_by: "pilot-ordering".into(),
            sequence: 1,
            county_code: "34".into(),
            employer_organisation_number: EMPLOYER.into(),
            opened_at: at(datetime!(2026-03-02 09:00 UTC)),
            changed_at: at(datetime!(2026-03-06 10:00 UTC)),
            fallback_event_id: String::new(),
        },
    );
    s.add(
        "applications",
        &b,
        v1::ApplicationSubmitted {
            application_id: app_b.clone(),
            case_id: b.clone(),
            employer_organisation_number: EMPLOYER.into(),
            county_code: "34".into(),
            employee_pseudonym: PSEUDONYM.into(),
            planned_start_date: "2026-04-01".into(),
            estimated_cost_ore: 2_000_000,
            estimated_hours: 20,
            submitted_at: at(datetime!(2026-03-09 10:00 UTC)),
            submitted_date: "2026-03-09".into(),
            case_opened_date: "2026-03-02".into(),
            ..Default::default()
        },
    );
    s.add(
        "applications",
        &b,
        v1::GrantRequested {
            grant_id: grant_b.clone(),
            application_id: app_b.clone(),
            case_id: b.clone(),
            employer_organisation_number: EMPLOYER.into(),
            county_code: "34".into(),
            amount_ore: 1_800_000,
            budget_year: 2026,
            account: account(),
            requested_at: at(datetime!(2026-03-16 10:00 UTC)),
        },
    );
    s.add(
        "applications",
        &b,
        v1::GrantApproved {
            grant_id: grant_b.clone(),
            application_id: app_b.clone(),
            case_id: b.clone(),
            employer_organisation_number: EMPLOYER.into(),
            county_code: "34".into(),
            employee_pseudonym: PSEUDONYM.into(),
            granted_amount_ore: 1_800_000,
            budget_year: 2026,
            account: account(),
            reservation_id: id(),
            refund_deadline_date: "2026-10-01".into(),
            granted_at: at(datetime!(2026-03-16 11:00 UTC)),
            grant_date: "2026-03-16".into(),
            submitted_date: "2026-03-09".into(),
            planned_start_date: "2026-04-01".into(),
            case_opened_date: "2026-03-02".into(),
            max_rate_ore: 2_400_000,
            max_rate_valid_from_date: "2024-01-01".into(),
            max_rate_source: "NAV".into(),
            decision_date: "2026-03-16".into(),
            ..Default::default()
        },
    );

    // A regular case outside the pilot county, denied funds; the decider makes it final.
    let c = cases.regular_lack_of_funds.clone();
    let (app_c, grant_c) = (id(), id());
    s.add(
        "routing",
        &c,
        routed(
            &c,
            "03",
            v1::Flow::Regular,
            v1::RoutingReason::OutsidePilotCounty,
        ),
    );
    s.add(
        "applications",
        &c,
        v1::ApplicationSubmitted {
            application_id: app_c.clone(),
            case_id: c.clone(),
            employer_organisation_number: EMPLOYER.into(),
            county_code: "03".into(),
            employee_pseudonym: PSEUDONYM.into(),
            planned_start_date: "2026-04-01".into(),
            estimated_cost_ore: 2_000_000,
            estimated_hours: 20,
            submitted_at: at(datetime!(2026-03-03 10:00 UTC)),
            submitted_date: "2026-03-03".into(),
            case_opened_date: "2026-03-02".into(),
            ..Default::default()
        },
    );
    s.add(
        "applications",
        &c,
        v1::GrantRequested {
            grant_id: grant_c.clone(),
            application_id: app_c.clone(),
            case_id: c.clone(),
            employer_organisation_number: EMPLOYER.into(),
            county_code: "03".into(),
            amount_ore: 2_000_000,
            budget_year: 2026,
            account: account(),
            requested_at: at(datetime!(2026-03-10 10:00 UTC)),
        },
    );
    s.add(
        "applications",
        &c,
        v1::ApplicationRejected {
            application_id: app_c.clone(),
            case_id: c.clone(),
            grant_id: grant_c.clone(),
            county_code: "03".into(),
            reason: v1::ApplicationRejectionReason::FundsDenied as i32,
            funds_denied_reason: v1::FundsDeniedReason::InsufficientFunds as i32,
            rejected_at: at(datetime!(2026-03-12 10:00 UTC)),
        },
    );

    // A regular case in the pilot county (own expert): granted, claimed late, paid.
    let d = cases.regular_paid_late.clone();
    let (app_d, grant_d, claim_d) = (id(), id(), id());
    s.add(
        "routing",
        &d,
        routed(
            &d,
            "34",
            v1::Flow::Regular,
            v1::RoutingReason::EmployerChoseOwnExpert,
        ),
    );
    s.add(
        "applications",
        &d,
        v1::ApplicationSubmitted {
            application_id: app_d.clone(),
            case_id: d.clone(),
            employer_organisation_number: EMPLOYER.into(),
            county_code: "34".into(),
            employee_pseudonym: PSEUDONYM.into(),
            planned_start_date: "2026-04-01".into(),
            estimated_cost_ore: 2_000_000,
            estimated_hours: 20,
            submitted_at: at(datetime!(2026-03-03 10:00 UTC)),
            submitted_date: "2026-03-03".into(),
            case_opened_date: "2026-03-02".into(),
            ..Default::default()
        },
    );
    s.add(
        "applications",
        &d,
        v1::GrantRequested {
            grant_id: grant_d.clone(),
            application_id: app_d.clone(),
            case_id: d.clone(),
            employer_organisation_number: EMPLOYER.into(),
            county_code: "34".into(),
            amount_ore: 2_000_000,
            budget_year: 2026,
            account: account(),
            requested_at: at(datetime!(2026-03-11 10:00 UTC)),
        },
    );
    s.add(
        "applications",
        &d,
        v1::GrantApproved {
            grant_id: grant_d.clone(),
            application_id: app_d.clone(),
            case_id: d.clone(),
            employer_organisation_number: EMPLOYER.into(),
            county_code: "34".into(),
            employee_pseudonym: PSEUDONYM.into(),
            granted_amount_ore: 2_000_000,
            budget_year: 2026,
            account: account(),
            reservation_id: id(),
            refund_deadline_date: "2026-09-30".into(),
            granted_at: at(datetime!(2026-03-11 11:00 UTC)),
            grant_date: "2026-03-11".into(),
            submitted_date: "2026-03-03".into(),
            planned_start_date: "2026-04-01".into(),
            case_opened_date: "2026-03-02".into(),
            max_rate_ore: 2_400_000,
            max_rate_valid_from_date: "2024-01-01".into(),
            max_rate_source: "NAV".into(),
            decision_date: "2026-03-11".into(),
            ..Default::default()
        },
    );
    s.add(
        "refunds",
        &d,
        v1::RefundClaimSubmitted {
            claim_id: claim_d.clone(),
            grant_id: grant_d.clone(),
            application_id: app_d.clone(),
            case_id: d.clone(),
            county_code: "34".into(),
            invoice_amount_ore: 1_500_000,
            payable_amount_ore: 1_500_000,
            invoice_date: "2026-10-05".into(),
            submitted_at: at(datetime!(2026-10-06 10:00 UTC)),
            employer_organisation_number: EMPLOYER.into(),
            assistance_start_date: "2026-04-02".into(),
            assistance_end_date: "2026-06-30".into(),
            case_opened_date: "2026-03-02".into(),
            days_from_case_opened_to_expert_start: 31,
            refund_deadline_date: "2026-09-30".into(),
            late: true,
            days_late: 6,
            submitted_date: "2026-10-06".into(),
        },
    );
    s.add(
        "refunds",
        &d,
        v1::RefundApproved {
            claim_id: claim_d.clone(),
            grant_id: grant_d.clone(),
            application_id: app_d.clone(),
            case_id: d.clone(),
            county_code: "34".into(),
            invoice_amount_ore: 1_500_000,
            granted_amount_ore: 2_000_000,
            payout_amount_ore: 1_500_000,
            approved_at: at(datetime!(2026-10-12 10:00 UTC)),
            assistance_start_date: "2026-04-02".into(),
            assistance_end_date: "2026-06-30".into(),
            case_opened_date: "2026-03-02".into(),
            days_from_case_opened_to_expert_start: 31,
            late: true,
            ..Default::default()
        },
    );
    s.add(
        "refunds",
        &d,
        v1::PaymentCompleted {
            claim_id: claim_d.clone(),
            grant_id: grant_d.clone(),
            case_id: d.clone(),
            county_code: "34".into(),
            amount_ore: 1_500_000,
            attempt: 1,
            payment_reference: "PAY-1".into(),
            paid_date: "2026-10-13".into(),
            recorded_at: at(datetime!(2026-10-13 10:00 UTC)),
        },
    );
    s.add(
        "budget",
        &d,
        v1::FundsDisbursed {
            reservation_id: id(),
            case_id: d.clone(),
            county_code: "34".into(),
            flow: v1::Flow::Regular as i32,
            budget_year: 2026,
            account: account(),
            amount_ore: 1_500_000,
            source: Some(v1::DisbursementSource {
                kind: v1::DisbursementSourceKind::RefundClaim as i32,
                source_id: claim_d.clone(),
            }),
            disbursed_at: at(datetime!(2026-10-12 10:00 UTC)),
            ..Default::default()
        },
    );
    // applications re-sends an unanswered GrantRequested unchanged under a new event id.
    s.add(
        "applications",
        &d,
        v1::GrantRequested {
            grant_id: grant_d.clone(),
            application_id: app_d.clone(),
            case_id: d.clone(),
            employer_organisation_number: EMPLOYER.into(),
            county_code: "34".into(),
            amount_ore: 2_000_000,
            budget_year: 2026,
            account: account(),
            requested_at: at(datetime!(2026-03-11 10:00 UTC)),
        },
    );
    (s, cases)
}

/// What the four cases' facts must be, worked out from the scenario by hand.
fn expected() -> Vec<(&'static str, CaseFacts)> {
    let opened_on = date!(2026 - 03 - 02);
    vec![
        (
            "pilot completed",
            CaseFacts {
                county: "34".into(),
                opened_on,
                flow: Flow::Pilot,
                routing_reason: RoutingReason::PilotEligible,
                fallback: None,
                pilot: PilotFacts {
                    orders_placed: 2,
                    orders_declined: 1,
                    accepted: true,
                    aborted: false,
                    completed: true,
                },
                regular: RegularFacts::default(),
                decided_or_ordered_on: Some(date!(2026 - 03 - 03)),
                expert_started_on: Some(date!(2026 - 03 - 12)),
                // PlaceOrder 1 (the follow-up is the service's), started 1, completed 1, invoice 2.
                nav_steps: 5,
                employer_steps: 0,
                money: CaseMoney {
                    committed_ore: 800_000,
                    disbursed_ore: 700_000,
                    released_ore: 900_000,
                    max_allowed_ore: None,
                },
            },
        ),
        (
            "pilot fallback",
            CaseFacts {
                county: "34".into(),
                opened_on,
                flow: Flow::Pilot,
                routing_reason: RoutingReason::PilotEligible,
                fallback: Some(FallbackReason::NoSupplierAvailable),
                pilot: PilotFacts {
                    orders_placed: 1,
                    orders_declined: 1,
                    ..PilotFacts::default()
                },
                regular: RegularFacts {
                    application_submitted: true,
                    granted: true,
                    ..RegularFacts::default()
                },
                decided_or_ordered_on: Some(date!(2026 - 03 - 04)),
                expert_started_on: None,
                // PlaceOrder 1 + the four-eyes decision 2; the fallback is pilot-ordering's.
                nav_steps: 3,
                employer_steps: 1,
                money: CaseMoney {
                    committed_ore: 1_800_000,
                    disbursed_ore: 0,
                    released_ore: 0,
                    max_allowed_ore: Some(2_400_000),
                },
            },
        ),
        (
            "regular lack of funds",
            CaseFacts {
                county: "03".into(),
                opened_on,
                flow: Flow::Regular,
                routing_reason: RoutingReason::OutsidePilotCounty,
                fallback: None,
                pilot: PilotFacts::default(),
                regular: RegularFacts {
                    application_submitted: true,
                    rejected: true,
                    rejected_for_lack_of_funds: true,
                    ..RegularFacts::default()
                },
                decided_or_ordered_on: Some(date!(2026 - 03 - 12)),
                expert_started_on: None,
                // The four-eyes decision 2 + RejectForLackOfFunds 1.
                nav_steps: 3,
                employer_steps: 1,
                money: CaseMoney::default(),
            },
        ),
        (
            "regular paid late",
            CaseFacts {
                county: "34".into(),
                opened_on,
                flow: Flow::Regular,
                routing_reason: RoutingReason::EmployerChoseOwnExpert,
                fallback: None,
                pilot: PilotFacts::default(),
                regular: RegularFacts {
                    application_submitted: true,
                    granted: true,
                    claim: Some(ClaimTiming::Late),
                    refund_paid: true,
                    ..RegularFacts::default()
                },
                decided_or_ordered_on: Some(date!(2026 - 03 - 11)),
                expert_started_on: Some(date!(2026 - 04 - 02)),
                // The decision 2 (the re-sent request is the same grant) + the refund decision 2.
                nav_steps: 4,
                employer_steps: 2,
                money: CaseMoney {
                    committed_ore: 2_000_000,
                    disbursed_ore: 1_500_000,
                    released_ore: 0,
                    max_allowed_ore: Some(2_400_000),
                },
            },
        ),
    ]
}

async fn count(pool: &PgPool, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

/// The cell of `figure` for county scope `county` and flow scope `flow`, month 2026-03.
fn cell<'a>(
    cells: &'a [v1::CohortCell],
    county: v1::county_scope::Scope,
    flow: v1::flow_scope::Scope,
    figure: &str,
) -> Option<&'a v1::CohortCell> {
    cells.iter().find(|cell| {
        cell.figure == figure
            && cell.month == "2026-03"
            && cell.agreement_id.is_empty()
            && cell.county.as_ref().and_then(|scope| scope.scope.clone()) == Some(county.clone())
            && cell.flow.as_ref().and_then(|scope| scope.scope) == Some(flow)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_any_order_and_twice_give_the_figures_worked_out_by_hand() -> anyhow::Result<()> {
    let stack = ServiceUnderTest::start_with::<Evaluation>("evaluation-figures", |settings| {
        settings.with("evaluation.min_cases", "1")
    })
    .await?;
    let pool = PgPool::connect(stack.database_url()).await?;
    let (script, cases) = scenario();
    let distinct = i64::try_from(script.events.len())?;

    // Scrambled: every third event first, then the rest from the last to the first; and the
    // first five published twice (the same envelope, as a redelivery would).
    let mut order: Vec<&Published> = script.events.iter().step_by(3).collect();
    order.extend(
        script
            .events
            .iter()
            .enumerate()
            .rev()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, e)| e),
    );
    order.extend(script.events.iter().take(5));
    for event in order {
        stack
            .feed
            .publish_envelope(event.producer, event.subject.key(), &event.envelope)
            .await?;
    }
    eventually("every event in the inbox", WAIT, || async {
        Ok((count(&pool, "SELECT count(*) FROM inbox").await? >= distinct).then_some(()))
    })
    .await?;
    let not_applied: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT event_type, outcome, detail FROM inbox WHERE outcome <> 'applied'")
            .fetch_all(&pool)
            .await?;
    assert!(
        not_applied.is_empty(),
        "every event applied, none skipped or dead-lettered: {not_applied:#?}"
    );

    // The read model's facts, case by case.
    let mut connection = pool.acquire().await?;
    let loaded = store::load_cases(
        &mut connection,
        date!(2026 - 03 - 01),
        date!(2026 - 03 - 01),
    )
    .await?;
    assert_eq!(loaded.len(), 4, "{loaded:#?}");
    let mut by_shape: HashMap<(String, Flow, RoutingReason, bool), CaseFacts> = HashMap::new();
    for case in loaded {
        by_shape.insert(
            (
                case.county.clone(),
                case.flow,
                case.routing_reason,
                case.fallback.is_some(),
            ),
            case,
        );
    }
    for (name, want) in expected() {
        let key = (
            want.county.clone(),
            want.flow,
            want.routing_reason,
            want.fallback.is_some(),
        );
        assert_eq!(by_shape.get(&key), Some(&want), "{name}");
    }

    // Capacity: agreement Y accepted one order in March (of 2); X none (of 3).
    let capacity = store::load_capacity(
        &mut connection,
        date!(2026 - 03 - 01),
        date!(2026 - 03 - 01),
    )
    .await?;
    let march = |agreement: &str| {
        capacity
            .iter()
            .find(|used| used.agreement == agreement)
            .cloned()
    };
    assert_eq!(
        march(&cases.agreement_y),
        Some(CapacityUse {
            agreement: cases.agreement_y.clone(),
            county: "34".into(),
            month: date!(2026 - 03 - 01),
            capacity: 2,
            used: 1
        })
    );
    assert_eq!(
        march(&cases.agreement_x).map(|used| (used.capacity, used.used)),
        Some((3, 0))
    );

    // A few figures of the table, as the RPC answers them.
    let mut client = EvaluationClient::new(stack.channel().await?);
    let table = client
        .get_cohort_table(v1::GetCohortTableRequest {
            from_month: "2026-03".into(),
            to_month: "2026-03".into(),
        })
        .await?
        .into_inner();
    assert_eq!((table.min_cases, table.pilot_county.as_str()), (1, "34"));
    use v1::{county_scope::Scope as County, flow_scope::Scope as Flows};
    let value = |county: County, flow: Flows, figure: &str| {
        cell(&table.cells, county, flow, figure).and_then(|cell| cell.value)
    };
    let pilot = Flows::Flow(v1::Flow::Pilot as i32);
    let regular = Flows::Flow(v1::Flow::Regular as i32);
    assert_eq!(
        value(
            County::CountyCode("34".into()),
            Flows::AllFlows(true),
            "cases_opened"
        ),
        Some(3.0)
    );
    assert_eq!(
        value(County::CountyCode("34".into()), pilot, "cases_opened"),
        Some(2.0)
    );
    assert_eq!(
        value(
            County::AllCounties(true),
            Flows::AllFlows(true),
            "cases_opened"
        ),
        Some(4.0)
    );
    assert_eq!(
        value(County::CountyCode("34".into()), pilot, "pilot_fallbacks"),
        Some(1.0)
    );
    assert_eq!(
        value(
            County::CountyCode("34".into()),
            pilot,
            "pilot_orders_placed"
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            County::CountyCode("03".into()),
            regular,
            "regular_rejected_lack_of_funds"
        ),
        Some(1.0)
    );
    // (5 + 3) / 2 NAV steps per pilot case in 34; (3 + 4) / 2 over the regular cases.
    assert_eq!(
        value(County::CountyCode("34".into()), pilot, "nav_steps_per_case"),
        Some(4.0)
    );
    assert_eq!(
        value(County::AllCounties(true), regular, "nav_steps_per_case"),
        Some(3.5)
    );

    // The CSV and the report come from the same cells.
    let csv = client
        .export_cohort_table_csv(v1::GetCohortTableRequest {
            from_month: "2026-03".into(),
            to_month: "2026-03".into(),
        })
        .await?
        .into_inner()
        .csv;
    assert!(
        csv.lines().count() > table.cells.len(),
        "a header and a row per cell"
    );
    let html = client
        .get_report(v1::GetCohortTableRequest {
            from_month: "2026-03".into(),
            to_month: "2026-03".into(),
        })
        .await?
        .into_inner()
        .html;
    assert!(
        html.contains("<html") || html.contains("<!DOCTYPE") || html.contains("<!doctype"),
        "{html:.200}"
    );

    // No organisation number, pseudonym or id of the events in any column of any table but
    // the inbox (which holds only event ids).
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await?;
    assert!(tables.contains(&"case_facts".to_owned()) && tables.contains(&"agreements".to_owned()));
    let forbidden = [
        EMPLOYER.to_owned(),
        SUPPLIER_X.to_owned(),
        SUPPLIER_Y.to_owned(),
        PSEUDONYM.to_owned(),
        cases.pilot_completed.clone(),
        cases.pilot_fallback.clone(),
        cases.regular_lack_of_funds.clone(),
        cases.regular_paid_late.clone(),
        "Leverandør".to_owned(),
    ];
    for table in &tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM \"{table}\" t"
        )))
        .fetch_all(&pool)
        .await?;
        for row in &rows {
            for text in &forbidden {
                assert!(!row.contains(text.as_str()), "{table} holds {text}: {row}");
            }
        }
    }
    stack.stop().await
}

/// Capacity use counts orders as pilot-ordering does when it chooses a supplier: in the month
/// the order was placed (an order placed on 31 March and accepted on 1 April is March's), and
/// not an order the supplier declined or one cancelled after acceptance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_counts_orders_in_their_placement_month_and_not_cancelled_ones()
-> anyhow::Result<()> {
    let stack = ServiceUnderTest::start::<Evaluation>("evaluation-capacity").await?;
    let pool = PgPool::connect(stack.database_url()).await?;
    let (case, x) = (id(), id());
    let (late_march, cancelled, declined) = (id(), id(), id());
    let mut s = Script::default();
    s.add("expert-registry", &x, agreement(&x, SUPPLIER_X, 3));
    let accepted = |order: &str, day: &str| v1::OrderAccepted {
        order_id: order.to_owned(),
        case_id: case.clone(),
        county_code: "34".into(),
        agreement_id: x.clone(),
        accepted_date: day.to_owned(),
        accepted_at: at(datetime!(2026-04-01 10:00 UTC)),
    };
    s.add(
        "pilot-ordering",
        &case,
        order_placed(&case, &late_march, &x, SUPPLIER_X, date!(2026 - 03 - 31)),
    );
    s.add("pilot-ordering", &case, accepted(&late_march, "2026-04-01"));
    s.add(
        "pilot-ordering",
        &case,
        order_placed(&case, &cancelled, &x, SUPPLIER_X, date!(2026 - 03 - 10)),
    );
    s.add("pilot-ordering", &case, accepted(&cancelled, "2026-03-11"));
    s.add(
        "pilot-ordering",
        &case,
        v1::OrderCancelled {
            order_id: cancelled.clone(),
            case_id: case.clone(),
            county_code: "34".into(),
            reason: v1::OrderCancellationReason::EmployerWithdrew as i32,
            ..Default::default()
        },
    );
    s.add(
        "pilot-ordering",
        &case,
        order_placed(&case, &declined, &x, SUPPLIER_X, date!(2026 - 03 - 12)),
    );
    s.add(
        "pilot-ordering",
        &case,
        v1::OrderDeclined {
            order_id: declined.clone(),
            case_id: case.clone(),
            county_code: "34".into(),
            agreement_id: x.clone(),
            declined_date: "2026-03-13".into(),
            ..Default::default()
        },
    );
    let published = i64::try_from(s.events.len())?;
    for event in s.events.iter().rev() {
        stack
            .feed
            .publish_envelope(event.producer, event.subject.key(), &event.envelope)
            .await?;
    }
    eventually("every event in the inbox", WAIT, || async {
        Ok((count(&pool, "SELECT count(*) FROM inbox").await? >= published).then_some(()))
    })
    .await?;

    let mut connection = pool.acquire().await?;
    let used: Vec<(Date, u32, u32)> = store::load_capacity(
        &mut connection,
        date!(2026 - 03 - 01),
        date!(2026 - 04 - 01),
    )
    .await?
    .into_iter()
    .filter(|use_of| use_of.agreement == x)
    .map(|use_of| (use_of.month, use_of.capacity, use_of.used))
    .collect();
    assert_eq!(
        used,
        vec![(date!(2026 - 03 - 01), 3, 1), (date!(2026 - 04 - 01), 3, 0)],
        "March holds the order placed on 31 March; the cancelled and the declined count nowhere"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_period_is_invalid_argument_naming_the_field_and_only_readers_may_ask()
-> anyhow::Result<()> {
    let issuer = TestIssuer::start().await?;
    let stack = ServiceUnderTest::start_with::<Evaluation>("evaluation-requests", |settings| {
        settings.with_auth(&issuer)
    })
    .await?;
    let mut client = EvaluationClient::new(stack.channel().await?);
    let reader = issuer.token("analyst", &["evaluation-reader"]);
    let request = |from: &str, to: &str| v1::GetCohortTableRequest {
        from_month: from.into(),
        to_month: to.into(),
    };

    for (from, to, field) in [
        ("2026-13", "2026-12", "from_month"),
        ("2026-03", "March", "to_month"),
        ("2026-03", "2026-02", "to_month"),
        ("2020-01", "2026-01", "to_month"),
    ] {
        let status = client
            .get_cohort_table(with_bearer(request(from, to), &reader))
            .await
            .expect_err("a bad period");
        assert_eq!(status.code(), Code::InvalidArgument, "{from}..{to}");
        assert_eq!(violated_fields(&status), [field], "{from}..{to}");
    }
    let status = client
        .export_cohort_table_csv(with_bearer(request("2026-03", "2026-02"), &reader))
        .await
        .expect_err("the same rule for the CSV");
    assert_eq!(status.code(), Code::InvalidArgument);

    // An empty read model answers a table (every cell suppressed or absent), not an error.
    let table = client
        .get_cohort_table(with_bearer(request("2026-01", "2026-03"), &reader))
        .await?
        .into_inner();
    assert!(
        table
            .cells
            .iter()
            .all(|cell| cell.value.is_none() || cell.value == Some(0.0) || cell.cases.is_some())
    );

    let other = issuer.token("caseworker", &["budget-reader"]);
    let denied = client
        .get_report(with_bearer(request("2026-03", "2026-03"), &other))
        .await
        .expect_err("not an evaluation reader");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let unauthenticated = client
        .get_report(request("2026-03", "2026-03"))
        .await
        .expect_err("no token");
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    stack.stop().await
}
