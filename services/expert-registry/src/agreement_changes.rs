//! The changes of a framework agreement, as rules of the stored agreement (load → decide → save,
//! ADR 0028): new terms while it runs, and an early end within its validity. Each change bumps
//! the version and publishes the agreement's full state, so routing's and pilot-ordering's read
//! models replace an older version and never the reverse.

use ekb_platform::{
    ApiError,
    change::{Decision, Effects},
    messaging::EventSubject,
};
use ekb_proto::v1;
use time::Date;

use crate::{agreement_store::StoredAgreement, commands::ValidTerms};

impl StoredAgreement {
    /// Replaces the terms of an agreement that has not ended (AgreementUpdated).
    pub fn change_terms(&mut self, terms: ValidTerms) -> Result<Decision, ApiError> {
        if self.ended_on.is_some() {
            return Err(ApiError::refused(
                "AGREEMENT_ENDED",
                "the agreement has ended; its terms cannot change",
            ));
        }
        self.terms = terms;
        self.version += 1;
        let event = v1::AgreementUpdated {
            agreement: Some(self.to_wire()),
        };
        Ok(Effects::new().publishing(self.subject(), &event).changed())
    }

    /// Ends a running agreement early on `end_date`, a day of its validity (AgreementEnded).
    pub fn end(&mut self, end_date: Date, reason: String) -> Result<Decision, ApiError> {
        if self.ended_on.is_some() {
            return Err(ApiError::refused(
                "AGREEMENT_ENDED",
                "the agreement has already ended",
            ));
        }
        if !self.terms.validity.contains(end_date) {
            return Err(ApiError::invalid(
                "end_date",
                "must lie within the agreement's validity period",
            ));
        }
        self.ended_on = Some(end_date);
        self.end_reason = reason.clone();
        self.version += 1;
        let event = v1::AgreementEnded {
            agreement: Some(self.to_wire()),
            reason,
        };
        Ok(Effects::new().publishing(self.subject(), &event).changed())
    }

    fn subject(&self) -> EventSubject {
        EventSubject::aggregate(self.agreement_id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use ekb_domain::{CompetenceArea, CountyCode, DateRange, OrganisationNumber};
    use time::macros::date;
    use uuid::Uuid;

    use super::*;

    fn running() -> StoredAgreement {
        StoredAgreement {
            agreement_id: Uuid::now_v7(),
            reference: "RA-1".to_owned(),
            supplier: "974760673".parse::<OrganisationNumber>().expect("valid"),
            supplier_name: "Leverandør AS".to_owned(),
            county: CountyCode::INNLANDET,
            terms: terms(3),
            ended_on: None,
            end_reason: String::new(),
            version: 1,
        }
    }

    fn terms(capacity: i32) -> ValidTerms {
        ValidTerms {
            areas: vec![CompetenceArea::ALL[0]],
            price_ore: 2_000_000,
            ranking: 1,
            monthly_capacity: capacity,
            validity: DateRange::new(date!(2026 - 01 - 01), date!(2028 - 12 - 31)).expect("range"),
        }
    }

    fn refusal(result: Result<Decision, ApiError>) -> String {
        match result {
            Err(ApiError::FailedPrecondition { reason, .. }) => reason.to_owned(),
            Err(ApiError::InvalidArgument(violations)) => violations[0].field.clone(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn terms_change_and_the_version_moves_while_the_agreement_runs() {
        let mut agreement = running();
        assert!(matches!(
            agreement.change_terms(terms(5)),
            Ok(Decision::Changed(_))
        ));
        assert_eq!(
            (agreement.terms.monthly_capacity, agreement.version),
            (5, 2)
        );
    }

    #[test]
    fn an_agreement_ends_once_within_its_validity_and_then_keeps_its_terms() {
        let mut agreement = running();
        assert_eq!(
            refusal(agreement.end(date!(2029 - 01 - 01), String::new())),
            "end_date"
        );
        assert!(
            agreement
                .end(date!(2027 - 06 - 30), "breach".to_owned())
                .is_ok()
        );
        assert_eq!(agreement.ended_on, Some(date!(2027 - 06 - 30)));
        assert_eq!(
            (agreement.end_reason.as_str(), agreement.version),
            ("breach", 2)
        );
        assert_eq!(
            refusal(agreement.end(date!(2027 - 07 - 01), String::new())),
            "AGREEMENT_ENDED"
        );
        assert_eq!(refusal(agreement.change_terms(terms(5))), "AGREEMENT_ENDED");
        assert_eq!(agreement.version, 2);
    }
}
