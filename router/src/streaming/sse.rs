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

/// Takes the complete frames off the front of `buf` and returns their `data` payloads.
pub fn take_payloads(buf: &mut String) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(end) = buf.find("\n\n") {
        let frame: String = buf.drain(..end + 2).collect();
        let data: Vec<&str> = frame
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if !data.is_empty() {
            out.push(data.join("\n"));
        }
    }
    out
}

/// A translator of the pipeline's chat SSE payloads into another format's frames. Pure.
pub trait PayloadTranslator: Send + 'static {
    /// One chat payload (a chunk, an error chunk, or `[DONE]`): the frames to send.
    fn on_payload(&mut self, payload: &str) -> Vec<Bytes>;

    /// Whether the translated stream has ended.
    fn ended(&self) -> bool;

    /// The pipeline's stream ended without its last payload: the frames that say so.
    fn on_cut(&mut self) -> Vec<Bytes>;
}

/// The pipeline's chat SSE `frames` through `translator`, until it ends.
pub fn translate_frames<T: PayloadTranslator>(
    frames: crate::streaming::frames::FrameStream,
    translator: T,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + use<T> {
    use futures_util::StreamExt;
    futures_util::stream::unfold(
        (frames, translator, String::new()),
        |(mut frames, mut tr, mut buf)| async move {
            loop {
                if tr.ended() {
                    return None;
                }
                match frames.next().await {
                    Some(Ok(bytes)) => {
                        buf.push_str(&String::from_utf8_lossy(&bytes));
                        let out: Vec<Bytes> = take_payloads(&mut buf)
                            .iter()
                            .flat_map(|p| tr.on_payload(p))
                            .collect();
                        if !out.is_empty() {
                            return Some((Ok(Bytes::from(out.concat())), (frames, tr, buf)));
                        }
                    }
                    Some(Err(never)) => match never {},
                    None => {
                        let out = tr.on_cut();
                        if out.is_empty() {
                            return None;
                        }
                        return Some((Ok(Bytes::from(out.concat())), (frames, tr, buf)));
                    }
                }
            }
        },
    )
}
