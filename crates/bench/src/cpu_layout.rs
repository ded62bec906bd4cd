//! Which CPUs PostgreSQL gets and which everything else gets, for the length of a run.
//!
//! In production the database never shares CPUs with the services that call it. On a small
//! machine where it does, the ratio stops measuring "how much of the database's speed does the
//! service keep" and starts measuring "how much CPU does a middle tier cost": any service, even
//! a perfect one, needs some CPU, and on shared cores every microsecond of it is taken from
//! PostgreSQL. So by default ([`CpuLayout::Split`]) the benchmark gives PostgreSQL the first half
//! of the CPUs and itself (with everything it starts: the services, the broker, and pgbench as
//! the baseline's client) the other half — the same split in both halves of the comparison.
//! `--cpu-layout shared` measures the old way. Affinity is set with `taskset` and put back when
//! the run ends, however it ends.

use std::{collections::BTreeMap, fs, process::Command};

use anyhow::{Context, bail};

/// How the run places processes on CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuLayout {
    /// PostgreSQL on the first half of the CPUs, the rest of the run on the other half.
    Split,
    /// Everything on every CPU.
    Shared,
}

impl CpuLayout {
    /// Parses `split` or `shared`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        match text {
            "split" => Ok(CpuLayout::Split),
            "shared" => Ok(CpuLayout::Shared),
            other => bail!("--cpu-layout must be split or shared, got {other:?}"),
        }
    }
}

/// The placement in force; dropping it gives PostgreSQL back the CPUs it had.
#[derive(Debug)]
pub struct CpuPlacement {
    /// What the summary says about the placement.
    pub description: String,
    /// Each PostgreSQL process's CPU list before the run, to restore.
    postgres_before: BTreeMap<u32, String>,
    /// The list to give PostgreSQL processes that started during the run.
    postgres_default: Option<String>,
}

impl CpuPlacement {
    /// Applies `layout`. A split that cannot be made (the server is not on this machine, one
    /// CPU, no local PostgreSQL processes, no permission) falls back to sharing and says why
    /// in the description.
    pub fn apply(layout: CpuLayout, database_is_local: bool) -> CpuPlacement {
        let shared = |why: &str| CpuPlacement {
            description: format!("shared: everything on every CPU{why}"),
            postgres_before: BTreeMap::new(),
            postgres_default: None,
        };
        if layout == CpuLayout::Shared {
            return shared("");
        }
        if !database_is_local {
            return shared(
                " (a split was asked for but the PostgreSQL server is not on this machine)",
            );
        }
        match Self::split() {
            Ok(placement) => placement,
            Err(error) => shared(&format!(" (a split was asked for but {error:#})")),
        }
    }

    fn split() -> anyhow::Result<CpuPlacement> {
        let own = allowed_cpus(std::process::id())?;
        let cpus = parse_cpu_list(&own)?;
        if cpus.len() < 2 {
            bail!("only CPU {own} is available");
        }
        let (database, rest) = cpus.split_at(cpus.len() / 2);
        let postgres = postgres_pids();
        if postgres.is_empty() {
            bail!("no PostgreSQL process runs on this machine");
        }
        let database_list = cpu_list(database);
        let rest_list = cpu_list(rest);
        let mut placement = CpuPlacement {
            description: String::new(),
            postgres_before: BTreeMap::new(),
            postgres_default: postgres.first().and_then(|pid| allowed_cpus(*pid).ok()),
        };
        for pid in postgres {
            // A backend can exit between listing and pinning; only the living matter.
            if let Ok(before) = allowed_cpus(pid) {
                set_affinity(pid, &database_list)?;
                placement.postgres_before.insert(pid, before);
            }
        }
        set_affinity(std::process::id(), &rest_list)?;
        placement.description = format!(
            "split: PostgreSQL on CPU {database_list}; the load generator, services, broker and \
             pgbench on CPU {rest_list}"
        );
        Ok(placement)
    }
}

impl Drop for CpuPlacement {
    fn drop(&mut self) {
        let Some(default) = &self.postgres_default else {
            return;
        };
        for pid in postgres_pids() {
            let before = self.postgres_before.get(&pid).unwrap_or(default);
            if let Err(error) = set_affinity(pid, before) {
                eprintln!(
                    "ekb-bench: could not give PostgreSQL process {pid} CPUs {before} back: {error:#}"
                );
            }
        }
    }
}

/// The PostgreSQL processes of this machine, oldest (the postmaster, usually) first.
fn postgres_pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == "postgres")
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The CPU list (`0-1`, `0,2-3`) process `pid` may run on.
fn allowed_cpus(pid: u32) -> anyhow::Result<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading the status of process {pid}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|list| list.trim().to_owned())
        .with_context(|| format!("process {pid} reports no Cpus_allowed_list"))
}

/// Restricts every thread of `pid` to the CPUs in `list`.
fn set_affinity(pid: u32, list: &str) -> anyhow::Result<()> {
    let output = Command::new("taskset")
        .args(["--all-tasks", "--cpu-list", "--pid", list, &pid.to_string()])
        .output()
        .context("running taskset (util-linux)")?;
    if !output.status.success() {
        bail!(
            "taskset could not move process {pid}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The CPUs of a list like `0-3,6`.
fn parse_cpu_list(list: &str) -> anyhow::Result<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let number = |text: &str| {
            text.parse::<usize>()
                .with_context(|| format!("{text:?} in CPU list {list:?} is not a CPU number"))
        };
        match part.split_once('-') {
            Some((first, last)) => cpus.extend(number(first)?..=number(last)?),
            None => cpus.push(number(part)?),
        }
    }
    Ok(cpus)
}

/// A CPU list in `taskset`'s syntax.
fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_read_in_the_kernel_s_syntax() -> anyhow::Result<()> {
        assert_eq!(parse_cpu_list("0-1")?, vec![0, 1]);
        assert_eq!(parse_cpu_list("0,2-4,7")?, vec![0, 2, 3, 4, 7]);
        assert_eq!(parse_cpu_list("3")?, vec![3]);
        assert!(parse_cpu_list("0-x").is_err());
        assert_eq!(cpu_list(&[0, 2, 3]), "0,2,3");
        Ok(())
    }

    #[test]
    fn layouts_parse_and_shared_changes_nothing() -> anyhow::Result<()> {
        assert_eq!(CpuLayout::parse("split")?, CpuLayout::Split);
        assert!(CpuLayout::parse("half").is_err());
        let before = allowed_cpus(std::process::id())?;
        let placement = CpuPlacement::apply(CpuLayout::Shared, true);
        assert!(placement.description.starts_with("shared"));
        drop(placement);
        let remote = CpuPlacement::apply(CpuLayout::Split, false);
        assert!(
            remote.description.contains("not on this machine"),
            "{}",
            remote.description
        );
        drop(remote);
        assert_eq!(allowed_cpus(std::process::id())?, before);
        Ok(())
    }
}
