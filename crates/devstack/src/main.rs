//! `ekb-dev`: the README's first command (`make run`, via `scripts/run.sh`).
//!
//! Why it exists: a newcomer should see the whole system work — Kafka, both databases, the
//! routing and expert-registry services as the separate processes they are in production,
//! framework agreements flowing from the registry to routing over events, and cases routed to
//! both flows with every reason — with one command and no setup beyond PostgreSQL. It uses the
//! same building blocks as the end-to-end tests (`ekb-testkit`), so what runs locally is what
//! the tests exercise. It starts the embedded mock broker unless `EKB__KAFKA__BROKERS` names a
//! real cluster, keeps data between runs unless `--fresh`, and `--exit-after-demo` turns the
//! whole sequence into a smoke test (`tests/demo.rs`).

mod databases;
mod fixture;
mod instructions;
mod launcher;
mod options;
mod sample_cases;

use std::process::ExitCode;

use options::{Invocation, USAGE};

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options::parse(std::env::args().skip(1)) {
        Ok(Invocation::Run(options)) => options,
        Ok(Invocation::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("ekb-dev: {error:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match launcher::run(options).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ekb-dev: {error:#}");
            ExitCode::FAILURE
        }
    }
}
