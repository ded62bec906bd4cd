//! Shapes shared by several event types, so a consumer can handle them with one generic
//! handler instead of one copy per type.

use crate::v1;

/// An expert-registry event that carries an agreement's full state (ADR 0018: full state for
/// read models): AgreementActivated, AgreementUpdated and AgreementEnded.
pub trait CarriesAgreement {
    /// The agreement as it is after the change.
    fn agreement(&self) -> Option<&v1::Agreement>;
}

macro_rules! carries_agreement {
    ($($event:ty),*) => {
        $(impl CarriesAgreement for $event {
            fn agreement(&self) -> Option<&v1::Agreement> {
                self.agreement.as_ref()
            }
        })*
    };
}

carries_agreement!(
    v1::AgreementActivated,
    v1::AgreementUpdated,
    v1::AgreementEnded
);
