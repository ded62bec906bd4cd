//! The command line of `ekb-dev`.
//!
//! Defaults are fixed ports and fixed names so that what the launcher prints (addresses,
//! metrics URLs, topics, database names) is the same on every run and can be pasted into
//! notes and other terminals. Every default can be overridden so that a second stack — the
//! smoke test, say — can run beside a developer's `make run` without touching its ports,
//! databases or topics. Parsed by hand: the workspace has no argument-parsing crate, and
//! these few flags do not justify adding one.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// What `ekb-dev --help` prints.
pub const USAGE: &str = "\
usage: ekb-dev [--fresh] [--exit-after-demo]
               [--routing-port N] [--registry-port N]
               [--routing-metrics-port N] [--registry-metrics-port N]
               [--db-prefix PREFIX] [--topic-prefix PREFIX] [--log-dir DIR]

Runs the system locally: Kafka (EKB__KAFKA__BROKERS, else the embedded mock broker),
PostgreSQL databases, the routing and expert-registry services, a fixture of Innlandet
framework agreements and a handful of routed sample cases. Then serves until Ctrl-C.

  --fresh                   drop and recreate the databases first (default: keep data)
  --exit-after-demo         stop cleanly after the sample cases (used by the smoke test)
  --routing-port N          routing gRPC port (default 50051)
  --registry-port N         expert-registry gRPC port (default 50052)
  --routing-metrics-port N  routing metrics port (default 9091)
  --registry-metrics-port N expert-registry metrics port (default 9092)
  --db-prefix PREFIX        database names are PREFIX + service (default ekb_)
  --topic-prefix PREFIX     Kafka topics are PREFIX.<service>.v1 (default ekspertbistand)
  --log-dir DIR             service logs go to DIR/<service>.log (default target/run-logs)

PostgreSQL: the server named by EKB_TEST_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/postgres; scripts/ensure-postgres.sh starts one).";

/// The gRPC and metrics port of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePorts {
    /// The gRPC API, health and reflection.
    pub grpc: u16,
    /// Prometheus `GET /metrics`.
    pub metrics: u16,
}

/// Everything the command line can set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Drop and recreate both databases before starting.
    pub fresh: bool,
    /// Stop after the demo table instead of serving until a signal.
    pub exit_after_demo: bool,
    /// Ports of the routing service.
    pub routing: ServicePorts,
    /// Ports of the expert registry.
    pub registry: ServicePorts,
    /// Database names are this prefix followed by the service name.
    pub db_prefix: String,
    /// Topics and consumer groups start with this.
    pub topic_prefix: String,
    /// Where service logs go; `None` means `target/run-logs` beside the binary's profile dir.
    pub log_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fresh: false,
            exit_after_demo: false,
            routing: ServicePorts {
                grpc: 50051,
                metrics: 9091,
            },
            registry: ServicePorts {
                grpc: 50052,
                metrics: 9092,
            },
            db_prefix: "ekb_".to_owned(),
            topic_prefix: "ekspertbistand".to_owned(),
            log_dir: None,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Run the stack with these options.
    Run(Options),
    /// Print [`USAGE`] and exit.
    Help,
}

/// Parses the arguments after the program name. Flags take their value either as the next
/// argument or after `=`.
pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Invocation> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value)),
            _ => (arg.clone(), None),
        };
        let mut value = |flag: &str| -> anyhow::Result<String> {
            match inline_value {
                Some(value) => Ok(value.to_owned()),
                None => args.next().with_context(|| format!("{flag} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "--fresh" => options.fresh = true,
            "--exit-after-demo" => options.exit_after_demo = true,
            "--routing-port" => options.routing.grpc = port(&flag, &value(&flag)?)?,
            "--registry-port" => options.registry.grpc = port(&flag, &value(&flag)?)?,
            "--routing-metrics-port" => options.routing.metrics = port(&flag, &value(&flag)?)?,
            "--registry-metrics-port" => options.registry.metrics = port(&flag, &value(&flag)?)?,
            "--db-prefix" => options.db_prefix = identifier(&flag, &value(&flag)?)?,
            "--topic-prefix" => options.topic_prefix = topic_prefix(&flag, &value(&flag)?)?,
            "--log-dir" => options.log_dir = Some(PathBuf::from(value(&flag)?)),
            _ => bail!("unknown argument {arg:?}"),
        }
        if inline_value.is_some() && matches!(flag.as_str(), "--fresh" | "--exit-after-demo") {
            bail!("{flag} takes no value");
        }
    }
    let ports = [
        options.routing.grpc,
        options.routing.metrics,
        options.registry.grpc,
        options.registry.metrics,
    ];
    for (index, port) in ports.iter().enumerate() {
        if ports[..index].contains(port) {
            bail!("port {port} is given twice; every service port must differ");
        }
    }
    Ok(Invocation::Run(options))
}

/// A non-zero TCP port: port 0 would let the service pick one we could not print.
fn port(flag: &str, value: &str) -> anyhow::Result<u16> {
    match value.parse::<u16>() {
        Ok(0) | Err(_) => bail!("{flag} must be a port number 1–65535, not {value:?}"),
        Ok(port) => Ok(port),
    }
}

/// A database-name prefix: lower-case letters, digits and `_`, so it can be quoted into SQL
/// without escaping and PostgreSQL keeps its case.
fn identifier(flag: &str, value: &str) -> anyhow::Result<String> {
    let valid = !value.is_empty()
        && value.len() <= 40
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!("{flag} must be 1–40 of a-z, 0-9, _ starting with a letter, not {value:?}");
    }
    Ok(value.to_owned())
}

/// A topic prefix: the characters Kafka allows in topic names.
fn topic_prefix(flag: &str, value: &str) -> anyhow::Result<String> {
    let valid = !value.is_empty()
        && value.len() <= 100
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !valid {
        bail!("{flag} must be 1–100 of a-z, A-Z, 0-9, '.', '_', '-', not {value:?}");
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> anyhow::Result<Options> {
        match parse(args.iter().map(|arg| (*arg).to_owned()))? {
            Invocation::Run(options) => Ok(options),
            Invocation::Help => bail!("unexpected help"),
        }
    }

    #[test]
    fn no_arguments_give_the_documented_defaults() {
        let options = run(&[]).expect("defaults parse");
        assert_eq!(options, Options::default());
        assert_eq!(options.routing.grpc, 50051);
        assert_eq!(options.registry.grpc, 50052);
        assert_eq!(options.routing.metrics, 9091);
        assert_eq!(options.registry.metrics, 9092);
        assert!(!options.fresh && !options.exit_after_demo);
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let options = run(&[
            "--fresh",
            "--exit-after-demo",
            "--routing-port",
            "6001",
            "--registry-port=6002",
            "--routing-metrics-port=6003",
            "--registry-metrics-port",
            "6004",
            "--db-prefix=ekbtest_dev_",
            "--topic-prefix",
            "ekbtest.dev",
            "--log-dir=/tmp/logs",
        ])
        .expect("valid flags parse");
        assert!(options.fresh && options.exit_after_demo);
        assert_eq!(
            options.routing,
            ServicePorts {
                grpc: 6001,
                metrics: 6003
            }
        );
        assert_eq!(
            options.registry,
            ServicePorts {
                grpc: 6002,
                metrics: 6004
            }
        );
        assert_eq!(options.db_prefix, "ekbtest_dev_");
        assert_eq!(options.topic_prefix, "ekbtest.dev");
        assert_eq!(options.log_dir, Some(PathBuf::from("/tmp/logs")));
    }

    #[test]
    fn help_wins() {
        assert_eq!(
            parse(["--fresh".to_owned(), "--help".to_owned()]).expect("help parses"),
            Invocation::Help
        );
    }

    #[test]
    fn bad_input_is_refused_with_the_flag_named() {
        for (args, needle) in [
            (&["--routing-port", "0"][..], "--routing-port"),
            (&["--routing-port", "70000"][..], "--routing-port"),
            (&["--registry-port"][..], "needs a value"),
            (&["--db-prefix", "Ekb;drop"][..], "--db-prefix"),
            (&["--topic-prefix", "a b"][..], "--topic-prefix"),
            (&["--fresh=yes"][..], "takes no value"),
            (&["--frsh"][..], "unknown argument"),
            (&["--registry-port", "50051"][..], "given twice"),
        ] {
            let error = run(args).expect_err("must be refused").to_string();
            assert!(error.contains(needle), "{args:?}: {error}");
        }
    }
}
