//! Anthropic Messages (client side) <-> OpenAI Chat Completions (the shared pipeline's view).
//! Pure: the request's chat view ([`request`]), a complete answer and errors ([`response`]), and
//! a stream's events ([`stream`]).

pub mod request;
pub mod response;
pub mod stream;

pub use request::{ChatView, request};
pub use response::{error_body, error_type, response, stop_reason, usage};
pub use stream::Stream;
