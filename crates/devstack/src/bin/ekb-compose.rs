//! `ekb-compose`: prints `deploy/compose/docker-compose.yaml`, generated from its template and
//! the service catalog (`ekb_devstack::compose_file`). From the repository root:
//! `cargo run -q -p ekb-devstack --bin ekb-compose > deploy/compose/docker-compose.yaml`.

use std::{io::Write as _, process::ExitCode};

fn main() -> ExitCode {
    let written = ekb_devstack::compose_file::render()
        .and_then(|file| Ok(std::io::stdout().lock().write_all(file.as_bytes())?));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ekb-compose: {error:#}");
            ExitCode::FAILURE
        }
    }
}
