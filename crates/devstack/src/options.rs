//! The command line of `ekb-dev`.
//!
//! Defaults are fixed ports and fixed names so that what the launcher prints (addresses,
//! metrics URLs, topics, database names) is the same on every run and can be pasted into
//! notes and other terminals. Every default can be overridden so that a second stack — the
//! smoke test, say — can run beside a developer's `make run` without touching its ports,
//! databases or topics. The services and their default ports come from the catalog
//! (`ekb_testkit::catalog`); a port is moved by naming the service (`--port routing=6001`), so
//! a new service needs no new flag, and so is a configuration key of one service
//! (`--set routing.pilot.counties=34,46`). Parsed with clap.

use std::{fmt::Write as _, path::PathBuf};

use anyhow::{Context, bail};
use clap::{CommandFactory, FromArgMatches, Parser};
use ekb_testkit::catalog::{self, DEV_DATABASE_PREFIX, SERVICES, ServiceEntry};

/// The gRPC and metrics port of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePorts {
    /// The gRPC API, health and reflection.
    pub grpc: u16,
    /// Prometheus `GET /metrics`.
    pub metrics: u16,
}

/// One catalog service and the ports it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceOptions {
    /// The service.
    pub entry: &'static ServiceEntry,
    /// Where it listens on 127.0.0.1.
    pub ports: ServicePorts,
}

/// Everything the command line can set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Drop and recreate every service's database before starting.
    pub fresh: bool,
    /// Stop after the demo table instead of serving until a signal.
    pub exit_after_demo: bool,
    /// Every catalog service with its ports, in catalog (start) order.
    pub services: Vec<ServiceOptions>,
    /// Database names are this prefix followed by the service name.
    pub db_prefix: String,
    /// Topics and consumer groups start with this.
    pub topic_prefix: String,
    /// Where service logs go; `None` means `target/run-logs` beside the binary's profile dir.
    pub log_dir: Option<PathBuf>,
    /// Configuration keys for one service each (`--set`).
    pub settings: Vec<ServiceSetting>,
    /// Runs every service and the walks on simulated time from this instant (`--clock-start`).
    pub clock_start: Option<time::OffsetDateTime>,
    /// Runs every service on the shared clock file a simulation moves (ADR 0031; set by
    /// `ekb-simulate`, not a flag of `ekb-dev`).
    pub clock_file: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fresh: false,
            exit_after_demo: false,
            services: SERVICES
                .iter()
                .map(|entry| ServiceOptions {
                    entry,
                    ports: ServicePorts {
                        grpc: entry.dev_grpc_port,
                        metrics: entry.dev_metrics_port,
                    },
                })
                .collect(),
            db_prefix: DEV_DATABASE_PREFIX.to_owned(),
            topic_prefix: "ekspertbistand".to_owned(),
            log_dir: None,
            settings: Vec::new(),
            clock_start: None,
            clock_file: None,
        }
    }
}

impl Options {
    /// The ports of service `name` (`None` if the catalog has no such service).
    pub fn ports(&self, name: &str) -> Option<ServicePorts> {
        self.services
            .iter()
            .find(|service| service.entry.name == name)
            .map(|service| service.ports)
    }
}

/// One configuration key set for one service: `--set routing.pilot.counties=34,46`. Only that
/// service gets it, so a key of one service never stops the others ("not a configuration key
/// of this service"), as an inherited `EKB__…` variable would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSetting {
    /// The service (a catalog name).
    pub service: &'static str,
    /// The configuration key, dotted (`pilot.counties`).
    pub key: String,
    /// Its value; a list key takes a comma-separated list.
    pub value: String,
}

/// The flag that moves a service's gRPC port: `--port NAME=PORT`.
pub const PORT_FLAG: &str = "--port";
/// The flag that moves a service's metrics port: `--metrics-port NAME=PORT`.
pub const METRICS_PORT_FLAG: &str = "--metrics-port";

/// `ekb-dev`'s flags (clap); [`parse`] turns them into [`Options`].
#[derive(Debug, Parser)]
#[command(
    name = "ekb-dev",
    about = "Runs the system locally: Kafka (EKB__KAFKA__BROKERS, else the embedded mock \
             broker), PostgreSQL databases, every service, a fixture of Innlandet framework \
             agreements, routed sample cases, walks through both flows and this year's \
             appropriation on account 2650.76 (set only if there is none). Then serves until \
             Ctrl-C."
)]
struct Cli {
    /// Drop and recreate the databases first (default: keep data).
    #[arg(long)]
    fresh: bool,
    /// Stop cleanly after the demo (used by the smoke test).
    #[arg(long)]
    exit_after_demo: bool,
    /// gRPC port of service NAME (repeat per service; defaults below).
    #[arg(long = "port", value_name = "NAME=PORT", value_parser = service_port)]
    ports: Vec<(String, u16)>,
    /// Metrics port of service NAME (repeat per service).
    #[arg(long = "metrics-port", value_name = "NAME=PORT", value_parser = service_port)]
    metrics_ports: Vec<(String, u16)>,
    /// Database names are PREFIX + service.
    #[arg(long, value_name = "PREFIX", default_value = DEV_DATABASE_PREFIX, value_parser = identifier)]
    db_prefix: String,
    /// Kafka topics are PREFIX.<service>.v1.
    #[arg(long, value_name = "PREFIX", default_value = "ekspertbistand", value_parser = topic_prefix)]
    topic_prefix: String,
    /// Service logs go to DIR/<service>.log (default target/run-logs).
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// A configuration key for one service only, e.g. `--set routing.pilot.counties=34,46`
    /// (repeat per key; a list takes commas). The keys are those of docs/runtime-contract.md.
    #[arg(long = "set", value_name = "SERVICE.KEY=VALUE", value_parser = service_setting)]
    settings: Vec<ServiceSetting>,
    /// Run every service and the walks on simulated time that starts at WHEN: a date
    /// (YYYY-MM-DD, 09:00 in Oslo) or an RFC 3339 instant. Development only (clock.start).
    #[arg(long, value_name = "WHEN", value_parser = clock_start)]
    clock_start: Option<time::OffsetDateTime>,
}

/// The services table `--help` ends with.
fn services_table() -> String {
    let mut text = String::from("Services (default gRPC / metrics port on 127.0.0.1):\n");
    for service in SERVICES {
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "  {:<24}  {} / {}",
            service.name, service.dev_grpc_port, service.dev_metrics_port
        );
    }
    text.push_str(
        "\nPostgreSQL: the server named by EKB_TEST_DATABASE_URL\n\
         (default postgres://postgres@127.0.0.1:5432/postgres; scripts/ensure-postgres.sh starts one).",
    );
    text
}

/// The command line parser, with the services table after the flags.
fn command() -> clap::Command {
    Cli::command().after_help(services_table())
}

/// Parses the process's command line; prints help or the error and exits as clap does.
pub fn from_env() -> anyhow::Result<Options> {
    let matches = command().get_matches();
    options_of(Cli::from_arg_matches(&matches)?)
}

/// Parses `args` (without the program name); `--help` and bad flags are errors, whose text is
/// clap's help or message.
pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Options> {
    let matches =
        command().try_get_matches_from(std::iter::once("ekb-dev".to_owned()).chain(args))?;
    options_of(Cli::from_arg_matches(&matches)?)
}

fn options_of(cli: Cli) -> anyhow::Result<Options> {
    let mut options = Options {
        fresh: cli.fresh,
        exit_after_demo: cli.exit_after_demo,
        db_prefix: cli.db_prefix,
        topic_prefix: cli.topic_prefix,
        log_dir: cli.log_dir,
        settings: cli.settings,
        clock_start: cli.clock_start,
        ..Options::default()
    };
    for (flag, moves) in [
        (PORT_FLAG, &cli.ports),
        (METRICS_PORT_FLAG, &cli.metrics_ports),
    ] {
        for (name, port) in moves {
            let service = options
                .services
                .iter_mut()
                .find(|service| service.entry.name == name)
                .with_context(|| format!("{flag}: no service {name:?}"))?;
            if flag == PORT_FLAG {
                service.ports.grpc = *port;
            } else {
                service.ports.metrics = *port;
            }
        }
    }
    let ports: Vec<(u16, &str)> = options
        .services
        .iter()
        .flat_map(|service| {
            [
                (service.ports.grpc, service.entry.name),
                (service.ports.metrics, service.entry.name),
            ]
        })
        .collect();
    for (index, (port, name)) in ports.iter().enumerate() {
        if let Some((_, other)) = ports[..index].iter().find(|(taken, _)| taken == port) {
            bail!(
                "port {port} is given twice ({other} and {name}); every service port must \
                 differ: move one with {PORT_FLAG} or {METRICS_PORT_FLAG} NAME=PORT"
            );
        }
    }
    Ok(options)
}

/// `--clock-start`: a date (09:00 in Oslo that day) or an RFC 3339 instant.
fn clock_start(text: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let date = ekb_domain::parse_iso_date(text)
        .map_err(|_| format!("{text:?} is not a date YYYY-MM-DD or an RFC 3339 instant"))?;
    Ok(ekb_domain::oslo_start_of_day(date) + time::Duration::hours(9))
}

/// The catalog entry named `name`, or an error listing the services.
fn catalog_service(name: &str) -> Result<&'static ServiceEntry, String> {
    SERVICES
        .iter()
        .find(|service| service.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = catalog::names().collect();
            format!("no service {name:?}; the services are {}", known.join(", "))
        })
}

/// `NAME=PORT`: a catalog service and a port.
fn service_port(value: &str) -> Result<(String, u16), String> {
    let Some((name, port_text)) = value.split_once('=') else {
        return Err(format!(
            "takes NAME=PORT (e.g. routing=6001), not {value:?}"
        ));
    };
    let service = catalog_service(name)?;
    Ok((service.name.to_owned(), port(name, port_text)?))
}

/// `SERVICE.KEY=VALUE`: a catalog service, a dotted key and its value.
fn service_setting(text: &str) -> Result<ServiceSetting, String> {
    let shape =
        || format!("takes SERVICE.KEY=VALUE (e.g. routing.pilot.counties=34,46), not {text:?}");
    let (path, value) = text.split_once('=').ok_or_else(shape)?;
    let (name, key) = path.split_once('.').ok_or_else(shape)?;
    let valid_key = !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if !valid_key {
        return Err(format!(
            "{key:?} is not a configuration key (dotted, a-z, 0-9, _)"
        ));
    }
    Ok(ServiceSetting {
        service: catalog_service(name)?.name,
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

/// A non-zero TCP port: port 0 would let the service pick one we could not print.
fn port(service: &str, value: &str) -> Result<u16, String> {
    match value.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "the port of {service} must be a number 1–65535, not {value:?}"
        )),
        Ok(port) => Ok(port),
    }
}

/// A database-name prefix: lower-case letters, digits and `_`, so it can be quoted into SQL
/// without escaping and PostgreSQL keeps its case.
fn identifier(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 40
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(format!(
            "must be 1–40 of a-z, 0-9, _ starting with a letter, not {value:?}"
        ));
    }
    Ok(value.to_owned())
}

/// A topic prefix: the characters Kafka allows in topic names.
fn topic_prefix(value: &str) -> Result<String, String> {
    let valid = !value.is_empty()
        && value.len() <= 100
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !valid {
        return Err(format!(
            "must be 1–100 of a-z, A-Z, 0-9, '.', '_', '-', not {value:?}"
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> anyhow::Result<Options> {
        parse(args.iter().map(|arg| (*arg).to_owned()))
    }

    fn ports(grpc: u16, metrics: u16) -> Option<ServicePorts> {
        Some(ServicePorts { grpc, metrics })
    }

    #[test]
    fn no_arguments_give_the_documented_defaults() {
        let options = run(&[]).expect("defaults parse");
        assert_eq!(options, Options::default());
        assert_eq!(options.ports("routing"), ports(50051, 9091));
        assert_eq!(options.ports("expert-registry"), ports(50052, 9095));
        assert_eq!(options.ports("no-such-service"), None);
        assert!(!options.fresh && !options.exit_after_demo);
        assert_eq!(options.db_prefix, "ekb_");
        assert!(options.settings.is_empty());
        // Every catalog service runs, in catalog order.
        let names: Vec<&str> = options.services.iter().map(|s| s.entry.name).collect();
        assert_eq!(names, catalog::names().collect::<Vec<_>>());
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let options = run(&[
            "--fresh",
            "--exit-after-demo",
            "--port",
            "routing=6001",
            "--port=expert-registry=6002",
            "--metrics-port=routing=6003",
            "--metrics-port",
            "expert-registry=6004",
            "--db-prefix=ekbtest_dev_",
            "--topic-prefix",
            "ekbtest.dev",
            "--log-dir=/tmp/logs",
            "--set",
            "routing.pilot.counties=34,46",
            "--set=budget.budget.default_thresholds=50,90",
        ])
        .expect("valid flags parse");
        assert!(options.fresh && options.exit_after_demo);
        assert_eq!(options.ports("routing"), ports(6001, 6003));
        assert_eq!(options.ports("expert-registry"), ports(6002, 6004));
        assert_eq!(options.db_prefix, "ekbtest_dev_");
        assert_eq!(options.topic_prefix, "ekbtest.dev");
        assert_eq!(options.log_dir, Some(PathBuf::from("/tmp/logs")));
        assert_eq!(
            options.settings,
            [
                ServiceSetting {
                    service: "routing",
                    key: "pilot.counties".to_owned(),
                    value: "34,46".to_owned()
                },
                ServiceSetting {
                    service: "budget",
                    key: "budget.default_thresholds".to_owned(),
                    value: "50,90".to_owned()
                }
            ]
        );
    }

    #[test]
    fn moving_one_port_keeps_the_others_at_their_defaults() {
        let options = run(&["--port", "routing=6001"]).expect("parses");
        assert_eq!(options.ports("routing"), ports(6001, 9091));
        assert_eq!(options.ports("expert-registry"), ports(50052, 9095));
    }

    #[test]
    fn help_lists_every_flag_and_every_service_with_its_ports() {
        let help = run(&["--fresh", "--help"]).expect_err("help is not a run");
        let text = help
            .downcast_ref::<clap::Error>()
            .map(|error| (error.kind(), error.to_string()));
        let (kind, text) = text.expect("a clap error");
        assert_eq!(kind, clap::error::ErrorKind::DisplayHelp);
        for flag in [
            "--set",
            "--port",
            "--fresh",
            "--exit-after-demo",
            "--log-dir",
        ] {
            assert!(text.contains(flag), "help lacks {flag}:\n{text}");
        }
        for service in SERVICES {
            let line = text
                .lines()
                .find(|line| line.trim_start().starts_with(service.name))
                .unwrap_or_else(|| panic!("help lacks {}:\n{text}", service.name));
            assert!(
                line.contains(&service.dev_grpc_port.to_string())
                    && line.contains(&service.dev_metrics_port.to_string()),
                "{line}"
            );
        }
    }

    #[test]
    fn bad_input_is_refused_with_the_flag_named() {
        for (args, needle) in [
            (&["--port", "routing=0"][..], "the port of routing"),
            (&["--port", "routing=70000"][..], "the port of routing"),
            (&["--metrics-port", "routing=x"][..], "--metrics-port"),
            (&["--port", "6001"][..], "NAME=PORT"),
            (&["--port", "billing=6001"][..], "no service \"billing\""),
            (&["--port", "billing=6001"][..], "expert-registry"),
            (&["--port"][..], "--port"),
            (&["--db-prefix", "Ekb;drop"][..], "--db-prefix"),
            (&["--topic-prefix", "a b"][..], "--topic-prefix"),
            (&["--fresh=yes"][..], "--fresh"),
            (&["--frsh"][..], "--frsh"),
            (&["--routing-port", "6001"][..], "--routing-port"),
            (&["--port", "expert-registry=50051"][..], "given twice"),
            (&["--metrics-port", "routing=50052"][..], "given twice"),
            (&["--set", "pilot.counties=34"][..], "no service \"pilot\""),
            (&["--set", "routing=34"][..], "SERVICE.KEY=VALUE"),
            (
                &["--set", "routing.pilot.counties"][..],
                "SERVICE.KEY=VALUE",
            ),
            (
                &["--set", "routing.Pilot..x=1"][..],
                "not a configuration key",
            ),
        ] {
            let error = run(args).expect_err("must be refused").to_string();
            assert!(error.contains(needle), "{args:?}: {error}");
        }
    }
}
