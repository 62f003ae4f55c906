//! A committed stream, relayed until its last frame: upstream items (first those held back,
//! then the rest, each within the idle timeout) go through the format's [`Relay`] and come out as
//! the client's SSE frames. When the stream ends, fails or the client goes away, the request's
//! record gets the usage, cost and finish reason, and the target's health what the stream showed.
//! When the router's drain timeout cuts it ([`AppState::cut_streams`]), it ends with the usage of
//! what was relayed and the format's error ([`Relay::drain_cut`]).

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::{StreamExt, stream};

use super::{
    hold_back::Upstream,
    relay::{Relay, StreamEnd},
};
use crate::{
    error::scrub,
    observability::access::Access,
    providers::AttemptError,
    routing::{Candidate, attempts::Slot},
    state::AppState,
};

/// A stream of SSE frames.
pub type FrameStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, Infallible>> + Send>>;

/// The client's frames of the stream `cand` committed to, through `relay`: `buffered` (the items
/// held back) first, then the rest of `upstream`. The slot and the record ride along until the
/// stream ends.
pub fn relay<R: Relay>(
    state: &Arc<AppState>,
    cand: &Candidate<'_>,
    slot: Slot,
    access: Access,
    relay: R,
    (buffered, upstream): (Vec<R::Item>, Upstream<R>),
) -> FrameStream {
    let provider = &cand.provider.config;
    let secrets = cand
        .provider
        .secrets()
        .into_iter()
        .map(str::to_string)
        .collect();
    state.metrics.open_streams.inc();
    let relay_state = RelayState {
        relay,
        access,
        cut: state.streams_cut(),
        was_cut: false,
        buffered: buffered.into(),
        upstream,
        pending: VecDeque::new(),
        idle: Duration::from_millis(provider.timeouts.idle_ms),
        secrets,
        target: (
            state.clone(),
            cand.provider.id().to_string(),
            cand.upstream_model.to_string(),
        ),
        committed: Instant::now(),
        _slot: slot,
    };
    Box::pin(stream::unfold(relay_state, next_frame))
}

/// Everything a committed stream needs until its last frame.
struct RelayState<R: Relay> {
    relay: R,
    access: Access,
    /// Turns true when the drain timeout cuts open streams.
    cut: tokio::sync::watch::Receiver<bool>,
    /// This stream was cut by the drain timeout.
    was_cut: bool,
    buffered: VecDeque<R::Item>,
    upstream: Upstream<R>,
    pending: VecDeque<Bytes>,
    idle: Duration,
    secrets: Vec<String>,
    /// The state, provider id and model, for health and throughput when the stream ends.
    target: (Arc<AppState>, String, String),
    committed: Instant,
    _slot: Slot,
}

impl<R: Relay> Drop for RelayState<R> {
    fn drop(&mut self) {
        // Runs when the stream ends and when the client goes away mid-stream.
        self.target.0.metrics.open_streams.dec();
        let bill = self.relay.final_bill();
        let usage = bill.usage;
        self.access.usage = Some(usage);
        self.access.cost = Some(bill.usd());
        self.access.usage_anomaly = bill.anomaly;
        self.access.finish_reason = self.relay.finish_reason().map(str::to_string);
        self.access.response_id = self.relay.response_id().map(str::to_string);
        if self.target.0.settings.trace_content {
            self.access
                .span
                .record("gen_ai.output.messages", self.relay.completion_text());
        }
        if self.access.keep_content {
            self.access.output_content = Some(self.relay.completion_text().to_string());
        }
        let (state, provider, model) = &self.target;
        match self.relay.end() {
            Some(StreamEnd::Completed) => {
                self.access.outcome = None;
                let secs = self.committed.elapsed().as_secs_f64();
                if secs > 0.0 && usage.completion_tokens > 0 {
                    state.health.record_throughput(
                        provider,
                        model,
                        usage.completion_tokens as f64 / secs,
                    );
                }
            }
            Some(StreamEnd::Failed) if self.was_cut => {
                self.access.outcome = Some("drain_cut".into());
            }
            Some(StreamEnd::Failed) => {
                self.access.outcome = Some("stream_error".into());
                state
                    .health
                    .record_failure(provider, model, Instant::now(), None);
            }
            None => {}
        }
    }
}

async fn next_frame<R: Relay>(
    mut st: RelayState<R>,
) -> Option<(Result<Bytes, Infallible>, RelayState<R>)> {
    loop {
        if let Some(frame) = st.pending.pop_front() {
            return Some((Ok(frame), st));
        }
        if st.relay.end().is_some() {
            return None;
        }
        let next = match st.buffered.pop_front() {
            Some(data) => Some(Ok(data)),
            None => {
                let upstream = tokio::time::timeout(st.idle, st.upstream.next());
                tokio::select! {
                    biased;
                    () = cut(&mut st.cut) => {
                        let mut out = Vec::new();
                        st.was_cut = true;
                        st.relay.drain_cut(&mut out);
                        st.pending.extend(out);
                        continue;
                    }
                    next = upstream => match next {
                        Ok(next) => next,
                        Err(_) => Some(Err(AttemptError::Timeout("idle"))),
                    },
                }
            }
        };
        let mut out = Vec::new();
        match next {
            Some(Ok(item)) => match R::in_band_error(&item) {
                Some(err) => st.relay.fail(
                    &stream_error(&format!("upstream error: {}", err.detail), &st.secrets),
                    err.kind.as_deref(),
                    &mut out,
                ),
                None => st.relay.on_item(item, &mut out),
            },
            Some(Err(e)) => {
                st.relay
                    .fail(&stream_error(&e.to_string(), &st.secrets), None, &mut out)
            }
            None => st.relay.on_eof(&mut out),
        }
        st.pending.extend(out);
    }
}

/// Resolves when the drain timeout cuts open streams (never, if the state is gone).
async fn cut(signal: &mut tokio::sync::watch::Receiver<bool>) {
    if signal.wait_for(|cut| *cut).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The message a stream that failed mid-way ends with, scrubbed of the provider's secrets.
fn stream_error(message: &str, secrets: &[String]) -> String {
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    format!(
        "The upstream failed mid-stream: {}",
        scrub(message, &secrets)
    )
}
