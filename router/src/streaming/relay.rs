//! What every stream relay does, whatever the client's format: the [`Relay`] trait. A relay is
//! pure: upstream items in, the client's SSE frames out, usage counted, checked against what the
//! request could use and priced ([`crate::pricing::reported`]), and a failure after the first
//! byte ended with the format's own error (after the usage of what was relayed). Holding back
//! ([`super::hold_back`]), the idle timeout, settlement when the stream ends and the access record
//! ([`super::frames`]) are written once, for every relay.

use bytes::Bytes;

use crate::{pricing::reported::Bill, providers::AttemptError};

/// What a stream cut at the router's drain timeout ends with.
pub const DRAIN_CUT_MESSAGE: &str = "The router is shutting down: this stream was cut at its \
     drain timeout. It was billed for what was sent.";

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

    /// Ends the stream because the router's drain timeout cut it: the usage of what was relayed,
    /// then the format's error saying so ([`DRAIN_CUT_MESSAGE`]).
    fn drain_cut(&mut self, out: &mut Vec<Bytes>) {
        self.fail(DRAIN_CUT_MESSAGE, None, out);
    }

    /// How the stream ended, once it has.
    fn end(&self) -> Option<StreamEnd>;

    /// What the stream is billed, as told to the client: the usage reported (checked), or,
    /// when the stream was cut before that, the estimate of what was relayed.
    fn final_bill(&self) -> Bill;

    /// The last finish (stop) reason seen.
    fn finish_reason(&self) -> Option<&str>;

    /// The upstream's response id, once seen.
    fn response_id(&self) -> Option<&str>;

    /// The text content relayed so far.
    fn completion_text(&self) -> &str;
}
