//! What every stream relay does, whatever the client's format: the [`Relay`] trait. A relay is
//! pure: upstream items in, the client's SSE frames out, usage counted and priced, and a failure
//! after the first byte ended with the format's own error. Holding back ([`super::hold_back`]),
//! the idle timeout, settlement when the stream ends and the access record
//! ([`super::frames`]) are written once, for every relay.

use bytes::Bytes;
use rust_decimal::Decimal;

use crate::{pricing::Usage, providers::AttemptError};

/// How a relayed stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The answer was relayed to its end.
    Completed,
    /// The upstream failed after content was sent; the format's error was relayed.
    Failed,
}

/// What an item read while the stream is held back says.
#[derive(Debug)]
pub enum Opening {
    /// Nothing yet: keep holding back.
    Wait,
    /// The upstream is really answering: release what was held back.
    Commit,
    /// The upstream failed before answering: try the next target.
    Failed(AttemptError),
}

/// An error the upstream reported inside its stream, after the answer committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InBandError {
    /// The error's type, when the format names one (Anthropic's `overloaded_error`, ...).
    pub kind: Option<String>,
    /// What the upstream said.
    pub detail: String,
}

/// One format's stream relay.
pub trait Relay: Send + 'static {
    /// What the upstream stream yields (chat payloads, named events).
    type Item: Send + 'static;

    /// While held back: whether `item` commits the upstream to an answer.
    fn opening(item: &Self::Item) -> Opening;

    /// After the commit: whether `item` is the upstream reporting an error.
    fn in_band_error(item: &Self::Item) -> Option<InBandError>;

    /// Relays one upstream item, pushing the frames to send.
    fn on_item(&mut self, item: Self::Item, out: &mut Vec<Bytes>);

    /// The upstream stream ended: complete if the answer had finished, else fail.
    fn on_eof(&mut self, out: &mut Vec<Bytes>);

    /// Ends the stream with the format's error carrying `message` (already scrubbed of secrets)
    /// and, when known, the upstream's error `kind`.
    fn fail(&mut self, message: &str, kind: Option<&str>, out: &mut Vec<Bytes>);

    /// How the stream ended, once it has.
    fn end(&self) -> Option<StreamEnd>;

    /// Usage as reported, or estimated from what was relayed.
    fn final_usage(&self) -> Usage;

    /// The cost of [`Self::final_usage`], as told to the client.
    fn final_cost(&self) -> Decimal;

    /// The last finish (stop) reason seen.
    fn finish_reason(&self) -> Option<&str>;

    /// The upstream's response id, once seen.
    fn response_id(&self) -> Option<&str>;

    /// The text content relayed so far.
    fn completion_text(&self) -> &str;
}
