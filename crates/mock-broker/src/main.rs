//! `ekb-mock-broker`: a Kafka-protocol broker for tests and local runs.
//!
//! # Why this exists
//!
//! Apache Kafka cannot be installed on the development and CI machines (DESIGN §6): no package
//! registry ships it and there is no container engine. librdkafka ships a *mock cluster* that
//! speaks the real Kafka protocol on real TCP ports (idempotent producer, consumer groups,
//! committed offsets, rebalances). It lives inside a librdkafka client handle, so this small
//! process hosts one and keeps it alive; every other process (services, the end-to-end tests,
//! `kcat`) connects to its bootstrap servers exactly as it would to a real cluster, through the
//! same `EKB__KAFKA__BROKERS` setting.
//!
//! # Usage
//!
//! ```text
//! ekb-mock-broker [--brokers N] [--partitions N] [--topics a,b,c] [--port-file PATH]
//!                 [--control-file PATH] [--exit-on-stdin-eof]
//! ```
//!
//! With `--control-file`, the broker looks for that file every 100 ms and obeys the commands in
//! it, one per line, then removes it (the writer's acknowledgement): `down ID` and `up ID` take
//! broker ID (1-based) down and up again, `produce-errors N` makes the next N produce requests
//! fail with a retriable error, `rtt ID MS` delays broker ID's responses. This is how the year
//! simulator injects broker faults (librdkafka's mock cluster can, the Kafka protocol cannot).
//!
//! Once the cluster listens, the process prints one line `bootstrap_servers=<servers>` on
//! stdout and, with `--port-file`, writes the bare servers string to that file atomically
//! (temporary file + rename, so a reader never sees half a line). It then runs until SIGTERM or
//! SIGINT (or, with `--exit-on-stdin-eof`, until its stdin is closed — how a test harness makes
//! sure no broker outlives it), removes the port file and exits 0.
//!
//! # Limits
//!
//! - No persistence: every topic, record and committed offset is gone when the process exits.
//! - No CreateTopics/DeleteTopics admin API. Topics are created automatically on first metadata
//!   request (clients need `allow.auto.create.topics=true`) with librdkafka's fixed default of
//!   4 partitions; that default is hard-coded in `rd_kafka_mock_cluster_new` and rdkafka's safe
//!   API offers no setter. `--partitions` therefore applies to the topics named in `--topics`,
//!   which are created up front.
//! - A new consumer group waits librdkafka's mock `group.initial.rebalance.delay.ms` (3 s)
//!   before its first assignment.
//! - The `MockCluster` handle is `!Send`, so it stays on the main thread for its whole life.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use rdkafka::mocking::MockCluster;

/// librdkafka's mock cluster gives auto-created topics this many partitions.
const MOCK_AUTO_CREATE_PARTITIONS: i32 = 4;

/// Command-line usage, printed for `--help` and after an argument error.
const USAGE: &str = "usage: ekb-mock-broker [--brokers N] [--partitions N] [--topics a,b,c] \
                     [--port-file PATH] [--control-file PATH] [--exit-on-stdin-eof]";

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    /// Number of mock brokers in the cluster.
    brokers: i32,
    /// Partition count of the topics created up front.
    partitions: i32,
    /// Topics to create before announcing readiness.
    topics: Vec<String>,
    /// Where to write the bootstrap servers string once ready.
    port_file: Option<PathBuf>,
    /// Where to look for fault commands.
    control_file: Option<PathBuf>,
    /// Exit when stdin reaches end-of-file (the parent process is gone).
    exit_on_stdin_eof: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            brokers: 1,
            partitions: MOCK_AUTO_CREATE_PARTITIONS,
            topics: Vec::new(),
            port_file: None,
            control_file: None,
            exit_on_stdin_eof: false,
        }
    }
}

/// Outcome of parsing the command line.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    /// Run the broker with these options.
    Run(Options),
    /// Print usage and exit successfully.
    Help,
}

/// Parses the arguments after the program name. Accepts `--flag value` and `--flag=value`.
fn parse_args<I>(args: I) -> Result<Command, String>
where
    I: IntoIterator<Item = String>,
{
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.into())),
            _ => (arg, None),
        };
        let mut value = || -> Result<String, String> {
            inline_value
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--brokers" => options.brokers = positive(&flag, &value()?)?,
            "--partitions" => options.partitions = positive(&flag, &value()?)?,
            "--topics" => {
                options.topics = value()?
                    .split(',')
                    .map(str::trim)
                    .filter(|topic| !topic.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "--port-file" => options.port_file = Some(PathBuf::from(value()?)),
            "--control-file" => options.control_file = Some(PathBuf::from(value()?)),
            "--exit-on-stdin-eof" => options.exit_on_stdin_eof = true,
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Command::Run(options))
}

/// Parses a strictly positive count for `flag`.
fn positive(flag: &str, value: &str) -> Result<i32, String> {
    match value.parse::<i32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag} must be a positive integer, got `{value}`")),
    }
}

/// Writes `contents` to `path` so that readers see either nothing or the whole file.
fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("port file path {} has no file name", path.display()))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, contents)
        .with_context(|| format!("writing temporary port file {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Resolves when the process receives SIGTERM or SIGINT, or (if asked) when stdin closes.
async fn shutdown_requested(exit_on_stdin_eof: bool) -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let (stdin_closed_tx, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    if exit_on_stdin_eof {
        // Blocking read on a plain thread: the parent never writes, so the read returns only
        // when the parent closes its end of the pipe or dies.
        std::thread::spawn(move || {
            let mut sink = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = stdin_closed_tx.send(());
        });
    } else {
        // Keep the sender alive so the receiver never resolves.
        std::mem::forget(stdin_closed_tx);
    }
    let reason = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
        _ = stdin_closed => "stdin closed",
    };
    Ok(reason)
}

/// A fault command of the control file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Control {
    /// Takes a broker down.
    Down(i32),
    /// Brings it up again.
    Up(i32),
    /// The next N produce requests fail with a retriable error.
    ProduceErrors(usize),
    /// Delays a broker's responses by this many milliseconds.
    RoundTrip(i32, u64),
}

/// Parses one command line of the control file.
fn parse_control(line: &str) -> Result<Control, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |index: usize| -> Result<i64, String> {
        words
            .get(index)
            .and_then(|word| word.parse::<i64>().ok())
            .filter(|value| *value >= 0)
            .ok_or_else(|| format!("`{line}`: argument {index} must be a number"))
    };
    let broker = |index| number(index).and_then(|id| i32::try_from(id).map_err(|e| e.to_string()));
    match words.first().copied() {
        Some("down") => Ok(Control::Down(broker(1)?)),
        Some("up") => Ok(Control::Up(broker(1)?)),
        Some("produce-errors") => Ok(Control::ProduceErrors(
            usize::try_from(number(1)?).map_err(|e| e.to_string())?,
        )),
        Some("rtt") => Ok(Control::RoundTrip(
            broker(1)?,
            u64::try_from(number(2)?).map_err(|e| e.to_string())?,
        )),
        _ => Err(format!(
            "`{line}`: unknown command (down, up, produce-errors, rtt)"
        )),
    }
}

/// Obeys the commands written to `path` (if any) until the process stops; never returns.
async fn obey_control_file(
    cluster: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    path: Option<&Path>,
) {
    let Some(path) = path else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let result = parse_control(line).and_then(|command| {
                let outcome = match command {
                    Control::Down(id) => cluster.broker_down(id),
                    Control::Up(id) => cluster.broker_up(id),
                    Control::ProduceErrors(count) => {
                        let errors = vec![
                            rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
                            count
                        ];
                        cluster.request_errors(rdkafka::types::RDKafkaApiKey::Produce, &errors);
                        Ok(())
                    }
                    Control::RoundTrip(id, millis) => cluster
                        .broker_round_trip_time(id, std::time::Duration::from_millis(millis)),
                };
                outcome.map_err(|error| error.to_string())
            });
            match result {
                Ok(()) => eprintln!("ekb-mock-broker: control: {line}"),
                Err(error) => eprintln!("ekb-mock-broker: control: {error}"),
            }
        }
        let _ = std::fs::remove_file(path);
    }
}

/// Starts the cluster, announces it and serves until asked to stop.
fn run(options: &Options) -> anyhow::Result<()> {
    let cluster = MockCluster::new(options.brokers).context("creating librdkafka mock cluster")?;
    let replication = options.brokers.min(3);
    for topic in &options.topics {
        cluster
            .create_topic(topic, options.partitions, replication)
            .with_context(|| format!("creating topic {topic}"))?;
    }
    if options.topics.is_empty() && options.partitions != MOCK_AUTO_CREATE_PARTITIONS {
        eprintln!(
            "ekb-mock-broker: note: --partitions only applies to --topics; auto-created topics \
             get librdkafka's mock default of {MOCK_AUTO_CREATE_PARTITIONS} partitions"
        );
    }

    let servers = cluster.bootstrap_servers();
    if let Some(path) = &options.port_file {
        write_atomically(path, &servers)?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "bootstrap_servers={servers}").context("writing to stdout")?;
    stdout.flush().context("flushing stdout")?;
    drop(stdout);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building tokio runtime")?;
    let reason = runtime.block_on(async {
        tokio::select! {
            reason = shutdown_requested(options.exit_on_stdin_eof) => reason,
            () = obey_control_file(&cluster, options.control_file.as_deref()) => Ok("control"),
        }
    })?;
    eprintln!("ekb-mock-broker: {reason}, shutting down");
    if let Some(path) = &options.port_file {
        // A stale address would send the next reader to a dead port.
        let _ = std::fs::remove_file(path);
    }
    drop(cluster);
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("ekb-mock-broker: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ekb-mock-broker: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn defaults_are_one_broker_and_four_partitions() {
        assert_eq!(parse(&[]), Ok(Command::Run(Options::default())));
        assert_eq!(Options::default().brokers, 1);
        assert_eq!(Options::default().partitions, 4);
    }

    #[test]
    fn parses_every_flag_in_both_spellings() {
        let expected = Options {
            brokers: 3,
            partitions: 8,
            topics: vec!["a".into(), "b".into()],
            port_file: Some(PathBuf::from("/tmp/x")),
            control_file: None,
            exit_on_stdin_eof: true,
        };
        let spaced = parse(&[
            "--brokers",
            "3",
            "--partitions",
            "8",
            "--topics",
            "a, b,",
            "--port-file",
            "/tmp/x",
            "--exit-on-stdin-eof",
        ]);
        assert_eq!(spaced, Ok(Command::Run(expected.clone())));
        let inline = parse(&[
            "--brokers=3",
            "--partitions=8",
            "--topics=a,b",
            "--port-file=/tmp/x",
            "--exit-on-stdin-eof",
        ]);
        assert_eq!(inline, Ok(Command::Run(expected)));
    }

    #[test]
    fn control_commands_parse_and_bad_ones_say_why() {
        assert_eq!(parse_control("down 1"), Ok(Control::Down(1)));
        assert_eq!(parse_control(" up 2 "), Ok(Control::Up(2)));
        assert_eq!(
            parse_control("produce-errors 5"),
            Ok(Control::ProduceErrors(5))
        );
        assert_eq!(parse_control("rtt 1 250"), Ok(Control::RoundTrip(1, 250)));
        assert!(matches!(parse_control("down"), Err(m) if m.contains("argument 1")));
        assert!(matches!(parse_control("explode 1"), Err(m) if m.contains("unknown command")));
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        assert!(matches!(parse(&["--brokers", "0"]), Err(m) if m.contains("positive")));
        assert!(matches!(parse(&["--partitions", "x"]), Err(m) if m.contains("positive")));
        assert!(matches!(parse(&["--port-file"]), Err(m) if m.contains("needs a value")));
        assert!(matches!(parse(&["--nope"]), Err(m) if m.contains("--nope")));
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
    }

    #[test]
    fn port_file_is_replaced_whole() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("ekb-mock-broker-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("port");
        write_atomically(&path, "127.0.0.1:1")?;
        write_atomically(&path, "127.0.0.1:2")?;
        assert_eq!(std::fs::read_to_string(&path)?, "127.0.0.1:2");
        let leftovers = std::fs::read_dir(&dir)?.count();
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(leftovers, 1, "temporary file left behind");
        Ok(())
    }
}
