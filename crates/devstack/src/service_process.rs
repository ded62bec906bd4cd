//! A service binary running as its own process on ports chosen by the developer.
//!
//! Why not testkit's `ServiceProcess`: it picks free ports itself (right for tests, which run
//! in parallel) and names its log file with a random suffix, while `make run` promises stable
//! addresses (`127.0.0.1:50051`, …) and a stable log path (`target/run-logs/<service>.log`).
//! The configuration is the same `TestSettings` either way. Two further differences matter
//! for an interactive launcher: each service runs in its own process group, so the Ctrl-C a
//! terminal sends to its foreground group reaches only `ekb-dev`, which then stops the services
//! in order; and a service that dies while starting is reported with the end of its log at
//! once instead of after a health-check timeout.

use std::{
    fs::File,
    net::{SocketAddr, TcpListener},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use ekb_testkit::{
    binaries::workspace_binary,
    services::{TestSettings, health_status},
};
use tonic_health::pb::health_check_response::ServingStatus;

/// How many log lines to show when a service fails to start.
const LOG_TAIL_LINES: usize = 25;

/// One running service process.
#[derive(Debug)]
pub struct DevService {
    /// Service (and binary) name, e.g. `routing`.
    pub name: &'static str,
    /// Where its gRPC API listens.
    pub grpc_addr: SocketAddr,
    /// Where its Prometheus endpoint listens.
    pub metrics_addr: SocketAddr,
    /// Its stdout and stderr.
    pub log_path: PathBuf,
    child: Child,
    serving: bool,
}

impl DevService {
    /// Starts binary `name` with `settings` plus the given addresses, logging to
    /// `log_dir/<name>.log` (truncated). Fails at once if an address is taken, naming the flag
    /// that moves it.
    pub fn spawn(
        name: &'static str,
        settings: &TestSettings,
        grpc_addr: SocketAddr,
        metrics_addr: SocketAddr,
        port_flags: (&str, &str),
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        ensure_free(grpc_addr, name, "gRPC", port_flags.0)?;
        ensure_free(metrics_addr, name, "metrics", port_flags.1)?;
        let binary = workspace_binary(name)?;
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating log directory {}", log_dir.display()))?;
        let log_path = log_dir.join(format!("{name}.log"));
        let log = File::create(&log_path)
            .with_context(|| format!("creating log file {}", log_path.display()))?;
        let settings = settings
            .clone()
            .with("grpc.addr", grpc_addr.to_string())
            .with("metrics.addr", metrics_addr.to_string());
        let child = Command::new(&binary)
            .envs(settings.as_env())
            // The log is a file, not a terminal: no colour escape codes in it.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(DevService {
            name,
            grpc_addr,
            metrics_addr,
            log_path,
            child,
            serving: false,
        })
    }

    /// Waits until the service reports SERVING on `grpc.health.v1`; fails with the end of its
    /// log if it exits first or does not get there within `timeout`.
    pub async fn wait_until_serving(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = health_status(self.grpc_addr).await;
            if status == Some(ServingStatus::Serving) {
                self.serving = true;
                return Ok(());
            }
            self.ensure_running()?;
            if Instant::now() >= deadline {
                bail!(
                    "{} did not report SERVING within {timeout:?} (last status: {status:?}); \
                     end of {}:\n{}",
                    self.name,
                    self.log_path.display(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Whether it has reported SERVING (and so installed its signal handlers).
    pub fn is_serving(&self) -> bool {
        self.serving
    }

    /// Fails, with the end of the log, if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited unexpectedly ({status}); end of {}:\n{}",
                self.name,
                self.log_path.display(),
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Sends SIGTERM, which starts the service's graceful shutdown (health NOT_SERVING, drain,
    /// finish in-flight work, flush the producer). Does nothing if it already exited.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        // std can only SIGKILL, and the workspace has no libc binding; kill(1) is everywhere.
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .context("running kill -TERM")?;
        if !status.success() && self.child.try_wait()?.is_none() {
            bail!("kill -TERM {} failed: {status}", self.child.id());
        }
        Ok(())
    }

    /// Waits for the process to exit after [`Self::terminate`]; kills it after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                // Errors here mean it exited meanwhile; the wait below reports that status.
                let _ = self.child.kill();
                let status = self.child.wait()?;
                bail!(
                    "{} did not stop within {timeout:?} after SIGTERM and was killed ({status})",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the service's log.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines[start..]
            .iter()
            .map(|line| format!("    {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for DevService {
    /// The last resort when `ekb-dev` fails before stopping its services: being in their own
    /// process groups, they would otherwise outlive it and keep the ports.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Fails if `addr` cannot be bound now, naming the flag that moves the service elsewhere.
fn ensure_free(addr: SocketAddr, service: &str, what: &str, flag: &str) -> anyhow::Result<()> {
    match TcpListener::bind(addr) {
        Ok(listener) => {
            drop(listener);
            Ok(())
        }
        Err(error) => bail!(
            "{service} {what} address {addr} is not free ({error}); is another `make run` \
             still running? Choose another port with {flag}."
        ),
    }
}
