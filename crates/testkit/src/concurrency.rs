//! Concurrency is part of every create's contract (ADR 0027): many copies of one request sent at
//! once all get the first answer, and different requests racing for one thing get one winner and
//! the contract's refusal. Each service's tests send such bursts and check them with these.

use std::{collections::BTreeSet, future::Future};

use crate::status::reason;

/// One call's answer.
pub type Answer<R> = Result<tonic::Response<R>, tonic::Status>;

/// Runs `calls` at once, each on a task of its own; their answers in order.
pub async fn at_once<T, F>(calls: impl IntoIterator<Item = F>) -> anyhow::Result<Vec<T>>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await?);
    }
    Ok(answers)
}

/// Checks the answers to copies of one create: every copy answered OK, exactly one `created`,
/// and all with the same `id`.
pub fn assert_copies_got_the_first<R>(
    answers: &[Answer<R>],
    created: impl Fn(&R) -> bool,
    id: impl Fn(&R) -> String,
) -> anyhow::Result<()> {
    let mut ids = BTreeSet::new();
    let mut creations = 0;
    for answer in answers {
        let response = match answer {
            Ok(response) => response.get_ref(),
            Err(status) => anyhow::bail!("a copy was refused: {status:?}"),
        };
        creations += usize::from(created(response));
        ids.insert(id(response));
    }
    anyhow::ensure!(creations == 1, "{creations} copies say they created it");
    anyhow::ensure!(
        ids.len() == 1,
        "the copies name {} different ids",
        ids.len()
    );
    Ok(())
}

/// Checks the answers to different creates racing for one thing: exactly one `created`, every
/// other refused with FAILED_PRECONDITION and the ErrorInfo `expected_reason`.
pub fn assert_one_won_and_the_rest_were_refused<R>(
    answers: &[Answer<R>],
    created: impl Fn(&R) -> bool,
    expected_reason: &str,
) -> anyhow::Result<()> {
    let mut creations = 0;
    for answer in answers {
        match answer {
            Ok(response) => creations += usize::from(created(response.get_ref())),
            Err(status) => anyhow::ensure!(
                status.code() == tonic::Code::FailedPrecondition
                    && reason(status) == expected_reason,
                "a loser got {status:?}, not FAILED_PRECONDITION {expected_reason}"
            ),
        }
    }
    anyhow::ensure!(creations == 1, "{creations} racing requests were created");
    Ok(())
}
