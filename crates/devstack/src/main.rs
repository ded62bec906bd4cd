//! The `ekb-dev` binary: parses the command line (clap prints `--help` and bad flags) and runs
//! the launcher (see the library's documentation, `ekb_devstack`).

use std::process::ExitCode;

use ekb_devstack::{launcher, options};

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options::from_env() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("ekb-dev: {error:#}");
            return ExitCode::from(2);
        }
    };
    match launcher::run(options).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ekb-dev: {error:#}");
            ExitCode::FAILURE
        }
    }
}
