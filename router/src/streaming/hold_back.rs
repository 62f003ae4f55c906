//! Holding back a stream's opening: nothing reaches the client until the upstream commits to an
//! answer, so an upstream that fails before that is replaced by the next attempt invisibly.

use std::time::Duration;

use futures_util::StreamExt;

use super::relay::{in_band_error, is_committing};
use crate::providers::{AttemptError, ChunkStream};

/// Reads the stream until the upstream commits to an answer (see [`is_committing`]), so that an
/// upstream failing before that can be replaced without the client seeing anything. Returns the
/// payloads read so far and the rest of the stream.
pub async fn hold_back(
    mut s: ChunkStream,
    first_token: Duration,
) -> Result<(Vec<String>, ChunkStream), AttemptError> {
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
            Some(Ok(data)) => {
                if let Some(err) = in_band_error(&data) {
                    return Err(AttemptError::Protocol(format!("error in stream: {err}")));
                }
                let commit = is_committing(&data);
                buffered.push(data);
                if commit {
                    return Ok((buffered, s));
                }
            }
        }
    }
}
