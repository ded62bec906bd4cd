//! Finding the workspace's binaries (services, mock broker) from a test or the dev launcher:
//! `EKB_BIN_DIR` if set, else the cargo profile directory of the running executable.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Environment variable naming the directory that holds the built binaries.
pub const BIN_DIR_ENV: &str = "EKB_BIN_DIR";

/// The cargo profile directory for an executable in `exe_dir`: test binaries live in
/// `target/<profile>/deps`, binaries directly in `target/<profile>`.
pub fn profile_dir(exe_dir: &Path) -> &Path {
    match (exe_dir.file_name(), exe_dir.parent()) {
        (Some(name), Some(parent)) if name == "deps" || name == "examples" => parent,
        _ => exe_dir,
    }
}

/// The path of workspace binary `name`, which must exist.
pub fn workspace_binary(name: &str) -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os(BIN_DIR_ENV).filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().context("locating the current executable")?;
            let exe_dir = exe
                .parent()
                .context("the current executable has no directory")?;
            profile_dir(exe_dir).to_path_buf()
        }
    };
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!(
            "binary {name} not found at {}: run `cargo build --workspace --bins` first (or set {BIN_DIR_ENV})",
            path.display()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_strips_deps_and_examples_only() {
        assert_eq!(
            profile_dir(Path::new("/w/target/debug/deps")),
            Path::new("/w/target/debug")
        );
        assert_eq!(
            profile_dir(Path::new("/w/target/debug")),
            Path::new("/w/target/debug")
        );
        assert_eq!(
            profile_dir(Path::new("/w/target/release/examples")),
            Path::new("/w/target/release")
        );
    }
}
