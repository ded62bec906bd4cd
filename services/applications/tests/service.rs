//! Service tests of applications: the real service (in-process on port 0, authentication on,
//! tokens from a test issuer), a fresh PostgreSQL database and the broker process. Routing's,
//! budget's and refunds' events arrive on their real topics (testkit's `EventFeed`; budget's
//! answers from testkit's `ScriptedBudget`); what applications publishes is read back from its
//! own topic. The jobs run with a moved clock against the service's database.

mod support;

#[path = "service/migrations.rs"]
mod migrations;

use ekb_proto::convert::gross_to_wire;
use std::time::Duration;

use ekb_applications::{Applications, jobs};
use ekb_platform::messaging::EventSubject;
use ekb_proto::v1::{self, ApplicationStatus as Status, GrantCancellationReason, GrantStatus};
use ekb_testkit::{events::ScriptedBudget, services::with_bearer};
use support::{
    EMPLOYER, OTHER_ORG, Stack, application_of, date_in, employee, envelopes_of, of_type, read,
    reason, refusal, submission, violated_fields,
};
use tonic::Code;

const QUIET: Duration = Duration::from_millis(500);

fn scripted_budget(
    stack: &Stack,
    available_ore: i64,
) -> impl std::future::Future<Output = anyhow::Result<ScriptedBudget>> + '_ {
    ScriptedBudget::start(
        stack.stack.broker.bootstrap_servers(),
        &stack.stack.topic_prefix,
        available_ore,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_goes_to_granted_and_grant_approved_carries_what_refunds_needs()
-> anyhow::Result<()> {
    let mut s = Stack::start("happy").await?;
    let _budget = scripted_budget(&s, 10_000_000).await?;
    let topic = s.topic()?;
    let case_id = s.regular_case().await?;

    let submitted = s.submit(&case_id).await?;
    assert_eq!(submitted.status(), Status::Submitted);
    assert_eq!(submitted.county_code, "34");
    assert_eq!(submitted.employee_pseudonym.len(), 64, "hex HMAC-SHA256");
    let id = submitted.application_id.clone();

    // A second application for the case is refused while this one is live.
    let employer = s.employer(&[EMPLOYER]);
    let refused = s
        .client
        .submit_application(with_bearer(submission(&case_id), &employer))
        .await
        .expect_err("a second live application");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused), "APPLICATION_EXISTS_FOR_CASE");

    let version = s.recommend_grant(&id, 1_800_000).await?;
    assert_eq!(version, 1);
    let decided = s.confirm(&id, version).await?;
    assert!(matches!(
        decided.status(),
        Status::GrantPendingFunds | Status::Granted
    ));
    let granted = s.wait_for_status(&id, Status::Granted).await?;
    let grant = granted.grant.clone().unwrap_or_default();
    assert_eq!(grant.status(), GrantStatus::Active);
    assert_eq!(grant.granted_amount, Some(gross_to_wire(1_800_000)));
    let rate = grant.applied_max_rate.clone().unwrap_or_default();
    assert_eq!(rate.rate, Some(gross_to_wire(2_400_000)));
    assert_eq!(rate.valid_from_date, "2024-01-01");
    assert!(!rate.source.is_empty());
    assert!(!grant.reservation_id.is_empty());
    assert_eq!(grant.funds_requests.len(), 1);
    assert_eq!(
        grant.funds_requests[0].outcome(),
        v1::FundsRequestOutcome::Reserved
    );
    let decision = granted.decision.clone().unwrap_or_default();
    assert_eq!(decision.recommended_by, "cw-1");
    assert_eq!(decision.decided_by, "dec-1");
    assert_eq!(decision.conditions.len(), 5);

    let events = read(&topic, 3, QUIET).await?;
    let types: Vec<&str> = events.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types,
        [
            "ekspertbistand.v1.ApplicationSubmitted",
            "ekspertbistand.v1.GrantRequested",
            "ekspertbistand.v1.GrantApproved"
        ]
    );
    let requested = of_type::<v1::GrantRequested>(&events);
    assert_eq!(requested[0].grant_id, grant.grant_id);
    assert_eq!(requested[0].amount_ore, 1_800_000);
    assert_eq!(
        requested[0].account.map(|a| (a.chapter, a.post)),
        Some((2650, 76))
    );
    let approved = of_type::<v1::GrantApproved>(&events);
    let approved = &approved[0];
    assert_eq!(approved.grant_id, grant.grant_id);
    assert_eq!(approved.granted_amount_ore, 1_800_000);
    assert_eq!(approved.employee_pseudonym, granted.employee_pseudonym);
    assert_eq!(approved.max_rate_ore, 2_400_000);
    assert_eq!(approved.refund_deadline_date, grant.refund_deadline_date);
    assert_eq!(approved.planned_start_date, date_in(14));
    assert_eq!(
        approved
            .expert
            .as_ref()
            .map(|e| e.expert_organisation_number.as_str()),
        Some(OTHER_ORG)
    );
    // The deadline rule: the later of planned start and grant date, plus 6 months.
    assert!(approved.refund_deadline_date > approved.planned_start_date);

    // No fødselsnummer anywhere on the topic, nor in clear in the database.
    let fnr = employee();
    for event in &events {
        let text = String::from_utf8_lossy(&event.raw);
        assert!(
            !text.contains(&fnr),
            "a fødselsnummer in {}",
            event.event_type()
        );
        assert!(
            !text.contains("Kari Nordmann"),
            "a name in {}",
            event.event_type()
        );
    }
    let sealed: String = sqlx::query_scalar("SELECT fodselsnummer_sealed FROM applications")
        .fetch_one(&s.pool)
        .await?;
    assert!(sealed.starts_with("v1:") && !sealed.contains(&fnr));
    let documents: Vec<Vec<u8>> = sqlx::query_scalar("SELECT document FROM applications")
        .fetch_all(&s.pool)
        .await?;
    assert!(
        documents
            .iter()
            .all(|d| !String::from_utf8_lossy(d).contains(&fnr))
    );

    // The employer reads its own application (recorded as self-service).
    let own = s
        .get_as(&employer, &id, v1::AccessPurpose::Unspecified)
        .await?;
    assert_eq!(own.status(), Status::Granted);

    // The audit trail: the submission, every change and decision, every read.
    let auditor = s.nav("aud-1", &["application-auditor"]);
    let trail = s
        .client
        .list_audit_entries(with_bearer(
            v1::ListAuditEntriesRequest {
                case_id: case_id.clone(),
                page_size: 0,
                page_token: String::new(),
            },
            &auditor,
        ))
        .await?
        .into_inner()
        .entries;
    let actions: Vec<(&str, i32, &str)> = trail
        .iter()
        .map(|e| (e.action.as_str(), e.kind, e.actor.as_str()))
        .collect();
    assert!(actions.contains(&(
        "SubmitApplication",
        v1::AuditEntryKind::Change as i32,
        "portal-user-1"
    )));
    assert!(actions.contains(&(
        "DecideApplication",
        v1::AuditEntryKind::Decision as i32,
        "dec-1"
    )));
    assert!(actions.contains(&("FundsReserved", v1::AuditEntryKind::Change as i32, "")));
    assert!(actions.contains(&(
        "GetApplication",
        v1::AuditEntryKind::Read as i32,
        "reader-1"
    )));
    let self_service = trail
        .iter()
        .find(|e| e.action == "GetApplication" && e.actor == "portal-user-1")
        .map(|e| (e.purpose, e.organisation_number.clone()));
    assert_eq!(
        self_service,
        Some((
            v1::AccessPurpose::EmployerSelfService as i32,
            EMPLOYER.to_owned()
        ))
    );

    // The work list and the employer's list show it without personal data.
    let caseworker = s.nav("cw-2", &["application-caseworker"]);
    let list = s
        .client
        .list_applications(with_bearer(
            v1::ListApplicationsRequest {
                statuses: vec![Status::Granted as i32],
                county_codes: vec!["34".to_owned()],
                page_size: 0,
                page_token: String::new(),
            },
            &caseworker,
        ))
        .await?
        .into_inner();
    assert_eq!(list.applications.len(), 1);
    assert_eq!(list.applications[0].grant_status(), GrantStatus::Active);
    let mine = s
        .client
        .list_applications_for_employer(with_bearer(
            v1::ListApplicationsForEmployerRequest {
                employer_organisation_number: EMPLOYER.to_owned(),
                page_size: 0,
                page_token: String::new(),
            },
            &employer,
        ))
        .await?
        .into_inner();
    assert_eq!(mine.applications.len(), 1);
    s.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_repeated_with_its_request_id_returns_the_first_and_other_content_is_refused()
-> anyhow::Result<()> {
    let s = Stack::start("idempotent").await?;
    let mut client = s.client.clone();
    let case_id = s.regular_case().await?;
    let employer = s.employer(&[EMPLOYER]);
    let request = submission(&case_id);
    let first = client
        .submit_application(with_bearer(request.clone(), &employer))
        .await?
        .into_inner();
    assert!(first.created);
    let again = client
        .submit_application(with_bearer(request.clone(), &employer))
        .await?
        .into_inner();
    assert!(!again.created);
    assert_eq!(
        again.application.map(|a| a.application_id),
        first.application.map(|a| a.application_id)
    );
    let mut changed = request.clone();
    changed.employee_name = "Someone Else".to_owned();
    let status = client
        .submit_application(with_bearer(changed, &employer))
        .await
        .expect_err("other content under the same id");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(s.count("SELECT count(*) FROM applications").await?, 1);
    assert_eq!(
        s.count("SELECT count(*) FROM outbox WHERE event_type LIKE '%ApplicationSubmitted'")
            .await?,
        1
    );
    s.stack.stop().await
}

/// A portal retrying after a timeout, many copies at once: every copy of one request gets the
/// first application (one `created`), and different requests racing for one case get one
/// application and, for the others, the contract's FAILED_PRECONDITION APPLICATION_EXISTS_FOR_CASE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_copies_get_the_first_application_and_racing_submissions_the_contract_s_refusal()
-> anyhow::Result<()> {
    use ekb_testkit::concurrency::{
        assert_copies_got_the_first, assert_one_won_and_the_rest_were_refused, at_once,
    };
    const COPIES: usize = 8;
    let s = Stack::start("idempotent-race").await?;
    let employer = s.employer(&[EMPLOYER]);
    let submit = |request: v1::SubmitApplicationRequest| {
        let mut client = s.client.clone();
        let request = with_bearer(request, &employer);
        async move { client.submit_application(request).await }
    };
    let created = |answer: &v1::SubmitApplicationResponse| answer.created;
    for _ in 0..3 {
        let request = submission(&s.regular_case().await?);
        let copies = at_once((0..COPIES).map(|_| submit(request.clone()))).await?;
        assert_copies_got_the_first(&copies, created, |answer| {
            answer
                .application
                .clone()
                .unwrap_or_default()
                .application_id
        })?;
        let case_id = s.regular_case().await?;
        let racing = at_once((0..COPIES).map(|_| submit(submission(&case_id)))).await?;
        assert_one_won_and_the_rest_were_refused(&racing, created, "APPLICATION_EXISTS_FOR_CASE")?;
    }
    assert_eq!(s.count("SELECT count(*) FROM applications").await?, 6);
    assert_eq!(
        s.count("SELECT count(*) FROM outbox WHERE event_type LIKE '%ApplicationSubmitted'")
            .await?,
        6
    );
    s.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lack_of_funds_is_not_final_until_a_decider_says_so() -> anyhow::Result<()> {
    let mut s = Stack::start("lack-of-funds").await?;
    let _budget = scripted_budget(&s, 1_000_000).await?;
    let topic = s.topic()?;
    let (case_id, confirmed) = s.confirmed_grant(1_500_000).await?;
    let id = confirmed.application_id;
    let denied = s.wait_for_status(&id, Status::FundsDenied).await?;
    let rejection = denied.rejection.clone().unwrap_or_default();
    assert_eq!(
        rejection.reason(),
        v1::ApplicationRejectionReason::FundsDenied
    );
    assert_eq!(
        rejection.funds_denied_reason(),
        v1::FundsDeniedReason::InsufficientFunds
    );
    assert!(!rejection.is_final);
    let first_grant = denied.grant.clone().unwrap_or_default().grant_id;

    // The employer sees the same: rejected for lack of funds, not final.
    let employer = s.employer(&[EMPLOYER]);
    let seen = s
        .get_as(&employer, &id, v1::AccessPurpose::Unspecified)
        .await?;
    assert_eq!(seen.status(), Status::FundsDenied);

    // Asking again mints a new grant id; budget denies again.
    let caseworker = s.nav("cw-1", &["application-caseworker"]);
    let request = v1::RequestFundsAgainRequest {
        application_id: id.clone(),
    };
    let again = application_of(
        s.client
            .request_funds_again(with_bearer(request, &caseworker))
            .await,
    )?;
    let second_grant = again.grant.clone().unwrap_or_default().grant_id;
    assert_ne!(first_grant, second_grant);
    let denied = s.wait_for_status(&id, Status::FundsDenied).await?;
    assert_eq!(denied.grant.unwrap_or_default().funds_requests.len(), 2);

    // A caseworker may not make it final; a decider may.
    let refused = s
        .reject_for_lack_of_funds_as(&caseworker, &id, "")
        .await
        .expect_err("not a decider");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let decider = s.nav("dec-1", &["application-decider"]);
    let rejected = s
        .reject_for_lack_of_funds_as(&decider, &id, "No funds left this year.")
        .await?;
    assert_eq!(rejected.status(), Status::Rejected);
    let rejection = rejected.rejection.unwrap_or_default();
    assert!(rejection.is_final);
    assert_eq!(rejection.rejected_by, "dec-1");

    let events = read(&topic, 6, QUIET).await?;
    assert_eq!(of_type::<v1::GrantRequested>(&events).len(), 2);
    let denials = of_type::<v1::GrantFundsDenied>(&events);
    assert_eq!(denials.len(), 2);
    assert_eq!(denials[1].denials, 2);
    let final_rejection = of_type::<v1::ApplicationRejected>(&events);
    assert_eq!(final_rejection.len(), 1);
    assert_eq!(final_rejection[0].grant_id, second_grant);
    assert_eq!(
        final_rejection[0].reason(),
        v1::ApplicationRejectionReason::FundsDenied
    );

    // The case has no live application now: a new one may be submitted.
    let next = s.submit(&case_id).await?;
    assert_eq!(next.status(), Status::Submitted);
    s.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawal_publishes_application_withdrawn_with_the_pending_grant() -> anyhow::Result<()> {
    let mut s = Stack::start("withdrawal").await?;
    let topic = s.topic()?;
    let (_, pending) = s.confirmed_grant(1_000_000).await?;
    let id = pending.application_id.clone();
    assert_eq!(pending.status(), Status::GrantPendingFunds);
    let grant_id = pending.grant.unwrap_or_default().grant_id;

    // Another organisation's representative may not withdraw it.
    let stranger = s.employer(&[OTHER_ORG]);
    let refused = s
        .withdraw_as(&stranger, &id, "")
        .await
        .expect_err("not represented");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused), "ORGANISATION_NOT_REPRESENTED");

    let employer = s.employer(&[EMPLOYER]);
    let withdrawn = s
        .withdraw_as(&employer, &id, "Not needed any more.")
        .await?;
    assert_eq!(withdrawn.status(), Status::Withdrawn);
    let request = withdrawn.grant.unwrap_or_default().funds_requests;
    assert_eq!(request[0].outcome(), v1::FundsRequestOutcome::Withdrawn);
    // A repeat is idempotent; refused transitions name their reason.
    s.withdraw_as(&employer, &id, "Not needed any more.")
        .await?;
    let caseworker = s.nav("cw-1", &["application-caseworker"]);
    let refused = s.start_review_as(&caseworker, &id).await;
    assert_eq!(refusal(refused, "withdrawn"), "NOT_SUBMITTED");
    let refused = s.withdraw_as(&employer, &id, "Other reason").await;
    assert_eq!(refusal(refused, "twice"), "ALREADY_WITHDRAWN");

    let events = read(&topic, 3, QUIET).await?;
    let withdrawals = of_type::<v1::ApplicationWithdrawn>(&events);
    assert_eq!(withdrawals.len(), 1, "one ApplicationWithdrawn");
    assert_eq!(withdrawals[0].grant_id, grant_id);
    assert_eq!(withdrawals[0].previous_status(), Status::GrantPendingFunds);
    // The withdrawn application no longer waits for budget: nothing is re-sent.
    let resent = jobs::resend_due(&s.db(), &policy()?, far_future(1)).await?;
    assert_eq!(resent, 0);
    s.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_refuses_the_recommender_as_decider_and_transitions_name_their_reason()
-> anyhow::Result<()> {
    let mut s = Stack::start("four-eyes").await?;
    let case_id = s.regular_case().await?;
    let id = s.submit(&case_id).await?.application_id;
    let both = s.nav(
        "cw-both",
        &["application-caseworker", "application-decider"],
    );
    let caseworker = s.nav("cw-1", &["application-caseworker"]);
    // Not under review yet.
    let refused = s.recommend_as(&both, &id, 1_000_000, "").await;
    assert_eq!(refusal(refused, "submitted"), "NOT_UNDER_REVIEW");
    s.start_review_as(&both, &id).await?;
    let refused = s.recommend_as(&both, &id, 1_000_000, "").await;
    assert_eq!(
        refusal(refused, "nothing assessed"),
        "CONDITIONS_NOT_ASSESSED"
    );
    for condition in 1..=5 {
        s.assess_as(&both, &id, condition, condition != 3, "assessed")
            .await?;
    }
    let refused = s.recommend_as(&both, &id, 1_000_000, "").await;
    assert_eq!(
        refusal(refused, "a condition is not met"),
        "CONDITION_NOT_MET"
    );
    // A "no" without a note is bad input; a "yes" repairs the condition.
    let status = s
        .assess_as(&both, &id, 3, false, "")
        .await
        .expect_err("no note");
    assert_eq!(violated_fields(&status), ["note"]);
    s.assess_as(&both, &id, 3, true, "").await?;
    // Above the estimated cost (20 000 kr) and above the max rate: bad input.
    let status = s
        .recommend_as(&both, &id, 2_500_000, "")
        .await
        .expect_err("too much");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(violated_fields(&status).contains(&"grant.amount.ore".to_owned()));
    s.recommend_as(&both, &id, 1_000_000, "").await?;
    // The assessment is locked while recommended.
    let refused = s.assess_as(&caseworker, &id, 1, true, "").await;
    assert_eq!(refusal(refused, "locked"), "ASSESSMENT_LOCKED");

    // The recommender may not decide, though they hold the role.
    use v1::DeciderVerdict::{Confirm, Return};
    let refused = s
        .decide_as(&both, &id, 1, Confirm, "")
        .await
        .expect_err("own recommendation");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused), "DECIDER_IS_RECOMMENDER");

    // Another decider returns it; a RETURN needs a note.
    let decider = s.nav("dec-1", &["application-decider"]);
    let status = s
        .decide_as(&decider, &id, 1, Return, "")
        .await
        .expect_err("no note");
    assert_eq!(violated_fields(&status), ["note"]);
    let returned = s
        .decide_as(&decider, &id, 1, Return, "Check the hours.")
        .await?;
    assert_eq!(returned.status(), Status::UnderReview);
    assert_eq!(returned.recommendations[0].returned_by, "dec-1");

    // cw-1 recommends version 2; the first recommender still may not decide it.
    s.recommend_as(&caseworker, &id, 900_000, "").await?;
    let refused = s.decide_as(&both, &id, 2, Confirm, "").await;
    assert_eq!(
        refusal(refused, "recommended version 1"),
        "DECIDER_IS_RECOMMENDER"
    );
    let refused = s.decide_as(&decider, &id, 1, Confirm, "").await;
    assert_eq!(refusal(refused, "stale version"), "RECOMMENDATION_CHANGED");
    let decided = s.decide_as(&decider, &id, 2, Confirm, "").await?;
    assert_eq!(decided.status(), Status::GrantPendingFunds);
    let decision = decided.decision.unwrap_or_default();
    assert_eq!(
        (
            decision.recommended_by.as_str(),
            decision.decided_by.as_str()
        ),
        ("cw-1", "dec-1")
    );
    // Deciding again is idempotent and publishes nothing more; another verdict is refused.
    s.decide_as(&decider, &id, 2, Confirm, "").await?;
    assert_eq!(
        s.count("SELECT count(*) FROM outbox WHERE event_type LIKE '%GrantRequested'")
            .await?,
        1
    );
    let refused = s.decide_as(&decider, &id, 2, Return, "again").await;
    assert_eq!(refusal(refused, "decided"), "NOT_RECOMMENDED");
    s.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field_and_stores_and_publishes_nothing() -> anyhow::Result<()> {
    let s = Stack::start("bad-input").await?;
    let mut client = s.client.clone();
    let case_id = s.regular_case().await?;
    let employer = s.employer(&[EMPLOYER]);
    type Change = fn(&mut v1::SubmitApplicationRequest);
    fn details(request: &mut v1::SubmitApplicationRequest) -> &mut v1::ApplicationDetails {
        request.details.get_or_insert_with(Default::default)
    }
    let corpus: Vec<(&str, Change)> = vec![
        ("request_id", |r| r.request_id = "not-a-uuid".into()),
        ("case_id", |r| r.case_id = "x".into()),
        ("employee_fodselsnummer", |r| {
            let mut digits = employee().into_bytes();
            digits[10] = b'0' + (digits[10] - b'0' + 1) % 10;
            r.employee_fodselsnummer = String::from_utf8(digits).unwrap_or_default();
        }),
        ("employee_fodselsnummer", |r| {
            r.employee_fodselsnummer = "1503854930".into()
        }),
        // A synthetic test number (month + 80) where configuration refuses them.
        ("employee_fodselsnummer", |r| {
            r.employee_fodselsnummer = support::fodselsnummer("158385", 493)
        }),
        ("employee_name", |r| r.employee_name = " ".into()),
        ("employee_name", |r| r.employee_name = "x".repeat(201)),
        ("details", |r| r.details = None),
        ("details.employer_organisation_number", |r| {
            details(r).employer_organisation_number = "974760674".into()
        }),
        ("details.contact_person", |r| {
            details(r).contact_person = None
        }),
        ("details.contact_person.email", |r| {
            if let Some(c) = details(r).contact_person.as_mut() {
                c.email = "no-at-sign".into();
            }
        }),
        ("details.contact_person.phone_number", |r| {
            if let Some(c) = details(r).contact_person.as_mut() {
                c.phone_number = "call me".into();
            }
        }),
        ("details.competence_area", |r| {
            details(r).competence_area = 0
        }),
        ("details.expert", |r| details(r).expert = None),
        ("details.expert.expert_organisation_number", |r| {
            if let Some(e) = details(r).expert.as_mut() {
                e.expert_organisation_number = EMPLOYER.into();
            }
        }),
        ("details.expert.employer_attests_expert_not_employed", |r| {
            if let Some(e) = details(r).expert.as_mut() {
                e.employer_attests_expert_not_employed = false;
            }
        }),
        ("details.expert.profession", |r| {
            if let Some(e) = details(r).expert.as_mut() {
                e.profession = 0;
            }
        }),
        ("details.expert.authorisation", |r| {
            if let Some(e) = details(r).expert.as_mut() {
                e.authorisation = None;
            }
        }),
        ("details.problem_description", |r| {
            details(r).problem_description = "x".repeat(4001)
        }),
        // A fødselsnummer pasted into free text.
        ("details.problem_description", |r| {
            details(r).problem_description = format!("Employee {} is ill", employee())
        }),
        ("details.accommodation_tried", |r| {
            details(r).accommodation_tried = String::new()
        }),
        ("details.planned_start_date", |r| {
            details(r).planned_start_date = date_in(-1)
        }),
        ("details.planned_start_date", |r| {
            details(r).planned_start_date = "2026-02-30".into()
        }),
        ("details.estimated_hours", |r| {
            details(r).estimated_hours = 0
        }),
        ("details.estimated_hours", |r| {
            details(r).estimated_hours = 1001
        }),
        ("details.confirms_parties_agree", |r| {
            details(r).confirms_parties_agree = false
        }),
        ("details.confirms_not_treatment_or_excluded_scheme", |r| {
            details(r).confirms_not_treatment_or_excluded_scheme = false
        }),
        ("details.estimated_cost", |r| {
            details(r).estimated_cost = None
        }),
        ("details.estimated_cost.ore", |r| {
            details(r).estimated_cost = Some(gross_to_wire(0))
        }),
        ("details.estimated_cost.ore", |r| {
            details(r).estimated_cost = Some(gross_to_wire(i64::MAX))
        }),
        ("details.estimated_cost.vat", |r| {
            details(r).estimated_cost = Some(v1::Amount {
                ore: 100,
                vat: v1::VatTreatment::Excluded as i32,
            })
        }),
        ("details.nav_contact_name", |r| {
            details(r).nav_contact_name = "x".repeat(201)
        }),
    ];
    let fnr = employee();
    for (field, change) in corpus {
        let mut request = submission(&case_id);
        change(&mut request);
        let status = client
            .submit_application(with_bearer(request, &employer))
            .await
            .expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(
            violated_fields(&status).iter().any(|f| f == field),
            "{field}: {:?}",
            violated_fields(&status)
        );
        assert!(
            !status.message().contains(&fnr),
            "{field}: the number is repeated"
        );
    }
    // Bad input on the other RPCs.
    let caseworker = s.nav("cw-1", &["application-caseworker"]);
    let unknown = uuid::Uuid::now_v7().to_string();
    let status = s
        .get_as(&caseworker, &unknown, v1::AccessPurpose::System)
        .await
        .expect_err("service-only purpose");
    assert_eq!(violated_fields(&status), ["purpose"]);
    let status = client
        .list_applications(with_bearer(
            v1::ListApplicationsRequest {
                statuses: vec![0],
                county_codes: vec!["3".to_owned()],
                page_size: 501,
                page_token: "bogus".to_owned(),
            },
            &caseworker,
        ))
        .await
        .expect_err("bad filters");
    assert_eq!(
        violated_fields(&status),
        ["statuses[0]", "county_codes[0]", "page_size", "page_token"]
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    let status = s
        .cancel_grant_as(&caseworker, &unknown, GrantCancellationReason::Other, "")
        .await
        .expect_err("OTHER without explanation");
    assert_eq!(violated_fields(&status), ["explanation"]);
    let unknown = uuid::Uuid::now_v7().to_string();
    let status = s
        .get_as(&caseworker, &unknown, v1::AccessPurpose::CaseProcessing)
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);

    assert_eq!(s.count("SELECT count(*) FROM applications").await?, 0);
    assert_eq!(s.count("SELECT count(*) FROM outbox").await?, 0);
    s.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_regular_cases_that_arrived_take_applications_for_represented_employers()
-> anyhow::Result<()> {
    let s = Stack::start("cases").await?;
    let mut client = s.client.clone();
    let employer = s.employer(&[EMPLOYER]);

    // Not arrived yet: UNAVAILABLE, retry.
    let unknown = uuid::Uuid::now_v7().to_string();
    let status = client
        .submit_application(with_bearer(submission(&unknown), &employer))
        .await
        .expect_err("unknown case");
    assert_eq!(status.code(), Code::Unavailable);

    // Content that can never be applied is dead-lettered; the consumer goes on.
    s.stack
        .feed
        .publish(
            "routing",
            &EventSubject::case("not-a-uuid"),
            &v1::CaseRouted {
                case_id: "not-a-uuid".to_owned(),
                flow: v1::Flow::Regular as i32,
                ..Default::default()
            },
        )
        .await?;
    s.stack
        .feed
        .publish_bytes(
            "routing",
            "k",
            "ekspertbistand.v1.CaseRouted",
            b"\xff\xff\xff",
        )
        .await?;

    let dead_letters = ekb_testkit::broker::topic_reader(
        s.stack.broker.bootstrap_servers(),
        &ekb_platform::messaging::dead_letter_topic_for(&s.stack.topic_prefix, "applications"),
    )?;
    let dead = read(&dead_letters, 2, QUIET).await?;
    assert_eq!(dead.len(), 2, "both dead-lettered, nothing else");

    // Another organisation's representative.
    let case_id = s.regular_case().await?;
    let stranger = s.employer(&[OTHER_ORG]);
    let status = client
        .submit_application(with_bearer(submission(&case_id), &stranger))
        .await
        .expect_err("not represented");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "ORGANISATION_NOT_REPRESENTED");
    let status = client
        .list_applications_for_employer(with_bearer(
            v1::ListApplicationsForEmployerRequest {
                employer_organisation_number: EMPLOYER.to_owned(),
                page_size: 0,
                page_token: String::new(),
            },
            &stranger,
        ))
        .await
        .expect_err("not represented");
    assert_eq!(reason(&status), "ORGANISATION_NOT_REPRESENTED");
    let created = client
        .submit_application(with_bearer(submission(&case_id), &employer))
        .await?
        .into_inner()
        .application
        .unwrap_or_default();
    let created = &created.application_id;
    let status = s
        .get_as(&stranger, created, v1::AccessPurpose::Unspecified)
        .await;
    assert_eq!(
        refusal(status, "not represented"),
        "ORGANISATION_NOT_REPRESENTED"
    );
    let status = s
        .cancel_grant_as(
            &stranger,
            created,
            GrantCancellationReason::EmployerRequest,
            "",
        )
        .await;
    assert_eq!(
        refusal(status, "not represented"),
        "ORGANISATION_NOT_REPRESENTED"
    );

    // A PILOT case is refused until CaseFlowChanged sends it to the regular flow.
    let pilot = s.open_case(v1::Flow::Pilot).await?;
    s.wait_for_case(&pilot).await?;
    let status = client
        .submit_application(with_bearer(submission(&pilot), &employer))
        .await
        .expect_err("pilot");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "CASE_IN_PILOT_FLOW");
    s.stack
        .feed
        .publish(
            "routing",
            &EventSubject::case(pilot.clone()),
            &v1::CaseFlowChanged {
                case_id: pilot.clone(),
                from_flow: v1::Flow::Pilot as i32,
                to_flow: v1::Flow::Regular as i32,
                sequence: 1,
                county_code: "34".to_owned(),
                employer_organisation_number: EMPLOYER.to_owned(),
                opened_at: Some(prost_types::Timestamp {
                    seconds: 1_793_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            },
        )
        .await?;
    let deadline = std::time::Instant::now() + support::WAIT;
    loop {
        match client
            .submit_application(with_bearer(submission(&pilot), &employer))
            .await
        {
            Ok(response) => {
                assert!(response.into_inner().created);
                break;
            }
            Err(status) if reason(&status) == "CASE_IN_PILOT_FLOW" => {
                anyhow::ensure!(std::time::Instant::now() < deadline, "flow never changed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => anyhow::bail!("unexpected {status:?}"),
        }
    }
    s.stack.stop().await
}

fn policy() -> anyhow::Result<ekb_applications::config::Policy> {
    let loader = ekb_platform::service::config_loader::<Applications>()
        .with_override("auth.mode", "disabled")
        .with_override("applications.funds_request_resend_after", "15 minutes")
        .with_override("applications.funds_request_resend_max_interval", "1 hour");
    Ok(ekb_platform::service::load_config::<Applications>(&loader)?
        .settings
        .policy()?)
}

fn far_future(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_funds_request_is_resent_identically_with_a_growing_wait()
-> anyhow::Result<()> {
    let mut s = Stack::start("resend").await?;
    let topic = s.topic()?;
    let (_, confirmed) = s.confirmed_grant(1_000_000).await?;
    let id = confirmed.application_id;
    let policy = policy()?;
    let db = s.db();
    let now = time::OffsetDateTime::now_utc();
    let minutes = |m: i64| now + time::Duration::minutes(m);
    assert_eq!(
        jobs::resend_due(&db, &policy, minutes(10)).await?,
        0,
        "too early"
    );
    assert_eq!(jobs::resend_due(&db, &policy, minutes(16)).await?, 1);
    assert_eq!(
        jobs::resend_due(&db, &policy, minutes(40)).await?,
        0,
        "wait doubled to 30 min"
    );
    assert_eq!(jobs::resend_due(&db, &policy, minutes(47)).await?, 1);
    let application = s.get(&id).await?;
    let request = &application.grant.unwrap_or_default().funds_requests[0];
    assert_eq!(request.times_sent, 3);
    let events = read(&topic, 4, QUIET).await?;
    let sent = envelopes_of::<v1::GrantRequested>(&events);
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].payload, sent[1].payload, "identical content");
    assert_eq!(sent[1].payload, sent[2].payload, "identical content");
    assert_ne!(sent[0].event_id, sent[1].event_id, "a new event id");
    s.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_erased_after_the_retention_time_and_the_grant_record_stays()
-> anyhow::Result<()> {
    let mut s = Stack::start("retention").await?;
    let (_, confirmed) = s.confirmed_grant(1_000_000).await?;
    let id = confirmed.application_id;
    let policy = policy()?;
    let db = s.db();
    // Not ended yet: nothing is erased, however late.
    assert_eq!(jobs::erase_due(&db, &policy, far_future(900)).await?, 0);
    let employer = s.employer(&[EMPLOYER]);
    s.withdraw_as(&employer, &id, "Changed our mind").await?;
    assert_eq!(
        jobs::erase_due(&db, &policy, far_future(14 * 30)).await?,
        0,
        "14 months"
    );
    assert_eq!(
        jobs::erase_due(&db, &policy, far_future(16 * 31)).await?,
        1,
        "16 months"
    );
    assert_eq!(
        jobs::erase_due(&db, &policy, far_future(17 * 31)).await?,
        0,
        "once"
    );
    let erased = s.get(&id).await?;
    assert!(erased.personal_data_erased_at.is_some());
    assert!(erased.employee_name.is_empty());
    let details = erased.details.clone().unwrap_or_default();
    assert!(details.contact_person.is_none());
    assert!(details.problem_description.is_empty() && details.accommodation_tried.is_empty());
    assert!(erased.withdrawal.unwrap_or_default().reason.is_empty());
    // The record stays: organisation, amounts, rate, decision, pseudonym.
    assert_eq!(details.employer_organisation_number, EMPLOYER);
    assert_eq!(details.estimated_cost, Some(gross_to_wire(2_000_000)));
    assert_eq!(erased.decision.unwrap_or_default().decided_by, "dec-1");
    assert!(!erased.employee_pseudonym.is_empty());
    assert_eq!(
        s.count("SELECT count(*) FROM applications WHERE fodselsnummer_sealed IS NOT NULL")
            .await?,
        0
    );
    // The record itself is kept 10 years, then deleted with its trail.
    assert_eq!(
        jobs::delete_expired_records(&db, &policy, far_future(9 * 366)).await?,
        0
    );
    assert_eq!(
        jobs::delete_expired_records(&db, &policy, far_future(11 * 366)).await?,
        1
    );
    assert_eq!(s.count("SELECT count(*) FROM applications").await?, 0);
    assert_eq!(s.count("SELECT count(*) FROM grant_ids").await?, 0);
    s.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_grant_waits_for_refunds_and_a_redelivered_answer_is_applied_once()
-> anyhow::Result<()> {
    let mut s = Stack::start("cancel").await?;
    let _budget = scripted_budget(&s, 10_000_000).await?;
    let topic = s.topic()?;
    let budget_topic = s.budget_topic()?;
    let (case_id, confirmed) = s.confirmed_grant(1_000_000).await?;
    let id = confirmed.application_id;
    let granted = s.wait_for_status(&id, Status::Granted).await?;
    let grant_id = granted.grant.unwrap_or_default().grant_id;

    // Budget's FundsReserved, redelivered: still one GrantApproved.
    let answers = read(&budget_topic, 1, QUIET).await?;
    let reserved = envelopes_of::<v1::FundsReserved>(&answers);
    assert_eq!(reserved.len(), 1);
    s.stack
        .feed
        .publish_envelope("budget", &case_id, &reserved[0])
        .await?;

    // A caseworker may not revoke; an employer may only ask for EMPLOYER_REQUEST.
    let caseworker = s.nav("cw-1", &["application-caseworker"]);
    let refused = s
        .cancel_grant_as(
            &caseworker,
            &id,
            GrantCancellationReason::Revoked,
            "Conditions not met after all.",
        )
        .await;
    assert_eq!(
        refusal(refused, "not a decider"),
        "REVOCATION_REQUIRES_DECIDER"
    );
    let employer = s.employer(&[EMPLOYER]);
    let requested = s
        .cancel_grant_as(&employer, &id, GrantCancellationReason::EmployerRequest, "")
        .await?;
    let grant = requested.grant.unwrap_or_default();
    assert_eq!(grant.status(), GrantStatus::CancellationRequested);
    assert!(grant.cancellation.unwrap_or_default().requested_by_employer);

    // Refunds accepts, twice (redelivered): one GrantCancelled.
    let accepted = s
        .stack
        .feed
        .publish(
            "refunds",
            &EventSubject {
                case_id: Some(case_id.clone()),
                aggregate_id: grant_id.clone(),
            },
            &v1::GrantCancellationAccepted {
                grant_id: grant_id.clone(),
                application_id: id.clone(),
                case_id: case_id.clone(),
                county_code: "34".to_owned(),
                ..Default::default()
            },
        )
        .await?;
    s.stack
        .feed
        .publish_envelope("refunds", &case_id, &accepted)
        .await?;
    let events = read(&topic, 5, Duration::from_secs(2)).await?;
    let types: Vec<&str> = events.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types,
        [
            "ekspertbistand.v1.ApplicationSubmitted",
            "ekspertbistand.v1.GrantRequested",
            "ekspertbistand.v1.GrantApproved",
            "ekspertbistand.v1.GrantCancellationRequested",
            "ekspertbistand.v1.GrantCancelled",
        ]
    );
    let cancelled = of_type::<v1::GrantCancelled>(&events);
    assert_eq!(cancelled[0].grant_id, grant_id);
    assert_eq!(cancelled[0].granted_amount_ore, 1_000_000);
    let application = s.get(&id).await?;
    assert_eq!(
        application.grant.unwrap_or_default().status(),
        GrantStatus::Cancelled
    );
    let refused = s
        .cancel_grant_as(&employer, &id, GrantCancellationReason::EmployerRequest, "")
        .await;
    assert_eq!(refusal(refused, "cancelled"), "GRANT_CANCELLED");
    // The grant ended unused: the case may apply again.
    let next = s.submit(&case_id).await?;
    assert_eq!(next.status(), Status::Submitted);
    s.stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_cancellation_leaves_the_grant_with_its_claim() -> anyhow::Result<()> {
    let mut s = Stack::start("cancel-refused").await?;
    let _budget = scripted_budget(&s, 10_000_000).await?;
    let (case_id, confirmed) = s.confirmed_grant(1_000_000).await?;
    let id = confirmed.application_id;
    let grant_id = s
        .wait_for_status(&id, Status::Granted)
        .await?
        .grant
        .unwrap_or_default()
        .grant_id;
    let decider = s.nav("dec-2", &["application-decider"]);
    s.cancel_grant_as(&decider, &id, GrantCancellationReason::Revoked, "Revoked")
        .await?;
    s.stack
        .feed
        .publish(
            "refunds",
            &EventSubject {
                case_id: Some(case_id.clone()),
                aggregate_id: grant_id.clone(),
            },
            &v1::GrantCancellationRefused {
                grant_id: grant_id.clone(),
                application_id: id.clone(),
                case_id: case_id.clone(),
                reason: v1::GrantCancellationRefusalReason::ClaimPending as i32,
                ..Default::default()
            },
        )
        .await?;
    let deadline = std::time::Instant::now() + support::WAIT;
    loop {
        let grant = s.get(&id).await?.grant.unwrap_or_default();
        if grant.status() == GrantStatus::ClaimPending {
            assert_eq!(
                grant.cancellation.unwrap_or_default().refusal_reason(),
                v1::GrantCancellationRefusalReason::ClaimPending
            );
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "refusal never applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        s.count("SELECT count(*) FROM outbox WHERE event_type LIKE '%GrantCancelled'")
            .await?,
        0
    );
    s.stack.stop().await
}

#[test]
fn the_catalog_entry_lists_the_roles_of_the_role_table() -> anyhow::Result<()> {
    ekb_testkit::catalog::check_entry_of::<Applications>()
}

/// One decision as a NAV client makes it: DecideApplication until a final answer, waiting as
/// each UNAVAILABLE's RetryInfo says.
struct Decision {
    application_id: String,
    /// Every answer: its code, whether it carried RetryInfo, its message.
    answers: Vec<(Code, bool, String)>,
    /// The application of the final answer, if it was OK.
    application: Option<v1::Application>,
    /// When the last attempt was sent.
    last_attempt_at: std::time::SystemTime,
    /// How long the call took, retries included.
    took: Duration,
}

async fn decide_until_final(
    mut client: support::Client,
    token: String,
    application_id: String,
    version: i32,
) -> anyhow::Result<Decision> {
    use tonic_types::StatusExt;
    let started = std::time::Instant::now();
    let mut answers = Vec::new();
    loop {
        let last_attempt_at = std::time::SystemTime::now();
        let request = v1::DecideApplicationRequest {
            application_id: application_id.clone(),
            recommendation_version: version,
            verdict: v1::DeciderVerdict::Confirm as i32,
            note: String::new(),
        };
        let answer = client
            .decide_application(with_bearer(request, &token))
            .await;
        let (application, retry_after) = match answer {
            Ok(response) => {
                answers.push((Code::Ok, false, String::new()));
                (response.into_inner().application, None)
            }
            Err(status) => {
                let delay = status
                    .get_error_details()
                    .retry_info()
                    .and_then(|info| info.retry_delay);
                answers.push((status.code(), delay.is_some(), status.message().to_owned()));
                let retry = status.code() == Code::Unavailable;
                (None, retry.then(|| delay.unwrap_or(Duration::from_secs(1))))
            }
        };
        let Some(delay) = retry_after else {
            return Ok(Decision {
                application_id,
                answers,
                application,
                last_attempt_at,
                took: started.elapsed(),
            });
        };
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(90),
            "decision of {application_id} still UNAVAILABLE after 90 s: {answers:?}"
        );
        tokio::time::sleep(delay).await;
    }
}

/// A burst of concurrent decisions while the database's backends are terminated eight times
/// (the first three certainly mid-decision: decisions wait on their applications' row locks
/// when the backends are killed). Every decision gets OK or UNAVAILABLE with RetryInfo, never
/// INTERNAL; a retried decision whose first attempt committed gets OK with the application as
/// it is (the contract's idempotent repeat); every application is decided once, requests its
/// funds once and is granted; nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_decisions_survives_terminated_database_backends_deciding_each_once()
-> anyhow::Result<()> {
    use ekb_testkit::{
        faults::{BackendTerminator, metric_in_process},
        service_under_test::eventually,
    };
    use std::collections::{HashMap, HashSet};
    const N: usize = 30;
    const AMOUNT: i64 = 1_800_000;
    let mut s = Stack::start("decisions-terminated").await?;
    let budget = scripted_budget(&s, AMOUNT * N as i64 * 2).await?;
    let mut cases = Vec::new();
    for _ in 0..N {
        cases.push(s.open_case(v1::Flow::Regular).await?);
    }
    let mut applications = Vec::new();
    for case_id in &cases {
        s.wait_for_case(case_id).await?;
        let id = s.submit(case_id).await?.application_id;
        let version = s.recommend_grant(&id, AMOUNT).await?;
        applications.push((id, version));
    }

    // Every application's row is locked, so the decisions that get a pooled connection wait
    // inside their transactions (the rest wait for the pool).
    let decider = s.nav("dec-1", &["application-decider"]);
    let mut blocker = s.pool.begin().await?;
    sqlx::query("SELECT 1 FROM applications FOR UPDATE")
        .execute(&mut *blocker)
        .await?;
    let started = std::time::Instant::now();
    let mut burst = tokio::task::JoinSet::new();
    for (id, version) in &applications {
        burst.spawn(decide_until_final(
            s.client.clone(),
            decider.clone(),
            id.clone(),
            *version,
        ));
    }
    // The handlers' share of the pool (the relay's LISTEN holds one of its connections).
    let handlers: i64 = s
        .stack
        .settings
        .get("database.max_connections")
        .unwrap_or("2")
        .parse::<i64>()?
        .saturating_sub(1)
        .max(1);
    let waiting = || async {
        s.count(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await
    };
    // Three times: decisions wait on their rows, then every backend but the lock's is
    // terminated, the waiting decisions among them; the pool reconnects and the next decisions
    // come to wait. Then the locks go, and five more rounds hit the rest, the retries and the
    // saga.
    let (mut killed_waiting, mut mid_decision) = (0_i64, 0_i64);
    for _ in 0..3 {
        eventually("decisions waiting on their rows", support::WAIT, || async {
            Ok((waiting().await? > 0).then_some(()))
        })
        .await?;
        let _ = eventually("the pool waiting", Duration::from_millis(500), || async {
            Ok((waiting().await? >= handlers).then_some(()))
        })
        .await;
        // pg_stat_activity is read once per transaction unless the snapshot is cleared; then
        // the count and the kill see the same rows.
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut *blocker)
            .await?;
        let (waited, killed): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), \
             count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut *blocker)
        .await?;
        killed_waiting += waited;
        mid_decision += killed;
    }
    blocker.commit().await?;
    let terminator =
        BackendTerminator::start(s.stack.database_url(), 5, Duration::from_millis(150));
    let mut decisions = Vec::new();
    while let Some(decision) = burst.join_next().await {
        decisions.push(decision??);
    }
    let all_answered = started.elapsed();
    let terminated = terminator.finish().await? + u64::try_from(mid_decision)?;
    eventually(
        "every application granted",
        Duration::from_secs(90),
        || async {
            let granted = s
                .count("SELECT count(*) FROM applications WHERE status = 'GRANTED'")
                .await?;
            Ok((granted == N as i64).then_some(()))
        },
    )
    .await
    .map_err(|error| {
        anyhow::anyhow!(
            "{error}; decisions: {:?}",
            decisions
                .iter()
                .map(|d| (&d.application_id, &d.answers))
                .collect::<Vec<_>>()
        )
    })?;
    let total = started.elapsed();
    // A client whose answer was lost after the commit repeats the decision: the contract's
    // answer is OK with the application as it is now, and nothing more is decided or published
    // (checked below with the rest).
    for (id, version) in &applications {
        let repeated = s
            .decide_as(&decider, id, *version, v1::DeciderVerdict::Confirm, "")
            .await?;
        assert_eq!(repeated.status(), Status::Granted, "{id}: repeated");
    }

    // Every answer OK or UNAVAILABLE with RetryInfo; every final answer OK, decided by dec-1.
    let unexpected: Vec<_> = decisions
        .iter()
        .flat_map(|d| {
            d.answers
                .iter()
                .map(move |answer| (&d.application_id, answer))
        })
        .filter(|(_, (code, _, _))| !matches!(code, Code::Ok | Code::Unavailable))
        .collect();
    assert!(
        unexpected.is_empty(),
        "answers other than OK/UNAVAILABLE: {unexpected:?}"
    );
    let unavailable: Vec<_> = decisions
        .iter()
        .flat_map(|d| d.answers.iter())
        .filter(|(code, _, _)| *code == Code::Unavailable)
        .collect();
    assert!(
        unavailable.iter().all(|(_, retry_info, _)| *retry_info),
        "UNAVAILABLE without RetryInfo: {unavailable:?}"
    );
    let mut repeats = 0;
    for decision in &decisions {
        let application = decision.application.as_ref().unwrap_or_else(|| {
            panic!(
                "no final OK for {}: {:?}",
                decision.application_id, decision.answers
            )
        });
        assert!(
            matches!(
                application.status(),
                Status::GrantPendingFunds | Status::Granted
            ),
            "{}: {:?}",
            decision.application_id,
            application.status()
        );
        let made = application.decision.clone().unwrap_or_default();
        assert_eq!(
            (made.decided_by.as_str(), made.recommendation_version),
            ("dec-1", 1)
        );
        // An OK whose decision is older than the attempt that got it: the first attempt
        // committed, its answer was lost, and the retry got the contract's idempotent repeat.
        let decided_at = made.decided_at.unwrap_or_default();
        let decided_at = std::time::UNIX_EPOCH
            + Duration::new(
                u64::try_from(decided_at.seconds)?,
                u32::try_from(decided_at.nanos)?,
            );
        if decided_at < decision.last_attempt_at {
            repeats += 1;
        }
    }
    let killed_first = decisions
        .iter()
        .filter(|d| d.answers.first().map(|(code, _, _)| *code) == Some(Code::Unavailable))
        .count();
    assert!(
        killed_first as i64 >= killed_waiting && killed_waiting >= 1,
        "the {killed_waiting} decision(s) terminated mid-transaction were answered UNAVAILABLE \
         ({killed_first} first answers were)"
    );
    assert!(terminated >= 5, "backends were terminated ({terminated})");

    // Decided once each: one decision audit entry, one grant id, one GrantRequested recorded.
    let per_application = |sql: &'static str| {
        let pool = s.pool.clone();
        async move {
            let rows: Vec<(uuid::Uuid, i64)> = sqlx::query_as(sql).fetch_all(&pool).await?;
            anyhow::Ok(rows)
        }
    };
    for (what, sql) in [
        (
            "decision audit entries",
            "SELECT subject_id, count(*) FROM audit_entries \
             WHERE action = 'DecideApplication' GROUP BY 1",
        ),
        (
            "grant ids",
            "SELECT application_id, count(*) FROM grant_ids GROUP BY 1",
        ),
    ] {
        let rows = per_application(sql).await?;
        assert_eq!(rows.len(), N, "{what}: {rows:?}");
        assert!(rows.iter().all(|(_, n)| *n == 1), "{what}: {rows:?}");
    }
    assert_eq!(
        s.count(
            "SELECT count(*) FROM outbox WHERE event_type = 'ekspertbistand.v1.GrantRequested'"
        )
        .await?,
        N as i64
    );
    eventually("the outbox published", support::WAIT, || async {
        let unpublished = s
            .count("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .await?;
        Ok((unpublished == 0).then_some(()))
    })
    .await?;

    // Nothing dead-lettered; the consumer retried lost connections as transient only.
    let dead_lettered = metric_in_process("ekb_consumer_dead_lettered_total", "")?;
    let consumer_transient = metric_in_process("ekb_consumer_transient_failures_total", "")?;
    let consumer_failed = metric_in_process("ekb_consumer_retries_total", "")?;
    assert_eq!(dead_lettered, 0.0, "a lost connection never dead-letters");
    assert_eq!(
        s.count("SELECT count(*) FROM inbox WHERE outcome = 'dead_lettered'")
            .await?,
        0
    );
    assert_eq!(
        consumer_failed, 0.0,
        "a lost connection is not counted as a failure"
    );

    // On the topic: each granted application requested its funds under one event and one grant
    // id (copies of that event are at-least-once delivery, de-duplicated on the event id).
    let mut granted = HashMap::new();
    for (id, _) in &applications {
        let application = s.get(id).await?;
        assert_eq!(application.status(), Status::Granted, "{id}");
        let grant = application.grant.unwrap_or_default();
        assert_eq!(grant.funds_requests.len(), 1, "{id}: one funds request");
        assert_eq!(
            grant.funds_requests[0].outcome(),
            v1::FundsRequestOutcome::Reserved
        );
        assert_eq!(grant.granted_amount, Some(gross_to_wire(AMOUNT)));
        granted.insert(id.clone(), grant.grant_id);
    }
    let events = read(&s.topic()?, 3 * N, Duration::from_secs(2)).await?;
    let requested = envelopes_of::<v1::GrantRequested>(&events);
    let mut requests: HashMap<String, (HashSet<String>, HashSet<String>)> = HashMap::new();
    for envelope in &requested {
        let request = <v1::GrantRequested as prost::Message>::decode(envelope.payload.as_slice())?;
        let entry = requests.entry(request.application_id).or_default();
        entry.0.insert(envelope.event_id.clone());
        entry.1.insert(request.grant_id);
    }
    assert_eq!(requests.len(), N, "a GrantRequested for every application");
    for (id, (event_ids, grant_ids)) in &requests {
        assert_eq!(event_ids.len(), 1, "{id}: requested once: {event_ids:?}");
        assert_eq!(
            grant_ids.iter().collect::<Vec<_>>(),
            [&granted[id]],
            "{id}: under its grant id"
        );
    }
    let copies = requested.len() - N;
    let approved: HashMap<String, String> = envelopes_of::<v1::GrantApproved>(&events)
        .into_iter()
        .map(|envelope| {
            let approval =
                <v1::GrantApproved as prost::Message>::decode(envelope.payload.as_slice())?;
            anyhow::Ok((envelope.event_id, approval.grant_id))
        })
        .collect::<anyhow::Result<_>>()?;
    let approved_grants: HashSet<&String> = approved.values().collect();
    assert_eq!(approved.len(), N, "approved once each (one event each)");
    assert_eq!(
        approved_grants,
        granted.values().collect::<HashSet<_>>(),
        "every grant approved"
    );
    let reserved = AMOUNT * N as i64 * 2 - budget.available_ore();

    let retries = unavailable.len();
    let longest = decisions.iter().map(|d| d.took).max().unwrap_or_default();
    let lost = N - granted.len();
    eprintln!(
        "{terminated} backends terminated ({killed_waiting} mid-decision); {N} decisions \
         answered in {all_answered:?}, {retries} UNAVAILABLE answers retried ({repeats} \
         answered by the idempotent repeat after a lost answer, {N} deliberate repeats OK); \
         {dead_lettered} dead letters; \
         {lost} lost; longest decision call with retries {longest:?}; total {total:?}; \
         consumer: {consumer_transient} transient retries, {consumer_failed} other failures; \
         {copies} extra copies of GrantRequested on the topic; budget answered {} requests, \
         reserved {reserved} øre",
        budget.answered()
    );
    assert!(retries >= 1, "the terminated decisions were retried");
    // The scripted budget answers every message it reads (budget itself de-duplicates on the
    // event id), so only where the relay sent no copy does its purse show one reservation each.
    if copies == 0 {
        assert_eq!(reserved, AMOUNT * N as i64, "each amount reserved once");
        assert_eq!(budget.answered(), N);
    }
    s.stack.stop().await
}
