//! Reading the services at the end of a run, through their contracts, as `Caller::System`.
//!
//! Why retries: after a fault schedule a service may just have been restarted, and a read that
//! meets it while it comes up must not turn into a failed check. Only the codes a restarting
//! or briefly overloaded service gives are retried; any other refusal is an error at once.

use std::{future::Future, time::Duration};

use anyhow::Context as _;
use tonic::{Code, Response, Status};

use crate::timeline::{Caller, Sim};

/// How many times a read is tried before its error is returned.
const ATTEMPTS: u32 = 8;
/// The first pause between attempts; doubled each time.
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// The system caller's token (every role of every service).
pub fn system_token(sim: &Sim) -> String {
    sim.token(&Caller::System)
}

/// Whether `status` is what a restarting or overloaded service answers.
pub fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted
    )
}

/// Calls `call` until it answers or fails with a non-transient status (at most
/// [`ATTEMPTS`] times); `what` names the call in the error.
pub async fn retrying<T, F, Fut>(what: &str, mut call: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) if is_transient(&status) && attempt < ATTEMPTS => {
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            Err(status) => {
                return Err(anyhow::anyhow!("{}: {}", status.code(), status.message()))
                    .with_context(|| format!("{what} failed after {attempt} attempt(s)"));
            }
        }
    }
}
