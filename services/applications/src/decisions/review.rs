//! NAV's case processing of an application: a caseworker starts the review, assesses the five
//! conditions and recommends; another person decides (four eyes, [`FourEyes`]). A confirmed
//! grant freezes the max rate in force on the decision date into the grant and asks budget for
//! the money; a confirmed rejection ends the application; a return sends it back to review.

use ekb_domain::{FourEyes, oslo_date};
use ekb_platform::{
    ApiError, Violations,
    change::{Decision, Effects},
};
use ekb_proto::convert::gross_to_wire;
use ekb_proto::v1::{self, ApplicationStatus as Status};
use time::OffsetDateTime;

use super::{FundsTerms, refused};
use crate::{
    commands::{Decide, Recommend, Recommendation},
    config::MaxRate,
    events,
    model::{day, stamp},
    store::Stored,
};

/// The five conditions of NAV's practice.
const CONDITIONS: usize = 5;

impl Stored {
    /// StartReview by caseworker `by`: SUBMITTED → UNDER_REVIEW; a repeat by the same reviewer
    /// changes nothing.
    pub fn start_review(&mut self, by: &str, now: OffsetDateTime) -> Result<Decision, ApiError> {
        let application = &mut self.application;
        match crate::model::status(application) {
            Status::Submitted => {}
            Status::UnderReview if application.reviewed_by == by => {
                return Ok(Decision::Unchanged);
            }
            _ => return Err(refused("NOT_SUBMITTED", application)),
        }
        application.status = Status::UnderReview as i32;
        application.reviewed_by = by.to_owned();
        application.review_started_at = stamp(now);
        Ok(self.changed(now, Effects::new()))
    }

    /// AssessCondition by caseworker `by`, while UNDER_REVIEW (else ASSESSMENT_LOCKED): replaces
    /// the condition's assessment; the same assessment by the same person changes nothing.
    pub fn assess(
        &mut self,
        by: &str,
        condition: v1::ApplicationCondition,
        met: bool,
        note: String,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        self.require(Status::UnderReview, "ASSESSMENT_LOCKED")?;
        let conditions = &mut self.application.conditions;
        let unchanged = conditions.iter().any(|assessed| {
            assessed.condition == condition as i32
                && assessed.met == met
                && assessed.note == note
                && assessed.assessed_by == by
        });
        if unchanged {
            return Ok(Decision::Unchanged);
        }
        conditions.retain(|assessed| assessed.condition != condition as i32);
        conditions.push(v1::ConditionAssessment {
            condition: condition as i32,
            met,
            note,
            assessed_by: by.to_owned(),
            assessed_at: stamp(now),
        });
        conditions.sort_by_key(|assessed| assessed.condition);
        Ok(self.changed(now, Effects::new()))
    }

    /// RecommendDecision by caseworker `by`: UNDER_REVIEW → RECOMMENDED with a new version,
    /// once all five conditions are assessed. A grant needs every condition met, and an amount
    /// within the estimated cost and `rate`, the max rate in force today (INVALID_ARGUMENT
    /// otherwise).
    pub fn recommend(
        &mut self,
        by: &str,
        command: &Recommend,
        rate: Option<&MaxRate>,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        self.require(Status::UnderReview, "NOT_UNDER_REVIEW")?;
        let application = &mut self.application;
        if application.conditions.len() < CONDITIONS {
            return Err(ApiError::refused(
                "CONDITIONS_NOT_ASSESSED",
                format!(
                    "{} of the {CONDITIONS} conditions are assessed",
                    application.conditions.len()
                ),
            ));
        }
        let wire = match &command.recommendation {
            Recommendation::Grant(ore) => {
                if application.conditions.iter().any(|assessed| !assessed.met) {
                    return Err(ApiError::refused(
                        "CONDITION_NOT_MET",
                        "a grant needs all five conditions met",
                    ));
                }
                let rate = rate.ok_or_else(|| {
                    ApiError::refused("MAX_RATE_NOT_CONFIGURED", "no max rate is in force today")
                })?;
                let mut check = Violations::new();
                if *ore > estimated_cost(application) {
                    check.add("grant.amount.ore", "must not exceed the estimated cost");
                }
                if *ore > rate.ore {
                    check.add(
                        "grant.amount.ore",
                        format!(
                            "must not exceed the max rate in force today ({} øre)",
                            rate.ore
                        ),
                    );
                }
                check.finish()?;
                v1::application_recommendation::Recommendation::Grant(v1::GrantRecommendation {
                    amount: Some(gross_to_wire(*ore)),
                })
            }
            Recommendation::Reject(reason, explanation) => {
                v1::application_recommendation::Recommendation::Rejection(
                    v1::RejectionRecommendation {
                        reason: *reason as i32,
                        explanation: explanation.clone(),
                    },
                )
            }
        };
        let version = i32::try_from(application.recommendations.len()).unwrap_or(i32::MAX - 1) + 1;
        application
            .recommendations
            .push(v1::ApplicationRecommendation {
                version,
                recommendation: Some(wire),
                note: command.note.clone(),
                recommended_by: by.to_owned(),
                recommended_at: stamp(now),
                ..Default::default()
            });
        application.status = Status::Recommended as i32;
        Ok(self.changed(now, Effects::new()))
    }

    /// DecideApplication by decider `by` on the current recommendation. Nobody who recommended
    /// on the application in any round may decide it (PERMISSION_DENIED
    /// DECIDER_IS_RECOMMENDER). RETURN sends it back to review; CONFIRM of a grant freezes
    /// `rate` (the max rate in force on the decision date) into the grant and requests the
    /// funds on `terms`; CONFIRM of a rejection ends it. The same confirmation again changes
    /// nothing.
    pub fn decide(
        &mut self,
        by: &str,
        command: &Decide,
        rate: Option<&MaxRate>,
        terms: &FundsTerms,
        now: OffsetDateTime,
    ) -> Result<Decision, ApiError> {
        let application = &self.application;
        let repeat = command.verdict == v1::DeciderVerdict::Confirm
            && application.decision.as_ref().is_some_and(|decision| {
                decision.decided_by == by
                    && decision.recommendation_version == command.recommendation_version
            });
        if repeat {
            return Ok(Decision::Unchanged);
        }
        self.require(Status::Recommended, "NOT_RECOMMENDED")?;
        let recommenders = self
            .application
            .recommendations
            .iter()
            .map(|recommendation| recommendation.recommended_by.as_str());
        FourEyes::prepared_by(recommenders)
            .require_second_person(by)
            .map_err(|_| ApiError::PermissionDenied {
                reason: "DECIDER_IS_RECOMMENDER",
                message: "the decider recommended on this application; another person must decide"
                    .to_owned(),
            })?;
        let current = self
            .application
            .recommendations
            .last()
            .cloned()
            .unwrap_or_default();
        if current.version != command.recommendation_version {
            return Err(ApiError::refused(
                "RECOMMENDATION_CHANGED",
                format!("the current recommendation is version {}", current.version),
            ));
        }
        if command.verdict == v1::DeciderVerdict::Return {
            let application = &mut self.application;
            if let Some(last) = application.recommendations.last_mut() {
                last.returned_by = by.to_owned();
                last.returned_at = stamp(now);
                last.return_note = command.note.clone();
            }
            application.status = Status::UnderReview as i32;
            return Ok(self.changed(now, Effects::new()));
        }
        let decision_date = oslo_date(now);
        let mut decision = v1::ApplicationDecision {
            outcome: v1::ApplicationDecisionOutcome::Reject as i32,
            recommendation_version: current.version,
            conditions: self.application.conditions.clone(),
            recommended_by: current.recommended_by.clone(),
            decided_by: by.to_owned(),
            decided_at: stamp(now),
            decision_date: day(decision_date),
        };
        let effects = match current.recommendation {
            Some(v1::application_recommendation::Recommendation::Grant(grant)) => {
                let ore = grant.amount.map_or(0, |amount| amount.ore);
                let rate = rate.ok_or_else(|| {
                    ApiError::refused(
                        "MAX_RATE_NOT_CONFIGURED",
                        "no max rate is in force on the decision date",
                    )
                })?;
                if ore > rate.ore {
                    return Err(ApiError::refused(
                        "AMOUNT_ABOVE_MAX_RATE",
                        format!(
                            "the max rate in force today is {} øre, below the recommended amount: return it",
                            rate.ore
                        ),
                    ));
                }
                decision.outcome = v1::ApplicationDecisionOutcome::Grant as i32;
                self.application.decision = Some(decision);
                self.application.grant = Some(v1::Grant {
                    granted_amount: Some(gross_to_wire(ore)),
                    applied_max_rate: Some(rate.to_wire()),
                    ..Default::default()
                });
                self.request_funds(by, terms, now)
            }
            Some(v1::application_recommendation::Recommendation::Rejection(rejection)) => {
                let application = &mut self.application;
                application.decision = Some(decision);
                application.rejection = Some(v1::ApplicationRejection {
                    reason: rejection.reason,
                    funds_denied_reason: 0,
                    explanation: rejection.explanation,
                    rejected_by: by.to_owned(),
                    rejected_at: stamp(now),
                    is_final: true,
                });
                application.status = Status::Rejected as i32;
                Effects::new().publishing(
                    events::of_application(application),
                    &events::rejected(application),
                )
            }
            None => {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "a stored recommendation has no content"
                )));
            }
        };
        Ok(self.changed(now, effects))
    }
}

fn estimated_cost(application: &v1::Application) -> i64 {
    application
        .details
        .as_ref()
        .and_then(|details| details.estimated_cost)
        .map_or(0, |amount| amount.ore)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::decisions::fixtures::{
        NOW, assessed, events, is_changed, rate, reason, recommended, submitted, terms,
    };
    use uuid::Uuid;

    /// A CONFIRM of recommendation `version`.
    pub(crate) fn confirm(version: i32) -> Decide {
        Decide {
            application_id: Uuid::nil(),
            verdict: v1::DeciderVerdict::Confirm,
            recommendation_version: version,
            note: String::new(),
        }
    }

    fn grant_of(ore: i64) -> Recommend {
        Recommend {
            application_id: Uuid::nil(),
            recommendation: Recommendation::Grant(ore),
            note: String::new(),
        }
    }

    #[test]
    fn a_review_starts_once_and_only_from_submitted() {
        let mut stored = submitted();
        assert!(is_changed(
            &stored.start_review("cw-1", NOW).expect("started")
        ));
        assert_eq!(stored.application.status(), Status::UnderReview);
        assert_eq!(stored.application.updated_at, stamp(NOW));
        assert!(!is_changed(
            &stored.start_review("cw-1", NOW).expect("repeat")
        ));
        let other = stored
            .start_review("cw-2", NOW)
            .expect_err("another reviewer");
        assert_eq!(reason(other), "NOT_SUBMITTED");
    }

    #[test]
    fn an_assessment_replaces_the_condition_s_and_is_locked_outside_review() {
        let mut stored = assessed();
        let condition = v1::ApplicationCondition::try_from(3).expect("a condition");
        let note = "not met".to_owned();
        let changed = stored.assess("cw-1", condition, false, note.clone(), NOW);
        assert!(is_changed(&changed.expect("assessed")));
        assert_eq!(stored.application.conditions.len(), 5);
        assert!(!stored.application.conditions[2].met);
        let repeat = stored.assess("cw-1", condition, false, note, NOW);
        assert!(!is_changed(&repeat.expect("repeat")));
        let mut locked = recommended(1_000_000);
        let refused = locked.assess("cw-1", condition, true, String::new(), NOW);
        assert_eq!(reason(refused.expect_err("locked")), "ASSESSMENT_LOCKED");
    }

    #[test]
    fn a_recommendation_needs_every_condition_met_and_an_amount_within_cost_and_rate() {
        let mut not_reviewed = submitted();
        let refused = not_reviewed.recommend("cw-1", &grant_of(1_000_000), Some(&rate()), NOW);
        assert_eq!(reason(refused.expect_err("submitted")), "NOT_UNDER_REVIEW");

        let mut unmet = assessed();
        unmet.application.conditions[0].met = false;
        let refused = unmet.recommend("cw-1", &grant_of(1_000_000), Some(&rate()), NOW);
        assert_eq!(reason(refused.expect_err("unmet")), "CONDITION_NOT_MET");

        let mut stored = assessed();
        let refused = stored.recommend("cw-1", &grant_of(1_000_000), None, NOW);
        assert_eq!(
            reason(refused.expect_err("no rate")),
            "MAX_RATE_NOT_CONFIGURED"
        );
        let too_much = stored.recommend("cw-1", &grant_of(2_100_000), Some(&rate()), NOW);
        assert!(matches!(
            too_much.expect_err("above the cost"),
            ApiError::InvalidArgument(_)
        ));

        let recommended = stored.recommend("cw-1", &grant_of(1_000_000), Some(&rate()), NOW);
        assert!(is_changed(&recommended.expect("recommended")));
        assert_eq!(stored.application.status(), Status::Recommended);
        assert_eq!(stored.application.recommendations[0].version, 1);
        assert_eq!(stored.application.recommendations[0].recommended_by, "cw-1");
        let again = stored.recommend("cw-1", &grant_of(1_000_000), Some(&rate()), NOW);
        assert_eq!(reason(again.expect_err("recommended")), "NOT_UNDER_REVIEW");
    }

    #[test]
    fn four_eyes_the_recommender_of_any_round_may_not_decide() {
        let mut stored = recommended(1_000_000);
        let refused = stored.decide("cw-1", &confirm(1), Some(&rate()), &terms(), NOW);
        let refused = refused.expect_err("own recommendation");
        assert!(matches!(refused, ApiError::PermissionDenied { .. }));
        assert_eq!(reason(refused), "DECIDER_IS_RECOMMENDER");

        // Returned by dec-1 and recommended again by cw-2: cw-1 still may not decide.
        let mut returning = confirm(1);
        returning.verdict = v1::DeciderVerdict::Return;
        returning.note = "Check the hours.".to_owned();
        let returned = stored.decide("dec-1", &returning, Some(&rate()), &terms(), NOW);
        assert!(is_changed(&returned.expect("returned")));
        assert_eq!(stored.application.status(), Status::UnderReview);
        assert_eq!(stored.application.recommendations[0].returned_by, "dec-1");
        stored
            .recommend("cw-2", &grant_of(900_000), Some(&rate()), NOW)
            .expect("second round");
        let refused = stored.decide("cw-1", &confirm(2), Some(&rate()), &terms(), NOW);
        assert_eq!(
            reason(refused.expect_err("first round's recommender")),
            "DECIDER_IS_RECOMMENDER"
        );
        let stale = stored.decide("dec-1", &confirm(1), Some(&rate()), &terms(), NOW);
        assert_eq!(reason(stale.expect_err("stale")), "RECOMMENDATION_CHANGED");
    }

    #[test]
    fn a_confirmed_grant_freezes_the_rate_and_requests_the_funds_once() {
        let mut stored = recommended(1_000_000);
        let decided = stored
            .decide("dec-1", &confirm(1), Some(&rate()), &terms(), NOW)
            .expect("decided");
        assert_eq!(events(&decided), ["GrantRequested"]);
        let application = &stored.application;
        assert_eq!(application.status(), Status::GrantPendingFunds);
        let decision = application.decision.clone().unwrap_or_default();
        assert_eq!(
            (
                decision.recommended_by.as_str(),
                decision.decided_by.as_str()
            ),
            ("cw-1", "dec-1")
        );
        assert_eq!(decision.decision_date, "2026-12-01");
        let grant = application.grant.clone().unwrap_or_default();
        assert_eq!(grant.applied_max_rate, Some(rate().to_wire()));
        assert_eq!(grant.funds_requests.len(), 1);
        assert_eq!(grant.funds_requests[0].requested_by, "dec-1");
        assert!(stored.resend_at.is_some());

        let repeat = stored.decide("dec-1", &confirm(1), Some(&rate()), &terms(), NOW);
        assert!(!is_changed(&repeat.expect("repeat")));
        let mut returning = confirm(1);
        returning.verdict = v1::DeciderVerdict::Return;
        let refused = stored.decide("dec-1", &returning, Some(&rate()), &terms(), NOW);
        assert_eq!(reason(refused.expect_err("decided")), "NOT_RECOMMENDED");
    }

    #[test]
    fn a_grant_above_the_rate_in_force_on_the_decision_date_is_refused() {
        let mut stored = recommended(1_000_000);
        let lower = MaxRate {
            ore: 900_000,
            ..rate()
        };
        let refused = stored.decide("dec-1", &confirm(1), Some(&lower), &terms(), NOW);
        assert_eq!(reason(refused.expect_err("above")), "AMOUNT_ABOVE_MAX_RATE");
        let refused = stored.decide("dec-1", &confirm(1), None, &terms(), NOW);
        assert_eq!(
            reason(refused.expect_err("no rate")),
            "MAX_RATE_NOT_CONFIGURED"
        );
        assert_eq!(stored.application.status(), Status::Recommended);
    }

    #[test]
    fn a_confirmed_rejection_ends_the_application() {
        let mut stored = assessed();
        let rejection = Recommend {
            application_id: Uuid::nil(),
            recommendation: Recommendation::Reject(
                v1::ApplicationRejectionReason::try_from(1).expect("a reason"),
                "why".to_owned(),
            ),
            note: String::new(),
        };
        stored
            .recommend("cw-1", &rejection, None, NOW)
            .expect("a rejection needs no rate");
        let decided = stored
            .decide("dec-1", &confirm(1), None, &terms(), NOW)
            .expect("decided");
        assert_eq!(events(&decided), ["ApplicationRejected"]);
        assert_eq!(stored.application.status(), Status::Rejected);
        let rejection = stored.application.rejection.clone().unwrap_or_default();
        assert!(rejection.is_final);
        assert_eq!(rejection.rejected_by, "dec-1");
    }
}
