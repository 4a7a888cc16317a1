//! Bounded, jittered backoff between retries of AWS calls that competing writers or
//! throttling refused (the SDK's own retries cover transport errors and throttled calls), and
//! the one loop that re-sends what a batch call left unprocessed. The delay schedule is the
//! domain's ([`clanwar_domain::retry::delay`]): one schedule for every retry.

use clanwar_domain::ports::StoreError;
use std::future::Future;

/// Calls of one batch request (the first and its re-sends of unprocessed keys or items)
/// before giving up with [`StoreError::Contention`].
pub(crate) const MAX_UNPROCESSED_ROUNDS: u32 = 8;

/// Waits before retry `round` (1, 2, ...).
pub(crate) async fn backoff(round: u32) {
    tokio::time::sleep(clanwar_domain::retry::delay(round)).await;
}

/// Sends `request`, then re-sends what each answer left unprocessed (DynamoDB's
/// `UnprocessedKeys`/`UnprocessedItems` under throttling), backing off in between, until
/// nothing is left: the outputs of every call, in order. `send` answers a call's output and
/// what is still to send (`None` when all was processed). After [`MAX_UNPROCESSED_ROUNDS`]
/// calls that still left work, [`StoreError::Contention`]: retryable, never an endless loop.
pub(crate) async fn until_processed<Req, Out, F, Fut>(
    request: Req,
    mut send: F,
) -> Result<Vec<Out>, StoreError>
where
    F: FnMut(Req) -> Fut,
    Fut: Future<Output = Result<(Out, Option<Req>), StoreError>>,
{
    let mut outputs = Vec::new();
    let mut pending = Some(request);
    let mut round = 0;
    while let Some(request) = pending.take() {
        if round >= MAX_UNPROCESSED_ROUNDS {
            tracing::warn!(rounds = round, "unprocessed items left after every round");
            return Err(StoreError::Contention { attempts: round });
        }
        if round > 0 {
            backoff(round).await;
        }
        round += 1;
        let (output, rest) = send(request).await?;
        outputs.push(output);
        pending = rest;
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unprocessed_items_are_sent_again_until_none_are_left() {
        let mut sent = Vec::new();
        let outputs = until_processed(vec![1, 2, 3, 4, 5], |batch: Vec<i32>| {
            sent.push(batch.clone());
            // Each call processes the first two and leaves the rest.
            let (done, rest) = batch.split_at(batch.len().min(2));
            let (done, rest) = (done.to_vec(), rest.to_vec());
            async move { Ok((done, (!rest.is_empty()).then_some(rest))) }
        })
        .await
        .unwrap();
        assert_eq!(outputs, vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert_eq!(sent, vec![vec![1, 2, 3, 4, 5], vec![3, 4, 5], vec![5]]);
    }

    #[tokio::test]
    async fn items_never_processed_end_in_contention_after_the_bound() {
        let mut calls = 0;
        let result = until_processed((), |()| {
            calls += 1;
            async { Ok(((), Some(()))) }
        })
        .await;
        assert!(matches!(
            result,
            Err(StoreError::Contention { attempts }) if attempts == MAX_UNPROCESSED_ROUNDS
        ));
        assert_eq!(calls, MAX_UNPROCESSED_ROUNDS);
    }

    #[tokio::test]
    async fn a_failed_call_ends_the_loop_with_its_error() {
        let mut calls = 0;
        let result: Result<Vec<()>, _> = until_processed((), |()| {
            calls += 1;
            async { Err(StoreError::Invalid("refused".into())) }
        })
        .await;
        assert!(matches!(result, Err(StoreError::Invalid(_))));
        assert_eq!(calls, 1);
    }
}
