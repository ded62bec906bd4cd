//! How a caller waits for what happens through events. A service answers at once, but what
//! follows from its events (budget's reservation, another service learning of a case) arrives
//! later, so a caller either polls a read until the state it waits for shows ([`until`]), or
//! repeats a call the service answers UNAVAILABLE until the event it needs has arrived
//! ([`when_known`], as the contracts tell clients to). Any other refusal is an answer, and ends
//! the wait with the RPC's name, code and reason ([`answer`]).

use std::{future::Future, time::Duration};

use anyhow::bail;
use tonic::{Code, Response, Status};

/// How long a step that happens through events may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(45);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(150);

/// Polls `check` until it returns `Some` (state that changes when an event arrives), failing
/// with `what` after [`STEP_TIMEOUT`]. An error from `check` ends the wait at once.
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{what} did not happen within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Calls `call` (RPC `rpc`) until it stops answering UNAVAILABLE — the service has not had the
/// event it needs yet (`what`) — for at most [`STEP_TIMEOUT`]; returns the answer, or the
/// refusal as an error.
pub async fn when_known<R, F, Fut>(rpc: &str, what: &str, mut call: F) -> anyhow::Result<R>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Response<R>, Status>>,
{
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        match call().await {
            Err(status)
                if status.code() == Code::Unavailable && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(POLL).await;
            }
            Err(status) if status.code() == Code::Unavailable => {
                bail!(
                    "{what} did not happen within {STEP_TIMEOUT:?} ({rpc}: {})",
                    refusal(&status)
                )
            }
            result => return answer(rpc, result),
        }
    }
}

/// The answer of RPC `rpc`, or its refusal as an error naming the RPC.
pub fn answer<R>(rpc: &str, result: Result<Response<R>, Status>) -> anyhow::Result<R> {
    result
        .map(Response::into_inner)
        .map_err(|status| anyhow::anyhow!("{rpc}: {}", refusal(&status)))
}

/// A gRPC refusal as one line: code, reason (`google.rpc.ErrorInfo`) and message.
pub fn refusal(status: &Status) -> String {
    let reason = crate::status::reason(status);
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!(" {reason}")
    };
    format!("{:?}{reason}: {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_code_and_message() {
        let text = refusal(&Status::failed_precondition("not yet"));
        assert_eq!(text, "FailedPrecondition: not yet");
        let error = answer::<()>("GetOrder", Err(Status::not_found("no such order")))
            .expect_err("a refusal");
        assert_eq!(format!("{error}"), "GetOrder: NotFound: no such order");
    }

    #[tokio::test]
    async fn until_returns_the_first_value_and_ends_on_an_error() {
        let mut polls = 0;
        let value = until("the third poll", || {
            polls += 1;
            let ready = polls >= 3;
            async move { Ok(ready.then_some(polls)) }
        })
        .await
        .expect("ready on the third poll");
        assert_eq!(value, 3);
        let failed: anyhow::Result<()> =
            until("never", || async { Err(anyhow::anyhow!("a fault")) }).await;
        assert!(failed.is_err());
    }
}
