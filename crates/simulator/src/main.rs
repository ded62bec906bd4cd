//! `ekb-simulate` (`make simulate`): a synthetic year of cases through the whole system on shared
//! simulated time; see the library's documentation. Exits 1 when a case failed or an invariant
//! was violated, 2 when the simulation could not run.

use std::process::ExitCode;

use clap::Parser;
use ekb_simulator::{campaign, options::Options, population::YearConfig, run::simulate};

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("ekb-simulate: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(options: &Options) -> anyhow::Result<bool> {
    let mut year = YearConfig::load(options.config.as_deref())?;
    if let Some(cases) = options.cases {
        year.cases = cases;
    }
    if let Some(number) = options.year {
        year.year = number;
    }
    if let Some(seeds) = options.campaign {
        return campaign::run(options, &year, seeds).await;
    }
    println!(
        "ekb-simulate: {} cases in {}, seed {}{}",
        year.cases,
        year.year,
        options.seed,
        options
            .faults
            .map(|faults| format!(", fault seed {faults}"))
            .unwrap_or_default()
    );
    let report = simulate(options, &year, options.seed, options.faults).await?;
    println!("\n{report}");
    if !report.passed() {
        println!("Reproduce: {}", report.reproduce(year.cases as usize));
    }
    Ok(report.passed())
}
