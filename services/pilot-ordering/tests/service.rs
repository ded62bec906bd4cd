//! Pilot-ordering's service tests: the service alone, in-process over real gRPC with
//! authentication, a fresh PostgreSQL database and the broker process; routing's and the
//! registry's events are fed on their real topics and a scripted budget answers OrderRequested
//! as budget would. Time-driven work (expiries, ended agreements) is run through the sweep with
//! a moved clock.

mod support;

#[path = "service/migrations.rs"]
mod migrations;

use std::collections::HashMap;

use anyhow::Context;

use ekb_pilot_ordering::codes;
use ekb_proto::v1::{self, OrderStatus};
use ekb_testkit::{service_under_test::eventually, services::with_bearer};
use support::*;
use tonic::Code;

/// Takes an ACCEPTED order through started and completed.
async fn start_and_complete(stack: &Stack, order_id: &str) -> anyhow::Result<v1::Order> {
    let token = stack.caseworker("Z111111");
    let started = stack.start_expert(order_id, "", &token).await?;
    assert_eq!(started.status(), OrderStatus::Started);
    let completed = stack.complete(order_id, &token).await?;
    assert_eq!(completed.status(), OrderStatus::Completed);
    assert!(!completed.invoice_deadline_date.is_empty());
    Ok(completed)
}

#[tokio::test]
async fn an_order_goes_from_request_through_a_decline_to_the_next_supplier_and_is_paid()
-> anyhow::Result<()> {
    let stack = Stack::start("po-happy", Some(1_000_000_000)).await?;
    let first = agreement(SUPPLIER_A, "RA-A", 1, PRICE, 5);
    let second = agreement(SUPPLIER_B, "RA-B", 2, PRICE - 100_000, 5);
    stack.agreement(&first).await?;
    stack.agreement(&second).await?;
    let case_id = stack.pilot_case().await?;

    let order = stack.place(&case_id, "Z111111").await?;
    assert_eq!(order.status(), OrderStatus::FundsPending);
    assert_eq!(
        order.agreement_id, first.agreement_id,
        "the best-ranked agreement"
    );
    assert_eq!(
        order.price_ore, PRICE,
        "the price is fixed from the agreement"
    );
    assert!(!order.employee_pseudonym.is_empty());
    let placed = stack
        .wait_status(&order.order_id, OrderStatus::Placed)
        .await?;
    assert!(!placed.reservation_id.is_empty());
    let order_uuid = uuid::Uuid::parse_str(&order.order_id)?;
    eventually("the order to be sent to the supplier", WAIT, || async {
        let sent: Option<bool> = sqlx::query_scalar(
            "SELECT supplier_notified_at IS NOT NULL FROM orders WHERE order_id = $1",
        )
        .bind(order_uuid)
        .fetch_optional(&stack.pool)
        .await?;
        Ok(sent.filter(|sent| *sent))
    })
    .await?;

    // Supplier B may not answer A's order.
    let refused = stack
        .answer(&order.order_id, SUPPLIER_B, v1::SupplierResponse::Accepted)
        .await
        .expect_err("another supplier's order");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused), "ORGANISATION_NOT_REPRESENTED");

    let declined = stack
        .answer(&order.order_id, SUPPLIER_A, v1::SupplierResponse::Declined)
        .await?;
    assert_eq!(
        declined.order.unwrap_or_default().status(),
        OrderStatus::Declined
    );
    let next = declined.next_order.expect("a follow-up order");
    assert_eq!(next.agreement_id, second.agreement_id);
    assert_eq!(next.previous_order_id, order.order_id);
    assert_eq!(next.price_ore, PRICE - 100_000);
    assert_eq!(next.employee_pseudonym, order.employee_pseudonym);
    stack
        .wait_status(&next.order_id, OrderStatus::Placed)
        .await?;
    let accepted = stack
        .answer(&next.order_id, SUPPLIER_B, v1::SupplierResponse::Accepted)
        .await?;
    assert_eq!(
        accepted.order.unwrap_or_default().status(),
        OrderStatus::Accepted
    );
    start_and_complete(&stack, &next.order_id).await?;

    // Only the order's supplier may invoice it.
    let refused = stack
        .submit_invoice(&next.order_id, 1_000_000, SUPPLIER_A)
        .await
        .expect_err("another supplier");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused), "ORGANISATION_NOT_REPRESENTED");
    let invoice = stack
        .submit_invoice(&next.order_id, 2_000_000, SUPPLIER_B)
        .await?;
    assert_eq!(invoice.status(), v1::InvoiceStatus::Submitted);
    let attested = stack
        .attest(&invoice.invoice_id, &stack.caseworker("Z111111"))
        .await?;
    assert_eq!(attested.attested_by, "Z111111");
    // Four eyes: the attestant cannot approve.
    let same = stack
        .approve(
            &invoice.invoice_id,
            &stack.issuer.token("Z111111", &["pilot-approver"]),
        )
        .await
        .expect_err("same person");
    assert_eq!(same.code(), Code::PermissionDenied);
    assert_eq!(reason(&same), "SAME_PERSON_AS_ATTESTANT");
    let approved = stack
        .approve(&invoice.invoice_id, &stack.approver("Z222222"))
        .await?;
    assert_eq!(approved.status(), v1::InvoiceStatus::Approved);
    let paid = eventually("the payment outcome", WAIT, || async {
        let order = stack.order(&next.order_id).await?;
        Ok(order
            .invoices
            .into_iter()
            .find(|invoice| invoice.payment_status() == v1::InvoicePaymentStatus::Paid))
    })
    .await?;
    assert!(!paid.payment_reference.is_empty());

    let approved_events = stack.events::<v1::InvoiceApproved>().await?;
    assert_eq!(approved_events.len(), 1);
    assert_eq!(approved_events[0].amount_ore, 2_000_000);
    assert_eq!(approved_events[0].order_amount_ore, PRICE - 100_000);
    let recorded = stack.events::<v1::InvoicePaymentRecorded>().await?;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status(), v1::InvoicePaymentStatus::Paid);
    assert_eq!(
        stack.event_types().await?,
        [
            "OrderRequested",
            "OrderPlaced",
            "OrderDeclined",
            "OrderRequested",
            "OrderPlaced",
            "OrderAccepted",
            "OrderStarted",
            "OrderCompleted",
            "InvoiceSubmitted",
            "InvoiceApproved",
            "InvoicePaymentRecorded",
        ]
    );
    let placed_events = stack.events::<v1::OrderPlaced>().await?;
    let key = stack.policy()?.pseudonym_key;
    let fnr =
        ekb_domain::Fodselsnummer::parse(&fodselsnummer(), ekb_domain::SyntheticPolicy::Reject)?;
    assert_eq!(placed_events[0].employee_pseudonym, fnr.pseudonym(&key));
    stack.assert_money_closed(&[]).await?;
    assert_no_fodselsnummer(&stack).await?;
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_entries WHERE case_id = $1")
        .bind(uuid::Uuid::parse_str(&case_id)?)
        .fetch_one(&stack.pool)
        .await?;
    assert!(audit >= 10, "every change is audited ({audit} entries)");
    Ok(())
}

/// No fødselsnummer in any event, and none stored in clear.
async fn assert_no_fodselsnummer(stack: &Stack) -> anyhow::Result<()> {
    let digits = fodselsnummer();
    for (name, envelope) in stack.outbox().await? {
        let text = String::from_utf8_lossy(&envelope.payload);
        assert!(!text.contains(&digits), "{name} carries the fødselsnummer");
    }
    let clear: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE employee_fodselsnummer_sealed LIKE '%' || $1 || '%'",
    )
    .bind(&digits)
    .fetch_one(&stack.pool)
    .await?;
    assert_eq!(clear, 0, "the fødselsnummer is stored sealed");
    Ok(())
}

#[tokio::test]
async fn when_every_supplier_declines_the_case_falls_back_to_the_regular_flow() -> anyhow::Result<()>
{
    let stack = Stack::start("po-fallback", Some(1_000_000_000)).await?;
    let only = agreement(SUPPLIER_A, "RA-A", 1, PRICE, 5);
    stack.agreement(&only).await?;
    let (case_id, order) = placed_order(&stack).await?;
    let declined = stack
        .answer(&order.order_id, SUPPLIER_A, v1::SupplierResponse::Declined)
        .await?;
    assert!(declined.next_order.is_none());
    assert_eq!(
        declined.fallback_reason(),
        v1::FlowChangeReason::NoSupplierAvailable
    );
    let fallbacks = stack.events::<v1::PilotFallbackRequested>().await?;
    assert_eq!(fallbacks.len(), 1);
    assert_eq!(fallbacks[0].case_id, case_id);
    assert_eq!(
        fallbacks[0].reason(),
        v1::FlowChangeReason::NoSupplierAvailable
    );
    assert_eq!(fallbacks[0].last_order_id, order.order_id);
    let types = stack.event_types().await?;
    assert_eq!(
        &types[types.len() - 2..],
        ["OrderDeclined", "PilotFallbackRequested"]
    );

    // A caseworker trying again is told why; nothing changes.
    let refused = stack.place(&case_id, "Z111111").await.expect_err("tried");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "NO_SUPPLIER_AVAILABLE");

    // Routing moves the case: no order is placed for it again.
    stack
        .leave_pilot(
            &case_id,
            v1::FlowChangeReason::NoSupplierAvailable,
            v1::FlowChangeSource::PilotOrdering,
            "pilot-ordering",
        )
        .await?;
    let refused = eventually("the case to leave the pilot", WAIT, || async {
        match stack.place(&case_id, "Z111111").await {
            Err(status) if reason(&status) == "CASE_NOT_PILOT" => Ok(Some(status)),
            _ => Ok(None),
        }
    })
    .await?;
    assert_eq!(refused.code(), Code::FailedPrecondition);
    stack.assert_money_closed(&[]).await?;
    Ok(())
}

/// A case worker's client retrying after a timeout, many copies at once: every copy of one
/// PlaceOrder gets the first order (one `created`); different requests racing for one case get
/// one order and, for the others, FAILED_PRECONDITION CASE_HAS_LIVE_ORDER.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_copies_get_the_first_order_and_racing_orders_the_contract_s_refusal()
-> anyhow::Result<()> {
    use ekb_testkit::concurrency::{
        assert_copies_got_the_first, assert_one_won_and_the_rest_were_refused, at_once,
    };
    const COPIES: usize = 8;
    let stack = Stack::start("po-order-race", None).await?;
    stack
        .agreement(&agreement(SUPPLIER_A, "RA-A", 1, PRICE, 100))
        .await?;
    let token = stack.caseworker("Z111111");
    let place = |request: v1::PlaceOrderRequest| {
        let mut client = stack.client.clone();
        let request = with_bearer(request, &token);
        async move { client.place_order(request).await }
    };
    let created = |answer: &v1::PlaceOrderResponse| answer.created;
    for _ in 0..3 {
        let request = place_request(&stack.pilot_case().await?);
        let copies = at_once((0..COPIES).map(|_| place(request.clone()))).await?;
        assert_copies_got_the_first(&copies, created, |answer| {
            answer.order.clone().unwrap_or_default().order_id
        })?;
        let case_id = stack.pilot_case().await?;
        let racing = at_once((0..COPIES).map(|_| place(place_request(&case_id)))).await?;
        assert_one_won_and_the_rest_were_refused(&racing, created, "CASE_HAS_LIVE_ORDER")?;
    }
    Ok(())
}

#[tokio::test]
async fn fifty_concurrent_orders_never_exceed_an_agreements_monthly_capacity() -> anyhow::Result<()>
{
    let stack = Stack::start("po-capacity", None).await?;
    let small = agreement(SUPPLIER_A, "RA-A", 1, PRICE, 10);
    let large = agreement(SUPPLIER_B, "RA-B", 2, PRICE, 100);
    stack.agreement(&small).await?;
    stack.agreement(&large).await?;
    let mut cases = Vec::new();
    for _ in 0..50 {
        let case_id = uuid::Uuid::now_v7().to_string();
        stack.route(&case_id, v1::Flow::Pilot).await?;
        cases.push(case_id);
    }
    for case_id in &cases {
        stack.wait_for_case(case_id).await?;
    }
    let calls = cases.iter().map(|case_id| {
        let stack = &stack;
        async move { stack.place(case_id, "Z111111").await }
    });
    let results = futures::future::join_all(calls).await;
    let mut by_agreement: HashMap<String, usize> = HashMap::new();
    for result in results {
        let order = result.map_err(|status| anyhow::anyhow!("PlaceOrder failed: {status}"))?;
        *by_agreement.entry(order.agreement_id).or_default() += 1;
    }
    assert_eq!(
        by_agreement.get(&small.agreement_id),
        Some(&10),
        "exactly the capacity"
    );
    assert_eq!(
        by_agreement.get(&large.agreement_id),
        Some(&40),
        "the rest with the next"
    );

    // Both full: a further order is refused with the reason.
    let full = agreement(SUPPLIER_A, "RA-C", 1, PRICE, 1);
    let mut large_full = large.clone();
    large_full.version = 2;
    large_full.terms = Some(v1::AgreementTerms {
        monthly_capacity: 40,
        ..large.terms.clone().unwrap_or_default()
    });
    stack.agreement(&large_full).await?;
    stack.agreement(&full).await?;
    let one = stack.pilot_case().await?;
    let order = stack.place(&one, "Z111111").await?;
    assert_eq!(
        order.agreement_id, full.agreement_id,
        "capacity full → next supplier with room"
    );
    let other = stack.pilot_case().await?;
    let refused = stack.place(&other, "Z111111").await.expect_err("all full");
    assert_eq!(reason(&refused), "AGREEMENTS_FULL");
    Ok(())
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_stored() -> anyhow::Result<()> {
    let stack = Stack::start("po-bad-input", None).await?;
    stack
        .agreement(&agreement(SUPPLIER_A, "RA-A", 1, PRICE, 5))
        .await?;
    let case_id = stack.pilot_case().await?;
    let token = stack.caseworker("Z111111");
    let mut client = stack.client.clone();
    let valid = place_request(&case_id);
    let mut cases: Vec<(v1::PlaceOrderRequest, &str)> = Vec::new();
    cases.push((
        v1::PlaceOrderRequest {
            request_id: "x".into(),
            ..valid.clone()
        },
        "request_id",
    ));
    cases.push((
        v1::PlaceOrderRequest {
            case_id: "nope".into(),
            ..valid.clone()
        },
        "case_id",
    ));
    cases.push((
        v1::PlaceOrderRequest {
            contact_person: None,
            ..valid.clone()
        },
        "contact_person",
    ));
    cases.push((
        v1::PlaceOrderRequest {
            employee_fodselsnummer: "12345678901".into(),
            ..valid.clone()
        },
        "employee_fodselsnummer",
    ));
    cases.push((
        v1::PlaceOrderRequest {
            employee_fodselsnummer: "01419012345".into(),
            ..valid.clone()
        },
        "employee_fodselsnummer",
    ));
    cases.push((
        v1::PlaceOrderRequest {
            assignment_description: " ".into(),
            ..valid.clone()
        },
        "assignment_description",
    ));
    cases.push((
        v1::PlaceOrderRequest {
            assignment_description: format!("Ansatt {}", fodselsnummer()),
            ..valid.clone()
        },
        "assignment_description",
    ));
    let mut bad_contact = valid.clone();
    bad_contact.contact_person = Some(v1::ContactPerson {
        name: "Kari".into(),
        phone_number: "abc".into(),
        email: "no-at-sign".into(),
    });
    cases.push((bad_contact, "contact_person.phone_number"));
    for (request, field) in cases {
        let status = client
            .place_order(with_bearer(request, &token))
            .await
            .expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(
            violated_fields(&status).iter().any(|f| f == field),
            "{field}: {:?}",
            violated_fields(&status)
        );
        assert!(
            !status.message().contains(&fodselsnummer()),
            "the message never repeats the number"
        );
    }
    let other_calls: Vec<tonic::Status> = vec![
        client
            .record_supplier_response(with_bearer(
                v1::RecordSupplierResponseRequest {
                    order_id: uuid::Uuid::now_v7().to_string(),
                    response: v1::SupplierResponse::Accepted as i32,
                    responded_date: "2999-01-01".into(),
                    decline_reason: String::new(),
                    decline_reason_code: v1::SupplierDeclineReason::NoCapacity as i32,
                },
                &token,
            ))
            .await
            .expect_err("future date and code with ACCEPTED"),
        stack
            .cancel(
                &uuid::Uuid::now_v7().to_string(),
                v1::OrderCancellationReason::FundsDenied,
                "",
                &token,
            )
            .await
            .expect_err("service-only reason"),
        stack
            .list_orders(
                v1::ListOrdersRequest {
                    statuses: vec![0],
                    county_code: "3".into(),
                    page_size: 501,
                    page_token: "zz".into(),
                },
                &stack.issuer.token("Z1", &["pilot-reader"]),
            )
            .await
            .expect_err("bad listing"),
        client
            .submit_invoice(with_bearer(
                v1::SubmitInvoiceRequest {
                    amount_ore: 0,
                    invoice_number: String::new(),
                    ..invoice_request("nope", 1)
                },
                &stack.supplier(SUPPLIER_A),
            ))
            .await
            .expect_err("bad invoice"),
        client
            .submit_invoice(with_bearer(
                v1::SubmitInvoiceRequest {
                    amount_ore: i64::MAX,
                    ..invoice_request(&uuid::Uuid::now_v7().to_string(), 1)
                },
                &stack.supplier(SUPPLIER_A),
            ))
            .await
            .expect_err("an amount above the bound"),
    ];
    let expected: [&[&str]; 5] = [
        &["responded_date", "decline_reason_code"],
        &["reason"],
        &["statuses[0]", "county_code", "page_size", "page_token"],
        &["order_id", "invoice_number", "amount_ore"],
        &["amount_ore"],
    ];
    for (status, fields) in other_calls.iter().zip(expected) {
        assert_eq!(status.code(), Code::InvalidArgument);
        let found = violated_fields(status);
        for field in fields {
            assert!(found.iter().any(|f| f == field), "{field} in {found:?}");
        }
    }
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&stack.pool)
        .await?;
    assert_eq!(orders, 0);
    assert!(stack.outbox().await?.is_empty(), "nothing published");
    Ok(())
}

#[tokio::test]
async fn refused_transitions_name_their_reason_and_a_price_above_the_agreement_is_rejected()
-> anyhow::Result<()> {
    let stack = Stack::start("po-refusals", Some(1_000_000_000)).await?;
    stack
        .agreement(&agreement(SUPPLIER_A, "RA-A", 1, PRICE, 5))
        .await?;
    let case_id = stack.pilot_case().await?;
    let token = stack.caseworker("Z111111");
    let mut client = stack.client.clone();
    let order = stack.place(&case_id, "Z111111").await?;
    let refused = stack
        .place(&case_id, "Z111111")
        .await
        .expect_err("live order");
    assert_eq!(reason(&refused), "CASE_HAS_LIVE_ORDER");
    let not_accepted = stack
        .start_expert(&order.order_id, "", &token)
        .await
        .expect_err("pending");
    assert_eq!(reason(&not_accepted), "ORDER_NOT_ACCEPTED");
    stack
        .wait_status(&order.order_id, OrderStatus::Placed)
        .await?;
    let abort = stack
        .abort(
            &order.order_id,
            v1::OrderAbortReason::EmployerWithdrew,
            &token,
        )
        .await
        .expect_err("placed");
    assert_eq!(reason(&abort), "ORDER_NOT_ACCEPTED_OR_STARTED");
    stack
        .answer(&order.order_id, SUPPLIER_A, v1::SupplierResponse::Accepted)
        .await?;
    // A repeat of the same answer returns the order and publishes nothing.
    let before = stack.outbox().await?.len();
    let again = stack
        .answer(&order.order_id, SUPPLIER_A, v1::SupplierResponse::Accepted)
        .await?;
    assert_eq!(
        again.order.unwrap_or_default().status(),
        OrderStatus::Accepted
    );
    assert_eq!(stack.outbox().await?.len(), before);
    let declined_late = stack
        .answer(&order.order_id, SUPPLIER_A, v1::SupplierResponse::Declined)
        .await
        .expect_err("accepted already");
    assert_eq!(reason(&declined_late), "ORDER_NOT_PLACED");
    let complete = stack
        .complete(&order.order_id, &token)
        .await
        .expect_err("accepted");
    assert_eq!(reason(&complete), "ORDER_NOT_STARTED");
    let early_invoice = stack
        .submit_invoice(&order.order_id, 1, SUPPLIER_A)
        .await
        .expect_err("not completed");
    assert_eq!(reason(&early_invoice), "ORDER_NOT_INVOICEABLE");
    start_and_complete(&stack, &order.order_id).await?;
    let cancel = stack
        .cancel(
            &order.order_id,
            v1::OrderCancellationReason::NoLongerNeeded,
            "",
            &token,
        )
        .await
        .expect_err("completed");
    assert_eq!(reason(&cancel), "ORDER_CLOSED");
    let delivered = stack
        .place(&case_id, "Z111111")
        .await
        .expect_err("delivered");
    assert_eq!(reason(&delivered), "CASE_ALREADY_DELIVERED");

    // Above the agreement's price: registered and rejected, visible, not refused.
    let above = stack
        .submit_invoice(&order.order_id, PRICE + 1, SUPPLIER_A)
        .await?;
    assert_eq!(above.status(), v1::InvoiceStatus::Rejected);
    assert_eq!(
        above.rejection_reason(),
        v1::InvoiceRejectionReason::PriceAboveAgreement
    );
    assert_eq!(stack.events::<v1::InvoiceRejected>().await?.len(), 1);
    let approve = stack
        .approve(&above.invoice_id, &stack.approver("Z222222"))
        .await
        .expect_err("rejected");
    assert_eq!(reason(&approve), "INVOICE_NOT_ATTESTED");
    // A corrected one at the price is accepted; a second while it is in progress is not.
    let corrected = stack
        .submit_invoice(&order.order_id, PRICE, SUPPLIER_A)
        .await?;
    assert_eq!(corrected.status(), v1::InvoiceStatus::Submitted);
    let second = stack
        .submit_invoice(&order.order_id, PRICE, SUPPLIER_A)
        .await
        .expect_err("in progress");
    assert_eq!(reason(&second), "INVOICE_IN_PROGRESS");
    let rejected = client
        .reject_invoice(with_bearer(
            v1::RejectInvoiceRequest {
                invoice_id: corrected.invoice_id.clone(),
                reason: v1::InvoiceRejectionReason::InvoiceInvalid as i32,
                explanation: String::new(),
            },
            &token,
        ))
        .await?
        .into_inner()
        .invoice
        .unwrap_or_default();
    assert_eq!(rejected.status(), v1::InvoiceStatus::Rejected);
    let attest = stack
        .attest(&corrected.invoice_id, &token)
        .await
        .expect_err("rejected");
    assert_eq!(reason(&attest), "INVOICE_NOT_SUBMITTED");
    // The completed order holds its money until invoiced or expired.
    stack.assert_money_closed(&[&order.order_id]).await?;
    Ok(())
}

#[tokio::test]
async fn redelivered_events_are_applied_once_and_older_agreement_versions_never_win()
-> anyhow::Result<()> {
    let stack = Stack::start("po-redelivery", None).await?;
    let mut terms = agreement(SUPPLIER_A, "RA-A", 1, PRICE, 5);
    terms.version = 3;
    stack.agreement(&terms).await?;
    let mut older = terms.clone();
    older.version = 2;
    older.terms = Some(v1::AgreementTerms {
        price_per_assignment_ore: 1,
        ..terms.terms.clone().unwrap_or_default()
    });
    stack
        .publish_agreement(&v1::AgreementUpdated {
            agreement: Some(older),
        })
        .await?;
    let case_id = uuid::Uuid::now_v7().to_string();
    let routed = stack.route(&case_id, v1::Flow::Pilot).await?;
    stack.wait_for_case(&case_id).await?;
    stack
        .sut
        .feed
        .publish_envelope("routing", &case_id, &routed)
        .await?;
    let order = stack.place(&case_id, "Z111111").await?;
    assert_eq!(
        order.price_ore, PRICE,
        "the older version did not overwrite the newer"
    );

    // FundsReserved delivered twice: placed once.
    let reserved = v1::FundsReserved {
        reservation_id: uuid::Uuid::now_v7().to_string(),
        commitment: Some(v1::Commitment {
            kind: v1::CommitmentKind::PilotOrder as i32,
            commitment_id: order.order_id.clone(),
        }),
        case_id: case_id.clone(),
        county_code: COUNTY.to_owned(),
        flow: v1::Flow::Pilot as i32,
        budget_year: 2026,
        account: None,
        amount_ore: PRICE,
        reserved_at: None,
    };
    let envelope = stack.publish_budget(&case_id, &reserved).await?;
    stack
        .wait_status(&order.order_id, OrderStatus::Placed)
        .await?;
    stack
        .sut
        .feed
        .publish_envelope("budget", &case_id, &envelope)
        .await?;
    // A grant's FundsReserved is not ours: skipped. Garbage is dead-lettered, not fatal.
    let grant = v1::FundsReserved {
        commitment: Some(v1::Commitment {
            kind: v1::CommitmentKind::Grant as i32,
            commitment_id: uuid::Uuid::now_v7().to_string(),
        }),
        ..reserved.clone()
    };
    let grant_envelope = stack.publish_budget(&case_id, &grant).await?;
    stack
        .sut
        .feed
        .publish_bytes(
            "budget",
            &case_id,
            &<v1::FundsReserved as prost::Name>::full_name(),
            b"\xff\xff",
        )
        .await?;
    // One partition (all keyed by the case), consumed in order: once the grant's event is in
    // the inbox, the duplicate before it was handled too.
    let grant_event = uuid::Uuid::parse_str(&grant_envelope.event_id)?;
    eventually("the budget topic to be consumed", WAIT, || async {
        let outcomes: Vec<String> =
            sqlx::query_scalar("SELECT outcome FROM inbox WHERE event_id = $1")
                .bind(grant_event)
                .fetch_all(&stack.pool)
                .await?;
        Ok((outcomes.len() == 1).then_some(()))
    })
    .await?;
    let marker = uuid::Uuid::now_v7().to_string();
    stack.route(&marker, v1::Flow::Regular).await?;
    stack.wait_for_case(&marker).await?;
    assert_eq!(stack.events::<v1::OrderPlaced>().await?.len(), 1);
    assert_eq!(stack.events::<v1::OrderRequested>().await?.len(), 1);
    let cases: i64 = sqlx::query_scalar("SELECT count(*) FROM cases")
        .fetch_one(&stack.pool)
        .await?;
    assert_eq!(cases, 2);
    let refused = stack.place(&marker, "Z111111").await.expect_err("regular");
    assert_eq!(reason(&refused), "CASE_NOT_PILOT");
    let unknown = stack
        .place(&uuid::Uuid::now_v7().to_string(), "Z111111")
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::Unavailable);

    // FundsDenied for a new order: cancelled with budget's reason; a later PlaceOrder may retry.
    let other = stack.pilot_case().await?;
    let denied_order = stack.place(&other, "Z111111").await?;
    stack
        .publish_budget(
            &other,
            &v1::FundsDenied {
                commitment: Some(v1::Commitment {
                    kind: v1::CommitmentKind::PilotOrder as i32,
                    commitment_id: denied_order.order_id.clone(),
                }),
                case_id: other.clone(),
                county_code: COUNTY.to_owned(),
                reason: v1::FundsDeniedReason::InsufficientFunds as i32,
                ..Default::default()
            },
        )
        .await?;
    let cancelled = stack
        .wait_status(&denied_order.order_id, OrderStatus::Cancelled)
        .await?;
    let cancellation = cancelled.cancellation.unwrap_or_default();
    assert_eq!(
        cancellation.reason(),
        v1::OrderCancellationReason::FundsDenied
    );
    assert_eq!(
        cancellation.funds_denied_reason(),
        v1::FundsDeniedReason::InsufficientFunds
    );
    let retry = stack.place(&other, "Z111111").await?;
    assert_eq!(retry.status(), OrderStatus::FundsPending);
    Ok(())
}

#[tokio::test]
async fn the_sweep_expires_unanswered_and_uninvoiced_orders_and_moves_orders_of_ended_agreements()
-> anyhow::Result<()> {
    let stack = Stack::start("po-sweep", Some(1_000_000_000)).await?;
    let first = agreement(SUPPLIER_A, "RA-A", 1, PRICE, 50);
    let second = agreement(SUPPLIER_B, "RA-B", 2, PRICE, 50);
    stack.agreement(&first).await?;
    stack.agreement(&second).await?;
    let policy = stack.policy()?;
    let db = stack.db();
    let now = time::OffsetDateTime::now_utc();

    // Unanswered past supplier_answer: expires and moves to the next supplier.
    let (_, unanswered) = placed_order(&stack).await?;
    // Completed and never invoiced: expires after the invoice deadline.
    let (_, completed) = accepted_order(&stack).await?;
    start_and_complete(&stack, &completed.order_id).await?;

    let report = ekb_pilot_ordering::sweep::sweep(&db, &policy, now).await?;
    assert_eq!(report.expired, 0, "nothing is due yet");
    let report =
        ekb_pilot_ordering::sweep::sweep(&db, &policy, now + time::Duration::days(10)).await?;
    assert_eq!(report.expired, 1);
    let expired = stack.order(&unanswered.order_id).await?;
    assert_eq!(expired.status(), OrderStatus::Expired);
    assert_eq!(
        expired.expiry_reason(),
        v1::OrderExpiryReason::SupplierDidNotAnswer
    );
    let next = stack.order(&expired.next_order_id).await?;
    assert_eq!(next.agreement_id, second.agreement_id);
    // The next supplier's order, once budget has reserved for it, is itself unanswered for more
    // than supplier_answer at that instant: the same sweep expires it (and only it), and
    // one more at the same instant changes nothing. (Waiting for the reservation first makes
    // this independent of how fast budget answers.)
    stack
        .wait_status(&next.order_id, OrderStatus::Placed)
        .await?;
    let report =
        ekb_pilot_ordering::sweep::sweep(&db, &policy, now + time::Duration::days(10)).await?;
    assert_eq!(
        report.expired, 1,
        "the next supplier's order, unanswered too"
    );
    assert_eq!(
        stack.order(&next.order_id).await?.expiry_reason(),
        v1::OrderExpiryReason::SupplierDidNotAnswer
    );
    let report =
        ekb_pilot_ordering::sweep::sweep(&db, &policy, now + time::Duration::days(10)).await?;
    assert_eq!(report.expired, 0, "a repeated sweep changes nothing");
    let report =
        ekb_pilot_ordering::sweep::sweep(&db, &policy, now + time::Duration::days(92)).await?;
    assert!(report.expired >= 1);
    let uninvoiced = stack.order(&completed.order_id).await?;
    assert_eq!(uninvoiced.status(), OrderStatus::Expired);
    assert_eq!(
        uninvoiced.expiry_reason(),
        v1::OrderExpiryReason::InvoiceDeadlinePassed
    );

    // An agreement ended while an order is PLACED: cancelled and moved on; ACCEPTED stands.
    let (_, placed) = placed_order(&stack).await?;
    let (_, accepted) = accepted_order(&stack).await?;
    let mut ended = first.clone();
    ended.version = 2;
    ended.ended_on_date = "2025-01-01".to_owned();
    stack
        .publish_agreement(&v1::AgreementEnded {
            agreement: Some(ended.clone()),
            reason: "test".to_owned(),
        })
        .await?;
    stack.wait_for_agreement(&ended).await?;
    let cancelled = stack
        .wait_status(&placed.order_id, OrderStatus::Cancelled)
        .await?;
    let cancellation = cancelled.cancellation.clone().unwrap_or_default();
    assert_eq!(
        cancellation.reason(),
        v1::OrderCancellationReason::AgreementEnded
    );
    let moved = stack.order(&cancelled.next_order_id).await?;
    assert_eq!(moved.agreement_id, second.agreement_id);
    assert_eq!(
        stack.order(&accepted.order_id).await?.status(),
        OrderStatus::Accepted
    );
    // Every reservation made is released or still live.
    let live: Vec<String> = {
        let mut live = Vec::new();
        for order in stack.events::<v1::OrderRequested>().await? {
            let status = stack.order(&order.order_id).await?.status();
            if matches!(
                status,
                OrderStatus::FundsPending | OrderStatus::Placed | OrderStatus::Accepted
            ) {
                live.push(order.order_id);
            }
        }
        live
    };
    let live: Vec<&str> = live.iter().map(String::as_str).collect();
    stack.assert_money_closed(&live).await?;
    Ok(())
}

/// A new PILOT case with an order PLACED under the first agreement; returns (case, order).
async fn placed_order(stack: &Stack) -> anyhow::Result<(String, v1::Order)> {
    let case_id = stack.pilot_case().await?;
    let order = stack.place(&case_id, "Z111111").await?;
    let order = stack
        .wait_status(&order.order_id, OrderStatus::Placed)
        .await?;
    Ok((case_id, order))
}

/// A new PILOT case with an order PLACED under the first agreement and accepted by supplier A;
/// returns (case, the accepted order).
async fn accepted_order(stack: &Stack) -> anyhow::Result<(String, v1::Order)> {
    let (case_id, order) = placed_order(stack).await?;
    let accepted = stack
        .answer(&order.order_id, SUPPLIER_A, v1::SupplierResponse::Accepted)
        .await?;
    Ok((case_id, accepted.order.context("the accepted order")?))
}

#[tokio::test]
async fn every_other_way_an_order_ends_releases_or_disburses_its_money() -> anyhow::Result<()> {
    let stack = Stack::start("po-money", Some(1_000_000_000)).await?;
    stack
        .agreement(&agreement(SUPPLIER_A, "RA-A", 1, PRICE, 50))
        .await?;
    let token = stack.caseworker("Z111111");

    // Cancelled by a caseworker while PLACED.
    let (_, cancelled) = placed_order(&stack).await?;
    let response = stack
        .cancel(
            &cancelled.order_id,
            v1::OrderCancellationReason::Other,
            "Arbeidsgiver har funnet en annen løsning.",
            &token,
        )
        .await?;
    assert_eq!(response.status(), OrderStatus::Cancelled);

    // Aborted after the expert started, then invoiced in part and approved.
    let (_, aborted) = accepted_order(&stack).await?;
    stack
        .start_expert(&aborted.order_id, &uuid::Uuid::now_v7().to_string(), &token)
        .await?;
    let after = stack
        .abort(
            &aborted.order_id,
            v1::OrderAbortReason::EmployeeWithdrew,
            &token,
        )
        .await?;
    assert_eq!(after.status(), OrderStatus::Aborted);
    assert_eq!(
        after.abort.unwrap_or_default().previous_status(),
        OrderStatus::Started
    );
    let partial = stack
        .submit_invoice(&aborted.order_id, 600_000, SUPPLIER_A)
        .await?;
    stack.attest(&partial.invoice_id, &token).await?;
    stack
        .approve(&partial.invoice_id, &stack.approver("Z222222"))
        .await?;
    let approved = stack.events::<v1::InvoiceApproved>().await?;
    assert_eq!(approved.len(), 1);
    assert_eq!(
        (approved[0].amount_ore, approved[0].order_amount_ore),
        (600_000, PRICE)
    );

    // Accepted and never started: expires after start.
    let (_, idle) = accepted_order(&stack).await?;
    let policy = stack.policy()?;
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(32);
    ekb_pilot_ordering::sweep::sweep(&stack.db(), &policy, later).await?;
    let expired = stack.order(&idle.order_id).await?;
    assert_eq!(expired.status(), OrderStatus::Expired);
    assert_eq!(
        expired.expiry_reason(),
        v1::OrderExpiryReason::NotStartedInTime
    );
    assert!(
        expired.next_order_id.is_empty(),
        "no follow-up after the supplier accepted"
    );

    // The case leaves the pilot while its order is ACCEPTED: cancelled, CASE_LEFT_PILOT.
    let (left_case, left) = accepted_order(&stack).await?;
    stack
        .leave_pilot(
            &left_case,
            v1::FlowChangeReason::CaseworkerDecision,
            v1::FlowChangeSource::Caseworker,
            "Z333333",
        )
        .await?;
    let gone = stack
        .wait_status(&left.order_id, OrderStatus::Cancelled)
        .await?;
    assert_eq!(
        gone.cancellation.unwrap_or_default().reason(),
        v1::OrderCancellationReason::CaseLeftPilot
    );
    assert!(
        stack
            .events::<v1::PilotFallbackRequested>()
            .await?
            .is_empty(),
        "a caseworker's move asks nothing"
    );
    stack.assert_money_closed(&[]).await?;
    assert_no_fodselsnummer(&stack).await?;
    Ok(())
}

#[tokio::test]
async fn work_lists_show_orders_by_status_and_county_and_cases_awaiting_an_order()
-> anyhow::Result<()> {
    let stack = Stack::start("po-lists", None).await?;
    stack
        .agreement(&agreement(SUPPLIER_A, "RA-A", 1, PRICE, 50))
        .await?;
    let waiting = stack.pilot_case().await?;
    let mut ordered = Vec::new();
    for _ in 0..3 {
        let case_id = stack.pilot_case().await?;
        ordered.push(stack.place(&case_id, "Z111111").await?);
    }
    let reader = stack.issuer.token("Z1", &["pilot-reader"]);
    let mut client = stack.client.clone();
    let first = stack
        .list_orders(
            v1::ListOrdersRequest {
                statuses: vec![],
                county_code: COUNTY.into(),
                page_size: 2,
                page_token: String::new(),
            },
            &reader,
        )
        .await?;
    assert_eq!(first.orders.len(), 2);
    assert_eq!(
        first.orders[0].order_id, ordered[0].order_id,
        "oldest first"
    );
    assert!(
        first.orders[0].contact_person.is_none(),
        "no personal data in lists"
    );
    let second = stack
        .list_orders(
            v1::ListOrdersRequest {
                statuses: vec![],
                county_code: COUNTY.into(),
                page_size: 2,
                page_token: first.next_page_token,
            },
            &reader,
        )
        .await?;
    assert_eq!(second.orders.len(), 1);
    assert!(second.next_page_token.is_empty());
    let elsewhere = stack
        .list_orders(
            v1::ListOrdersRequest {
                statuses: vec![OrderStatus::FundsPending as i32],
                county_code: "03".into(),
                page_size: 0,
                page_token: String::new(),
            },
            &reader,
        )
        .await?;
    assert!(elsewhere.orders.is_empty());
    let awaiting = client
        .list_cases_awaiting_order(with_bearer(
            v1::ListCasesAwaitingOrderRequest {
                county_code: String::new(),
                page_size: 0,
                page_token: String::new(),
            },
            &reader,
        ))
        .await?
        .into_inner();
    let ids: Vec<&str> = awaiting
        .cases
        .iter()
        .map(|case| case.case_id.as_str())
        .collect();
    assert_eq!(ids, [waiting.as_str()], "only the case with no live order");
    assert_eq!(awaiting.cases[0].order_count, 0);
    let for_case = client
        .list_orders_for_case(with_bearer(
            v1::ListOrdersForCaseRequest {
                case_id: ordered[0].case_id.clone(),
            },
            &reader,
        ))
        .await?
        .into_inner();
    assert_eq!(for_case.orders.len(), 1);
    // A supplier sees only its own orders.
    let denied = client
        .get_order(with_bearer(
            v1::GetOrderRequest {
                order_id: ordered[0].order_id.clone(),
            },
            &stack.supplier(SUPPLIER_B),
        ))
        .await
        .expect_err("another supplier's order");
    assert_eq!(reason(&denied), "ORGANISATION_NOT_REPRESENTED");
    let own = client
        .get_order(with_bearer(
            v1::GetOrderRequest {
                order_id: ordered[0].order_id.clone(),
            },
            &stack.supplier(SUPPLIER_A),
        ))
        .await?;
    assert!(own.into_inner().order.is_some());
    // Without the role: PERMISSION_DENIED before anything is read.
    let no_role = client
        .place_order(with_bearer(place_request(&waiting), &reader))
        .await
        .expect_err("reader cannot order");
    assert_eq!(no_role.code(), Code::PermissionDenied);
    Ok(())
}

/// Takes a new PILOT case's order through accepted, started and completed, and has supplier A
/// invoice it; returns the order id and the SUBMITTED invoice.
async fn submitted_invoice(stack: &Stack) -> anyhow::Result<(String, v1::SupplierInvoice)> {
    let (_, order) = accepted_order(stack).await?;
    start_and_complete(stack, &order.order_id).await?;
    let invoice = stack
        .submit_invoice(&order.order_id, PRICE, SUPPLIER_A)
        .await?;
    assert_eq!(invoice.status(), v1::InvoiceStatus::Submitted);
    Ok((order.order_id, invoice))
}

/// Attests (Z111111) and approves (Z222222) `invoice_id`.
async fn attest_and_approve(
    stack: &Stack,
    invoice_id: &str,
) -> anyhow::Result<v1::SupplierInvoice> {
    stack
        .attest(invoice_id, &stack.caseworker("Z111111"))
        .await?;
    let approved = stack
        .approve(invoice_id, &stack.approver("Z222222"))
        .await?;
    assert_eq!(approved.status(), v1::InvoiceStatus::Approved);
    assert_eq!(approved.payment_status(), v1::InvoicePaymentStatus::Pending);
    // The attestant's client retrying after the approval gets the invoice as it is now.
    let repeated = stack
        .attest(invoice_id, &stack.caseworker("Z111111"))
        .await?;
    assert_eq!(repeated.status(), v1::InvoiceStatus::Approved);
    let other = stack
        .attest(invoice_id, &stack.caseworker("Z333333"))
        .await
        .expect_err("another caseworker cannot attest a decided invoice");
    assert_eq!(other.code(), Code::FailedPrecondition);
    Ok(approved)
}

/// A RecordInvoicePaymentOutcome for attempt 1 of `invoice_id`.
fn outcome_request(
    invoice_id: &str,
    outcome: v1::record_invoice_payment_outcome_request::Outcome,
) -> v1::RecordInvoicePaymentOutcomeRequest {
    v1::RecordInvoicePaymentOutcomeRequest {
        invoice_id: invoice_id.to_owned(),
        attempt: 1,
        outcome: Some(outcome),
    }
}

/// Paid with `reference`.
fn paid(reference: &str) -> v1::record_invoice_payment_outcome_request::Outcome {
    v1::record_invoice_payment_outcome_request::Outcome::Paid(v1::InvoicePaymentPaid {
        payment_reference: reference.to_owned(),
    })
}

/// Failed with `reason`.
fn failed(reason: &str) -> v1::record_invoice_payment_outcome_request::Outcome {
    v1::record_invoice_payment_outcome_request::Outcome::Failed(v1::InvoicePaymentFailure {
        reason: reason.to_owned(),
    })
}

/// The invoice `invoice_id` of order `order_id`, as GetOrder shows it.
async fn invoice_of(
    stack: &Stack,
    order_id: &str,
    invoice_id: &str,
) -> anyhow::Result<v1::SupplierInvoice> {
    stack
        .order(order_id)
        .await?
        .invoices
        .into_iter()
        .find(|invoice| invoice.invoice_id == invoice_id)
        .ok_or_else(|| anyhow::anyhow!("no invoice {invoice_id}"))
}

/// The payment of invoice `invoice_id` (of order `order_id`) is still PENDING, and no
/// InvoicePaymentRecorded has been published.
async fn assert_no_outcome_recorded(
    stack: &Stack,
    order_id: &str,
    invoice_id: &str,
) -> anyhow::Result<()> {
    assert_eq!(
        invoice_of(stack, order_id, invoice_id)
            .await?
            .payment_status(),
        v1::InvoicePaymentStatus::Pending
    );
    assert!(
        stack
            .events::<v1::InvoicePaymentRecorded>()
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn the_payment_system_reports_a_deferred_outcome_once_and_conflicts_are_refused()
-> anyhow::Result<()> {
    let stack = Stack::start_with(
        "po-deferred",
        Some(1_000_000_000),
        &[("payment.fake_outcome", "deferred")],
    )
    .await?;
    stack
        .agreement(&agreement(SUPPLIER_A, "RA-A", 1, PRICE, 5))
        .await?;
    let payment_system = stack
        .issuer
        .token("nav-payment-system", &["pilot-payment-system"]);

    let (order_id, invoice) = submitted_invoice(&stack).await?;
    let invoice_id = invoice.invoice_id.clone();
    // Not approved yet: refused with the reason, nothing recorded.
    let refused = stack
        .record_outcome(outcome_request(&invoice_id, paid("UR-1")), &payment_system)
        .await
        .expect_err("a submitted invoice");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "INVOICE_NOT_APPROVED");

    attest_and_approve(&stack, &invoice_id).await?;
    // The payment system accepted the order and decides later: the payment stays PENDING
    // (the dispatcher runs every 100 ms; give it time to have answered).
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_no_outcome_recorded(&stack, &order_id, &invoice_id).await?;

    // Only the payment system may report.
    let denied = stack
        .record_outcome(
            outcome_request(&invoice_id, paid("UR-1")),
            &stack.approver("Z222222"),
        )
        .await
        .expect_err("wrong role");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Bad input names every broken field and records nothing.
    let bad = stack
        .record_outcome(
            v1::RecordInvoicePaymentOutcomeRequest {
                invoice_id: "not-a-uuid".to_owned(),
                attempt: 0,
                outcome: None,
            },
            &payment_system,
        )
        .await
        .expect_err("bad input");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&bad);
    fields.sort();
    assert_eq!(fields, ["attempt", "invoice_id", "outcome"]);
    for (outcome, field) in [
        (paid(""), "paid.payment_reference"),
        (paid(&"R".repeat(65)), "paid.payment_reference"),
        (failed(" "), "failed.reason"),
        (failed(&"x".repeat(501)), "failed.reason"),
    ] {
        let bad = stack
            .record_outcome(outcome_request(&invoice_id, outcome), &payment_system)
            .await
            .expect_err("bad outcome");
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&bad), [field]);
    }
    let unknown = stack
        .record_outcome(
            outcome_request(&uuid::Uuid::now_v7().to_string(), paid("UR-1")),
            &payment_system,
        )
        .await
        .expect_err("unknown invoice");
    assert_eq!(unknown.code(), Code::NotFound);
    let other_attempt = stack
        .record_outcome(
            v1::RecordInvoicePaymentOutcomeRequest {
                attempt: 2,
                ..outcome_request(&invoice_id, paid("UR-1"))
            },
            &payment_system,
        )
        .await
        .expect_err("an attempt never made");
    assert_eq!(other_attempt.code(), Code::FailedPrecondition);
    assert_eq!(reason(&other_attempt), "NOT_CURRENT_ATTEMPT");
    assert_no_outcome_recorded(&stack, &order_id, &invoice_id).await?;

    // Paid: recorded, published once, audited as the calling system.
    let recorded = stack
        .record_outcome(
            outcome_request(&invoice_id, paid("UR-2026-42")),
            &payment_system,
        )
        .await?;
    assert_eq!(recorded.payment_status(), v1::InvoicePaymentStatus::Paid);
    assert_eq!(recorded.payment_reference, "UR-2026-42");
    assert!(recorded.payment_recorded_at.is_some());
    let stored = invoice_of(&stack, &order_id, &invoice_id).await?;
    assert_eq!(stored.payment_status(), v1::InvoicePaymentStatus::Paid);
    assert_eq!(stored.payment_reference, "UR-2026-42");
    let events = stack.events::<v1::InvoicePaymentRecorded>().await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].invoice_id, invoice_id);
    assert_eq!(events[0].order_id, order_id);
    assert_eq!(events[0].status(), v1::InvoicePaymentStatus::Paid);
    assert_eq!(events[0].payment_reference, "UR-2026-42");
    assert_eq!(events[0].amount_ore, PRICE);
    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor_kind, actor FROM audit_entries \
         WHERE subject_id = $1 AND action = 'RecordInvoicePaymentOutcome'",
    )
    .bind(uuid::Uuid::parse_str(&invoice_id)?)
    .fetch_all(&stack.pool)
    .await?;
    assert_eq!(audited.len(), 1);
    assert!(
        audited[0].0.ends_with("SYSTEM_CLIENT"),
        "audited as {}",
        audited[0].0
    );
    assert_eq!(audited[0].1, "nav-payment-system");

    // The same outcome again: a no-op.
    let again = stack
        .record_outcome(
            outcome_request(&invoice_id, paid("UR-2026-42")),
            &payment_system,
        )
        .await?;
    assert_eq!(again.payment_status(), v1::InvoicePaymentStatus::Paid);
    assert_eq!(again.payment_recorded_at, recorded.payment_recorded_at);
    // Another outcome for the recorded payment: refused with the reason.
    for conflicting in [paid("UR-OTHER"), failed("konto ukjent")] {
        let conflict = stack
            .record_outcome(outcome_request(&invoice_id, conflicting), &payment_system)
            .await
            .expect_err("a conflicting outcome");
        assert_eq!(conflict.code(), Code::FailedPrecondition);
        assert_eq!(reason(&conflict), "PAYMENT_OUTCOME_CONFLICT");
    }
    assert_eq!(
        invoice_of(&stack, &order_id, &invoice_id)
            .await?
            .payment_reference,
        "UR-2026-42"
    );
    assert_eq!(stack.events::<v1::InvoicePaymentRecorded>().await?.len(), 1);

    // A failed outcome is recorded as failed (and repeating it is a no-op).
    let (second_order, second) = submitted_invoice(&stack).await?;
    attest_and_approve(&stack, &second.invoice_id).await?;
    for _ in 0..2 {
        let failed_invoice = stack
            .record_outcome(
                outcome_request(&second.invoice_id, failed("kontonummer ukjent")),
                &payment_system,
            )
            .await?;
        assert_eq!(
            failed_invoice.payment_status(),
            v1::InvoicePaymentStatus::Failed
        );
        assert!(failed_invoice.payment_reference.is_empty());
    }
    assert_eq!(
        invoice_of(&stack, &second_order, &second.invoice_id)
            .await?
            .payment_status(),
        v1::InvoicePaymentStatus::Failed
    );
    let events = stack.events::<v1::InvoicePaymentRecorded>().await?;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].invoice_id, second.invoice_id);
    assert_eq!(events[1].status(), v1::InvoicePaymentStatus::Failed);
    assert!(events[1].payment_reference.is_empty());
    let conflict = stack
        .record_outcome(
            outcome_request(&second.invoice_id, paid("UR-LATE")),
            &payment_system,
        )
        .await
        .expect_err("paid after failed");
    assert_eq!(reason(&conflict), "PAYMENT_OUTCOME_CONFLICT");
    stack.assert_money_closed(&[]).await?;
    Ok(())
}

#[test]
fn the_catalog_lists_the_roles_of_every_rpc() -> anyhow::Result<()> {
    ekb_testkit::catalog::check_entry_of::<ekb_pilot_ordering::PilotOrdering>()
}

/// A PILOT case whose agreements have not reached this service yet (the registry's events come
/// on another topic than routing's CaseRouted) is "not arrived yet", so the caller retries; once
/// an agreement for the county and area is known and has ended, the same request is refused.
#[tokio::test]
async fn an_order_before_any_agreement_arrived_is_retried_not_refused() -> anyhow::Result<()> {
    let stack = Stack::start("po-agreement-lag", None).await?;
    let case_id = stack.pilot_case().await?;
    let early = stack
        .place(&case_id, "Z111111")
        .await
        .expect_err("no agreement known yet");
    assert_eq!(early.code(), Code::Unavailable, "{early:?}");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&stack.pool)
        .await?;
    assert_eq!(orders, 0);

    let mut terms = agreement(SUPPLIER_A, "RA-LAG", 1, PRICE, 5);
    stack.agreement(&terms).await?;
    let order = stack.place(&case_id, "Z111111").await?;
    assert_eq!(order.status(), OrderStatus::FundsPending);

    terms.version = 2;
    terms.ended_on_date = "2025-01-01".to_owned();
    stack
        .publish_agreement(&v1::AgreementEnded {
            agreement: Some(terms.clone()),
            reason: "test".to_owned(),
        })
        .await?;
    stack.wait_for_agreement(&terms).await?;
    let later = stack.pilot_case().await?;
    let refused = stack
        .place(&later, "Z111111")
        .await
        .expect_err("the only agreement ended");
    assert_eq!(reason(&refused), "NO_ACTIVE_AGREEMENT");
    Ok(())
}

/// How one call went, as the NAV client making it saw it: its final answer (code, reason,
/// message), how many UNAVAILABLE answers it retried and how many of those lacked RetryInfo,
/// and how long it took with its retries.
#[derive(Debug, Clone)]
struct Attempts {
    rpc: &'static str,
    code: Code,
    reason: String,
    message: String,
    unavailable: usize,
    without_retry_info: usize,
    took: std::time::Duration,
}

/// Calls `call` as a NAV client would: an UNAVAILABLE answer is retried with the same request
/// after the delay its RetryInfo asks for (1 s without one), until a final answer comes (at
/// most 60 retries).
async fn retrying<T, F, Fut>(rpc: &'static str, mut call: F) -> (Result<T, tonic::Status>, Attempts)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    use tonic_types::StatusExt;
    let started = std::time::Instant::now();
    let (mut unavailable, mut without_retry_info) = (0, 0);
    loop {
        match call().await.map(tonic::Response::into_inner) {
            Err(status) if status.code() == Code::Unavailable && unavailable < 60 => {
                unavailable += 1;
                let delay = status
                    .get_error_details()
                    .retry_info()
                    .and_then(|info| info.retry_delay);
                if delay.is_none() {
                    without_retry_info += 1;
                }
                tokio::time::sleep(delay.unwrap_or(std::time::Duration::from_secs(1))).await;
            }
            answer => {
                let (code, why, message) = match &answer {
                    Ok(_) => (Code::Ok, String::new(), String::new()),
                    Err(status) => (status.code(), reason(status), status.message().to_owned()),
                };
                let attempts = Attempts {
                    rpc,
                    code,
                    reason: why,
                    message,
                    unavailable,
                    without_retry_info,
                    took: started.elapsed(),
                };
                return (answer, attempts);
            }
        }
    }
}

/// The final answers of `calls` that are not `allowed`, each as `rpc CODE reason: message`.
fn unexpected(calls: &[Attempts], allowed: impl Fn(&Attempts) -> bool) -> Vec<String> {
    calls
        .iter()
        .filter(|call| !allowed(call))
        .map(|call| {
            format!(
                "{} {:?} {}: {}",
                call.rpc, call.code, call.reason, call.message
            )
        })
        .collect()
}

/// What a burst's callers saw: (UNAVAILABLE answers retried, of them without RetryInfo, the
/// longest call with its retries).
fn tally(calls: &[Attempts]) -> (usize, usize, std::time::Duration) {
    (
        calls.iter().map(|call| call.unavailable).sum(),
        calls.iter().map(|call| call.without_retry_info).sum(),
        calls.iter().map(|call| call.took).max().unwrap_or_default(),
    )
}

/// Rounds of [`BackendTerminator`](ekb_testkit::faults::BackendTerminator) after the first,
/// certain, termination of a burst.
const TERMINATION_ROUNDS: u32 = 5;

/// Runs `burst` while every backend of the service's database is terminated: first, for
/// certain, mid-handling — `lock` (a `SELECT … FOR UPDATE`) holds rows the burst's
/// transactions need, and once a backend waits on them inside a statement like `waiting_on`,
/// every backend but the lock's is terminated from the lock's own connection and the lock is
/// released — then [`TERMINATION_ROUNDS`] more times, 250 ms apart. Returns what `burst`
/// returned and how many backends were terminated in all.
async fn under_terminated_backends<T>(
    stack: &Stack,
    lock: &'static str,
    waiting_on: &'static str,
    burst: impl std::future::Future<Output = T>,
) -> anyhow::Result<(T, u64)> {
    let mut blocker = stack.pool.begin().await?;
    sqlx::query(lock).execute(&mut *blocker).await?;
    let faults = async {
        eventually("a handler waiting inside its transaction", WAIT, || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND query LIKE $1",
            )
            .bind(waiting_on)
            .fetch_one(&stack.pool)
            .await?;
            Ok((waiting > 0).then_some(()))
        })
        .await?;
        let mid_handling = ekb_testkit::faults::terminate_others(&mut blocker).await?;
        blocker.commit().await?;
        let terminator = ekb_testkit::faults::BackendTerminator::start(
            stack.sut.database_url(),
            TERMINATION_ROUNDS,
            std::time::Duration::from_millis(250),
        );
        anyhow::Ok(terminator.finish().await? + mid_handling)
    };
    let (output, terminated) = tokio::join!(burst, faults);
    Ok((output, terminated?))
}

/// `sql`'s count on the service's database.
async fn count(stack: &Stack, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(&stack.pool).await?)
}

/// How often each of `ids` occurs in `found` is exactly once, and `found` holds nothing else.
fn exactly_once(what: &str, ids: &[String], found: &[String]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in found {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    for id in ids {
        let times = seen.remove(id.as_str()).unwrap_or(0);
        assert_eq!(times, 1, "{what} for {id} published {times} times");
    }
    assert!(seen.is_empty(), "{what} for unknown ids: {seen:?}");
}

/// An operator's bad day in the pilot: every backend of pilot-ordering's database is terminated
/// (a failover, a restart of PostgreSQL) six times during each of three bursts of concurrent
/// decisions — 36 PlaceOrder against 30 places of capacity, budget's 30 FundsReserved answers
/// (each delivered twice), and 30 invoices submitted, attested and approved. Callers retry
/// UNAVAILABLE as a NAV client does (same request, after RetryInfo's delay). No RPC answers
/// INTERNAL, no event is dead-lettered, every order and invoice ends where it should exactly
/// once, capacity holds, and every money event (OrderRequested, OrderPlaced, InvoiceApproved,
/// InvoicePaymentRecorded) is in the outbox exactly once and published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_decisions_with_the_database_backends_terminated_several_times()
-> anyhow::Result<()> {
    use ekb_testkit::faults::metric_in_process;
    use std::time::Instant;
    const CASES: usize = 36;
    const FIRST_CAPACITY: i32 = 10;
    const SECOND_CAPACITY: i32 = 20;
    const ORDERS: usize = (FIRST_CAPACITY + SECOND_CAPACITY) as usize;
    // The payment hand-over made right after an approval may itself lose its connection; the
    // dispatcher hands it over again after this long (60 s by default).
    let stack = Stack::start_with("po-terminated", None, &[("payment.resend_after", "2s")]).await?;
    let first = agreement(SUPPLIER_A, "RA-A", 1, PRICE, FIRST_CAPACITY);
    let second = agreement(SUPPLIER_B, "RA-B", 2, PRICE, SECOND_CAPACITY);
    stack.agreement(&first).await?;
    stack.agreement(&second).await?;
    let mut cases = Vec::new();
    for _ in 0..CASES {
        let case_id = uuid::Uuid::now_v7().to_string();
        stack.route(&case_id, v1::Flow::Pilot).await?;
        cases.push(case_id);
    }
    for case_id in &cases {
        stack.wait_for_case(case_id).await?;
    }
    // The first agreement's month row exists, so the burst's transactions queue on its lock.
    let month = ekb_domain::month_start(ekb_domain::oslo_date(time::OffsetDateTime::now_utc()));
    sqlx::query(
        "INSERT INTO agreement_months (agreement_id, month) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(uuid::Uuid::parse_str(&first.agreement_id)?)
    .bind(month)
    .execute(&stack.pool)
    .await?;

    // Burst 1: 36 orders requested at once; 30 fit.
    let caseworker = stack.caseworker("Z111111");
    let requests: Vec<v1::PlaceOrderRequest> = cases.iter().map(|id| place_request(id)).collect();
    let started = Instant::now();
    let placing = futures::future::join_all(requests.iter().map(|request| {
        let (client, token) = (stack.client.clone(), &caseworker);
        retrying("PlaceOrder", move || {
            let (mut client, request) = (client.clone(), with_bearer(request.clone(), token));
            async move { client.place_order(request).await }
        })
    }));
    let (placed, terminated) = under_terminated_backends(
        &stack,
        "SELECT 1 FROM agreement_months FOR UPDATE",
        "%agreement_months%",
        placing,
    )
    .await?;
    let burst_took = started.elapsed();
    let calls: Vec<Attempts> = placed.iter().map(|(_, call)| call.clone()).collect();
    let refusals = unexpected(&calls, |call| {
        call.code == Code::Ok
            || call.code == Code::FailedPrecondition && call.reason == "AGREEMENTS_FULL"
    });
    assert!(
        refusals.is_empty(),
        "PlaceOrder answered other than OK or AGREEMENTS_FULL: {refusals:#?}"
    );
    let mut orders: Vec<v1::Order> = Vec::new();
    let mut refused_cases: Vec<String> = Vec::new();
    let mut created_on_retry = 0;
    for ((answer, _), request) in placed.into_iter().zip(&requests) {
        match answer {
            Ok(response) => {
                created_on_retry += usize::from(!response.created);
                orders.push(response.order.context("PlaceOrder answered no order")?);
            }
            Err(_) => refused_cases.push(request.case_id.clone()),
        }
    }
    let (unavailable, without_retry_info, longest) = tally(&calls);
    // Lost: an order answered but not stored, or stored but never answered.
    let stored_ids: Vec<String> = sqlx::query_scalar("SELECT order_id::text FROM orders")
        .fetch_all(&stack.pool)
        .await?;
    let lost = stored_ids
        .iter()
        .filter(|id| !orders.iter().any(|order| order.order_id == **id))
        .count()
        + orders
            .iter()
            .filter(|order| !stored_ids.contains(&order.order_id))
            .count();
    eprintln!(
        "burst 1 (PlaceOrder): {terminated} backends terminated; {CASES} decisions \
         ({} placed, {} AGREEMENTS_FULL, {created_on_retry} found created by an earlier attempt); \
         {unavailable} UNAVAILABLE retries; {} dead letters; {lost} lost; longest answer \
         {longest:?} (with retries); total {burst_took:?}",
        orders.len(),
        refused_cases.len(),
        metric_in_process("ekb_consumer_dead_lettered_total", "")?,
    );
    assert!(terminated >= 6, "backends were terminated ({terminated})");
    assert!(
        unavailable >= 1,
        "the handlers terminated mid-handling answered UNAVAILABLE"
    );
    assert_eq!(without_retry_info, 0, "every UNAVAILABLE carries RetryInfo");
    assert_eq!(lost, 0, "every order answered is stored, and only those");
    assert_eq!(orders.len(), ORDERS, "exactly as many orders as fit");
    let mut by_agreement: HashMap<&str, usize> = HashMap::new();
    for order in &orders {
        assert_eq!(order.status(), OrderStatus::FundsPending);
        *by_agreement.entry(order.agreement_id.as_str()).or_default() += 1;
    }
    assert_eq!(
        by_agreement.get(first.agreement_id.as_str()),
        Some(&(FIRST_CAPACITY as usize)),
        "the first agreement exactly at its capacity"
    );
    assert_eq!(
        by_agreement.get(second.agreement_id.as_str()),
        Some(&(SECOND_CAPACITY as usize)),
        "the rest with the second, at its capacity"
    );
    let stored: Vec<(String, i64)> =
        sqlx::query_as("SELECT agreement_id::text, count(*) FROM orders GROUP BY 1 ORDER BY 2")
            .fetch_all(&stack.pool)
            .await?;
    assert_eq!(
        stored,
        [
            (first.agreement_id.clone(), i64::from(FIRST_CAPACITY)),
            (second.agreement_id.clone(), i64::from(SECOND_CAPACITY))
        ],
        "nothing stored besides the orders answered"
    );
    assert_eq!(
        count(&stack, "SELECT count(DISTINCT case_id) FROM orders").await?,
        ORDERS as i64,
        "one order per case"
    );
    let order_ids: Vec<String> = orders.iter().map(|order| order.order_id.clone()).collect();

    // Burst 2: budget's answers, each delivered twice (Kafka delivers at least once), applied by
    // the consumer while the backends are terminated.
    let started = Instant::now();
    let answering = async {
        let mut envelopes = Vec::new();
        for order in &orders {
            let reserved = v1::FundsReserved {
                reservation_id: uuid::Uuid::now_v7().to_string(),
                commitment: Some(v1::Commitment {
                    kind: v1::CommitmentKind::PilotOrder as i32,
                    commitment_id: order.order_id.clone(),
                }),
                case_id: order.case_id.clone(),
                county_code: COUNTY.to_owned(),
                flow: v1::Flow::Pilot as i32,
                budget_year: 2026,
                account: None,
                amount_ore: order.price_ore,
                reserved_at: None,
            };
            envelopes.push(stack.publish_budget(&order.case_id, &reserved).await?);
        }
        for (order, envelope) in orders.iter().zip(&envelopes) {
            stack
                .sut
                .feed
                .publish_envelope("budget", &order.case_id, envelope)
                .await?;
        }
        anyhow::Ok(())
    };
    // The answers are published at once; the consumer works through them while the backends
    // are terminated (polling the database meanwhile would only see the faults).
    let (published, terminated) = under_terminated_backends(
        &stack,
        "SELECT 1 FROM orders FOR UPDATE",
        "%FROM orders WHERE order_id = $1 FOR UPDATE%",
        answering,
    )
    .await?;
    published?;
    eventually(
        "every order placed",
        std::time::Duration::from_secs(60),
        || async {
            let placed: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = $1")
                .bind(codes::OrderStatus::Placed)
                .fetch_one(&stack.pool)
                .await?;
            Ok((placed == ORDERS as i64).then_some(()))
        },
    )
    .await?;
    eventually(
        "every redelivery recognised",
        std::time::Duration::from_secs(60),
        || async {
            let duplicates =
                metric_in_process("ekb_consumer_events_total", "outcome=\"duplicate\"")?;
            Ok((duplicates >= ORDERS as f64).then_some(()))
        },
    )
    .await?;
    let all_applied = started.elapsed();
    let not_placed: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE status <> $1")
        .bind(codes::OrderStatus::Placed)
        .fetch_one(&stack.pool)
        .await?;
    let consumer_retries = metric_in_process("ekb_consumer_transient_failures_total", "")?;
    let dead_lettered = metric_in_process("ekb_consumer_dead_lettered_total", "")?;
    eprintln!(
        "burst 2 (FundsReserved → consumer): {terminated} backends terminated; {ORDERS} decisions \
         ({} deliveries, half of them redeliveries); {consumer_retries} consumer retries of lost \
         connections; {dead_lettered} dead letters; {not_placed} lost; every answer applied within \
         {all_applied:?} of the first being published (total)",
        2 * ORDERS,
    );
    assert!(terminated >= 6, "backends were terminated ({terminated})");
    assert!(
        consumer_retries >= 1.0,
        "the consumer retried the transaction terminated mid-handling"
    );
    assert_eq!(
        metric_in_process("ekb_consumer_retries_total", "")?,
        0.0,
        "a lost connection is not counted as the event's failure"
    );
    assert_eq!(dead_lettered, 0.0, "a lost connection never dead-letters");

    // Between the bursts, without faults: every order accepted, started and completed.
    futures::future::try_join_all(orders.iter().map(|order| {
        let stack = &stack;
        async move {
            stack
                .answer(
                    &order.order_id,
                    &order.supplier_organisation_number,
                    v1::SupplierResponse::Accepted,
                )
                .await?;
            start_and_complete(stack, &order.order_id).await
        }
    }))
    .await?;

    // Burst 3: each order's supplier invoices it, a caseworker attests and an approver approves,
    // all orders at once.
    let approver = stack.approver("Z222222");
    let invoice_requests: Vec<(v1::SubmitInvoiceRequest, String)> = orders
        .iter()
        .map(|order| {
            (
                invoice_request(&order.order_id, PRICE),
                stack.supplier(&order.supplier_organisation_number),
            )
        })
        .collect();
    let started = Instant::now();
    let invoicing =
        futures::future::join_all(invoice_requests.iter().map(|(request, supplier)| {
            let (client, caseworker, approver) = (stack.client.clone(), &caseworker, &approver);
            async move {
                let mut calls = Vec::new();
                let (submitted, call) = retrying("SubmitInvoice", || {
                    let (mut client, request) =
                        (client.clone(), with_bearer(request.clone(), supplier));
                    async move { client.submit_invoice(request).await }
                })
                .await;
                calls.push(call);
                let Ok(submitted) = submitted else {
                    return (None, calls);
                };
                let invoice_id = submitted.invoice.unwrap_or_default().invoice_id;
                let (attested, call) = retrying("AttestInvoice", || {
                    let mut client = client.clone();
                    let request = with_bearer(
                        v1::AttestInvoiceRequest {
                            invoice_id: invoice_id.clone(),
                        },
                        caseworker,
                    );
                    async move { client.attest_invoice(request).await }
                })
                .await;
                calls.push(call);
                if attested.is_err() {
                    return (None, calls);
                }
                let (approved, call) = retrying("ApproveInvoice", || {
                    let mut client = client.clone();
                    let request = with_bearer(
                        v1::ApproveInvoiceRequest {
                            invoice_id: invoice_id.clone(),
                        },
                        approver,
                    );
                    async move { client.approve_invoice(request).await }
                })
                .await;
                calls.push(call);
                (approved.ok().and_then(|approved| approved.invoice), calls)
            }
        }));
    let (invoiced, terminated) = under_terminated_backends(
        &stack,
        "SELECT 1 FROM orders FOR UPDATE",
        "%FROM orders WHERE order_id = $1 FOR UPDATE%",
        invoicing,
    )
    .await?;
    let burst_took = started.elapsed();
    let calls: Vec<Attempts> = invoiced
        .iter()
        .flat_map(|(_, calls)| calls.iter().cloned())
        .collect();
    let approved: Vec<v1::SupplierInvoice> = invoiced
        .into_iter()
        .filter_map(|(invoice, _)| invoice)
        .collect();
    let (unavailable, without_retry_info, longest) = tally(&calls);
    // Lost: an invoice approved in an answer but not in the database, or the other way round.
    let stored_approved: Vec<String> =
        sqlx::query_scalar("SELECT invoice_id::text FROM invoices WHERE status = $1")
            .bind(codes::InvoiceStatus::Approved)
            .fetch_all(&stack.pool)
            .await?;
    let lost = stored_approved
        .iter()
        .filter(|id| !approved.iter().any(|invoice| invoice.invoice_id == **id))
        .count()
        + approved
            .iter()
            .filter(|invoice| !stored_approved.contains(&invoice.invoice_id))
            .count()
        + (ORDERS - approved.len());
    eprintln!(
        "burst 3 (SubmitInvoice, AttestInvoice, ApproveInvoice): {terminated} backends \
         terminated; {} decisions ({} invoices approved); {unavailable} UNAVAILABLE retries; \
         {} dead letters; {lost} lost; longest answer {longest:?} (with retries); total \
         {burst_took:?}",
        calls.len(),
        approved.len(),
        metric_in_process("ekb_consumer_dead_lettered_total", "")?,
    );
    let refusals = unexpected(&calls, |call| call.code == Code::Ok);
    assert!(
        refusals.is_empty(),
        "an invoice decision answered other than OK: {refusals:#?}"
    );
    assert!(terminated >= 6, "backends were terminated ({terminated})");
    assert!(
        unavailable >= 1,
        "the handlers terminated mid-handling answered UNAVAILABLE"
    );
    assert_eq!(without_retry_info, 0, "every UNAVAILABLE carries RetryInfo");
    assert_eq!(calls.len(), 3 * ORDERS);
    assert_eq!(approved.len(), ORDERS, "every invoice approved");
    assert_eq!(lost, 0, "every approval answered is stored, and only those");
    for invoice in &approved {
        assert_eq!(invoice.status(), v1::InvoiceStatus::Approved);
        assert_eq!(invoice.attested_by, "Z111111");
    }
    let invoice_ids: Vec<String> = approved
        .iter()
        .map(|invoice| invoice.invoice_id.clone())
        .collect();

    // Every payment handed over and recorded, every event published.
    eventually(
        "every payment recorded and every event published",
        std::time::Duration::from_secs(60),
        || async {
            let paid: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM invoices WHERE status = $1 AND payment_status = $2",
            )
            .bind(codes::InvoiceStatus::Approved)
            .bind(codes::InvoicePaymentStatus::Paid)
            .fetch_one(&stack.pool)
            .await?;
            let unpublished = count(
                &stack,
                "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            )
            .await?;
            Ok((paid == ORDERS as i64 && unpublished == 0).then_some(()))
        },
    )
    .await?;
    eprintln!(
        "afterwards: every payment recorded PAID and every event published {:?} after burst 3 \
         began",
        started.elapsed()
    );

    // Repeated requests change nothing: a PlaceOrder with the same request id returns the same
    // order (created = false) or the same refusal; a repeated SubmitInvoice the same invoice; a
    // repeated approval the invoice as it is. Nothing is published.
    let published = stack.outbox().await?.len();
    let mut client = stack.client.clone();
    for request in &requests {
        let again = client
            .place_order(with_bearer(request.clone(), &caseworker))
            .await;
        match orders.iter().find(|order| order.case_id == request.case_id) {
            Some(order) => {
                let again = again?.into_inner();
                assert!(!again.created, "a repeated request creates nothing");
                assert_eq!(again.order.unwrap_or_default().order_id, order.order_id);
            }
            None => {
                let refused = again.expect_err("refused before");
                assert_eq!(reason(&refused), "AGREEMENTS_FULL", "{refused:?}");
            }
        }
    }
    for ((request, supplier), invoice) in invoice_requests.iter().zip(&approved) {
        let again = client
            .submit_invoice(with_bearer(request.clone(), supplier))
            .await?
            .into_inner();
        assert!(!again.created);
        assert_eq!(
            again.invoice.unwrap_or_default().invoice_id,
            invoice.invoice_id
        );
        let approved_again = stack.approve(&invoice.invoice_id, &approver).await?;
        assert_eq!(approved_again.status(), v1::InvoiceStatus::Approved);
    }
    assert_eq!(
        stack.outbox().await?.len(),
        published,
        "nothing published again"
    );

    // Each order and invoice where it should be, exactly once.
    let statuses: Vec<(codes::OrderStatus, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM orders GROUP BY 1")
            .fetch_all(&stack.pool)
            .await?;
    assert_eq!(statuses, [(codes::OrderStatus::Completed, ORDERS as i64)]);
    assert_eq!(
        count(&stack, "SELECT count(*) FROM invoices").await?,
        ORDERS as i64,
        "one invoice per order"
    );
    let refused: Vec<uuid::Uuid> = refused_cases
        .iter()
        .map(|id| uuid::Uuid::parse_str(id))
        .collect::<Result<_, _>>()?;
    let stray: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE case_id = ANY($1)")
        .bind(&refused)
        .fetch_one(&stack.pool)
        .await?;
    assert_eq!(stray, 0, "nothing stored for a refused request");
    let audited: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT action, count(*), count(DISTINCT subject_id) FROM audit_entries \
         WHERE action IN ('PlaceOrder', 'FundsReserved', 'SubmitInvoice', 'AttestInvoice', \
           'ApproveInvoice', 'PaymentOutcome') \
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&stack.pool)
    .await?;
    let once = ORDERS as i64;
    assert_eq!(
        audited,
        [
            ("ApproveInvoice".to_owned(), once, once),
            ("AttestInvoice".to_owned(), once, once),
            ("FundsReserved".to_owned(), once, once),
            ("PaymentOutcome".to_owned(), once, once),
            ("PlaceOrder".to_owned(), once, once),
            ("SubmitInvoice".to_owned(), once, once),
        ],
        "each decision made and audited exactly once"
    );

    // Money: each event once per order or invoice.
    exactly_once(
        "OrderRequested",
        &order_ids,
        &stack.order_ids(|e: v1::OrderRequested| e.order_id).await?,
    );
    exactly_once(
        "OrderPlaced",
        &order_ids,
        &stack.order_ids(|e: v1::OrderPlaced| e.order_id).await?,
    );
    exactly_once(
        "InvoiceSubmitted",
        &invoice_ids,
        &stack
            .order_ids(|e: v1::InvoiceSubmitted| e.invoice_id)
            .await?,
    );
    exactly_once(
        "InvoiceApproved",
        &invoice_ids,
        &stack
            .order_ids(|e: v1::InvoiceApproved| e.invoice_id)
            .await?,
    );
    exactly_once(
        "InvoicePaymentRecorded",
        &invoice_ids,
        &stack
            .order_ids(|e: v1::InvoicePaymentRecorded| e.invoice_id)
            .await?,
    );
    for approved in stack.events::<v1::InvoiceApproved>().await? {
        assert_eq!(
            (approved.amount_ore, approved.order_amount_ore),
            (PRICE, PRICE)
        );
    }
    stack.assert_money_closed(&[]).await?;

    // No dead letters, however often the connections were lost.
    assert_eq!(
        metric_in_process("ekb_consumer_dead_lettered_total", "")?,
        0.0
    );
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM inbox WHERE outcome = 'dead_lettered'"
        )
        .await?,
        0
    );
    Ok(())
}

#[tokio::test]
async fn an_auditor_reads_the_case_s_trail_and_the_read_is_itself_recorded() -> anyhow::Result<()> {
    let stack = Stack::start("po-audit", Some(1_000_000_000)).await?;
    stack
        .agreement(&agreement(SUPPLIER_A, "RA-A", 1, PRICE, 5))
        .await?;
    let case_id = stack.pilot_case().await?;
    let order = stack.place(&case_id, "Z111111").await?;
    stack
        .wait_status(&order.order_id, OrderStatus::Placed)
        .await?;
    stack
        .answer(&order.order_id, SUPPLIER_A, v1::SupplierResponse::Accepted)
        .await?;
    let trail_of_case = |token: &str| {
        with_bearer(
            v1::ListAuditEntriesRequest {
                case_id: case_id.clone(),
                ..Default::default()
            },
            token,
        )
    };

    let trail = stack
        .client
        .clone()
        .list_audit_entries(trail_of_case(&stack.auditor("Z999999")))
        .await?
        .into_inner()
        .entries;
    let actions: Vec<&str> = trail.iter().map(|entry| entry.action.as_str()).collect();
    for action in ["PlaceOrder", "FundsReserved", "RecordSupplierResponse"] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }

    // The auditor's read is on the trail, for control.
    let again = stack
        .client
        .clone()
        .list_audit_entries(trail_of_case(&stack.auditor("Z999999")))
        .await?
        .into_inner()
        .entries;
    let read = again
        .iter()
        .find(|entry| entry.action == "ListAuditEntries")
        .context("the auditor's read is recorded")?;
    assert_eq!(read.purpose(), v1::AccessPurpose::Control);
    assert_eq!(read.kind(), v1::AuditEntryKind::Read);

    let denied = stack
        .client
        .clone()
        .list_audit_entries(trail_of_case(&stack.caseworker("Z111111")))
        .await
        .expect_err("only auditors");
    assert_eq!(denied.code(), Code::PermissionDenied);
    Ok(())
}
