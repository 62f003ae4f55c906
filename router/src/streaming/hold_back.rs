//! Holding back a stream's opening: nothing reaches the client until the upstream commits to an
//! answer, so an upstream that fails before that is replaced by the next attempt invisibly.

use std::{pin::Pin, time::Duration};

use futures_util::{Stream, StreamExt};

use super::relay::{Opening, Relay};
use crate::providers::AttemptError;

/// A stream of upstream items for relay `R`.
pub type Upstream<R> = Pin<Box<dyn Stream<Item = Result<<R as Relay>::Item, AttemptError>> + Send>>;

/// Reads the stream until the upstream commits to an answer (see [`Relay::opening`]), so that an
/// upstream failing before that can be replaced without the client seeing anything. Returns the
/// items read so far and the rest of the stream.
pub async fn hold_back<R: Relay>(
    mut s: Upstream<R>,
    first_token: Duration,
) -> Result<(Vec<R::Item>, Upstream<R>), AttemptError> {
    let deadline = tokio::time::Instant::now() + first_token;
    let mut buffered = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, s.next())
            .await
            .map_err(|_| AttemptError::Timeout("first_token"))?;
        match next {
            None => {
                return Err(AttemptError::Protocol(
                    "the stream ended before any content".into(),
                ));
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(item)) => match R::opening(&item) {
                Opening::Failed(e) => return Err(e),
                Opening::Commit => {
                    buffered.push(item);
                    return Ok((buffered, s));
                }
                Opening::Wait => buffered.push(item),
            },
        }
    }
}
