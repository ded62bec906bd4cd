//! The sample cases `make run` routes, and the table it prints.
//!
//! Six cases chosen so that together they show both flows and every routing reason: one pilot
//! case and one case per reason for the regular flow, including an own-expert choice outside
//! Innlandet (the county decides before the choice does). Each case states the reason the
//! fixture alone gives it. Data is kept between runs, so what routing answers may differ — an
//! agreement a developer registered yesterday covers the area the fixture leaves uncovered —
//! and the launcher reports what it saw: the table shows routing's answer, and each case that
//! differs gets a note saying why, from what the registry holds ([`notes`]). The smoke test
//! checks that a fresh run differs nowhere.

use anyhow::{Context, bail};
use ekb_domain::MunicipalityNumber;
use ekb_proto::v1::{
    CompetenceArea, Flow, RoutingReason,
    expert_registry_service_client::ExpertRegistryServiceClient,
    routing_service_client::RoutingServiceClient,
};
use ekb_testkit::fixtures::{BERGEN, GJOVIK, HAMAR, LILLEHAMMER, OSLO, case_facts, open_case};
use tonic::transport::Channel;

use crate::{
    fixture::{self, area_name},
    table::{self, Align},
};

/// The date of every sample case that is meant to be inside the pilot period.
const CASE_DATE: &str = "2026-03-02";

/// One sample case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SampleCase {
    /// 4-digit municipality number of the business unit.
    municipality: &'static str,
    /// The municipality's name (the domain knows county names only).
    place: &'static str,
    /// A framework-agreement area, or `None` for the employer's own expert.
    area: Option<CompetenceArea>,
    /// Case date.
    date: &'static str,
    /// The reason routing gives it with the fixture alone and the default pilot settings.
    expected: RoutingReason,
}

/// Both flows, every reason.
const SAMPLE_CASES: [SampleCase; 6] = [
    SampleCase {
        municipality: HAMAR,
        place: "Hamar",
        area: Some(CompetenceArea::ConflictHandling),
        date: CASE_DATE,
        expected: RoutingReason::PilotEligible,
    },
    SampleCase {
        municipality: LILLEHAMMER,
        place: "Lillehammer",
        area: None,
        date: CASE_DATE,
        expected: RoutingReason::EmployerChoseOwnExpert,
    },
    SampleCase {
        municipality: GJOVIK,
        place: "Gjøvik",
        area: Some(CompetenceArea::CareerGuidance),
        date: CASE_DATE,
        expected: RoutingReason::NoAgreementForArea,
    },
    SampleCase {
        municipality: BERGEN,
        place: "Bergen",
        area: Some(CompetenceArea::SickLeaveFollowUp),
        date: CASE_DATE,
        expected: RoutingReason::OutsidePilotCounty,
    },
    SampleCase {
        municipality: OSLO,
        place: "Oslo",
        area: None,
        date: CASE_DATE,
        expected: RoutingReason::OutsidePilotCounty,
    },
    SampleCase {
        municipality: HAMAR,
        place: "Hamar",
        area: Some(CompetenceArea::ConflictHandling),
        date: "2021-06-01",
        expected: RoutingReason::OutsidePilotPeriod,
    },
];

/// One routed case, ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedRow {
    /// The case id routing minted.
    pub case_id: String,
    /// `3403 Hamar, Innlandet`.
    pub municipality: String,
    /// Case date.
    pub date: String,
    /// `framework: CONFLICT_HANDLING` or `own expert`.
    pub choice: String,
    /// `PILOT` / `REGULAR`.
    pub flow: String,
    /// `PILOT_ELIGIBLE`, `OUTSIDE_PILOT_COUNTY`, …
    pub reason: String,
    /// The reason the fixture alone gives (equal to `reason` unless earlier data or settings
    /// changed the outcome).
    pub expected: String,
    /// The number of its note in [`notes`], if it differs from the fixture alone.
    pub note: Option<usize>,
    sample: SampleCase,
    routed: RoutingReason,
}

impl RoutedRow {
    /// Whether routing's answer differs from what the fixture alone gives.
    pub fn differs(&self) -> bool {
        self.routed != self.sample.expected
    }
}

/// Opens every sample case through OpenCase (fresh request ids: a new run opens new cases)
/// and returns the rows, numbering the notes of those that differ from the fixture alone.
pub async fn route_all(
    routing: &mut RoutingServiceClient<Channel>,
) -> anyhow::Result<Vec<RoutedRow>> {
    let mut rows = Vec::with_capacity(SAMPLE_CASES.len());
    let mut notes = 0;
    for sample in SAMPLE_CASES {
        let response = routing
            .open_case(open_case(case_facts(
                sample.municipality,
                sample.area,
                sample.date,
            )))
            .await
            .with_context(|| {
                format!(
                    "OpenCase for {} {} on {}",
                    sample.municipality, sample.place, sample.date
                )
            })?
            .into_inner();
        let case = response.case.context("OpenCase answered without a case")?;
        let decision = case.decision.context("the case has no routing decision")?;
        let routed = decision.reason();
        let note = (routed != sample.expected).then(|| {
            notes += 1;
            notes
        });
        rows.push(RoutedRow {
            case_id: case.case_id,
            municipality: municipality_label(&sample)?,
            date: sample.date.to_owned(),
            choice: match sample.area {
                Some(area) => format!("framework: {}", area_name(area)),
                None => "own expert".to_owned(),
            },
            flow: flow_name(decision.flow()).to_owned(),
            reason: reason_name(routed).to_owned(),
            expected: reason_name(sample.expected).to_owned(),
            note,
            sample,
            routed,
        });
    }
    Ok(rows)
}

/// What `scripts/run.sh --fresh` is for, appended to every note about kept data.
pub const FRESH_HINT: &str =
    "Data is kept between runs; `scripts/run.sh --fresh` (ekb-dev --fresh) starts empty.";

/// One note per row that differs from the fixture alone, numbered as in the table: what
/// routing answered, what the fixture alone gives, and why, from what the registry now holds.
pub async fn notes(
    rows: &[RoutedRow],
    registry: &mut ExpertRegistryServiceClient<Channel>,
) -> anyhow::Result<Vec<String>> {
    let mut notes = Vec::new();
    for row in rows {
        let Some(number) = row.note else { continue };
        let why = explain(row, registry).await?;
        notes.push(format!(
            "Note {number}: {} ({}, {}) was routed {}, which differs from the fixture alone \
             ({}): {why}",
            row.municipality, row.choice, row.date, row.reason, row.expected
        ));
    }
    Ok(notes)
}

/// Why `row` was routed as it was rather than as the fixture alone gives.
async fn explain(
    row: &RoutedRow,
    registry: &mut ExpertRegistryServiceClient<Channel>,
) -> anyhow::Result<String> {
    let coverage_decides = |reason| {
        matches!(
            reason,
            RoutingReason::PilotEligible | RoutingReason::NoAgreementForArea
        )
    };
    let (Some(area), true, true) = (
        row.sample.area,
        coverage_decides(row.routed),
        coverage_decides(row.sample.expected),
    ) else {
        let why = "routing's pilot settings differ from the defaults the sample cases assume \
                   (pilot.counties, pilot.periods: are EKB__PILOT__COUNTIES or \
                   EKB__PILOT__PERIODS set in this shell?)";
        return Ok(why.to_owned());
    };
    let county = MunicipalityNumber::parse(row.sample.municipality)
        .with_context(|| format!("sample municipality {}", row.sample.municipality))?
        .county();
    let agreements =
        fixture::covering_agreements(registry, county.as_str(), area, row.sample.date).await?;
    let others: Vec<_> = agreements
        .iter()
        .filter(|agreement| !fixture::is_fixture_agreement(&agreement.agreement_reference))
        .cloned()
        .collect();
    let area = area_name(area);
    let date = row.sample.date;
    let why = match (row.routed, others.is_empty(), agreements.is_empty()) {
        (RoutingReason::PilotEligible, false, _) => format!(
            "{} covers {area} in county {county} on {date}, registered in an earlier run (not \
             part of the fixture). {FRESH_HINT}",
            fixture::references(&others),
        ),
        (RoutingReason::PilotEligible, true, _) => format!(
            "routing's read model still has an agreement covering {area} in county {county} on \
             {date} that the registry no longer finds active (its AgreementEnded or \
             AgreementUpdated event was lost with an earlier run's embedded broker?). \
             {FRESH_HINT}"
        ),
        (_, _, true) => format!(
            "no agreement covers {area} in county {county} on {date} any more: an earlier run \
             ended or changed the fixture's agreement. {FRESH_HINT}"
        ),
        (_, _, false) => format!(
            "the registry has {} covering {area} in county {county} on {date}, but routing's \
             read model lacks it (its event was lost with an earlier run's embedded broker?). \
             {FRESH_HINT}",
            fixture::references(&agreements)
        ),
    };
    Ok(why)
}

/// The rows as an aligned table with a header line.
pub fn table(rows: &[RoutedRow]) -> String {
    let header = [
        "CASE",
        "MUNICIPALITY",
        "DATE",
        "EMPLOYER'S CHOICE",
        "FLOW",
        "REASON",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            [
                short_id(&row.case_id),
                row.municipality.clone(),
                row.date.clone(),
                row.choice.clone(),
                row.flow.clone(),
                match row.note {
                    Some(number) => format!("{} (note {number})", row.reason),
                    None => row.reason.clone(),
                },
            ]
        })
        .collect();
    table::aligned(header, [Align::Left; 6], &cells)
}

/// The case id's last 12 hex digits: routing mints UUID v7s, whose leading digits are a
/// timestamp and would be equal for cases opened in the same moment.
fn short_id(case_id: &str) -> String {
    let tail: String = case_id
        .chars()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// `3403 Hamar, Innlandet`, with the county named by the domain's county table.
fn municipality_label(sample: &SampleCase) -> anyhow::Result<String> {
    let municipality = MunicipalityNumber::parse(sample.municipality)
        .with_context(|| format!("sample municipality {}", sample.municipality))?;
    let county = municipality.county();
    let Some(county_name) = county.name() else {
        bail!("sample municipality {municipality} lies in unknown county {county}");
    };
    Ok(format!("{municipality} {}, {county_name}", sample.place))
}

/// `FLOW_PILOT` → `PILOT`.
pub fn flow_name(flow: Flow) -> &'static str {
    let name = flow.as_str_name();
    name.strip_prefix("FLOW_").unwrap_or(name)
}

/// `ROUTING_REASON_NO_AGREEMENT_FOR_AREA` → `NO_AGREEMENT_FOR_AREA`.
fn reason_name(reason: RoutingReason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix("ROUTING_REASON_").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_samples_show_both_flows_and_every_reason() {
        let reasons: Vec<RoutingReason> = SAMPLE_CASES.iter().map(|s| s.expected).collect();
        for reason in [
            RoutingReason::PilotEligible,
            RoutingReason::OutsidePilotCounty,
            RoutingReason::OutsidePilotPeriod,
            RoutingReason::EmployerChoseOwnExpert,
            RoutingReason::NoAgreementForArea,
        ] {
            assert!(reasons.contains(&reason), "{reason:?} missing");
        }
    }

    #[test]
    fn every_sample_municipality_has_a_county_name() {
        for sample in SAMPLE_CASES {
            let label = municipality_label(&sample).expect("known county");
            assert!(label.starts_with(sample.municipality), "{label}");
        }
        let hamar = municipality_label(&SAMPLE_CASES[0]).expect("Hamar");
        assert_eq!(hamar, "3403 Hamar, Innlandet");
    }

    #[test]
    fn the_table_aligns_columns_and_shortens_ids() {
        let row = |id: &str, municipality: &str, reason: &str| RoutedRow {
            case_id: id.to_owned(),
            municipality: municipality.to_owned(),
            date: "2026-03-02".to_owned(),
            choice: "own expert".to_owned(),
            flow: "REGULAR".to_owned(),
            reason: reason.to_owned(),
            expected: reason.to_owned(),
            note: None,
            sample: SAMPLE_CASES[1],
            routed: RoutingReason::EmployerChoseOwnExpert,
        };
        let text = table(&[
            row(
                "0197a3b2-0000-7000-8000-00000000abcd",
                "3403 Hamar, Innlandet",
                "EMPLOYER_CHOSE_OWN_EXPERT",
            ),
            row(
                "0197a3b2-0000-7000-8000-0000000000ef",
                "4601 Bergen, Vestland",
                "OUTSIDE_PILOT_COUNTY",
            ),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("…00000000abcd"), "{text}");
        let column =
            |line: &str, needle: &str| line.find(needle).map(|i| line[..i].chars().count());
        assert_eq!(column(lines[0], "REASON"), column(lines[1], "EMPLOYER"));
        assert_eq!(column(lines[1], "REGULAR"), column(lines[2], "REGULAR"));
    }

    #[test]
    fn a_row_that_differs_points_to_its_note() {
        let gjovik = SAMPLE_CASES[2];
        assert_eq!(gjovik.expected, RoutingReason::NoAgreementForArea);
        let row = RoutedRow {
            case_id: "0197a3b2-0000-7000-8000-00000000abcd".to_owned(),
            municipality: municipality_label(&gjovik).expect("known county"),
            date: gjovik.date.to_owned(),
            choice: "framework: CAREER_GUIDANCE".to_owned(),
            flow: "PILOT".to_owned(),
            reason: "PILOT_ELIGIBLE".to_owned(),
            expected: "NO_AGREEMENT_FOR_AREA".to_owned(),
            note: Some(1),
            sample: gjovik,
            routed: RoutingReason::PilotEligible,
        };
        assert!(row.differs());
        let text = table(&[row]);
        assert!(text.contains("PILOT_ELIGIBLE (note 1)"), "{text}");
    }
}
