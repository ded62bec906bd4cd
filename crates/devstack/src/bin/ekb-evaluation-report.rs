//! `ekb-evaluation-report` (`make evaluation-report`): asks a running evaluation service for the
//! pilot evaluation's report and writes it to a file — the self-contained HTML report (open it
//! in any browser; it loads nothing from elsewhere) and, with `--csv`, the same table as CSV
//! (columns in docs/evaluation.md). By default it asks `make run`'s evaluation service for the
//! cohorts of this year so far.
//!
//! Against a deployment whose evaluation checks tokens, put a bearer token with the role
//! `evaluation-reader` in `EKB_BEARER_TOKEN`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Parser;
use ekb_platform::clock::{Clock, SystemClock};
use ekb_proto::v1::{GetCohortTableRequest, evaluation_service_client::EvaluationServiceClient};
use tonic::{Request, metadata::MetadataValue};

/// The evaluation service's name in the catalog.
const EVALUATION: &str = "evaluation";

/// Writes the evaluation's HTML report (and CSV) for a period of cohort months.
#[derive(Debug, Parser)]
#[command(name = "ekb-evaluation-report", version)]
struct Args {
    /// The evaluation service's gRPC address (default: `make run`'s).
    #[arg(long)]
    addr: Option<String>,
    /// The first cohort month, YYYY-MM (default: January of this year).
    #[arg(long)]
    from: Option<String>,
    /// The last cohort month, YYYY-MM (default: this month).
    #[arg(long)]
    to: Option<String>,
    /// Where the HTML report goes.
    #[arg(long, default_value = "target/evaluation-report.html")]
    out: PathBuf,
    /// Also write the table as CSV here.
    #[arg(long)]
    csv: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ekb-evaluation-report: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let addr = match args.addr {
        Some(addr) => addr,
        None => {
            let entry = ekb_testkit::catalog::entry(EVALUATION)
                .context("the catalog has no evaluation service")?;
            format!("http://127.0.0.1:{}", entry.dev_grpc_port)
        }
    };
    let today = SystemClock.now().date();
    let period = GetCohortTableRequest {
        from_month: args
            .from
            .unwrap_or_else(|| format!("{:04}-01", today.year())),
        to_month: args
            .to
            .unwrap_or_else(|| format!("{:04}-{:02}", today.year(), u8::from(today.month()))),
    };
    let mut client = EvaluationServiceClient::connect(addr.clone())
        .await
        .with_context(|| {
            format!("connecting to the evaluation service at {addr} (is `make run` running?)")
        })?;
    let report = client
        .get_report(authorized(period.clone())?)
        .await
        .context("GetReport")?
        .into_inner();
    write(&args.out, &report.html)?;
    println!(
        "HTML report for {}..{} written to {}",
        period.from_month,
        period.to_month,
        args.out.display()
    );
    if let Some(csv_path) = &args.csv {
        let csv = client
            .export_cohort_table_csv(authorized(period)?)
            .await
            .context("ExportCohortTableCsv")?
            .into_inner();
        write(csv_path, &csv.csv)?;
        println!("CSV written to {}", csv_path.display());
    }
    Ok(())
}

/// `message` with the bearer token of `EKB_BEARER_TOKEN`, if set.
fn authorized<T>(message: T) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    if let Ok(token) = std::env::var("EKB_BEARER_TOKEN") {
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .context("EKB_BEARER_TOKEN is not a valid header value")?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// Writes `text` to `path`, making its folder first.
fn write(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
