//! Streaming to the client: the pure relay state machine ([`relay`]: upstream payloads in, SSE
//! frames out, usage priced, errors after the first byte as error chunks), holding a stream's
//! opening back until the upstream commits ([`hold_back`]), relaying a committed stream until its
//! last frame ([`frames`]), and the event-stream response itself ([`sse`]).

pub mod frames;
pub mod hold_back;
pub mod relay;
pub mod sse;
