//! The `ekb-dev` binary: parses the command line and runs the launcher (see the library's
//! documentation, `ekb_devstack`).

use std::process::ExitCode;

use ekb_devstack::{
    launcher,
    options::{self, Invocation},
};

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options::parse(std::env::args().skip(1)) {
        Ok(Invocation::Run(options)) => options,
        Ok(Invocation::Help) => {
            println!("{}", options::usage());
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("ekb-dev: {error:#}\n\n{}", options::usage());
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
