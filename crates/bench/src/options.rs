//! Command-line options. Hand-parsed (`--name value` or `--name=value`) because the workspace
//! has no argument-parsing crate and the benchmark needs only a handful of flags; every value is
//! range-checked so a run is always bounded in request count and time.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::cpu_layout::CpuLayout;

/// Upper bound of the concurrency flag; more in-flight calls than this only measure queueing.
const MAX_CONCURRENCY: usize = 256;
/// Upper bound of any duration flag, in seconds.
const MAX_SECONDS: u64 = 600;
/// Upper bound of the idle event calls (200 ms apart).
const MAX_IDLE_EVENTS: usize = 1000;
/// Upper bound of an explicitly offered rate, per second.
const MAX_RATE: f64 = 50_000.0;

/// What `ekb-bench --help` prints.
pub const USAGE: &str = "\
ekb-bench: open-loop OpenCase load against routing and expert-registry (real processes, real
PostgreSQL, the broker), a pgbench baseline of the same transaction shape, each service's idle
CPU, and how long a CaseRouted event takes from OpenCase's commit to the broker, idle and under
load.

Options:
  --concurrency N         in-flight OpenCase calls at most, and pgbench clients (default 16)
  --seconds S             measured open-loop duration (default 20)
  --warmup S              unmeasured warm-up before it, and before the pgbench run (default 3)
  --probe-seconds S       closed-loop probe that estimates the maximum rate (default 5)
  --idle-seconds S        quiet window in which each service's idle CPU is measured (default 30)
  --idle-events N         single OpenCase calls, 200 ms apart, for the idle event latency
                          (default 40)
  --rate R                offer R requests/s and skip the probe
  --rate-fraction F       offer F x the probed maximum (default 0.9)
  --pool-size N           routing's database.max_connections (default: the concurrency, so
                          routing has as many connections as pgbench has clients)
  --cpu-layout L          split (default): PostgreSQL on half the CPUs, everything else on the
                          other half, as in production; shared: everything on every CPU
  --routing-setting K=V   extra routing setting, e.g. telemetry.log_filter=warn (repeatable)
  --out PATH              JSON output (default <target>/bench/open_case.json)
  --pgbench PATH          pgbench binary (default: PATH, then /usr/lib/postgresql/*/bin)
  --help                  this text

Environment: EKB_TEST_DATABASE_URL (admin URL of the PostgreSQL server), EKB__KAFKA__BROKERS
(a real Kafka instead of the mock broker), EKB_BIN_DIR (where the service binaries are).";

/// The benchmark's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Largest number of OpenCase calls in flight; also the pgbench client count.
    pub concurrency: usize,
    /// Measured open-loop duration.
    pub seconds: u64,
    /// Unmeasured warm-up before the measured window (and before the pgbench run).
    pub warmup_seconds: u64,
    /// Length of the closed-loop probe.
    pub probe_seconds: u64,
    /// Length of the quiet window for idle CPU.
    pub idle_seconds: u64,
    /// Single OpenCase calls for the idle event latency.
    pub idle_events: usize,
    /// A fixed offered rate; `None` means probe and take `rate_fraction` of the maximum.
    pub rate: Option<f64>,
    /// Fraction of the probed maximum to offer.
    pub rate_fraction: f64,
    /// Routing's pool size; `None` means as many connections as `concurrency`.
    pub pool_size: Option<u32>,
    /// Where PostgreSQL and the rest of the run execute.
    pub cpu_layout: CpuLayout,
    /// Extra routing settings (dotted key, value).
    pub routing_settings: Vec<(String, String)>,
    /// Where the JSON goes; `None` means `<target>/bench/open_case.json`.
    pub out: Option<PathBuf>,
    /// The pgbench binary; `None` means search.
    pub pgbench: Option<PathBuf>,
}

impl Options {
    /// Routing's pool size: as given, else one connection per in-flight call, the same number
    /// of connections pgbench opens.
    pub fn routing_pool_size(&self) -> u32 {
        self.pool_size
            .unwrap_or_else(|| u32::try_from(self.concurrency).unwrap_or(u32::MAX))
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 16,
            seconds: 20,
            warmup_seconds: 3,
            probe_seconds: 5,
            idle_seconds: 30,
            idle_events: 40,
            rate: None,
            rate_fraction: 0.9,
            pool_size: None,
            cpu_layout: CpuLayout::Split,
            routing_settings: Vec::new(),
            out: None,
            pgbench: None,
        }
    }
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the benchmark.
    Run(Options),
    /// Print [`USAGE`].
    Help,
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> anyhow::Result<Command> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            _ => {
                let value = match inline {
                    Some(value) => value,
                    None => args
                        .next()
                        .with_context(|| format!("{name} needs a value"))?,
                };
                apply(&mut options, &name, &value)?;
            }
        }
    }
    Ok(Command::Run(options))
}

/// Sets the option `name` to `value`.
fn apply(options: &mut Options, name: &str, value: &str) -> anyhow::Result<()> {
    match name {
        "--concurrency" => {
            options.concurrency = bounded(name, value, 1, MAX_CONCURRENCY)?;
        }
        "--seconds" => options.seconds = bounded(name, value, 1, MAX_SECONDS)?,
        "--warmup" => options.warmup_seconds = bounded(name, value, 0, MAX_SECONDS)?,
        "--probe-seconds" => options.probe_seconds = bounded(name, value, 1, MAX_SECONDS)?,
        "--idle-seconds" => options.idle_seconds = bounded(name, value, 1, MAX_SECONDS)?,
        "--idle-events" => options.idle_events = bounded(name, value, 1, MAX_IDLE_EVENTS)?,
        "--rate" => {
            let rate: f64 = value
                .parse()
                .with_context(|| format!("{name}: {value:?} is not a number"))?;
            if !(rate > 0.0 && rate <= MAX_RATE) {
                bail!("{name} must be in (0, {MAX_RATE}]");
            }
            options.rate = Some(rate);
        }
        "--rate-fraction" => {
            let fraction: f64 = value
                .parse()
                .with_context(|| format!("{name}: {value:?} is not a number"))?;
            if !(fraction > 0.0 && fraction <= 1.0) {
                bail!("{name} must be in (0, 1]");
            }
            options.rate_fraction = fraction;
        }
        "--pool-size" => options.pool_size = Some(bounded(name, value, 1, 200)?),
        "--cpu-layout" => options.cpu_layout = CpuLayout::parse(value)?,
        "--routing-setting" => {
            let (key, setting) = value
                .split_once('=')
                .with_context(|| format!("{name} wants KEY=VALUE, got {value:?}"))?;
            options
                .routing_settings
                .push((key.trim().to_owned(), setting.to_owned()));
        }
        "--out" => options.out = Some(PathBuf::from(value)),
        "--pgbench" => options.pgbench = Some(PathBuf::from(value)),
        _ => bail!("unknown option {name} (see --help)"),
    }
    Ok(())
}

/// Parses an integer flag and checks it lies in `low..=high`.
fn bounded<T>(name: &str, value: &str, low: T, high: T) -> anyhow::Result<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let parsed: T = value
        .parse()
        .ok()
        .with_context(|| format!("{name}: {value:?} is not a whole number"))?;
    if parsed < low || parsed > high {
        bail!("{name} must be between {low} and {high}, got {parsed}");
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> anyhow::Result<Options> {
        match parse(args.iter().map(|arg| (*arg).to_owned()))? {
            Command::Run(options) => Ok(options),
            Command::Help => anyhow::bail!("asked for help"),
        }
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        assert_eq!(run(&[]).expect("parses"), Options::default());
    }

    #[test]
    fn both_value_spellings_are_accepted() {
        let options = run(&[
            "--concurrency",
            "8",
            "--seconds=30",
            "--rate",
            "450.5",
            "--routing-setting",
            "telemetry.log_filter=warn,sqlx=warn",
            "--cpu-layout=shared",
            "--idle-seconds",
            "20",
            "--idle-events=30",
        ])
        .expect("parses");
        assert_eq!(options.concurrency, 8);
        assert_eq!(
            options.routing_pool_size(),
            8,
            "the pool follows the concurrency"
        );
        assert_eq!(options.cpu_layout, CpuLayout::Shared);
        assert_eq!(options.seconds, 30);
        assert_eq!((options.idle_seconds, options.idle_events), (20, 30));
        assert_eq!(options.rate, Some(450.5));
        assert_eq!(
            options.routing_settings,
            [(
                "telemetry.log_filter".to_owned(),
                "warn,sqlx=warn".to_owned()
            )]
        );
    }

    #[test]
    fn an_explicit_pool_size_wins() {
        let options = run(&["--pool-size", "10"]).expect("parses");
        assert_eq!(options.routing_pool_size(), 10);
        assert_eq!(Options::default().routing_pool_size(), 16);
    }

    #[test]
    fn out_of_range_and_unknown_flags_are_refused() {
        assert!(run(&["--concurrency", "0"]).is_err());
        assert!(run(&["--seconds", "100000"]).is_err());
        assert!(run(&["--idle-events", "0"]).is_err());
        assert!(run(&["--rate", "-1"]).is_err());
        assert!(run(&["--rate-fraction", "1.5"]).is_err());
        assert!(run(&["--seconds"]).is_err());
        assert!(run(&["--turbo"]).is_err());
        assert!(run(&["--cpu-layout", "half"]).is_err());
    }

    #[test]
    fn help_wins() {
        assert_eq!(
            parse(["--seconds".to_owned(), "5".to_owned(), "--help".to_owned()]).expect("parses"),
            Command::Help
        );
    }
}
