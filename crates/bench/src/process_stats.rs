//! What the processes cost, read from Linux's `/proc`: each service's peak resident set
//! (`VmHWM`, the high-water mark the kernel keeps, so no sampling can miss the peak), each
//! service's CPU time (for idle CPU) or each command's (where a simulated year's CPU went), and how much of the whole machine's CPU went to anything
//! but this run. The figures come from a shared machine, and the last one says how shared it
//! was while they were measured.

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

/// The value in KiB of field `name` (e.g. `VmHWM:`) in a `/proc/<pid>/status` text.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// Command name, parent and CPU ticks of one process, from `/proc/<pid>/stat`.
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

/// CPU seconds used so far by the run (this benchmark, its children running or exited — the
/// services, the broker, pgbench — and every `postgres` process, exited backends included
/// through the postmaster's children times) and by the whole machine. A snapshot taken after a
/// span minus one taken before ([`Self::since`]) says how much of the machine the run had.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuSnapshot {
    /// Seconds used by the run's processes.
    pub run_seconds: f64,
    /// Whole-machine busy seconds (all CPUs), from `/proc/stat`.
    pub machine_busy: f64,
    /// Seconds the hypervisor ran something else while this machine wanted the CPU ("steal").
    pub machine_steal: f64,
    /// Whole-machine seconds in all states.
    pub machine_total: f64,
}

impl CpuSnapshot {
    /// Reads the current counters.
    pub fn take() -> anyhow::Result<Self> {
        let per_second = ticks_per_second();
        let me = std::process::id();
        let mut run_ticks = 0;
        for (pid, stat) in processes()? {
            if pid == me || stat.comm == "postgres" {
                run_ticks += stat.ticks + stat.reaped_children_ticks;
            } else if stat.parent == me {
                run_ticks += stat.ticks;
            }
        }
        let machine = machine_seconds(Path::new("/proc/stat"), per_second)?;
        Ok(CpuSnapshot {
            run_seconds: run_ticks as f64 / per_second,
            machine_busy: machine.busy,
            machine_steal: machine.steal,
            machine_total: machine.total,
        })
    }

    /// The CPU used between `before` and `self`.
    pub fn since(&self, before: &CpuSnapshot) -> CpuSnapshot {
        CpuSnapshot {
            run_seconds: (self.run_seconds - before.run_seconds).max(0.0),
            machine_busy: self.machine_busy - before.machine_busy,
            machine_steal: self.machine_steal - before.machine_steal,
            machine_total: self.machine_total - before.machine_total,
        }
    }

    /// Percent of the machine's CPU time (all CPUs) that was busy.
    pub fn busy_percent(&self) -> f64 {
        self.share(self.machine_busy)
    }

    /// Percent of the machine's CPU time that was busy with none of the run's processes
    /// (other users' work, interrupts): the noise in the figures.
    pub fn other_percent(&self) -> f64 {
        self.share((self.machine_busy - self.run_seconds).max(0.0))
    }

    /// Percent of the machine's CPU time the hypervisor gave to other guests.
    pub fn steal_percent(&self) -> f64 {
        self.share(self.machine_steal)
    }

    fn share(&self, seconds: f64) -> f64 {
        100.0 * seconds / self.machine_total.max(f64::MIN_POSITIVE)
    }
}

/// Every process now, with its `/proc/<pid>/stat`. Processes come and go while /proc is read;
/// a vanished one is simply left out.
fn processes() -> anyhow::Result<Vec<(u32, ProcStat)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").context("listing /proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|text| parse_stat(&text))
        {
            found.push((pid, stat));
        }
    }
    Ok(found)
}

/// Added to a command name for the CPU of its children that have exited (and were waited for).
pub const EXITED_CHILDREN: &str = " (exited children)";

/// CPU seconds used so far by the running processes of each command name (`comm`, at most 15
/// characters), summed; and, under the name followed by [`EXITED_CHILDREN`], by their children
/// that have exited. `postgres` processes count their exited children as their own (the
/// postmaster reaps every backend), so PostgreSQL's figure keeps the CPU of backends that have
/// gone.
pub fn cpu_seconds_by_command() -> anyhow::Result<BTreeMap<String, f64>> {
    let per_second = ticks_per_second();
    let mut ticks: BTreeMap<String, u64> = BTreeMap::new();
    for (_, stat) in processes()? {
        if stat.comm == "postgres" {
            *ticks.entry(stat.comm).or_default() += stat.ticks + stat.reaped_children_ticks;
            continue;
        }
        if stat.reaped_children_ticks > 0 {
            *ticks
                .entry(format!("{}{EXITED_CHILDREN}", stat.comm))
                .or_default() += stat.reaped_children_ticks;
        }
        *ticks.entry(stat.comm).or_default() += stat.ticks;
    }
    Ok(ticks
        .into_iter()
        .map(|(comm, ticks)| (comm, ticks as f64 / per_second))
        .collect())
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
    fn a_span_says_how_much_of_the_machine_others_had() {
        let at = |run: f64, busy: f64, steal: f64, total: f64| CpuSnapshot {
            run_seconds: run,
            machine_busy: busy,
            machine_steal: steal,
            machine_total: total,
        };
        let span = at(13.0, 18.0, 1.0, 140.0).since(&at(10.0, 12.0, 0.0, 100.0));
        assert_eq!(span.busy_percent(), 15.0);
        assert_eq!(span.other_percent(), 7.5);
        assert_eq!(span.steal_percent(), 2.5);
        assert_eq!(CpuSnapshot::default().other_percent(), 0.0);
    }

    #[test]
    fn our_own_process_can_be_measured() -> anyhow::Result<()> {
        assert!(peak_rss_mib(std::process::id())? > 0.0);
        assert!(cpu_seconds(std::process::id())? >= 0.0);
        let snapshot = CpuSnapshot::take()?;
        assert!(snapshot.run_seconds > 0.0 || snapshot.machine_total > 0.0);
        assert!(snapshot.machine_total >= snapshot.machine_busy);
        Ok(())
    }
}
