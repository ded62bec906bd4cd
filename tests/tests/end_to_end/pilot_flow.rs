//! The § 9a pilot flow with every service running as its own process over the broker:
//! framework agreements registered in the expert registry for Innlandet → a case routed PILOT
//! → an order with the best-ranked supplier → budget reserves → placed → declined → the next
//! supplier. Then `make run`'s walk (`ekb_testkit::scenarios::pilot`), checked at each step: a
//! case routed PILOT → ordered → placed → accepted → expert started → completed → the supplier
//! invoices (only its own order) → attested and approved by two people → budget disburses the
//! invoice and releases the rest → the payment is recorded. A full agreement sends the next
//! order to the next supplier;
//! a decline chain with nobody left sends the case back to the regular flow on the same case id
//! (routing's CaseFlowChanged), where applications then accepts an application for it — as it
//! does after a caseworker's SendToRegularFlow.
//!
//! Asserted on the state the services return over gRPC and on the events read back from the
//! broker; each test ends with budget's ledger check and a scan of every topic and log for the
//! run's fødselsnumre.

use std::future::Future;

use ekb_domain::with_valid_check_digit;
use ekb_proto::v1::{
    self, CommitmentKind, CompetenceArea, Flow, OrderStatus, ReservationStatus, RoutingReason,
};
use ekb_testkit::{
    events::EventFeed,
    scenarios::{
        Narrator, Step,
        pilot::{self, INVOICE_DISCOUNT_ORE, PilotCase, PilotOutcome, PilotPaid},
        regular::ESTIMATED_ORE,
        requests,
        waits::until,
    },
    services::with_bearer,
};
use ekb_tests::{
    EMPLOYER_ORGNR, HAMAR, INNLANDET, SUPPLIER_ORGNR, agreement_request, agreement_terms,
    case_facts, date_range,
    ledger::{assert_money_kept, assert_no_fodselsnummer, finished_reservation, set_appropriation},
    people::{synthetic_fodselsnummer, today},
    system::{SystemStack, assert_refused},
};
use tonic::Code;

/// Fifty million kroner, in øre.
const PLENTY_ORE: i64 = 5_000_000_000;
/// How long the consumers get to (not) act on a redelivered event.
const REDELIVERY_GRACE: std::time::Duration = std::time::Duration::from_secs(4);

/// One framework agreement of these tests.
pub struct TestAgreement {
    /// Its reference.
    pub reference: &'static str,
    /// The supplier's organisation number.
    pub supplier: String,
    /// Its rank (1 first).
    pub ranking: i32,
    /// Its price per assignment, gross.
    pub price_ore: i64,
    /// Orders it takes per month.
    pub monthly_capacity: i32,
    /// The areas it covers.
    pub areas: &'static [CompetenceArea],
}

/// The suppliers' organisation numbers: the fixture's first, and two more with valid check
/// digits.
pub fn suppliers() -> anyhow::Result<[String; 3]> {
    let complete = |first8: &str| {
        with_valid_check_digit(first8)
            .map(|orgnr| orgnr.as_str().to_owned())
            .ok_or_else(|| anyhow::anyhow!("{first8} has no valid check digit"))
    };
    Ok([
        SUPPLIER_ORGNR.to_owned(),
        complete("92345678")?,
        complete("93456789")?,
    ])
}

/// Registers `agreements` in county 34, valid through the pilot period, and waits until routing
/// routes a Hamar case in each of their areas to the pilot.
pub async fn register(stack: &SystemStack, agreements: &[TestAgreement]) -> anyhow::Result<()> {
    let token = stack.people().system();
    let mut registry = stack.registry().await?;
    for agreement in agreements {
        let terms = v1::AgreementTerms {
            price_per_assignment_ore: agreement.price_ore,
            ranking: agreement.ranking,
            monthly_capacity: agreement.monthly_capacity,
            validity: Some(date_range("2024-01-01", "2028-12-31")),
            ..agreement_terms(agreement.areas)
        };
        registry
            .register_agreement(with_bearer(
                agreement_request(
                    agreement.reference,
                    &agreement.supplier,
                    &format!("Leverandør {}", agreement.ranking),
                    INNLANDET,
                    terms,
                ),
                &token,
            ))
            .await?;
    }
    for area in agreements.iter().flat_map(|agreement| agreement.areas) {
        until("routing to route the area PILOT", || async {
            let decision = stack
                .routing()
                .await?
                .evaluate_route(with_bearer(
                    v1::EvaluateRouteRequest {
                        facts: Some(case_facts(HAMAR, Some(*area), &today())),
                    },
                    &token,
                ))
                .await?
                .into_inner()
                .decision
                .unwrap_or_default();
            Ok((decision.reason() == RoutingReason::PilotEligible).then_some(()))
        })
        .await?;
    }
    Ok(())
}

/// Opens a Hamar case choosing a framework expert in `area` today; it must be routed PILOT.
async fn open_pilot_case(stack: &SystemStack, area: CompetenceArea) -> anyhow::Result<v1::Case> {
    stack
        .open_routed_case(case_facts(HAMAR, Some(area), &today()), Flow::Pilot)
        .await
}

/// PlaceOrder for `case_id` (the caseworker) as the walk does, retrying while the case has not
/// reached pilot-ordering; returns the order (FUNDS_PENDING).
async fn place_order(
    stack: &SystemStack,
    case_id: &str,
    fodselsnummer: &str,
) -> anyhow::Result<v1::Order> {
    let clients = stack.clients().await?;
    pilot::place_order(
        &clients,
        &stack.people().caseworker(),
        case_id,
        fodselsnummer,
    )
    .await
}

/// Waits until the order is in `status` (it moves on budget's answer).
async fn order_in(
    stack: &SystemStack,
    order_id: &str,
    status: OrderStatus,
) -> anyhow::Result<v1::Order> {
    let clients = stack.clients().await?;
    pilot::order_in(&clients, &stack.people().caseworker(), order_id, status).await
}

/// The supplier `supplier` answers order `order_id` (a decline for lack of capacity).
async fn answer(
    stack: &SystemStack,
    supplier: &str,
    order_id: &str,
    response: v1::SupplierResponse,
) -> Result<tonic::Response<v1::RecordSupplierResponseResponse>, tonic::Status> {
    let mut client = stack
        .pilot_ordering()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    client
        .record_supplier_response(with_bearer(
            requests::supplier_answer(order_id, response, &today()),
            &stack.people().supplier(supplier),
        ))
        .await
}

/// Whether `commitment` is order `order_id`'s.
fn for_order(commitment: &Option<v1::Commitment>, order_id: &str) -> bool {
    commitment.as_ref().is_some_and(|commitment| {
        commitment.commitment_id == order_id && commitment.kind == CommitmentKind::PilotOrder as i32
    })
}

/// The walk's end, which must be payment.
fn paid(outcome: PilotOutcome) -> anyhow::Result<PilotPaid> {
    match outcome {
        PilotOutcome::Paid(paid) => Ok(*paid),
        other => anyhow::bail!("the pilot walk ended early: {other:?}"),
    }
}

/// What the pilot tests check at the walk's steps, beyond what the walk itself requires: who may
/// not do what at that point (another supplier, the attestant approving, moving a case whose
/// expert started), and the events each step publishes. It also notes the steps, in order.
struct PilotChecks<'a> {
    stack: &'a SystemStack,
    /// A supplier that is not the order's.
    other_supplier: String,
    steps: Vec<&'static str>,
}

impl Narrator for PilotChecks<'_> {
    fn step(&mut self, step: Step<'_>) -> impl Future<Output = anyhow::Result<()>> {
        self.steps.push(step.name());
        let stack = self.stack;
        let other = self.other_supplier.clone();
        async move {
            let people = stack.people();
            match step {
                Step::OrderRequested { order, .. } => {
                    assert!(!order.employee_pseudonym.is_empty());
                    let requested = stack
                        .events
                        .wait_for(|event: &v1::OrderRequested| event.order_id == order.order_id)
                        .await?;
                    assert_eq!(requested.amount_ore, order.price_ore);
                }
                Step::OrderPlaced { order } => {
                    // → budget reserves → PLACED (OrderPlaced carries the pseudonym, never the
                    // number).
                    let reserved = stack
                        .events
                        .wait_for(|event: &v1::FundsReserved| {
                            for_order(&event.commitment, &order.order_id)
                        })
                        .await?;
                    assert_eq!(reserved.flow(), Flow::Pilot);
                    assert_eq!(order.reservation_id, reserved.reservation_id);
                    let event = stack
                        .events
                        .wait_for(|event: &v1::OrderPlaced| event.order_id == order.order_id)
                        .await?;
                    assert_eq!(event.employee_pseudonym, order.employee_pseudonym);
                    // Only the order's supplier may answer it.
                    let foreign = answer(
                        stack,
                        &other,
                        &order.order_id,
                        v1::SupplierResponse::Accepted,
                    )
                    .await;
                    assert_refused(
                        foreign,
                        Code::PermissionDenied,
                        "ORGANISATION_NOT_REPRESENTED",
                    );
                }
                Step::SupplierAccepted { order } => {
                    stack
                        .events
                        .wait_for(|event: &v1::OrderAccepted| event.order_id == order.order_id)
                        .await?;
                }
                Step::ExpertStarted { order } => {
                    let event = stack
                        .events
                        .wait_for(|event: &v1::OrderStarted| event.order_id == order.order_id)
                        .await?;
                    assert_eq!(event.days_from_case_opened_to_started, 0);
                    assert_eq!(event.started_date, today());
                }
                Step::OrderCompleted { order, date } => {
                    assert!(order.invoice_deadline_date.as_str() > date);
                    stack
                        .events
                        .wait_for(|event: &v1::OrderCompleted| event.order_id == order.order_id)
                        .await?;
                    // Routing learnt that an expert started: a caseworker can no longer move
                    // the case.
                    let refused = stack
                        .routing()
                        .await?
                        .send_to_regular_flow(with_bearer(
                            v1::SendToRegularFlowRequest {
                                case_id: order.case_id.clone(),
                                reason: v1::FlowChangeReason::EmployerChoseOwnExpert as i32,
                                note: String::new(),
                            },
                            &people.caseworker(),
                        ))
                        .await;
                    assert_refused(refused, Code::FailedPrecondition, "PILOT_EXPERT_STARTED");
                    // The invoice: only the order's supplier may submit it.
                    let foreign = stack
                        .pilot_ordering()
                        .await?
                        .submit_invoice(with_bearer(
                            requests::invoice(&order.order_id, "INV-FOREIGN", date, 1_000_000),
                            &people.supplier(&other),
                        ))
                        .await;
                    assert_refused(
                        foreign,
                        Code::PermissionDenied,
                        "ORGANISATION_NOT_REPRESENTED",
                    );
                }
                Step::InvoiceSubmitted { invoice, .. } => {
                    stack
                        .events
                        .wait_for(|event: &v1::InvoiceSubmitted| {
                            event.invoice_id == invoice.invoice_id
                        })
                        .await?;
                }
                Step::InvoiceAttested { invoice } => {
                    // Four eyes: the attestant holding the approver role too may not approve.
                    let own = stack
                        .pilot_ordering()
                        .await?
                        .approve_invoice(with_bearer(
                            requests::approval(&invoice.invoice_id),
                            &people.caseworker_as_decider(),
                        ))
                        .await;
                    assert_refused(own, Code::PermissionDenied, "SAME_PERSON_AS_ATTESTANT");
                }
                _ => {}
            }
            Ok(())
        }
    }
}

/// The walk's steps, in order, when it reaches payment.
const PILOT_STEPS: [&str; 12] = [
    "Suppliers",
    "CaseOpened",
    "OrderRequested",
    "OrderPlaced",
    "SupplierAccepted",
    "ExpertStarted",
    "OrderCompleted",
    "InvoiceSubmitted",
    "InvoiceAttested",
    "InvoiceApproved",
    "Settled",
    "InvoicePaid",
];

/// After the walk paid `paid`: InvoiceApproved (the invoice, the order's price), budget's
/// FundsDisbursed (the invoice) and FundsReleased (the rest), InvoicePaymentRecorded (PAID),
/// and the reservation settled to the øre at the order's price.
async fn assert_invoice_paid_out(stack: &SystemStack, paid: &PilotPaid) -> anyhow::Result<()> {
    let order_id = &paid.order.order_id;
    let invoice_id = &paid.invoice.invoice_id;
    let price = paid.order.price_ore;
    let invoiced = price - INVOICE_DISCOUNT_ORE;
    assert_eq!(paid.invoice.amount_ore, invoiced);
    let event = stack
        .events
        .wait_for(|event: &v1::InvoiceApproved| &event.invoice_id == invoice_id)
        .await?;
    assert_eq!(
        (event.amount_ore, event.order_amount_ore),
        (invoiced, price)
    );
    let disbursed = stack
        .events
        .wait_for(|event: &v1::FundsDisbursed| for_order(&event.commitment, order_id))
        .await?;
    assert_eq!(disbursed.amount_ore, invoiced);
    assert_eq!(&disbursed.source.unwrap_or_default().source_id, invoice_id);
    let remainder = stack
        .events
        .wait_for(|event: &v1::FundsReleased| for_order(&event.commitment, order_id))
        .await?;
    assert_eq!(remainder.amount_ore, INVOICE_DISCOUNT_ORE);
    assert_eq!(remainder.cause(), v1::ReleaseCause::SettlementRemainder);
    let payment = stack
        .events
        .wait_for(|event: &v1::InvoicePaymentRecorded| &event.invoice_id == invoice_id)
        .await?;
    assert_eq!(payment.status(), v1::InvoicePaymentStatus::Paid);
    assert!(!payment.payment_reference.is_empty());
    assert_eq!(
        paid.invoice.payment_status(),
        v1::InvoicePaymentStatus::Paid,
        "the invoice PAID on the order"
    );
    let settled = finished_reservation(
        stack,
        CommitmentKind::PilotOrder,
        order_id,
        ReservationStatus::Settled,
        invoiced,
    )
    .await?;
    assert_eq!(settled.reserved_ore, price);
    assert_eq!(paid.reservation.reserved_ore, price);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pilot_case_goes_from_order_to_payment_past_a_decline_and_a_full_agreement()
-> anyhow::Result<()> {
    let stack = SystemStack::start("e2e_pilot").await?;
    set_appropriation(&stack, PLENTY_ORE).await?;
    let [first, second, third] = suppliers()?;
    let area = CompetenceArea::SickLeaveFollowUp;
    register(
        &stack,
        &[
            TestAgreement {
                reference: "RA-E2E-34-001",
                supplier: first.clone(),
                ranking: 1,
                price_ore: 2_400_000,
                monthly_capacity: 1,
                areas: &[CompetenceArea::SickLeaveFollowUp],
            },
            TestAgreement {
                reference: "RA-E2E-34-002",
                supplier: second.clone(),
                ranking: 2,
                price_ore: 2_150_000,
                monthly_capacity: 10,
                areas: &[CompetenceArea::SickLeaveFollowUp],
            },
            TestAgreement {
                reference: "RA-E2E-34-003",
                supplier: third.clone(),
                ranking: 3,
                price_ore: 2_650_000,
                monthly_capacity: 10,
                areas: &[CompetenceArea::SickLeaveFollowUp],
            },
        ],
    )
    .await?;
    let people: Vec<String> = (0..4)
        .map(|nth| synthetic_fodselsnummer(24, 12, 90, nth))
        .collect();
    let caseworker = stack.people().caseworker();
    let mut ordering = stack.pilot_ordering().await?;

    // A first case: PlaceOrder → the best-ranked agreement, at its price → PLACED.
    let declined_case = open_pilot_case(&stack, area).await?;
    let first_order = place_order(&stack, &declined_case.case_id, &people[0]).await?;
    assert_eq!(first_order.supplier_organisation_number, first);
    assert_eq!(first_order.agreement_reference, "RA-E2E-34-001");
    assert_eq!(first_order.price_ore, 2_400_000);
    order_in(&stack, &first_order.order_id, OrderStatus::Placed).await?;
    // Declined → the next-ranked supplier, in the same transaction; budget releases the first.
    let declined = answer(
        &stack,
        &first,
        &first_order.order_id,
        v1::SupplierResponse::Declined,
    )
    .await?
    .into_inner();
    assert_eq!(
        declined.order.unwrap_or_default().status(),
        OrderStatus::Declined
    );
    let next = declined.next_order.unwrap_or_default();
    assert_eq!(next.supplier_organisation_number, second);
    assert_eq!(next.previous_order_id, first_order.order_id);
    assert_eq!(next.price_ore, 2_150_000);
    let event = stack
        .events
        .wait_for(|event: &v1::OrderDeclined| event.order_id == first_order.order_id)
        .await?;
    assert_eq!(event.next_order_id, next.order_id);
    let released = finished_reservation(
        &stack,
        CommitmentKind::PilotOrder,
        &first_order.order_id,
        ReservationStatus::Released,
        0,
    )
    .await?;
    assert_eq!(released.release_cause(), v1::ReleaseCause::OrderDeclined);
    order_in(&stack, &next.order_id, OrderStatus::Placed).await?;

    // make run's walk: the decline freed the first-ranked agreement's one order this month, so
    // the walk's order goes there; checked at each step by `PilotChecks`.
    let today = today();
    let mut checks = PilotChecks {
        stack: &stack,
        other_supplier: second.clone(),
        steps: Vec::new(),
    };
    let paid = paid(
        pilot::walk(
            &stack.clients().await?,
            &stack.people(),
            PilotCase::hamar(area, &people[1], &today),
            &mut checks,
        )
        .await?,
    )?;
    assert_eq!(checks.steps, PILOT_STEPS);
    assert_eq!(paid.agreements.len(), 3);
    assert_eq!(paid.order.supplier_organisation_number, first);
    assert_eq!(paid.order.agreement_reference, "RA-E2E-34-001");
    assert_eq!(paid.order.status(), OrderStatus::Completed);
    assert_invoice_paid_out(&stack, &paid).await?;
    let walked_id = paid.order.order_id.clone();

    // Capacity: the first-ranked agreement is full this month, so the next case goes to the
    // next-ranked supplier.
    let overflow = open_pilot_case(&stack, area).await?;
    let overflow_order = place_order(&stack, &overflow.case_id, &people[2]).await?;
    assert_eq!(
        overflow_order.supplier_organisation_number, second,
        "the full agreement is skipped"
    );
    // It and the declined case's next order are cancelled before any work: budget releases
    // their whole reservations.
    for order in [&next, &overflow_order] {
        order_in(&stack, &order.order_id, OrderStatus::Placed).await?;
        let cancelled = ordering
            .cancel_order(with_bearer(
                requests::order_cancellation(&order.order_id),
                &caseworker,
            ))
            .await?
            .into_inner()
            .order
            .unwrap_or_default();
        assert_eq!(cancelled.status(), OrderStatus::Cancelled);
        finished_reservation(
            &stack,
            CommitmentKind::PilotOrder,
            &order.order_id,
            ReservationStatus::Released,
            0,
        )
        .await?;
    }

    // Redelivery at the money hops is applied once: the same envelopes again (same event ids)
    // reserve, place and disburse nothing more.
    let feed = EventFeed::new(stack.broker.bootstrap_servers(), &stack.topic_prefix)?;
    stack
        .events
        .redeliver(&feed, "pilot-ordering", |event: &v1::OrderRequested| {
            event.order_id == walked_id
        })
        .await?;
    stack
        .events
        .redeliver(&feed, "budget", |event: &v1::FundsReserved| {
            for_order(&event.commitment, &walked_id)
        })
        .await?;
    stack
        .events
        .redeliver(&feed, "pilot-ordering", |event: &v1::InvoiceApproved| {
            event.order_id == walked_id
        })
        .await?;
    tokio::time::sleep(REDELIVERY_GRACE).await;
    assert_eq!(
        stack
            .events
            .count(|event: &v1::FundsReserved| for_order(&event.commitment, &walked_id)),
        1
    );
    assert_eq!(
        stack
            .events
            .count(|event: &v1::OrderPlaced| event.order_id == walked_id),
        1
    );
    assert_eq!(
        stack
            .events
            .count(|event: &v1::FundsDisbursed| for_order(&event.commitment, &walked_id)),
        1
    );
    finished_reservation(
        &stack,
        CommitmentKind::PilotOrder,
        &walked_id,
        ReservationStatus::Settled,
        paid.order.price_ore - INVOICE_DISCOUNT_ORE,
    )
    .await?;

    stack.events.assert_case_story(
        &declined_case.case_id,
        &[
            "CaseRouted",
            "OrderRequested",
            "FundsReserved",
            "OrderPlaced",
            "OrderDeclined",
            "FundsReleased",
        ],
    );
    stack.events.assert_case_story(
        &paid.case.case_id,
        &[
            "CaseRouted",
            "OrderRequested",
            "FundsReserved",
            "OrderPlaced",
            "OrderAccepted",
            "OrderStarted",
            "OrderCompleted",
            "InvoiceSubmitted",
            "InvoiceApproved",
            "FundsDisbursed",
            "FundsReleased",
            "InvoicePaymentRecorded",
        ],
    );
    assert_money_kept(&stack).await?;
    let numbers: Vec<&str> = people.iter().map(String::as_str).collect();
    assert_no_fodselsnummer(&stack, &numbers);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pilot_case_nobody_can_take_falls_back_to_the_regular_flow_on_the_same_case()
-> anyhow::Result<()> {
    let stack = SystemStack::start("e2e_fallback").await?;
    set_appropriation(&stack, PLENTY_ORE).await?;
    let [first, second, _] = suppliers()?;
    let area = CompetenceArea::ConflictHandling;
    register(
        &stack,
        &[
            TestAgreement {
                reference: "RA-E2E-34-011",
                supplier: first.clone(),
                ranking: 1,
                price_ore: 2_150_000,
                monthly_capacity: 5,
                areas: &[CompetenceArea::ConflictHandling],
            },
            TestAgreement {
                reference: "RA-E2E-34-012",
                supplier: second.clone(),
                ranking: 2,
                price_ore: 2_650_000,
                monthly_capacity: 5,
                areas: &[CompetenceArea::ConflictHandling],
            },
        ],
    )
    .await?;
    let fodselsnummer = synthetic_fodselsnummer(7, 7, 77, 0);
    let other = synthetic_fodselsnummer(7, 7, 77, 1);

    // Both suppliers decline: the chain is exhausted and the case falls back.
    let case = open_pilot_case(&stack, area).await?;
    let order = place_order(&stack, &case.case_id, &fodselsnummer).await?;
    assert_eq!(order.supplier_organisation_number, first);
    order_in(&stack, &order.order_id, OrderStatus::Placed).await?;
    let declined = answer(
        &stack,
        &first,
        &order.order_id,
        v1::SupplierResponse::Declined,
    )
    .await?
    .into_inner();
    let next = declined.next_order.unwrap_or_default();
    assert_eq!(next.supplier_organisation_number, second);
    order_in(&stack, &next.order_id, OrderStatus::Placed).await?;
    let last = answer(
        &stack,
        &second,
        &next.order_id,
        v1::SupplierResponse::Declined,
    )
    .await?
    .into_inner();
    assert!(last.next_order.is_none(), "nobody is left");
    assert_eq!(
        last.fallback_reason(),
        v1::FlowChangeReason::NoSupplierAvailable
    );
    let fallback = stack
        .events
        .wait_for(|event: &v1::PilotFallbackRequested| event.case_id == case.case_id)
        .await?;
    assert_eq!(fallback.reason(), v1::FlowChangeReason::NoSupplierAvailable);
    assert_eq!(fallback.last_order_id, next.order_id);

    // Routing moves the same case to the regular flow: CaseFlowChanged PILOT → REGULAR.
    let changed = stack
        .events
        .wait_for(|event: &v1::CaseFlowChanged| event.case_id == case.case_id)
        .await?;
    assert_eq!(
        (changed.from_flow(), changed.to_flow(), changed.reason()),
        (
            Flow::Pilot,
            Flow::Regular,
            v1::FlowChangeReason::NoSupplierAvailable
        )
    );
    assert_eq!(changed.source(), v1::FlowChangeSource::PilotOrdering);
    assert_eq!(changed.sequence, 1);
    assert_eq!(
        changed.opened_at, case.opened_at,
        "the case keeps its opened-at"
    );
    let now = stack
        .routing()
        .await?
        .get_case(with_bearer(
            v1::GetCaseRequest {
                case_id: case.case_id.clone(),
            },
            &stack.people().caseworker(),
        ))
        .await?
        .into_inner()
        .case
        .unwrap_or_default();
    assert_eq!(now.current_flow(), Flow::Regular);
    assert_eq!(
        now.decision.unwrap_or_default().flow(),
        Flow::Pilot,
        "the original decision is kept"
    );
    assert_eq!(now.flow_changes.len(), 1);
    assert_eq!(
        stack
            .events
            .matching(|event: &v1::CaseRouted| event.case_id == case.case_id)
            .len(),
        1,
        "the case is routed (and counted) once"
    );

    // A redelivered PilotFallbackRequested changes nothing more.
    let feed = EventFeed::new(stack.broker.bootstrap_servers(), &stack.topic_prefix)?;
    stack
        .events
        .redeliver(
            &feed,
            "pilot-ordering",
            |event: &v1::PilotFallbackRequested| event.case_id == case.case_id,
        )
        .await?;
    tokio::time::sleep(REDELIVERY_GRACE).await;
    assert_eq!(
        stack
            .events
            .count(|event: &v1::CaseFlowChanged| event.case_id == case.case_id),
        1
    );

    // Applications accepts an application for the same case id, and the employee has the same
    // pseudonym in both flows.
    let application = submit_after_fallback(&stack, &case.case_id, &fodselsnummer).await?;
    assert_eq!(application.case_id, case.case_id);
    assert_eq!(application.employee_pseudonym, order.employee_pseudonym);
    // Pilot-ordering places no order for it any more.
    let again = stack
        .pilot_ordering()
        .await?
        .place_order(with_bearer(
            requests::order(&case.case_id, &fodselsnummer, pilot::ASSIGNMENT),
            &stack.people().caseworker(),
        ))
        .await;
    assert_refused(again, Code::FailedPrecondition, "CASE_NOT_PILOT");
    // Both declined orders gave their money back.
    for order_id in [&order.order_id, &next.order_id] {
        finished_reservation(
            &stack,
            CommitmentKind::PilotOrder,
            order_id,
            ReservationStatus::Released,
            0,
        )
        .await?;
    }

    // The other door: a pilot caseworker sends a case to the regular flow; its placed order is
    // cancelled (CASE_LEFT_PILOT) and applications accepts an application.
    let sent = open_pilot_case(&stack, area).await?;
    let sent_order = place_order(&stack, &sent.case_id, &other).await?;
    order_in(&stack, &sent_order.order_id, OrderStatus::Placed).await?;
    let moved = stack
        .routing()
        .await?
        .send_to_regular_flow(with_bearer(
            v1::SendToRegularFlowRequest {
                case_id: sent.case_id.clone(),
                reason: v1::FlowChangeReason::EmployerChoseOwnExpert as i32,
                note: String::new(),
            },
            &stack.people().caseworker(),
        ))
        .await?
        .into_inner()
        .case
        .unwrap_or_default();
    assert_eq!(moved.current_flow(), Flow::Regular);
    let cancelled = order_in(&stack, &sent_order.order_id, OrderStatus::Cancelled).await?;
    assert_eq!(
        cancelled.cancellation.unwrap_or_default().reason(),
        v1::OrderCancellationReason::CaseLeftPilot
    );
    finished_reservation(
        &stack,
        CommitmentKind::PilotOrder,
        &sent_order.order_id,
        ReservationStatus::Released,
        0,
    )
    .await?;
    submit_after_fallback(&stack, &sent.case_id, &other).await?;

    assert_money_kept(&stack).await?;
    assert_no_fodselsnummer(&stack, &[&fodselsnummer, &other]);
    Ok(())
}

/// Submits an application for a case that left the pilot, retrying while applications has not
/// seen the flow change yet (CASE_IN_PILOT_FLOW) or the case at all (UNAVAILABLE).
pub async fn submit_after_fallback(
    stack: &SystemStack,
    case_id: &str,
    fodselsnummer: &str,
) -> anyhow::Result<v1::Application> {
    let request = requests::application(case_id, fodselsnummer, &today(), ESTIMATED_ORE);
    let token = stack.people().employer(&[EMPLOYER_ORGNR]);
    let client = stack.applications().await?;
    until("applications to accept the fallen-back case", || {
        let mut client = client.clone();
        let request = with_bearer(request.clone(), &token);
        async move {
            match client.submit_application(request).await {
                Ok(response) => Ok(response.into_inner().application),
                Err(status)
                    if status.code() == Code::Unavailable
                        || ekb_testkit::status::reason(&status) == "CASE_IN_PILOT_FLOW" =>
                {
                    Ok(None)
                }
                Err(status) => Err(anyhow::anyhow!(
                    "SubmitApplication: {:?} {}",
                    status.code(),
                    status.message()
                )),
            }
        }
    })
    .await
}

/// Bergen, Vestland (county 46): outside the pilot unless configuration extends it.
const BERGEN: &str = "4601";
/// Oslo (county 03), never configured here.
const OSLO: &str = "0301";

/// If the pilot is extended, it is a configuration change (routing's `pilot.counties`, given
/// to routing alone as `make run --set routing.pilot.counties=34,46` would): a Vestland
/// agreement is registered, and `make run`'s walk takes a Bergen case choosing its area through
/// the whole pilot flow — routed PILOT, ordered, delivered, invoiced, approved by four eyes and
/// paid, with the money reserved, disbursed and released to the øre; a county still outside
/// stays in the regular flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_pilot_serves_a_second_county_through_the_whole_flow_by_configuration_alone()
-> anyhow::Result<()> {
    let stack = SystemStack::start_with(
        "e2e_two_counties",
        &[("routing", "pilot.counties", "34,46")],
    )
    .await?;
    set_appropriation(&stack, PLENTY_ORE).await?;
    let [supplier, other, _] = suppliers()?;
    let area = CompetenceArea::ConflictHandling;
    let token = stack.people().system();
    stack
        .registry()
        .await?
        .register_agreement(with_bearer(
            agreement_request(
                "RA-E2E-46-001",
                &supplier,
                "Vestland Arbeidshelse AS",
                "46",
                v1::AgreementTerms {
                    price_per_assignment_ore: 2_300_000,
                    validity: Some(date_range("2024-01-01", "2028-12-31")),
                    ..agreement_terms(&[area])
                },
            ),
            &token,
        ))
        .await?;
    let route_of = |municipality: &'static str| {
        let token = token.clone();
        let stack = &stack;
        async move {
            let decision = stack
                .routing()
                .await?
                .evaluate_route(with_bearer(
                    v1::EvaluateRouteRequest {
                        facts: Some(case_facts(municipality, Some(area), &today())),
                    },
                    &token,
                ))
                .await?
                .into_inner()
                .decision
                .unwrap_or_default();
            anyhow::Ok(decision.reason())
        }
    };
    until("routing to route a Bergen case PILOT", || async {
        Ok((route_of(BERGEN).await? == RoutingReason::PilotEligible).then_some(()))
    })
    .await?;
    assert_eq!(route_of(OSLO).await?, RoutingReason::OutsidePilotCounty);

    let person = synthetic_fodselsnummer(3, 4, 85, 1);
    let today = today();
    let mut checks = PilotChecks {
        stack: &stack,
        other_supplier: other,
        steps: Vec::new(),
    };
    let paid = paid(
        pilot::walk(
            &stack.clients().await?,
            &stack.people(),
            PilotCase {
                county: "46",
                municipality: BERGEN,
                place: "4601 Bergen",
                area,
                employee: &person,
                today: &today,
            },
            &mut checks,
        )
        .await?,
    )?;
    assert_eq!(checks.steps, PILOT_STEPS);
    assert_eq!(paid.case.county_code, "46");
    assert_eq!(paid.order.supplier_organisation_number, supplier);
    assert_eq!(paid.order.agreement_reference, "RA-E2E-46-001");
    assert_eq!(paid.order.county_code, "46");
    assert_eq!(paid.order.price_ore, 2_300_000);
    assert_invoice_paid_out(&stack, &paid).await?;
    assert_eq!(paid.reservation.county_code, "46");
    assert_eq!(paid.reservation.flow(), Flow::Pilot);
    assert_money_kept(&stack).await?;
    assert_no_fodselsnummer(&stack, &[&person]);
    Ok(())
}
