//! The Kafka cluster of a local run: the one `EKB__KAFKA__BROKERS` names, else our embedded
//! `ekb-mock-broker` (librdkafka's mock cluster in a process, DESIGN §6).
//!
//! Why not testkit's `TestBroker`, which makes the same choice: it starts the mock broker in
//! the caller's process group. In a terminal, Ctrl-C goes to the whole foreground group, so
//! the broker died at once while the services were still shutting down, and each service's
//! log ended in a burst of "all brokers down" errors. Here the broker gets its own process
//! group and is stopped last, after the services have flushed and left their consumer group.
//! As with `TestBroker`, its stdin is a pipe we hold: if `ekb-dev` dies, the broker sees EOF
//! and exits too.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use ekb_testkit::{
    binaries::workspace_binary,
    broker::{BROKERS_ENV, MOCK_BROKER_BIN_ENV},
};
use std::os::unix::process::CommandExt;

/// Name of the mock broker binary.
const MOCK_BROKER: &str = "ekb-mock-broker";
/// How long the mock broker may take to announce its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it may take to exit once its stdin is closed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The running embedded broker and the scratch directory of its port file.
#[derive(Debug)]
struct Embedded {
    child: Child,
    scratch: PathBuf,
}

/// The cluster the services of this run use.
#[derive(Debug)]
pub struct DevBroker {
    bootstrap_servers: String,
    embedded: Option<Embedded>,
}

impl DevBroker {
    /// Uses `EKB__KAFKA__BROKERS` when set and non-empty, else starts `ekb-mock-broker`
    /// (`EKB_MOCK_BROKER_BIN`, else beside the other workspace binaries), logging to
    /// `log_dir/ekb-mock-broker.log`, and waits until it listens. Blocks the calling thread
    /// while waiting.
    pub fn start(log_dir: &Path) -> anyhow::Result<Self> {
        if let Some(servers) = std::env::var(BROKERS_ENV)
            .ok()
            .map(|servers| servers.trim().to_owned())
            .filter(|servers| !servers.is_empty())
        {
            return Ok(DevBroker {
                bootstrap_servers: servers,
                embedded: None,
            });
        }
        let binary = match std::env::var_os(MOCK_BROKER_BIN_ENV).filter(|path| !path.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => workspace_binary(MOCK_BROKER)?,
        };
        let scratch = std::env::temp_dir().join(format!(
            "ekb-dev-broker-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&scratch)
            .with_context(|| format!("creating {}", scratch.display()))?;
        let port_file = scratch.join("bootstrap_servers");
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating log directory {}", log_dir.display()))?;
        let log_path = log_dir.join(format!("{MOCK_BROKER}.log"));
        let log = File::create(&log_path)
            .with_context(|| format!("creating log file {}", log_path.display()))?;
        let child = Command::new(&binary)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()));
        let child = match child {
            Ok(child) => child,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&scratch);
                return Err(error);
            }
        };
        // From here on, Drop stops the child and removes the scratch directory on any error.
        let mut broker = DevBroker {
            bootstrap_servers: String::new(),
            embedded: Some(Embedded { child, scratch }),
        };
        broker.bootstrap_servers = broker.wait_for_port_file(&port_file).map_err(|error| {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            match log.trim_end() {
                "" => error,
                log => error.context(format!("{} ends with:\n{log}\n", log_path.display())),
            }
        })?;
        Ok(broker)
    }

    /// The `bootstrap.servers` to give the services, e.g. `127.0.0.1:40123`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// True for a cluster named by `EKB__KAFKA__BROKERS`, which this run neither starts nor stops.
    pub fn is_external(&self) -> bool {
        self.embedded.is_none()
    }

    /// Stops the embedded broker (closing its stdin, killing it if it lingers); nothing for
    /// an external cluster.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut embedded) = self.embedded.take() else {
            return Ok(());
        };
        drop(embedded.child.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        let outcome = loop {
            match embedded.child.try_wait() {
                Ok(Some(status)) if status.success() => break Ok(()),
                Ok(Some(status)) => {
                    break Err(anyhow::anyhow!("{MOCK_BROKER} exited with {status}"));
                }
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(None) => {
                    break Err(anyhow::anyhow!(
                        "{MOCK_BROKER} did not exit within {STOP_TIMEOUT:?}; killed"
                    ));
                }
                Err(error) => break Err(error.into()),
            }
        };
        embedded.kill_and_clean_up();
        outcome
    }

    /// Polls until the broker has written its address, exited, or [`START_TIMEOUT`] passed.
    fn wait_for_port_file(&mut self, port_file: &Path) -> anyhow::Result<String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let Some(embedded) = self.embedded.as_mut() else {
            bail!("no embedded broker to wait for");
        };
        loop {
            // The broker renames a complete file into place: any content is the whole address.
            if let Ok(contents) = std::fs::read_to_string(port_file) {
                let servers = contents.trim();
                if !servers.is_empty() {
                    return Ok(servers.to_owned());
                }
            }
            if let Some(status) = embedded.child.try_wait()? {
                bail!("{MOCK_BROKER} exited with {status} before announcing its address");
            }
            if Instant::now() >= deadline {
                bail!("{MOCK_BROKER} did not announce its address within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Embedded {
    /// Kills (if still running) and reaps the broker, then removes its scratch directory.
    fn kill_and_clean_up(&mut self) {
        // Errors mean it has exited already, which is the goal.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

impl Drop for DevBroker {
    fn drop(&mut self) {
        if let Some(mut embedded) = self.embedded.take() {
            embedded.kill_and_clean_up();
        }
    }
}
