//! What the processes cost, read from Linux's `/proc`: each service's peak resident set
//! (`VmHWM`, the high-water mark the kernel keeps, so no sampling can miss the peak), and CPU
//! time per component over the measured window. All of it shares two cores, so the CPU split
//! is what explains the throughput: whoever burns the most CPU per request limits it.

use std::{collections::BTreeMap, fs, path::Path, process::Command};

use anyhow::{Context, bail};

/// Peak resident set size of process `pid` in MiB (`VmHWM` in `/proc/<pid>/status`).
pub fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status_kib(&status, "VmHWM:")
        .map(|kib| kib as f64 / 1024.0)
        .with_context(|| format!("no VmHWM in /proc/{pid}/status"))
}

/// CPU seconds (user + system, `utime + stime` of `/proc/<pid>/stat`) process `pid` used so
/// far, all its threads included.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let stat = parse_stat(&stat).with_context(|| format!("unreadable /proc/{pid}/stat"))?;
    Ok(stat.ticks as f64 / ticks_per_second())
}

/// CPU seconds each thread of process `pid` used so far, summed by thread name (`comm` of
/// `/proc/<pid>/task/<tid>/stat`: tokio's workers share one name, librdkafka names each of its
/// threads after its role, e.g. `rdk:main`, `rdk:broker1`). Threads that already exited are
/// not listed.
pub fn thread_cpu_seconds(pid: u32) -> anyhow::Result<BTreeMap<String, f64>> {
    let per_second = ticks_per_second();
    let mut threads = BTreeMap::new();
    let dir = format!("/proc/{pid}/task");
    for entry in fs::read_dir(&dir)
        .with_context(|| format!("listing {dir}"))?
        .flatten()
    {
        // Threads come and go while we read; a vanished one simply does not count.
        let Some(stat) = fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|text| parse_stat(&text))
        else {
            continue;
        };
        *threads.entry(stat.comm).or_insert(0.0) += stat.ticks as f64 / per_second;
    }
    Ok(threads)
}

/// The value in KiB of field `name` (e.g. `VmHWM:`) in a `/proc/<pid>/status` text.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// Command name and CPU ticks of one process, from `/proc/<pid>/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcStat {
    comm: String,
    parent: u32,
    /// User + system time of the process itself.
    ticks: u64,
    /// User + system time of its children that exited and were waited for.
    reaped_children_ticks: u64,
}

/// Parses `/proc/<pid>/stat`. The command name is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<ProcStat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the name: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17), so the
    // index here is the field number minus 3.
    let parent = fields.get(1)?.parse().ok()?;
    let number = |index: usize| fields.get(index)?.parse::<u64>().ok();
    Some(ProcStat {
        comm,
        parent,
        ticks: number(11)? + number(12)?,
        reaped_children_ticks: number(13)? + number(14)?,
    })
}

/// Clock ticks per second of the CPU times in `/proc` (`getconf CLK_TCK`, almost always 100).
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// CPU seconds used so far, by component: this benchmark, each running child process (the
/// services and the mock broker, by command name), children of this benchmark that already
/// exited (pgbench), and all `postgres` processes together — including backends that already
/// exited, whose time the postmaster inherits. A snapshot taken after a run minus one taken
/// before gives the run's CPU split.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuSnapshot {
    /// Seconds by component name.
    pub seconds: BTreeMap<String, f64>,
    /// Whole-machine busy seconds (all CPUs), from `/proc/stat`.
    pub machine_busy: f64,
    /// Seconds the hypervisor ran something else while this machine wanted the CPU ("steal").
    pub machine_steal: f64,
    /// Whole-machine seconds in all states.
    pub machine_total: f64,
}

/// The component name the benchmark itself is reported under.
pub const LOAD_GENERATOR: &str = "load generator (ekb-bench)";
/// The component name of all PostgreSQL processes.
pub const POSTGRES: &str = "postgres (all processes)";
/// The component name of this benchmark's children that have exited (pgbench, mostly).
pub const EXITED_CHILDREN: &str = "exited children of ekb-bench (pgbench)";

impl CpuSnapshot {
    /// Reads the current counters.
    pub fn take() -> anyhow::Result<Self> {
        let per_second = ticks_per_second();
        let me = std::process::id();
        let mut seconds = BTreeMap::new();
        let entries = fs::read_dir("/proc").context("listing /proc")?;
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // Processes come and go while we read; a vanished one simply does not count.
            let Some(stat) = fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|text| parse_stat(&text))
            else {
                continue;
            };
            let (component, ticks) = if pid == me {
                *seconds.entry(EXITED_CHILDREN.to_owned()).or_insert(0.0) +=
                    stat.reaped_children_ticks as f64 / per_second;
                (LOAD_GENERATOR.to_owned(), stat.ticks)
            } else if stat.parent == me {
                (stat.comm, stat.ticks)
            } else if stat.comm == "postgres" {
                (POSTGRES.to_owned(), stat.ticks + stat.reaped_children_ticks)
            } else {
                continue;
            };
            *seconds.entry(component).or_insert(0.0) += ticks as f64 / per_second;
        }
        let machine = machine_seconds(Path::new("/proc/stat"), per_second)?;
        Ok(CpuSnapshot {
            seconds,
            machine_busy: machine.busy,
            machine_steal: machine.steal,
            machine_total: machine.total,
        })
    }

    /// The CPU of two separate spans together (`self` and `other`, each from [`Self::since`]).
    pub fn plus(&self, other: &CpuSnapshot) -> CpuSnapshot {
        let mut seconds = self.seconds.clone();
        for (name, more) in &other.seconds {
            *seconds.entry(name.clone()).or_insert(0.0) += more;
        }
        CpuSnapshot {
            seconds,
            machine_busy: self.machine_busy + other.machine_busy,
            machine_steal: self.machine_steal + other.machine_steal,
            machine_total: self.machine_total + other.machine_total,
        }
    }

    /// CPU seconds each component used between `before` and `self`.
    pub fn since(&self, before: &CpuSnapshot) -> CpuSnapshot {
        let seconds = self
            .seconds
            .iter()
            .map(|(name, now)| {
                let earlier = before.seconds.get(name).copied().unwrap_or(0.0);
                (name.clone(), (now - earlier).max(0.0))
            })
            .collect();
        CpuSnapshot {
            seconds,
            machine_busy: self.machine_busy - before.machine_busy,
            machine_steal: self.machine_steal - before.machine_steal,
            machine_total: self.machine_total - before.machine_total,
        }
    }
}

/// CPU seconds of the whole machine by state.
struct MachineSeconds {
    busy: f64,
    steal: f64,
    total: f64,
}

/// Reads the `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq steal (then
/// guest times, which are already part of user and nice).
fn machine_seconds(path: &Path, per_second: f64) -> anyhow::Result<MachineSeconds> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let Some(line) = text.lines().find(|line| line.starts_with("cpu ")) else {
        bail!("no cpu line in {}", path.display());
    };
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    let field = |index: usize| fields.get(index).copied().unwrap_or(0);
    let total: u64 = (0..8).map(field).sum();
    let (idle, steal) = (field(3) + field(4), field(7));
    Ok(MachineSeconds {
        busy: total.saturating_sub(idle + steal) as f64 / per_second,
        steal: steal as f64 / per_second,
        total: total as f64 / per_second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_high_water_mark() {
        let status =
            "Name:\trouting\nVmPeak:\t  900000 kB\nVmHWM:\t   24576 kB\nVmRSS:\t   20000 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(24_576));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "4242 (tokio (rt) x) S 17 4242 17 0 -1 4194560 100 0 0 0 250 30 7 3 20 0 9 0";
        assert_eq!(
            parse_stat(stat),
            Some(ProcStat {
                comm: "tokio (rt) x".to_owned(),
                parent: 17,
                ticks: 280,
                reaped_children_ticks: 10,
            })
        );
    }

    #[test]
    fn two_spans_add_up_by_component() {
        let span = |postgres: f64, pgbench: Option<f64>| CpuSnapshot {
            seconds: [(POSTGRES.to_owned(), postgres)]
                .into_iter()
                .chain(pgbench.map(|s| (EXITED_CHILDREN.to_owned(), s)))
                .collect(),
            machine_busy: 2.0,
            machine_steal: 0.5,
            machine_total: 4.0,
        };
        let both = span(1.0, Some(0.25)).plus(&span(1.5, None));
        assert_eq!(both.seconds[POSTGRES], 2.5);
        assert_eq!(both.seconds[EXITED_CHILDREN], 0.25);
        assert_eq!(
            (both.machine_busy, both.machine_steal, both.machine_total),
            (4.0, 1.0, 8.0)
        );
    }

    #[test]
    fn our_own_process_can_be_measured() -> anyhow::Result<()> {
        assert!(peak_rss_mib(std::process::id())? > 0.0);
        assert!(cpu_seconds(std::process::id())? >= 0.0);
        assert!(!thread_cpu_seconds(std::process::id())?.is_empty());
        let snapshot = CpuSnapshot::take()?;
        assert!(snapshot.seconds.contains_key(LOAD_GENERATOR));
        assert!(snapshot.machine_total >= snapshot.machine_busy);
        Ok(())
    }
}
