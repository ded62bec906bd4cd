//! What keeps one benchmark run from harming another run or the machine.
//!
//! Two runs at once measure each other: both load the same CPUs and the same PostgreSQL
//! server, and each one's idle window is the other's load. So a run holds an exclusive lock on
//! a file in the bench directory for its whole length, and a second run stops at once with a
//! message instead of measuring nonsense.
//!
//! A run interrupted by Ctrl-C or SIGTERM must not leave the broker and the services running
//! (they keep their ports and a share of the CPUs). Everything the run starts is stopped when
//! its value is dropped, so [`until_interrupted`] drops the run's future when a signal arrives
//! and reports the interruption.

use std::{fs::File, future::Future, path::Path};

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

/// An exclusive lock on `bench_dir/run.lock`, held until dropped (the kernel also releases it
/// when the process dies, so a killed run never leaves a stale lock behind).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock, or fails at once naming the reason when another run holds it.
    pub fn take(bench_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(bench_dir)
            .with_context(|| format!("creating {}", bench_dir.display()))?;
        let path = bench_dir.join("run.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "another ekb-bench run holds {}; two runs at once would measure each other",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(error)) => {
                Err(error).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// Which signal ended a run early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// Ctrl-C.
    Interrupt,
    /// SIGTERM, as `kill` and `timeout` send.
    Terminate,
}

impl Interruption {
    /// The signal's usual name.
    pub fn name(self) -> &'static str {
        match self {
            Interruption::Interrupt => "SIGINT",
            Interruption::Terminate => "SIGTERM",
        }
    }
}

/// Runs `work` to its end, or until SIGINT or SIGTERM arrives; then `work` is dropped, which
/// stops whatever it started, and the signal is returned.
pub async fn until_interrupted<F: Future>(
    work: F,
) -> anyhow::Result<Result<F::Output, Interruption>> {
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(tokio::select! {
        output = work => Ok(output),
        _ = interrupt.recv() => Err(Interruption::Interrupt),
        _ = terminate.recv() => Err(Interruption::Terminate),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("ekb-bench-lock-{}", std::process::id()));
        let first = RunLock::take(&dir).expect("the first run takes the lock");
        let refused = RunLock::take(&dir).expect_err("a second run is refused");
        assert!(
            refused.to_string().contains("another ekb-bench run"),
            "{refused:#}"
        );
        drop(first);
        RunLock::take(&dir).expect("the lock is free again once the first run ends");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn work_that_ends_by_itself_returns_its_output() {
        let outcome = until_interrupted(async { 7 })
            .await
            .expect("signal handlers install");
        assert_eq!(outcome, Ok(7));
    }

    #[tokio::test]
    async fn a_signal_drops_the_work_and_names_the_signal() {
        struct DropFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl Drop for DropFlag {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = DropFlag(dropped.clone());
        let work = async move {
            let _flag = flag;
            std::future::pending::<()>().await
        };
        let raise = async {
            // Let until_interrupted install its handlers before the signal is raised.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            // SIGTERM to this test's own process; tokio's handler now catches it.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &std::process::id().to_string()])
                .status();
        };
        let (outcome, ()) = tokio::join!(until_interrupted(work), raise);
        assert_eq!(
            outcome.expect("signal handlers install"),
            Err(Interruption::Terminate)
        );
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    }
}
