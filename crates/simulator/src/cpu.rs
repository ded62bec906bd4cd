//! Where the CPU went: the year's CPU seconds split between PostgreSQL, the services, the
//! broker and the simulator itself, and PostgreSQL's CPU per commit set beside pgbench's. The
//! ratio to pgbench says how much slower the system is than the database alone; this split says
//! why — how much is the database doing the system's (heavier) transactions, and how much the
//! services add on top of it.
//!
//! Read from `/proc` by command name, so it counts every process of that name on the machine
//! (run it on a quiet machine, as any benchmark); the machine's busy time beside it shows what
//! went elsewhere. A service killed during the year (a fault run) is counted once the simulator
//! has reaped it, as pgbench is in the baseline.

use std::{collections::BTreeMap, fmt};

use ekb_bench::process_stats::{CpuSnapshot, EXITED_CHILDREN, cpu_seconds_by_command};

use crate::baseline::Baselines;

/// The command name of PostgreSQL's processes.
const POSTGRES: &str = "postgres";
/// The embedded broker's command name.
const BROKER: &str = "ekb-mock-broker";
/// pgbench's command name.
const PGBENCH: &str = "pgbench";
/// The longest command name Linux keeps (`comm`).
const COMM_LENGTH: usize = 15;

/// CPU counters at the start of a span.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    by_command: BTreeMap<String, f64>,
    machine: CpuSnapshot,
}

/// The CPU seconds of one span, by part of the system.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuUse {
    /// Every PostgreSQL process (backends, exited ones included, and the server's own).
    pub postgres: f64,
    /// The system's services.
    pub services: f64,
    /// The embedded broker (zero with a real Kafka elsewhere).
    pub broker: f64,
    /// The simulator: every employer, caseworker, supplier and the payment system.
    pub simulator: f64,
    /// pgbench's own process (zero outside the baseline).
    pub pgbench: f64,
    /// The whole machine's busy time.
    pub machine_busy: f64,
}

impl CpuMeter {
    /// Reads the counters now.
    pub fn start() -> anyhow::Result<Self> {
        Ok(CpuMeter {
            by_command: cpu_seconds_by_command()?,
            machine: CpuSnapshot::take()?,
        })
    }

    /// The CPU used since [`Self::start`]; `services` are the services' names (none for the
    /// baseline, whose exited children are pgbench).
    pub fn stop(&self, services: &[String]) -> anyhow::Result<CpuUse> {
        let now = cpu_seconds_by_command()?;
        let machine = CpuSnapshot::take()?.since(&self.machine);
        let used = |command: &str| -> f64 {
            let before = self.by_command.get(command).copied().unwrap_or(0.0);
            (now.get(command).copied().unwrap_or(0.0) - before).max(0.0)
        };
        let simulator = std::env::current_exe()
            .ok()
            .and_then(|path| {
                path.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .map(|name| comm(&name).to_owned())
            .unwrap_or_default();
        // The simulator's children that exited in the span: services killed by a fault run
        // (in the year), or pgbench (in the baseline, where no service is named).
        let exited = used(&format!("{simulator}{EXITED_CHILDREN}"));
        let baseline = services.is_empty();
        let services = services.iter().map(|name| used(comm(name))).sum::<f64>();
        Ok(CpuUse {
            postgres: used(POSTGRES),
            services: if baseline { 0.0 } else { services + exited },
            broker: used(BROKER),
            simulator: used(&simulator),
            pgbench: used(PGBENCH) + if baseline { exited } else { 0.0 },
            machine_busy: machine.machine_busy,
        })
    }
}

/// `name` as Linux keeps it as a command name.
fn comm(name: &str) -> &str {
    name.get(..COMM_LENGTH).unwrap_or(name)
}

/// The year's CPU beside the baseline's: what the summary prints.
#[derive(Debug, Clone, Copy)]
pub struct CpuSplit {
    /// The year.
    pub year: CpuUse,
    /// The commits the services made in the year.
    pub commits: u64,
    /// pgbench's runs, if they ran.
    pub baselines: Option<Baselines>,
}

fn per_commit_ms(seconds: f64, commits: u64) -> f64 {
    1000.0 * seconds / (commits.max(1) as f64)
}

impl fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let year = &self.year;
        let counted = year.postgres + year.services + year.broker + year.simulator;
        writeln!(
            f,
            "CPU of the year: {:.0} s busy on the machine; PostgreSQL {:.0} s ({:.3} ms per \
             commit), services {:.0} s ({:.2}× PostgreSQL's), broker {:.0} s, simulator {:.0} s, \
             elsewhere {:.0} s",
            year.machine_busy,
            year.postgres,
            per_commit_ms(year.postgres, self.commits),
            year.services,
            year.services / year.postgres.max(f64::EPSILON),
            year.broker,
            year.simulator,
            (year.machine_busy - counted).max(0.0),
        )?;
        if let Some(baselines) = &self.baselines {
            let year_ms = per_commit_ms(year.postgres, self.commits);
            let mut line = String::from("PostgreSQL's CPU per commit:");
            for (name, run) in [
                ("with the year's shape", &baselines.same_shape),
                ("with one-row commits", &baselines.one_row),
            ] {
                let ms = per_commit_ms(run.cpu.postgres, run.commits);
                line.push_str(&format!(
                    " pgbench {name} {ms:.3} ms (pgbench itself {:.3} ms), the year's {:.1}× as much;",
                    per_commit_ms(run.cpu.pgbench, run.commits),
                    year_ms / ms.max(f64::EPSILON),
                ));
            }
            writeln!(f, "{}", line.trim_end_matches(';'))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{baseline::PgbenchRun, commits::CommitShape};

    #[test]
    fn command_names_are_cut_as_linux_cuts_them() {
        assert_eq!(comm("expert-registry"), "expert-registry");
        assert_eq!(comm("a-very-long-service-name"), "a-very-long-ser");
        assert_eq!(comm("routing"), "routing");
    }

    #[test]
    fn the_split_sets_the_year_per_commit_beside_pgbench() {
        let split = CpuSplit {
            year: CpuUse {
                postgres: 100.0,
                services: 150.0,
                broker: 10.0,
                simulator: 20.0,
                pgbench: 0.0,
                machine_busy: 300.0,
            },
            commits: 100_000,
            baselines: Some(Baselines {
                shape: CommitShape {
                    inserted: 1.0,
                    updated: 0.5,
                    deleted: 0.0,
                    read: 2.0,
                },
                same_shape: PgbenchRun {
                    commits_per_second: 2_000.0,
                    commits: 20_000,
                    cpu: CpuUse {
                        postgres: 10.0,
                        pgbench: 2.0,
                        ..CpuUse::default()
                    },
                },
                one_row: PgbenchRun {
                    commits_per_second: 5_000.0,
                    commits: 50_000,
                    cpu: CpuUse {
                        postgres: 10.0,
                        pgbench: 5.0,
                        ..CpuUse::default()
                    },
                },
            }),
        };
        let text = split.to_string();
        assert!(
            text.contains("PostgreSQL 100 s (1.000 ms per commit)"),
            "{text}"
        );
        assert!(
            text.contains("services 150 s (1.50× PostgreSQL's)"),
            "{text}"
        );
        assert!(text.contains("elsewhere 20 s"), "{text}");
        assert!(
            text.contains(
                "pgbench with the year's shape 0.500 ms (pgbench itself 0.100 ms), the year's 2.0× as much"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "with one-row commits 0.200 ms (pgbench itself 0.100 ms), the year's 5.0× as much"
            ),
            "{text}"
        );
    }
}
