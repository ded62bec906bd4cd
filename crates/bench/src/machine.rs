//! What the figures were measured on: the CPUs, the PostgreSQL server, the broker, and how
//! much of the machine went to anything but the run. Requests per second mean little without
//! the machine they came from, and on a shared machine the last figure says how shared.

use serde::Serialize;

use crate::{postgres, process_stats::CpuSnapshot, stack::Stack};

/// Where and on what the run happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// CPUs the OS offers.
    pub cpus: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// PostgreSQL server version and durability settings.
    pub postgres: String,
    /// Which broker was used.
    pub broker: String,
    /// Share of the machine's CPU time during the open loop that went to none of the run's
    /// processes (other users' work, interrupts): the noise in the figures.
    pub other_cpu_percent: f64,
    /// Share of the machine's CPU time the hypervisor gave to other guests during the open
    /// loop.
    pub steal_percent: f64,
    /// How the run shared the machine.
    pub notes: String,
}

impl Machine {
    /// The machine the running `stack` is on; the shares of others are filled in from the
    /// open loop's CPU by [`Self::with_noise`].
    pub async fn describe(stack: &Stack) -> anyhow::Result<Machine> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpus = cpuinfo
            .lines()
            .filter(|line| line.starts_with("processor"))
            .count()
            .max(1);
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(
                || "unknown".to_owned(),
                |(_, model)| model.trim().to_owned(),
            );
        let broker = if stack.broker.is_external() {
            format!("external Kafka at {}", stack.broker.bootstrap_servers())
        } else {
            "ekb-mock-broker (librdkafka mock cluster, in memory)".to_owned()
        };
        Ok(Machine {
            cpus,
            cpu_model,
            postgres: postgres::server_description().await?,
            broker,
            other_cpu_percent: 0.0,
            steal_percent: 0.0,
            notes: "every process on every CPU; pgbench ran on the same server before and after \
                    the load, with the services idle"
                .to_owned(),
        })
    }

    /// The machine with the shares others had of it during `run_cpu`.
    pub fn with_noise(self, run_cpu: &CpuSnapshot) -> Machine {
        Machine {
            other_cpu_percent: run_cpu.other_percent(),
            steal_percent: run_cpu.steal_percent(),
            ..self
        }
    }
}
