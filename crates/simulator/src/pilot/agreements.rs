//! The pilot's framework agreements in the simulated year: which suppliers, in which areas, at
//! which rank, price and monthly capacity — and their registration through the registry's
//! public contract, as NAV's administrator would, before the year starts.
//!
//! Why a book of its own rather than `make run`'s fixture: the fixture has one supplier per
//! area and capacities meant for a demo, so no order would ever go down the ranks or find the
//! month full. Here every area has three suppliers ranked 1–3, one agreement per area and
//! supplier, so an area's capacity is its own; the capacities follow the expected volume, so
//! rank 1 fills in the busy months of a national year and the orders then go to rank 2 or 3
//! (the path the summary calls `capacity_full`), while a quiet month leaves them free.

use std::time::Duration;

use anyhow::{Context, bail};
use ekb_domain::with_valid_check_digit;
use ekb_proto::v1::{self, CompetenceArea};
use ekb_testkit::{
    fixtures::{HAMAR, agreement_request, agreement_terms, case_facts, date_range},
    scenarios::waits::refusal,
    services::with_bearer,
};
use time::{Date, Month};
use tonic::Code;

use crate::{
    plan::{CasePlan, Path},
    timeline::{Caller, Sim},
};

/// The pilot county whose agreements the book holds (Innlandet).
pub const COUNTY: &str = "34";

/// Every competence area; the book covers them all, so a framework choice is never routed
/// REGULAR for want of an agreement.
pub const AREAS: [CompetenceArea; 6] = [
    CompetenceArea::WorkplaceRelations,
    CompetenceArea::SickLeaveFollowUp,
    CompetenceArea::ConflictHandling,
    CompetenceArea::Restructuring,
    CompetenceArea::WorkCapacityAssessment,
    CompetenceArea::CareerGuidance,
];

/// The suppliers (synthetic names; the organisation numbers complete these eight digits).
const SUPPLIERS: [(&str, u32); 6] = [
    ("Mjøsa Arbeidsmiljø AS", 91_734_101),
    ("Gudbrandsdal HMS-partner AS", 91_734_202),
    ("Hedmarken Bedriftshelse AS", 91_734_303),
    ("Valdres Organisasjonsutvikling AS", 91_734_404),
    ("Toten Konflikt og Kommunikasjon AS", 91_734_505),
    ("Østerdal Karriere og Kompetanse AS", 91_734_606),
];

/// How long routing may take to learn the agreements from the registry's events.
const READ_MODEL_TIMEOUT: Duration = Duration::from_secs(60);

/// One agreement of the book, before it is registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementSpec {
    /// NAV's reference, `SIM-<year>-34-<area>-<rank>`.
    pub reference: String,
    /// The supplier's name.
    pub supplier_name: String,
    /// The supplier's organisation number.
    pub supplier_organisation_number: String,
    /// The one area it covers.
    pub area: CompetenceArea,
    /// Its rank in the area (1 first).
    pub ranking: i32,
    /// Orders a calendar month.
    pub monthly_capacity: i32,
    /// Price per assignment, øre excluding VAT.
    pub price_ore: i64,
    /// First day it covers.
    pub valid_from: Date,
    /// Last day it covers.
    pub valid_to: Date,
}

/// A registered agreement, as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementRef {
    /// The registry's id.
    pub agreement_id: String,
    /// NAV's reference.
    pub reference: String,
    /// The supplier's organisation number (the supplier's token acts for it).
    pub supplier_organisation_number: String,
    /// The supplier's name.
    pub supplier_name: String,
    /// The areas it covers.
    pub areas: Vec<CompetenceArea>,
    /// Its rank (1 first).
    pub ranking: i32,
    /// Orders a calendar month.
    pub monthly_capacity: i32,
    /// Price per assignment, øre excluding VAT.
    pub price_ore: i64,
}

impl AgreementRef {
    fn from_wire(agreement: &v1::Agreement) -> Self {
        let terms = agreement.terms.clone().unwrap_or_default();
        AgreementRef {
            agreement_id: agreement.agreement_id.clone(),
            reference: agreement.agreement_reference.clone(),
            supplier_organisation_number: agreement.supplier_organisation_number.clone(),
            supplier_name: agreement.supplier_name.clone(),
            areas: terms
                .competence_areas
                .iter()
                .filter_map(|area| CompetenceArea::try_from(*area).ok())
                .collect(),
            ranking: terms.ranking,
            monthly_capacity: terms.monthly_capacity,
            price_ore: terms.price_per_assignment_ore,
        }
    }
}

/// The mean number of pilot orders a competence area gets in a calendar month of `plans`
/// (over the areas and months that have any), to size [`agreement_book`]'s capacities with.
pub fn orders_per_area_month(plans: &[CasePlan]) -> f64 {
    let mut counts = std::collections::BTreeMap::<(i32, i32, u8), u32>::new();
    let mut areas = std::collections::BTreeSet::new();
    let mut months = std::collections::BTreeSet::new();
    for plan in plans {
        if let (Path::Pilot(_), Some(area)) = (plan.path, plan.area) {
            let month = (plan.opened_on.year(), u8::from(plan.opened_on.month()));
            *counts.entry((area as i32, month.0, month.1)).or_default() += 1;
            areas.insert(area as i32);
            months.insert(month);
        }
    }
    let cells = areas.len() * months.len();
    if cells == 0 {
        return 0.0;
    }
    f64::from(counts.values().sum::<u32>()) / cells as f64
}

/// Monthly capacities of ranks 1, 2 and 3 for an area expecting `per_month` orders a month:
/// rank 1 a little above the mean (full in busy months), ranks 2 and 3 taking the overflow;
/// at least one each.
pub fn capacities(per_month: f64) -> [i32; 3] {
    let at_least_one = |value: f64| {
        if value.is_finite() && value >= 1.0 {
            // Capacities are small numbers; the cast cannot truncate a real volume.
            value.min(f64::from(i32::MAX)) as i32
        } else {
            1
        }
    };
    [
        at_least_one((per_month * 1.1).round()),
        at_least_one((per_month * 0.4).ceil()),
        at_least_one((per_month * 0.25).ceil()),
    ]
}

/// The price per assignment of rank 1 in `area`, øre excluding VAT.
pub(crate) fn base_price(area: CompetenceArea) -> i64 {
    match area {
        CompetenceArea::WorkplaceRelations => 2_150_000,
        CompetenceArea::SickLeaveFollowUp => 2_400_000,
        CompetenceArea::ConflictHandling => 2_300_000,
        CompetenceArea::Restructuring => 2_650_000,
        CompetenceArea::WorkCapacityAssessment => 2_500_000,
        CompetenceArea::CareerGuidance | CompetenceArea::Unspecified => 1_900_000,
    }
}

/// `first8` completed with its mod-11 check digit, or the next eight digits that complete.
fn organisation_number(first8: u32) -> String {
    (first8..first8.saturating_add(20))
        .find_map(|digits| with_valid_check_digit(&format!("{digits:08}")))
        .map_or_else(String::new, |orgnr| orgnr.as_str().to_owned())
}

/// The agreements of county [`COUNTY`] for `year`: three ranked suppliers in each of
/// [`AREAS`], with the capacities of [`capacities`] for `per_month` orders an area a month,
/// valid from 1 January of `year` to the end of the next year (cases opened in December run on
/// under the same agreements).
pub fn agreement_book(year: i32, per_month: f64) -> anyhow::Result<Vec<AgreementSpec>> {
    let valid_from = Date::from_calendar_date(year, Month::January, 1)
        .with_context(|| format!("year {year}"))?;
    let valid_to = Date::from_calendar_date(year + 1, Month::December, 31)
        .with_context(|| format!("year {}", year + 1))?;
    let capacity = capacities(per_month);
    let mut book = Vec::with_capacity(AREAS.len() * 3);
    for (index, area) in AREAS.into_iter().enumerate() {
        for (rank, monthly_capacity) in (1..=3).zip(capacity) {
            let (name, first8) = SUPPLIERS[(index + rank - 1) % SUPPLIERS.len()];
            let price_ore = match rank {
                1 => base_price(area),
                2 => base_price(area) - 100_000,
                _ => base_price(area) + 150_000,
            };
            book.push(AgreementSpec {
                reference: format!("SIM-{year}-{COUNTY}-{}-{rank}", area as i32),
                supplier_name: name.to_owned(),
                supplier_organisation_number: organisation_number(first8),
                area,
                ranking: i32::try_from(rank).unwrap_or(3),
                monthly_capacity,
                price_ore,
                valid_from,
                valid_to,
            });
        }
    }
    Ok(book)
}

/// Orders an area gets a month in the default national year (20 000 cases, Innlandet's share
/// of employment, 70 % of its employers choosing one of five framework areas).
pub const NATIONAL_ORDERS_PER_AREA_MONTH: f64 = 12.7;

/// [`register_agreements_for`] with capacities sized for the default national year
/// ([`NATIONAL_ORDERS_PER_AREA_MONTH`]): a smaller run never fills a month with them.
pub async fn register_agreements(sim: &Sim, year: i32) -> anyhow::Result<Vec<AgreementRef>> {
    register_agreements_sized(sim, year, NATIONAL_ORDERS_PER_AREA_MONTH).await
}

/// Registers the agreements of [`agreement_book`] for `year`, their capacities sized for the
/// pilot cases of `plans` ([`orders_per_area_month`]), so that the busy months fill at any
/// volume. See [`register_agreements_sized`].
pub async fn register_agreements_for(
    sim: &Sim,
    year: i32,
    plans: &[CasePlan],
) -> anyhow::Result<Vec<AgreementRef>> {
    register_agreements_sized(sim, year, orders_per_area_month(plans)).await
}

/// Registers the agreements of [`agreement_book`] for `year` (capacities for `per_month`
/// orders an area a month) through the registry as NAV's administrator, and waits until
/// routing routes a framework choice in every area to the pilot. An agreement registered by an
/// earlier run (ALREADY_EXISTS) counts as there, with the terms the registry holds. Returns
/// them as the registry holds them.
pub async fn register_agreements_sized(
    sim: &Sim,
    year: i32,
    per_month: f64,
) -> anyhow::Result<Vec<AgreementRef>> {
    let book = agreement_book(year, per_month)?;
    let token = sim.token(&Caller::System);
    for spec in &book {
        let terms = v1::AgreementTerms {
            price_per_assignment_ore: spec.price_ore,
            ranking: spec.ranking,
            monthly_capacity: spec.monthly_capacity,
            validity: Some(date_range(
                &spec.valid_from.to_string(),
                &spec.valid_to.to_string(),
            )),
            ..agreement_terms(&[spec.area])
        };
        let request = agreement_request(
            &spec.reference,
            &spec.supplier_organisation_number,
            &spec.supplier_name,
            COUNTY,
            terms,
        );
        match sim
            .clients
            .registry
            .clone()
            .register_agreement(with_bearer(request, &token))
            .await
        {
            Ok(_) => {}
            Err(status) if status.code() == Code::AlreadyExists => {}
            Err(status) => bail!(
                "registering agreement {}: {}",
                spec.reference,
                refusal(&status)
            ),
        }
    }
    let probe = probe_date(sim.today(), year)?;
    let mut registered = Vec::with_capacity(book.len());
    for area in AREAS {
        let found = find_agreements(sim, area, &probe.to_string()).await?;
        registered.extend(
            found
                .iter()
                .filter(|agreement| {
                    book.iter()
                        .any(|spec| spec.reference == agreement.agreement_reference)
                })
                .map(AgreementRef::from_wire),
        );
    }
    if registered.len() != book.len() {
        bail!(
            "the registry holds {} of the {} simulated agreements active on {probe}",
            registered.len(),
            book.len()
        );
    }
    routing_sees_every_area(sim, &probe.to_string()).await?;
    Ok(registered)
}

/// The day the registration is checked on: today, or 1 January of `year` if that is later.
fn probe_date(today: Date, year: i32) -> anyhow::Result<Date> {
    let first = Date::from_calendar_date(year, Month::January, 1)
        .with_context(|| format!("year {year}"))?;
    Ok(today.max(first))
}

/// The registry's agreements covering `area` in [`COUNTY`] on `date`, best rank first.
pub async fn find_agreements(
    sim: &Sim,
    area: CompetenceArea,
    date: &str,
) -> anyhow::Result<Vec<v1::Agreement>> {
    let request = with_bearer(
        v1::FindAgreementsRequest {
            county_code: COUNTY.to_owned(),
            competence_area: area as i32,
            on_date: date.to_owned(),
        },
        &sim.token(&Caller::System),
    );
    match sim.clients.registry.clone().find_agreements(request).await {
        Ok(found) => Ok(found.into_inner().agreements),
        Err(status) => bail!("FindAgreements: {}", refusal(&status)),
    }
}

/// Waits until routing's read model (fed by the registry's events) routes a framework choice
/// in Hamar to the pilot in every area on `date`.
async fn routing_sees_every_area(sim: &Sim, date: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + READ_MODEL_TIMEOUT;
    let token = sim.token(&Caller::System);
    for area in AREAS {
        loop {
            let request = with_bearer(
                v1::EvaluateRouteRequest {
                    facts: Some(case_facts(HAMAR, Some(area), date)),
                },
                &token,
            );
            let decision = match sim.clients.routing.clone().evaluate_route(request).await {
                Ok(answer) => answer.into_inner().decision.unwrap_or_default(),
                Err(status) => bail!("EvaluateRoute: {}", refusal(&status)),
            };
            match decision.reason() {
                v1::RoutingReason::PilotEligible => break,
                v1::RoutingReason::NoAgreementForArea if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                reason => bail!(
                    "routing routes a framework choice of {} in Hamar on {date} {:?} ({}): check \
                     routing's pilot counties and period",
                    area.as_str_name(),
                    decision.flow(),
                    reason.as_str_name()
                ),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ekb_domain::OrganisationNumber;
    use time::macros::date;

    use super::*;
    use crate::pilot::PilotPath;

    #[test]
    fn every_area_has_three_ranked_suppliers_with_valid_numbers_and_distinct_references() {
        let book = agreement_book(2027, 12.7).expect("a book");
        assert_eq!(book.len(), AREAS.len() * 3);
        for area in AREAS {
            let ranks: Vec<i32> = book
                .iter()
                .filter(|spec| spec.area == area)
                .map(|spec| spec.ranking)
                .collect();
            assert_eq!(ranks, [1, 2, 3], "{area:?}");
            let suppliers: std::collections::BTreeSet<&str> = book
                .iter()
                .filter(|spec| spec.area == area)
                .map(|spec| spec.supplier_organisation_number.as_str())
                .collect();
            assert_eq!(suppliers.len(), 3, "three different suppliers in {area:?}");
        }
        for spec in &book {
            OrganisationNumber::parse(&spec.supplier_organisation_number)
                .expect("a valid organisation number");
            assert!(spec.reference.len() <= 64);
            assert_eq!(spec.valid_from, date!(2027 - 01 - 01));
            assert_eq!(spec.valid_to, date!(2028 - 12 - 31));
            assert!(spec.price_ore > 0);
        }
        let mut references: Vec<&str> = book.iter().map(|spec| spec.reference.as_str()).collect();
        references.sort_unstable();
        references.dedup();
        assert_eq!(references.len(), book.len());
    }

    #[test]
    fn rank_one_fills_in_busy_months_and_small_volumes_keep_one_order_each() {
        assert_eq!(capacities(12.7), [14, 6, 4]);
        assert_eq!(capacities(0.2), [1, 1, 1]);
        assert_eq!(capacities(0.0), [1, 1, 1]);
        assert_eq!(capacities(f64::NAN), [1, 1, 1]);
    }

    #[test]
    fn the_volume_per_area_and_month_counts_pilot_cases_only() {
        let plan = |number: u32, day: Date, area: Option<CompetenceArea>, path: Path| CasePlan {
            number,
            county: "34".to_owned(),
            municipality: "3403".to_owned(),
            opened_on: day,
            employee: String::new(),
            employer: String::new(),
            area,
            path,
            seed: 0,
        };
        let pilot = Path::Pilot(PilotPath::Completed);
        let restructuring = Some(CompetenceArea::Restructuring);
        let plans = [
            plan(1, date!(2027 - 01 - 04), restructuring, pilot),
            plan(2, date!(2027 - 01 - 05), restructuring, pilot),
            plan(3, date!(2027 - 02 - 01), restructuring, pilot),
            plan(
                4,
                date!(2027 - 02 - 02),
                None,
                Path::Regular(crate::regular::RegularPath::ALL[0]),
            ),
        ];
        assert!((orders_per_area_month(&plans) - 1.5).abs() < 1e-9);
        assert!(orders_per_area_month(&[]).abs() < 1e-9);
    }

    #[test]
    fn the_probe_is_the_later_of_today_and_new_year() {
        assert_eq!(
            probe_date(date!(2026 - 12 - 30), 2027).expect("a day"),
            date!(2027 - 01 - 01)
        );
        assert_eq!(
            probe_date(date!(2027 - 03 - 01), 2027).expect("a day"),
            date!(2027 - 03 - 01)
        );
    }
}
