//! Graceful shutdown: SIGTERM or Ctrl-C → health NOT_SERVING → keep serving for the drain
//! period (so load balancers stop routing to this pod) → stop accepting, finish in-flight
//! calls, stop consuming, flush the producer → exit, all within the grace period.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Shared by every task of a service; cancelled when the service must stop.
pub type Shutdown = CancellationToken;

/// Resolves when the process receives SIGTERM or SIGINT.
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => tracing::info!("received SIGTERM"),
                    _ = interrupt.recv() => tracing::info!("received SIGINT"),
                }
            }
            _ => {
                tracing::warn!("could not install signal handlers; waiting for Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The phases of a stop, as seen by the gRPC host.
#[derive(Debug, Clone)]
pub struct ShutdownPlan {
    /// Cancelled when the stop begins (health goes NOT_SERVING).
    pub begin: CancellationToken,
    /// Cancelled after the drain period: servers stop accepting, workers stop.
    pub stop: CancellationToken,
    /// How long in-flight work may take after `stop`.
    pub grace: Duration,
}

impl ShutdownPlan {
    /// Starts the stop sequence when `trigger` is cancelled, waiting `drain` between phases.
    pub fn new(trigger: CancellationToken, drain: Duration, grace: Duration) -> Self {
        let begin = CancellationToken::new();
        let stop = CancellationToken::new();
        let (begin_handle, stop_handle) = (begin.clone(), stop.clone());
        tokio::spawn(async move {
            trigger.cancelled().await;
            begin_handle.cancel();
            tracing::info!(
                drain_seconds = drain.as_secs(),
                "stopping: draining before refusing new calls"
            );
            tokio::time::sleep(drain).await;
            stop_handle.cancel();
        });
        ShutdownPlan { begin, stop, grace }
    }
}

/// A token cancelled by SIGTERM/SIGINT, for `main`.
pub fn on_signal() -> Shutdown {
    let token = CancellationToken::new();
    let handle = token.clone();
    tokio::spawn(async move {
        termination_signal().await;
        handle.cancel();
    });
    token
}
