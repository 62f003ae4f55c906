//! The HTTP response that carries a stream of server-sent events to the client.

use std::convert::Infallible;

use axum::{
    body::Body,
    http::{HeaderValue, header},
    response::Response,
};
use bytes::Bytes;
use futures_util::Stream;

use crate::panics::{CatchPanics, chat_panic_frame};

/// A `200 text/event-stream` response of OpenAI chat `frames`, uncached and unbuffered by
/// proxies. A panic while a frame is made ends the stream with an error chunk ([`CatchPanics`]).
pub fn sse_response(
    frames: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    sse_response_ending(frames, chat_panic_frame())
}

/// [`sse_response`] of a stream in another format, which ends with `on_panic` (that format's
/// error event, e.g. [`crate::panics::anthropic_panic_frame`]) if making a frame panics.
pub fn sse_response_ending(
    frames: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
    on_panic: Bytes,
) -> Response {
    let mut resp = Response::new(Body::from_stream(CatchPanics::new(
        Box::pin(frames),
        on_panic,
    )));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}
