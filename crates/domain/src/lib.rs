//! Pure domain rules and types for the ekspertbistand platform: identifiers with checksums,
//! money, counties, competence areas, the pilot and routing policy, the grant rate table and
//! name validation.
//!
//! This crate does no I/O, so every rule here can be tested in isolation and reused by every
//! service. Everything public is re-exported at the crate root.

mod account;
mod calendar_months;
mod coded_enum;
mod competence_area;
mod config_error;
mod date_range;
mod digits;
mod error;
mod fodselsnummer;
mod four_eyes;
mod money;
mod municipality;
mod organisation_number;
mod oslo_calendar;
mod personal_data_cipher;
mod pilot_policy;
mod pseudonym_key;
mod routing_policy;
mod serde_str;
mod text;

pub use account::{Account, AccountError};
pub use calendar_months::{CalendarMonths, NotCalendarMonths};
pub use competence_area::CompetenceArea;
pub use config_error::PolicyConfigError;
pub use date_range::{DateRange, parse_iso_date};
pub use error::DomainError;
pub use fodselsnummer::{Fodselsnummer, SyntheticPolicy};
pub use four_eyes::{FourEyes, SamePerson};
pub use money::Money;
pub use municipality::{CountyCode, MunicipalityNumber, MunicipalityStructure};
pub use organisation_number::{OrganisationNumber, with_valid_check_digit};
pub use oslo_calendar::{month_start, oslo_date, oslo_offset, oslo_start_of_day};
pub use personal_data_cipher::{
    PERSONAL_DATA_KEY_BYTES, PersonalDataCipher, contains_fodselsnummer,
};
pub use pilot_policy::PilotPolicy;
pub use pseudonym_key::{MIN_PSEUDONYM_KEY_BYTES, PseudonymKey};
pub use routing_policy::{
    AgreementCoverage, ExpertChoice, Flow, RoutingDecision, RoutingReason, RoutingRequest,
    StaticCoverage, decide_route,
};
pub use text::validate_name;
