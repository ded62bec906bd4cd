//! What spawning the workspace's binaries (services, mock broker) has in common: the process
//! group the child joins, and the log file its output goes to.

use std::{fs::File, os::unix::process::CommandExt, path::Path, process::Command};

use anyhow::Context;

/// Which process group a spawned child joins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProcessGroup {
    /// The caller's (the default, right for tests): a terminal's Ctrl-C, which goes to the
    /// whole foreground group, ends the child together with the caller.
    #[default]
    Inherit,
    /// A new group of its own (`process_group(0)`), so a terminal's Ctrl-C reaches only the
    /// caller, which then stops its children in the order it chooses (the dev launcher). Such a
    /// child is not ended with the caller's group: the caller must stop or drop it.
    Own,
}

impl ProcessGroup {
    /// Makes `command` spawn its child in this group.
    pub fn apply(self, command: &mut Command) -> &mut Command {
        match self {
            ProcessGroup::Inherit => command,
            ProcessGroup::Own => command.process_group(0),
        }
    }
}

/// Creates (truncating) the log file at `path`, and its directory.
pub fn create_log(path: &Path) -> anyhow::Result<File> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating log directory {}", dir.display()))?;
    }
    File::create(path).with_context(|| format!("creating log file {}", path.display()))
}

/// The last `lines` lines of the file at `path`, each indented by four spaces, for error
/// messages (empty if it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_indented() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!(
            "ekb-testkit-tail-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let path = dir.join("nested/service.log");
        std::io::Write::write_all(&mut create_log(&path)?, b"one\ntwo\nthree\n")?;
        assert_eq!(log_tail(&path, 2), "    two\n    three");
        assert_eq!(log_tail(&path, 10), "    one\n    two\n    three");
        assert_eq!(log_tail(&dir.join("missing.log"), 3), "");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
