//! What each change does to an application: pure methods on [`Stored`], one per RPC or consumed
//! event that changes it, unit-tested without a database.
//!
//! A method checks the change against the application as loaded (status, four eyes, versions,
//! the max rate in force), changes the document and returns a [`Decision`]: `Unchanged` for a
//! repeat of a change that already took effect (or an answer that is not for the application's
//! current grant), `Changed` with the events the change publishes. It never reads a clock or
//! the database: "now", the max rate in force and the funds terms are arguments. The handlers
//! (`handlers.rs`, `saga.rs`) apply it with `ekb_platform::change` — load locked, decide, save,
//! audit and publish in one unit of work — adding to its effects the audit entry of who made
//! the change (the caller, or the service for an event), which the method does not know.
//!
//! - [`review`]: start review, assess, recommend, decide (four eyes);
//! - [`funds`]: the money saga with budget (request, reserved, denied, asked again, final);
//! - [`withdrawal`]: the employer withdraws the application;
//! - [`grant_life`]: cancelling a grant, and refunds' events about it.

pub mod funds;
pub mod grant_life;
pub mod review;
pub mod withdrawal;

use ekb_platform::{
    ApiError,
    change::{Decision, Effects},
};
use ekb_proto::v1::{self, ApplicationStatus as Status};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    model::{self, stamp},
    store::Stored,
};

pub use funds::FundsTerms;

/// FAILED_PRECONDITION `reason`, naming the application's current status.
pub fn refused(reason: &'static str, application: &v1::Application) -> ApiError {
    ApiError::refused(
        reason,
        format!(
            "application {} is {}",
            application.application_id,
            model::status(application).as_str_name()
        ),
    )
}

impl Stored {
    /// Refuses with `reason` (naming the current status) unless the application is `status`.
    fn require(&self, status: Status, reason: &'static str) -> Result<(), ApiError> {
        if model::status(&self.application) == status {
            Ok(())
        } else {
            Err(refused(reason, &self.application))
        }
    }

    /// Whether `grant_id` is the application's current grant id.
    fn is_current_grant(&self, grant_id: Uuid) -> bool {
        self.application
            .grant
            .as_ref()
            .is_some_and(|grant| grant.grant_id == grant_id.to_string())
    }

    /// The change made at `now` (the document's `updated_at`), publishing `effects`' events.
    fn changed(&mut self, now: OffsetDateTime, effects: Effects) -> Decision {
        self.application.updated_at = stamp(now);
        effects.changed()
    }
}

/// Applications in each state, for the decisions' unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use ekb_domain::{Account, CalendarMonths};
    use ekb_platform::change::Decision;
    use ekb_proto::convert::gross_to_wire;
    use ekb_proto::v1::{self, ApplicationStatus as Status};
    use time::{OffsetDateTime, macros::datetime};
    use uuid::Uuid;

    use crate::{config::MaxRate, decisions::FundsTerms, model::stamp, store::Stored};

    /// The time the tests' changes are made at (12:00 in Oslo, 1 December 2026).
    pub const NOW: OffsetDateTime = datetime!(2026-12-01 11:00 UTC);

    /// A submitted application, estimated at 20 000 kr, starting 10 January 2027.
    pub fn submitted() -> Stored {
        Stored {
            application: v1::Application {
                application_id: Uuid::now_v7().to_string(),
                case_id: Uuid::now_v7().to_string(),
                county_code: "34".to_owned(),
                status: Status::Submitted as i32,
                details: Some(v1::ApplicationDetails {
                    employer_organisation_number: "974760673".to_owned(),
                    planned_start_date: "2027-01-10".to_owned(),
                    estimated_cost: Some(gross_to_wire(2_000_000)),
                    ..Default::default()
                }),
                ..Default::default()
            },
            fodselsnummer_sealed: Some("sealed".to_owned()),
            resend_at: None,
            resend_interval_seconds: None,
            status_changed_at: NOW,
            sequence: 1,
        }
    }

    /// Under review by `cw-1`, all five conditions met.
    pub fn assessed() -> Stored {
        let mut stored = submitted();
        let application = &mut stored.application;
        application.status = Status::UnderReview as i32;
        application.reviewed_by = "cw-1".to_owned();
        application.conditions = (1..=5)
            .map(|condition| v1::ConditionAssessment {
                condition,
                met: true,
                assessed_by: "cw-1".to_owned(),
                assessed_at: stamp(NOW),
                ..Default::default()
            })
            .collect();
        stored
    }

    /// Recommended by `cw-1` (version 1): a grant of `ore`.
    pub fn recommended(ore: i64) -> Stored {
        let mut stored = assessed();
        stored.application.status = Status::Recommended as i32;
        stored
            .application
            .recommendations
            .push(v1::ApplicationRecommendation {
                version: 1,
                recommendation: Some(v1::application_recommendation::Recommendation::Grant(
                    v1::GrantRecommendation {
                        amount: Some(gross_to_wire(ore)),
                    },
                )),
                recommended_by: "cw-1".to_owned(),
                recommended_at: stamp(NOW),
                ..Default::default()
            });
        stored
    }

    /// The refund deadline rule of the defaults.
    pub const SIX_MONTHS: CalendarMonths = CalendarMonths::new(6);

    /// The max rate of 2024: 24 000 kr.
    pub fn rate() -> MaxRate {
        MaxRate {
            valid_from: time::macros::date!(2024 - 01 - 01),
            ore: 2_400_000,
            source: "test".to_owned(),
        }
    }

    /// A funds request charged to 2650.76, re-sent after 15 minutes.
    pub fn terms() -> FundsTerms {
        FundsTerms {
            account: Account::SCHEME,
            resend_after: std::time::Duration::from_secs(15 * 60),
        }
    }

    /// Decided by `dec-1`: a grant of 10 000 kr waiting for budget's answer.
    pub fn pending_funds() -> (Stored, Uuid) {
        let mut stored = recommended(1_000_000);
        let decided = stored
            .decide(
                "dec-1",
                &super::review::tests::confirm(1),
                Some(&rate()),
                &terms(),
                NOW,
            )
            .expect("decided");
        assert!(is_changed(&decided));
        let grant_id = current_grant(&stored);
        (stored, grant_id)
    }

    /// A granted application (funds reserved) with its grant id.
    pub fn granted() -> (Stored, Uuid) {
        let (mut stored, grant_id) = pending_funds();
        let reserved = stored.funds_reserved(grant_id, "r-1".to_owned(), SIX_MONTHS, NOW);
        assert!(is_changed(&reserved));
        (stored, grant_id)
    }

    /// The current grant id.
    pub fn current_grant(stored: &Stored) -> Uuid {
        stored
            .application
            .grant
            .as_ref()
            .and_then(|grant| Uuid::parse_str(&grant.grant_id).ok())
            .expect("a grant id")
    }

    /// Whether the decision changed the application.
    pub fn is_changed(decision: &Decision) -> bool {
        matches!(decision, Decision::Changed(_))
    }

    /// The full names of the events the decision publishes, in order.
    pub fn events(decision: &Decision) -> Vec<String> {
        // Effects keeps its events to itself; its Debug form names each `event_type`.
        let text = format!("{decision:?}");
        text.split("event_type: \"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(|name| name.trim_start_matches("ekspertbistand.v1.").to_owned())
            .collect()
    }

    /// The reason of a refusal.
    pub fn reason(error: ekb_platform::ApiError) -> &'static str {
        match error {
            ekb_platform::ApiError::FailedPrecondition { reason, .. }
            | ekb_platform::ApiError::PermissionDenied { reason, .. } => reason,
            other => panic!("not a refusal: {other:?}"),
        }
    }
}
