//! One simulation from start to verdict: plan the year, start the system on the shared clock,
//! set the year up (appropriations, the pilot's agreements), run every case as a task while the
//! timeline moves day by day, let the system settle, check the invariants, and measure.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use ekb_devstack::{budget_demo::ACCOUNT, launcher::Stack};
use ekb_platform::clock::ClockFile;
use ekb_proto::v1::SetAppropriationRequest;
use ekb_testkit::{scenarios::Clients, services::with_bearer};
use indicatif::{ProgressBar, ProgressStyle};
use time::{Date, Month};
use tokio::task::JoinSet;

use crate::{
    baseline,
    commits::DatabaseWork,
    cpu::{CpuMeter, CpuSplit, CpuUse},
    faults::{Injector, Schedule},
    invariants::{self, BudgetSampler, Violation, evaluation::Headline, settle::settle},
    options::Options,
    pilot,
    plan::{CaseOutcome, CasePlan, Path},
    population::{self, YearConfig},
    regular,
    summary::{Failure, Report},
    system,
    timeline::{Caller, Sim, Timeline},
    vacuum::{Vacuumer, Vacuums},
};

/// How often the appropriation is compared with what is committed during the year.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// The system has settled when no outbox has rows to publish and no inbox grows for this long.
const SETTLE_QUIET: Duration = Duration::from_secs(3);
/// How long settling may take after the last case.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one simulation of `year` with `seed` (and the fault schedule of `faults`, if any).
pub async fn simulate(
    options: &Options,
    year: &YearConfig,
    seed: u64,
    faults: Option<u64>,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let plans = population::cases(year, seed)?;
    let run_dir = run_dir(options, seed, faults);
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let clock = ClockFile::create(&run_dir.join("clock"))?;
    let first_day = Date::from_calendar_date(year.year, Month::January, 1)?;
    let timeline = Timeline::start(clock.clone(), first_day)?;
    let settings: Vec<(&'static str, &str, &str)> = regular::SETTINGS
        .iter()
        .chain(pilot::SETTINGS)
        .copied()
        .collect();
    let database_prefix =
        system::database_prefix(options.campaign.is_some().then_some(faults).flatten());
    let launcher = system::options(&run_dir, &clock, &database_prefix, &settings)?;
    let mut stack = system::start(&launcher).await?;
    let schedule = faults.map_or_else(Schedule::default, |faults| {
        Schedule::from_seed(faults, first_day, 365, stack.services.len())
    });
    let mut injector = Injector::new(schedule);
    let year_run = run_year(
        &mut stack,
        &plans,
        year,
        timeline,
        options,
        &mut injector,
        &database_prefix,
    )
    .await;
    let stopped_replicas = injector.stop().await;
    let peak_rss_mib = stack
        .services
        .iter()
        .map(|service| {
            let mib = ekb_bench::process_stats::peak_rss_mib(service.pid()).unwrap_or(f64::NAN);
            (service.name.clone(), mib)
        })
        .collect();
    let stopped = stack.stop().await;
    if options.campaign.is_some() {
        system::drop_databases(&database_prefix).await?;
    }
    let year_run = year_run?;
    stopped_replicas?;
    stopped?;
    let baselines = if options.no_pgbench || options.campaign.is_some() {
        None
    } else {
        // A failed baseline costs the ratio, not the year's verdict.
        baseline::measure(&run_dir, year_run.work.shape(), baseline::SECONDS)
            .await
            .map_err(|error| {
                eprintln!(
                    "ekb-simulate: the pgbench baseline failed, so there is no ratio: {error:#}"
                )
            })
            .ok()
    };
    let cpu = CpuSplit {
        year: year_run.cpu,
        commits: year_run.work.commits,
        baselines,
    };
    Ok(Report {
        seed,
        faults,
        planned: plans.iter().map(|plan| plan.path).collect(),
        outcomes: year_run.outcomes,
        failures: year_run.failures,
        commits: year_run.work.commits,
        year_wall: year_run.wall,
        wall: started.elapsed(),
        peak_rss_mib,
        cpu,
        vacuums: year_run.vacuums,
        violations: year_run.violations,
        evaluation: Some(year_run.evaluation),
        injected: injector.injected,
        run_dir,
    })
}

/// What the year left.
struct YearRun {
    outcomes: Vec<CaseOutcome>,
    failures: Vec<Failure>,
    violations: Vec<Violation>,
    /// What PostgreSQL did for the services in the year.
    work: DatabaseWork,
    /// The CPU from the year's set-up to the settled system (the span of `work`).
    cpu: CpuUse,
    /// What autovacuum's stand-in did, if the server runs without autovacuum.
    vacuums: Option<Vacuums>,
    wall: Duration,
    evaluation: Headline,
}

/// Where a run writes: `<out>/seed-<seed>[-faults-<faults>]`.
fn run_dir(options: &Options, seed: u64, faults: Option<u64>) -> PathBuf {
    let name = match faults {
        Some(faults) => format!("seed-{seed}-faults-{faults}"),
        None => format!("seed-{seed}"),
    };
    options.out_dir.join(name)
}

async fn run_year(
    stack: &mut Stack,
    plans: &[CasePlan],
    year: &YearConfig,
    timeline: Arc<Timeline>,
    options: &Options,
    injector: &mut Injector,
    database_prefix: &str,
) -> anyhow::Result<YearRun> {
    let clients = Clients::connect(&stack.services).await?;
    let issuer = stack
        .issuer
        .take()
        .context("the launcher started no token issuer")?;
    let sim = Arc::new(Sim::new(clients, issuer, timeline.clone()));
    let work_before = DatabaseWork::read(database_prefix).await?;
    let cpu_meter = CpuMeter::start()?;
    let database_urls: Vec<(String, String)> = stack
        .services
        .iter()
        .zip(&stack.settings)
        .filter_map(|(service, settings)| {
            Some((
                service.name.clone(),
                settings.get("database.url")?.to_owned(),
            ))
        })
        .collect();
    let vacuumer =
        Vacuumer::start_if_needed(database_urls.iter().map(|(_, url)| url.clone()).collect())
            .await?;
    set_up_year(&sim, plans, year).await?;
    let budget_years = [year.year, year.year + 1];
    let sampler = BudgetSampler::start(
        sim.clone(),
        budget_years.iter().map(|year| (*year, ACCOUNT)).collect(),
        SAMPLE_EVERY,
    );

    let started = Instant::now();
    let progress = progress_bar(plans.len() as u64, options.quiet);
    let mut tasks = JoinSet::new();
    for plan in plans.iter().cloned() {
        let guard = timeline.task();
        let sim = sim.clone();
        tasks.spawn(async move {
            let _on_the_timeline = guard;
            let number = plan.number;
            let planned = plan.path;
            let result = match plan.path {
                Path::Regular(path) => regular::run(&sim, &plan, path).await,
                Path::Pilot(path) => pilot::run(&sim, &plan, path).await,
            };
            result.map_err(|error| Failure {
                number,
                planned,
                error: format!("{error:#}"),
            })
        });
    }
    let mut outcomes = Vec::with_capacity(plans.len());
    let mut failures = Vec::new();
    loop {
        tokio::select! {
            next = timeline.wait_idle() => match next {
                Some(next) => {
                    // Days on which no case acts pass at once: the jobs see the clock pass
                    // their interval all the same, and catch up in one run.
                    let mut day = timeline.today();
                    while day < next {
                        day = day.next_day().context("the end of time")?;
                        injector.inject(day, stack).await?;
                    }
                    timeline.move_to(next)?;
                    progress.set_message(next.to_string());
                }
                None if tasks.is_empty() => break,
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(joined) = tasks.join_next() => {
                progress.inc(1);
                match joined.context("a case task panicked")? {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(failure) => failures.push(failure),
                }
            }
        }
    }
    progress.finish_and_clear();
    let wall = started.elapsed();
    injector.stop().await?;
    let mut violations = sampler.finish().await;
    settle(&database_urls, SETTLE_QUIET, SETTLE_TIMEOUT).await?;
    let vacuums = match vacuumer {
        Some(vacuumer) => Some(vacuumer.stop().await),
        None => None,
    };
    let work = DatabaseWork::read(database_prefix)
        .await?
        .since(&work_before);
    let service_names: Vec<String> = stack.services.iter().map(|s| s.name.clone()).collect();
    let cpu = cpu_meter.stop(&service_names)?;
    outcomes.sort_by_key(|outcome| outcome.number);
    failures.sort_by_key(|failure| failure.number);
    let employees: Vec<String> = plans.iter().map(|plan| plan.employee.clone()).collect();
    let payments = sim.payments();
    let broker = stack.broker.as_ref().context("no broker")?;
    violations.extend(
        invariants::check(&invariants::Context {
            sim: &sim,
            budget_years: &budget_years,
            database_urls: &database_urls,
            brokers: broker.bootstrap_servers(),
            topic_prefix: topic_prefix(stack)?,
            log_dir: Some(&stack.log_dir),
            // The fault schedule injects no malformed events (faults are not poison).
            poison_injected: false,
            employees: &employees,
            outcomes: &outcomes,
            payments: &payments,
        })
        .await?,
    );
    // The evaluation read every topic into its read model while the year ran; settled, its
    // figures must be what the simulator did (and give the summary its headline).
    let table = invariants::evaluation::read(&stack.services, &sim, year.year).await?;
    let model = invariants::evaluation::model(plans, &outcomes);
    violations.extend(invariants::capped(invariants::evaluation::judge(
        &table, &model,
    )));
    let evaluation = invariants::evaluation::headline(&table, year.year);
    Ok(YearRun {
        outcomes,
        failures,
        violations,
        work,
        cpu,
        vacuums,
        wall,
        evaluation,
    })
}

/// The topic prefix the services were started with.
fn topic_prefix(stack: &Stack) -> anyhow::Result<&str> {
    stack
        .settings
        .first()
        .and_then(|settings| settings.get("kafka.topic_prefix"))
        .context("no service was started")
}

/// The appropriations of the year and the next (claims and invoices of late cases come then),
/// and the pilot's framework agreements.
async fn set_up_year(sim: &Sim, plans: &[CasePlan], year: &YearConfig) -> anyhow::Result<()> {
    let wanted: i64 = plans.iter().map(reserved_if_granted).sum();
    let appropriated = (wanted as f64 * year.budget.appropriation_share).round() as i64;
    for budget_year in [year.year, year.year + 1] {
        let request = SetAppropriationRequest {
            budget_year,
            account: Some(ACCOUNT),
            appropriated_ore: appropriated,
            threshold_percents: Vec::new(),
            note: format!(
                "ekb-simulate: {} of what the year's cases would reserve",
                year.budget.appropriation_share
            ),
        };
        sim.clients
            .budget
            .clone()
            .set_appropriation(with_bearer(request, &sim.token(&Caller::System)))
            .await
            .with_context(|| format!("SetAppropriation {budget_year}"))?;
    }
    pilot::register_agreements_for(sim, year.year, plans).await?;
    Ok(())
}

/// What `plan` would reserve if every grant or order it asks for were granted.
fn reserved_if_granted(plan: &CasePlan) -> i64 {
    match plan.path {
        Path::Regular(path) => regular::reserved_if_granted(plan, path),
        Path::Pilot(path) => pilot::reserved_if_granted(plan, path),
    }
}

fn progress_bar(cases: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(cases);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg:10} [{elapsed_precise}] {bar:40} {pos}/{len} cases done ({per_sec})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}
