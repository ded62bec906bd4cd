//! Starting the real services for tests and the dev launcher: in-process (service tests: the
//! service's `run` on port 0) or as separate processes (end-to-end tests and `make run`), with
//! the same configuration keys either way.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use ekb_platform::{
    config::{ConfigLoader, env_var_for},
    grpc::Listeners,
    service::{self, ServiceDescription},
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    binaries::workspace_binary,
    issuer::TestIssuer,
    process::{ProcessGroup, create_log, log_tail},
};

/// Configuration for one service under test, as key/value overrides.
#[derive(Debug, Clone, Default)]
pub struct TestSettings {
    overrides: Vec<(String, String)>,
}

impl TestSettings {
    /// Settings for a service on `database_url`, the broker at `brokers`, and topics under
    /// `topic_prefix`, with short timeouts suitable for tests and authentication disabled.
    pub fn new(database_url: &str, brokers: &str, topic_prefix: &str) -> Self {
        TestSettings::default()
            .with("database.url", database_url)
            .with("database.create_if_missing", "true")
            .with("kafka.brokers", brokers)
            .with("kafka.topic_prefix", topic_prefix)
            .with("kafka.session_timeout", "6s")
            .with("kafka.auto_create_topics", "true")
            .with("grpc.addr", "127.0.0.1:0")
            .with("metrics.addr", "127.0.0.1:0")
            .with("shutdown.drain", "0s")
            .with("shutdown.grace", "5s")
            .with("consumer.initial_backoff", "20ms")
            .with("consumer.max_backoff", "200ms")
            .with("consumer.max_attempts", "3")
            .with("database.max_connections", "2")
            .with("auth.mode", "disabled")
    }

    /// Sets one key.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.overrides.retain(|(existing, _)| existing != key);
        self.overrides.push((key.to_owned(), value.into()));
        self
    }

    /// Requires tokens from `issuer`.
    pub fn with_auth(mut self, issuer: &TestIssuer) -> Self {
        for (key, value) in issuer.auth_overrides() {
            self = self.with(&key, value);
        }
        self
    }

    /// The value set for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.overrides
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Applies the settings to a service's loader.
    pub fn apply(&self, mut loader: ConfigLoader) -> ConfigLoader {
        for (key, value) in &self.overrides {
            loader = loader.with_override(key, value.clone());
        }
        loader
    }

    /// The settings as `EKB__…` environment variables.
    pub fn as_env(&self) -> Vec<(String, String)> {
        self.overrides
            .iter()
            .map(|(key, value)| (env_var_for(key), value.clone()))
            .collect()
    }
}

/// A service running inside the test process.
pub struct InProcessService {
    /// gRPC address.
    pub grpc_addr: SocketAddr,
    /// Metrics address.
    pub metrics_addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl InProcessService {
    /// Binds port-0 listeners and starts `run` with them.
    pub async fn start<F, Fut>(run: F) -> anyhow::Result<Self>
    where
        F: FnOnce(Listeners, CancellationToken) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listeners = Listeners {
            grpc: TcpListener::bind("127.0.0.1:0").await?,
            metrics: TcpListener::bind("127.0.0.1:0").await?,
        };
        let (grpc_addr, metrics_addr) = (listeners.grpc_addr()?, listeners.metrics_addr()?);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(listeners, stop.clone()));
        Ok(InProcessService {
            grpc_addr,
            metrics_addr,
            stop,
            task,
        })
    }

    /// The gRPC endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Stops the service gracefully and returns its result.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("service did not stop within 30 s")??
    }
}

/// Starts service `S` in-process with `settings` and waits until it reports SERVING.
pub async fn start_in_process<S: ServiceDescription>(
    settings: &TestSettings,
) -> anyhow::Result<InProcessService> {
    let config = service::load_config::<S>(&settings.apply(service::config_loader::<S>()))?;
    let service =
        InProcessService::start(move |listeners, stop| service::run::<S>(config, listeners, stop))
            .await?;
    wait_until_serving(service.grpc_addr, Duration::from_secs(30)).await?;
    Ok(service)
}

/// The overall health status of the service at `addr` (`None` if it does not answer).
pub async fn health_status(addr: SocketAddr) -> Option<ServingStatus> {
    health_status_of(addr, "").await
}

/// The health status of entry `service` (e.g. `liveness`) at `addr`.
pub async fn health_status_of(addr: SocketAddr, service: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .ok()?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

/// Waits until the service at `addr` reports SERVING.
pub async fn wait_until_serving(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = health_status(addr).await;
        if status == Some(ServingStatus::Serving) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("service at {addr} not SERVING within {timeout:?} (last status: {status:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free TCP port on 127.0.0.1 for a process to listen on later (bound and released), chosen at
/// random below the kernel's ephemeral range: a port from that range (what binding port 0
/// gives) can be taken meanwhile as the local port of any outgoing connection on the machine —
/// to PostgreSQL, to the broker — and a service then fails to start with "address in use".
pub fn free_local_addr() -> anyhow::Result<SocketAddr> {
    use std::hash::BuildHasher as _;
    const LOWEST: u16 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let span = ephemeral_start.saturating_sub(LOWEST).max(1);
    for attempt in 0..500u32 {
        let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
        let port = LOWEST + u16::try_from(random % u64::from(span)).unwrap_or(0);
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return Ok(listener.local_addr()?);
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// How many log lines [`ServiceProcess`]'s errors quote.
const LOG_TAIL_LINES: usize = 25;

/// A service binary running as its own process, its stdout and stderr going to a log file.
pub struct ServiceProcess {
    /// Binary name.
    pub name: String,
    /// gRPC address.
    pub grpc_addr: SocketAddr,
    /// Metrics address.
    pub metrics_addr: SocketAddr,
    /// Where its stdout/stderr go.
    pub log_path: PathBuf,
    child: Child,
    served: bool,
}

impl ServiceProcess {
    /// Spawns binary `name` with `settings` as environment, on free ports, logging to a file
    /// under `log_dir` (`<name>-<random>.log`), in the caller's process group.
    pub fn spawn(name: &str, settings: &TestSettings, log_dir: &Path) -> anyhow::Result<Self> {
        let log_path = log_dir.join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        ServiceProcess::spawn_at(
            name,
            settings,
            free_local_addr()?,
            free_local_addr()?,
            &log_path,
            ProcessGroup::Inherit,
        )
    }

    /// Spawns binary `name` with `settings` as environment, serving gRPC on `grpc_addr` and
    /// metrics on `metrics_addr`, in process group `group`. Its stdout and stderr go to
    /// `log_path` (created with its directory, truncated), and since that is a file and not a
    /// terminal it runs with `NO_COLOR=1`.
    pub fn spawn_at(
        name: &str,
        settings: &TestSettings,
        grpc_addr: SocketAddr,
        metrics_addr: SocketAddr,
        log_path: &Path,
        group: ProcessGroup,
    ) -> anyhow::Result<Self> {
        let binary = workspace_binary(name)?;
        let log = create_log(log_path)?;
        let settings = settings
            .clone()
            .with("grpc.addr", grpc_addr.to_string())
            .with("metrics.addr", metrics_addr.to_string());
        let mut command = Command::new(&binary);
        command
            .envs(settings.as_env())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = group
            .apply(&mut command)
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        Ok(ServiceProcess {
            name: name.to_owned(),
            grpc_addr,
            metrics_addr,
            log_path: log_path.to_owned(),
            child,
            served: false,
        })
    }

    /// The gRPC endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, which starts the service's graceful shutdown (health NOT_SERVING, drain,
    /// finish in-flight work, flush the producer). See [`Self::stop`] for the whole sequence.
    pub fn terminate(&self) -> anyhow::Result<()> {
        self.signal("TERM")
    }

    /// Sends signal `name` (`TERM`, `KILL`, `STOP`, `CONT`): a simulation's faults kill a
    /// service without warning or freeze it for a while.
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        // std can only SIGKILL, and the workspace has no libc binding; kill(1) is everywhere.
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .with_context(|| format!("running kill -{name}"))?;
        anyhow::ensure!(status.success(), "kill -{name} failed: {status}");
        Ok(())
    }

    /// Waits for the process to exit (async, so the caller's runtime keeps running).
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("{} did not exit within {timeout:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the service: SIGTERM (unless it has exited already), then waits for it to exit;
    /// kills it and fails if that takes longer than `timeout`. Returns its exit status.
    pub async fn stop(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        if self.child.try_wait()?.is_none()
            && let Err(error) = self.terminate()
            && self.child.try_wait()?.is_none()
        {
            return Err(error);
        }
        match self.wait_exit(timeout).await {
            Ok(status) => Ok(status),
            Err(_) => {
                // Errors here mean it exited meanwhile; the wait below reports that status.
                let _ = self.child.kill();
                let status = self.child.wait()?;
                bail!(
                    "{} did not stop within {timeout:?} after SIGTERM and was killed ({status})",
                    self.name
                )
            }
        }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Fails, quoting the end of its log, if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited unexpectedly ({status}); end of {}:\n{}",
                self.name,
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
        Ok(())
    }

    /// Waits until the service reports SERVING on `grpc.health.v1`; fails, quoting the end of
    /// its log, as soon as it exits or once `timeout` has passed.
    pub async fn wait_until_serving(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = health_status(self.grpc_addr).await;
            if status == Some(ServingStatus::Serving) {
                self.served = true;
                return Ok(());
            }
            self.ensure_running()?;
            if Instant::now() >= deadline {
                bail!(
                    "{} did not report SERVING within {timeout:?} (last status: {status:?}); \
                     end of {}:\n{}",
                    self.name,
                    self.log_path.display(),
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether [`Self::wait_until_serving`] has seen it SERVING, by which time the service has
    /// installed its signal handlers (before that, SIGTERM simply ends it).
    pub fn has_served(&self) -> bool {
        self.served
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `lines` lines of its log, indented, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }
}

impl Drop for ServiceProcess {
    /// Kills the process if it still runs; the last resort for one in its own process group,
    /// which would otherwise outlive the caller and keep its ports.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds `authorization: Bearer <token>` to a request.
pub fn with_bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}
