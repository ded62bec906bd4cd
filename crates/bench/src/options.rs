//! The command line of `ekb-bench`, parsed with clap.
//!
//! Every value is range-checked while it is parsed, so a run is always bounded in requests and
//! in time, and a bad value stops the benchmark before it starts anything, with clap's message
//! naming the flag and what it accepts. `scripts/bench.sh` passes its arguments on unchanged.

use std::path::PathBuf;

use clap::{Parser, builder::RangedU64ValueParser};

/// Upper bound of `--concurrency`: more in-flight calls than this only measure queueing.
const MAX_CONCURRENCY: u64 = 256;
/// Upper bound of every duration flag, in seconds.
const MAX_SECONDS: u64 = 600;
/// Upper bound of `--idle-events` (the calls are 200 ms apart).
const MAX_IDLE_EVENTS: u64 = 1000;
/// Upper bound of `--pool-size`.
const MAX_POOL_SIZE: i64 = 200;
/// Upper bound of an explicitly offered rate, per second.
const MAX_RATE: f64 = 50_000.0;

/// What `--help` ends with.
const ENVIRONMENT: &str = "\
Environment: EKB_TEST_DATABASE_URL (admin URL of the PostgreSQL server), EKB__KAFKA__BROKERS
(a real Kafka instead of the mock broker), EKB_BIN_DIR (where the service binaries are).";

/// The benchmark's settings: `ekb-bench`'s flags.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(
    name = "ekb-bench",
    about = "Open-loop OpenCase load against the real services (routing, expert-registry and \
             the rest of the catalog, real PostgreSQL, the broker), compared with a pgbench \
             baseline of the same transaction; each service's peak RSS and idle CPU, and how \
             long a CaseRouted event takes from OpenCase's commit to the broker, idle and \
             under load.",
    after_help = ENVIRONMENT
)]
pub struct Options {
    /// In-flight OpenCase calls at most, and pgbench clients.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 16,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_CONCURRENCY)
    )]
    pub concurrency: usize,

    /// Measured open-loop duration, seconds (also each pgbench run's).
    #[arg(
        long,
        value_name = "S",
        default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS)
    )]
    pub seconds: u64,

    /// Unmeasured warm-up before the open loop and before each pgbench run, seconds.
    #[arg(
        long = "warmup",
        value_name = "S",
        default_value_t = 3,
        value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS)
    )]
    pub warmup_seconds: u64,

    /// Closed-loop probe that estimates the maximum rate, seconds.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS)
    )]
    pub probe_seconds: u64,

    /// Quiet window in which each service's idle CPU is measured, seconds.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS)
    )]
    pub idle_seconds: u64,

    /// Single OpenCase calls, 200 ms apart, for the idle event latency.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 40,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_IDLE_EVENTS)
    )]
    pub idle_events: usize,

    /// Offer R requests/s and skip the probe.
    #[arg(long, value_name = "R", value_parser = rate)]
    pub rate: Option<f64>,

    /// Offer F × the probed maximum.
    #[arg(long, value_name = "F", default_value_t = 0.9, value_parser = fraction)]
    pub rate_fraction: f64,

    /// Routing's database.max_connections (default: the concurrency, as many connections as
    /// pgbench has clients).
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=MAX_POOL_SIZE)
    )]
    pub pool_size: Option<u32>,

    /// An extra routing setting, e.g. telemetry.log_filter=warn (repeatable).
    #[arg(long = "routing-setting", value_name = "KEY=VALUE", value_parser = setting)]
    pub routing_settings: Vec<(String, String)>,

    /// JSON output (default: bench/open_case.json in the cargo target directory).
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,

    /// The pgbench binary (default: the one on PATH, else the newest under
    /// /usr/lib/postgresql/*/bin).
    #[arg(long, value_name = "PATH")]
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

/// `--rate`: a number of requests per second in (0, [`MAX_RATE`]].
fn rate(text: &str) -> Result<f64, String> {
    let rate = number(text)?;
    if rate > 0.0 && rate <= MAX_RATE {
        Ok(rate)
    } else {
        Err(format!("must be above 0 and at most {MAX_RATE}"))
    }
}

/// `--rate-fraction`: a share in (0, 1].
fn fraction(text: &str) -> Result<f64, String> {
    let fraction = number(text)?;
    if fraction > 0.0 && fraction <= 1.0 {
        Ok(fraction)
    } else {
        Err("must be above 0 and at most 1".to_owned())
    }
}

/// A finite decimal number.
fn number(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
        .ok_or_else(|| "not a number".to_owned())
}

/// `--routing-setting`: a dotted key, `=`, and the value (which may itself contain `=`).
fn setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err("wants KEY=VALUE, e.g. telemetry.log_filter=warn".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, error::ErrorKind};

    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(std::iter::once("ekb-bench").chain(args.iter().copied()))
    }

    /// The error `args` give, with its text (as clap would print it).
    fn refused(args: &[&str]) -> (ErrorKind, String) {
        match parse(args) {
            Ok(options) => panic!("{args:?} parsed: {options:?}"),
            Err(error) => (error.kind(), error.to_string()),
        }
    }

    #[test]
    fn the_command_is_well_formed() {
        Options::command().debug_assert();
    }

    #[test]
    fn no_arguments_give_the_defaults() -> Result<(), clap::Error> {
        let options = parse(&[])?;
        assert_eq!(
            options,
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
                routing_settings: Vec::new(),
                out: None,
                pgbench: None,
            }
        );
        assert_eq!(
            options.routing_pool_size(),
            16,
            "the pool follows the concurrency"
        );
        Ok(())
    }

    #[test]
    fn both_value_spellings_are_accepted() -> Result<(), clap::Error> {
        let options = parse(&[
            "--concurrency",
            "8",
            "--seconds=30",
            "--warmup",
            "0",
            "--rate",
            "450.5",
            "--routing-setting",
            "telemetry.log_filter=warn,sqlx=warn",
            "--routing-setting=pilot.counties=34",
            "--idle-seconds",
            "20",
            "--idle-events=30",
            "--out",
            "/tmp/bench.json",
        ])?;
        assert_eq!((options.concurrency, options.routing_pool_size()), (8, 8));
        assert_eq!((options.seconds, options.warmup_seconds), (30, 0));
        assert_eq!((options.idle_seconds, options.idle_events), (20, 30));
        assert_eq!(options.rate, Some(450.5));
        assert_eq!(
            options.routing_settings,
            [
                (
                    "telemetry.log_filter".to_owned(),
                    "warn,sqlx=warn".to_owned()
                ),
                ("pilot.counties".to_owned(), "34".to_owned()),
            ]
        );
        assert_eq!(options.out, Some(PathBuf::from("/tmp/bench.json")));
        Ok(())
    }

    #[test]
    fn an_explicit_pool_size_wins() -> Result<(), clap::Error> {
        assert_eq!(parse(&["--pool-size", "10"])?.routing_pool_size(), 10);
        Ok(())
    }

    #[test]
    fn an_out_of_range_value_names_the_flag_and_the_range() {
        let (kind, text) = refused(&["--concurrency", "0"]);
        assert_eq!(kind, ErrorKind::ValueValidation);
        assert!(text.contains("--concurrency"), "{text}");
        assert!(text.contains("1..=256"), "{text}");
        let (kind, text) = refused(&["--seconds", "100000"]);
        assert_eq!(kind, ErrorKind::ValueValidation);
        assert!(
            text.contains("--seconds") && text.contains("1..=600"),
            "{text}"
        );
        assert_eq!(
            refused(&["--idle-events", "0"]).0,
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused(&["--pool-size", "201"]).0,
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn a_bad_number_or_setting_says_what_is_wanted() {
        let (kind, text) = refused(&["--rate", "0"]);
        assert_eq!(kind, ErrorKind::ValueValidation);
        assert!(
            text.contains("--rate") && text.contains("must be above 0"),
            "{text}"
        );
        let (_, text) = refused(&["--rate=-1"]);
        assert!(text.contains("must be above 0"), "{text}");
        let (_, text) = refused(&["--rate-fraction", "1.5"]);
        assert!(text.contains("at most 1"), "{text}");
        let (_, text) = refused(&["--rate", "fast"]);
        assert!(text.contains("not a number"), "{text}");
        let (_, text) = refused(&["--concurrency", "many"]);
        assert!(text.contains("--concurrency"), "{text}");
        let (kind, text) = refused(&["--routing-setting", "telemetry.log_filter"]);
        assert_eq!(kind, ErrorKind::ValueValidation);
        assert!(text.contains("KEY=VALUE"), "{text}");
    }

    #[test]
    fn unknown_and_incomplete_flags_are_refused() {
        assert_eq!(refused(&["--turbo"]).0, ErrorKind::UnknownArgument);
        // CPU pinning is gone, and so is its flag.
        assert_eq!(
            refused(&["--cpu-layout", "shared"]).0,
            ErrorKind::UnknownArgument
        );
        assert_eq!(refused(&["--seconds"]).0, ErrorKind::InvalidValue);
    }

    #[test]
    fn help_wins_and_lists_every_flag() {
        let (kind, text) = refused(&["--seconds", "5", "--help"]);
        assert_eq!(kind, ErrorKind::DisplayHelp);
        for flag in [
            "--concurrency",
            "--seconds",
            "--warmup",
            "--probe-seconds",
            "--idle-seconds",
            "--idle-events",
            "--rate",
            "--rate-fraction",
            "--pool-size",
            "--routing-setting",
            "--out",
            "--pgbench",
            "EKB_TEST_DATABASE_URL",
        ] {
            assert!(text.contains(flag), "{flag} missing from:\n{text}");
        }
        assert_eq!(refused(&["-h"]).0, ErrorKind::DisplayHelp);
    }
}
