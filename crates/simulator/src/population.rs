//! The year from a seed: which cases open, where, on which day and on which path.
//!
//! Everything random here comes from one ChaCha generator seeded with the run's seed, drawn in a
//! fixed order, so the same seed and configuration give the same year, case for case — what a
//! failing fault seed needs to be reproduced. Cases spread over the counties in proportion to
//! their employees, over the working days of the year evenly, and over each flow's paths by the
//! configured mix. In the pilot county a share of employers choose a framework area (the pilot
//! flow); everyone else chooses their own expert (the regular flow).

use std::collections::BTreeMap;

use anyhow::{Context, bail, ensure};
use ekb_domain::{CountyCode, MunicipalityStructure, with_valid_check_digit};
use ekb_testkit::people::synthetic_fodselsnummer;
use rand::{Rng, SeedableRng, distr::weighted::WeightedIndex, prelude::Distribution};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use time::{Date, Duration, Month, Weekday};

use crate::{
    pilot::{PilotPath, agreements::AREAS},
    plan::{CasePlan, Path},
    regular::RegularPath,
};

/// The default year (`national-year.toml`), compiled in.
pub const NATIONAL_YEAR: &str = include_str!("../national-year.toml");

/// The simulated year's volume and mix (the shape of `national-year.toml`).
#[derive(Debug, Clone, Deserialize)]
pub struct YearConfig {
    /// The year cases open in.
    pub year: i32,
    /// Cases opened in the year.
    pub cases: u32,
    /// Employees per county, and where the figures come from.
    pub employees: Employees,
    /// The pilot county and its employers' choice.
    pub pilot: PilotConfig,
    /// How large the appropriation is.
    pub budget: BudgetConfig,
    /// Path weights per flow, by path name.
    #[serde(default)]
    pub mix: Mix,
}

/// Employees per county, which spread the cases.
#[derive(Debug, Clone, Deserialize)]
pub struct Employees {
    /// Where the figures come from.
    pub source: String,
    /// Employees by county code.
    #[serde(flatten)]
    pub by_county: BTreeMap<String, u64>,
}

/// The pilot in the simulation.
#[derive(Debug, Clone, Deserialize)]
pub struct PilotConfig {
    /// The pilot county.
    pub county: String,
    /// The share of its employers who choose a framework area.
    pub framework_share: f64,
}

/// The appropriation.
#[derive(Debug, Clone, Deserialize)]
pub struct BudgetConfig {
    /// The appropriation as a share of what every grant and order of the year would reserve.
    pub appropriation_share: f64,
}

/// Path weights per flow, by path name; a path not named keeps its default weight.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Mix {
    /// Regular-flow path weights.
    #[serde(default)]
    pub regular: BTreeMap<String, f64>,
    /// Pilot path weights.
    #[serde(default)]
    pub pilot: BTreeMap<String, f64>,
}

impl YearConfig {
    /// The default year with `file`'s keys over it (if given).
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            NATIONAL_YEAR,
            config::FileFormat::Toml,
        ));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml));
        }
        let year: YearConfig = builder
            .build()
            .context("reading the year's configuration")?
            .try_deserialize()
            .context("the year's configuration")?;
        year.validate()?;
        Ok(year)
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.cases >= 1, "cases: must be at least 1");
        ensure!(
            (0.0..=1.0).contains(&self.pilot.framework_share),
            "pilot.framework_share: must be between 0 and 1"
        );
        ensure!(
            self.budget.appropriation_share > 0.0,
            "budget.appropriation_share: must be above 0"
        );
        for code in self.employees.by_county.keys() {
            let county = CountyCode::parse(code)
                .ok()
                .filter(|county| county.name().is_some())
                .with_context(|| format!("employees.{code}: not a county of the 2024 structure"))?;
            ensure!(
                !MunicipalityStructure::Y2024
                    .municipalities_in(county)
                    .is_empty(),
                "employees.{code}: the county has no municipalities"
            );
        }
        ensure!(
            self.employees
                .by_county
                .values()
                .any(|employees| *employees > 0),
            "employees: at least one county must have employees"
        );
        for name in self.mix.regular.keys() {
            ensure!(
                RegularPath::ALL.iter().any(|path| path.name() == name),
                "mix.regular.{name}: no such path (paths: {})",
                names(RegularPath::ALL.iter().map(|path| path.name()))
            );
        }
        for name in self.mix.pilot.keys() {
            ensure!(
                PilotPath::ALL.iter().any(|path| path.name() == name),
                "mix.pilot.{name}: no such path (paths: {})",
                names(PilotPath::ALL.iter().map(|path| path.name()))
            );
        }
        Ok(())
    }
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// The year's cases, in the order they open.
pub fn cases(config: &YearConfig, seed: u64) -> anyhow::Result<Vec<CasePlan>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let counties: Vec<(&String, &u64)> = config.employees.by_county.iter().collect();
    let county_pick = WeightedIndex::new(counties.iter().map(|(_, employees)| **employees))
        .context("employees: the weights")?;
    let regular_pick = weights(RegularPath::ALL, &config.mix.regular, |path| {
        (path.name(), path.weight_default())
    })?;
    let pilot_pick = weights(PilotPath::ALL, &config.mix.pilot, |path| {
        (path.name(), path.weight_default())
    })?;
    let days = working_days(config.year);
    if days.is_empty() {
        bail!("year {}: no working days", config.year);
    }
    let mut plans = Vec::with_capacity(config.cases as usize);
    for number in 1..=config.cases {
        let (code, _) = counties[county_pick.sample(&mut rng)];
        let county = CountyCode::parse(code).context("a county code")?;
        let municipalities = MunicipalityStructure::Y2024.municipalities_in(county);
        let municipality = &municipalities[rng.random_range(0..municipalities.len())];
        let index = (u64::from(number - 1) * days.len() as u64 / u64::from(config.cases)) as usize;
        let opened_on = days[index.min(days.len() - 1)];
        let pilot = *code == config.pilot.county && rng.random_bool(config.pilot.framework_share);
        let (area, path) = if pilot {
            let area = AREAS[rng.random_range(0..AREAS.len())];
            (
                Some(area),
                Path::Pilot(PilotPath::ALL[pilot_pick.sample(&mut rng)]),
            )
        } else {
            (
                None,
                Path::Regular(RegularPath::ALL[regular_pick.sample(&mut rng)]),
            )
        };
        plans.push(CasePlan {
            number,
            county: code.clone(),
            municipality: municipality.as_str().to_owned(),
            opened_on,
            employee: employee(number),
            employer: employer(number),
            area,
            path,
            seed: rng.random(),
        });
    }
    Ok(plans)
}

/// A weighted choice over `paths`: the configured weight by name, else the path's default.
fn weights<P: Copy>(
    paths: &[P],
    configured: &BTreeMap<String, f64>,
    default: impl Fn(P) -> (&'static str, f64),
) -> anyhow::Result<WeightedIndex<f64>> {
    WeightedIndex::new(paths.iter().map(|path| {
        let (name, weight) = default(*path);
        configured.get(name).copied().unwrap_or(weight)
    }))
    .context("mix: the path weights must be non-negative and not all zero")
}

/// Monday to Friday of `year`.
fn working_days(year: i32) -> Vec<Date> {
    let Ok(mut day) = Date::from_calendar_date(year, Month::January, 1) else {
        return Vec::new();
    };
    let mut days = Vec::new();
    while day.year() == year {
        if !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
            days.push(day);
        }
        day += Duration::days(1);
    }
    days
}

/// Case `number`'s employee: a synthetic fødselsnummer (month + 80), born 1960–1999.
fn employee(number: u32) -> String {
    let born = Date::from_calendar_date(1960, Month::January, 1).unwrap_or(Date::MIN)
        + Duration::days(i64::from(number.wrapping_mul(7_919) % 14_600));
    let ddmmyy = format!(
        "{:02}{:02}{:02}",
        born.day(),
        u8::from(born.month()),
        born.year() % 100
    );
    synthetic_fodselsnummer(&ddmmyy, number % 500)
}

/// Case `number`'s employer: one of a few thousand organisation numbers with valid check digits
/// (employers have more than one case a year).
fn employer(number: u32) -> String {
    (0..11)
        .find_map(|step| {
            with_valid_check_digit(&format!("{}", 91_000_000 + (number % 4_000) * 17 + step))
        })
        .map(|organisation| organisation.as_str().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use ekb_domain::{Fodselsnummer, OrganisationNumber, SyntheticPolicy};

    use super::*;

    fn small(cases: u32) -> YearConfig {
        let mut config = YearConfig::load(None).expect("the default year loads");
        config.cases = cases;
        config
    }

    #[test]
    fn the_same_seed_gives_the_same_year_and_another_seed_another() {
        let config = small(500);
        let first = cases(&config, 7).expect("planned");
        let again = cases(&config, 7).expect("planned");
        let other = cases(&config, 8).expect("planned");
        let key = |plans: &[CasePlan]| -> Vec<(String, Date, Path, u64)> {
            plans
                .iter()
                .map(|p| (p.municipality.clone(), p.opened_on, p.path, p.seed))
                .collect()
        };
        assert_eq!(key(&first), key(&again));
        assert_ne!(key(&first), key(&other));
    }

    #[test]
    fn cases_follow_employment_and_only_the_pilot_county_has_pilot_cases() {
        let config = small(20_000);
        let plans = cases(&config, 1).expect("planned");
        assert_eq!(plans.len(), 20_000);
        let in_county = |code: &str| plans.iter().filter(|p| p.county == code).count();
        let oslo = in_county("03") as f64;
        let finnmark = in_county("56") as f64;
        // 560 000 vs 37 000 employees: about 15 times as many cases.
        assert!(
            (10.0..20.0).contains(&(oslo / finnmark)),
            "{oslo} / {finnmark}"
        );
        assert_eq!(
            CountyCode::all_2024().count(),
            plans
                .iter()
                .map(|p| p.county.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
        for plan in &plans {
            let pilot = matches!(plan.path, Path::Pilot(_));
            assert_eq!(pilot, plan.area.is_some());
            assert!(!pilot || plan.county == "34", "case {}", plan.number);
            assert!(plan.municipality.starts_with(&plan.county));
            assert_eq!(plan.opened_on.year(), 2027);
            assert!(!matches!(
                plan.opened_on.weekday(),
                Weekday::Saturday | Weekday::Sunday
            ));
        }
        let pilot = plans
            .iter()
            .filter(|p| matches!(p.path, Path::Pilot(_)))
            .count() as f64;
        let share = pilot / in_county("34") as f64;
        assert!((0.6..0.8).contains(&share), "{share}");
    }

    #[test]
    fn people_and_employers_are_valid_numbers() {
        for number in [1, 2, 499, 500, 19_999, 20_000] {
            assert!(
                Fodselsnummer::parse(&employee(number), SyntheticPolicy::Accept).is_ok(),
                "case {number}"
            );
            assert!(
                OrganisationNumber::parse(&employer(number)).is_ok(),
                "case {number}"
            );
        }
    }

    #[test]
    fn a_mix_naming_no_path_is_refused_with_the_paths_there_are() {
        let mut config = small(10);
        config.mix.regular.insert("teleported".to_owned(), 1.0);
        let error = config.validate().expect_err("refused").to_string();
        assert!(error.contains("mix.regular.teleported"), "{error}");
    }
}
