//! The command line of `ekb-dev`.
//!
//! Defaults are fixed ports and fixed names so that what the launcher prints (addresses,
//! metrics URLs, topics, database names) is the same on every run and can be pasted into
//! notes and other terminals. Every default can be overridden so that a second stack — the
//! smoke test, say — can run beside a developer's `make run` without touching its ports,
//! databases or topics. The services and their default ports come from the catalog
//! (`ekb_testkit::catalog`); a port is moved by naming the service (`--port routing=6001`), so
//! a new service needs no new flag. Parsed by hand: the workspace has no argument-parsing
//! crate, and these few flags do not justify adding one.

use std::{fmt::Write as _, path::PathBuf};

use anyhow::{Context, bail};
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

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Run the stack with these options.
    Run(Options),
    /// Print [`usage`] and exit.
    Help,
}

/// The flag that moves a service's gRPC port: `--port NAME=PORT`.
pub const PORT_FLAG: &str = "--port";
/// The flag that moves a service's metrics port: `--metrics-port NAME=PORT`.
pub const METRICS_PORT_FLAG: &str = "--metrics-port";

/// What `ekb-dev --help` prints, with every catalog service and its default ports.
pub fn usage() -> String {
    let names: Vec<&str> = catalog::names().collect();
    let mut text = format!(
        "\
usage: ekb-dev [--fresh] [--exit-after-demo]
               [--port NAME=PORT]... [--metrics-port NAME=PORT]...
               [--db-prefix PREFIX] [--topic-prefix PREFIX] [--log-dir DIR]

Runs the system locally: Kafka (EKB__KAFKA__BROKERS, else the embedded mock broker),
PostgreSQL databases, every service ({}), a fixture of Innlandet
framework agreements, a handful of routed sample cases and this year's 50 MNOK
appropriation on account 2650.76 (set only if there is none). Then serves until Ctrl-C.

  --fresh                   drop and recreate the databases first (default: keep data)
  --exit-after-demo         stop cleanly after the demo (used by the smoke test)
  --port NAME=PORT          gRPC port of service NAME (repeat per service; defaults below)
  --metrics-port NAME=PORT  metrics port of service NAME (repeat per service)
  --db-prefix PREFIX        database names are PREFIX + service (default {DEV_DATABASE_PREFIX})
  --topic-prefix PREFIX     Kafka topics are PREFIX.<service>.v1 (default ekspertbistand)
  --log-dir DIR             service logs go to DIR/<service>.log (default target/run-logs)

Services (default gRPC / metrics port on 127.0.0.1):
",
        names.join(", ")
    );
    for service in SERVICES {
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "  {:<24}  {} / {}",
            service.name, service.dev_grpc_port, service.dev_metrics_port
        );
    }
    text.push_str(
        "
PostgreSQL: the server named by EKB_TEST_DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/postgres; scripts/ensure-postgres.sh starts one).",
    );
    text
}

/// Parses the arguments after the program name. Flags take their value either as the next
/// argument or after `=` (`--port routing=6001` or `--port=routing=6001`).
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
            PORT_FLAG => {
                let (service, port) = service_port(&flag, &value(&flag)?, &mut options)?;
                service.ports.grpc = port;
            }
            METRICS_PORT_FLAG => {
                let (service, port) = service_port(&flag, &value(&flag)?, &mut options)?;
                service.ports.metrics = port;
            }
            "--db-prefix" => options.db_prefix = identifier(&flag, &value(&flag)?)?,
            "--topic-prefix" => options.topic_prefix = topic_prefix(&flag, &value(&flag)?)?,
            "--log-dir" => options.log_dir = Some(PathBuf::from(value(&flag)?)),
            _ => bail!("unknown argument {arg:?}"),
        }
        if inline_value.is_some() && matches!(flag.as_str(), "--fresh" | "--exit-after-demo") {
            bail!("{flag} takes no value");
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
    Ok(Invocation::Run(options))
}

/// `NAME=PORT` of `flag`: the options of catalog service NAME and the port.
fn service_port<'a>(
    flag: &str,
    value: &str,
    options: &'a mut Options,
) -> anyhow::Result<(&'a mut ServiceOptions, u16)> {
    let Some((name, port_text)) = value.split_once('=') else {
        bail!("{flag} takes NAME=PORT (e.g. {flag} routing=6001), not {value:?}");
    };
    let known: Vec<&str> = catalog::names().collect();
    let Some(service) = options
        .services
        .iter_mut()
        .find(|service| service.entry.name == name)
    else {
        bail!(
            "{flag}: no service {name:?}; the services are {}",
            known.join(", ")
        );
    };
    Ok((service, port(&format!("{flag} {name}"), port_text)?))
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
        ])
        .expect("valid flags parse");
        assert!(options.fresh && options.exit_after_demo);
        assert_eq!(options.ports("routing"), ports(6001, 6003));
        assert_eq!(options.ports("expert-registry"), ports(6002, 6004));
        assert_eq!(options.db_prefix, "ekbtest_dev_");
        assert_eq!(options.topic_prefix, "ekbtest.dev");
        assert_eq!(options.log_dir, Some(PathBuf::from("/tmp/logs")));
    }

    #[test]
    fn moving_one_port_keeps_the_others_at_their_defaults() {
        let options = run(&["--port", "routing=6001"]).expect("parses");
        assert_eq!(options.ports("routing"), ports(6001, 9091));
        assert_eq!(options.ports("expert-registry"), ports(50052, 9095));
    }

    #[test]
    fn help_wins_and_lists_every_service_with_its_ports() {
        assert_eq!(
            parse(["--fresh".to_owned(), "--help".to_owned()]).expect("help parses"),
            Invocation::Help
        );
        let text = usage();
        for service in SERVICES {
            let line = text
                .lines()
                .find(|line| line.trim_start().starts_with(service.name))
                .unwrap_or_else(|| panic!("usage lacks {}:\n{text}", service.name));
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
            (&["--port", "routing=0"][..], "--port routing"),
            (&["--port", "routing=70000"][..], "--port routing"),
            (
                &["--metrics-port", "routing=x"][..],
                "--metrics-port routing",
            ),
            (&["--port", "6001"][..], "NAME=PORT"),
            (&["--port", "billing=6001"][..], "no service \"billing\""),
            (&["--port", "billing=6001"][..], "expert-registry"),
            (&["--port"][..], "needs a value"),
            (&["--db-prefix", "Ekb;drop"][..], "--db-prefix"),
            (&["--topic-prefix", "a b"][..], "--topic-prefix"),
            (&["--fresh=yes"][..], "takes no value"),
            (&["--frsh"][..], "unknown argument"),
            (&["--routing-port", "6001"][..], "unknown argument"),
            (&["--port", "expert-registry=50051"][..], "given twice"),
            (&["--metrics-port", "routing=50052"][..], "given twice"),
        ] {
            let error = run(args).expect_err("must be refused").to_string();
            assert!(error.contains(needle), "{args:?}: {error}");
        }
    }
}
