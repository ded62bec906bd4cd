//! A Kafka-protocol broker for tests and the dev launcher, plus client helpers tuned for tests.
//!
//! Apache Kafka cannot run on the development and CI machines, so by default
//! [`TestBroker::start`] spawns our `ekb-mock-broker` binary (librdkafka's mock cluster hosted
//! in a process, DESIGN §6) and reads its address from a port file. Setting
//! `EKB__KAFKA__BROKERS` — the same key the services read — points everything at a real cluster
//! instead, so the same tests run unchanged against real Kafka. The dev launcher starts the
//! same broker with [`TestBroker::start_with`], in its own process group and logging to a file,
//! and stops it last with [`TestBroker::stop`].
//!
//! The mock has no CreateTopics API and creates topics on first use with 4 partitions;
//! [`create_topic`] hides that difference. Because a real cluster keeps state between runs,
//! tests name their topics and groups with [`unique_topic`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{
    binaries::workspace_binary,
    process::{ProcessGroup, create_log},
};
use anyhow::{Context, anyhow, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::types::RDKafkaErrorCode;

/// Environment variable naming an external cluster; the platform's own broker setting.
pub const BROKERS_ENV: &str = "EKB__KAFKA__BROKERS";

/// Environment variable overriding where the `ekb-mock-broker` binary is.
pub const MOCK_BROKER_BIN_ENV: &str = "EKB_MOCK_BROKER_BIN";

/// Name of the mock broker binary (and of its log file, `ekb-mock-broker.log`, in the dev
/// launcher's log directory).
pub const MOCK_BROKER_BIN_NAME: &str = "ekb-mock-broker";

/// The mock broker's control file, in its scratch directory ([`TestBroker::control`]).
const CONTROL_FILE: &str = "control";

/// How long [`TestBroker::start`] waits for a spawned broker to announce its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long [`TestBroker::stop`] waits for the mock broker to exit once its stdin is closed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// librdkafka names its mock clusters `mockCluster<hex>`; real clusters have other ids.
const MOCK_CLUSTER_ID_PREFIX: &str = "mockCluster";

/// How long [`create_topic`] waits for the topic to be visible with leaders on all partitions.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A Kafka-protocol broker a test can connect to: either a child `ekb-mock-broker` process that
/// lives as long as this value, or an external cluster named by `EKB__KAFKA__BROKERS`.
#[derive(Debug)]
pub struct TestBroker {
    bootstrap_servers: String,
    process: Option<BrokerProcess>,
    external: bool,
}

/// How [`TestBroker::start_with`] runs a mock broker; the default is what
/// [`TestBroker::start`] does. Both are ignored for an external cluster.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// The caller's process group (default), or its own: then a terminal's Ctrl-C reaches
    /// only the caller, which can stop the services first and the broker last
    /// ([`TestBroker::stop`]), so the services do not lose it while they flush and leave their
    /// consumer groups.
    pub process_group: ProcessGroup,
    /// Where its stdout and stderr go (created with its directory, truncated); `None` (default)
    /// discards its stdout and passes its stderr through to the caller's.
    pub log_path: Option<PathBuf>,
}

/// The spawned mock broker and the scratch directory holding its port file.
#[derive(Debug)]
struct BrokerProcess {
    child: Child,
    dir: PathBuf,
}

impl TestBroker {
    /// Returns the cluster named by `EKB__KAFKA__BROKERS` when that is set and non-empty;
    /// otherwise spawns `ekb-mock-broker` and waits (at most 20 s) until it listens.
    ///
    /// The binary is taken from `EKB_MOCK_BROKER_BIN`, or else found like the other workspace
    /// binaries ([`workspace_binary`]: `EKB_BIN_DIR`, else the cargo target profile directory
    /// of the running executable, e.g. `target/debug/ekb-mock-broker` for a test binary in
    /// `target/debug/deps`). The child exits when this value is dropped, and also when the
    /// test process dies without dropping it (it watches its stdin, which we hold open).
    /// Waiting blocks the calling thread; the mock is normally up within milliseconds.
    pub fn start() -> anyhow::Result<TestBroker> {
        TestBroker::start_with(&BrokerOptions::default())
    }

    /// As [`TestBroker::start`], running a spawned mock broker as `options` say.
    pub fn start_with(options: &BrokerOptions) -> anyhow::Result<TestBroker> {
        if let Ok(brokers) = std::env::var(BROKERS_ENV) {
            let brokers = brokers.trim();
            if !brokers.is_empty() {
                return Ok(TestBroker {
                    bootstrap_servers: brokers.to_owned(),
                    process: None,
                    external: true,
                });
            }
        }
        let binary = mock_broker_binary()?;
        let (process, bootstrap_servers) = spawn_mock_broker(&binary, options)?;
        Ok(TestBroker {
            bootstrap_servers,
            process: Some(process),
            external: false,
        })
    }

    /// The `bootstrap.servers` string to give clients, e.g. `127.0.0.1:40123`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Tells the mock broker to obey `commands` (`down 1`, `up 1`, `produce-errors 5`,
    /// `rtt 1 250`; see `ekb-mock-broker`), and waits until it has read them. Fails for an
    /// external cluster, whose faults are its operator's.
    pub async fn control(&self, commands: &[&str]) -> anyhow::Result<()> {
        let process = self
            .process
            .as_ref()
            .context("an external cluster takes no fault commands")?;
        let path = process.dir.join(CONTROL_FILE);
        let next = process.dir.join(format!("{CONTROL_FILE}.next"));
        std::fs::write(&next, commands.join("\n"))?;
        std::fs::rename(&next, &path)?;
        for _ in 0..100 {
            if !path.exists() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        anyhow::bail!("the mock broker did not read its control file within 5 s")
    }

    /// True when this is an external cluster from `EKB__KAFKA__BROKERS`, not a child process.
    pub fn is_external(&self) -> bool {
        self.external
    }

    /// Kills the mock broker process now, losing all its topics and offsets; clients see the
    /// broker vanish. Does nothing for an external cluster or a broker already killed.
    /// There is no restart: a new broker would listen on a different port.
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.stop();
        }
    }

    /// Stops the mock broker gracefully: closes its stdin, on which it removes its port file
    /// and exits 0, and waits (at most 5 s, then kills it). Fails if it had to be killed or
    /// did not exit cleanly. Does nothing for an external cluster or a broker already killed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut process) = self.process.take() else {
            return Ok(());
        };
        drop(process.child.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        let outcome = loop {
            match process.child.try_wait() {
                Ok(Some(status)) if status.success() => break Ok(()),
                Ok(Some(status)) => {
                    break Err(anyhow!("{MOCK_BROKER_BIN_NAME} exited with {status}"));
                }
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(None) => {
                    break Err(anyhow!(
                        "{MOCK_BROKER_BIN_NAME} did not exit within {STOP_TIMEOUT:?}; killed"
                    ));
                }
                Err(error) => break Err(error.into()),
            }
        };
        process.stop();
        outcome
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

impl BrokerProcess {
    /// Kills (if still running) and reaps the child, then removes its scratch directory.
    fn stop(mut self) {
        // Errors mean the child already exited; nothing is left to clean up then.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Finds the `ekb-mock-broker` binary: `EKB_MOCK_BROKER_BIN`, else where
/// [`workspace_binary`] finds the workspace's binaries.
fn mock_broker_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(MOCK_BROKER_BIN_ENV).filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "{MOCK_BROKER_BIN_ENV} points at {}, which is not a file",
                path.display()
            );
        }
        return Ok(path);
    }
    workspace_binary(MOCK_BROKER_BIN_NAME).map_err(|error| {
        anyhow!(
            "{error:#} (or set {MOCK_BROKER_BIN_ENV} to its path, or {BROKERS_ENV} to use a real \
             Kafka)"
        )
    })
}

/// Spawns the mock broker with a port file in a fresh scratch directory and waits for it.
fn spawn_mock_broker(
    binary: &Path,
    options: &BrokerOptions,
) -> anyhow::Result<(BrokerProcess, String)> {
    let (stdout, stderr) = match &options.log_path {
        Some(path) => {
            let log = create_log(path)?;
            (Stdio::from(log.try_clone()?), Stdio::from(log))
        }
        None => (Stdio::null(), Stdio::inherit()),
    };
    let dir = std::env::temp_dir().join(format!(
        "ekb-mock-broker-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating scratch directory {}", dir.display()))?;
    let port_file = dir.join("bootstrap_servers");
    let mut command = Command::new(binary);
    command
        .arg("--port-file")
        .arg(&port_file)
        .arg("--control-file")
        .arg(dir.join(CONTROL_FILE))
        .arg("--exit-on-stdin-eof")
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr);
    let child = match options.process_group.apply(&mut command).spawn() {
        Ok(child) => child,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(anyhow!(error).context(format!("spawning {}", binary.display())));
        }
    };
    let mut process = BrokerProcess { child, dir };
    match wait_for_port_file(&mut process.child, &port_file) {
        Ok(servers) => Ok((process, servers)),
        Err(error) => {
            process.stop();
            let error = error.context(format!("starting {}", binary.display()));
            let log = options
                .log_path
                .as_deref()
                .map(|path| (path, std::fs::read_to_string(path).unwrap_or_default()));
            match log {
                Some((path, log)) if !log.trim_end().is_empty() => Err(error.context(format!(
                    "{} ends with:\n{}\n",
                    path.display(),
                    log.trim_end()
                ))),
                _ => Err(error),
            }
        }
    }
}

/// Polls until the broker has written its port file, it exits, or [`START_TIMEOUT`] passes.
fn wait_for_port_file(child: &mut Child, port_file: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        // The broker renames a complete file into place, so any content is the whole address.
        if let Ok(contents) = std::fs::read_to_string(port_file) {
            let servers = contents.trim();
            if !servers.is_empty() {
                return Ok(servers.to_owned());
            }
        }
        if let Some(status) = child
            .try_wait()
            .context("checking the mock broker process")?
        {
            bail!("mock broker exited with {status} before announcing its address");
        }
        if Instant::now() >= deadline {
            bail!(
                "mock broker did not write {} within {START_TIMEOUT:?}",
                port_file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `prefix` followed by a random UUID (v4, 32 hex digits), for topic and group names that never
/// collide with earlier runs against a long-lived external cluster.
pub fn unique_topic(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// Client configuration for fast tests against `brokers`: short session timeout (6 s) and
/// heartbeats (0.5 s) so a group notices departed members quickly, metadata refreshed every
/// 0.5 s so new topics and partitions are seen promptly, and topic auto-creation allowed (the
/// mock broker creates topics only that way). Consumer-only keys are ignored by producers.
pub fn test_client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "500")
        .set("allow.auto.create.topics", "true");
    config
}

/// A plain consumer reading `topic` from the beginning, in a group of its own, committing
/// nothing: for reading back what a service published.
pub fn topic_reader(brokers: &str, topic: &str) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = test_client_config(brokers)
        .set("group.id", unique_topic("reader-"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .context("creating a topic reader")?;
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("subscribing to {topic}"))?;
    Ok(consumer)
}

/// Makes sure `topic` exists and every partition has a leader; returns its partition count.
///
/// On a real cluster it asks for `partitions` partitions (broker-default replication) through
/// the CreateTopics admin API and accepts `TopicAlreadyExists`. The librdkafka mock cluster does
/// not implement CreateTopics — worse, the request is not refused but hangs until the request
/// timeout — so a mock (recognised by its `mockCluster…` cluster id) is not asked; there, and
/// wherever CreateTopics fails, the topic is auto-created by requesting its metadata, and the
/// broker picks the partition count (4 on the mock). Callers that depend on the count should
/// check the returned value.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<i32> {
    let admin: AdminClient<DefaultClientContext> = test_client_config(brokers)
        .create()
        .context("creating Kafka admin client")?;
    let client = admin.inner();
    let is_mock = client
        .fetch_cluster_id(Duration::from_secs(10))
        .is_some_and(|id| id.starts_with(MOCK_CLUSTER_ID_PREFIX));
    let admin_error = if is_mock {
        None
    } else {
        let options = AdminOptions::new()
            .request_timeout(Some(Duration::from_secs(10)))
            .operation_timeout(Some(Duration::from_secs(10)));
        let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
        match admin.create_topics([&new_topic], &options).await {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => None,
                Some(Err((_, code))) => Some(format!("CreateTopics answered {code:?}")),
                None => Some("CreateTopics returned no result".to_owned()),
            },
            Err(error) => Some(format!("CreateTopics failed: {error}")),
        }
    };
    let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
    let mut last_problem;
    loop {
        // A metadata request for a named topic auto-creates it where the broker allows that.
        last_problem = match client.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(metadata) => match metadata.topics().iter().find(|t| t.name() == topic) {
                Some(found) if found.error().is_some() => {
                    format!("metadata error {:?}", found.error())
                }
                Some(found) if found.partitions().is_empty() => "no partitions yet".to_owned(),
                Some(found)
                    if found
                        .partitions()
                        .iter()
                        .all(|p| p.error().is_none() && p.leader() >= 0) =>
                {
                    return i32::try_from(found.partitions().len())
                        .context("partition count out of range");
                }
                Some(_) => "some partitions have no leader yet".to_owned(),
                None => "topic missing from metadata".to_owned(),
            },
            Err(error) => format!("metadata request failed: {error}"),
        };
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "topic {topic} not ready after {TOPIC_READY_TIMEOUT:?}: {last_problem}{}",
        admin_error
            .map(|error| format!(" (and {error})"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_topics_differ_and_keep_prefix() {
        let a = unique_topic("ekb-test-");
        let b = unique_topic("ekb-test-");
        assert_ne!(a, b);
        assert!(a.starts_with("ekb-test-"));
        assert_eq!(a.len(), "ekb-test-".len() + 32);
    }

    #[test]
    fn test_config_is_tuned_for_fast_groups() {
        let config = test_client_config("127.0.0.1:9");
        assert_eq!(config.get("bootstrap.servers"), Some("127.0.0.1:9"));
        assert_eq!(config.get("session.timeout.ms"), Some("6000"));
        assert_eq!(config.get("heartbeat.interval.ms"), Some("500"));
        assert_eq!(config.get("allow.auto.create.topics"), Some("true"));
    }
}
