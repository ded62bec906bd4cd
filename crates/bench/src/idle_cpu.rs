//! Idle CPU: what each service costs with nothing to do.
//!
//! A service that polls, spins or keeps timers busy costs CPU on every replica all day, and
//! under load nobody notices it. So once the stack is up and drained, the benchmark makes no
//! call for a while and reads each service's `utime + stime` before and after. The whole
//! machine's busy share over the same window is kept too: on a shared machine, it says so.

use std::{collections::BTreeMap, time::Duration};

use crate::{
    process_stats::{self, CpuSnapshot},
    stack::Stack,
};

/// Each service's CPU over a quiet window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdleCpu {
    /// The window's length.
    pub window: Duration,
    /// CPU seconds each service process used in it (`utime + stime`), by service name.
    pub service_seconds: BTreeMap<String, f64>,
    /// The whole machine over the same window.
    pub machine: CpuSnapshot,
}

impl IdleCpu {
    /// Reads every service's CPU time, waits `window` (the caller makes no calls meanwhile),
    /// and reads it again.
    pub async fn measure(stack: &Stack, window: Duration) -> anyhow::Result<IdleCpu> {
        let read = || -> anyhow::Result<BTreeMap<String, f64>> {
            stack
                .services()
                .map(|service| {
                    Ok((
                        service.name.clone(),
                        process_stats::cpu_seconds(service.pid())?,
                    ))
                })
                .collect()
        };
        let machine_before = CpuSnapshot::take()?;
        let before = read()?;
        let started = tokio::time::Instant::now();
        tokio::time::sleep(window).await;
        let after = read()?;
        let window = started.elapsed();
        let machine = CpuSnapshot::take()?.since(&machine_before);
        let service_seconds = after
            .into_iter()
            .map(|(name, now)| {
                let earlier = before.get(&name).copied().unwrap_or(now);
                (name, (now - earlier).max(0.0))
            })
            .collect();
        Ok(IdleCpu {
            window,
            service_seconds,
            machine,
        })
    }

    /// Each service's CPU over the window, percent of one core, by service name.
    pub fn service_percent(&self) -> BTreeMap<String, f64> {
        let window = self.window.as_secs_f64().max(f64::MIN_POSITIVE);
        self.service_seconds
            .iter()
            .map(|(name, seconds)| (name.clone(), 100.0 * seconds / window))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_become_percent_of_one_core() {
        let idle = IdleCpu {
            window: Duration::from_secs(20),
            service_seconds: BTreeMap::from([
                ("routing".to_owned(), 0.04),
                ("budget".to_owned(), 0.0),
            ]),
            machine: CpuSnapshot::default(),
        };
        let percent = idle.service_percent();
        assert!((percent["routing"] - 0.2).abs() < 1e-12);
        assert_eq!(percent["budget"], 0.0);
    }
}
