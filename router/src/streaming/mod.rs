//! Streaming to the client: one pure relay per client format behind the [`relay::Relay`] trait
//! ([`chat`]: OpenAI chat chunks and legacy completion chunks; [`anthropic`]: Anthropic Messages
//! events; [`responses`]: OpenAI Responses events), holding a stream's opening back until the
//! upstream commits ([`hold_back`]), relaying a committed stream until its last frame with
//! settlement and the access record ([`frames`]), and the event-stream response itself, with the
//! translation of the pipeline's chat frames into another format's ([`sse`]).

pub mod anthropic;
pub mod chat;
pub mod frames;
pub mod hold_back;
pub mod relay;
pub mod responses;
pub mod sse;
